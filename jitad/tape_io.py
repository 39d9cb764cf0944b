"""Validation, saving, loading and pickling of tapes, driven by one table of the tape's arrays.

The compiled sweeps do no bounds checks, so every tape passes `validate` before a sweep sees
it: tapes built by `Tape(...)` (recording included), loaded by `load_tape` and unpickled alike.
`validate` checks every invariant the sweeps rely on (see `sweeps.py`):

- dtypes and lengths: `code` (n_ops,) uint8, `param` (n_ops,), `eptr`/`tptr` (n_ops + 1,) CSR
  offsets starting at 0, non-decreasing, ending at the edge/term counts; every index array fits
  int32, and so do the slot count and the transposed index built from the terms;
- every op code is known (`opcodes.VALID_CODES`) and has the edge count its code fixes
  (`opcodes.edge_count`; DOT an even number);
- operand `arg` of an edge of op i lies in [0, n_in + i): an input or an earlier op's slot;
- an op's terms are exactly its code's pattern (`opcodes.TERM_PATTERN`, DOT: the pairs
  (2k, 2k+1)) over its own edges, since the forward sweep writes second partials by position;
- outputs are slots in [0, n_slots); input/output shapes are consistent with the sizes.

A saved tape is an uncompressed `.npz` (zip of `.npy` members, read with
`allow_pickle=False`) holding the arrays of `FIELDS` plus `META` (format version, n_inputs,
shapes, x0). Before any array is read, the zip directory and every member's `.npy` header are
checked against the file's real length, so a hostile size declaration cannot make the loader
allocate more than the file holds. Anything wrong raises `ValueError` naming the reason.

Adding an array to the tape (e.g. branch guards) = one more `Field` below (name, dtype, length
rule, check) and one more `Tape.__init__` argument of the same name; bump `FORMAT_VERSION`.
"""
import io
import math
import os
import zipfile
from typing import Callable, NamedTuple, Optional

import numpy as np

from . import guards
from . import opcodes as oc
from . import tape_check
# the index dtype and its limit; per op code (padded to 256): term count, term pattern
from .recorder import _IMAX, _TCOUNT, _TLOCAL, INDEX

FORMAT_VERSION = 2  # 2: branch guards (guard_* arrays, guard_sources)
# per op code: the edge count it fixes (-1: variable, LIN and DOT)
_EDGE_COUNT = np.array([-1 if oc.edge_count(c, 0) is None else oc.edge_count(c, 0)
                        for c in range(256)], dtype=np.int64)
_VALID = np.zeros(256, dtype=bool)
_VALID[: oc.N_CODES] = oc.VALID_CODES


def _fail(msg):
    raise ValueError(f"invalid tape: {msg}")


# ------------------------------------------------------------------------------ checks
def _check_structure(t, s):
    """Every cross-array invariant of the core arrays, in one compiled pass (tape_check)."""
    if 2 * s["n_terms"] > _IMAX:  # the transposed index counts term sides in int32
        _fail(f"{s['n_terms']} second-order terms exceed the int32 index range")
    u = np.uint32  # unsigned views: no wraparound code per access (see tape_check)
    err, k = tape_check.structure(s["n_in"], t["code"], t["eptr"].view(u), t["arg"].view(u),
                                  t["tptr"].view(u), t["ta"].view(u), t["tb"].view(u),
                                  t["out"].view(u), _VALID, _EDGE_COUNT, _TCOUNT, _TLOCAL)
    if err == tape_check.OK:
        return
    code, eptr, tptr = t["code"], t["eptr"], t["tptr"]

    def op(i):
        return f"op {i} ({oc.OP_NAMES[code[i]]})"
    if err == tape_check.BAD_CODE:
        _fail(f"unknown op code {int(code[k])} at op {k}")
    if err == tape_check.BAD_EPTR:
        _fail(f"edge offsets eptr are not non-decreasing from 0 to the {s['n_edges']} edges "
              f"(at op {k})")
    if err == tape_check.BAD_EDGE_COUNT:
        _fail(f"{op(k)} has {int(eptr[k + 1] - eptr[k])} operands")
    if err == tape_check.BAD_ARG:
        i = int(np.searchsorted(eptr, k, side="right")) - 1
        _fail(f"operand {int(t['arg'][k])} of op {i} is not an input or an earlier slot "
              f"(must be in [0, {s['n_in'] + i}))")
    if err == tape_check.BAD_TPTR:
        _fail(f"term offsets tptr are not non-decreasing from 0 to the {s['n_terms']} terms "
              f"(at op {k})")
    if err == tape_check.BAD_TERM_COUNT:
        _fail(f"{op(k)} has {int(tptr[k + 1] - tptr[k])} second-order terms, not its code's "
              "pattern")
    if err in (tape_check.BAD_TA, tape_check.BAD_TB):
        i = int(np.searchsorted(tptr, k, side="right")) - 1
        name = "ta" if err == tape_check.BAD_TA else "tb"
        _fail(f"term {k} of {op(i)}: {name} = {int(t[name][k])} is not the edge its pattern "
              "names")
    if err == tape_check.BAD_OUT:
        _fail(f"output {k} is slot {int(t['out'][k])}, outside [0, {s['n_slots']})")
    _fail(f"structure check failed with code {err}")


