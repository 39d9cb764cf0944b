"""Run-aware sweeps (issue 4, section 2): the per-op sweeps against the run plan, in one process.

    python perf/bench_runs.py            # about a minute

For each problem: the plan (runs and coverage, build time), then the forward (values only) and
value-and-gradient kernels of `sweeps.py` (per op: before) and `run_sweeps.py` (runs: after) on
the same tape and work arrays (for a tape that keeps the per-op sweeps, "runs" is the per-op
sweep again), the Tape methods (which pick the plan), and the hand-written
@njit function and gradient of perf/problems.py. Kernel times are the best of repeated calls
(time.perf_counter; the machine is shared, so best-of rather than median), Tape times are
medians (perf/timing.py). Every run-sweep result is checked bitwise against the per-op sweep
before timing.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jitad  # noqa: E402
import timing  # noqa: E402
from jitad import packs, run_sweeps, runs, sweeps  # noqa: E402
from problems import logistic_problem, rosenbrock_problem  # noqa: E402

_ONE = np.ones(1)


def best(f, *args, seconds=0.3, at_least=5):
    f(*args)
    times = []
    t_end = time.perf_counter() + seconds
    while len(times) < at_least or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def fmt(s):
    return f"{s * 1e6:.0f} µs" if s < 0.01 else f"{s * 1e3:.1f} ms"


def bench(p):
    tape = jitad.record(p.func, *p.args)
    t_plan = best(runs.build, tape.code, tape.param, tape.eptr, tape.arg, tape.coef, tape.tptr,
                  tape.n_inputs, tape.out, seconds=0.1, at_least=3)
    plan = runs.build(tape.code, tape.param, tape.eptr, tape.arg, tape.coef, tape.tptr,
                      tape.n_inputs, tape.out)
    uses_plan = tape._runs() is not None  # else the Tape keeps the per-op sweeps ("after" too)
    x = p.x0
    n_slots, n_edges, n_terms = tape.n_slots, tape.arg.shape[0], tape.ta.shape[0]
    arrays = [(np.empty(n_slots), np.empty(n_edges), np.empty(n_terms), np.empty(n_slots))
              for _ in range(2)]
    # the unsigned index views the Tape hands its per-point kernels
    head = (tape.code, tape.param, tape._ueptr, tape._uarg, tape.coef, tape._utptr,
            tape.n_inputs, x)

    ops_pack = packs.Pack(tape).arrays  # the per-op gradient's arguments (`Tape` keeps one)
    g = np.empty(tape.n_inputs)

    def fwd(use_plan, val):
        if use_plan and uses_plan:
            run_sweeps.forward(*head, False, False, val, val[:0], val[:0], *plan.arrays)
        else:
            sweeps.forward(*head, False, val, val[:0], val[:0])

    def grad(use_plan, val, d1, d2, adj, lin_ready=True):
        if use_plan and uses_plan:  # as Tape.value_and_gradient does (LIN partials kept in d1)
            run_sweeps.forward(*head, True, lin_ready, val, d1, d2, *plan.arrays)
            run_sweeps.reverse1(tape._ueptr, tape._uarg, d1, tape.n_inputs, tape._uout, _ONE,
                                adj, tape.code, *plan.arrays)
            return val[tape.out[0]]
        return sweeps.value_and_gradient(*ops_pack, x, val, d1, d2, adj, g)

    for use_plan, a in zip((False, True), arrays):
        grad(use_plan, *a, lin_ready=False)
    for r, q in zip(arrays[0], arrays[1]):
        assert np.array_equal(r, q), "run sweeps differ from per-op sweeps"
    row = {"problem": f"{p.name} n={p.n}", "ops": len(tape), "plan": plan, "t_plan": t_plan,
           "uses_plan": uses_plan}
    row["fwd_ops"] = best(fwd, False, arrays[0][0])
    row["fwd_runs"] = best(fwd, True, arrays[1][0])
    row["grad_ops"] = best(grad, False, *arrays[0])
    row["grad_runs"] = best(grad, True, *arrays[1])
    xs = p.points(4)
    row["tape_fwd"] = timing.timed(tape.forward, [(z,) for z in xs[2:]], 0.2, 5)
    row["tape_grad"] = timing.timed(tape.gradient, [(z,) for z in xs[:2]], 0.2, 5)
    row["njit_f"] = best(p.ref_f, x, *p.ref_args)
    row["njit_g"] = best(p.ref_grad, x, *p.ref_args)
    return row


def main():
    problems = [rosenbrock_problem(100_000), logistic_problem(100_000, 50, dense_hessian=False),
                rosenbrock_problem(1000), logistic_problem(), rosenbrock_problem(1000, loop=True),
                rosenbrock_problem(100_000, loop=True)]
    start, t_start = timing.cpu_seconds(), time.perf_counter()
    rows = [bench(p) for p in problems]
    note = timing.load_note(start, time.perf_counter() - t_start)
    print(f"# run-aware sweeps (numba {__import__('numba').__version__})")
    print()
    if note:
        print(note[0].upper() + note[1:] + ".")
        print()
    print("| problem | ops | plan | plan build | forward per-op | forward runs | speed-up | "
          "grad per-op | grad runs | speed-up | njit f | njit grad | tape.forward / njit f | "
          "tape.gradient / njit grad |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        plan = r["plan"]
        counts = np.bincount(plan.kind, minlength=3)
        desc = (f"{counts[runs.ELEM]} elem + {counts[runs.BLOCK]} block runs, "
                f"{100 * plan.coverage():.0f}% of ops" + ("" if r["uses_plan"] else
                                                          " (tape keeps per-op sweeps)"))
        print(f"| {r['problem']} | {r['ops']} | {desc} | {fmt(r['t_plan'])} | "
              f"{fmt(r['fwd_ops'])} | {fmt(r['fwd_runs'])} | {r['fwd_ops'] / r['fwd_runs']:.1f}x | "
              f"{fmt(r['grad_ops'])} | {fmt(r['grad_runs'])} | "
              f"{r['grad_ops'] / r['grad_runs']:.1f}x | {fmt(r['njit_f'])} | {fmt(r['njit_g'])} | "
              f"{r['tape_fwd'] / r['njit_f']:.1f} | {r['tape_grad'] / r['njit_g']:.1f} |")


if __name__ == "__main__":
    main()
