"""Benchmark of sparse Hessians (issue 5) against CasADi's sparse Hessian and JAX's dense one.

Run from the repository root (about 1-3 minutes, most of it CasADi building its expressions):

    python perf/bench_sparse.py            # all rows
    python perf/bench_sparse.py --quick    # n <= 10^4 only

Rows: chained Rosenbrock n = 10^3, 10^4, 10^5 (tridiagonal Hessian), Broyden banded function
n = 10^4 (f = sum_i f_i^2, f_i = x_i (2 + 5 x_i^2) + 1 - sum_{j in J_i} x_j (1 + x_j),
J_i = {max(0, i-5) <= j <= min(n-1, i+1), j != i}: bandwidth 6), Lennard-Jones 30 particles
(n = 90, dense: `tape.hessian` must keep the dense path). Columns (median time per call):

- jitad pattern / colouring / direct maps: building the tape's plan once
  (`sparse.HessianPlan`), reported separately: an optimiser pays it once per tape;
- jitad sparse Hessian: `tape.sparse_hessian(x)` at alternating points (forward sweep, first-
  order adjoints and the direct accumulation, or the compressed HVP sweep and recovery, as the
  plan's method says), values in CSR order;
- jitad `tape.hessian`: the dense call, which picks the compressed path by itself when the
  colouring has at most n/2 colours (the "path" column says which it took);
- CasADi: `casadi.hessian` of the SX expression wrapped in a `casadi.Function` (its compiled
  virtual machine), called on a DM input, returning its sparse DM; its setup (expression and
  Function construction) is reported separately. jitad's sparse Hessian and CasADi's are
  timed in ROUNDS alternating rounds and the table gives each one's median (the checks list
  the ratio of every round);
- JAX: `jax.jit(jax.hessian(f))` after its compile, only where a dense n x n Hessian is
  reasonable (n <= 1000 and Lennard-Jones; 10^4 would be 800 MB).

Every peer's Hessian is compared with jitad's before timing. A missing peer is skipped with a
printed note. `sparse_rows()` returns the rows as dicts and `markdown(rows)` prints them, for the
peer suite (`perf/bench_peers.py`) to import.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jitad  # noqa: E402
import optional_peers  # noqa: E402
import timing  # noqa: E402
from jitad import sparse  # noqa: E402
from problems import lennard_jones_problem  # noqa: E402

TARGET = 0.3   # seconds of timed calls per cell
BATCHES = 5
ROUNDS = 3     # alternating jitad / CasADi timings per row; the table gives their medians

casadi, CASADI_NOTE = optional_peers.casadi()
jax, JAX_NOTE = optional_peers.jax()
jnp = jax.numpy if jax else None


# ------------------------------------------------------------------ problems (numpy, casadi, jax)
def rosenbrock(x, np=np):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_casadi(x, n):
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    return casadi.sum1(100.0 * a ** 2 + b ** 2)


def broyden(x):
    """Broyden banded function (Moré, Garbow, Hillstrom 1981, problem 31) as a sum of squares."""
    n = x.shape[0]
    g = x * (1.0 + x)
    gp = np.concatenate([np.zeros(5), g, np.zeros(1)])  # gp[k + 5] = g[k], zero outside 0..n-1
    s = gp[0:n]
    for d in (-4, -3, -2, -1, 1):
        s = s + gp[5 + d:5 + d + n]
    f = x * (2.0 + 5.0 * x ** 2) + 1.0 - s
    return np.sum(f ** 2)


def broyden_casadi(x, n):
    g = x * (1.0 + x)
    gp = casadi.vertcat(casadi.SX.zeros(5), g, casadi.SX.zeros(1))
    s = gp[0:n]
    for d in (-4, -3, -2, -1, 1):
        s = s + gp[5 + d:5 + d + n]
    f = x * (2.0 + 5.0 * x ** 2) + 1.0 - s
    return casadi.sum1(f ** 2)


def _lj():
    p = lennard_jones_problem(30)
    n_p = 30
    I, J = np.triu_indices(n_p, 1)

    def lj_casadi(x, n):
        X = casadi.reshape(x, 3, n_p)  # column k = particle k (x is C-ordered (30, 3))
        e = 0
        for i, j in zip(I, J):
            d = X[:, int(i)] - X[:, int(j)]
            r2 = casadi.sumsqr(d)
            e = e + 4.0 * (r2 ** -6 - r2 ** -3)
        return e

    def lj_jax(x):
        d = x.reshape(n_p, 3)[I] - x.reshape(n_p, 3)[J]
        r = jnp.sqrt(jnp.sum(d * d, axis=1))
        return jnp.sum(4.0 * (r ** -12 - r ** -6))

    return (lambda x: p.func(x.reshape(n_p, 3))), lj_casadi, lj_jax, p.x0


def problems(quick=False):
    """(name, n, numpy func, casadi builder, jax func or None, x0)."""
    rng = np.random.default_rng(0)
    out = []
    for n in (10 ** 3, 10 ** 4) + (() if quick else (10 ** 5,)):
        out.append(("rosenbrock", n, rosenbrock, rosenbrock_casadi,
                    (lambda x: rosenbrock(x, jnp)) if (jax and n <= 1000) else None,
                    rng.uniform(-1.2, 1.2, n)))
    out.append(("broyden banded", 10 ** 4, broyden, broyden_casadi, None, -np.ones(10 ** 4)
                + 0.1 * rng.standard_normal(10 ** 4)))
    f, fc, fj, x0 = _lj()
    out.append(("lennard-jones 30 (dense)", 90, f, fc, fj if jax else None, x0))
    return out


# ------------------------------------------------------------------ timing
def _time(f, points):
    return timing.timed(f, [(p,) for p in points], TARGET, BATCHES)


def _rows_for(name, n, func, casadi_build, jax_func, x0):
    points = [x0, x0 + 1e-6 * np.cos(np.arange(n))]
    row = {"problem": name, "n": n}
    tape = jitad.record(func, x0)
    t0 = time.perf_counter()
    plan = sparse.HessianPlan(tape)  # a fresh plan: time pattern + colouring
    row["setup_s"] = time.perf_counter() - t0
    row["pattern_ms"] = plan.pattern_seconds * 1e3
    row["coloring_ms"] = plan.coloring_seconds * 1e3
    row["direct_ms"] = plan.direct_seconds * 1e3
    row["method"] = plan.method
    row["nnz"] = plan.pattern.nnz
    row["colors"] = plan.n_colors if plan.colors is not None else None
    S = tape.sparse_hessian(x0)
    row["jitad_sparse_ms"] = _time(tape.sparse_hessian, points) * 1e3
    auto = tape.hessian_plan().auto and n >= sparse.AUTO_MIN_N
    row["path"] = "compressed" if auto else "dense"
    Hd = None
    if n <= 10 ** 4:
        Hd = tape.hessian(x0)
        # the dense call's result is the sparse one, scattered
        assert np.allclose(Hd, S.toarray(), rtol=1e-12, atol=1e-12 * np.abs(Hd).max())
        row["jitad_dense_ms"] = _time(tape.hessian, points) * 1e3
    if casadi is not None:
        x = casadi.SX.sym("x", n)
        t0 = time.perf_counter()
        fexpr = casadi_build(x, n)
        H, _ = casadi.hessian(fexpr, x)
        F = casadi.Function("H", [x], [H])
        row["casadi_setup_s"] = time.perf_counter() - t0
        dms = [casadi.DM(p) for p in points]
        Hc = F(dms[0]).sparse()
        Hs = S.tocsr()
        diff = abs(Hc - Hs).max()
        if diff > 1e-8 * max(1.0, abs(Hs).max()):
            raise AssertionError(f"{name}: CasADi's Hessian differs from jitad's by {diff}")
        # jitad and CasADi timed in alternating rounds: this machine's speed drifts by up to
        # 2x within a run, and one timing each could land in different phases
        jt, ct = [], []
        for _ in range(ROUNDS):
            jt.append(_time(tape.sparse_hessian, points) * 1e3)
            ct.append(timing.timed(F, [(d,) for d in dms], TARGET, BATCHES) * 1e3)
        row["jitad_sparse_ms"] = float(np.median(jt))
        row["casadi_ms"] = float(np.median(ct))
        row["round_ratios"] = [c / j for j, c in zip(jt, ct)]
        row["casadi_nnz"] = int(H.nnz())
    if jax_func is not None:
        hj = jax.jit(jax.hessian(jax_func))
        Hj = np.asarray(hj(x0))
        if not np.allclose(Hj, S.toarray(), rtol=1e-9, atol=1e-9 * np.abs(Hj).max()):
            raise AssertionError(f"{name}: JAX's Hessian differs from jitad's")
        jpoints = [jnp.asarray(p) for p in points]
        row["jax_dense_ms"] = timing.timed(lambda p: hj(p).block_until_ready(),
                                           [(p,) for p in jpoints], TARGET, BATCHES) * 1e3
    return row


def sparse_rows(quick=False):
    """The benchmark rows as dicts (times in ms, setup in s); see the module docstring."""
    warm = jitad.record(rosenbrock, np.ones(100))  # load the kernels before timing the plans
    sparse.HessianPlan(warm)
    warm.sparse_hessian(np.ones(100))
    return [_rows_for(*p) for p in problems(quick)]


SECTION = "Sparse Hessians (issue 5): jitad against CasADi's sparse Hessian and JAX's dense one"


def peer_rows(quick=False):
    """The section of perf/bench_peers.py (its PROVIDERS contract): a markdown table."""
    return markdown(sparse_rows(quick))


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return str(v)
    return f"{v:.{digits}g}"


def markdown(rows):
    """The rows as a markdown table, with the figures the issue asks for checked."""
    lines = ["| problem | n | nnz | colours | pattern ms | colouring ms | direct maps ms | "
             "jitad sparse H ms (method) | tape.hessian ms (path) | CasADi H ms | "
             "CasADi / jitad | CasADi setup s | JAX dense H ms | JAX / jitad |",
             "|" + "---|" * 14]
    for r in rows:
        ratio = (r["casadi_ms"] / r["jitad_sparse_ms"]) if "casadi_ms" in r else None
        jr = (r["jax_dense_ms"] / r["jitad_sparse_ms"]) if "jax_dense_ms" in r else None
        dense = (f"{_fmt(r['jitad_dense_ms'])} ({r['path']})" if "jitad_dense_ms" in r
                 else f"- ({r['path']})")
        lines.append(
            f"| {r['problem']} | {r['n']} | {r['nnz']} | {_fmt(r['colors'])} | "
            f"{_fmt(r['pattern_ms'])} | {_fmt(r['coloring_ms'])} | {_fmt(r['direct_ms'])} | "
            f"{_fmt(r['jitad_sparse_ms'])} ({r['method']}) | {dense} | {_fmt(r.get('casadi_ms'))} | {_fmt(ratio, 2)} | "
            f"{_fmt(r.get('casadi_setup_s'))} | {_fmt(r.get('jax_dense_ms'))} | {_fmt(jr, 2)} |")
    checks = []
    for r in rows:
        if r["problem"] == "rosenbrock" and r["n"] == 10 ** 5:
            ok = r["jitad_sparse_ms"] < 50
            checks.append(f"- {'PASS' if ok else 'MISS'}: sparse Hessian of Rosenbrock n = 10^5 "
                          f"under 50 ms: {r['jitad_sparse_ms']:.1f} ms")
        if "dense" in r["problem"]:
            checks.append(f"- {'PASS' if r['path'] == 'dense' else 'MISS'}: {r['problem']}: "
                          f"tape.hessian keeps the dense path ({r['path']})")
        elif "casadi_ms" in r:
            ok = r["casadi_ms"] > r["jitad_sparse_ms"]
            rounds = " ".join(f"{q:.2f}" for q in r.get("round_ratios", []))
            checks.append(f"- {'PASS' if ok else 'MISS'}: jitad faster than CasADi on "
                          f"{r['problem']} n = {r['n']}: {r['casadi_ms'] / r['jitad_sparse_ms']:.2f}x"
                          f" (medians of {ROUNDS} alternating rounds; per round {rounds})")
    return "\n".join(lines + [""] + checks)


def main():
    quick = "--quick" in sys.argv
    import numba
    print(f"# Sparse Hessians (jitad {jitad.__version__}, numba {numba.__version__}, "
          f"{numba.get_num_threads()} threads"
          + (f", casadi {casadi.__version__}" if casadi else "")
          + (f", jax {jax.__version__}" if jax else "") + ")\n")
    for note in (CASADI_NOTE, JAX_NOTE):
        if note:
            print(f"note: {note}")
    start, t0 = timing.cpu_seconds(), time.perf_counter()
    rows = sparse_rows(quick)
    print(markdown(rows))
    note = timing.load_note(start, time.perf_counter() - t0)
    if note:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