class Field(NamedTuple):
    """One array of a tape: name, dtype, length rule (sizes -> int, None: defines a size),
    check (arrays, sizes) -> None raising ValueError; fields are checked in table order, so a
    check may rely on the fields above it."""
    name: str
    dtype: np.dtype
    length: Optional[Callable]
    check: Optional[Callable]


FIELDS = (  # the core arrays' values are checked together by _check_structure
    Field("code", np.dtype(np.uint8), None, None),  # defines n_ops
    Field("param", np.dtype(np.float64), lambda s: s["n_ops"], None),
    Field("eptr", np.dtype(INDEX), lambda s: s["n_ops"] + 1, None),
    Field("arg", np.dtype(INDEX), None, None),  # defines n_edges
    Field("coef", np.dtype(np.float64), lambda s: s["n_edges"], None),
    Field("tptr", np.dtype(INDEX), lambda s: s["n_ops"] + 1, None),
    Field("ta", np.dtype(INDEX), None, None),  # defines n_terms
    Field("tb", np.dtype(INDEX), lambda s: s["n_terms"], None),
    Field("out", np.dtype(INDEX), None, None),  # defines n_outputs
    # branch guards (guards.py): one entry per guard, checked by guards.check_arrays
    Field("guard_code", np.dtype(np.uint8), None, None),  # defines n_guards
    Field("guard_a", np.dtype(INDEX), lambda s: s["n_guards"], None),
    Field("guard_b", np.dtype(INDEX), lambda s: s["n_guards"], None),
    Field("guard_c", np.dtype(np.float64), lambda s: s["n_guards"], None),
    Field("guard_out", np.dtype(np.uint8), lambda s: s["n_guards"], None),
    Field("guard_site", np.dtype(INDEX), lambda s: s["n_guards"], None),
)
# sizes defined by a field's length, and cross-array checks run after every field is in
_SIZE_OF = {"code": "n_ops", "arg": "n_edges", "ta": "n_terms", "out": "n_outputs",
            "guard_code": "n_guards"}
CROSS_CHECKS = (_check_structure, guards.check_arrays)
ARRAY_NAMES = tuple(f.name for f in FIELDS)
CORE_NAMES = tuple(n for n in ARRAY_NAMES if n not in guards.GUARD_ARRAYS)


def _make_tape(n_in, arrays, sources, **meta):
    """Tape(...) from {name: array} of every ARRAY_NAMES (validated there)."""
    from .tape import Tape
    return Tape(n_in, **{n: arrays[n] for n in CORE_NAMES},
                guards={n: arrays[n] for n in guards.GUARD_ARRAYS}, guard_sources=sources,
                **meta)


_RANGE = {np.dtype(d).char: (int(np.iinfo(d).min), int(np.iinfo(d).max))
          for d in (np.uint8, INDEX)}


