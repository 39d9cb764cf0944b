"""Benchmark of the functional API and `jitad.function` (issue 3) against torch and JAX.

Run from the repository root (about 1-2 minutes, most of it JAX compiles and torch's
loop-heavy cases):

    python perf/bench_api.py

Problems (perf/problems.py, at n ~ 10 and ~ 100): chained Rosenbrock written with numpy and as a
Python scalar loop, logistic regression sum(log1p(exp(-y*(X@w)))) + 0.5*lam*w@w with X 1000 x n,
Lennard-Jones energy of n/3 particles. Columns (median time per call):

- `jitad.hessian` one-shot: `jitad.hessian(func, x)`, recording included;
- torch: `torch.autograd.functional.hessian(func, x, vectorize=True)` and `vectorize=False`;
- `f.grad` / `f.hessian`: replay through `f = jitad.function(func)` (recorded before timing);
- JAX: `jax.jit(jax.grad(f))` and `jax.jit(jax.hessian(f))`, called after their compile.

A missing peer (torch, jax) is skipped with a printed note. Before timing, every Hessian is
checked against jitad's (and jitad's against the hand-written gradient by finite differences).
Calls alternate between two nearby points, so a replayed tape never reuses the partials of the
previous call (as at a new iterate of an optimiser); one-shot calls record every time anyway.
Figures checked from the same run (PASS/MISS): f.grad for n = 10 <= 10 us; one-shot
jitad.hessian faster than torch hessian(vectorize=True) on every problem; f.hessian faster than
jax.jit(jax.hessian(f)) for n <= 100.
"""
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jitad  # noqa: E402
import optional_peers  # noqa: E402
import timing  # noqa: E402
from problems import (lennard_jones_problem, logistic_problem,  # noqa: E402
                      rosenbrock_loop, rosenbrock_problem)

TARGET = 0.12   # seconds of timed calls per cell
BATCHES = 5     # batches per cell when calls are fast; the median batch is reported

torch, TORCH_NOTE = optional_peers.torch()
taf = torch.autograd.functional if torch else None
jax, JAX_NOTE = optional_peers.jax()
jnp = jax.numpy if jax else None


# ------------------------------------------------------------------ timing
def timed(f, points, target=TARGET):
    """Median seconds per call of f(x), x cycling over `points` (perf/timing.py)."""
    return timing.timed(f, [(p,) for p in points], target, BATCHES)


def fmt_t(s):
    if s is None:
        return "—"
    us = s * 1e6
    return f"{us:.3g}" if us < 99.95 else f"{us:,.0f}"


def fmt_r(r):
    return "—" if r is None else (f"{r:.1f}" if r < 100 else f"{r:.0f}")


def ratio(a, b):
    return None if a is None or b is None else a / b


# ------------------------------------------------------------------ the problems in three dialects
class Case:
    """A problem: the numpy function for jitad, and the same function for torch and jax."""

    def __init__(self, label, p, torch_f=None, jax_f=None):
        self.label, self.p = label, p
        self.n = p.n
        self.torch_f, self.jax_f = torch_f, jax_f


