"""Fuzz the tape loader: corrupt saved tapes must raise ValueError, never crash the process.

    python tests/fuzz_tape_io.py --cases 20000 [--seed 1] [--boundscheck]

Each case takes a saved tape (several recorded programs covering every op kind) and corrupts
it one way: random byte flips, truncation, swapped arrays, huge declared sizes in .npy headers,
out-of-range or shifted values in index arrays, changed dtypes/lengths/metadata, and the same
value corruptions through unpickling and `jitad.Tape(...)`. Loading must either raise
ValueError or give a tape on which every method runs (the corruption kept it valid). Anything
else is a failure; a crash kills the process with a signal, which the pytest wrapper
(tests/test_tape_io.py) detects from the return code. --boundscheck recompiles the sweeps with
Numba's bounds checks (in a fresh cache directory, slow to start), so an out-of-bounds access
that does not happen to crash raises IndexError instead and counts as a failure.
"""
import argparse
import io
import os
import pickle
import subprocess
import sys
import tempfile
import traceback
import zipfile

import numpy as np

# this checkout's jitad, not an installed one (the script runs from tests/)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def programs():
    """(function, args) pairs whose tapes hold every op kind: LIN, DOT, CONST, unary ops,
    binary ops in all three modes, select and comparison ops, guards, several outputs."""
    def f1(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    def f2(x, y):
        A = np.arange(12.0).reshape(3, 4)
        u = A @ x + np.dot(x, x) * y
        v = np.maximum(x, y[0]) / (1.0 + np.exp(-x)) + np.hypot(x, 2.0) - np.arctan2(1.0, x)
        return u, np.concatenate([v, [3.0]]), np.logaddexp(x[0], y[1]) ** x[1]

    def f3(x):
        s = x[0]
        for k in range(1, x.shape[0]):
            s = np.sin(s) * x[k] + np.sqrt(x[k] * x[k] + 1.0) - np.abs(x[k]) / 2.0
        return np.stack([s, np.log1p(s * s), np.prod(x)])

    def f4(x):  # branch guards and select ops
        y = np.where(x > 0.2, x * x, np.cos(x))
        if x[0] < x[1]:
            y = y * x[0]
        return np.sum(y[np.argsort(x)] * np.arange(1.0, x.shape[0] + 1))

    return [(f1, (np.linspace(-1.0, 1.0, 6),)), (f4, (np.array([0.1, 0.7, -0.4, 0.3]),)),
            (f2, (np.linspace(0.2, 1.1, 4), np.array([0.5, -0.3, 0.8]))),
            (f3, (np.linspace(0.3, 1.5, 5),))]


def npz_bytes(members):
    """An uncompressed npz of arbitrary members (arrays of any dtype/shape), bypassing save."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, a in members.items():
            b = io.BytesIO()
            np.lib.format.write_array(b, np.asarray(a), allow_pickle=False)
            z.writestr(name + ".npy", b.getvalue())
    return buf.getvalue()


def npy_with_header(a, shape):
    """.npy bytes holding a's data but declaring `shape` (a hostile size declaration)."""
    header = {"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False,
              "shape": shape}
    b = io.BytesIO()
    np.lib.format.write_array_header_1_0(b, header)
    return b.getvalue() + a.tobytes()


def members_of(data):
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


INDEX_NAMES = ("eptr", "arg", "tptr", "ta", "tb", "out")
ALL_NAMES = ("code", "param", "eptr", "arg", "coef", "tptr", "ta", "tb", "out")


def interesting(rng, m, n_slots, n_edges):
    return int(rng.choice([-1, 0, 1, n_slots - 1, n_slots, n_slots + 1, n_edges, n_edges + 1,
                           2 ** 31 - 1, -2 ** 31, m.get("n_inputs", [0])[0],
                           int(rng.integers(-5, n_slots + 5))]))


def mutate_members(rng, m):
    """Corrupt the member dict in place one semantic way; returns a short description."""
    n_ops = m["code"].shape[0]
    n_in = int(m["n_inputs"][0])
    n_slots, n_edges = n_in + n_ops, m["arg"].shape[0]
    kind = int(rng.integers(0, 9))
    if kind == 0:  # one index value out of range / shifted
        name = INDEX_NAMES[rng.integers(len(INDEX_NAMES))]
        a = m[name].copy()
        if a.size:
            a[rng.integers(a.size)] = interesting(rng, m, n_slots, n_edges)
        m[name] = a
        return f"value {name}"
    if kind == 1:  # op code changed
        a = m["code"].copy()
        if a.size:
            a[rng.integers(a.size)] = rng.integers(0, 256)
        m["code"] = a
        return "code"
    if kind == 2:  # swap two arrays
        a, b = rng.choice(list(m), 2, replace=False)
        m[a], m[b] = m[b], m[a]
        return f"swap {a} {b}"
    if kind == 3:  # dtype changed
        name = rng.choice(list(m))
        dt = rng.choice(["<i8", "<f4", ">i4", "<u2", "|b1", "<f8", "<i4", "|u1"])
        m[name] = m[name].astype(dt)
        return f"dtype {name} {dt}"
    if kind == 4:  # length changed
        name = rng.choice(list(m))
        a = m[name]
        m[name] = a[:-1] if a.size and rng.random() < 0.5 else np.concatenate([a, a[:1]])
        return f"length {name}"
    if kind == 5:  # metadata
        name = rng.choice(["n_inputs", "format_version", "output_is_tuple", "input_ndim",
                           "input_dims", "output_ndim", "output_dims", "x0"])
        a = m[name].copy()
        if a.size:
            a[rng.integers(a.size)] = rng.choice([-1, 0, 1, 2, 3, 2 ** 40, 7])
        m[name] = a
        return f"meta {name}"
    if kind == 6:  # shape: 2-D, or 0-d
        name = rng.choice(list(m))
        a = m[name]
        m[name] = a.reshape(1, -1) if rng.random() < 0.5 else np.asarray(a.ravel()[0] if a.size
                                                                           else 0)
        return f"ndim {name}"
    if kind == 7:  # member removed or added
        if rng.random() < 0.5:
            del m[rng.choice(list(m))]
            return "missing member"
        m["extra"] = np.zeros(3)
        return "extra member"
    # several index values at once, all random within a plausible range
    for _ in range(int(rng.integers(2, 6))):
        name = INDEX_NAMES[rng.integers(len(INDEX_NAMES))]
        a = m[name].copy()
        if a.size:
            a[rng.integers(a.size)] = rng.integers(-2, n_slots + 2)
        m[name] = a
    return "values"


def corrupt_file(rng, data):
    """(bytes, description): the saved file corrupted at the byte level, or by a member
    rewritten with a hostile header."""
    kind = int(rng.integers(0, 4))
    if kind == 0:
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            b[rng.integers(len(b))] = rng.integers(0, 256)
        return bytes(b), "byte flips"
    if kind == 1:
        return data[: int(rng.integers(0, len(data)))], "truncated"
    if kind == 2:  # huge or wrong declared size, data unchanged, zip itself consistent
        m = members_of(data)
        name = rng.choice(list(m))
        a = m[name]
        n = int(rng.choice([2 ** 62, 2 ** 40, 2 ** 31, a.size + 1, max(a.size - 1, 0), 10 ** 12]))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for k, v in m.items():
                if k == name:
                    z.writestr(k + ".npy", npy_with_header(v, (n,)))
                else:
                    b = io.BytesIO()
                    np.lib.format.write_array(b, v)
                    z.writestr(k + ".npy", b.getvalue())
        return buf.getvalue(), f"declared size {name} {n}"
    m = members_of(data)  # a compressed archive (not accepted) or a member's bytes flipped
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in m.items():
            b = io.BytesIO()
            np.lib.format.write_array(b, v)
            z.writestr(k + ".npy", b.getvalue())
    return buf.getvalue(), "compressed"


def exercise(tape, rng):
    """Run every method of a loaded tape (a corruption that kept it valid). A flipped guard
    (BranchChangedError) is a correct answer too."""
    import jitad
    try:
        _exercise(tape, rng)
    except jitad.BranchChangedError:
        pass


def _exercise(tape, rng):
    n, m = tape.n_inputs, tape.n_outputs
    x = rng.normal(size=n)
    tape.forward(x)
    tape.jvp(x, rng.normal(size=n))
    tape.jvp(x, rng.normal(size=(n, 3)))
    tape.vjp(x, rng.normal(size=m))
    tape.vjp(x, rng.normal(size=(2, m)))
    tape.jacobian(x)
    tape.input_influence()
    w = rng.normal(size=m)
    tape.hvp(x, rng.normal(size=n), w)
    tape.hvp(x, rng.normal(size=(n, 2)), w)
    tape.hessian(x, w)
    if m == 1:
        tape.gradient(x)
        tape.value_and_gradient(x * 0.5)


def run(cases, seed):
    import jitad
    from jitad import tape_io
    rng = np.random.default_rng(seed)
    bases = []
    for f, args in programs():
        t = jitad.record(f, *args)
        buf = io.BytesIO()
        t.save(buf)
        bases.append((t, buf.getvalue()))
    stats = {"rejected": 0, "loaded": 0}
    failures = []
    np.seterr(all="ignore")  # corrupted programs compute infs and nans: not what is tested
    for case in range(cases):
        tape0, data = bases[case % len(bases)]
        route = int(rng.integers(0, 10))
        try:
            if route < 4:  # semantic corruption of the members, written as a consistent npz
                m = members_of(data)
                what = mutate_members(rng, m)
                blob = npz_bytes(m)
                load = lambda: jitad.load_tape(io.BytesIO(blob))  # noqa: E731
            elif route < 7:
                blob, what = corrupt_file(rng, data)
                load = lambda: jitad.load_tape(io.BytesIO(blob))  # noqa: E731
            elif route < 9:  # the same corruptions through pickling
                state = tape_io.tape_state(tape0)
                m = {k: v.copy() for k, v in state["arrays"].items()}
                m["n_inputs"] = np.array([state["n_inputs"]])
                what = "pickle " + mutate_members(rng, m)
                state["n_inputs"] = int(m.pop("n_inputs", [state["n_inputs"]])[0]) \
                    if "n_inputs" in m else state["n_inputs"]
                state["arrays"] = {k: v for k, v in m.items() if k in ALL_NAMES}
                blob = pickle.dumps(state)
                load = lambda: tape_io.tape_from_state(pickle.loads(blob))  # noqa: E731
            else:  # directly through the public constructor
                state = tape_io.tape_state(tape0)
                m = {k: v.copy() for k, v in state["arrays"].items()}
                m["n_inputs"] = np.array([state["n_inputs"]])
                what = "Tape() " + mutate_members(rng, m)
                n_in = np.ravel(m.pop("n_inputs", np.array([state["n_inputs"]])))
                arrays = {k: m.get(k, np.zeros(0)) for k in ALL_NAMES}
                load = lambda: jitad.Tape(n_in[0] if n_in.size else 0, **arrays)  # noqa: E731
        except Exception:  # building the corruption itself failed: not a loader case
            continue
        try:
            tape = load()
        except ValueError:
            stats["rejected"] += 1
            continue
        except Exception as e:
            failures.append(f"case {case} ({what}): load raised {type(e).__name__}: {e}")
            continue
        stats["loaded"] += 1
        try:
            exercise(tape, rng)
        except Exception:
            failures.append(f"case {case} ({what}): a loaded tape failed:\n"
                            + traceback.format_exc())
    total = stats["rejected"] + stats["loaded"]
    print(f"fuzz: {total} cases, {stats['rejected']} rejected with ValueError, "
          f"{stats['loaded']} loaded and exercised, {len(failures)} failures")
    for f in failures[:20]:
        print(f)
    return 1 if failures else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--boundscheck", action="store_true")
    a = p.parse_args()
    if a.boundscheck and os.environ.get("NUMBA_BOUNDSCHECK") != "1":
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=cache)
            args = [sys.executable, __file__, "--cases", str(a.cases), "--seed", str(a.seed)]
            sys.exit(subprocess.run(args, env=env).returncode)
    sys.exit(run(a.cases, a.seed))


if __name__ == "__main__":
    main()
