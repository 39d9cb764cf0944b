"""The Tape as an object: flat inputs/outputs, every derivative method and how they agree,
replay at new points, multi-direction sweeps, weights, constants staying off the tape, Python
loops over traced scalars, large recordings and concurrent use from several threads.
"""
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der, rosen_hess

import jitad
from fdcheck import assert_close, assert_fd_close, fd_gradient, fd_hessian, fd_jacobian


def mixed(a, s, B):
    """R^(3 + 1 + 6) -> R^(2 + 1 + 3): several arguments and a tuple of outputs."""
    u = np.sin(a) * s + B.T @ (B @ a)
    v = np.sum(B ** 2) * np.exp(-s * s)
    return u[:2] * a[1], v, np.tanh(B[1] - a * s)


def mixed_flat(z):
    a, s, B = z[:3], z[3], z[4:].reshape(2, 3)
    u, v, w = mixed(a, s, B)
    return np.concatenate([np.ravel(u), [v], np.ravel(w)])


A0 = np.array([0.3, -1.2, 0.8])
S0 = 0.7
B0 = np.array([[1.0, 0.5, -0.3], [0.2, -0.9, 1.4]])
Z0 = np.concatenate([A0, [S0], B0.ravel()])
Z1 = Z0 * 0.9 + 0.1 * np.cos(np.arange(Z0.size))


@pytest.fixture(scope="module")
def mixed_tape():
    return jitad.record(mixed, A0, S0, B0)


def test_sizes_and_shapes(mixed_tape):
    t = mixed_tape
    assert t.n_inputs == 10 and t.n_outputs == 6
    assert t.input_shapes == [(3,), (), (2, 3)]
    assert t.output_shapes == [(2,), (), (3,)]
    assert t.output_is_tuple
    assert_close(t.x0, Z0, rtol=0, atol=0)
    assert len(t) > 0 and isinstance(len(t), int)
    assert "Tape" in repr(t)


def test_forward_replays_at_new_points(mixed_tape):
    for z in (Z0, Z1, -Z1, Z1 * 2.0):
        assert_close(mixed_tape.forward(z), mixed_flat(z), rtol=1e-14, atol=1e-14)


def test_forward_accepts_lists_and_ints(mixed_tape):
    assert_close(mixed_tape.forward(list(Z1)), mixed_flat(Z1), rtol=1e-14, atol=1e-14)
    t = jitad.record(lambda x: x * x, np.array([1, 2, 3]))  # integer arguments become float64
    assert_close(t.forward(np.array([1, 2, 3])), [1.0, 4.0, 9.0], rtol=0, atol=0)
    assert_close(t.jacobian(np.array([1, 2, 3])), np.diag([2.0, 4.0, 6.0]), rtol=0, atol=0)


def test_jacobian_against_fd_and_modes(mixed_tape):
    """Jacobian (reverse mode here, n > m) == FD == stacked JVPs == stacked VJPs."""
    t = mixed_tape
    J = t.jacobian(Z1)
    assert J.shape == (6, 10)
    assert_fd_close(J, fd_jacobian(mixed_flat, Z1), rtol=1e-8, atol=1e-9)
    _, JV = t.jvp(Z1, np.eye(10))
    assert_close(JV, J, rtol=1e-14, atol=1e-14)
    _, WJ = t.vjp(Z1, np.eye(6))
    assert_close(WJ, J, rtol=1e-14, atol=1e-14)


def test_jacobian_forward_mode_tall():
    """n <= m: forward mode; more than one block of directions (n > 8)."""
    def f(x):
        return np.concatenate([np.sin(x) * x[::-1], np.cumsum(x) ** 2, [np.prod(x[:4])]])

    x0 = np.linspace(-1.0, 1.2, 11)
    t = jitad.record(f, x0)
    assert t.n_inputs <= t.n_outputs
    x = x0[::-1] + 0.05
    J = t.jacobian(x)
    assert_fd_close(J, fd_jacobian(f, x), rtol=1e-8, atol=1e-9)
    _, WJ = t.vjp(x, np.eye(t.n_outputs))
    assert_close(J, WJ, rtol=1e-13, atol=1e-14)


