"""The interaction Hessian (`jitad/interaction.py`): dense Hessians from the tape's second-order
terms and sparse operand rows, against the multi-direction HVP path, analytic Hessians and
finite differences; its plan, dense BLAS groups, cross-row pairs, parallel accumulation and
the fall-back to HVPs."""
import numpy as np
import pytest

import jitad
from jitad import interaction
from jitad.tape import _EMPTY2
from fdcheck import assert_close, assert_fd_close, fd_hessian


def hvp_hessian(tape, x, w=None):
    """The Hessian from n unit HVPs (the other path), symmetrised."""
    x = np.asarray(x, dtype=np.float64)
    H = tape._hvp_rows(x, w, _EMPTY2, True, tape.n_inputs)
    return 0.5 * (H + H.T)


RNG = np.random.default_rng(7)
X = RNG.standard_normal((60, 12))


def glm(w):  # a mat-vec with a constant matrix, then elementwise: one dense BLAS group
    z = X @ w
    return np.sum(np.log1p(np.exp(z))) + np.sum(np.sin(z)) + 0.5 * (w @ w)


def glm_hessian(w):
    z = X @ w
    s = 1.0 / (1.0 + np.exp(-z))
    c = s * (1.0 - s) - np.sin(z)  # signed weights: positive and negative syrk parts
    return X.T @ (c[:, None] * X) + np.eye(w.size)


def pairs(x):  # cross-row pairs: products of different rows
    a = x[:-2] + 2.0 * x[1:-1]
    b = x[2:] - x[:-2] * 0.5
    return np.sum(a * b) + np.sum(np.cos(a) * np.exp(0.1 * b))


def chained(x):  # rows built from rows (merged, not direct), shared rows through unary chains
    u = np.tanh(x[:-1] * x[1:] + x[:-1])
    v = np.cumsum(u)
    return np.sum(np.exp(0.2 * v) ** 2) + x[0] * x[0]


@pytest.mark.parametrize("func, n", [(glm, 12), (pairs, 9), (chained, 7)])
def test_matches_hvp_path_and_finite_differences(func, n):
    x0 = np.linspace(-0.8, 0.9, n)
    tape = jitad.record(func, x0)
    plan = tape._interaction_plan()
    assert plan.ok
    for x in (x0, 0.7 * x0[::-1] + 0.1):  # the recording point and another one
        H = plan.hessian(tape, tape._x(x), np.ones(1))
        assert np.array_equal(H, H.T)
        assert_close(H, hvp_hessian(tape, x), rtol=1e-12, atol=1e-12 * max(1, np.abs(H).max()))
        assert_fd_close(H, fd_hessian(func, x), rtol=1e-6, atol=1e-6)


X40 = RNG.standard_normal((80, 40))


@pytest.mark.parametrize("Xm, via_gram", [(X, True), (X40, False)])
def test_dense_group_signed_weights_against_analytic(Xm, via_gram, monkeypatch):
    """Signed weights c = s(1-s) - sin(z) of the rows of X @ w: by `gram` (12 columns) and by
    BLAS (40 columns, beyond _GRAM_MAX_LENGTH: the Bp and Bn syrk halves)."""
    monkeypatch.setitem(globals(), "X", Xm)  # glm and glm_hessian read the module's X
    d = Xm.shape[1]
    w0 = np.linspace(-0.5, 0.5, d)
    tape = jitad.record(glm, w0)
    plan = tape._interaction_plan()
    assert len(plan.groups) == 1 and plan.groups[0][1] == d  # one group: rows of X @ w
    assert (plan.groups[0][3] is not None) == via_gram
    for w in (w0, np.cos(np.arange(float(d)))):
        H = tape.hessian(w)
        assert_close(H, glm_hessian(w), rtol=1e-12, atol=1e-12 * max(1, np.abs(H).max()))
        assert np.array_equal(H, H.T)


def cubed_glm(w):  # rows of X @ w**3 vary with the point: with those of X @ w, one BLAS group
    return np.sum(np.log1p(np.exp(X @ w ** 3))) - np.sum(np.sin(X @ w))


X2 = RNG.standard_normal((40, 24))


def two_groups(w):  # two blocks of constant rows with different index ranges
    return (np.sum(np.log1p(np.exp(X2[:, :12] @ w[:12])))
            + np.sum(np.exp(0.1 * (X2[:, 12:] @ w[12:]))) + w[0] * w[20])


@pytest.mark.parametrize("func, n, constant", [(glm, 12, [True]), (cubed_glm, 12, [False]),
                                               (two_groups, 24, [True, True])])
