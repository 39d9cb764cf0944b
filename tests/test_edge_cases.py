"""Special values and non-differentiable points: values follow numpy, first derivatives follow
torch's conventions (README "Conventions at non-differentiable points and special values"),
nothing crashes or warns beyond what numpy itself says for the values; dense results that
cannot fit in memory are refused before allocating; a large tape records and replays."""
import math
import warnings

import numpy as np
import pytest

import jitad
from jitad import limits
from fdcheck import assert_close

INF, NAN = np.inf, np.nan

# name: (f, x, expected gradient (torch's convention), expected Hessian or None)
CASES = {
    "sqrt at 0": (np.sqrt, [0.0], [INF], [[-INF]]),
    "cbrt at 0": (np.cbrt, [0.0], [INF], None),
    "log at 0": (np.log, [0.0], [INF], [[-INF]]),
    "log of negative": (np.log, [-1.0], [-1.0], [[-1.0]]),
    "abs at 0": (np.abs, [0.0], [0.0], [[0.0]]),
    "maximum tie": (lambda x: np.maximum(x[0], x[1]), [1.0, 1.0], [0.5, 0.5], [[0, 0], [0, 0]]),
    "minimum tie": (lambda x: np.minimum(x[0], x[1]), [1.0, 1.0], [0.5, 0.5], [[0, 0], [0, 0]]),
    "max reduction tie": (np.max, [1.0, 1.0, 0.0], [0.5, 0.5, 0.0], None),
    "clip at the bound": (lambda x: np.clip(x, 0.0, 1.0), [1.0], [0.5], None),
    "cube of negative": (lambda x: x ** 3, [-2.0], [12.0], [[-12.0]]),
    "x**-2 of negative": (lambda x: x ** -2, [-2.0], [0.25], [[0.375]]),
    "x**4.0 of negative": (lambda x: x ** 4.0, [-1.5], [-13.5], [[27.0]]),
    "x**0.5 of negative": (lambda x: x ** 0.5, [-1.5], [NAN], [[NAN]]),
    "x**0 at 0": (lambda x: x ** 0.0, [0.0], [0.0], [[0.0]]),
    "x**1 at 0": (lambda x: x ** 1.0, [0.0], [1.0], [[0.0]]),
    "a**b, a < 0": (lambda x: x[0] ** x[1], [-2.0, 3.0], [12.0, NAN], None),
    "0**b, b = 0": (lambda x: x[0] ** x[1], [0.0, 0.0], [0.0, 0.0], None),
    "0**b, b = 2": (lambda x: x[0] ** x[1], [0.0, 2.0], [0.0, 0.0], None),
    "0 * inf": (lambda x: x[0] * x[1], [0.0, INF], [INF, 0.0], [[0, 1], [1, 0]]),
    "0 * constant inf": (lambda x: x * INF, [0.0], [INF], [[0.0]]),
    "exp overflow": (np.exp, [1000.0], [INF], [[INF]]),
    "square overflow": (lambda x: x * x, [1e200], [2e200], [[2.0]]),
    "inf - inf": (lambda x: x[0] - x[1], [INF, INF], [1.0, -1.0], [[0, 0], [0, 0]]),
    "1 / 0": (lambda x: x[0] / x[1], [1.0, 0.0], [INF, -INF], None),
    "x / 0.0": (lambda x: x / 0.0, [2.0], [INF], None),
    "x / 0.0 scalar loop": (lambda x: x[0] / 0.0 + x[1], [2.0, 1.0], [INF, 1.0], None),
    "sin of nan": (np.sin, [NAN], [NAN], [[NAN]]),
    "nan stays local": (lambda x: x ** 2, [NAN, 3.0], [NAN, 6.0], [[2, 0], [0, 2]]),  # (x^2)'' = 2
    "fmax with nan": (lambda x: np.fmax(x[0], x[1]), [NAN, 1.0], [0.0, 1.0], None),
    # jitad's one deviation from torch here (torch gives 1 to both): JAX's 0
    "maximum with nan": (lambda x: np.maximum(x[0], x[1]), [NAN, 1.0], [0.0, 0.0], None),
}
NOT_TORCH = {"maximum with nan", "max reduction tie", "clip at the bound"}


