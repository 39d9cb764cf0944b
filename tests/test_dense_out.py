"""Dense results zeroed and filled by all threads (`dense_out.py`), and the dense Hessian of
large sparse tapes, which takes the sparse plan before the interaction Hessian."""
import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import jitad
from jitad import dense_out, interaction, sparse
from test_threads import run_threads


def _random_csr(n, m, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((n, m)) < 0.01
    rows, cols = np.nonzero(mask)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    data = rng.standard_normal(rows.shape[0])
    return indptr, cols.astype(np.int32), data, (rows, cols)


@pytest.mark.parametrize("n, m", [(5, 7), (400, 500), (1, dense_out.PARALLEL_ENTRIES + 3)])
@pytest.mark.parametrize("threads", [1, 2])
def test_from_csr_places_every_entry_and_zeros_the_rest(n, m, threads):
    indptr, indices, data, (rows, cols) = _random_csr(n, m, n + m)
    ref = np.zeros((n, m))
    ref[rows, cols] = data
    prev = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for _ in range(2):  # the second array reuses freed memory holding the first's values
            H = dense_out.from_csr(n, m, indptr, indices, data)
            assert H.shape == (n, m) and H.dtype == np.float64 and H.flags.c_contiguous
            np.testing.assert_array_equal(H, ref)
        Z = dense_out.zeros(n, m)
        assert Z.shape == (n, m) and not Z.any()
    finally:
        numba.set_num_threads(prev)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_large_sparse_tape_asks_the_sparse_plan_first(monkeypatch):
    n = 400  # n * n above PARALLEL_ENTRIES: the parallel fill
    x = np.random.default_rng(1).uniform(0.5, 1.5, n)
    tape = jitad.record(rosenbrock, x)
    assert n >= sparse.AUTO_MIN_N and n * n >= dense_out.PARALLEL_ENTRIES

    def refuse(*args):
        raise AssertionError("the interaction Hessian ran")

    monkeypatch.setattr(interaction.InteractionPlan, "hessian", refuse)
    for point in (x, x[::-1].copy()):  # the recording point and another one
        H = tape.hessian(point)
        ref = tape._dense_hessian(point, None)
        np.testing.assert_allclose(H, ref, rtol=1e-13, atol=1e-10)
        assert np.array_equal(H, H.T)
    assert tape.hessian_plan().method == "direct"


@pytest.mark.parametrize("threads", [1, 2])
def test_dense_hessian_swept_while_zeroing(monkeypatch, threads):
    # direct_dense.hessian: one thread sweeps while the others zero H; afterwards the thread's
    # point arrays hold the point, so value and gradient calls there reuse them
    n = 400
    x = np.random.default_rng(2).uniform(0.5, 1.5, n)
    tape = jitad.record(rosenbrock, x)
    other = jitad.record(rosenbrock, x)  # the references, from a tape with its own plans
    calls = []
    real = sparse._direct_dense
    monkeypatch.setattr(sparse, "_direct_dense", lambda *a: calls.append(1) or real(*a))
    prev = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for point in (x, x[::-1].copy(), x):
            H = tape.hessian(point)
            np.testing.assert_allclose(H, other._dense_hessian(point, None), rtol=1e-13,
                                       atol=1e-10)
            np.testing.assert_array_equal(
                H, sparse.SparseMatrix(tape.hessian_plan().pattern,
                                       tape.hessian_plan().values(tape, point, None)).toarray())
            np.testing.assert_array_equal(tape.forward(point), other.forward(point))
            np.testing.assert_array_equal(tape.gradient(point), other.gradient(point))
    finally:
        numba.set_num_threads(prev)
    assert len(calls) == 2  # not on the first call: a tape's first sweep runs op by op


def test_dense_hessian_not_finite_takes_the_hvp_sweeps(monkeypatch):
    returned = []
    real = sparse._direct_dense
    monkeypatch.setattr(sparse, "_direct_dense", lambda *a: returned.append(real(*a)) or
                        returned[-1])

    def f(x):
        return np.sum(np.sqrt(x[:-1]) * x[1:] ** 2) + np.sum(x ** 3)

    x = np.linspace(0.0, 1.0, 300)  # sqrt at 0: an infinite partial
    tape = jitad.record(f, x)
    assert tape._runs() is not None
    with np.errstate(all="ignore"):
        H = tape.hessian(x)
        np.testing.assert_array_equal(H, tape._dense_hessian(x, None))
        assert not np.isfinite(H).all()
        assert len(returned) == 1 and returned[0] is None  # given up: not finite
        x2 = x + 0.5  # finite there: the sparse path
        np.testing.assert_allclose(tape.hessian(x2), tape._dense_hessian(x2, None), rtol=1e-12,
                                   atol=1e-10)
        assert len(returned) == 2 and returned[1] is not None


def test_sparse_and_dense_hessians_from_many_threads():
    # the one-call kernels keep their arguments per thread: 8 threads x 40 calls at their own
    # points, every result bitwise equal to the same call made alone
    n = 400
    tape = jitad.record(rosenbrock, np.linspace(0.5, 1.5, n))
    points = [np.random.default_rng(k).uniform(0.5, 1.5, n) for k in range(8)]
    for x in points[:3]:  # the run plan and the sparse plan, built
        tape.sparse_hessian(x)
        tape.hessian(x)
    ref_sparse = [tape.sparse_hessian(x).data for x in points]
    ref_dense = [tape.hessian(x) for x in points]

    def work(k):
        for i in range(40):
            j = (k + 3 * i) % len(points)
            if i % 2:
                assert np.array_equal(tape.sparse_hessian(points[j]).data, ref_sparse[j])
            else:
                assert np.array_equal(tape.hessian(points[j]), ref_dense[j])

    run_threads(work)


# ------------------------------------------------------------------ random array programs
# Long elementwise programs (tapes over 1000 ops: a run plan, so the one-call kernels of
# direct_dense run from the third call on): chains of unary functions, linear combinations
# of shifted slices (LIN runs whose values some later op reads, or only the final sums), and
# products. The sparse and dense Hessians must equal the HVP sweeps' at new points.
_UNARY = (np.sin, np.tanh, lambda v: v * v, np.exp, lambda v: np.log1p(v * v))


def _program(ops, n):
    def f(x):
        pool = [x[1:], x[:-1], 0.5 * x[1:] - 2.0 * x[:-1]]
        total = 0.0
        for kind, a, b, k in ops:
            u, v = pool[a % len(pool)], pool[b % len(pool)]
            if kind == 0:
                w = _UNARY[k % len(_UNARY)](0.3 * u)
            elif kind == 1:
                w = 1.5 * u - 0.25 * v + 1.0  # a LIN run
            elif kind == 2:
                w = u * v
            else:
                total = total + (k % 3 + 1) * np.sum(u)  # values only the function value reads
                continue
            pool.append(w)
        return total + np.sum(pool[-1]) + 0.1 * np.sum(pool[-2] * pool[-3])
    return f


@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50), st.integers(0, 50),
                          st.integers(0, 50)), min_size=2, max_size=7),
       st.integers(0, 2 ** 31 - 1))
def test_random_array_programs_one_call_paths(ops, seed):
    n = 300
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-0.5, 0.5, n)
    f = _program(ops, n)
    tape = jitad.record(f, x0)
    assume(tape.code.shape[0] >= 1000 and tape._runs() is not None)
    points = [x0 + 0.01 * rng.standard_normal(n) for _ in range(6)]
    refs = [tape._dense_hessian(x, None) for x in points]  # computed first: the point arrays
    # then hold other points' values when the skipping sweeps run (stale values would show)
    for x, ref in zip(points, refs):
        tol = 1e-11 * max(1.0, np.abs(ref).max())
        np.testing.assert_allclose(tape.sparse_hessian(x).toarray(), ref, rtol=1e-11, atol=tol)
        np.testing.assert_allclose(tape.hessian(x), ref, rtol=1e-11, atol=tol)
        # a value after the derivative-only sweeps: not read from their incomplete point arrays
        np.testing.assert_allclose(tape.forward(x), f(x), rtol=1e-12, atol=1e-12)
