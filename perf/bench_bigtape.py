"""A 10^7-op tape: record (vectorised numpy), replay forward and gradient, save and load;
print times, the tape's bytes per op and the process's peak memory.

    python perf/bench_bigtape.py [--ops 10000000]

The gradient is checked against the program's analytic gradient before anything is printed.
Peak RSS (resource.getrusage) is the whole process's: Python, numpy, Numba and the compiled
sweeps included; the baseline before recording is printed too.
"""
import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jitad  # noqa: E402


def program(x):
    """About 15 ops per element of x, every op kind of an elementwise program plus a chain."""
    e = np.exp(-x ** 2)
    return (np.sum(np.sin(x) * e + np.log1p(x * x) * np.cos(x) + np.sqrt(x * x + 1.0))
            + np.sum(x[1:] * x[:-1]))


def gradient(x):
    """The analytic gradient of `program`."""
    e = np.exp(-x ** 2)
    g = (np.cos(x) * e - 2.0 * x * np.sin(x) * e + 2.0 * x / (1.0 + x * x) * np.cos(x)
         - np.log1p(x * x) * np.sin(x) + x / np.sqrt(x * x + 1.0))
    g[:-1] += x[1:]
    g[1:] += x[:-1]
    return g


def point(n):
    return np.linspace(-2.0, 2.0, n)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ops", type=float, default=1e7)
    a = p.parse_args()
    per_elem = len(jitad.record(program, point(1000))) / 1000
    n = int(np.ceil(a.ops / per_elem))
    x = point(n)
    jitad.record(program, point(10)).gradient(point(10))  # compile/load the sweeps first
    base = peak_rss_mb()
    t0 = time.perf_counter()
    tape = jitad.record(program, x)
    t_rec = time.perf_counter() - t0
    rss_rec = peak_rss_mb()
    ops, edges, terms = len(tape), tape.arg.shape[0], tape.ta.shape[0]
    t0 = time.perf_counter()
    y = tape.forward(x)
    t_fwd = time.perf_counter() - t0
    x2 = x * 0.999
    t0 = time.perf_counter()
    g = tape.gradient(x2)
    t_grad = time.perf_counter() - t0
    err = np.max(np.abs(g - gradient(x2))) / np.max(np.abs(gradient(x2)))
    assert err < 1e-12, f"gradient off by {err}"
    assert abs(y[0] - program(x)) <= 1e-12 * abs(program(x)) + 1e-9
    rss_sweep = peak_rss_mb()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "big.tape")
        t0 = time.perf_counter()
        tape.save(path)
        t_save = time.perf_counter() - t0
        size = os.path.getsize(path)
        del tape
        t0 = time.perf_counter()
        tape = jitad.load_tape(path)
        t_load = time.perf_counter() - t0
    assert np.array_equal(tape.gradient(x2), g)
    rss_end = peak_rss_mb()
    print(f"# 10^7-op tape (jitad {jitad.__version__}, numpy {np.__version__})\n")
    print(f"n = {n} inputs, {ops} ops, {edges} edges, {terms} second-order terms "
          f"({ops / n:.1f} ops per input)\n")
    print("| step | time | peak RSS after |")
    print("|---|---:|---:|")
    print(f"| baseline (imports, sweeps loaded) | | {base:.0f} MB |")
    print(f"| record | {t_rec:.2f} s | {rss_rec:.0f} MB |")
    print(f"| forward | {t_fwd * 1e3:.0f} ms | |")
    print(f"| gradient (forward with partials + reverse) | {t_grad * 1e3:.0f} ms "
          f"| {rss_sweep:.0f} MB |")
    print(f"| save ({size / 1e6:.0f} MB file) | {t_save:.2f} s | |")
    print(f"| load (validated) | {t_load:.2f} s | {rss_end:.0f} MB |\n")
    print(f"tape arrays: {tape.nbytes / ops:.1f} bytes/op ({tape.nbytes / 1e6:.0f} MB); "
          f"file: {size / ops:.1f} bytes/op")
    print(f"peak RSS above baseline: recording {(rss_rec - base) * 2 ** 20 / ops:.0f} bytes/op, "
          f"after the gradient {(rss_sweep - base) * 2 ** 20 / ops:.0f} bytes/op "
          f"(tape + per-thread work arrays: values, adjoints, partials)")
    print(f"gradient relative error vs analytic: {err:.1e}")


if __name__ == "__main__":
    main()