def scalar(f):
    return lambda x: np.sum(f(x))


def numpy_value(f, x):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        v = np.sum(f(np.array(x)))
    return v, kinds(w)


def kinds(caught):
    """{'invalid value', 'divide by zero', ...}: numpy's warnings without the ufunc's name (numpy
    may say 'sqrt' where the code says ** 0.5)."""
    return sorted({str(m.message).split(" encountered")[0] for m in caught})


@pytest.mark.parametrize("name", list(CASES))
def test_values_follow_numpy_derivatives_the_convention(name):
    f, x, g, H = CASES[name]
    x = np.array(x)
    v_np, warned_np = numpy_value(f, x)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tape = jitad.record(scalar(f), x)
    assert kinds(w) == warned_np  # recording warns exactly where numpy does, for the values
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # replays never warn
        assert_close(tape.forward(x), [v_np], rtol=1e-15, atol=0)
        assert_close(tape.gradient(x), g, rtol=1e-15, atol=0)
        assert_close(tape.value_and_gradient(x)[0], v_np, rtol=1e-15, atol=0)
        Hx = tape.hessian(x)
        tape.hvp(x, np.ones_like(x))
        tape.jacobian(x)
    if H is not None:
        assert_close(Hx, H, rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", [n for n in CASES if n not in NOT_TORCH])
def test_first_derivatives_match_torch(name):
    torch = pytest.importorskip("torch")
    f, x, g, _ = CASES[name]
    tf = {"sqrt at 0": torch.sqrt, "cbrt at 0": lambda t: torch.sign(t) * t.abs() ** (1 / 3),
          "log at 0": torch.log, "log of negative": torch.log, "abs at 0": torch.abs,
          "maximum tie": lambda t: torch.maximum(t[0], t[1]),
          "minimum tie": lambda t: torch.minimum(t[0], t[1]),
          "exp overflow": torch.exp, "sin of nan": torch.sin,
          "fmax with nan": lambda t: torch.fmax(t[0], t[1])}.get(name, f)
    if name == "cbrt at 0":
        return  # torch has no cbrt; |t|**(1/3) at 0 is inf as here, covered by the table
    xt = torch.tensor(np.array(x), dtype=torch.float64, requires_grad=True)
    gt, = torch.autograd.grad(tf(xt).sum(), xt)
    with np.errstate(all="ignore"):  # numpy's own warnings for the values, silenced as in numpy
        tape = jitad.record(scalar(f), np.array(x))
    assert_close(tape.gradient(np.array(x)), gt.numpy(), rtol=1e-15, atol=0)


def test_max_reduction_splits_ties_and_sums_to_one():
    for x in ([2.0, 2.0, 2.0], [1.0, 3.0, 3.0, 0.0, 3.0], [5.0] * 7):
        x = np.array(x)
        g = jitad.record(np.max, x).gradient(x)
        assert math.isclose(g.sum(), 1.0) and np.all(g[x < x.max()] == 0)
        assert np.all(g[x == x.max()] > 0)


def test_nan_and_inf_inputs_replay_without_warnings():
    def f(x):
        return np.sum(np.log1p(np.exp(x)) * np.tanh(x) + np.sqrt(x * x + 1.0)) / x.size
    tape = jitad.record(f, np.linspace(-1, 1, 6))
    for x in ([NAN, 0, 1, 2, 3, 4], [INF, -INF, 0, 1, 2, 3], [1e308, -1e308, 0, 0, 0, 0]):
        x = np.array(x, dtype=float)
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            tape.forward(x)
            g = tape.gradient(x)
            tape.hessian(x)
            tape.hvp(x, np.ones((6, 3)))
        with np.errstate(all="ignore"):
            assert_close(tape.forward(x), [f(x)], rtol=1e-14, atol=0)
        finite = np.isfinite(x)
        assert np.all(np.isfinite(g[finite & (np.abs(x) < 1e300)]))


# ------------------------------------------------------------------ dense results too large
def test_dense_hessian_larger_than_memory_raises_before_allocating():
    phys = limits.physical_memory()
    if phys is None:
        pytest.skip("physical memory unknown on this platform")
    n = math.isqrt(phys // 8) + 1000  # n x n float64 exceeds physical memory
    x = np.linspace(0.5, 1.5, n)
    tape = jitad.record(lambda z: np.sum(z ** 2) * 0.5, x)
    with pytest.raises(MemoryError, match="lazy=True.*sparse_hessian"):
        tape.hessian(x)
    f = jitad.function(lambda z: np.sum(z ** 2) * 0.5)
    with pytest.raises(MemoryError, match="GiB"):
        f.hessian(x)
    H = jitad.hessian(lambda z: np.sum(z ** 2) * 0.5, x, lazy=True)  # the way out
    row = H[7]
    assert row.shape == (n,) and row[7] == 1.0 and row.sum() == 1.0


def test_dense_limit_applies_to_every_dense_result(monkeypatch):
    monkeypatch.setattr(limits, "DENSE_LIMIT", 8 * 100)  # 100 floats
    x = np.linspace(0.1, 1.0, 11)  # 121 > 100

    def f(z):
        return np.sum(np.sin(z) * z)
    tape = jitad.record(f, x)
    with pytest.raises(MemoryError, match="Hessian"):
        tape.hessian(x)
    with pytest.raises(MemoryError, match="Hessian"):
        jitad.hessian(f, x)
    with pytest.raises(MemoryError, match="Hessian"):
        jitad.function(f).hessian(x)
    with pytest.raises(MemoryError, match="Hessian"):
        jitad.function(lambda a, b: f(a) * b, argnums=0).hessian(x, 2.0)
    with pytest.raises(MemoryError, match="batched Hessian"):
        jitad.hessian(lambda X: np.sum(X ** 3, axis=1), np.ones((4, 6)), batch_axis=0)
    with pytest.raises(MemoryError, match="Hessian-vector"):
        tape.hvp(x, np.ones((11, 11)))
    with pytest.raises(MemoryError, match="Jacobian"):
        jitad.record(np.sin, x).jacobian(x)
    # what fits still works: 10 HVP directions, lazy rows, small Hessians
    assert tape.hvp(x, np.eye(11)[:, :9]).shape == (11, 9)
    H = jitad.hessian(f, x, lazy=True)
    assert_close(H[3], tape.hvp(x, np.eye(11)[3]), rtol=0, atol=0)
    assert jitad.record(f, x[:10]).hessian(x[:10]).shape == (10, 10)


# ------------------------------------------------------------------ a large tape
def test_large_tape_records_replays_and_differentiates():
    """A small version of perf/bench_bigtape.py (10^7 ops there): the same program, gradient
    against its analytic formula."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "perf"))
    import bench_bigtape as bb
    x = bb.point(20_000)
    tape = jitad.record(bb.program, x)
    assert len(tape) >= 10 * x.size
    assert_close(tape.forward(x), [bb.program(x)], rtol=1e-12, atol=0)
    assert_close(tape.gradient(x), bb.gradient(x), rtol=1e-12, atol=1e-12)
    x2 = x[::-1].copy()
    assert_close(tape.gradient(x2), bb.gradient(x2), rtol=1e-12, atol=1e-12)


def test_one_shot_calls_do_not_grow_the_per_thread_view_cache():
    """Every one-shot call makes a new tape; the per-thread views cached per tape must stay
    bounded (a Newton loop of jitad.hessian(f, x) would otherwise keep one entry per call)."""
    from jitad import workspace
    f = lambda x: np.sum(x ** 3)  # noqa: E731
    for i in range(workspace.MAX_VIEWS + 50):
        H = jitad.hessian(f, np.full(4, 1.0 + i))
    assert np.allclose(H, np.diag(np.full(4, 6.0 * (workspace.MAX_VIEWS + 49.0 + 1.0))))
    assert len(workspace.local().views) <= workspace.MAX_VIEWS
