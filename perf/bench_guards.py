"""Benchmark of branches and guards (issue 6): what guards cost a replay, and what a branch
switch costs `jitad.function`.

Run from the repository root (about 20 s):

    python perf/bench_guards.py

Table 1: the chained Rosenbrock function with and without guards (one `if` on x[0], or one
guard per element from `x[x > -10]`, whose outcome never changes), forward and gradient per
call at two alternating points: the guard check is the difference. Table 2: `jitad.function`
of a piecewise function called at points on one side of its branch, and alternating between
the two sides (each alternate call fails a guard, finds the other kept tape and replays it).
Medians of batches (perf/timing.py); compare ratios in one run, the machine may be shared.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jitad  # noqa: E402
import timing  # noqa: E402


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def one_guard(x):
    return rosen(x) if x[0] > -10 else -rosen(x)


def guard_per_element(x):
    return rosen(x) + 0.0 * np.sum(x[x > -10])


def piecewise(x):
    if x[0] > 0:
        return rosen(x)
    return np.sum(np.sin(x))


def us(seconds):
    return f"{seconds * 1e6:10.2f} us"


def main():
    print("| n | variant | guards | ops | forward | gradient |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in (10, 1000, 100_000):
        x = np.linspace(-1, 1, n)
        pts = [(x,), (x + 1e-3,)]
        target = 0.05 if n < 100_000 else 0.3
        for name, f in (("no guard", rosen), ("one if", one_guard),
                        ("mask x[x > -10]", guard_per_element)):
            tape = jitad.record(f, x)
            fw = timing.timed(tape.forward, pts, target, 7)
            gr = timing.timed(tape.gradient, pts, target, 7)
            print(f"| {n} | {name} | {tape.n_guards} | {len(tape)} | {us(fw)} | {us(gr)} |")
    print()
    print("| n | jitad.function grad | per call |")
    print("|---:|---|---:|")
    for n in (10, 1000):
        f = jitad.function(piecewise)
        x = np.linspace(0.1, 1, n)
        lo = -x
        same = timing.timed(f.grad, [(x,), (x + 1e-3,)], 0.05, 7)
        switch = timing.timed(f.grad, [(x,), (lo,)], 0.05, 7)
        print(f"| {n} | one side | {us(same)} |")
        print(f"| {n} | alternating sides (a guard fails every call) | {us(switch)} |")
        assert f.n_traces == 2


if __name__ == "__main__":
    main()
