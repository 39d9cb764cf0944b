"""The problems of perf/bench_peers.py, each written once per library.

A PeerCase wraps a perf/problems.py Problem (the NumPy function jitad records, the hand-written
@njit value and gradient) and adds the same function for JAX, torch and CasADi, and the
hand-written @njit HVP and Hessian of perf/ceilings.py. Every dialect takes the flat input
vector x (n,) and returns a scalar. The peer dialects receive the library's module as `lib`,
so this module imports none of them.
"""
from dataclasses import dataclass

import numpy as np

import ceilings
from problems import (Problem, lennard_jones_problem, logistic_problem, rosenbrock_loop,
                      rosenbrock_problem)


@dataclass
class PeerCase:
    key: str          # for --only: "rosenbrock-numpy-1000", "logreg-1000x200", "lj-30", ...
    label: str        # problem column of the tables
    family: str       # one line per library in the Hessian-vs-n plot
    p: Problem        # NumPy function, args, njit value/gradient
    ref_hvp: object   # @njit hvp(x, v, *ref_args)
    ref_hess: object  # @njit hess(x, *ref_args)
    jax_f: object     # jax_f(x, jnp) -> scalar
    torch_f: object   # torch_f(x, torch) -> scalar
    casadi_f: object  # casadi_f(x, casadi) -> SX scalar, x an SX column of length n

    @property
    def n(self):
        return self.p.n

    @property
    def dense(self):
        return self.p.dense_hessian

    def flat_func(self):
        """The NumPy function of the flat x (jitad records this)."""
        shape = self.p.args[0].shape
        return self.p.func if len(shape) == 1 else (lambda x: self.p.func(x.reshape(shape)))


# ------------------------------------------------------------------ chained Rosenbrock
def _rosen_array(x, lib):
    return lib.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _rosen_loop(x, lib=None):
    return rosenbrock_loop(x)


def rosenbrock_case(n, loop=False):
    p = rosenbrock_problem(n, loop=loop)
    if loop:
        return PeerCase(f"rosenbrock-loop-{n}", "rosenbrock scalar loop", "rosenbrock scalar loop",
                        p, ceilings.rosenbrock_hvp, ceilings.rosenbrock_hess,
                        _rosen_loop, _rosen_loop, _rosen_loop)

    def casadi_f(x, ca):
        return ca.sum1(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return PeerCase(f"rosenbrock-numpy-{n}", "rosenbrock numpy", "rosenbrock numpy", p,
                    ceilings.rosenbrock_hvp, ceilings.rosenbrock_hess,
                    _rosen_array, _rosen_array, casadi_f)


# ------------------------------------------------------------------ logistic regression
def logistic_case(d, m=1000):
    p = logistic_problem(m=m, d=d)
    X, y, lam = p.ref_args
    consts = {}  # torch: X and y converted once, not per call

    def jax_f(w, jnp):  # runs only while jax.jit traces: X and y become compile-time constants
        z = jnp.asarray(X) @ w
        return jnp.sum(jnp.log1p(jnp.exp(-jnp.asarray(y) * z))) + 0.5 * lam * (w @ w)

    def torch_f(w, torch):
        if "torch" not in consts:
            consts["torch"] = (torch.from_numpy(X), torch.from_numpy(y))
        Xt, yt = consts["torch"]
        return torch.sum(torch.log1p(torch.exp(-yt * (Xt @ w)))) + 0.5 * lam * (w @ w)

    def casadi_f(w, ca):
        z = ca.mtimes(ca.DM(X), w)
        return ca.sum1(ca.log1p(ca.exp(-ca.DM(y) * z))) + 0.5 * lam * ca.dot(w, w)

    return PeerCase(f"logreg-{m}x{d}", f"logistic regression {m}x{d}", "logistic regression",
                    p, ceilings.logistic_hvp, ceilings.logistic_hess, jax_f, torch_f, casadi_f)


# ------------------------------------------------------------------ Lennard-Jones
def lj_case(n_particles):
    p = lennard_jones_problem(n_particles)
    I, J = np.triu_indices(n_particles, 1)

    def array_f(x, lib):
        x = x.reshape(n_particles, 3)
        d = x[I] - x[J]
        r = lib.sqrt(lib.sum(d * d, 1))
        return lib.sum(4.0 * (r ** -12 - r ** -6))

    def casadi_f(x, ca):
        d = [x[list(3 * I + k)] - x[list(3 * J + k)] for k in range(3)]
        r = ca.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2)
        return ca.sum1(4.0 * (r ** -12 - r ** -6))

    return PeerCase(f"lj-{n_particles}", f"lennard-jones {n_particles} particles", "lennard-jones",
                    p, ceilings.lj_hvp, ceilings.lj_hess, array_f, array_f, casadi_f)


# ------------------------------------------------------------------ sum(x**3)
def cube(x):
    """sum(x**3)."""
    return np.sum(x ** 3)


def cube_case(n, seed=3):
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, n)
    p = Problem("sum(x**3)", cube, (x,), ceilings.cube_f, ceilings.cube_g)

    def array_f(x, lib):
        return lib.sum(x ** 3)

    def casadi_f(x, ca):
        return ca.sum1(x ** 3)

    return PeerCase(f"cube-{n}", "sum(x**3)", "sum(x**3)", p, ceilings.cube_hvp,
                    ceilings.cube_hess, array_f, array_f, casadi_f)


# ------------------------------------------------------------------ the sets
def all_cases():
    """Every case of the full run, in table order."""
    return ([rosenbrock_case(n) for n in (10, 100, 1000, 100_000)]
            + [rosenbrock_case(n, loop=True) for n in (10, 100)]
            + [logistic_case(d) for d in (50, 200)]
            + [lj_case(k) for k in (10, 30)]
            + [cube_case(n) for n in (100, 1000)])


QUICK = ("rosenbrock-numpy-10", "rosenbrock-numpy-100", "rosenbrock-loop-10", "logreg-1000x50",
         "lj-10", "cube-100")


def quick_cases():
    """A small subset for --quick (checks the script in about a minute)."""
    return [c for c in all_cases() if c.key in QUICK]
