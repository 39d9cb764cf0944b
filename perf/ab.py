"""Interleaved A/B of Tape calls: this checkout's jitad against another commit's, in one process.

On this shared machine absolute times drift up to 2-4x between runs minutes apart, while the
ratio of two calls timed in alternation within one process holds. The other commit's package
is exported (`git archive`) into a directory of the system's temporary directory, kept per
commit so that Numba's cache survives between runs, and imported as `jitad_ab` (the package
imports itself relatively). Each of `--rounds` rounds times `--calls` calls of every variant,
at two alternating points; the table gives min and median per call and the median over rounds
of the paired ratio this / other.

    python perf/ab.py HEAD~1 rosenbrock-1000 gradient,value_and_gradient,hvp
    python perf/ab.py 670c2a6 rosenbrock-loop-100 gradient --rounds 60
"""
import argparse
import importlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
import jitad  # noqa: E402
from peer_problems import cube_case  # noqa: E402
from problems import lennard_jones_problem, rosenbrock_problem  # noqa: E402

CALLS = {
    "forward": lambda t, x, v: t.forward(x),
    "gradient": lambda t, x, v: t.gradient(x),
    "value_and_gradient": lambda t, x, v: t.value_and_gradient(x),
    "hvp": lambda t, x, v: t.hvp(x, v),
    "hessian": lambda t, x, v: t.hessian(x),
}


def other_jitad(rev):
    """The package at git revision rev, imported as jitad_ab."""
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    base = os.path.join(tempfile.gettempdir(), f"jitad-ab-{sha[:12]}")
    if not os.path.isdir(os.path.join(base, "jitad_ab")):
        tar = subprocess.run(["git", "archive", sha, "jitad"], cwd=ROOT, capture_output=True,
                             check=True).stdout
        os.makedirs(base, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            t.extractall(base)
        os.rename(os.path.join(base, "jitad"), os.path.join(base, "jitad_ab"))
    sys.path.insert(0, base)
    return importlib.import_module("jitad_ab")


def problem(spec):
    """rosenbrock-N, rosenbrock-loop-N, cube-N (sum(x**3)) or lj-P (Lennard-Jones, P
    particles)."""
    parts = spec.split("-")
    if len(parts) == 2 and parts[0] == "cube":
        return cube_case(int(parts[1])).p
    if len(parts) == 2 and parts[0] == "lj":
        return lennard_jones_problem(int(parts[1]))
    if parts[0] == "rosenbrock" and len(parts) in (2, 3):
        return rosenbrock_problem(int(parts[-1]), loop=len(parts) == 3)
    raise SystemExit(f"unknown problem {spec!r}: rosenbrock-N, rosenbrock-loop-N, cube-N, lj-P")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the other commit (e.g. HEAD~1)")
    ap.add_argument("problem", help="rosenbrock-N, rosenbrock-loop-N, cube-N or lj-P")
    ap.add_argument("calls", help="comma-separated: " + ",".join(CALLS))
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--calls-per-round", type=int, default=2000)
    args = ap.parse_args()
    p = problem(args.problem)
    libs = {"this": jitad, "other": other_jitad(args.rev)}
    x0, x1 = p.points(2)
    v = np.cos(np.arange(p.n) + 0.5)
    tapes = {k: lib.record(p.func, *p.args) for k, lib in libs.items()}
    calls = {c: CALLS[c] for c in args.calls.split(",")}
    for t in tapes.values():  # plans built, kernels compiled
        for _ in range(3):
            for c in calls.values():
                c(t, x0, v)
                c(t, x1, v)
    half = max(args.calls_per_round // 2, 1)
    times = {(k, c): [] for k in tapes for c in calls}
    for _ in range(args.rounds):
        for name, c in calls.items():
            for k, t in tapes.items():
                t0 = time.perf_counter()
                for _ in range(half):
                    c(t, x0, v)
                    c(t, x1, v)
                times[(k, name)].append((time.perf_counter() - t0) / (2 * half) * 1e6)
    print(f"{args.problem}: this checkout against {args.rev}, {args.rounds} rounds of "
          f"{2 * half} calls (us per call)\n")
    print("| call | this min | this median | other min | other median | paired median ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in calls:
        a = np.array(times[("this", name)])
        b = np.array(times[("other", name)])
        print(f"| {name} | {a.min():.2f} | {np.median(a):.2f} | {b.min():.2f} | "
              f"{np.median(b):.2f} | {np.median(a / b):.3f} |")


if __name__ == "__main__":
    main()
