"""Time to the first dense Hessian in a fresh process, for every library (perf/bench_peers.py).

Each run spawns a new Python process that imports one library, writes chained Rosenbrock
(NumPy form, n = 100) in its dialect, records/traces/compiles it and computes the dense Hessian,
which it checks against the analytic entry H[0, 0]. The time runs from just before the spawn to
the moment the child holds the Hessian (interpreter start-up and imports included, exit not).
Every warm case is run once untimed first, which fills Numba's on-disk cache and the OS file
cache; "cold cache" points NUMBA_CACHE_DIR at a new empty directory, so every Numba kernel is
compiled in that process.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PERF = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(PERF)

_HEAD = """
import numpy as np
x = np.linspace(-1.0, 1.0, 100)
"""
_TAIL = """
H = np.asarray(H).reshape(100, 100)
assert abs(H[0, 0] - (1200 * x[0] ** 2 - 400 * x[1] + 2)) < 1e-9 and abs(H[0, 1] + 400 * x[0]) < 1e-9
import time
print(time.time())
"""
ROSEN = "(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)"

BODIES = {
    "jitad": f"""
import jitad
tape = jitad.record(lambda x: np.sum{ROSEN}, x)
H = tape.hessian(x)
""",
    "njit (hand-written Hessian)": f"""
import sys
sys.path.insert(0, {PERF!r})
import ceilings
H = ceilings.rosenbrock_hess(x)
""",
    "JAX jit(hessian)": f"""
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
H = jax.jit(jax.hessian(lambda x: jnp.sum{ROSEN}))(jnp.asarray(x))
""",
    "torch AF hessian vec=True": f"""
import torch
from torch.autograd.functional import hessian
H = hessian(lambda x: torch.sum{ROSEN}, torch.from_numpy(x), vectorize=True).numpy()
""",
    "torch.func.hessian": f"""
import torch
H = torch.func.hessian(lambda x: torch.sum{ROSEN})(torch.from_numpy(x)).numpy()
""",
    "CasADi VM": f"""
import casadi as ca
s = ca.SX.sym("x", 100)
F = ca.Function("hes", [s], [ca.densify(ca.hessian(ca.sum1{ROSEN.replace("x", "s")}, s)[0])])
H = np.array(F(x))
""",
    "CasADi gcc": f"""
import casadi as ca, os, shutil, subprocess, tempfile
s = ca.SX.sym("x", 100)
F = ca.Function("hes", [s], [ca.densify(ca.hessian(ca.sum1{ROSEN.replace("x", "s")}, s)[0])])
d = tempfile.mkdtemp()
c = os.path.join(d, "hes.c")
shutil.move(F.generate("hes.c"), c)
subprocess.run(["gcc", "-O1", "-fPIC", "-shared", c, "-o", os.path.join(d, "hes.so")], check=True)
H = np.array(ca.external("hes", os.path.join(d, "hes.so"))(x))
""",
}
MODULES = {"jitad": "jitad", "njit (hand-written Hessian)": "numba", "JAX jit(hessian)": "jax",
           "torch AF hessian vec=True": "torch", "torch.func.hessian": "torch",
           "CasADi VM": "casadi", "CasADi gcc": "casadi"}
COLD = ("jitad", "njit (hand-written Hessian)")   # the Numba-compiled ones also run cold


def _env(**extra):
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")  # this checkout's jitad
    env.update(extra)
    return env


def run_once(body, env):
    """(seconds to the first Hessian, seconds of the whole process) of one fresh process."""
    with tempfile.TemporaryDirectory() as cwd:  # CasADi's generate() writes into the cwd
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", _HEAD + body + _TAIL], env=env, cwd=cwd,
                             check=True, capture_output=True, text=True).stdout
        t1 = time.time()
    return float(out.split()[-1]) - t0, t1 - t0


def _available(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


def measure(runs=3, libs=None, cold=True, log=print):
    """Rows (case, [(first Hessian s, whole process s)] or note string). `libs`: lower-case
    library names to include (jitad, njit, jax, torch, casadi), all by default."""
    rows = []
    for name, body in BODIES.items():
        module = MODULES[name]
        short = {"numba": "njit"}.get(module, module)
        if libs is not None and short not in libs:
            continue
        if not _available(module):
            rows.append((name, f"skipped: {module} not installed"))
            continue
        if name == "CasADi gcc" and not shutil.which("gcc"):
            rows.append((name, "skipped: no gcc on PATH"))
            continue
        try:
            run_once(body, _env())  # warm-up: Numba cache, OS file cache
            rows.append((name + (" (warm cache)" if name in COLD else ""),
                         [run_once(body, _env()) for _ in range(runs)]))
            log(f"  latency: {name}")
            if name in COLD:
                if not cold:
                    rows.append((name + " (cold cache)", "skipped in --quick"))
                    continue
                ts = []
                for _ in range(runs):
                    with tempfile.TemporaryDirectory() as d:
                        ts.append(run_once(body, _env(NUMBA_CACHE_DIR=d)))
                rows.append((name + " (cold cache)", ts))
                log(f"  latency: {name} cold")
        except subprocess.CalledProcessError as e:
            rows.append((name, f"failed: {e.stderr.strip().splitlines()[-1][:100]}"))
    return rows


def render(rows, runs):
    from peer_table import md_table
    body = []
    for name, ts in rows:
        if isinstance(ts, str):
            body.append([name, ts, ""])
            continue
        first = [t[0] for t in ts]
        body.append([name, f"{statistics.median(first):.2f} ({min(first):.2f}-{max(first):.2f})",
                     f"{statistics.median(t[1] for t in ts):.2f}"])
    return (f"Chained Rosenbrock (NumPy form), n = 100; {runs} fresh process(es) per row; "
            "seconds from spawn to the Hessian in hand: median (min-max), and the whole "
            "process (exit included).\n\n"
            + md_table(["library", "to first Hessian, s", "whole process, s"], body))