def test_dense_groups_gram_and_blas(func, n, constant):
    """Groups of constant rows (X @ w) take `gram` (their values kept by the plan as XT), rows
    that vary take BLAS; both against the HVP path and finite differences."""
    x0 = np.linspace(-0.6, 0.7, n)
    tape = jitad.record(func, x0)
    plan = tape._interaction_plan()
    assert plan.use
    assert sorted(g[3] is not None for g in plan.groups) == sorted(constant)
    for lo, ln, members, XT in plan.groups:
        if XT is not None:
            assert XT.shape == (ln, members.shape[0])
    for x in (x0, np.sin(np.arange(n) + 0.5)):
        H = tape.hessian(x)
        assert np.array_equal(H, H.T)
        assert_close(H, hvp_hessian(tape, x), rtol=1e-11, atol=1e-11 * max(1, np.abs(H).max()))
        assert_fd_close(H, fd_hessian(func, x), rtol=1e-6, atol=1e-6)


def test_parallel_accumulation_matches_serial(monkeypatch):
    x = np.linspace(-1, 1, 40)
    tape = jitad.record(pairs, x)
    serial = tape.hessian(x)
    monkeypatch.setattr(interaction, "_SERIAL_WORK", 0)
    import numba
    if numba.get_num_threads() > 1:
        parallel = tape._interaction_plan().hessian(tape, tape._x(x), np.ones(1))
        assert np.array_equal(parallel, parallel.T)
        assert_close(parallel, serial, rtol=1e-13, atol=1e-13)


def test_weights_of_several_outputs():
    def f(x):
        return np.stack([np.sum(x ** 3), np.prod(x[:3]), np.sin(x[0] * x[-1])])
    x = np.array([0.3, -0.4, 1.1, 0.8])
    tape = jitad.record(f, x)
    w = np.array([0.5, -2.0, 3.0])
    assert tape._interaction_plan().use
    assert_close(tape.hessian(x, w), hvp_hessian(tape, x, w), rtol=1e-13, atol=1e-13)


def test_dense_rows_fall_back_to_hvps(monkeypatch):
    monkeypatch.setattr(interaction, "_NNZ_PER_EDGE", 0)  # no row budget at all
    x = np.linspace(-1, 1, 6)
    tape = jitad.record(chained, x)
    assert not tape._interaction_plan().ok
    assert not tape._interaction_plan().use
    assert_fd_close(tape.hessian(x), fd_hessian(chained, x), rtol=1e-6, atol=1e-6)


def test_point_cache_after_hessian():
    """The Hessian leaves this thread's point arrays at x: a gradient afterwards must be of x,
    and a Hessian after a gradient at another point must use that point."""
    x0 = np.linspace(-0.8, 0.9, 9)
    x1 = x0 + 0.3
    tape = jitad.record(pairs, x0)
    g1 = tape.gradient(x1)
    tape.hessian(x0)
    assert_close(tape.gradient(x1), g1, rtol=0, atol=0)
    assert_close(tape.hessian(x1), hvp_hessian(tape, x1), rtol=1e-12, atol=1e-12)


def test_plan_structure():
    """Row kinds: inputs, shared rows along unary chains, constant mat-vec rows over the
    inputs, direct mat-vec rows over scaled rows; the values at two points."""
    x = np.linspace(-1, 1, 5)

    def f(x):
        return (np.sum(np.exp(np.sin(x))) + np.sum(np.cos(X[:, :5] @ x))
                + np.sum(np.cos(X[:, :5] @ np.sin(x))))
    tape = jitad.record(f, x)
    plan = tape._interaction_plan()
    kinds = np.bincount(plan.kind, minlength=6)
    from jitad import interaction_sweeps as ik
    assert kinds[ik.INPUT] == 5
    assert kinds[ik.CONSTANT] == X.shape[0]  # one per row of X in X @ x
    assert kinds[ik.DIRECT] == X.shape[0]  # one per row of X in X @ sin(x)
    assert kinds[ik.SHARED] >= 5  # sin(x) shares x's rows
    assert plan.n_rows == 5 + 2 * X.shape[0]
    assert plan.varies.sum() == X.shape[0]  # the DIRECT rows
    assert plan.use
    for x1 in (x, x[::-1] + 0.3):
        assert_close(tape.hessian(x1), hvp_hessian(tape, x1), rtol=1e-12, atol=1e-12)


