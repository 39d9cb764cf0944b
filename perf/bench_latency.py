"""Time from interpreter start to the first dense Hessian, in fresh processes.

    python perf/bench_latency.py [--runs 3]

Each run starts a new Python process that imports numpy and jitad, records chained Rosenbrock
(n = 100) and computes its Hessian. "To first Hessian" runs from just before the process is
spawned to the moment the child holds the Hessian (interpreter start-up, imports, recording,
loading or compiling the sweeps included); "whole process" adds the interpreter's exit, where
unwinding Numba's objects costs a few tenths of a second. Warm: Numba's on-disk cache of the
sweeps is filled. Cold: NUMBA_CACHE_DIR points at a new empty directory, so every sweep is
compiled in that process (the package's own cache is left alone). Read-only: a copy of the
package on a read-only bind mount (in a private mount namespace: `unshare -m`, needs root;
skipped with a note otherwise), so Numba falls back to its user-wide cache directory
(XDG_CACHE_HOME/numba); the first run fills it, the timed runs load from it. Figures (issue 4):
to first Hessian, warm <= 1.0 s, cold <= 20 s, and the read-only package dir warm too.
"""
import argparse
import os
import shutil
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


def run_once(env, wrap=(), cwd=None):
    """(seconds to the first Hessian, seconds of the whole process)."""
    t0 = time.time()
    out = subprocess.run([*wrap, sys.executable, "-c", CHILD], env=env, check=True,
                         capture_output=True, text=True, cwd=cwd).stdout
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
    readonly = run_read_only(env, runs)
    bare = [run_once_bare() for _ in range(runs)]
    print("# time to first Hessian (Rosenbrock n=100) in a fresh process\n")
    print(f"{os.cpu_count()} CPUs, {sys.version.split()[0]}; command: python perf/bench_latency.py "
          f"--runs {runs}\n")
    print("| case | to first Hessian: median (min-max) | whole process: median | figure |")
    print("|---|---:|---:|---|")
    cases = [("warm cache", warm, 1.0), ("cold cache (empty NUMBA_CACHE_DIR)", cold, 20.0)]
    if isinstance(readonly, str):
        print(f"(read-only package directory not measured: {readonly})\n")
    else:
        cases.append(("read-only package dir, warm user-wide cache", readonly, 1.0))
    for name, ts, limit in cases:
        first = [t[0] for t in ts]
        med = statistics.median(first)
        verdict = f"<= {limit:g} s: {'PASS' if med <= limit else 'MISS'}"
        print(f"| {name} | {med:.2f} s ({min(first):.2f}-{max(first):.2f}) | "
              f"{statistics.median(t[1] for t in ts):.2f} s | {verdict} |")
    print(f"| python -c 'import numpy' (the floor) | | {statistics.median(bare):.2f} s | |")


def run_read_only(env, runs):
    """Runs from a read-only copy of the package (see the module docstring), or the reason
    they could not be made."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "jitad")
    with tempfile.TemporaryDirectory() as d:
        pkg = os.path.join(d, "pkg")
        shutil.copytree(src, os.path.join(pkg, "jitad"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        cache = os.path.join(d, "cache")
        env = dict(env, PYTHONPATH=pkg, XDG_CACHE_HOME=cache)
        env.pop("NUMBA_CACHE_DIR", None)
        wrap = ("unshare", "-m", "sh", "-c",
                f'mount --bind "{pkg}" "{pkg}" && mount -o remount,ro,bind "{pkg}" && exec "$@"',
                "sh")
        try:
            run_once(env, wrap, d)  # fills the user-wide cache (cwd: not this checkout)
        except (OSError, subprocess.CalledProcessError) as e:
            return f"unshare/mount not permitted here ({type(e).__name__})"
        if not os.path.isdir(os.path.join(cache, "numba")):
            return "Numba wrote no user-wide cache (unexpected: the fallback did not happen)"
        if os.path.isdir(os.path.join(pkg, "jitad", "__pycache__")):
            return "the package directory was writable after all"
        return [run_once(env, wrap, d) for _ in range(runs)]


def run_once_bare():
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy"], check=True)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