def test_jacobian_reverse_mode_many_blocks():
    M = np.cos(np.arange(19 * 25).reshape(19, 25))

    def f(x):
        return np.tanh(M @ x) + x[:19] * x[6:]

    x = np.sin(np.arange(25.0))
    t = jitad.record(f, x)
    J = t.jacobian(x)
    d = 1 - np.tanh(M @ x) ** 2
    ref = d[:, None] * M
    ref[np.arange(19), np.arange(19)] += x[6:]
    ref[np.arange(19), np.arange(6, 25)] += x[:19]
    assert_close(J, ref, rtol=1e-13, atol=1e-14)


def test_jvp_vjp_shapes_and_consistency(mixed_tape):
    t = mixed_tape
    rng = np.random.default_rng(1)
    u = rng.normal(size=10)
    w = rng.normal(size=6)
    y, Ju = t.jvp(Z1, u)
    assert y.shape == (6,) and Ju.shape == (6,)
    assert_close(y, mixed_flat(Z1), rtol=1e-14, atol=1e-14)
    y2, wJ = t.vjp(Z1, w)
    assert y2.shape == (6,) and wJ.shape == (10,)
    assert_close(y2, y, rtol=0, atol=0)
    assert_close(w @ Ju, wJ @ u, rtol=1e-12, atol=1e-13)   # w.(J u) == (w J).u
    J = t.jacobian(Z1)
    assert_close(Ju, J @ u, rtol=1e-13, atol=1e-13)
    assert_close(wJ, w @ J, rtol=1e-13, atol=1e-13)
    # k directions at once == one at a time
    U = rng.normal(size=(10, 5))
    _, JU = t.jvp(Z1, U)
    assert JU.shape == (6, 5)
    for j in range(5):
        assert_close(JU[:, j], t.jvp(Z1, U[:, j])[1], rtol=1e-14, atol=1e-14)
    W = rng.normal(size=(4, 6))
    _, WJ = t.vjp(Z1, W)
    assert WJ.shape == (4, 10)
    for j in range(4):
        assert_close(WJ[j], t.vjp(Z1, W[j])[1], rtol=1e-14, atol=1e-14)
    # single-column 2-D directions keep their 2-D shape
    assert t.jvp(Z1, U[:, :1])[1].shape == (6, 1)
    assert t.vjp(Z1, W[:1])[1].shape == (1, 10)


def test_weighted_hessian_and_hvp_vector_output(mixed_tape):
    """H_w of sum_k w_k y_k: == sum of weighted per-output Hessians, == FD of w J, symmetric."""
    t = mixed_tape
    rng = np.random.default_rng(2)
    w = rng.normal(size=6)
    H = t.hessian(Z1, w)
    assert H.shape == (10, 10)
    assert_close(H, H.T, rtol=0, atol=0)
    Hsum = sum(w[k] * t.hessian(Z1, np.eye(6)[k]) for k in range(6))
    assert_close(H, Hsum, rtol=1e-12, atol=1e-13)
    assert_fd_close(H, fd_jacobian(lambda z: t.vjp(z, w)[1], Z1), rtol=1e-8, atol=1e-9)
    assert_fd_close(H, fd_hessian(lambda z: w @ mixed_flat(z), Z1), rtol=1e-5, atol=1e-6)
    V = rng.normal(size=(10, 3))
    HV = t.hvp(Z1, V, w)
    assert HV.shape == (10, 3)
    assert_close(HV, H @ V, rtol=1e-12, atol=1e-13)
    for j in range(3):
        Hv = t.hvp(Z1, V[:, j], w)
        assert Hv.shape == (10,)
        assert_close(Hv, HV[:, j], rtol=1e-14, atol=1e-14)
    # weights act linearly
    w2 = rng.normal(size=6)
    assert_close(t.hessian(Z1, 2 * w - w2), 2 * H - t.hessian(Z1, w2), rtol=1e-12, atol=1e-12)


