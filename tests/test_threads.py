"""Many threads on one Tape, one jitad.function, and recording at once: 8 worker threads x 500
mixed calls (forward, gradient, HVP, Hessian, ...) each, every result compared with the
single-threaded reference for the same call. The sweeps are deterministic (the parallel
Hessian's chunks depend only on the thread count), so results must match bit for bit."""
import threading

import numba
import numpy as np
import pytest

import jitad

N_THREADS = 8
CALLS = 500
C = np.linspace(0.5, 2.0, 24)


def big(x):
    """n = 64 and ~3300 ops: 64 HVP directions here run the prange path (n * n_slots is above
    tape.SERIAL_WORK), so concurrent parallel regions are exercised too; dense Hessians take
    the interaction path (`interaction.py`)."""
    s = 0.0
    for c in C[:14]:
        s = s + np.sin(c * x) * x
    return np.sum(s ** 2) + np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def small(x):
    return np.sum(np.exp(-x * x) * np.cos(x[::-1])) + np.prod(x[:3]) ** 2


def vector(x):
    A = np.arange(x.size * 3, dtype=float).reshape(3, -1) / x.size
    return np.tanh(A @ x) * np.sum(x ** 2)


def run_threads(work):
    """Run work(k) in N_THREADS threads started together; re-raise the first failure."""
    errors = []
    barrier = threading.Barrier(N_THREADS)

    def target(k):
        try:
            barrier.wait()
            work(k)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=target, args=(k,)) for k in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def check_calls(calls, points, seed, rare=()):
    """calls: {name: fn(x) -> array}. Reference single-threaded, then 8 threads x CALLS random
    (name, point) calls, each compared exactly with the reference. Names in `rare` (the
    expensive dense Hessians and 64-direction HVPs) are drawn 16x less often than the others."""
    ref = {(name, i): np.array(fn(x)) for name, fn in calls.items() for i, x in enumerate(points)}
    names = [name for name in calls for _ in range(1 if name in rare else 16)]
    done = [0] * N_THREADS

    def work(k):
        rng = np.random.default_rng(seed + k)
        for _ in range(CALLS):
            name = names[rng.integers(len(names))]
            i = int(rng.integers(len(points)))
            got = np.array(calls[name](points[i].copy()))
            assert got.shape == ref[name, i].shape, (name, i)
            assert np.array_equal(got, ref[name, i]), f"thread {k}: {name} at point {i} differs"
            done[k] += 1
    run_threads(work)
    assert sum(done) == N_THREADS * CALLS


def points(n, k=6):
    rng = np.random.default_rng(n)
    return [rng.uniform(-1.0, 1.0, n) for _ in range(k)]


def test_one_tape_from_many_threads():
    if numba.get_num_threads() > 1:
        assert 64 * (64 + len(jitad.record(big, np.ones(64)))) > jitad.tape.SERIAL_WORK
    tb = jitad.record(big, np.ones(64))
    ts = jitad.record(small, np.ones(7))
    tv = jitad.record(vector, np.ones(5))
    V3 = np.linspace(-1, 1, 64 * 3).reshape(64, 3)
    I64 = np.eye(64)
    w = np.array([0.3, -1.0, 2.0])
    calls = {
        "forward": tb.forward, "gradient": tb.gradient,
        "value_and_gradient": lambda x: np.array([*tb.value_and_gradient(x)[1],
                                                  tb.value_and_gradient(x)[0]]),
        "hvp": lambda x: tb.hvp(x, np.cos(x)), "hvp3": lambda x: tb.hvp(x, V3),
        "hessian": tb.hessian, "hvp64": lambda x: tb.hvp(x, I64),
        "jvp": lambda x: tb.jvp(x, V3)[1], "vjp": lambda x: tb.vjp(x, np.ones(1))[1],
        "small_hessian": lambda x: ts.hessian(x[:7]),
        "small_gradient": lambda x: ts.gradient(x[:7]),
        "vec_jacobian": lambda x: tv.jacobian(x[:5]), "vec_hessian": lambda x: tv.hessian(x[:5], w),
        "vec_forward": lambda x: tv.forward(x[:5]),
    }
    check_calls(calls, points(64), seed=100, rare=("hessian", "hvp64"))


def test_one_function_from_many_threads():
    f = jitad.function(big)
    g = jitad.function(vector)
    calls = {
        "call": lambda x: f(x), "grad": f.grad, "hessian": f.hessian,
        "hvp": lambda x: f.hvp(x, v=np.sin(x))[1], "hessp": lambda x: f.hessp(x, x[::-1]),
        "value_and_grad": lambda x: f.value_and_grad(x)[1],
        "grad_2d": lambda x: f.grad(x.reshape(8, 8)),  # a second signature of the same function
        "vec_jacobian": lambda x: g.jacobian(x[:5]), "vec_call": lambda x: g(x[:5]),
    }
    check_calls(calls, points(64), seed=200, rare=("hessian",))
    assert f.n_traces == 2 and g.n_traces == 1


def test_first_calls_record_once_under_contention():
    """8 threads hit a fresh jitad.function with the same new shapes at once: one recording
    per signature, every thread gets the right answer."""
    f = jitad.function(small)
    xs = points(7, 2) + [np.linspace(-1, 1, 12).reshape(3, 4)]
    out = [None] * N_THREADS
    run_threads(lambda k: out.__setitem__(k, [f.grad(x) for x in xs]))
    ref = [jitad.grad(small)(x) for x in xs]
    for got in out:
        for a, b in zip(got, ref):
            assert np.array_equal(a, b)
    assert f.n_traces == 2


def test_recording_from_many_threads():
    """Recording is per thread (the active recorder is thread-local): 8 threads record and
    differentiate different functions at different points at once."""
    funcs = [big, small, vector, lambda x: np.sum(np.log1p(x * x)) * np.max(x)]
    pts = points(64, 3)
    cases = [(f, x) for f in funcs for x in pts]

    def result(f, x):
        x = x[:5] if f is vector else x
        tape = jitad.record(f, x)
        w = np.ones(tape.n_outputs)
        return np.concatenate([tape.forward(x), tape.vjp(x, w)[1], tape.hessian(x, w).ravel()])
    ref = [result(f, x) for f, x in cases]
    one_shot = [jitad.hessian(small, x[:7]) for x in pts]

    def work(k):
        rng = np.random.default_rng(300 + k)
        for _ in range(12):
            j = int(rng.integers(len(cases)))
            assert np.array_equal(result(*cases[j]), ref[j]), f"thread {k}, case {j}"
        # the one-shot functional API records inside too (and sums dense rows, not the
        # replayed tape's way: the same up to rounding)
        x = pts[k % 3][:7]
        H = jitad.hessian(small, x)
        assert np.array_equal(H, one_shot[k % 3])
        np.testing.assert_allclose(H, jitad.record(small, x).hessian(x), rtol=1e-13, atol=1e-13)
    run_threads(work)


@pytest.mark.parametrize("lazy", [False, True])
def test_shared_lazy_hessian(lazy):
    """A LazyHessian shared by threads computes each row once and gives the dense rows."""
    x = points(64, 1)[0]
    H = jitad.hessian(big, x, lazy=lazy)
    dense = jitad.hessian(big, x)
    rows = [None] * N_THREADS

    def work(k):
        rows[k] = [np.array(H[i]) for i in range(k, 64, 3)]
    run_threads(work)
    for k in range(N_THREADS):
        for r, i in zip(rows[k], range(k, 64, 3)):
            assert np.allclose(r, dense[i], rtol=1e-12, atol=1e-12)
