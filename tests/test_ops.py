"""Every supported operation: values, gradients and Hessians of recorded tapes against analytic
formulas (written out independently here) and against 6th-order finite differences of the plain
numpy code, at several points inside the domain. Tapes are recorded at one point and replayed
at the others. Binary operations are tested with both operands traced and with a constant (numpy
array, Python float, numpy scalar) on either side, on the array path and on the scalar path
(Python scalars traced one by one).
"""
import math
import operator

import numpy as np
import pytest
import scipy.special as sps

import jitad
from fdcheck import assert_close, assert_fd_close, fd_gradient, fd_hessian, fd_jacobian

LN2, LN10 = math.log(2.0), math.log(10.0)
SQPI = math.sqrt(math.pi)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def expit(x):
    return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------ unary table
# name, function as written in user code, f', f'', points (first = recording point set)
U = [
    ("sin", np.sin, np.cos, lambda x: -np.sin(x), [-2.5, -0.4, 0.3, 1.2, 3.0]),
    ("cos", np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x), [-2.5, -0.4, 0.3, 1.2, 3.0]),
    ("tan", np.tan, lambda x: 1 / np.cos(x) ** 2, lambda x: 2 * np.sin(x) / np.cos(x) ** 3,
     [-1.2, -0.5, 0.1, 0.7, 1.3]),
    ("arcsin", np.arcsin, lambda x: 1 / np.sqrt(1 - x * x), lambda x: x / (1 - x * x) ** 1.5,
     [-0.85, -0.3, 0.05, 0.5, 0.9]),
    ("arccos", np.arccos, lambda x: -1 / np.sqrt(1 - x * x), lambda x: -x / (1 - x * x) ** 1.5,
     [-0.85, -0.3, 0.05, 0.5, 0.9]),
    ("arctan", np.arctan, lambda x: 1 / (1 + x * x), lambda x: -2 * x / (1 + x * x) ** 2,
     [-3.0, -0.7, 0.0, 0.4, 2.2]),
    ("sinh", np.sinh, np.cosh, np.sinh, [-2.0, -0.6, 0.0, 0.8, 2.5]),
    ("cosh", np.cosh, np.sinh, np.cosh, [-2.0, -0.6, 0.0, 0.8, 2.5]),
    ("tanh", np.tanh, lambda x: 1 / np.cosh(x) ** 2, lambda x: -2 * np.sinh(x) / np.cosh(x) ** 3,
     [-2.0, -0.6, 0.0, 0.8, 2.5]),
    ("arcsinh", np.arcsinh, lambda x: 1 / np.sqrt(x * x + 1), lambda x: -x / (x * x + 1) ** 1.5,
     [-3.0, -0.6, 0.0, 0.8, 2.5]),
    ("arccosh", np.arccosh, lambda x: 1 / np.sqrt(x * x - 1), lambda x: -x / (x * x - 1) ** 1.5,
     [1.1, 1.5, 2.0, 3.3, 6.0]),
    ("arctanh", np.arctanh, lambda x: 1 / (1 - x * x), lambda x: 2 * x / (1 - x * x) ** 2,
     [-0.85, -0.3, 0.0, 0.5, 0.9]),
    ("exp", np.exp, np.exp, np.exp, [-3.0, -0.5, 0.0, 1.1, 2.7]),
    ("exp2", np.exp2, lambda x: LN2 * 2.0 ** x, lambda x: LN2 ** 2 * 2.0 ** x,
     [-3.0, -0.5, 0.0, 1.1, 3.7]),
    ("expm1", np.expm1, np.exp, np.exp, [-3.0, -0.5, 1e-3, 1.1, 2.7]),
    ("log", np.log, lambda x: 1 / x, lambda x: -1 / x ** 2, [0.2, 0.7, 1.0, 2.5, 9.0]),
    ("log2", np.log2, lambda x: 1 / (x * LN2), lambda x: -1 / (x * x * LN2),
     [0.2, 0.7, 1.0, 2.5, 9.0]),
    ("log10", np.log10, lambda x: 1 / (x * LN10), lambda x: -1 / (x * x * LN10),
     [0.2, 0.7, 1.0, 2.5, 9.0]),
    ("log1p", np.log1p, lambda x: 1 / (1 + x), lambda x: -1 / (1 + x) ** 2,
     [-0.8, -0.2, 0.0, 1.5, 7.0]),
    ("sqrt", np.sqrt, lambda x: 0.5 * x ** -0.5, lambda x: -0.25 * x ** -1.5,
     [0.2, 0.7, 1.0, 2.5, 9.0]),
    ("cbrt", np.cbrt, lambda x: 1 / (3 * np.cbrt(x) ** 2), lambda x: -2 / (9 * np.cbrt(x) ** 5),
     [-2.5, -0.7, 0.4, 1.3, 3.0]),
    ("square", np.square, lambda x: 2 * x, lambda x: 2 + 0 * x, [-2.5, -0.7, 0.0, 1.3, 3.0]),
    ("reciprocal", np.reciprocal, lambda x: -1 / x ** 2, lambda x: 2 / x ** 3,
     [-2.5, -0.7, 0.4, 1.3, 3.0]),
    ("absolute", np.absolute, np.sign, lambda x: 0 * x, [-2.5, -0.7, 0.4, 1.3, 3.0]),
    ("abs", np.abs, np.sign, lambda x: 0 * x, [-2.5, -0.7, 0.4, 1.3, 3.0]),
    ("builtin abs", abs, np.sign, lambda x: 0 * x, [-2.5, -0.7, 0.4, 1.3, 3.0]),
    ("negative", np.negative, lambda x: -1 + 0 * x, lambda x: 0 * x, [-2.5, -0.7, 0.0, 1.3, 3.0]),
    ("unary -", operator.neg, lambda x: -1 + 0 * x, lambda x: 0 * x, [-2.5, -0.7, 0.0, 1.3, 3.0]),
    ("positive", np.positive, lambda x: 1 + 0 * x, lambda x: 0 * x, [-2.5, -0.7, 0.0, 1.3, 3.0]),
    ("unary +", operator.pos, lambda x: 1 + 0 * x, lambda x: 0 * x, [-2.5, -0.7, 0.0, 1.3, 3.0]),
    ("sign", np.sign, lambda x: 0 * x, lambda x: 0 * x, [-2.5, -0.7, 0.4, 1.3, 3.0]),
    ("floor", np.floor, lambda x: 0 * x, lambda x: 0 * x, [-2.5, -0.7, 0.4, 1.3, 3.2]),
    ("ceil", np.ceil, lambda x: 0 * x, lambda x: 0 * x, [-2.5, -0.7, 0.4, 1.3, 3.2]),
    ("round", np.round, lambda x: 0 * x, lambda x: 0 * x, [-2.3, -0.7, 0.4, 1.3, 2.8]),
    ("around", np.around, lambda x: 0 * x, lambda x: 0 * x, [-2.3, -0.7, 0.4, 1.3, 2.8]),
    ("rint", np.rint, lambda x: 0 * x, lambda x: 0 * x, [-2.3, -0.7, 0.4, 1.3, 2.8]),
    ("erf", sps.erf, lambda x: 2 / SQPI * np.exp(-x * x),
     lambda x: -4 * x / SQPI * np.exp(-x * x), [-2.0, -0.6, 0.0, 0.8, 2.5]),
    ("expit", sps.expit, lambda x: expit(x) * expit(-x),
     lambda x: expit(x) * expit(-x) * (1 - 2 * expit(x)), [-8.0, -0.6, 0.0, 0.8, 5.0]),
    ("gammaln", sps.gammaln, sps.psi, lambda x: sps.polygamma(1, x),
     [0.3, 1.0, 2.5, 7.5, 40.0]),
    ("gammaln<0", sps.gammaln, sps.psi, lambda x: sps.polygamma(1, x),
     [-2.3, -1.6, -0.5, -0.2, 0.05]),
    ("digamma", sps.digamma, lambda x: sps.polygamma(1, x), lambda x: sps.polygamma(2, x),
     [-2.3, -0.5, 0.3, 2.5, 12.0]),
    ("polygamma2", lambda x: jitad.polygamma(2, x), lambda x: sps.polygamma(3, x),
     lambda x: sps.polygamma(4, x), [-1.6, -0.3, 0.6, 3.0, 25.0]),
]
U_IDS = [u[0] for u in U]

