"""Saved and pickled tapes: round trips, and every corruption rejected with ValueError before a
compiled sweep sees it (named cases here, random ones in the fuzz subprocess)."""
import copy
import io
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import jitad
from jitad import opcodes as oc
from jitad import tape_io
from fdcheck import assert_close, assert_fd_close, fd_gradient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mixed(x, y):
    A = np.arange(6.0).reshape(2, 3)
    u = A @ x + np.dot(x, x) * y
    return u, np.maximum(x, y) / (1.0 + np.exp(-x)) + np.hypot(x, 2.0) - np.arctan2(1.0, x)


def scalar(x):
    return np.sum(np.sin(x) * x[::-1] + np.sqrt(x * x + 1.0)) + np.prod(x) ** 2


X = np.array([0.3, -0.7, 1.1])
Y = 0.4


@pytest.fixture(scope="module")
def tapes():
    return jitad.record(mixed, X, Y), jitad.record(scalar, X)


def same_tape(a, b):
    for name in tape_io.ARRAY_NAMES:
        ga, gb = getattr(a, name), getattr(b, name)
        assert ga.dtype == gb.dtype and np.array_equal(ga, gb), name
    assert (a.n_inputs, a.n_outputs, a.input_shapes, a.output_shapes, a.output_is_tuple) == \
        (b.n_inputs, b.n_outputs, b.input_shapes, b.output_shapes, b.output_is_tuple)
    assert np.array_equal(a.x0, b.x0)


def roundtrips(tape, tmp_path):
    path = tmp_path / "t.tape"
    tape.save(path)
    assert path.exists() and not (tmp_path / "t.tape.npz").exists()  # written as given
    buf = io.BytesIO()
    tape.save(buf)
    buf.seek(0)
    return [jitad.load_tape(path), jitad.load_tape(str(path)), jitad.load_tape(buf),
            pickle.loads(pickle.dumps(tape)), copy.deepcopy(tape)]


def test_roundtrip_vector_output(tapes, tmp_path):
    tape = tapes[0]
    x1 = np.concatenate([X * 1.3, [0.9]])
    w = np.array([0.5, -1.0, 2.0, 0.3, 0.1])
    for t in roundtrips(tape, tmp_path):
        same_tape(t, tape)
        assert_close(t.forward(x1), tape.forward(x1), rtol=0, atol=0)
        assert_close(t.jacobian(x1), tape.jacobian(x1), rtol=0, atol=0)
        assert_close(t.hessian(x1, w), tape.hessian(x1, w), rtol=0, atol=0)


def test_roundtrip_gradient_against_finite_differences(tapes, tmp_path):
    tape = tapes[1]
    x1 = X + 0.2
    for t in roundtrips(tape, tmp_path):
        same_tape(t, tape)
        assert_fd_close(t.gradient(x1), fd_gradient(scalar, x1))
        assert_close(t.hessian(x1), tape.hessian(x1), rtol=0, atol=0)


def test_loaded_tape_has_its_own_point_cache(tapes):
    """A loaded copy must not answer from the original's cached point (and vice versa)."""
    tape = tapes[1]
    other = jitad.record(lambda x: np.sum(x ** 3), X)
    buf = io.BytesIO()
    other.save(buf)
    buf.seek(0)
    loaded = jitad.load_tape(buf)
    g = tape.gradient(X)
    assert_close(loaded.gradient(X), 3 * X ** 2, rtol=1e-15, atol=0)
    assert_close(tape.gradient(X), g, rtol=0, atol=0)


def test_x0_none_and_empty_program(tmp_path):
    t = jitad.Tape(2, np.zeros(0, np.uint8), [], [0], [], [], [0], [], [], [1])
    assert t.x0 is None and len(t) == 0
    for u in roundtrips(t, tmp_path):
        same_tape(u, t)
        assert u.x0 is None
        assert_close(u.forward([3.0, 4.0]), [4.0], rtol=0, atol=0)
        assert_close(u.gradient([3.0, 4.0]), [0.0, 1.0], rtol=0, atol=0)


def test_missing_file_is_not_a_value_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        jitad.load_tape(tmp_path / "nope")


# ------------------------------------------------------------------ named corruptions
def members(tape):
    buf = io.BytesIO()
    tape.save(buf)
    with np.load(io.BytesIO(buf.getvalue()), allow_pickle=False) as z:
        return {k: z[k].copy() for k in z.files}


