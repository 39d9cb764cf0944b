"""Property tests over randomly generated programs (hypothesis).

A program is a list of instructions over a pool of values (vectors of length n and scalars),
started with the inputs x (n,) and s (). The same interpreter runs it on plain numpy arrays (the
reference) and on traced values (the recording), so every operation the interpreter uses is
checked against numpy itself. Programs are recorded at one point and replayed at another.

Checked: forward == numpy; Jacobian/gradient == finite differences; Hessian == finite
differences of the gradient (or of w J for vector outputs); and the methods agree with each
other: J u == jvp, w J == vjp, w.(J u) == (w J).u, H v == hvp, H symmetric, k directions at once
== one at a time.

Example counts are modest (the suite must stay fast); set JITAD_HYPOTHESIS_EXAMPLES=500 for a
deeper, randomised local run.
"""
import os

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

import jitad
from fdcheck import assert_close, assert_fd_close, fd_jacobian

_DEEP = int(os.environ.get("JITAD_HYPOTHESIS_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_DEEP or 100, deadline=None, derandomize=not _DEEP,
                    suppress_health_check=list(HealthCheck), print_blob=True, database=None,
                    phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink])
TINY = 1e-290  # absolute floor: relative precision means nothing for subnormal results


# ------------------------------------------------------------------ the interpreter
def _vec(a, n):
    """A pool value as a vector of length n (scalars are broadcast, read-only view)."""
    return np.broadcast_to(a, (n,)) if np.ndim(a) == 0 else a


def _mask(n, c):
    return (np.arange(n) % 2 == 0) ^ (c > 0)