def test_scalar_output_all_methods_agree():
    def f(x):
        return np.sum(np.exp(0.3 * x) * np.cos(x[::-1])) + np.prod(x[:3]) + (x @ x) ** 1.5

    x0 = np.linspace(0.2, 1.5, 12)  # 12 > 8: several Hessian blocks
    t = jitad.record(f, x0)
    x = x0[::-1] * 1.1
    y, g = t.value_and_gradient(x)
    assert np.ndim(y) == 0 and g.shape == (12,)
    assert_close(y, f(x), rtol=1e-14, atol=0)
    assert_close(g, t.gradient(x), rtol=0, atol=0)
    assert_fd_close(g, fd_gradient(f, x), rtol=1e-8, atol=1e-9)
    assert_close(t.jacobian(x), g[None, :], rtol=1e-14, atol=1e-14)
    assert_close(t.vjp(x, np.ones(1))[1], g, rtol=1e-14, atol=1e-14)
    assert_close(t.vjp(x, [2.5])[1], 2.5 * g, rtol=1e-14, atol=1e-14)
    u = np.cos(np.arange(12.0))
    assert_close(t.jvp(x, u)[1], [g @ u], rtol=1e-13, atol=1e-13)
    H = t.hessian(x)
    assert_close(H, H.T, rtol=0, atol=0)
    assert_close(H, t.hessian(x, np.ones(1)), rtol=0, atol=0)
    assert_close(t.hessian(x, [3.0]), 3 * H, rtol=1e-14, atol=1e-14)
    assert_fd_close(H, fd_jacobian(t.gradient, x), rtol=1e-8, atol=1e-9)
    assert_close(t.hvp(x, u), H @ u, rtol=1e-12, atol=1e-12)
    assert_close(t.hvp(x, np.eye(12)), H, rtol=1e-12, atol=1e-12)
    assert_close(t.hvp(x, u, np.array([-2.0])), -2 * (H @ u), rtol=1e-12, atol=1e-12)


def test_replay_then_back_to_recording_point():
    """Cached per-point partials must not leak between points."""
    t = jitad.record(lambda x: np.sum(np.sin(x) * x), np.array([0.1, 0.2]))
    xs = [np.array([0.1, 0.2]), np.array([1.0, -2.0]), np.array([0.1, 0.2]), np.array([3.0, 0.5])]
    for x in xs * 2:
        g = np.sin(x) + x * np.cos(x)
        assert_close(t.gradient(x), g, rtol=1e-15, atol=1e-15)
        assert_close(t.hessian(x), np.diag(2 * np.cos(x) - x * np.sin(x)), rtol=1e-14, atol=1e-15)
        assert_close(t.forward(x), [np.sum(np.sin(x) * x)], rtol=1e-15, atol=0)
    # an x array modified in place after a call must not be mistaken for the cached point
    x = np.array([0.5, 0.6])
    t.gradient(x)
    x[0] = 2.0
    assert_close(t.gradient(x), np.sin(x) + x * np.cos(x), rtol=1e-15, atol=1e-15)


def test_results_are_not_views_of_internal_buffers():
    t = jitad.record(lambda x: np.sin(x), np.array([0.1, 0.2]))
    x = np.array([0.3, 0.4])
    y = t.forward(x)
    y[:] = 99.0
    assert_close(t.forward(x), np.sin(x), rtol=0, atol=0)
    t = jitad.record(lambda x: np.sum(x ** 3), np.array([0.1, 0.2]))
    g = t.gradient(x)
    g[:] = 99.0
    assert_close(t.gradient(x), 3 * x ** 2, rtol=1e-15, atol=0)
    H = t.hessian(x)
    H[:] = 99.0
    assert_close(t.hessian(x), np.diag(6 * x), rtol=1e-15, atol=0)


@pytest.mark.parametrize("n", [1, 3])
def test_results_survive_later_calls(n):
    """Every returned array is the caller's own: later calls (which reuse work buffers) must not
    change it. Covers each method with single and multiple directions."""
    t = jitad.record(lambda x: (np.sum(np.sin(x) * x), np.cos(x) * x[0]), np.linspace(0.2, 0.9, n))
    m = t.n_outputs
    x, x2 = np.linspace(0.3, 1.1, n), np.linspace(-0.7, 0.4, n)
    calls = {
        "forward": lambda z: t.forward(z),
        "jvp1": lambda z: t.jvp(z, np.ones(n))[1],
        "jvpk": lambda z: t.jvp(z, np.ones((n, 2)))[1],
        "jvpk1": lambda z: t.jvp(z, np.ones((n, 1)))[1],
        "vjp1": lambda z: t.vjp(z, np.ones(m))[1],
        "vjpk": lambda z: t.vjp(z, np.ones((2, m)))[1],
        "vjpk1": lambda z: t.vjp(z, np.ones((1, m)))[1],
        "jacobian": lambda z: t.jacobian(z),
        "hvp1": lambda z: t.hvp(z, np.ones(n), np.ones(m)),
        "hvpk": lambda z: t.hvp(z, np.ones((n, 2)), np.ones(m)),
        "hvpk1": lambda z: t.hvp(z, np.ones((n, 1)), np.ones(m)),
        "hessian": lambda z: t.hessian(z, np.ones(m)),
    }
    bad = []
    for name, call in calls.items():
        r = call(x)
        keep = r.copy()
        for other in calls.values():
            other(x2)
            other(x)
        if not np.array_equal(r, keep):
            bad.append(name)
    assert not bad, f"results changed by later calls: {bad}"