# (gradient rtol, Hessian rtol) against the analytic formulas, where an op needs its own.
TOL = {}


def _tol(name):
    return TOL.get(name, (1e-11, 1e-9))

# Replay points: a second set inside each domain, different from the recording points.
def _replay_points(pts):
    p = np.asarray(pts, dtype=np.float64)
    lo, hi = p.min(), p.max()
    q = p[::-1] * 0.9 + 0.1 * np.linspace(lo, hi, p.size)
    return q


@pytest.mark.parametrize("name,f,d1,d2,pts", U, ids=U_IDS)
def test_unary_array_path(name, f, d1, d2, pts):
    """f applied to a traced vector, summed: gradient diag, Hessian diagonal; replay."""
    x0 = np.array(pts)
    tape = jitad.record(lambda x: np.sum(f(x)), x0)
    assert tape.n_inputs == x0.size and tape.n_outputs == 1
    for x in (x0, _replay_points(pts), x0[::-1].copy()):
        assert_close(tape.forward(x), [np.sum(f(x))], rtol=1e-13, atol=1e-13)
        g = tape.gradient(x)
        H = tape.hessian(x)
        rg, rh = _tol(name)
        assert_close(g, d1(x), rtol=rg, atol=1e-12, err_msg=f"{name} gradient at {x}")
        assert_close(H, np.diag(d2(x)), rtol=rh, atol=1e-10, err_msg=f"{name} Hessian at {x}")
        v = np.linspace(-1.0, 1.0, x.size)
        assert_close(tape.hvp(x, v), d2(x) * v, rtol=rh, atol=1e-10)
        assert_fd_close(g, fd_gradient(lambda z: np.sum(f(z)), x), rtol=1e-8, atol=1e-9)
        assert_fd_close(H, fd_hessian(lambda z: np.sum(f(z)), x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,f,d1,d2,pts", U, ids=U_IDS)
def test_unary_elementwise_vector_output(name, f, d1, d2, pts):
    """Vector output f(x): Jacobian diag(f'), weighted Hessian diag(w f''), JVP/VJP."""
    x0 = np.array(pts)
    tape = jitad.record(f, x0)
    assert tape.n_outputs == x0.size
    x = _replay_points(pts)
    w = np.linspace(-1.0, 2.0, x.size)
    assert_close(tape.forward(x), f(x), rtol=1e-13, atol=1e-13)
    rg, rh = _tol(name)
    assert_close(tape.jacobian(x), np.diag(d1(x)), rtol=rg, atol=1e-12)
    assert_close(tape.hessian(x, w), np.diag(w * d2(x)), rtol=rh, atol=1e-10)
    y, Jv = tape.jvp(x, w)
    assert_close(Jv, d1(x) * w, rtol=rg, atol=1e-12)
    y, wJ = tape.vjp(x, w)
    assert_close(wJ, d1(x) * w, rtol=rg, atol=1e-12)
    assert_fd_close(tape.jacobian(x), fd_jacobian(f, x), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("name,f,d1,d2,pts", U, ids=U_IDS)
def test_unary_scalar_path(name, f, d1, d2, pts):
    """f on a traced Python scalar (the per-op scalar path), replayed at every point."""
    tape = jitad.record(f, float(pts[1]))
    assert tape.n_inputs == 1 and tape.n_outputs == 1
    for p in pts:
        x = np.array([p])
        assert_close(tape.forward(x), f(x), rtol=1e-13, atol=1e-13)
        rg, rh = _tol(name)
        assert_close(tape.gradient(x), d1(x), rtol=rg, atol=1e-12, err_msg=f"{name} at {p}")
        assert_close(tape.hessian(x), d2(x).reshape(1, 1), rtol=rh, atol=1e-10,
                     err_msg=f"{name} at {p}")
        assert_fd_close(tape.hessian(x), fd_hessian(lambda z: f(z[0]), x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,f,d1,d2,pts", U, ids=U_IDS)
def test_unary_in_composition(name, f, d1, d2, pts):
    """Chain rule through the op: sum(c * f(a * x + b)) with a traced affine inner function."""
    x0 = np.array(pts)
    a = 0.9
    b = 0.05 * np.sign(x0) * (np.abs(x0) > 0.2)  # small shift, stays inside the domain
    c = np.linspace(0.5, 1.5, x0.size)

    def fun(x):
        return np.sum(c * f(a * x + b))

    tape = jitad.record(fun, x0)
    x = _replay_points(pts)
    u = a * x + b
    rg, rh = _tol(name)
    assert_close(tape.gradient(x), c * a * d1(u), rtol=rg, atol=1e-12)
    assert_close(tape.hessian(x), np.diag(c * a * a * d2(u)), rtol=rh, atol=1e-10)


def test_gammaln_derivatives_full_accuracy():
    """d/dx gammaln = digamma, d2 = trigamma, to near machine precision."""
    x = np.array([0.05, 0.3, 1.0, 2.5, 5.9, 6.0, 7.5, 12.0, 40.0, -0.5, -1.6, -2.3])
    tape = jitad.record(lambda z: np.sum(sps.gammaln(z)), x)
    assert_close(tape.gradient(x), sps.psi(x), rtol=1e-13, atol=0)
    assert_close(np.diag(tape.hessian(x)), sps.polygamma(1, x), rtol=1e-13, atol=0)


def test_zero_derivative_ops_replay_values():
    """sign/floor/ceil/round evaluate the new point on replay (not the recorded constant)."""
    x0 = np.array([0.3, -1.7, 2.5, 4.5, -0.5])
    for f in (np.sign, np.floor, np.ceil, np.round, np.rint):
        tape = jitad.record(lambda x: f(x) * x, x0)
        x1 = np.array([-0.3, 1.2, -2.5, 5.5, 0.0])
        assert_close(tape.forward(x1), f(x1) * x1, rtol=0, atol=0)
        assert_close(tape.jacobian(x1), np.diag(f(x1)), rtol=0, atol=0)
    tape = jitad.record(lambda x: round(x) + x, 1.2)
    assert_close(tape.forward(np.array([2.6])), [5.6], rtol=1e-15, atol=0)
    assert_close(tape.gradient(np.array([2.6])), [1.0], rtol=0, atol=0)


def test_abs_sqrt_conventions_at_zero():
    """|x|' = 0 at 0 (documented convention); sqrt'(0) = inf propagates without crashing."""
    tape = jitad.record(lambda x: np.sum(np.abs(x)), np.array([0.0, 1.0]))
    assert_close(tape.gradient(np.array([0.0, -2.0])), [0.0, -1.0], rtol=0, atol=0)
    tape = jitad.record(lambda x: np.sqrt(x), 1.0)
    with np.errstate(all="ignore"):
        g = tape.gradient(np.array([0.0]))
    assert g[0] == np.inf


# ------------------------------------------------------------------ binary table
def _power_partials(a, b):
    la = np.log(a)
    v = a ** b
    return b * a ** (b - 1), v * la, b * (b - 1) * a ** (b - 2), a ** (b - 1) * (1 + b * la), \
        v * la * la


def _atan2_partials(a, b):
    r2 = a * a + b * b
    return b / r2, -a / r2, -2 * a * b / r2 ** 2, (a * a - b * b) / r2 ** 2, 2 * a * b / r2 ** 2


def _hypot_partials(a, b):
    r = np.sqrt(a * a + b * b)
    return a / r, b / r, b * b / r ** 3, -a * b / r ** 3, a * a / r ** 3


def _lae_partials(a, b):
    s = expit(a - b)  # e^a / (e^a + e^b)
    q = s * (1 - s)
    return s, 1 - s, q, -q, q


def _max_partials(a, b):
    z = 0 * a
    return (a > b) + z, (b > a) + z, z, z, z


def _min_partials(a, b):
    z = 0 * a
    return (a < b) + z, (b < a) + z, z, z, z


def _zero(a, b):
    return 0 * a


A_PTS = np.array([0.4, 1.3, 2.2, 0.7, 3.1])
B_PTS = np.array([1.9, -0.6, 0.5, 2.4, -1.5])
POS_B = np.array([1.9, 0.6, 0.5, 2.4, 1.5])
# name, f(a, b), partials (da, db, daa, dab, dbb), a points, b points
B = [
    ("add", np.add, lambda a, b: (1 + 0 * a, 1 + 0 * a, _zero(a, b), _zero(a, b), _zero(a, b)),
     A_PTS, B_PTS),
    ("+", operator.add, lambda a, b: (1 + 0 * a, 1 + 0 * a, _zero(a, b), _zero(a, b),
                                      _zero(a, b)), A_PTS, B_PTS),
    ("subtract", np.subtract, lambda a, b: (1 + 0 * a, -1 + 0 * a, _zero(a, b), _zero(a, b),
                                            _zero(a, b)), A_PTS, B_PTS),
    ("-", operator.sub, lambda a, b: (1 + 0 * a, -1 + 0 * a, _zero(a, b), _zero(a, b),
                                      _zero(a, b)), A_PTS, B_PTS),
    ("multiply", np.multiply, lambda a, b: (b, a, _zero(a, b), 1 + 0 * a, _zero(a, b)),
     A_PTS, B_PTS),
    ("*", operator.mul, lambda a, b: (b, a, _zero(a, b), 1 + 0 * a, _zero(a, b)), A_PTS, B_PTS),
    ("divide", np.divide, lambda a, b: (1 / b, -a / b ** 2, _zero(a, b), -1 / b ** 2,
                                        2 * a / b ** 3), A_PTS, B_PTS),
    ("/", operator.truediv, lambda a, b: (1 / b, -a / b ** 2, _zero(a, b), -1 / b ** 2,
                                          2 * a / b ** 3), A_PTS, B_PTS),
    ("power", np.power, _power_partials, A_PTS, B_PTS),
    ("**", operator.pow, _power_partials, A_PTS, B_PTS),
    ("arctan2", np.arctan2, _atan2_partials, B_PTS, A_PTS - 1.5),
    ("hypot", np.hypot, _hypot_partials, A_PTS - 1.0, B_PTS),
    ("maximum", np.maximum, _max_partials, A_PTS, B_PTS),
    ("minimum", np.minimum, _min_partials, A_PTS, B_PTS),
    ("fmax", np.fmax, _max_partials, A_PTS, B_PTS),
    ("fmin", np.fmin, _min_partials, A_PTS, B_PTS),
    ("logaddexp", np.logaddexp, _lae_partials, A_PTS, B_PTS),
]
B_IDS = [b[0] for b in B]


def _replay_ab(a, b):
    """A second pair of points for replay, same domain (signs kept), reordered."""
    return a[::-1] * 1.1 + 0.05, b[::-1] * 0.9 - 0.05 * np.sign(b[::-1])


def _check_vv(name, f, partials, a, b, tape):
    n = a.size
    da, db, daa, dab, dbb = partials(a, b)
    x = np.concatenate([a, b])
    assert_close(tape.forward(x), [np.sum(f(a, b))], rtol=1e-13, atol=1e-13)
    assert_close(tape.gradient(x), np.concatenate([da, db]), rtol=1e-11, atol=1e-12,
                 err_msg=name)
    H = np.block([[np.diag(daa), np.diag(dab)], [np.diag(dab), np.diag(dbb)]])
    assert_close(tape.hessian(x), H, rtol=1e-9, atol=1e-10, err_msg=name)
    v = np.cos(np.arange(x.size))
    assert_close(tape.hvp(x, v), H @ v, rtol=1e-9, atol=1e-10, err_msg=name)

    def ref(z):
        return np.sum(f(z[:n], z[n:]))
    assert_fd_close(tape.gradient(x), fd_gradient(ref, x), rtol=1e-8, atol=1e-9)
    assert_fd_close(tape.hessian(x), fd_hessian(ref, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,f,partials,a,b", B, ids=B_IDS)
def test_binary_both_traced(name, f, partials, a, b):
    tape = jitad.record(lambda p, q: np.sum(f(p, q)), a, b)
    assert tape.n_inputs == 2 * a.size
    _check_vv(name, f, partials, a, b, tape)
    _check_vv(name, f, partials, *_replay_ab(a, b), tape)


@pytest.mark.parametrize("name,f,partials,a,b", B, ids=B_IDS)
def test_binary_both_traced_scalar_path(name, f, partials, a, b):
    """Two traced Python scalars; recorded at one pair, replayed at all the others."""
    tape = jitad.record(f, float(a[0]), float(b[0]))
    assert len(tape) == 1
    for i in range(a.size):
        _check_vv(name, lambda p, q: f(p[0], q[0]), partials, a[i:i + 1], b[i:i + 1], tape)


def _const_forms(c):
    """The ways user code writes a constant operand: numpy array, Python float, numpy scalar."""
    return [np.asarray(c, dtype=np.float64), float(c), np.float64(c), np.array(float(c))]


def _check_constant_operand(name, f, partials, x, const, replay, js, left):
    """f with one traced operand x and the other a constant (left: f(const, x)): the constant
    stays out of the tape (no CONST slots); values and first and second derivatives against the
    analytic partials, at x and at the replay point, for a vector constant and for the scalar
    constants const[j], j in js, in every form, on the array path and on the scalar path."""
    g = (lambda t, c: f(c, t)) if left else (lambda t, c: f(t, c))

    def d(t, c):  # first and second partial with respect to the traced operand
        da, db, daa, _, dbb = partials(c, t) if left else partials(t, c)
        return (db, dbb) if left else (da, daa)
    tape = jitad.record(lambda p: np.sum(g(p, const)), x)
    assert tape.op_counts().get("const", 0) == 0
    for xx in (x, replay):
        d1, d2 = d(xx, const)
        assert_close(tape.forward(xx), [np.sum(g(xx, const))], rtol=1e-13, atol=1e-13)
        assert_close(tape.gradient(xx), d1, rtol=1e-11, atol=1e-12, err_msg=name)
        assert_close(tape.hessian(xx), np.diag(d2), rtol=1e-9, atol=1e-10, err_msg=name)
        assert_fd_close(tape.hessian(xx), fd_hessian(lambda z: np.sum(g(z, const)), xx),
                        rtol=1e-5, atol=1e-6)
    for j in js:
        for c in _const_forms(const[j]):
            cc = np.full(x.size, float(const[j]))
            d1, d2 = d(x, cc)
            tape = jitad.record(lambda p: np.sum(g(p, c)), x)
            assert tape.op_counts().get("const", 0) == 0
            assert_close(tape.gradient(x), d1, rtol=1e-11, atol=1e-12, err_msg=f"{name} {c!r}")
            assert_close(tape.hessian(x), np.diag(d2), rtol=1e-9, atol=1e-10)
            tape = jitad.record(lambda p: g(p, c), float(x[0]))
            assert len(tape) == 1
            for i in range(x.size):
                xi = x[i:i + 1]
                assert_close(tape.forward(xi), g(xi, cc[:1]), rtol=1e-13, atol=1e-13)
                assert_close(tape.gradient(xi), d1[i:i + 1], rtol=1e-11, atol=1e-12,
                             err_msg=f"{name} {c!r} at {xi}")
                assert_close(tape.hessian(xi), d2[i:i + 1, None], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name,f,partials,a,b", B, ids=B_IDS)
def test_binary_constant_right(name, f, partials, a, b):
    """f(traced, constant)."""
    _check_constant_operand(name, f, partials, a, b, _replay_ab(a, b)[0], (0, 2), left=False)


@pytest.mark.parametrize("name,f,partials,a,b", B, ids=B_IDS)
def test_binary_constant_left(name, f, partials, a, b):
    """f(constant, traced)."""
    if name in ("power", "**"):
        a = np.abs(a) + 0.1  # constant base must be positive for a real derivative
    _check_constant_operand(name, f, partials, b, a, _replay_ab(a, b)[1], (0, 3), left=True)


@pytest.mark.parametrize("name,f,partials,a,b", B, ids=B_IDS)
def test_binary_broadcast_scalar_and_vector(name, f, partials, a, b):
    """Traced scalar against a traced vector: the scalar's derivative sums over the vector."""
    s = float(b[1])
    tape = jitad.record(lambda p, q: np.sum(f(p, q)), a, s)
    da, db, daa, dab, dbb = partials(a, np.full(a.size, s))
    x = np.concatenate([a, [s]])
    assert_close(tape.gradient(x), np.concatenate([da, [db.sum()]]), rtol=1e-11, atol=1e-12)
    H = np.zeros((a.size + 1, a.size + 1))
    H[:-1, :-1] = np.diag(daa)
    H[:-1, -1] = H[-1, :-1] = dab
    H[-1, -1] = dbb.sum()
    assert_close(tape.hessian(x), H, rtol=1e-9, atol=1e-10)
    # and the other way round, with a 2-D broadcast
    A2 = np.stack([a, a[::-1]])
    tape = jitad.record(lambda q, p: np.sum(f(p, q)), s, A2)
    x = np.concatenate([[s], A2.ravel()])
    ref = lambda z: np.sum(f(z[1:].reshape(A2.shape), z[0]))
    assert_fd_close(tape.gradient(x), fd_gradient(ref, x), rtol=1e-8, atol=1e-9)
    assert_fd_close(tape.hessian(x), fd_hessian(ref, x), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ power special cases
@pytest.mark.parametrize("p", [2, 3, 2.0, 3.0, 4, -1, -2.0, 5])
def test_integer_power_of_negative_base(p):
    """x**p for integer-valued exponents is smooth on the whole real line."""
    x0 = np.array([-2.0, -0.7, 0.5, 1.5])
    tape = jitad.record(lambda x: np.sum(x ** p), x0)
    x = np.array([-1.3, -0.4, 0.9, 2.1])
    assert_close(tape.forward(x), [np.sum(x ** p)], rtol=1e-13, atol=1e-13)
    assert_close(tape.gradient(x), p * x ** (p - 1), rtol=1e-12, atol=1e-12)
    assert_close(tape.hessian(x), np.diag(p * (p - 1) * x ** (p - 2.0)), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("p", [0.5, 1.5, -0.5, 2.5, 1.0 / 3.0])
def test_fractional_power(p):
    x0 = np.array([0.3, 1.1, 2.0, 4.5])
    tape = jitad.record(lambda x: np.sum(np.power(x, p)), x0)
    x = x0[::-1] + 0.2
    assert_close(tape.gradient(x), p * x ** (p - 1), rtol=1e-12, atol=1e-12)
    assert_close(tape.hessian(x), np.diag(p * (p - 1) * x ** (p - 2)), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("p,d1,d2", [(1, 1.0, 0.0), (2, 0.0, 2.0), (3, 0.0, 0.0), (1.0, 1.0, 0.0),
                                     (0, 0.0, 0.0), (2.0, 0.0, 2.0), (4, 0.0, 0.0)])
def test_integer_power_at_zero(p, d1, d2):
    """x**k at x = 0 for integer k >= 0: finite derivatives (x**1 is x, x**0 is 1)."""
    tape = jitad.record(lambda x: x ** p, 0.5)
    x = np.array([0.0])
    with np.errstate(all="ignore"):
        assert_close(tape.forward(x), [0.0 ** p], rtol=0, atol=0)
        assert_close(tape.gradient(x), [d1], rtol=0, atol=1e-300, err_msg=f"d/dx x**{p} at 0")
        assert_close(tape.hessian(x), [[d2]], rtol=0, atol=1e-300, err_msg=f"d2 x**{p} at 0")


def test_power_traced_base_and_exponent_scalar_loop():
    """x**y with both traced, and rpow/pow with mixed Python numbers."""
    def f(x, y):
        return x ** y + 2.0 ** x + y ** 3 + 3 ** y

    tape = jitad.record(f, 1.5, 0.7)
    for x, y in [(1.5, 0.7), (0.4, -1.2), (2.5, 2.0)]:
        z = np.array([x, y])
        ref = lambda z: z[0] ** z[1] + 2.0 ** z[0] + z[1] ** 3 + 3 ** z[1]
        g = [y * x ** (y - 1) + LN2 * 2 ** x,
             x ** y * math.log(x) + 3 * y ** 2 + math.log(3) * 3 ** y]
        assert_close(tape.gradient(z), g, rtol=1e-12, atol=1e-12)
        assert_fd_close(tape.hessian(z), fd_hessian(ref, z), rtol=1e-5, atol=1e-6)


def test_max_min_ties_split_evenly():
    """Documented convention: maximum/minimum split the derivative 0.5/0.5 at ties."""
    for f in (np.maximum, np.minimum, np.fmax, np.fmin):
        tape = jitad.record(lambda a, b: f(a, b), 1.0, 2.0)
        assert_close(tape.gradient(np.array([1.5, 1.5])), [0.5, 0.5], rtol=0, atol=0)


def test_fmax_fmin_ignore_nan():
    tape = jitad.record(lambda a, b: np.fmax(a, b) + np.fmin(a, b), 1.0, 2.0)
    assert_close(tape.forward(np.array([np.nan, 3.0])), [6.0], rtol=0, atol=0)
    assert_close(tape.gradient(np.array([np.nan, 3.0])), [0.0, 2.0], rtol=0, atol=0)
    with np.errstate(all="ignore"):
        tape = jitad.record(lambda a, b: np.maximum(a, b), 1.0, 2.0)
        assert np.isnan(tape.forward(np.array([np.nan, 3.0]))[0])


# ------------------------------------------------------------------ reductions
X23 = np.array([[0.5, -1.2, 2.0], [1.5, 0.3, -0.8]])
_R24 = np.arange(24.0).reshape(2, 3, 4)
X234 = _R24 * 0.13 - 1.4 + 0.01 * _R24 ** 1.5

AXES = [None, 0, 1, -1, (0, 1)]


def _group_of(shape, axis):
    """For each input element (C order), the flat index of the output element it reduces into."""
    nd = len(shape)
    axes = tuple(range(nd)) if axis is None else tuple(
        a % nd for a in (axis if isinstance(axis, tuple) else (axis,)))
    kept = [d for d in range(nd) if d not in axes]
    out_shape = tuple(shape[d] for d in kept)
    groups = []
    for idx in np.ndindex(*shape):
        o = tuple(idx[d] for d in kept)
        groups.append(np.ravel_multi_index(o, out_shape) if o else 0)
    return np.array(groups), int(np.prod(out_shape, dtype=int))


@pytest.mark.parametrize("x", [X23, X234], ids=["2d", "3d"])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("kind", ["sum", "mean", "prod", "max", "min"])
def test_reductions(kind, axis, keepdims, x):
    f = getattr(np, kind)
    tape = jitad.record(lambda z: f(z, axis=axis, keepdims=keepdims), x)
    ref = f(x, axis=axis, keepdims=keepdims)
    assert tape.n_outputs == np.size(ref)
    x1 = x * 1.1 + 0.07 * np.sin(np.arange(x.size)).reshape(x.shape)  # replay point
    xf = x1.ravel()
    groups, m = _group_of(x.shape, axis)
    J = np.zeros((m, x.size))
    w = np.linspace(-1.0, 1.5, m)
    Hw = np.zeros((x.size, x.size))
    for o in range(m):
        members = np.flatnonzero(groups == o)
        vals = xf[members]
        if kind == "sum":
            J[o, members] = 1.0
        elif kind == "mean":
            J[o, members] = 1.0 / members.size
        elif kind in ("max", "min"):
            J[o, members[np.argmax(vals) if kind == "max" else np.argmin(vals)]] = 1.0
        else:  # prod: d/dx_i = prod_{j != i}, d2/dx_i dx_j = prod_{k != i, j}
            for a, i in enumerate(members):
                J[o, i] = np.prod(np.delete(vals, a))
                for b, j in enumerate(members):
                    if a != b:
                        Hw[i, j] += w[o] * np.prod(np.delete(vals, [a, b]))
    assert_close(tape.forward(xf), f(x1, axis=axis, keepdims=keepdims).ravel(), rtol=1e-13,
                 atol=1e-14)
    assert_close(tape.jacobian(xf), J, rtol=1e-12, atol=1e-13)
    assert_close(tape.hessian(xf, w), Hw, rtol=1e-12, atol=1e-13)
    ref_f = lambda z: f(z.reshape(x.shape), axis=axis, keepdims=keepdims)
    assert_fd_close(tape.jacobian(xf), fd_jacobian(ref_f, xf), rtol=1e-8, atol=1e-9)
    if kind == "prod" and x.ndim == 2:
        assert_fd_close(tape.hessian(xf, w), fd_hessian(lambda z: w @ np.ravel(ref_f(z)), xf),
                        rtol=1e-5, atol=1e-6)


def test_reduction_methods_and_scalar_result():
    x0 = X23
    tape = jitad.record(lambda z: (z.sum(), z.mean(axis=0), z.prod(axis=1, keepdims=True),
                                   z.max(axis=1), z.min()), x0)
    assert tape.n_outputs == 1 + 3 + 2 + 2 + 1
    assert tape.output_is_tuple
    y = tape.forward(x0.ravel())
    ref = np.concatenate([[x0.sum()], x0.mean(axis=0), x0.prod(axis=1), x0.max(axis=1),
                          [x0.min()]])
    assert_close(y, ref, rtol=1e-14, atol=1e-15)
    tape = jitad.record(lambda z: np.add.reduce(z, axis=1) + np.multiply.reduce(z, axis=0).sum(),
                        x0)
    assert_fd_close(tape.jacobian(x0.ravel()),
                    fd_jacobian(lambda z: np.add.reduce(z.reshape(2, 3), axis=1)
                                + np.multiply.reduce(z.reshape(2, 3), axis=0).sum(), x0.ravel()))


def test_max_min_reduction_ties_sum_to_one():
    """max(x + t*1) = max(x) + t: at ties the reduction's gradient must still sum to 1."""
    for f in (np.max, np.min, np.amax, np.amin):
        tape = jitad.record(lambda z: f(z), np.array([1.0, 1.0, 1.0, 0.0, 1.0]))
        g = tape.gradient(np.array([1.0, 1.0, 1.0, 0.0, 1.0]) * (1 if f in (np.max, np.amax)
                                                                  else -1))
        assert_close(g.sum(), 1.0, rtol=1e-15, atol=0)
        assert np.all(g >= 0)


def test_prod_with_zero_entries():
    x = np.array([2.0, 0.0, 3.0, -1.5])
    tape = jitad.record(np.prod, x)
    assert_close(tape.gradient(x), [0.0, 2.0 * 3.0 * -1.5, 0.0, 0.0], rtol=0, atol=0)
    H = tape.hessian(x)
    assert_close(H[1], [3.0 * -1.5, 0.0, 2.0 * -1.5, 2.0 * 3.0], rtol=1e-15, atol=0)
    assert_close(H, H.T, rtol=0, atol=0)


# ------------------------------------------------------------------ products
def test_matvec_constant_matrix():
    A = np.array([[1.0, -2.0, 0.5], [0.3, 4.0, -1.0]])
    for f, J in ((lambda x: A @ x, A), (lambda x: np.dot(A, x), A), (lambda x: np.matmul(A, x), A),
                 (lambda x: x @ A.T, A), (lambda x: np.inner(A, x), A),
                 (lambda x: (x[None, :] @ A.T)[0], A)):
        tape = jitad.record(f, np.array([1.0, 2.0, 3.0]))
        x = np.array([-0.4, 1.7, 0.2])
        assert_close(tape.forward(x), A @ x, rtol=1e-14, atol=1e-14)
        assert_close(tape.jacobian(x), J, rtol=0, atol=0)
        assert_close(tape.hessian(x, np.array([1.0, -2.0])), np.zeros((3, 3)), rtol=0, atol=0)
    tape = jitad.record(lambda x: A @ x, np.ones(3))
    assert len(tape) == A.shape[0], "a dense mat-vec is one n-ary op per output element"


def test_dot_both_traced():
    a0, b0 = np.array([1.0, -2.0, 0.5]), np.array([0.3, 4.0, -1.0])
    for f in (np.dot, np.inner, np.vdot, operator.matmul, lambda p, q: p.dot(q)):
        tape = jitad.record(f, a0, b0)
        assert len(tape) == 1
        a, b = a0[::-1] + 0.1, b0 * 1.3
        x = np.concatenate([a, b])
        assert_close(tape.forward(x), [a @ b], rtol=1e-14, atol=1e-14)
        assert_close(tape.gradient(x), np.concatenate([b, a]), rtol=0, atol=0)
        I = np.eye(3)
        assert_close(tape.hessian(x), np.block([[0 * I, I], [I, 0 * I]]), rtol=0, atol=0)


def test_self_dot_and_quadratic_form():
    A = np.array([[2.0, 1.0, 0.0], [-1.0, 3.0, 0.5], [0.2, 0.0, 1.0]])
    tape = jitad.record(lambda x: x @ x, np.ones(3))
    x = np.array([0.3, -1.2, 2.0])
    assert_close(tape.gradient(x), 2 * x, rtol=0, atol=0)
    assert_close(tape.hessian(x), 2 * np.eye(3), rtol=0, atol=0)
    tape = jitad.record(lambda x: x @ A @ x, np.ones(3))
    assert_close(tape.gradient(x), (A + A.T) @ x, rtol=1e-14, atol=1e-14)
    assert_close(tape.hessian(x), A + A.T, rtol=1e-14, atol=1e-14)
    tape = jitad.record(lambda x: x.dot(A @ x), np.ones(3))
    assert_close(tape.hessian(x), A + A.T, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("f,ashape,bshape", [
    (operator.matmul, (2, 3), (3, 4)),
    (np.dot, (2, 3), (3, 4)),
    (np.matmul, (2, 2, 3), (3, 2)),
    (operator.matmul, (2, 2, 3), (2, 3, 2)),
    (operator.matmul, (3,), (3, 2)),
    (operator.matmul, (2, 3), (3,)),
    (lambda a, b: np.inner(a, b), (2, 3), (4, 3)),
    (np.outer, (3,), (4,)),
    (np.outer, (2, 2), (3,)),
])
def test_products_both_traced(f, ashape, bshape, rng):
    A0 = rng.normal(size=ashape)
    B0 = rng.normal(size=bshape)
    tape = jitad.record(f, A0, B0)
    A1, B1 = rng.normal(size=ashape), rng.normal(size=bshape)
    x = np.concatenate([A1.ravel(), B1.ravel()])
    na = A1.size
    ref = lambda z: f(z[:na].reshape(ashape), z[na:].reshape(bshape))
    out = ref(x)
    assert_close(tape.forward(x), np.ravel(out), rtol=1e-13, atol=1e-13)
    # analytic: out is bilinear, so J[o, a_i] = d out_o / d a_i = ref(e_i, B1) and likewise for B
    m = np.size(out)
    J = np.zeros((m, x.size))
    Hw = np.zeros((x.size, x.size))
    w = rng.normal(size=m)
    for i in range(na):
        ea = np.zeros(na)
        ea[i] = 1.0
        J[:, i] = np.ravel(f(ea.reshape(ashape), B1))
        for j in range(B1.size):
            eb = np.zeros(B1.size)
            eb[j] = 1.0
            Hw[i, na + j] = Hw[na + j, i] = w @ np.ravel(f(ea.reshape(ashape), eb.reshape(bshape)))
    for j in range(B1.size):
        eb = np.zeros(B1.size)
        eb[j] = 1.0
        J[:, na + j] = np.ravel(f(A1, eb.reshape(bshape)))
    assert_close(tape.jacobian(x), J, rtol=1e-13, atol=1e-13)
    assert_close(tape.hessian(x, w), Hw, rtol=1e-13, atol=1e-13)
    assert_fd_close(tape.jacobian(x), fd_jacobian(ref, x), rtol=1e-8, atol=1e-9)


def test_products_with_constant_operand(rng):
    A = rng.normal(size=(3, 4))
    v = rng.normal(size=3)
    for f in (lambda x: A.T @ x, lambda x: x @ A, lambda x: np.dot(x, A), lambda x: np.outer(x, v),
              lambda x: np.outer(v, x), lambda x: np.inner(x, v), lambda x: np.dot(2.0, x),
              lambda x: np.dot(x, 2.0), lambda x: A @ np.stack([x, x, x, x])):
        tape = jitad.record(f, np.ones(3))
        x = rng.normal(size=3)
        assert_close(tape.forward(x), np.ravel(f(x)), rtol=1e-13, atol=1e-13)
        assert_fd_close(tape.jacobian(x), fd_jacobian(f, x), rtol=1e-8, atol=1e-9)
        w = rng.normal(size=tape.n_outputs)
        assert_close(tape.hessian(x, w), np.zeros((3, 3)), rtol=0, atol=0)


def test_matmul_nonlinear_chain(rng):
    """logistic loss sum(log1p(exp(-y * (X @ w)))) + 0.5 * lam * w @ w: analytic grad/Hessian."""
    X = rng.normal(size=(20, 4))
    y = np.sign(rng.normal(size=20))
    lam = 0.3
    f = lambda w: np.sum(np.log1p(np.exp(-y * (X @ w)))) + 0.5 * lam * w @ w
    tape = jitad.record(f, np.zeros(4))
    w = rng.normal(size=4)
    s = expit(-y * (X @ w))
    g = -X.T @ (y * s) + lam * w
    H = X.T @ (X * (s * (1 - s))[:, None]) + lam * np.eye(4)
    assert_close(tape.forward(w), [f(w)], rtol=1e-13, atol=0)
    assert_close(tape.gradient(w), g, rtol=1e-11, atol=1e-12)
    assert_close(tape.hessian(w), H, rtol=1e-11, atol=1e-12)


# ------------------------------------------------------------------ where, clip
def test_where_constant_mask():
    mask = np.array([True, False, True, False])
    f = lambda x: np.sum(np.where(mask, np.sin(x), x ** 3))
    tape = jitad.record(f, np.array([0.1, 0.2, 0.3, 0.4]))
    for x in (np.array([0.1, 0.2, 0.3, 0.4]), np.array([-1.0, 2.0, 1.5, -0.7])):
        assert_close(tape.forward(x), [f(x)], rtol=1e-14, atol=1e-14)
        assert_close(tape.gradient(x), np.where(mask, np.cos(x), 3 * x ** 2), rtol=1e-14,
                     atol=0)
        assert_close(tape.hessian(x), np.diag(np.where(mask, -np.sin(x), 6 * x)), rtol=1e-14,
                     atol=0)


def test_where_traced_condition_and_constant_branch():
    """A traced condition is re-decided at every point (SELECT ops); a constant branch has zero
    derivative."""
    x0 = np.array([-1.0, 2.0, 0.5, -0.3])
    tape = jitad.record(lambda x: np.where(x > 0, x ** 2, 0.0), x0)
    assert tape.n_guards == 0
    x = np.array([2.0, -3.0, 1.5, -0.1])  # the condition flips in the first two elements
    assert_close(tape.forward(x), np.where(x > 0, x ** 2, 0.0), rtol=0, atol=0)
    assert_close(tape.jacobian(x), np.diag(np.where(x > 0, 2 * x, 0.0)), rtol=0, atol=0)
    tape = jitad.record(lambda x: np.where(x < 0, -3.0 * x, np.ones(4)), x0)
    assert_close(tape.jacobian(x), np.diag(np.where(x < 0, -3.0, 0.0)), rtol=0, atol=0)
    # traced scalars in the branches, broadcasting against a traced vector
    tape = jitad.record(lambda x, s: np.sum(np.where(x > 0, x, s * s)), x0, 1.5)
    assert_close(tape.gradient(np.concatenate([x, [2.0]])), [1, 0, 1, 0, 2 * 2.0 * 2],
                 rtol=0, atol=0)


def test_where_traced_condition_constant_branches():
    """Only the condition is traced: the result is piecewise constant, re-decided per point."""
    tape = jitad.record(lambda x: np.where(x, 1.0, 2.0) * x, np.array([1.0, 0.0, -3.0]))
    assert_close(tape.forward(np.array([5.0, 0.0, 7.0])), [5.0, 0.0, 7.0], rtol=0, atol=0)
    assert_close(tape.jacobian(np.array([5.0, 0.0, 7.0])), np.diag([1.0, 2.0, 1.0]), rtol=0,
                 atol=0)
    assert_close(tape.jacobian(np.array([0.0, 6.0, 7.0])), np.diag([2.0, 1.0, 1.0]), rtol=0,
                 atol=0)


@pytest.mark.parametrize("lo,hi", [(-1.0, 1.0), (None, 0.5), (-0.5, None), (np.array(
    [-1.0, 0.0, -2.0, 0.2]), 1.0)])
def test_clip(lo, hi):
    x0 = np.array([-1.7, 0.3, 0.9, 2.0])
    for f in (lambda x: np.clip(x, lo, hi), lambda x: x.clip(lo, hi)):
        tape = jitad.record(lambda x: np.sum(f(x) ** 2), x0)
        for x in (x0, np.array([0.2, -0.4, 1.7, 0.1])):
            c = np.clip(x, lo, hi)
            inside = (c == x).astype(float)
            assert_close(tape.forward(x), [np.sum(c ** 2)], rtol=1e-15, atol=0)
            assert_close(tape.gradient(x), 2 * c * inside, rtol=1e-15, atol=0)
            assert_close(tape.hessian(x), np.diag(2 * inside), rtol=0, atol=0)


def test_clip_traced_bounds():
    tape = jitad.record(lambda x, lo, hi: np.clip(x, lo, hi), np.array([-2.0, 0.0, 2.0]), -1.0, 1.0)
    J = tape.jacobian(np.array([-2.0, 0.0, 2.0, -1.0, 1.0]))
    assert_close(J, [[0, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 1]], rtol=0, atol=0)


# ------------------------------------------------------------------ norm
def test_norm_vector():
    x0 = np.array([1.0, -2.0, 0.5, 3.0])
    for f in (np.linalg.norm, lambda x: np.linalg.norm(x, 2),
              lambda x: np.linalg.norm(x, ord=None)):
        tape = jitad.record(f, x0)
        for x in (x0, np.array([0.2, 0.7, -1.1, 0.4])):
            r = np.sqrt(x @ x)
            assert_close(tape.forward(x), [r], rtol=1e-15, atol=0)
            assert_close(tape.gradient(x), x / r, rtol=1e-14, atol=1e-15)
            assert_close(tape.hessian(x), (np.eye(4) - np.outer(x, x) / r ** 2) / r, rtol=1e-13,
                         atol=1e-14)
            assert_fd_close(tape.hessian(x), fd_hessian(np.linalg.norm, x), rtol=1e-5, atol=1e-6)


def test_norm_axis_and_other_orders():
    X = np.array([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1]])
    cases = [dict(axis=1), dict(axis=0), dict(axis=1, keepdims=True), dict(ord=1),
             dict(ord=np.inf), dict(ord="fro"), dict(), dict(ord=2, axis=-1)]
    for kw in cases:
        x0 = X.ravel() if kw.get("ord") in (1, np.inf) else X
        f = lambda z: np.linalg.norm(z, **kw)
        tape = jitad.record(f, x0)
        x1 = x0 * 1.2 - 0.05
        ref = lambda z: f(z.reshape(x0.shape))
        assert_close(tape.forward(x1.ravel()), np.ravel(ref(x1.ravel())), rtol=1e-14, atol=0)
        assert_fd_close(tape.jacobian(x1.ravel()), fd_jacobian(ref, x1.ravel()), rtol=1e-8,
                        atol=1e-9)


# ------------------------------------------------------------------ cumsum, diff
def test_cumsum_1d_analytic():
    x0 = np.array([0.3, -1.0, 2.0, 0.5, 1.1])
    tape = jitad.record(lambda x: np.sum(np.sin(np.cumsum(x))), x0)
    x = np.array([1.0, 0.2, -0.7, 0.4, 2.2])
    c = np.cumsum(x)
    n = x.size
    g = np.array([np.sum(np.cos(c[i:])) for i in range(n)])
    H = np.array([[-np.sum(np.sin(c[max(i, k):])) for k in range(n)] for i in range(n)])
    assert_close(tape.gradient(x), g, rtol=1e-14, atol=1e-14)
    assert_close(tape.hessian(x), H, rtol=1e-13, atol=1e-14)
    tape = jitad.record(np.cumsum, x0)
    assert_close(tape.jacobian(x), np.tril(np.ones((n, n))), rtol=0, atol=0)
    tape = jitad.record(lambda x: x.cumsum(), x0)
    assert_close(tape.forward(x), np.cumsum(x), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_cumsum_2d(axis):
    X = np.arange(12.0).reshape(3, 4) * 0.3 - 1.0
    f = lambda z: np.cumsum(z, axis=axis)
    tape = jitad.record(lambda z: f(z) ** 2, X)
    x1 = X.ravel()[::-1] + 0.1
    ref = lambda z: f(z.reshape(3, 4)) ** 2
    assert_close(tape.forward(x1), np.ravel(ref(x1)), rtol=1e-14, atol=1e-14)
    assert_fd_close(tape.jacobian(x1), fd_jacobian(ref, x1), rtol=1e-8, atol=1e-9)


def test_diff():
    x0 = np.array([0.3, -1.0, 2.0, 0.5, 1.1])
    n = x0.size
    D = np.eye(n)[1:] - np.eye(n)[:-1]
    tape = jitad.record(np.diff, x0)
    assert_close(tape.jacobian(x0), D, rtol=0, atol=0)
    tape = jitad.record(lambda x: np.diff(x, n=2), x0)
    assert_close(tape.jacobian(x0), D[1:, 1:] @ D, rtol=0, atol=0)
    tape = jitad.record(lambda x: np.sum(np.diff(x) ** 2), x0)
    x = np.array([1.0, 0.2, -0.7, 0.4, 2.2])
    assert_close(tape.gradient(x), 2 * D.T @ (D @ x), rtol=1e-14, atol=1e-14)
    assert_close(tape.hessian(x), 2 * D.T @ D, rtol=1e-14, atol=1e-14)
    for kw in (dict(prepend=0.0), dict(append=1.0), dict(prepend=np.array([1.0, 2.0]))):
        tape = jitad.record(lambda z: np.diff(z, **kw), x0)
        assert_close(tape.forward(x), np.diff(x, **kw), rtol=0, atol=1e-15)
        assert_fd_close(tape.jacobian(x), fd_jacobian(lambda z: np.diff(z, **kw), x))
    X = np.arange(12.0).reshape(3, 4) ** 1.3
    for axis in (0, 1, -1):
        tape = jitad.record(lambda z: np.diff(z, axis=axis), X)
        ref = lambda z: np.diff(z.reshape(3, 4), axis=axis)
        assert_close(tape.forward(X.ravel()), np.ravel(ref(X.ravel())), rtol=0, atol=1e-14)
        assert_fd_close(tape.jacobian(X.ravel()), fd_jacobian(ref, X.ravel()))


# ------------------------------------------------------------------ structural operations
# name, function; each is linear in x and must record no arithmetic at all
STRUCT = [
    ("basic slice", lambda x: x[1:, ::2]),
    ("negative step", lambda x: x[::-1, 1]),
    ("int index", lambda x: x[1]),
    ("scalar element", lambda x: x[2, 3]),
    ("int array", lambda x: x[np.array([2, 0, 0, 1])]),
    ("int arrays 2d", lambda x: x[np.array([0, 2, 1]), np.array([3, 3, 0])]),
    ("boolean mask", lambda x: x[np.array([[True, False, True, False]] * 3)]),
    ("row mask", lambda x: x[np.array([True, False, True])]),
    ("ellipsis/newaxis", lambda x: x[..., None, 1:3]),
    ("reshape", lambda x: x.reshape(4, 3)),
    ("reshape args -1", lambda x: x.reshape(2, -1)),
    ("np.reshape", lambda x: np.reshape(x, (6, 2))),
    (".T", lambda x: x.T),
    ("transpose", lambda x: np.transpose(x)),
    ("transpose method", lambda x: x.transpose(1, 0)),
    ("ravel", lambda x: x.ravel()),
    ("np.ravel", np.ravel),
    ("flatten", lambda x: x.flatten()),
    ("squeeze", lambda x: np.squeeze(x[:1])),
    ("squeeze method", lambda x: x[:, 1:2].squeeze()),
    ("expand_dims", lambda x: np.expand_dims(x, 1)),
    ("broadcast_to", lambda x: np.broadcast_to(x[0], (2, 4))),
    ("concatenate", lambda x: np.concatenate([x[0], x[2], x[1, :2]])),
    ("concatenate axis 1", lambda x: np.concatenate([x, x[:, :1]], axis=1)),
    ("concatenate list of scalars", lambda x: np.concatenate([x[0], [x[1, 1], x[2, 3]]])),
    ("hstack scalars", lambda x: np.hstack([x[2, 0], x[1], (x[0, 0], x[0, 1])])),
    ("stack", lambda x: np.stack([x[0], x[2]], axis=1)),
    ("hstack", lambda x: np.hstack([x[0], x[1]])),
    ("vstack", lambda x: np.vstack([x[0], x[2], x[0]])),
    ("np.stack scalars", lambda x: np.stack([x[0, 0], x[2, 1], x[1, 3]])),
    ("jitad.stack scalars", lambda x: jitad.stack([x[0, 0], x[2, 1], x[1, 3]])),
    ("jitad.stack rows", lambda x: jitad.stack([x[2], x[0]])),
    ("iteration rows", lambda x: np.stack([r for r in x][::-1])),
    ("iteration scalars", lambda x: jitad.stack([e for e in x[1]])),
    ("flip/roll", lambda x: np.roll(np.flip(x, axis=1), 1, axis=0)),
    ("moveaxis/swapaxes", lambda x: np.swapaxes(np.moveaxis(x[None], 0, 2), 0, 1)),
    ("take", lambda x: np.take(x, [3, 0], axis=1)),
    ("tile/repeat", lambda x: np.repeat(np.tile(x[0], 2), 2)),
    ("diagonal", lambda x: np.diagonal(x)),
    ("atleast_2d", lambda x: np.atleast_2d(x[0])),
    ("copy", lambda x: x.copy()),
]
S_IDS = [s[0] for s in STRUCT]
X34 = np.array([[0.3, -1.2, 2.5, 0.8], [1.1, 0.4, -0.6, 1.9], [-2.2, 0.9, 1.6, -0.1]])


@pytest.mark.parametrize("name,f", STRUCT, ids=S_IDS)
def test_structural(name, f):
    tape = jitad.record(f, X34)
    assert len(tape) == 0, f"{name} recorded {tape.op_counts()}"
    assert tape.n_outputs == np.size(f(X34))
    # replay elsewhere; the map is linear, so the Jacobian's columns are f of the unit matrices
    x = X34.ravel() * 1.3 + 0.1 * np.cos(np.arange(X34.size))
    J = np.stack([np.ravel(f(e.reshape(X34.shape))) for e in np.eye(x.size)], axis=1)
    assert_close(tape.forward(x), np.ravel(f(x.reshape(X34.shape))), rtol=0, atol=0)
    assert_close(tape.jacobian(x), J, rtol=0, atol=0)


def test_sort_follows_the_recorded_permutation():
    tape = jitad.record(lambda x: np.sort(x, axis=1), X34)
    assert len(tape) == 0
    order = np.argsort(X34, axis=1) + 4 * np.arange(3)[:, None]
    x = X34.ravel()
    assert_close(tape.forward(x), np.sort(X34, axis=1).ravel(), rtol=0, atol=0)
    J = np.zeros((x.size, x.size))
    J[np.arange(x.size), order.ravel()] = 1.0
    assert_close(tape.jacobian(x), J, rtol=0, atol=0)
    x1 = x + 0.01 * np.arange(x.size)  # same order: replay sorts too
    assert_close(tape.forward(x1), np.sort(x1.reshape(3, 4), axis=1).ravel(), rtol=0, atol=0)


@pytest.mark.parametrize("name,f", STRUCT, ids=S_IDS)
def test_structural_nonlinear_composition(name, f):
    """sum(w * sin(S(x))**2): Hessian through the index bookkeeping."""
    ref_shape = np.shape(f(X34))
    w = np.linspace(0.5, 1.5, int(np.prod(ref_shape, dtype=int))).reshape(ref_shape)
    g = lambda x: np.sum(w * np.sin(f(x)) ** 2)
    tape = jitad.record(g, X34)
    x = X34.ravel()
    ref = lambda z: g(z.reshape(X34.shape))
    assert_close(tape.forward(x), [ref(x)], rtol=1e-14, atol=1e-14)
    assert_fd_close(tape.gradient(x), fd_gradient(ref, x), rtol=1e-8, atol=1e-9)
    assert_fd_close(tape.hessian(x), fd_hessian(ref, x), rtol=1e-5, atol=1e-6)


def test_broadcasting_between_traced_arrays():
    def f(x, y):
        return np.sum(np.sin(x[:, None] * y[None, :]) + x[:, None] ** 2 - y)

    x0, y0 = np.array([0.3, -1.2, 0.7]), np.array([1.1, 0.4])
    tape = jitad.record(f, x0, y0)
    z = np.concatenate([x0 * 0.8, y0 + 0.3])
    ref = lambda z: f(z[:3], z[3:])
    assert_close(tape.forward(z), [ref(z)], rtol=1e-14, atol=1e-14)
    assert_fd_close(tape.gradient(z), fd_gradient(ref, z), rtol=1e-8, atol=1e-9)
    assert_fd_close(tape.hessian(z), fd_hessian(ref, z), rtol=1e-5, atol=1e-6)


def test_broadcasting_traced_with_constant_matrix():
    C = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    tape = jitad.record(lambda x: C * x + x / (1.0 + C ** 2), np.ones(3))
    assert tape.n_outputs == 6
    x = np.array([0.5, -1.0, 2.0])
    assert_close(tape.forward(x), np.ravel(C * x + x / (1 + C ** 2)), rtol=1e-15, atol=1e-15)
    J = np.zeros((6, 3))
    for i in range(2):
        J[3 * i:3 * i + 3] = np.diag(C[i] + 1 / (1 + C[i] ** 2))
    assert_close(tape.jacobian(x), J, rtol=1e-15, atol=0)


def test_setitem_into_traced_array():
    def f(x):
        y = x.copy()
        y[0] = x[1] * x[2]          # traced scalar into a traced array
        y[1:3] = np.sin(x[:2])       # traced slice
        y[3] = 7.0                   # a constant element
        y[np.array([4, 5])] = x[np.array([5, 4])] ** 2
        return y

    x0 = np.array([0.3, -1.2, 2.5, 0.8, 1.1, 0.4])
    tape = jitad.record(f, x0)
    x = np.array([1.0, 2.0, -0.5, 4.0, 0.3, -0.9])
    ref = np.array([2.0 * -0.5, np.sin(1.0), np.sin(2.0), 7.0, (-0.9) ** 2, 0.3 ** 2])
    assert_close(tape.forward(x), ref, rtol=1e-15, atol=0)
    J = np.zeros((6, 6))
    J[0, 1], J[0, 2] = -0.5, 2.0
    J[1, 0], J[2, 1] = np.cos(1.0), np.cos(2.0)
    J[4, 5], J[5, 4] = 2 * -0.9, 2 * 0.3
    assert_close(tape.jacobian(x), J, rtol=1e-15, atol=0)
    # the input itself is not modified by the setitem on the copy
    tape = jitad.record(lambda x: (lambda y: (y.__setitem__(0, 5.0), x)[1])(x.copy()), x0)
    assert_close(tape.forward(x), x, rtol=0, atol=0)


def test_setitem_on_view_writes_through_like_numpy():
    def f(x):
        y = x.copy()
        v = y[1:]
        v[0] = x[0] ** 2
        return y

    x0 = np.array([0.5, 1.5, 2.5])
    tape = jitad.record(f, x0)
    assert_close(tape.forward(x0), f(x0), rtol=0, atol=0)


def test_positive_returns_a_new_array():
    """np.positive / unary + return a copy in numpy: writing into it leaves x alone."""
    for pos in (operator.pos, np.positive):
        def f(x):
            y = pos(x)
            y[0] = 5.0
            return x

        x0 = np.array([1.0, 2.0, 3.0])
        assert_close(f(x0.copy()), x0, rtol=0, atol=0)
        tape = jitad.record(f, x0)
        x = np.array([-1.0, 0.5, 4.0])
        assert_close(tape.forward(x), x, rtol=0, atol=0)
        assert_close(tape.jacobian(x), np.eye(3), rtol=0, atol=0)


def test_astype_float_returns_a_copy():
    def f(x):
        y = x.astype(np.float64)
        y[0] = 5.0
        return x, y.astype(float, copy=False)

    tape = jitad.record(f, np.array([1.0, 2.0]))
    x = np.array([-1.0, 0.5])
    assert_close(tape.forward(x), [-1.0, 0.5, 5.0, 0.5], rtol=0, atol=0)


def test_len_shape_ndim_size_attributes():
    seen = {}

    def f(x):
        seen.update(len=len(x), shape=x.shape, ndim=x.ndim, size=x.size,
                    npshape=np.shape(x), npsize=np.size(x), npndim=np.ndim(x))
        return x.sum() * len(x)

    tape = jitad.record(f, X34)
    assert seen == dict(len=3, shape=(3, 4), ndim=2, size=12, npshape=(3, 4), npsize=12,
                        npndim=2)
    assert_close(tape.gradient(X34.ravel()), np.full(12, 3.0), rtol=0, atol=0)


def test_comparisons_return_guarded_conditions():
    """Comparisons give traced conditions; as numpy arrays or bools they are the recorded
    outcomes, and the tape guards them (test_guards.py has the details)."""
    out = {}

    def f(x):
        out["lt"] = np.asarray(x < 1.0)
        out["ge"] = bool(x[0] >= x[1])
        out["eq"] = np.asarray(x == np.array([0.5, 2.0, 0.0]))
        return x if x[0] < x[1] else -x

    tape = jitad.record(f, np.array([0.5, 2.0, 3.0]))
    assert isinstance(out["lt"], np.ndarray) and out["lt"].dtype == bool
    assert_close(out["lt"], [True, False, False], rtol=0, atol=0)
    assert not out["ge"]
    assert_close(out["eq"], [True, True, False], rtol=0, atol=0)
    assert_close(tape.jacobian(np.array([0.5, 2.0, 4.0])), np.eye(3), rtol=0, atol=0)
    with pytest.raises(jitad.BranchChangedError):
        tape.jacobian(np.array([3.0, 1.0, 0.0]))