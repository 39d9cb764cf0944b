"""Benchmark of derivatives of derivatives (issue 7) against JAX.

Run from the repository root (about a minute, most of it JAX compiles):

    python perf/bench_nested.py [--quick]

Two quantities on two problems (chained Rosenbrock and a smooth "tanh/log-sum-exp" mix),
n = 10 and 50:

- `penalty grad`: the gradient of a gradient-norm penalty P(x) = f(x) + lam |grad f(x)|^2;
- `3rd tensor`: the third-derivative tensor d^3 f / dx^3 (n, n, n).

Columns (median time per call, µs):

- jitad replay: `jitad.function` of the nested code (`P = jitad.function(lambda x: f(x) + lam *
  F.grad(x) @ F.grad(x))` with `F = jitad.function(f)`, then `P.grad(x)`; `T =
  jitad.function(F.hessian)`, then `T.jacobian(x)`), recorded before timing;
- replay 1 thread: the same with `numba.set_num_threads(1)` (the Jacobian of a recorded Hessian
  runs blocks of directions on all threads; on a loaded machine that is erratic);
- jitad one-shot: `jitad.grad(penalty)(x)` / `jitad.jacobian(lambda x: jitad.hessian(f, x), x)`,
  recording included;
- JAX: `jax.jit(jax.grad(penalty))` / `jax.jit(jax.jacfwd(jax.hessian(f)))` after its compile
  (the compile time is its own column, as is jitad's recording time).

Every jitad result is checked against JAX's before timing. Calls alternate between two nearby
points (a replayed tape never reuses the partials of the previous call). `rows()` returns the
measurements as dicts for other benchmark suites (perf/bench_peers.py).
"""
import os
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jitad  # noqa: E402
import optional_peers  # noqa: E402
import timing  # noqa: E402

LAM = 0.01
TARGET = 0.12
BATCHES = 5

jax, JAX_NOTE = optional_peers.jax()
jnp = jax.numpy if jax else None


# ------------------------------------------------------------------ problems (numpy and jax)
def rosen(x, np=np):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def mix(x, np=np):
    return np.sum(np.tanh(x) * x ** 2) + np.log(np.sum(np.exp(0.5 * x))) + 0.1 * (x @ x) ** 2


PROBLEMS = [("rosenbrock", rosen), ("tanh/logsumexp mix", mix)]


def point(n, k=0):
    return 0.5 + 0.3 * np.cos(np.arange(n) * 0.7 + 0.3) + 1e-6 * k


# ------------------------------------------------------------------ one row
def timed(f, points):
    return timing.timed(f, [(p,) for p in points], TARGET, BATCHES)


def _jax_fns(f):
    def jf(x):
        return f(x, np=jnp)

    def penalty(x):
        g = jax.grad(jf)(x)
        return jf(x) + LAM * jnp.sum(g * g)
    return jax.jit(jax.grad(penalty)), jax.jit(jax.jacfwd(jax.hessian(jf)))


def measure(name, f, n, quick=False):
    """Two rows (penalty gradient, third tensor) for problem f at size n."""
    xs = [point(n, 0), point(n, 1)]
    F = jitad.function(f)

    def penalty(x):
        g = jitad.grad(f)(x)
        return f(x) + LAM * (g @ g)

    t0 = time.perf_counter()
    P = jitad.function(lambda x: f(x) + LAM * (F.grad(x) @ F.grad(x)))
    P.grad(xs[0])
    rec_p = time.perf_counter() - t0
    t0 = time.perf_counter()
    T = jitad.function(F.hessian)
    T.jacobian(xs[0])
    rec_t = time.perf_counter() - t0

    def third_once(x):
        return jitad.jacobian(lambda z: jitad.hessian(f, z), x)

    jobs = [("penalty grad", P.grad, jitad.grad(penalty), rec_p, 0),
            ("3rd tensor", T.jacobian, third_once, rec_t, 1)]
    jfs = _jax_fns(f) if jax is not None else (None, None)
    out = []
    for what, replay, once, rec_s, j in jobs:
        row = {"problem": name, "n": n, "what": what, "record": rec_s,
               "ops": len(P.tape(xs[0]) if j == 0 else T.tape(xs[0]))}
        ref = replay(xs[0])
        np.testing.assert_allclose(once(xs[0]), ref, rtol=1e-10, atol=1e-10)
        jf = jfs[j]
        if jf is not None:
            t0 = time.perf_counter()
            jr = np.asarray(jf(xs[0]))
            row["jax_compile"] = time.perf_counter() - t0
            np.testing.assert_allclose(ref, jr, rtol=1e-8, atol=1e-8 * max(1, np.abs(jr).max()))
            row["jax"] = timed(lambda x: jf(x).block_until_ready(), xs)
        row["replay"] = timed(replay, xs)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)  # a loaded machine makes the 2-thread block runs erratic
        try:
            row["replay1"] = timed(replay, xs)
        finally:
            numba.set_num_threads(threads)
        row["once"] = None if quick and n > 10 else timed(once, xs)
        out.append(row)
    return out


def rows(quick=False, sizes=(10, 50)):
    """All measurements: a list of dicts with keys problem, n, what, replay, replay1 (one
    numba thread), once, jax, record, jax_compile, ops (seconds; None where skipped)."""
    res = []
    measure(*PROBLEMS[0], 3, quick=True)  # warm-up: compiles/loads every kernel used below
    for name, f in PROBLEMS[:1] if quick else PROBLEMS:
        for n in sizes:
            res.extend(measure(name, f, n, quick))
    return res


def _us(s):
    if s is None:
        return "—"
    us = s * 1e6
    return f"{us:.3g}" if us < 99.95 else f"{us:,.0f}"


def _r(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}"


def table(res):
    """Markdown table of `rows()`."""
    head = ["problem", "n", "quantity", "tape ops", "jitad replay µs", "replay 1 thread µs",
            "jitad one-shot µs",
            "JAX jit µs", "replay / JAX", "jitad record ms", "JAX compile ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in res:
        lines.append("| " + " | ".join([
            r["problem"], str(r["n"]), r["what"], f"{r['ops']:,}", _us(r["replay"]),
            _us(r["replay1"]), _us(r.get("once")), _us(r.get("jax")), _r(r["replay"], r.get("jax")),
            f"{r['record'] * 1e3:.1f}",
            "—" if r.get("jax_compile") is None else f"{r['jax_compile'] * 1e3:.0f}"]) + " |")
    return "\n".join(lines)


SECTION = ("Derivatives of derivatives (issue 7): gradient-norm penalty and third-derivative "
           "tensor against JAX")


def peer_rows(quick=False):
    """The section of perf/bench_peers.py (its PROVIDERS contract): a markdown table."""
    return table(rows(quick))


def main():
    quick = "--quick" in sys.argv
    if JAX_NOTE:
        print(JAX_NOTE)
    start, t0 = timing.cpu_seconds(), time.perf_counter()
    res = rows(quick)
    print(table(res))
    note = timing.load_note(start, time.perf_counter() - t0)
    print(f"\nmedians of {BATCHES} batches per cell" + (f"; {note}" if note else ""))


if __name__ == "__main__":
    main()