def test_output_that_is_an_input_or_a_constant():
    t = jitad.record(lambda x: x, np.array([1.0, 2.0]))
    assert len(t) == 0
    assert_close(t.jacobian(np.array([3.0, 4.0])), np.eye(2), rtol=0, atol=0)
    t = jitad.record(lambda x: 3.5, np.array([1.0, 2.0]))
    assert t.n_outputs == 1
    assert_close(t.forward(np.array([7.0, 8.0])), [3.5], rtol=0, atol=0)
    assert_close(t.gradient(np.array([7.0, 8.0])), [0.0, 0.0], rtol=0, atol=0)
    assert_close(t.hessian(np.array([7.0, 8.0])), np.zeros((2, 2)), rtol=0, atol=0)
    t = jitad.record(lambda x: (x[0], np.ones(2), x[1] * x[0]), np.array([1.0, 2.0]))
    assert t.n_outputs == 4
    assert_close(t.forward(np.array([3.0, 5.0])), [3.0, 1.0, 1.0, 15.0], rtol=0, atol=0)
    assert_close(t.jacobian(np.array([3.0, 5.0])), [[1, 0], [0, 0], [0, 0], [5, 3]], rtol=0,
                 atol=0)


def test_scalar_and_zero_d_arguments():
    t = jitad.record(lambda a, b, c: a * b + c ** 2, 2.0, np.array(3.0), 4)
    assert t.n_inputs == 3 and t.input_shapes == [(), (), ()]
    assert_close(t.gradient(np.array([1.0, 2.0, 3.0])), [2.0, 1.0, 6.0], rtol=0, atol=0)
    assert_close(t.hessian(np.array([1.0, 2.0, 3.0])), [[0, 1, 0], [1, 0, 0], [0, 0, 2]],
                 rtol=0, atol=0)


def test_input_influence():
    t = jitad.record(lambda x: x[0] * x[2] + np.sum(x[4:] * 0.0) + 1.0, np.ones(6))
    infl = t.input_influence()
    assert infl.dtype == bool
    assert_close(infl, [1, 0, 1, 0, 1, 1], rtol=0, atol=0)
    t = jitad.record(lambda x: np.ones(3) * 2.0, np.ones(2))
    assert not t.input_influence().any()


# ------------------------------------------------------------------ constants
def test_constant_operations_are_not_recorded():
    C = np.array([0.5, 1.5, 2.5])

    def plain(x):
        return np.sum(x * C) + 1.0

    def with_constant_work(x):
        D = np.exp(np.sin(C)) @ np.outer(C, C) / np.linalg.norm(C)  # all constant
        k = 0.0
        for c in C:                                                 # Python floats
            k = k + math.cos(c) ** 2
        scale = np.sum(C) / 3 + np.max(C) - 2.0 - 1.5               # = 0.5 + 0 ...
        return np.sum(x * (C * (scale + 0.5))) + ((k - k + 1.0) + 0.0 * np.sum(D[:0]))

    t1 = jitad.record(plain, np.ones(3))
    t2 = jitad.record(with_constant_work, np.ones(3))
    assert len(t2) == len(t1)
    x = np.array([1.0, -2.0, 0.3])
    assert_close(t2.forward(x), t1.forward(x), rtol=1e-15, atol=1e-15)
    assert_close(t2.gradient(x), C, rtol=1e-15, atol=0)


def test_constant_elements_of_traced_arrays_stay_constant():
    """Elements set to constants are constants: operations on them alone are not recorded."""
    def f(x):
        y = x.copy()
        y[0] = 3.0
        c = y[0] * 2.0 + np.sin(y[0])   # y[0] is a constant: not recorded
        return y[1] * c

    def g(x):
        return x[1] * (6.0 + math.sin(3.0))

    tf, tg = jitad.record(f, np.ones(3)), jitad.record(g, np.ones(3))
    assert len(tf) - tf.op_counts().get("const", 0) == len(tg)
    x = np.array([1.0, 2.0, 3.0])
    assert_close(tf.forward(x), tg.forward(x), rtol=1e-15, atol=0)
    assert_close(tf.gradient(x), [0.0, 6.0 + math.sin(3.0), 0.0], rtol=1e-15, atol=0)