def test_set_num_threads():
    x = np.linspace(-1, 1, 40)
    tape = jitad.record(pairs, x)
    before = jitad.get_num_threads()
    try:
        jitad.set_num_threads(1)
        assert jitad.get_num_threads() == 1
        one = tape.hessian(x)
    finally:
        jitad.set_num_threads(before)
    assert_close(tape.hessian(x), one, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="set_num_threads"):
        jitad.set_num_threads(0)


def test_guards_checked():
    def f(x):
        if x[0] > 0:
            return np.sum(x[1:] * x[:-1]) + x[0] ** 3
        return np.sum(np.sin(x))
    x = np.array([0.5, 1.0, -0.3, 2.0])
    tape = jitad.record(f, x)
    assert tape._interaction_plan().use
    assert_close(tape.hessian(x), hvp_hessian(tape, x), rtol=1e-13, atol=1e-13)
    with pytest.raises(jitad.BranchChangedError):
        tape.hessian(-x)


def test_not_finite_falls_back_to_hvps():
    """Where a partial or a row value is not finite, the entry-wise special values of the HVP
    path are returned (with a CONSTANT row holding an infinite coefficient too)."""
    A = X[:, :4].copy()
    A[0, 0] = np.inf

    def f(x):
        return np.sum(np.sqrt(x) * x[::-1]) + np.sum(np.cos(A @ x) ** 2)
    x0 = np.array([0.5, 0.7, 0.2, 0.9])
    with np.errstate(invalid="ignore"):  # cos(inf) at recording
        tape = jitad.record(f, x0)
    plan = tape._interaction_plan()
    from jitad import interaction_sweeps as ik
    assert (plan.kind == ik.CONSTANT).sum() == A.shape[0] - 1  # not the row with inf
    for x in (x0, np.array([0.0, 0.7, 0.2, 0.9])):  # sqrt'(0) = inf
        np.testing.assert_array_equal(tape.hessian(x), hvp_hessian(tape, x))
    B = X[:, :4]
    tape = jitad.record(lambda x: np.sum(np.sqrt(x) * x[::-1]) + np.sum(np.cos(B @ x) ** 2), x0)
    x = np.array([0.0, 0.7, 0.2, 0.9])
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(tape.hessian(x), hvp_hessian(tape, x))
    assert np.isinf(tape.hessian(x)[0, 0]) or np.isnan(tape.hessian(x)[0, 0])


@pytest.mark.parametrize("func, n", [(glm, 12), (pairs, 9), (chained, 7), (two_groups, 24)])
def test_one_shot_dense_rows(func, n, monkeypatch):
    """A tape used for one Hessian (jitad.hessian) takes dense rows without building a plan
    when n <= DENSE_ROWS_MAX_N; equal to the HVP path up to rounding, exactly symmetric."""
    x0 = np.linspace(-0.8, 0.9, n)
    tape = jitad.record(func, x0)
    for x in (x0, 0.7 * x0[::-1] + 0.1):
        H = interaction.one_shot_hessian(tape, tape._x(x), np.ones(1))
        if n > interaction.DENSE_ROWS_MAX_N:
            assert H is None
            continue
        assert "_iplan" not in tape.__dict__  # no plan was built
        assert np.array_equal(H, H.T)
        assert_close(H, hvp_hessian(tape, x), rtol=1e-12, atol=1e-12 * max(1, np.abs(H).max()))
        assert_fd_close(H, fd_hessian(func, x), rtol=1e-6, atol=1e-6)
    calls = []
    real = interaction.one_shot_hessian
    monkeypatch.setattr(interaction, "one_shot_hessian",
                        lambda *a: calls.append(1) or real(*a))
    H = jitad.hessian(func, x0)
    assert calls and H.shape == (n, n)
    assert_close(H, hvp_hessian(tape, x0), rtol=1e-12, atol=1e-12 * max(1, np.abs(H).max()))


def test_one_shot_not_finite_takes_the_tape_path():
    """sqrt'(0) = inf: the dense rows give up (None) and jitad.hessian returns what
    tape.hessian does (the HVP path's entry-wise special values)."""
    def f(x):
        return np.sum(np.sqrt(x) * x[::-1]) + x[1] ** 3
    x = np.array([0.0, 0.7, 0.2, 0.9])
    tape = jitad.record(f, x)
    assert interaction.one_shot_hessian(tape, tape._x(x), np.ones(1)) is None
    with np.errstate(all="ignore"):
        H = jitad.hessian(f, x)
    np.testing.assert_array_equal(H, jitad.record(f, x).hessian(x))