def _coerce(f, a, strict):
    """a as a C-contiguous 1-D array of f's dtype. strict (files): the dtype must match
    exactly; otherwise integers are range-checked before narrowing to int32/uint8."""
    if strict:
        if not isinstance(a, np.ndarray) or a.dtype != f.dtype or a.ndim != 1:
            _fail(f"array '{f.name}' must be 1-D {f.dtype}, got "
                  f"{getattr(a, 'dtype', type(a).__name__)} of shape {getattr(a, 'shape', '?')}")
        return np.ascontiguousarray(a)
    if (type(a) is np.ndarray and a.dtype == f.dtype and a.ndim == 1
            and a.flags.c_contiguous):
        return a  # already in the table's form: nothing to convert or range-check
    a = np.asarray(a)
    if a.ndim != 1:
        if a.size == 0:
            a = a.reshape(0)
        else:
            _fail(f"array '{f.name}' must be 1-D, got shape {a.shape}")
    if f.dtype.kind in "iu":
        if a.size and a.dtype.kind not in "iu":
            if a.dtype.kind not in "bf" or not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                _fail(f"array '{f.name}' must hold integers, got dtype {a.dtype}")
        lo, hi = _RANGE[f.dtype.char]
        if a.size and (a.max() > hi or a.min() < lo):
            what = "the int32 index range" if f.dtype == INDEX else f"the {f.dtype} range"
            _fail(f"tape too large or corrupt: '{f.name}' outside {what}")
    elif a.dtype.kind not in "biuf":
        _fail(f"array '{f.name}' must be real numbers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=f.dtype)


def _shapes(shapes, total, what):
    try:
        shapes = [tuple(int(d) for d in s) for s in shapes]
    except (TypeError, ValueError, OverflowError):
        _fail(f"{what} must be a list of shape tuples")
    if any(d < 0 for s in shapes for d in s):
        _fail(f"{what} has a negative dimension")
    size = sum(math.prod(s) for s in shapes)  # exact (np.prod(dtype=object): ~13 us each)
    if size != total:
        _fail(f"{what} {shapes} hold {size} elements, the tape has {total}")
    return shapes


def validate(n_in, arrays, input_shapes=None, output_shapes=None, x0=None, strict=False):
    """Check a tape's arrays ({name: array} for every name in ARRAY_NAMES) and metadata.

    Returns (n_in, {name: contiguous array of the table's dtype}, input_shapes, output_shapes,
    x0 or None); raises ValueError naming the first problem. strict: dtypes must already match
    (files); else integer arrays are narrowed after a range check (the recorder's int64).
    """
    if isinstance(n_in, (bool, np.bool_)) or not isinstance(n_in, (int, np.integer)):
        _fail(f"n_inputs must be an integer, got {n_in!r}")
    n_in = int(n_in)
    missing = [f.name for f in FIELDS if f.name not in arrays]
    if missing:
        _fail(f"missing array(s) {missing}")
    s = {"n_in": n_in}
    t = {}
    for f in FIELDS:
        a = _coerce(f, arrays[f.name], strict)
        if f.length is None:
            s[_SIZE_OF[f.name]] = int(a.shape[0])
        elif a.shape[0] != f.length(s):
            _fail(f"array '{f.name}' has length {a.shape[0]}, expected {f.length(s)}")
        t[f.name] = a
    if n_in < 0 or n_in + s["n_ops"] > _IMAX:
        _fail(f"n_inputs = {n_in} with {s['n_ops']} ops is outside the int32 slot range")
    s["n_slots"] = n_in + s["n_ops"]
    for f in FIELDS:
        if f.check is not None:
            f.check(t, s)
    for check in CROSS_CHECKS:
        check(t, s)
    if input_shapes is None and output_shapes is None and x0 is None:
        return n_in, t, [(n_in,)], [(s["n_outputs"],)], None
    input_shapes = [(n_in,)] if input_shapes is None else _shapes(input_shapes, n_in,
                                                                 "input_shapes")
    n_out = s["n_outputs"]
    output_shapes = [(n_out,)] if output_shapes is None else _shapes(output_shapes, n_out,
                                                                    "output_shapes")
    if x0 is not None:
        x0 = np.asarray(x0)
        if x0.dtype.kind not in "biuf" or x0.shape != (n_in,):
            _fail(f"x0 must be a real ({n_in},) array, got {x0.dtype} of shape {x0.shape}")
        x0 = np.asarray(x0, dtype=np.float64)
    return n_in, t, input_shapes, output_shapes, x0


# ------------------------------------------------------------------------------ pickling
def tape_state(tape):
    """Everything that defines a tape, as plain Python values and arrays."""
    return {"format_version": FORMAT_VERSION, "n_inputs": tape.n_inputs,
            "arrays": {name: getattr(tape, name) for name in ARRAY_NAMES},
            "input_shapes": [tuple(s) for s in tape.input_shapes],
            "output_shapes": [tuple(s) for s in tape.output_shapes],
            "output_is_tuple": bool(tape.output_is_tuple), "x0": tape.x0,
            "guard_sources": list(tape.guard_sources)}


def tape_from_state(state):
    """A Tape from `tape_state(...)`: validated like any tape (used by unpickling)."""
    if not isinstance(state, dict) or not isinstance(state.get("arrays"), dict):
        _fail("pickled state is not a tape's state")
    if state.get("format_version") != FORMAT_VERSION:
        _fail(f"format version {state.get('format_version')!r}, this jitad reads "
              f"{FORMAT_VERSION}")
    keys = {"n_inputs", "input_shapes", "output_shapes", "output_is_tuple", "x0",
            "guard_sources"}
    if not keys <= set(state) or set(state["arrays"]) != set(ARRAY_NAMES):
        _fail(f"pickled state must hold {sorted(keys)} and the arrays {list(ARRAY_NAMES)}")
    if not isinstance(state["guard_sources"], list):
        _fail("pickled guard_sources must be a list of strings")
    return _make_tape(state["n_inputs"], state["arrays"], state["guard_sources"],
                      input_shapes=state["input_shapes"], output_shapes=state["output_shapes"],
                      output_is_tuple=bool(state["output_is_tuple"]), x0=state["x0"])


# ------------------------------------------------------------------------------ files
def _pack_shapes(shapes):
    return (np.array([len(s) for s in shapes], dtype=np.int64),
            np.array([d for s in shapes for d in s], dtype=np.int64))


def _unpack_shapes(ndim, dims, what):
    if ndim.size and (ndim.min() < 0 or int(ndim.sum()) != dims.shape[0]):
        _fail(f"{what} shape table is inconsistent")
    ends = np.cumsum(ndim)
    return [tuple(int(d) for d in dims[e - k: e]) for k, e in zip(ndim, ends)]


# name -> dtype of the metadata members (all 1-D)
META = {"format_version": np.dtype(np.int64), "n_inputs": np.dtype(np.int64),
        "output_is_tuple": np.dtype(np.uint8), "input_ndim": np.dtype(np.int64),
        "input_dims": np.dtype(np.int64), "output_ndim": np.dtype(np.int64),
        "output_dims": np.dtype(np.int64), "x0": np.dtype(np.float64),
        "guard_sources": np.dtype(np.uint8)}  # UTF-8, one "file:line" per line
_MEMBER_DTYPES = {**META, **{f.name: f.dtype for f in FIELDS}}


def save(tape, file):
    """Write `tape` to `file` (a path, written exactly as given, or a binary file object) as an
    uncompressed .npz with format version FORMAT_VERSION."""
    in_ndim, in_dims = _pack_shapes(tape.input_shapes)
    out_ndim, out_dims = _pack_shapes(tape.output_shapes)
    members = {name: getattr(tape, name) for name in ARRAY_NAMES}
    members.update(format_version=np.array([FORMAT_VERSION], dtype=np.int64),
                   n_inputs=np.array([tape.n_inputs], dtype=np.int64),
                   output_is_tuple=np.array([bool(tape.output_is_tuple)], dtype=np.uint8),
                   input_ndim=in_ndim, input_dims=in_dims, output_ndim=out_ndim,
                   output_dims=out_dims,
                   x0=np.empty(0) if tape.x0 is None else np.asarray(tape.x0, np.float64),
                   guard_sources=np.frombuffer("\n".join(tape.guard_sources).encode(),
                                               dtype=np.uint8))
    if isinstance(file, (str, bytes, os.PathLike)):
        with open(file, "wb") as f:
            np.savez(f, **members)
    else:
        np.savez(file, **members)


def _scan(fobj, length):
    """Check the zip directory and each member's .npy header against the real file length
    before numpy reads anything: declared sizes must be exactly what the member holds."""
    with zipfile.ZipFile(fobj) as z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            _fail("the file has duplicate members")
        want = {n + ".npy" for n in _MEMBER_DTYPES}
        if set(names) != want:
            extra, missing = set(names) - want, want - set(names)
            _fail(f"unexpected members {sorted(extra)}" if extra else
                  f"missing members {sorted(missing)}")
        total = 0
        for info in infos:
            name = info.filename[:-4]
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                _fail(f"member '{name}' is compressed (saved tapes are stored uncompressed)")
            total += info.file_size
            if total > length:
                _fail(f"member sizes exceed the file's {length} bytes")
            with z.open(info) as m:
                version = np.lib.format.read_magic(m)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(m)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(m)
                else:
                    _fail(f"member '{name}' has .npy version {version}")
                header = m.tell()
            if dtype != _MEMBER_DTYPES[name] or len(shape) != 1:
                _fail(f"member '{name}' must be 1-D {_MEMBER_DTYPES[name]}, got {dtype} of shape "
                      f"{shape}")
            if header + shape[0] * dtype.itemsize != info.file_size:
                _fail(f"member '{name}' declares {shape[0]} elements, the file holds "
                      f"{max(0, info.file_size - header) // dtype.itemsize}")


def load(file):
    """Read a tape written by `save`, validating everything (ValueError with the reason)."""
    if isinstance(file, (str, bytes, os.PathLike)):
        with open(file, "rb") as f:
            return load(f)
    if not (hasattr(file, "seekable") and file.seekable()):
        file = io.BytesIO(file.read())
    start = file.tell()
    length = file.seek(0, io.SEEK_END) - start
    try:
        file.seek(start)
        _scan(file, length)
        file.seek(start)
        with np.load(file, allow_pickle=False) as z:
            m = {name: z[name] for name in _MEMBER_DTYPES}
    except ValueError as e:
        raise ValueError(f"corrupt tape file: {e}") from e
    except Exception as e:  # zipfile, zlib, header parsing: any failure means a bad file
        raise ValueError(f"corrupt tape file: {type(e).__name__}: {e}") from e
    for name in ("format_version", "n_inputs", "output_is_tuple"):
        if m[name].shape != (1,):
            _fail(f"'{name}' must hold one value")
    version = int(m["format_version"][0])
    if version != FORMAT_VERSION:
        _fail(f"format version {version}, this jitad reads {FORMAT_VERSION}")
    n_in = int(m["n_inputs"][0])
    x0 = m["x0"] if m["x0"].shape[0] or n_in == 0 else None
    for f in FIELDS:  # files must hold exactly the table's dtypes (Tape() then validates)
        _coerce(f, m[f.name], strict=True)
    try:
        text = m["guard_sources"].tobytes().decode()
    except UnicodeDecodeError:
        _fail("guard_sources is not UTF-8 text")
    return _make_tape(n_in, m, text.split("\n") if text else [],
                      input_shapes=_unpack_shapes(m["input_ndim"], m["input_dims"], "input"),
                      output_shapes=_unpack_shapes(m["output_ndim"], m["output_dims"], "output"),
                      output_is_tuple=bool(m["output_is_tuple"][0]), x0=x0)