def test_mixing_constant_and_traced_elements_in_an_array():
    def f(x):
        v = np.stack([x[0], 2.0, x[1] ** 2, np.float64(-1.0)])
        return np.sum(np.sin(v)), v

    t = jitad.record(f, np.array([0.3, 0.4]))
    x = np.array([1.0, -0.5])
    v = np.array([1.0, 2.0, 0.25, -1.0])
    assert_close(t.forward(x), np.concatenate([[np.sum(np.sin(v))], v]), rtol=1e-15, atol=1e-15)
    assert_close(t.jacobian(x)[0], [np.cos(1.0), np.cos(0.25) * 2 * -0.5], rtol=1e-15, atol=0)


# ------------------------------------------------------------------ Python loops
def rosen_loop(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def rosen_iter(x):
    s = 0
    prev = None
    for xi in x:  # iteration yields traced scalars
        if prev is not None:
            s += 100 * (xi - prev * prev) ** 2 + (1 - prev) ** 2
        prev = xi
    return s


def rosen_numpy(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize("f", [rosen_loop, rosen_iter, rosen_numpy])
def test_rosenbrock(f):
    n = 12
    x0 = np.linspace(-1.2, 1.1, n)
    t = jitad.record(f, x0)
    for x in (x0, np.cos(np.arange(n)), np.ones(n)):
        assert_close(t.forward(x), [rosen(x)], rtol=1e-14, atol=1e-14)
        assert_close(t.gradient(x), rosen_der(x), rtol=1e-13, atol=1e-12)
        assert_close(t.hessian(x), rosen_hess(x), rtol=1e-13, atol=1e-12)
        v = np.sin(np.arange(n))
        assert_close(t.hvp(x, v), rosen_hess(x) @ v, rtol=1e-12, atol=1e-11)


def test_loop_over_traced_scalars_builds_vector_with_stack():
    def f(x):
        out = []
        acc = x[0]
        for i in range(1, len(x)):
            acc = acc * 0.5 + math.pi * np.sin(x[i])
            out.append(acc)
        return jitad.stack(out)

    x0 = np.array([0.1, 0.5, -0.3, 1.2])
    t = jitad.record(f, x0)
    x = np.array([1.0, 0.2, 0.4, -0.8])
    assert_close(t.forward(x), f(x), rtol=1e-15, atol=1e-15)
    assert_fd_close(t.jacobian(x), fd_jacobian(f, x), rtol=1e-8, atol=1e-9)


# ------------------------------------------------------------------ size and threads
def test_record_one_million_elements():
    n = 10 ** 6
    x = np.linspace(-2.0, 2.0, n)
    t = jitad.record(lambda z: np.sum(z ** 2 + np.sin(z)), x)
    assert t.n_inputs == n and t.n_outputs == 1
    assert len(t) <= 3 * n + 10
    x1 = x[::-1] * 0.5
    assert_close(t.forward(x1), [np.sum(x1 ** 2 + np.sin(x1))], rtol=1e-12, atol=0)
    assert_close(t.gradient(x1), 2 * x1 + np.cos(x1), rtol=1e-14, atol=1e-15)
    v = np.cos(np.arange(n) * 1e-3)
    assert_close(t.hvp(x1, v), (2 - np.sin(x1)) * v, rtol=1e-14, atol=1e-15)


def test_nary_ops_are_compact():
    """Axis sums and dense mat-vecs: one op per output element, not chains of binary adds."""
    X = np.ones((40, 30))
    t = jitad.record(lambda z: np.sum(z, axis=1), X)
    assert len(t) == 40
    A = np.ones((25, 30))
    t = jitad.record(lambda z: A @ z, np.ones(30), optimize=False)  # CSE would merge the rows
    assert len(t) == 25
    t = jitad.record(lambda Z, z: Z @ z, np.ones((25, 30)), np.ones(30))
    assert len(t) == 25


def test_concurrent_use_from_threads():
    def f(x):
        return np.sum(np.sin(x) * np.roll(x, 1)) + np.sum(x ** 4)

    n = 40
    t = jitad.record(f, np.ones(n))
    pts = [np.cos(np.arange(n) * (k + 1) * 0.1) for k in range(16)]
    refs = []
    for x in pts:
        refs.append((t.forward(x), t.gradient(x), t.hessian(x), t.hvp(x, x)))
    barrier = threading.Barrier(4)

    def work(k):
        if k < 4:
            barrier.wait()
        x = pts[k]
        out = []
        for _ in range(5):
            out.append((t.forward(x), t.gradient(x), t.hessian(x), t.hvp(x, x)))
        return k, out

    with ThreadPoolExecutor(max_workers=4) as ex:
        for k, outs in ex.map(work, range(len(pts))):
            for res in outs:
                for a, b in zip(res, refs[k]):
                    assert_close(a, b, rtol=0, atol=0, err_msg=f"thread result for point {k}")


@pytest.mark.parametrize("func, args, J", [
    (lambda x: x, [np.arange(3.0)], np.eye(3)),
    (lambda x: 5.0, [np.arange(3.0)], np.zeros((1, 3))),
    (lambda: np.float64(2.0), [], np.zeros((1, 0))),
    (lambda x: np.sum(x) + 1.0, [np.zeros(0)], np.zeros((1, 0))),
    (lambda x: (x, x), [np.arange(2.0)], np.vstack([np.eye(2), np.eye(2)])),
], ids=["identity", "constant output", "no inputs", "empty input", "input returned twice"])
def test_degenerate_tapes(func, args, J):
    """Tapes without ops, without inputs, or whose outputs are inputs or constants still give
    every result with the right shape and value."""
    t = jitad.record(func, *args)
    x = np.concatenate([np.ravel(a) for a in args]) if args else np.zeros(0)
    m, n = J.shape
    assert (t.n_outputs, t.n_inputs) == (m, n)
    out = func(*args)
    y = np.concatenate([np.ravel(v) for v in (out if isinstance(out, tuple) else (out,))])
    assert_close(t.forward(x), y, rtol=0, atol=0)
    assert_close(t.jacobian(x), J, rtol=0, atol=0)
    w = np.arange(1.0, m + 1.0)
    assert_close(t.vjp(x, w)[1], w @ J, rtol=0, atol=0)
    assert_close(t.jvp(x, np.ones((n, 2)))[1], J @ np.ones((n, 2)), rtol=0, atol=0)
    assert_close(t.hessian(x, w), np.zeros((n, n)), rtol=0, atol=0)
    assert_close(t.hvp(x, np.ones((n, 2)), w), np.zeros((n, 2)), rtol=0, atol=0)


def test_recorder_appends_across_buffer_growth():
    """Appends of many sizes and fan-ins (crossing every buffer's capacity at different
    points: eptr holds one more entry than code) give exactly the arrays built by hand."""
    from jitad import opcodes as oc
    from jitad.recorder import Recorder
    rng = np.random.default_rng(3)
    rec = Recorder(4)
    want = {"code": [], "eptr": [0], "arg": [], "coef": [], "tptr": [0], "ta": []}
    square = oc.binary_code("power", oc.VC)
    # 255 then 1: the op arrays (256 entries at first) are full while eptr needs one more
    sizes = [255, 1, 256, 1, 300] + [int(k) for k in rng.integers(1, 300, size=60)]
    for step, K in enumerate(sizes):
        E = int(rng.integers(0, 4)) if step % 3 else 1
        code = oc.LIN if E != 1 or step % 2 else square
        args = rng.integers(0, rec.n_slots, size=(K, E))
        coef = rng.standard_normal((K, E))
        slots = rec.append(code, args, coef=coef if code == oc.LIN else None,
                           param=2.0 if code == square else 0.0)
        assert np.array_equal(slots, rec.n_slots - K + np.arange(K))
        for k in range(K):
            e0 = want["eptr"][-1]
            want["code"].append(code)
            want["arg"].extend(args[k])
            want["coef"].extend(coef[k] if code == oc.LIN else np.zeros(E))
            want["eptr"].append(e0 + E)
            if code == square:
                want["ta"].append(e0)
            want["tptr"].append(len(want["ta"]))
    rec.flush()
    for name, expected in want.items():
        assert np.array_equal(getattr(rec, name).view(), expected), name
    assert np.array_equal(rec.tb.view(), want["ta"])