# Smooth operations (C-infinity on the whole real line): (a, b, c, ctx) -> value.
# a, b are pool values (vector or scalar), c a float parameter in [-1.5, 1.5].
SMOOTH = {
    "sin": lambda a, b, c, k: np.sin(a),
    "cos": lambda a, b, c, k: np.cos(a),
    "tanh": lambda a, b, c, k: np.tanh(a),
    "arctan": lambda a, b, c, k: np.arctan(a),
    "tan": lambda a, b, c, k: np.tan(np.tanh(a)),
    "arcsinh": lambda a, b, c, k: np.arcsinh(a),
    "sinh_tanh": lambda a, b, c, k: np.sinh(np.tanh(a)),
    "cosh_sin": lambda a, b, c, k: np.cosh(np.sin(a)),
    "expit": lambda a, b, c, k: sps.expit(a),
    "erf": lambda a, b, c, k: sps.erf(a),
    "gammaln": lambda a, b, c, k: sps.gammaln(1.5 + a * a),
    "digamma_polygamma": lambda a, b, c, k: (sps.digamma(1.5 + a * a)
                                             + jitad.polygamma(2, 2.0 + np.sin(b))),
    "exp_neg_sq": lambda a, b, c, k: np.exp(-a * a),
    "exp_sin": lambda a, b, c, k: np.exp(np.sin(a)),
    "exp2_cos": lambda a, b, c, k: np.exp2(np.cos(a)),
    "expm1_tanh": lambda a, b, c, k: np.expm1(np.tanh(a)),
    "log1p_sq": lambda a, b, c, k: np.log1p(np.square(a)),
    "log_cosh": lambda a, b, c, k: np.log(np.cosh(a)),
    "log2_log10": lambda a, b, c, k: np.log2(2 + np.sin(a)) + np.log10(1.5 + np.cos(b)),
    "sqrt_1p": lambda a, b, c, k: np.sqrt(1 + a * a),
    "cbrt_shift": lambda a, b, c, k: np.cbrt(2 + np.sin(a)),
    "reciprocal": lambda a, b, c, k: np.reciprocal(1 + a * a),
    "arcsin_cos": lambda a, b, c, k: np.arcsin(0.8 * np.cos(a)) + np.arccos(0.7 * np.tanh(b)),
    "arctanh": lambda a, b, c, k: np.arctanh(0.9 * np.sin(a)),
    "arccosh": lambda a, b, c, k: np.arccosh(1.2 + a * a),
    "neg": lambda a, b, c, k: -a,
    "pos": lambda a, b, c, k: +a,
    "scale": lambda a, b, c, k: c * a,
    "rscale": lambda a, b, c, k: a * c,
    "add": lambda a, b, c, k: a + b,
    "radd_const": lambda a, b, c, k: c + a,
    "sub": lambda a, b, c, k: a - b,
    "rsub_const": lambda a, b, c, k: c - a,
    "mul": lambda a, b, c, k: 0.5 * a * b,
    "div": lambda a, b, c, k: a / (1.0 + b * b),
    "rdiv_const": lambda a, b, c, k: c / (2.0 + np.sin(a)),
    "div_const": lambda a, b, c, k: a / (2.0 + c),
    "pow_const": lambda a, b, c, k: (1.0 + a * a) ** c,
    "pow_int": lambda a, b, c, k: a ** 3 * 0.2 + a ** 2,
    "rpow_const": lambda a, b, c, k: (1.6 + c) ** np.sin(a),
    "pow_both": lambda a, b, c, k: (1.5 + np.sin(a)) ** np.cos(b),
    "np_power": lambda a, b, c, k: np.power(2.0 + np.tanh(b), a * 0.5),
    "square": lambda a, b, c, k: np.square(np.sin(a)) + np.square(b) * 0.1,
    "hypot": lambda a, b, c, k: np.hypot(a, 1.0 + np.exp(b)),
    "arctan2": lambda a, b, c, k: np.arctan2(a, 1.0 + np.exp(b)),
    "arctan2_swap": lambda a, b, c, k: np.arctan2(1.0 + np.exp(b), a),
    "logaddexp": lambda a, b, c, k: np.logaddexp(a, b),
    "logaddexp_const": lambda a, b, c, k: np.logaddexp(c, a),
    "axpy_vec_const": lambda a, b, c, k: k["cv"] * a + b,
    "where_const_mask": lambda a, b, c, k: np.where(_mask(k["n"], c), a, b),
    "where_const_branch": lambda a, b, c, k: np.where(_mask(k["n"], c), np.sin(a), 0.5),
    "sum": lambda a, b, c, k: np.sum(a),
    "mean": lambda a, b, c, k: np.mean(a) + b,
    "prod": lambda a, b, c, k: np.prod(np.cos(_vec(a, k["n"]))),
    "sum_method": lambda a, b, c, k: _vec(a, k["n"]).sum() * b,
    "dot_traced": lambda a, b, c, k: _vec(a, k["n"]) @ _vec(b, k["n"]) * 0.3,
    "matvec_const": lambda a, b, c, k: k["M"] @ _vec(a, k["n"]),
    "vecmat_const": lambda a, b, c, k: np.dot(_vec(a, k["n"]), k["M"]),
    "outer_sum": lambda a, b, c, k: np.outer(_vec(a, k["n"]), np.sin(_vec(b, k["n"]))).sum(
        axis=1) / k["n"],
    "outer_mean0": lambda a, b, c, k: np.outer(_vec(a, k["n"]), _vec(b, k["n"])).mean(axis=0),
    "norm": lambda a, b, c, k: np.linalg.norm(np.stack([_vec(a, k["n"]), np.ones(k["n"])])),
    "reverse": lambda a, b, c, k: _vec(a, k["n"])[::-1],
    "roll": lambda a, b, c, k: np.roll(_vec(a, k["n"]), 1),
    "perm_index": lambda a, b, c, k: _vec(a, k["n"])[k["perm"]],
    "cumsum": lambda a, b, c, k: np.cumsum(_vec(a, k["n"])) * 0.4,
    "diff_prepend": lambda a, b, c, k: np.diff(_vec(a, k["n"]), prepend=c),
    "concat_halves": lambda a, b, c, k: np.concatenate(
        [_vec(a, k["n"])[: k["n"] // 2], _vec(b, k["n"])[k["n"] // 2:]]),
    "reshape_T": lambda a, b, c, k: (np.stack([_vec(a, k["n"]), _vec(b, k["n"])]).T
                                     .reshape(-1)[::2]),
    "expand_squeeze": lambda a, b, c, k: np.squeeze(np.expand_dims(a, 0), axis=0),
    "setitem": lambda a, b, c, k: _setitem(a, b, k),
    "scalar_loop": lambda a, b, c, k: _scalar_loop(a, b, k),
    "iterate": lambda a, b, c, k: jitad.stack([e * e * 0.5 for e in _vec(a, k["n"])]),
    "broadcast_2d": lambda a, b, c, k: np.sum(_vec(a, k["n"])[:, None] * np.sin(
        _vec(b, k["n"]))[None, :], axis=0) / k["n"],
    "matmul_traced": lambda a, b, c, k: (np.stack([_vec(a, k["n"]), _vec(b, k["n"])]).T
                                         @ np.stack([np.cos(_vec(b, k["n"])),
                                                     _vec(a, k["n"])]))[0],
}

# Non-smooth operations (kinks, value-dependent branches): only for consistency checks.
KINKED = {
    "abs": lambda a, b, c, k: np.abs(a),
    "maximum": lambda a, b, c, k: np.maximum(a, b),
    "minimum": lambda a, b, c, k: np.minimum(a, c),
    "fmax": lambda a, b, c, k: np.fmax(c, a),
    "fmin": lambda a, b, c, k: np.fmin(a, b),
    "clip": lambda a, b, c, k: np.clip(a, -0.5, 0.8),
    "max_red": lambda a, b, c, k: np.max(_vec(a, k["n"])),
    "min_red": lambda a, b, c, k: np.min(_vec(a, k["n"])) * b,
    "where_value": lambda a, b, c, k: np.where(_vec(a, k["n"]) > c, a * b, np.sin(b)),
    "sign_floor": lambda a, b, c, k: a * np.sign(b) + np.floor(a) + np.ceil(b) + np.round(a),
    "python_branch": lambda a, b, c, k: _branch(a, b, k),
    "sort": lambda a, b, c, k: np.sort(_vec(a, k["n"])) * _vec(b, k["n"]),
}
ALL_OPS = {**SMOOTH, **KINKED}


def _setitem(a, b, k):
    y = (_vec(a, k["n"]) + 0.0 * _vec(b, k["n"])).copy()  # traced when a or b is
    idx = k["perm"][: max(1, k["n"] // 2)]
    y[idx] = np.sin(_vec(b, k["n"])[idx])
    y[0] = y[0] * 2.0
    return y


def _scalar_loop(a, b, k):
    av, bv = _vec(a, k["n"]), _vec(b, k["n"])
    n = k["n"]
    out = []
    acc = 0.0
    for i in range(n):
        acc = acc * 0.5 + av[i] * bv[(i + 1) % n]
        out.append(acc)
    return jitad.stack(out)


def _branch(a, b, k):
    av = _vec(a, k["n"])
    return av * b if av[0] > 0 else av - b


def run(program, x, s, out_mode, ctx):
    pool = [x, s]
    for name, i, j, c in program:
        op = ALL_OPS[name]
        pool.append(op(pool[i % len(pool)], pool[j % len(pool)], c, ctx))
    tail = pool[-3:]
    n = ctx["n"]
    if out_mode == "scalar":
        return sum(np.sum(v) * (0.5 + 0.25 * q) for q, v in enumerate(tail))
    if out_mode == "vector":
        return np.concatenate([np.ravel(_vec(v, n)) for v in tail])
    return tuple(tail)  # tuple of mixed scalars and vectors


def make_ctx(n, seed):
    r = np.random.default_rng(seed)
    return {"n": n, "M": r.normal(size=(n, n)) / n, "cv": r.normal(size=n),
            "perm": r.permutation(n)}


# ------------------------------------------------------------------ strategies
floats = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)


@st.composite
def programs(draw, ops):
    n = draw(st.integers(1, 5))
    names = sorted(ops)
    instr = st.tuples(st.sampled_from(names), st.integers(0, 50), st.integers(0, 50),
                      st.floats(-1.5, 1.5, allow_nan=False))
    prog = draw(st.lists(instr, min_size=1, max_size=7))
    x0 = np.array(draw(st.lists(floats, min_size=n, max_size=n)))
    x1 = np.array(draw(st.lists(floats, min_size=n, max_size=n)))
    s0, s1 = draw(floats), draw(floats)
    out_mode = draw(st.sampled_from(["scalar", "vector", "tuple"]))
    seed = draw(st.integers(0, 2 ** 16))
    return prog, n, (x0, s0), (x1, s1), out_mode, seed


def flat_ref(prog, out_mode, ctx, n):
    def f(z):
        with np.errstate(all="ignore"):
            out = run(prog, z[:n], z[n], out_mode, ctx)
        items = out if isinstance(out, tuple) else (out,)
        return np.concatenate([np.ravel(v) for v in items])
    return f


def record(prog, n, point, out_mode, ctx):
    x0, s0 = point
    return jitad.record(lambda x, s: run(prog, x, s, out_mode, ctx), x0, s0)


def _generic(z):
    """Moves a drawn point off the special values hypothesis favours (0, 1, equal entries),
    where some second-order terms vanish and a wrong one would go unnoticed."""
    return z + 0.05 * np.cos(1.3 * np.arange(z.size) + 0.7)


def _sane(y):
    return np.all(np.isfinite(y)) and np.max(np.abs(y), initial=0.0) < 1e4


# ------------------------------------------------------------------ properties
@SETTINGS
@given(programs(SMOOTH))
def test_smooth_programs_match_finite_differences(case):
    prog, n, p0, p1, out_mode, seed = case
    ctx = make_ctx(n, seed)
    f = flat_ref(prog, out_mode, ctx, n)
    z0, z1 = np.append(*p0), _generic(np.append(*p1))
    y0, y1 = f(z0), f(z1)
    assume(_sane(y0) and _sane(y1))
    tape = record(prog, n, p0, out_mode, ctx)
    assert tape.n_inputs == n + 1 and tape.n_outputs == y0.size
    scale = max(1.0, float(np.max(np.abs(y1), initial=0.0)))
    assert_close(tape.forward(z0), y0, rtol=1e-11, atol=1e-11 * scale)
    assert_close(tape.forward(z1), y1, rtol=1e-11, atol=1e-11 * scale)
    J = tape.jacobian(z1)
    Jfd = fd_jacobian(f, z1)
    assume(np.all(np.isfinite(Jfd)) and np.max(np.abs(Jfd), initial=0) < 1e4)
    assert_fd_close(J, Jfd, rtol=1e-6, atol=1e-6)
    m = tape.n_outputs
    w = np.cos(np.arange(m) + seed)
    if m == 1:
        g = tape.gradient(z1)
        assert_close(g, J[0], rtol=1e-13, atol=1e-13)
        H = tape.hessian(z1)
        Hfd = fd_jacobian(tape.gradient, z1)
        assert_fd_close(H, Hfd, rtol=1e-6, atol=1e-6)
    H = tape.hessian(z1, w)
    Hfd = fd_jacobian(lambda z: tape.vjp(z, w)[1], z1)
    assert_fd_close(H, Hfd, rtol=1e-6, atol=1e-6)


def _replay_point(tape, f, z0, z1):
    """Never a silently wrong replay: where a recorded branch flips at z1 every method raises
    BranchChangedError (and z0 is returned for the remaining checks); where the recorded path
    applies, the replay is the function itself (kinks and np.where re-decided)."""
    if not tape.guards_hold(z1):
        with pytest.raises(jitad.BranchChangedError):
            tape.forward(z1)
        with pytest.raises(jitad.BranchChangedError):
            tape.gradient(z1) if tape.n_outputs == 1 else tape.jacobian(z1)
        return z0
    y1 = f(z1)
    assert_close(tape.forward(z1), y1, rtol=1e-11,
                 atol=1e-11 * max(1.0, float(np.max(np.abs(y1), initial=0.0))))
    return z1


def _check_at_two_points(tape, y0, z0, z1, seed):
    """The tape reproduces y0 at its recording point z0, and its derivatives are mutually
    consistent there and at the replay point z1 (where they are finite)."""
    scale = max(1.0, float(np.max(np.abs(y0), initial=0.0)))
    assert_close(tape.forward(z0), y0, rtol=1e-11, atol=1e-11 * scale)
    with np.errstate(all="ignore"):
        for z in (z0, z1):
            assume(np.all(np.isfinite(tape.jacobian(z))))
            assume(np.all(np.isfinite(tape.hessian(z, np.ones(tape.n_outputs)))))
            _consistency(tape, z, seed)


def _consistency(tape, z, seed):
    """The derivative methods agree with each other at z. (Results are not checked for aliasing
    of work buffers here: test_tape.py::test_results_survive_later_calls does that.)"""
    tape = _Copying(tape)
    n, m = tape.n_inputs, tape.n_outputs
    r = np.random.default_rng(seed)
    u, w = r.normal(size=n), r.normal(size=m)
    U, W = r.normal(size=(n, 3)), r.normal(size=(2, m))
    J = tape.jacobian(z)
    y = tape.forward(z)
    yj, Ju = tape.jvp(z, u)
    yv, wJ = tape.vjp(z, w)
    assert_close(yj, y, rtol=0, atol=0)
    assert_close(yv, y, rtol=0, atol=0)
    sj = max(1.0, float(np.max(np.abs(J), initial=0.0)))
    assert_close(Ju, J @ u, rtol=1e-12, atol=1e-12 * sj * n)
    assert_close(wJ, w @ J, rtol=1e-12, atol=1e-12 * sj * m)
    assert_close(w @ Ju, wJ @ u, rtol=1e-11, atol=1e-11 * sj * n * m)
    _, JU = tape.jvp(z, U)
    _, WJ = tape.vjp(z, W)
    for j in range(U.shape[1]):
        assert_close(JU[:, j], tape.jvp(z, U[:, j])[1], rtol=1e-12, atol=1e-13 * sj * n)
    for j in range(W.shape[0]):
        assert_close(WJ[j], tape.vjp(z, W[j])[1], rtol=1e-12, atol=1e-13 * sj * m)
    # forward mode against reverse mode: equal up to rounding (different summation orders)
    assert_close(tape.jvp(z, np.eye(n))[1], J, rtol=1e-12, atol=1e-13 * sj)
    assert_close(tape.vjp(z, np.eye(m))[1], J, rtol=1e-12, atol=1e-13 * sj)
    H = tape.hessian(z, w)
    assert_close(H, H.T, rtol=0, atol=0)
    sh = max(1.0, float(np.max(np.abs(H), initial=0.0)))
    Hv = tape.hvp(z, u, w)
    assert_close(Hv, H @ u, rtol=1e-11, atol=1e-11 * sh * n)
    HU = tape.hvp(z, U, w)
    for j in range(U.shape[1]):
        assert_close(HU[:, j], tape.hvp(z, U[:, j], w), rtol=1e-12, atol=1e-13 * sh * n)
    assert_close(tape.hvp(z, np.eye(n), w), H, rtol=1e-11, atol=1e-11 * sh)
    # the Hessian is linear in the weights
    H2 = tape.hessian(z, 2.0 * w)
    assert_close(H2, 2.0 * H, rtol=1e-13, atol=max(1e-13 * sh, TINY))
    if m == 1:
        yg, g = tape.value_and_gradient(z)
        assert_close(g, J[0], rtol=1e-13, atol=1e-13 * sj)
        assert_close([yg], y, rtol=0, atol=0)
        assert_close(tape.hessian(z), tape.hessian(z, np.ones(1)), rtol=0, atol=0)
        assert_close(tape.hvp(z, u), tape.hvp(z, u, np.ones(1)), rtol=0, atol=0)


class _Copying:
    """Tape proxy whose methods return private copies of their results."""

    def __init__(self, tape):
        self._t = tape
        self.n_inputs, self.n_outputs = tape.n_inputs, tape.n_outputs

    def __getattr__(self, name):
        meth = getattr(self._t, name)

        def call(*a, **k):
            r = meth(*a, **k)
            return tuple(np.array(e) for e in r) if isinstance(r, tuple) else np.array(r)
        return call


@SETTINGS
@given(programs(ALL_OPS))
def test_all_programs_methods_agree(case):
    """With kinks and recorded branches too: forward at the recording point == numpy, and all
    derivative methods are mutually consistent at the recording point and elsewhere."""
    prog, n, p0, p1, out_mode, seed = case
    ctx = make_ctx(n, seed)
    f = flat_ref(prog, out_mode, ctx, n)
    z0, z1 = np.append(*p0), np.append(*p1)
    y0 = f(z0)
    assume(_sane(y0) and _sane(f(z1)))
    tape = record(prog, n, p0, out_mode, ctx)
    _check_at_two_points(tape, y0, z0, _replay_point(tape, f, z0, z1), seed)


@SETTINGS
@given(programs(SMOOTH))
def test_smooth_programs_consistency_at_new_points(case):
    prog, n, p0, p1, out_mode, seed = case
    ctx = make_ctx(n, seed)
    f = flat_ref(prog, out_mode, ctx, n)
    z0, z1 = np.append(*p0), np.append(*p1)
    assume(_sane(f(z0)) and _sane(f(z1)))
    tape = record(prog, n, p0, out_mode, ctx)
    _consistency(tape, z1, seed + 1)


# ------------------------------------------------------------------ matrix programs
# Every op maps pool matrices (r, c) to an (r, c) matrix, through axis reductions, products,
# scans and restructuring. (X, Y, c, ctx) -> value.
MAT_SMOOTH = {
    "sin": lambda X, Y, c, k: np.sin(X),
    "tanh": lambda X, Y, c, k: np.tanh(X) * c,
    "gauss": lambda X, Y, c, k: np.exp(-X * X),
    "sqrt1p": lambda X, Y, c, k: np.sqrt(1.0 + X * X),
    "mul": lambda X, Y, c, k: 0.5 * X * Y,
    "div": lambda X, Y, c, k: X / (1.0 + Y * Y),
    "add_sub": lambda X, Y, c, k: X + c * Y - 0.5,
    "logaddexp": lambda X, Y, c, k: np.logaddexp(X, Y),
    "center_rows": lambda X, Y, c, k: X - X.mean(axis=1, keepdims=True),
    "scale_cols": lambda X, Y, c, k: X * np.sum(np.sin(Y), axis=0),
    "row_prod": lambda X, Y, c, k: X * np.prod(np.cos(Y), axis=1, keepdims=True),
    "gram_left": lambda X, Y, c, k: (X @ Y.T) @ X / k["c"],
    "gram_right": lambda X, Y, c, k: X @ (Y.T @ X) / k["r"],
    "matmul_const": lambda X, Y, c, k: k["L"] @ X @ k["R"],
    "dot_const": lambda X, Y, c, k: np.dot(X, k["R"]) + np.dot(k["L"], Y),
    "cumsum0": lambda X, Y, c, k: np.cumsum(X, axis=0) * 0.5,
    "cumsum1": lambda X, Y, c, k: X.cumsum(axis=1) * 0.5,
    "diff1": lambda X, Y, c, k: np.diff(X, axis=1, prepend=c),
    "diff0": lambda X, Y, c, k: np.diff(np.vstack([X, Y[-1:]]), axis=0),
    "flip_roll": lambda X, Y, c, k: np.roll(np.flip(X, axis=0), 1, axis=1),
    "ravel_reshape": lambda X, Y, c, k: X.ravel()[::-1].reshape(k["r"], k["c"]),
    "transpose_pair": lambda X, Y, c, k: (X.T * Y.T).T,
    "total": lambda X, Y, c, k: X * np.sum(Y) / (k["r"] * k["c"]),
    "trace": lambda X, Y, c, k: X + np.trace(X @ Y.T) * 0.1,
    "iterate_rows": lambda X, Y, c, k: np.stack([row * (i + 0.5) for i, row in enumerate(X)]),
    "vstack_split": lambda X, Y, c, k: np.vstack([X[: k["r"] // 2], Y[k["r"] // 2:]]),
    "hstack_split": lambda X, Y, c, k: np.hstack([X[:, : k["c"] // 2], Y[:, k["c"] // 2:]]),
    "concat_T": lambda X, Y, c, k: np.concatenate([X.T, Y.T], axis=0)[: k["c"]].T,
    "row_norm": lambda X, Y, c, k: X / np.linalg.norm(
        np.concatenate([Y, np.ones((k["r"], 1))], axis=1), axis=1, keepdims=True),
    "where_mask": lambda X, Y, c, k: np.where(k["mask"], X, Y * c),
    "setitem_col": lambda X, Y, c, k: _set_col(X, Y),
    "outer_rows": lambda X, Y, c, k: np.outer(X[:, 0], Y[0]) * 0.5 + X,
    "expand_sum": lambda X, Y, c, k: np.sum(np.expand_dims(X, 0) * np.expand_dims(Y, 1),
                                            axis=1) / k["r"],
    "inner": lambda X, Y, c, k: np.inner(X, Y) @ X / k["c"],
}
MAT_KINKED = {
    "max0": lambda X, Y, c, k: X + np.max(Y, axis=0),
    "min1": lambda X, Y, c, k: X * np.min(Y, axis=1, keepdims=True),
    "abs_clip": lambda X, Y, c, k: np.abs(X) + np.clip(Y, -0.3, 0.6),
    "maximum": lambda X, Y, c, k: np.maximum(X, Y),
    "masked_index": lambda X, Y, c, k: _masked(X, Y),
}
MAT_ALL = {**MAT_SMOOTH, **MAT_KINKED}


def _set_col(X, Y):
    Z = (X + 0.0 * Y).copy()
    Z[:, 0] = np.tanh(Y[:, -1])
    return Z


def _masked(X, Y):
    Z = (X + 0.0 * Y).copy()
    m = Y > 0.1
    Z[m] = X[m] * Y[m]
    return Z


def run_mat(program, X, out_mode, ctx):
    pool = [X]
    for name, i, j, c in program:
        pool.append(MAT_ALL[name](pool[i % len(pool)], pool[j % len(pool)], c, ctx))
    if out_mode == "scalar":
        return np.sum(pool[-1] * ctx["Wout"]) + np.sum(pool[-2] ** 2) * 0.1
    return pool[-1] if out_mode == "vector" else (pool[-1], np.sum(pool[-2], axis=0))


@st.composite
def mat_programs(draw, ops):
    r, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    instr = st.tuples(st.sampled_from(sorted(ops)), st.integers(0, 50), st.integers(0, 50),
                      st.floats(-1.5, 1.5, allow_nan=False))
    prog = draw(st.lists(instr, min_size=1, max_size=6))
    X0 = np.array(draw(st.lists(floats, min_size=r * c, max_size=r * c))).reshape(r, c)
    X1 = np.array(draw(st.lists(floats, min_size=r * c, max_size=r * c))).reshape(r, c)
    out_mode = draw(st.sampled_from(["scalar", "vector", "tuple"]))
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    ctx = {"r": r, "c": c, "L": rng.normal(size=(r, r)) / r, "R": rng.normal(size=(c, c)) / c,
           "mask": rng.random((r, c)) < 0.5, "Wout": rng.normal(size=(r, c))}
    return prog, ctx, X0, X1, out_mode, seed


def _mat_ref(prog, ctx, out_mode):
    def f(z):
        with np.errstate(all="ignore"):
            out = run_mat(prog, z.reshape(ctx["r"], ctx["c"]), out_mode, ctx)
        items = out if isinstance(out, tuple) else (out,)
        return np.concatenate([np.ravel(v) for v in items])
    return f


@SETTINGS
@given(mat_programs(MAT_SMOOTH))
def test_matrix_programs_match_finite_differences(case):
    prog, ctx, X0, X1, out_mode, seed = case
    f = _mat_ref(prog, ctx, out_mode)
    z0, z1 = X0.ravel(), _generic(X1.ravel())
    y0, y1 = f(z0), f(z1)
    assume(_sane(y0) and _sane(y1))
    tape = jitad.record(lambda X: run_mat(prog, X, out_mode, ctx), X0)
    assert tape.input_shapes == [X0.shape]
    scale = max(1.0, float(np.max(np.abs(y1), initial=0.0)))
    assert_close(tape.forward(z0), y0, rtol=1e-11, atol=1e-11 * scale)
    assert_close(tape.forward(z1), y1, rtol=1e-11, atol=1e-11 * scale)
    Jfd = fd_jacobian(f, z1)
    assume(np.all(np.isfinite(Jfd)) and np.max(np.abs(Jfd), initial=0) < 1e4)
    # only where the stencil has converged: a chain of products and sines (sin(x^4)) can have
    # higher derivatives large enough that h = 1e-3 is off by 1e-4 relative
    assume(np.allclose(Jfd, fd_jacobian(f, z1, h=2.5e-4), rtol=1e-8, atol=1e-8))
    assert_fd_close(tape.jacobian(z1), Jfd, rtol=1e-6, atol=1e-6)
    w = np.sin(np.arange(tape.n_outputs) + seed)
    H = tape.hessian(z1, w)
    Hfd = fd_jacobian(lambda z: tape.vjp(z, w)[1], z1)
    assume(np.allclose(Hfd, fd_jacobian(lambda z: tape.vjp(z, w)[1], z1, h=2.5e-4), rtol=1e-8,
                       atol=1e-8))
    assert_fd_close(H, Hfd, rtol=1e-6, atol=1e-6)
    _consistency(tape, z1, seed)


@SETTINGS
@given(mat_programs(MAT_ALL))
def test_matrix_programs_methods_agree(case):
    prog, ctx, X0, X1, out_mode, seed = case
    f = _mat_ref(prog, ctx, out_mode)
    z0, z1 = X0.ravel(), X1.ravel()
    y0 = f(z0)
    assume(_sane(y0) and _sane(f(z1)))
    tape = jitad.record(lambda X: run_mat(prog, X, out_mode, ctx), X0)
    _check_at_two_points(tape, y0, z0, _replay_point(tape, f, z0, z1), seed)


@SETTINGS
@given(st.integers(1, 12), st.lists(st.floats(-3, 3, allow_nan=False), min_size=12, max_size=12),
       st.integers(0, 2 ** 16))
def test_quadratic_forms_exact(n, xs, seed):
    """f = 0.5 x'Ax + b'x + sum(c * x**2): the Hessian is A_sym + 2 diag(c) exactly, everywhere."""
    r = np.random.default_rng(seed)
    A = r.normal(size=(n, n))
    b = r.normal(size=n)
    c = r.normal(size=n)
    f = lambda x: 0.5 * x @ (A @ x) + b @ x + np.sum(c * x ** 2)
    x = np.array(xs[:n])
    tape = jitad.record(f, r.normal(size=n))
    As = 0.5 * (A + A.T)
    assert_close(tape.gradient(x), As @ x + b + 2 * c * x, rtol=1e-12, atol=1e-12)
    assert_close(tape.hessian(x), As + np.diag(2 * c), rtol=1e-13, atol=1e-13)
    V = r.normal(size=(n, 4))
    assert_close(tape.hvp(x, V), (As + np.diag(2 * c)) @ V, rtol=1e-12, atol=1e-12)
