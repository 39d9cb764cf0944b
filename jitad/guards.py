"""Guards: the comparisons a recording relied on, checked whenever the tape is replayed.

A tape records one path through the user's code. Every comparison on traced values whose
outcome the code consumed as a Python value (`if x[0] > 0:`, `max(a, b)`, `sorted`, a traced
boolean mask used as an index, `np.argmax`, `int(np.floor(t))`, ...) appends a guard: the
comparison kind (`opcodes.LT ... NE`), the slot of the left operand, the slot of the right one
(or -1 and a constant), the recorded outcome and the source line. The tape checks them in the
compiled forward sweep (`guard_sweeps.py`) and raises `BranchChangedError` where one flips.

Tape arrays (one entry per guard, saved and remapped like the op arrays):
  guard_code uint8    comparison kind
  guard_a    int32    left operand slot
  guard_b    int32    right operand slot, -1 when the right operand is the constant guard_c
  guard_c    float64  right operand constant (0 when guard_b >= 0)
  guard_out  uint8    recorded outcome (1 True, 0 False)
  guard_site int32    index into tape.guard_sources ("file:line" of the comparison)
"""
import linecache
import os
import sys

import numpy as np

from . import opcodes as oc
from .recorder import _Buf

_PKG = os.path.dirname(os.path.abspath(__file__)) + os.sep
GUARD_ARRAYS = ("guard_code", "guard_a", "guard_b", "guard_c", "guard_out", "guard_site")
GUARD_DTYPES = (np.uint8, np.int32, np.int32, np.float64, np.uint8, np.int32)


class BranchChangedError(RuntimeError):
    """A tape was replayed where a comparison it recorded has the other outcome, so the
    recorded path (and its derivatives) do not describe the function there.

    Attributes: guard (index into the tape's guard arrays), source ("file:line" where the
    comparison's outcome was used, or None), description (the comparison, in words).
    """

    def __init__(self, message=None, guard=None, source=None, description=None, tape=None):
        super().__init__(message)
        self.guard = guard
        self.source = source
        self._description = description
        self._tape = tape  # the message is formatted on demand: jitad.function catches these

    @property
    def description(self):
        if self._description is None and self._tape is not None:
            self._description = describe(self._tape, self.guard)
        return self._description

    def __repr__(self):
        return f"BranchChangedError({str(self)!r})"

    def __str__(self):
        if self.args and self.args[0] is not None:
            return str(self.args[0])
        return _message(self._tape, self.guard, self.description, self.source)


def _caller():
    """(filename, lineno) of the innermost frame outside the jitad package (None if none)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PKG):
        f = f.f_back
    return None if f is None else (f.f_code.co_filename, f.f_lineno)


class GuardLog:
    """The guards of a recording in progress (a `Recorder` holds one as `rec.guards`)."""

    def __init__(self):
        # the tape's dtypes (guard_a/guard_b are slots or -1: int32 like the recorder's arrays,
        # whose _fit keeps slots in range); capacity 0 until a guard is added
        self.code = _Buf(np.uint8, 0)
        self.a = _Buf(np.int32, 0)
        self.b = _Buf(np.int32, 0)
        self.c = _Buf(np.float64, 0)
        self.out = _Buf(np.uint8, 0)
        self.site = _Buf(np.int32, 0)
        self.sources = []   # "file:line" per site
        self._site_ids = {}
        self._pending = []  # scalar guards (code, a, b, c, out, site) not yet in the arrays
        self._seen = set()  # scalar guards already recorded: a loop re-testing one adds nothing

    def __len__(self):
        return self.code.n + len(self._pending)

    def _site(self):
        where = _caller()
        sid = self._site_ids.get(where)
        if sid is None:
            sid = self._site_ids[where] = len(self.sources)
            self.sources.append(None if where is None else f"{where[0]}:{where[1]}")
        return sid

    def add(self, code, a, b, c, out):
        """Guards for whole arrays at once: code, a, b (-1: constant), c, out broadcast to one
        flat length (out: the recorded outcomes)."""
        code, a, b, c, out = (np.ravel(v) for v in np.broadcast_arrays(code, a, b, c, out))
        if code.shape[0] == 0:
            return
        self.flush()
        site = self._site()
        for buf, v in ((self.code, code), (self.a, a), (self.b, b),
                       (self.c, np.where(b < 0, c, 0.0)), (self.out, out),
                       (self.site, np.full(code.shape[0], site))):
            buf.extend(v)

    def add1(self, code, a, b, c, out):
        """One guard (the Python-loop path: `if t > 0`, `sorted`, `max(a, b)`)."""
        key = (code, a, b, c if b < 0 else 0.0, out)  # Python scalars (conditions.compare)
        if key in self._seen:
            return
        self._seen.add(key)
        self._pending.append(key + (self._site(),))

    def flush(self):
        if self._pending:
            rows = np.array(self._pending, dtype=np.float64)
            self._pending = []
            self.code.extend(rows[:, 0].astype(np.uint8))
            self.a.extend(rows[:, 1].astype(np.int64))
            self.b.extend(rows[:, 2].astype(np.int64))
            self.c.extend(rows[:, 3])
            self.out.extend(rows[:, 4].astype(np.uint8))
            self.site.extend(rows[:, 5].astype(np.int64))

    def arrays(self):
        """{name: array} of the tape's guard arrays (GUARD_ARRAYS)."""
        self.flush()
        return dict(zip(GUARD_ARRAYS, (self.code.view(), self.a.view(), self.b.view(),
                                       self.c.view(), self.out.view(), self.site.view())))