def rosen_np_case(n):
    p = rosenbrock_problem(n)

    def tf(x):
        return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    def jf(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    return Case("rosenbrock numpy", p, tf, jf)


def rosen_loop_case(n):
    p = rosenbrock_problem(n, loop=True)
    return Case("rosenbrock scalar loop", p, rosenbrock_loop, rosenbrock_loop)


def logistic_case(d):
    p = logistic_problem(m=1000, d=d)
    X, y, lam = p.ref_args
    if torch is not None:
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def tf(w):
            return torch.sum(torch.log1p(torch.exp(-yt * (Xt @ w)))) + 0.5 * lam * (w @ w)
    else:
        tf = None
    if jax is not None:
        Xj, yj = jnp.asarray(X), jnp.asarray(y)

        def jf(w):
            return jnp.sum(jnp.log1p(jnp.exp(-yj * (Xj @ w)))) + 0.5 * lam * (w @ w)
    else:
        jf = None
    return Case(f"logistic 1000x{d}", p, tf, jf)


def lj_case(n_particles):
    p = lennard_jones_problem(n_particles)
    I, J = np.triu_indices(n_particles, 1)
    shape = p.args[0].shape

    def tf(x):
        x = x.reshape(shape)
        d = x[I] - x[J]
        r = torch.sqrt(torch.sum(d * d, dim=1))
        return torch.sum(4.0 * (r ** -12 - r ** -6))

    def jf(x):
        x = x.reshape(shape)
        d = x[I] - x[J]
        r = jnp.sqrt(jnp.sum(d * d, axis=1))
        return jnp.sum(4.0 * (r ** -12 - r ** -6))

    return Case(f"lennard-jones {n_particles}", p, tf, jf)


def cases():
    return [rosen_np_case(10), rosen_np_case(100), rosen_loop_case(10), rosen_loop_case(100),
            logistic_case(10), logistic_case(100), lj_case(4), lj_case(33)]


# ------------------------------------------------------------------ measuring one case
def check_against(name, H, H_ref, label):
    err = np.max(np.abs(H - H_ref)) / (np.max(np.abs(H_ref)) + 1e-300)
    if not err < 1e-9:
        raise AssertionError(f"{label}: {name} Hessian differs from jitad's, rel err {err:.2e}")


def bench(case):
    p = case.p
    shape = p.args[0].shape
    flat_func = p.func if len(shape) == 1 else (lambda x: p.func(x.reshape(shape)))
    xs = p.points(2)
    row = {"label": case.label, "n": case.n}

    # correctness first: jitad's Hessian vs finite differences of the hand-written gradient
    H = jitad.hessian(flat_func, xs[0])
    v = np.sin(np.arange(case.n) + 1.0)
    h = 1e-5 * (1.0 + np.max(np.abs(xs[0])))
    fd = (p.ref_grad(xs[0] + h * v, *p.ref_args) - p.ref_grad(xs[0] - h * v, *p.ref_args)) / (2 * h)
    err = np.max(np.abs(H @ v - fd)) / (np.max(np.abs(fd)) + 1e-300)
    assert err < 1e-5, f"{case.label}: jitad Hessian vs finite differences, rel err {err:.2e}"

    row["oneshot"] = timed(lambda x: jitad.hessian(flat_func, x), xs)
    f = jitad.function(flat_func)
    f.grad(xs[0])
    row["grad"] = timed(f.grad, xs)
    row["grad_same_x"] = timed(f.grad, xs[:1])
    check_against("f.hessian", f.hessian(xs[0]), H, case.label)
    row["hessian"] = timed(f.hessian, xs)
    assert f.n_traces == 1

    if torch is not None and case.torch_f is not None:
        pts = [torch.from_numpy(x.copy()) for x in xs]
        for vec in (True, False):
            key = "torch_vec" if vec else "torch_loop"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Ht = taf.hessian(case.torch_f, pts[0], vectorize=vec).numpy()
                check_against(f"torch (vectorize={vec})", Ht, H, case.label)
                row[key] = timed(lambda x, v=vec: taf.hessian(case.torch_f, x, vectorize=v), pts)

    if jax is not None and case.jax_f is not None:
        pts = [jnp.asarray(x) for x in xs]
        jg = jax.jit(jax.grad(case.jax_f))
        jh = jax.jit(jax.hessian(case.jax_f))
        t0 = time.perf_counter()
        Hj = np.asarray(jh(pts[0]))
        row["jax_compile"] = time.perf_counter() - t0
        check_against("jax", Hj, H, case.label)
        jg(pts[0]).block_until_ready()
        row["jax_grad"] = timed(lambda x: jg(x).block_until_ready(), pts)
        row["jax_hessian"] = timed(lambda x: jh(x).block_until_ready(), pts)
    return row


# ------------------------------------------------------------------ report
def main():
    t_start = time.perf_counter()
    import numba
    print("# jitad functional API benchmark (perf/bench_api.py)\n")
    peers = []
    if torch is not None:
        peers.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    if jax is not None:
        peers.append(f"jax {jax.__version__} ({jax.default_backend()})")
    print(f"jitad {jitad.__version__}, numpy {np.__version__}, numba {numba.__version__} "
          f"({numba.get_num_threads()} threads); " + ", ".join(peers))
    for note in (TORCH_NOTE, JAX_NOTE):
        if note:
            print(f"\nNote: {note}.")
    rows = []
    for case in cases():
        rows.append(bench(case))
        print(f"  measured {case.label} n={case.n}", file=sys.stderr)

    print("\nMedian time per call in microseconds; ratios are peer / jitad (> 1: jitad faster).\n")
    head = ["problem", "n", "jitad.hessian one-shot", "torch hessian vec=True",
            "torch hessian vec=False", "torch vec / one-shot", "f.grad", "jax jit grad",
            "f.hessian", "jax jit hessian", "jax hessian / f.hessian"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
    for r in rows:
        cells = [r["label"], str(r["n"]), fmt_t(r["oneshot"]), fmt_t(r.get("torch_vec")),
                 fmt_t(r.get("torch_loop")), fmt_r(ratio(r.get("torch_vec"), r["oneshot"])),
                 fmt_t(r["grad"]), fmt_t(r.get("jax_grad")), fmt_t(r["hessian"]),
                 fmt_t(r.get("jax_hessian")), fmt_r(ratio(r.get("jax_hessian"), r["hessian"]))]
        print("| " + " | ".join(cells) + " |")
    if jax is not None:
        comp = ", ".join(f"{r['label']} n={r['n']}: {r['jax_compile']:.2f} s" for r in rows
                         if "jax_compile" in r)
        print(f"\nJAX compile (first call of jax.jit(jax.hessian(f)), not in the table): {comp}")

    print("\n## Figures\n")

    def verdict(ok):
        return "—" if ok is None else ("PASS" if ok else "MISS")

    small = [r for r in rows if r["n"] <= 12]
    ref = next(r for r in small if r["label"] == "rosenbrock numpy")
    print(f"- f.grad for n = 10 (rosenbrock numpy, alternating points) <= 10 us: "
          f"{verdict(ref['grad'] <= 10e-6)} — {ref['grad'] * 1e6:.2f} us; all n ~ 10 "
          "(alternating / one repeated x): "
          + ", ".join(f"{r['label']} {r['grad'] * 1e6:.1f} / {r['grad_same_x'] * 1e6:.1f} us"
                      for r in small))
    if torch is not None:
        rs = [ratio(r.get("torch_vec"), r["oneshot"]) for r in rows]
        ok = all(x is not None and x > 1 for x in rs)
        print(f"- one-shot jitad.hessian faster than torch hessian(vectorize=True) on every "
              f"problem: {verdict(ok)} — smallest ratio {min(rs):.2f}")
    else:
        print("- one-shot jitad.hessian vs torch: — (torch not installed)")
    if jax is not None:
        rs = [ratio(r.get("jax_hessian"), r["hessian"]) for r in rows if r["n"] <= 100]
        ok = all(x is not None and x > 1 for x in rs)
        print(f"- f.hessian faster than jax.jit(jax.hessian(f)) for n <= 100: {verdict(ok)} — "
              f"smallest ratio {min(rs):.2f}")
    else:
        print("- f.hessian vs jax: — (jax not installed)")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"\nTotal run time {time.perf_counter() - t_start:.0f} s"
          + (f"; load average at the end {load[0]:.2f} (1 min) on {os.cpu_count()} CPUs "
             "(timings of parallel calls suffer when other processes hold a core)."
             if load else "."))


if __name__ == "__main__":
    main()
