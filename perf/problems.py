"""Benchmark problems shared by the scripts in perf/.

Each Problem holds a function written with plain NumPy (what a user hands to `jitad.record`),
the arguments to record it at, and a hand-written `@njit` value and gradient with explicit loops
(the ceiling a tape can be compared against). All problems are deterministic (fixed seeds).

    from problems import all_problems, rosenbrock_problem
    for p in all_problems():
        tape = jitad.record(p.func, *p.args)
        g = tape.gradient(p.x0)                       # == p.ref_grad(p.x0, *p.ref_args)

The reference functions take the flat input vector x (all arguments flattened in C order and
concatenated, the same x a Tape takes) followed by `ref_args` (constant data such as X, y).
"""
from dataclasses import dataclass, field

import numpy as np
from numba import njit

_njit = njit(cache=True, error_model="numpy", nogil=True)


@dataclass
class Problem:
    name: str          # short label for tables
    func: object       # NumPy code to record: func(*args) -> scalar
    args: tuple        # arguments to record func at
    ref_f: object      # @njit f(x, *ref_args) -> float (hand-written)
    ref_grad: object   # @njit g(x, *ref_args) -> (n,) (hand-written)
    ref_args: tuple = ()
    dense_hessian: bool = True  # whether a dense n x n Hessian is reasonable to benchmark
    notes: str = ""
    x0: np.ndarray = field(init=False)

    def __post_init__(self):
        self.x0 = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in self.args])

    @property
    def n(self):
        return self.x0.shape[0]

    def points(self, k):
        """k distinct points close to x0 (x0 first), for replay and cache-defeating timings."""
        wiggle = np.cos(np.arange(self.n) * 0.7 + 0.3)
        return [self.x0 + (1e-6 * j) * wiggle for j in range(k)]


# ------------------------------------------------------------------ chained Rosenbrock
def rosenbrock(x):
    """Chained Rosenbrock, NumPy style: sum(100*(x[1:] - x[:-1]**2)**2 + (1 - x[:-1])**2)."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_loop(x):
    """The same function as a Python loop over scalars (traced ones here; torch, JAX and CasADi
    elements in the peer benchmarks)."""
    s = 0.0
    for i in range(x.shape[0] - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        s = s + 100.0 * a * a + b * b
    return s


@_njit
def rosenbrock_f(x):
    s = 0.0
    for i in range(x.shape[0] - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        s += 100.0 * a * a + b * b
    return s


@_njit
def rosenbrock_g(x):
    n = x.shape[0]
    g = np.zeros(n)
    for i in range(n - 1):
        a = x[i + 1] - x[i] * x[i]
        g[i] += -400.0 * x[i] * a - 2.0 * (1.0 - x[i])
        g[i + 1] += 200.0 * a
    return g


def rosenbrock_problem(n, loop=False, seed=0):
    x = np.random.default_rng(seed).uniform(-1.2, 1.2, n)
    kind = "scalar loop" if loop else "numpy"
    return Problem(f"rosenbrock {kind}", rosenbrock_loop if loop else rosenbrock, (x,),
                   rosenbrock_f, rosenbrock_g, dense_hessian=n <= 1000)


# ------------------------------------------------------------------ logistic regression
def logistic_problem(m=1000, d=50, lam=0.1, seed=1, dense_hessian=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d))
    w_true = rng.standard_normal(d)
    y = np.where(X @ w_true + 0.5 * rng.standard_normal(m) > 0, 1.0, -1.0)
    w0 = 0.1 * rng.standard_normal(d)

    def logistic_loss(w):
        return np.sum(np.log1p(np.exp(-y * (X @ w)))) + 0.5 * lam * (w @ w)

    return Problem(f"logistic regression {m}x{d}", logistic_loss, (w0,), logistic_f, logistic_g,
                   ref_args=(X, y, lam), dense_hessian=dense_hessian)


@_njit
def logistic_f(w, X, y, lam):
    m, d = X.shape
    s = 0.0
    for k in range(m):
        z = 0.0
        for j in range(d):
            z += X[k, j] * w[j]
        s += np.log1p(np.exp(-y[k] * z))
    r = 0.0
    for j in range(d):
        r += w[j] * w[j]
    return s + 0.5 * lam * r


@_njit
def logistic_g(w, X, y, lam):
    m, d = X.shape
    g = np.empty(d)
    for j in range(d):
        g[j] = lam * w[j]
    for k in range(m):
        z = 0.0
        for j in range(d):
            z += X[k, j] * w[j]
        e = np.exp(-y[k] * z)
        c = -y[k] * e / (1.0 + e)  # d/dz log1p(exp(-y z))
        for j in range(d):
            g[j] += c * X[k, j]
    return g


# ------------------------------------------------------------------ Lennard-Jones
def lennard_jones_problem(n_particles=30, seed=2):
    """Perturbed cubic lattice (spacing 1.1, near the pair minimum 2**(1/6)) of n particles."""
    side = int(np.ceil(n_particles ** (1.0 / 3.0))) + 1
    grid = np.stack(np.meshgrid(*(np.arange(side),) * 3, indexing="ij"), -1).reshape(-1, 3)
    pos = 1.1 * grid[:n_particles].astype(np.float64)
    pos += 0.05 * np.random.default_rng(seed).standard_normal(pos.shape)
    I, J = np.triu_indices(n_particles, 1)

    def lj_energy(x):
        d = x[I] - x[J]                       # (pairs, 3)
        r = np.sqrt(np.sum(d * d, axis=1))
        return np.sum(4.0 * (r ** -12 - r ** -6))

    return Problem(f"lennard-jones {n_particles}", lj_energy, (pos,), lj_f, lj_g)


@_njit
def lj_f(x):
    n = x.shape[0] // 3
    e = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            dx = x[3 * i] - x[3 * j]
            dy = x[3 * i + 1] - x[3 * j + 1]
            dz = x[3 * i + 2] - x[3 * j + 2]
            inv2 = 1.0 / (dx * dx + dy * dy + dz * dz)
            inv6 = inv2 * inv2 * inv2
            e += 4.0 * (inv6 * inv6 - inv6)
    return e


@_njit
def lj_g(x):
    n = x.shape[0] // 3
    g = np.zeros(x.shape[0])
    for i in range(n):
        for j in range(i + 1, n):
            dx = x[3 * i] - x[3 * j]
            dy = x[3 * i + 1] - x[3 * j + 1]
            dz = x[3 * i + 2] - x[3 * j + 2]
            inv2 = 1.0 / (dx * dx + dy * dy + dz * dz)
            inv6 = inv2 * inv2 * inv2
            c = 2.0 * 4.0 * inv2 * (3.0 * inv6 - 6.0 * inv6 * inv6)  # 2 * dE/d(r^2)
            g[3 * i] += c * dx
            g[3 * i + 1] += c * dy
            g[3 * i + 2] += c * dz
            g[3 * j] -= c * dx
            g[3 * j + 1] -= c * dy
            g[3 * j + 2] -= c * dz
    return g


# ------------------------------------------------------------------ the benchmark set
def all_problems():
    """The problems of perf/bench_tape.py, in table order."""
    return [
        rosenbrock_problem(100),
        rosenbrock_problem(1000),
        rosenbrock_problem(100_000),
        rosenbrock_problem(100, loop=True),
        logistic_problem(),
        logistic_problem(100_000, 50, dense_hessian=False),
        lennard_jones_problem(),
    ]