# ---------------------------------------------------------------- reporting
def _slot_name(tape, s):
    if s < tape.n_inputs:
        return f"x[{s}]"
    return f"slot {s} ({oc.OP_NAMES[tape.code[s - tape.n_inputs]]})"


def describe(tape, g):
    """The comparison of guard g in words, e.g. "x[0] > 0.0 (True at recording)"."""
    kind = int(tape.guard_code[g])
    rhs = (_slot_name(tape, int(tape.guard_b[g])) if tape.guard_b[g] >= 0
           else repr(float(tape.guard_c[g])))
    return (f"{_slot_name(tape, int(tape.guard_a[g]))} {oc.CMP_SYMBOLS[kind]} {rhs} "
            f"({bool(tape.guard_out[g])} at recording)")


def source(tape, g):
    """"file:line" where guard g's comparison was made, or None."""
    s = int(tape.guard_site[g])
    return tape.guard_sources[s] if 0 <= s < len(tape.guard_sources) else None


def error(tape, g):
    """The BranchChangedError for failing guard g of tape."""
    return BranchChangedError(guard=g, source=source(tape, g), tape=tape)


def _message(tape, g, what, where):
    msg = (f"branch changed: guard {g} of {tape.guard_code.shape[0]}, {what}, has the other "
           f"outcome at this point, so the tape's recorded path does not apply here")
    if where is not None:
        msg += f"; the comparison was made at {where}"
        fname, _, line = where.rpartition(":")
        text = linecache.getline(fname, int(line)).strip() if line.isdigit() else ""
        if text:
            msg += f": `{text}`"
    return msg + (". Record again at this point (jitad.record), or use jitad.function / the "
                  "functional API, which retrace when a branch changes; branch-free np.where/"
                  "maximum/minimum/abs/clip replay on both sides.")


def empty_arrays():
    """The guard arrays of a tape without guards."""
    return {name: np.empty(0, dtype=dt) for name, dt in zip(GUARD_ARRAYS, GUARD_DTYPES)}


def check_arrays(t, s):
    """Cross-array checks of the guard arrays (a `tape_io` cross check; t: validated arrays,
    s: sizes): kinds known, operand slots in range, outcomes 0/1, sites non-negative."""
    if not s["n_guards"]:
        return
    bad = None
    if t["guard_code"].max() >= len(oc.CMP_NAMES):
        bad = "guard_code holds an unknown comparison kind"
    elif t["guard_a"].min() < 0 or t["guard_a"].max() >= s["n_slots"]:
        bad = f"a guard_a operand slot is outside [0, n_slots = {s['n_slots']})"
    elif t["guard_b"].min() < -1 or t["guard_b"].max() >= s["n_slots"]:
        bad = f"a guard_b operand slot is outside its range [-1, n_slots = {s['n_slots']})"
    elif t["guard_out"].max() > 1:
        bad = "guard_out must hold 0 or 1"
    elif t["guard_site"].min() < 0:
        bad = "guard_site is negative"
    if bad:
        raise ValueError(f"invalid tape: {bad}")


def check_sources(site, sources):
    """The "file:line" list of a tape's guard sites (may be empty: no source lines)."""
    sources = [str(x) for x in (sources or [])]
    if site.size and sources and site.max() >= len(sources):
        raise ValueError("invalid tape: guard_site outside guard_sources")
    return sources