def npz(m, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for k, v in m.items():
            b = io.BytesIO()
            np.lib.format.write_array(b, np.asarray(v))
            z.writestr(k + ".npy", b.getvalue())
    buf.seek(0)
    return buf


def edit(tape, name, fn):
    m = members(tape)
    m[name] = fn(m[name].copy())
    return m


def setv(i, v):
    def fn(a):
        a[i] = v
        return a
    return fn


def first_op(tape, code):
    return int(np.flatnonzero(tape.code == code)[0])


@pytest.mark.parametrize("case, match", [
    ("unknown code", "unknown op code 7"),
    ("later slot", "not an input or an earlier slot"),
    ("own slot", "not an input or an earlier slot"),
    ("negative operand", "not an input or an earlier slot"),
    ("eptr decreasing", "edge offsets"),
    ("eptr start", "edge offsets"),
    ("edge count", "has 2 operands"),
    ("term edge", "is not the edge its pattern names"),
    ("term count", "second-order terms"),
    ("output", "outside"),
    ("eptr length", "'eptr' has length"),
    ("dtype", "must be 1-D int32"),
    ("version", "format version 99"),
    ("missing", "missing members"),
    ("extra", "unexpected members"),
    ("input shapes", "hold 3 elements"),
    ("huge declared size", "declares"),
    ("compressed", "compressed"),
    ("big-endian", "must be 1-D int32"),
])
def test_corrupt_file_raises_value_error(tapes, case, match):
    tape = tapes[0]
    n_in, i_sin = tape.n_inputs, None
    i_mul = first_op(tape, oc.binary_code("multiply", oc.VV))
    e_mul = int(tape.eptr[i_mul])
    if case == "unknown code":
        m = edit(tape, "code", setv(0, 7))
    elif case == "later slot":
        m = edit(tape, "arg", setv(e_mul, n_in + i_mul + 1))
    elif case == "own slot":
        m = edit(tape, "arg", setv(e_mul, n_in + i_mul))
    elif case == "negative operand":
        m = edit(tape, "arg", setv(0, -1))
    elif case == "eptr decreasing":
        m = edit(tape, "eptr", setv(3, 10 ** 6))
    elif case == "eptr start":
        m = edit(tape, "eptr", setv(0, 1))
    elif case == "edge count":  # a unary op given two edges (offsets shifted consistently)
        i_sin = first_op(tape, oc.UNARY_CODE["exp"])
        m = members(tape)
        m["eptr"][i_sin + 1:] += 1
        m["arg"] = np.insert(m["arg"], m["eptr"][i_sin], 0)
        m["coef"] = np.insert(m["coef"], m["eptr"][i_sin], 0.0)
        m["ta"][m["ta"] >= m["eptr"][i_sin]] += 1
        m["tb"][m["tb"] >= m["eptr"][i_sin]] += 1
    elif case == "term edge":  # the term of a multiply names another op's edge
        m = edit(tape, "ta", setv(int(tape.tptr[i_mul]), 0))
    elif case == "term count":
        m = edit(tape, "code", setv(i_mul, oc.binary_code("maximum", oc.VV)))
    elif case == "output":
        m = edit(tape, "out", setv(0, n_in + len(tape)))
    elif case == "eptr length":
        m = edit(tape, "eptr", lambda a: a[:-1])
    elif case == "dtype":
        m = edit(tape, "arg", lambda a: a.astype(np.int64))
    elif case == "big-endian":
        m = edit(tape, "arg", lambda a: a.astype(">i4"))
    elif case == "version":
        m = edit(tape, "format_version", setv(0, 99))
    elif case == "missing":
        m = members(tape)
        del m["tb"]
    elif case == "extra":
        m = members(tape)
        m["guard"] = np.zeros(2)
    elif case == "input shapes":
        m = edit(tape, "input_dims", setv(0, 2))
    elif case == "compressed":
        with pytest.raises(ValueError, match=match):
            jitad.load_tape(npz(members(tape), zipfile.ZIP_DEFLATED))
        return
    elif case == "huge declared size":
        m = members(tape)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for k, v in m.items():
                b = io.BytesIO()
                if k == "arg":  # the header claims 2**62 elements, the data is unchanged
                    np.lib.format.write_array_header_1_0(
                        b, {"descr": "<i4", "fortran_order": False, "shape": (2 ** 62,)})
                    b.write(v.tobytes())
                else:
                    np.lib.format.write_array(b, v)
                z.writestr(k + ".npy", b.getvalue())
        buf.seek(0)
        with pytest.raises(ValueError, match=match):
            jitad.load_tape(buf)
        return
    with pytest.raises(ValueError, match=match):
        jitad.load_tape(npz(m))


@pytest.mark.parametrize("cut", [0, 10, 100, -1])
def test_truncated_and_garbage_files(tapes, cut):
    buf = io.BytesIO()
    tapes[1].save(buf)
    data = buf.getvalue()
    with pytest.raises(ValueError, match="corrupt tape file"):
        jitad.load_tape(io.BytesIO(data[:cut] if cut >= 0 else data[: len(data) // 2]))
    with pytest.raises(ValueError, match="corrupt tape file"):
        jitad.load_tape(io.BytesIO(b"\x00" * 1000))


def test_constructor_validates_like_load(tapes):
    """jitad.Tape(...) is public: arbitrary arrays get the same checks."""
    tape = tapes[1]
    arrays = {name: getattr(tape, name).copy() for name in tape_io.CORE_NAMES}
    arrays["arg"][-1] = tape.n_inputs + len(tape)
    with pytest.raises(ValueError, match="not an input or an earlier slot"):
        jitad.Tape(tape.n_inputs, **arrays)
    arrays["arg"] = getattr(tape, "arg").astype(np.int64)
    arrays["arg"][0] = 2 ** 40
    with pytest.raises(ValueError, match="int32 index range"):
        jitad.Tape(tape.n_inputs, **arrays)
    arrays["arg"] = tape.arg
    with pytest.raises(ValueError, match="n_inputs"):
        jitad.Tape(-1, **arrays)
    with pytest.raises(ValueError, match="input_shapes"):
        jitad.Tape(tape.n_inputs, **arrays, input_shapes=[(2,)])
    with pytest.raises(ValueError, match="x0"):
        jitad.Tape(tape.n_inputs, **arrays, x0=np.zeros(2))
    t = jitad.Tape(tape.n_inputs, **{k: v.astype(np.int64) if v.dtype == np.int32 else v
                                     for k, v in arrays.items()})
    assert_close(t.gradient(X), tape.gradient(X), rtol=0, atol=0)


def test_unpickling_validates(tapes):
    state = tape_io.tape_state(tapes[1])
    state["arrays"] = dict(state["arrays"], out=np.array([10 ** 6], np.int32))
    with pytest.raises(ValueError, match="outside"):
        tape_io.tape_from_state(state)
    with pytest.raises(ValueError, match="format version"):
        tape_io.tape_from_state(dict(state, format_version=99))
    with pytest.raises(ValueError, match="state"):
        tape_io.tape_from_state({"arrays": {}, "format_version": tape_io.FORMAT_VERSION})


def test_fuzz_subprocess_never_dies():
    """Random corruptions of saved tapes in a subprocess: every one must raise ValueError or
    give a working tape; a crash (negative return code: killed by a signal) fails the test."""
    cases = 300
    r = subprocess.run([sys.executable, os.path.join("tests", "fuzz_tape_io.py"), "--cases",
                        str(cases), "--seed", "7"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    print(r.stdout[-3000:], r.stderr[-3000:])
    assert r.returncode == 0, (r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    assert "0 failures" in r.stdout
    tried = int(r.stdout.split("fuzz: ")[1].split(" cases")[0])
    assert tried > 0.8 * cases


def test_guarded_tape_round_trips(tmp_path):
    """Guards and their source lines survive save/load and pickling, and still fire."""
    import pickle

    def f(x):
        if x[0] > 0.5:
            return np.sum(x ** 2)
        return np.sum(np.sin(x))
    x = np.array([1.0, 2.0, -0.5])
    tape = jitad.record(f, x)
    assert tape.n_guards == 1
    path = tmp_path / "guarded.npz"
    tape.save(path)
    for loaded in (jitad.load_tape(path), pickle.loads(pickle.dumps(tape))):
        assert loaded.n_guards == 1 and loaded.guard_sources == tape.guard_sources
        np.testing.assert_array_equal(loaded.gradient(x), 2 * x)
        with pytest.raises(jitad.BranchChangedError, match="test_tape_io.py"):
            loaded.gradient(-x)
