"""Time from interpreter start to the first dense Hessian, in fresh processes.

    python perf/bench_latency.py [--runs 3]

Each run starts a new Python process that imports numpy and jitad, records chained Rosenbrock
(n = 100) and computes its Hessian. "To first Hessian" runs from just before the process is
spawned to the moment the child holds the Hessian (interpreter start-up, imports, recording,
loading or compiling the sweeps included); "whole process" adds the interpreter's exit, where
unwinding Numba's objects costs a few tenths of a second. Warm: Numba's on-disk cache of the
sweeps is filled. Cold: NUMBA_CACHE_DIR points at a new empty directory, so every sweep is
compiled in that process (the package's own cache is left alone). Figures (issue 4): to first
Hessian, warm <= 1.0 s, cold <= 20 s.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = """
import numpy as np
import jitad
x = np.linspace(-1.0, 1.0, 100)
tape = jitad.record(lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2), x)
H = tape.hessian(x)
assert H.shape == (100, 100) and abs(H[0, 0] - (1200 * x[0] ** 2 - 400 * x[1] + 2)) < 1e-9
import time
print(time.time())
"""


def run_once(env):
    """(seconds to the first Hessian, seconds of the whole process)."""
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, capture_output=True,
                         text=True).stdout
    t1 = time.time()
    return float(out.split()[-1]) - t0, t1 - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    runs = ap.parse_args().runs
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    run_once(env)  # fill the warm cache
    warm = [run_once(env) for _ in range(runs)]
    cold = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            cold.append(run_once(dict(env, NUMBA_CACHE_DIR=d)))
    bare = [run_once_bare() for _ in range(runs)]
    print("# time to first Hessian (Rosenbrock n=100) in a fresh process\n")
    print(f"{os.cpu_count()} CPUs, {sys.version.split()[0]}; command: python perf/bench_latency.py "
          f"--runs {runs}\n")
    print("| case | to first Hessian: median (min-max) | whole process: median | figure |")
    print("|---|---:|---:|---|")
    for name, ts, limit in (("warm cache", warm, 1.0),
                            ("cold cache (empty NUMBA_CACHE_DIR)", cold, 20.0)):
        first = [t[0] for t in ts]
        med = statistics.median(first)
        verdict = f"<= {limit:g} s: {'PASS' if med <= limit else 'MISS'}"
        print(f"| {name} | {med:.2f} s ({min(first):.2f}-{max(first):.2f}) | "
              f"{statistics.median(t[1] for t in ts):.2f} s | {verdict} |")
    print(f"| python -c 'import numpy' (the floor) | | {statistics.median(bare):.2f} s | |")


def run_once_bare():
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy"], check=True)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
