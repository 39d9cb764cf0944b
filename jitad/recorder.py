"""The tape under construction: growable flat arrays that whole numpy operations append to.

Every append adds K ops of one code with the same fan-in E in one vectorised step; the slot of
op i is n_in + i, so an append can refer to slots it is itself creating (cumsum chains).

Second-order terms (`tptr`, `ta`, `tb`) follow from each op's code and edges alone (its
code's pattern, DOT: its pairs): `flush` writes them for all new ops in one compiled pass
(`_fill_terms`) instead of every append building them with its own numpy calls (6 of the ~15
an append cost). Read them only after `flush`.

Index arrays are int32, as a Tape holds them (converting and range-checking int64 arrays at
the end cost ~90 us of a 1 ms recording of 14000 edges): every value written is a slot, edge
or term count of this recording, which `_fit` keeps within the int32 range.
"""
import threading

import numpy as np
from numba import njit

from . import opcodes as oc


_EMPTY = {np.dtype(d).char: np.empty(0, dtype=d) for d in (np.uint8, np.int32, np.float64)}


class _Buf:
    """Amortised-doubling 1-D buffer."""

    __slots__ = ("a", "n")

    def __init__(self, dtype, cap=256):
        # cap 0: a shared empty array until the first reserve (never written: reserve always
        # reallocates it), for logs that usually stay empty (the guards: ~1.5 us a buffer)
        self.a = np.empty(cap, dtype=dtype) if cap else _EMPTY[np.dtype(dtype).char]
        self.n = 0

    def reserve(self, k):
        need = self.n + k
        if need > self.a.shape[0]:
            new = np.empty(max(need, 2 * self.a.shape[0]), dtype=self.a.dtype)
            new[: self.n] = self.a[: self.n]
            self.a = new

    def extend(self, values):
        values = np.ravel(values)
        k = values.shape[0]
        self.reserve(k)
        self.a[self.n: self.n + k] = values
        self.n += k

    def view(self):
        return self.a[: self.n]

    def final(self):
        """The filled part, for a Tape to keep: copied when the buffer is more than twice as
        long (a capacity carried over from a larger recording, see `_last`), so a small tape
        never holds a large buffer alive."""
        if self.a.shape[0] > 2 * self.n + 256:
            return self.a[: self.n].copy()
        return self.a[: self.n]


_active = threading.local()
INDEX = np.int32  # the index dtype of every tape array (tape_io imports it from here)
_IMAX = int(np.iinfo(INDEX).max)
# This thread's last recording's sizes (ops, edges, terms): the next recorder starts with that
# capacity, since recording one function repeatedly (jitad.hessian(f, x)) is the common case
# and growing by doubling cost ~25 reallocations and copies per recording of 4000 ops.
_last = threading.local()


def _fit(slots, edges, terms):
    """ValueError when a recording outgrows the int32 indices of its arrays."""
    if slots > _IMAX or edges > _IMAX or terms > _IMAX:
        raise ValueError("tape too large: more than 2**31 - 1 slots, edges or second-order "
                         "terms (int32 indices)")


def current():
    """The innermost recorder active on this thread (None outside `jitad.record`)."""
    stack = getattr(_active, "stack", None)
    return stack[-1] if stack else None


class Recorder:
    def __init__(self, n_in):
        _fit(n_in, 0, 0)
        self.n_in = n_in
        ops, edges, terms = getattr(_last, "sizes", (255, 256, 256))
        self.code = _Buf(np.uint8, ops)
        self.param = _Buf(np.float64, ops)
        self.eptr = _Buf(INDEX, ops + 1)
        self.eptr.a[0] = 0
        self.eptr.n = 1
        self.arg = _Buf(INDEX, edges)
        self.coef = _Buf(np.float64, edges)
        self.tptr = _Buf(INDEX, ops + 1)
        self.tptr.a[0] = 0
        self.tptr.n = 1
        self.ta = _Buf(INDEX, terms)
        self.tb = _Buf(INDEX, terms)
        self.n_const = 0
        self._pending = ([], [], [], [], [])  # scalar ops not yet in the arrays: see append1
        self.guards = _guard_log()  # comparisons the recording relied on (guards.py)

    @property
    def n_ops(self):
        return self.code.n + len(self._pending[0])

    @property
    def n_slots(self):
        return self.n_in + self.n_ops

    def __enter__(self):
        stack = getattr(_active, "stack", None)
        if stack is None:
            stack = _active.stack = []
        stack.append(self)
        return self

    def __exit__(self, *exc):
        _active.stack.pop()

    def append(self, code, args, coef=None, param=0.0):
        """Append K ops of one `code`; args (K, E) slot indices. Returns the K new slots.

        coef (K, E) for LIN (broadcastable); param scalar or (K,). DOT ops pair their edges
        (2k, 2k+1). All buffers are reserved once and filled by slice assignment (numpy
        broadcasts), with as few numpy calls as possible: at ~1 us each they are what
        recording a small array operation costs.
        """
        args = np.asarray(args)
        K, E = args.shape
        if K == 0:
            return np.empty(0, dtype=np.int64)
        if self._pending[0]:
            self._move_pending()
        n, e0 = self.code.n, self.arg.n
        base = self.n_in + n
        KE = K * E
        self._room(K, KE)
        self.code.a[n: n + K] = code
        self.param.a[n: n + K] = param
        if E:
            self.eptr.a[n + 1: n + 1 + K] = np.arange(e0 + E, e0 + KE + 1, E)
        else:
            self.eptr.a[n + 1: n + 1 + K] = e0
        self.arg.a[e0: e0 + KE].reshape(K, E)[...] = args
        self.coef.a[e0: e0 + KE].reshape(K, E)[...] = 0.0 if coef is None else coef
        self.code.n = self.param.n = n + K
        self.eptr.n = n + 1 + K
        self.arg.n = self.coef.n = e0 + KE
        if code == oc.CONST:
            self.n_const += K
        return np.arange(base, base + K, dtype=np.int64)

    def constants(self, values):
        """Slots holding constant values (used where constants mix with traced elements)."""
        values = np.ravel(np.asarray(values, dtype=np.float64))
        return self.append(oc.CONST, np.empty((values.shape[0], 0), np.int64), param=values)

    def is_const_slot(self, slots):
        """Boolean mask: which slots are CONST ops (never inputs)."""
        slots = np.asarray(slots)
        if self.n_const == 0:
            return np.zeros(slots.shape, dtype=bool)
        self._move_pending()
        ops = slots - self.n_in
        mask = ops >= 0
        out = np.zeros(slots.shape, dtype=bool)
        out[mask] = self.code.view()[ops[mask]] == oc.CONST
        return out

    def append1(self, code, a, b=-1, param=0.0, ca=0.0, cb=0.0):
        """One op with one edge (a) or two (a, b), for Python loops over traced scalars.

        Appends to Python lists (a numpy element write costs ~10x a list append); `flush`
        moves them into the arrays in one vectorised step before anything reads the arrays.
        """
        p = self._pending
        p[0].append(code)
        p[1].append(param)
        if b < 0:
            p[3].append(a)
            p[4].append(ca)
        else:
            p[3].append(a)
            p[3].append(b)
            p[4].append(ca)
            p[4].append(cb)
        # the op's edge end offset (arg.n cannot change while ops are pending): no cumsum
        # in _move_pending, whose numpy calls are most of what a few scalar ops cost
        p[2].append(self.arg.n + len(p[3]))
        return self.n_in + self.code.n + len(p[0]) - 1

    def flush(self):
        """Complete the arrays: move pending scalar ops in and write the terms of new ops."""
        self._move_pending()
        n, done = self.code.n, self.tptr.n - 1
        if n > done:
            self.tptr.reserve(n - done)
            t = _fill_terms(self.code.view(), self.eptr.view(), self.tptr.a, self.ta.a,
                            self.tb.a, done, _TCOUNT, _TLOCAL,
                            min(self.ta.a.shape[0], self.tb.a.shape[0]))
            if t < 0:  # short: grow to a bound (3 terms per op at most, DOT 1 per 2 edges)
                bound = (int(self.tptr.a[done]) + 3 * (n - done)
                         + (self.arg.n - int(self.eptr.a[done])) // 2)
                _fit(0, 0, bound)
                self.ta.reserve(bound - self.ta.n)
                self.tb.reserve(bound - self.tb.n)
                t = _fill_terms(self.code.view(), self.eptr.view(), self.tptr.a, self.ta.a,
                                self.tb.a, done, _TCOUNT, _TLOCAL, bound)
            self.tptr.n = n + 1
            self.ta.n = self.tb.n = t
        _last.sizes = (max(255, n), max(256, self.arg.n), max(256, self.ta.n))

    def _move_pending(self):
        """Move pending scalar ops into the arrays (terms: see flush)."""
        codes, params, ends, args, coefs = self._pending
        if not codes:
            return
        self._pending = ([], [], [], [], [])
        self._extend(codes, params, ends, args, coefs)

    def append_mixed(self, codes, params, counts, args, coefs):
        """Append ops of mixed codes with variable fan-in: op i has counts[i] edges, the edges
        of all ops concatenated in args/coefs; second-order terms follow each code's pattern
        (DOT: the pairs (2k, 2k+1)). Returns the new slots (K,)."""
        self._move_pending()
        base = self.n_slots
        self._extend(np.asarray(codes, dtype=np.uint8), np.asarray(params, dtype=np.float64),
                     self.arg.n + np.cumsum(np.asarray(counts, dtype=np.int64)),
                     np.asarray(args, dtype=np.int64), np.asarray(coefs, dtype=np.float64))
        return base + np.arange(len(codes), dtype=np.int64)

    def _extend(self, codes, params, ends, args, coefs):
        """The arrays' part of `_move_pending` (lists) and `append_mixed` (arrays), ends: the
        ops' edge end offsets. One slice assignment per array (numpy converts lists itself;
        converting first doubled the cost of the few scalar ops most array code ends with)."""
        K, KE = len(codes), len(args)
        n, e0 = self.code.n, self.arg.n
        self._room(K, KE)
        self.code.a[n: n + K] = codes
        self.param.a[n: n + K] = params
        self.eptr.a[n + 1: n + 1 + K] = ends
        self.arg.a[e0: e0 + KE] = args
        self.coef.a[e0: e0 + KE] = coefs
        self.code.n = self.param.n = n + K
        self.eptr.n = n + 1 + K
        self.arg.n = self.coef.n = e0 + KE

    def _room(self, K, KE):
        """Room for K more ops and KE more edges (a call per buffer only when one of its group
        is short: the slice assignments of the appends would silently write fewer elements
        into a short buffer); ValueError past the int32 indices."""
        n, e0 = self.code.n, self.arg.n
        if n + K > min(self.code.a.shape[0], self.param.a.shape[0], self.eptr.a.shape[0] - 1):
            _fit(self.n_in + n + K, 0, 0)
            for buf in (self.code, self.param, self.eptr):
                buf.reserve(K)
        if e0 + KE > min(self.arg.a.shape[0], self.coef.a.shape[0]):
            _fit(0, e0 + KE, 0)
            self.arg.reserve(KE)
            self.coef.reserve(KE)


def _guard_log():
    """A new guards.GuardLog (imported on first use: guards.py imports this module's _Buf; an
    import statement per recording cost ~5 us)."""
    global _GuardLog
    if _GuardLog is None:
        from .guards import GuardLog
        _GuardLog = GuardLog
    return _GuardLog()


_GuardLog = None


@njit(cache=True, error_model="numpy", nogil=True)
def _fill_terms(code, eptr, tptr, ta, tb, done, term_count, term_local, bound):
    """tptr[done + 1:] and the terms of ops done.. (their code's pattern over their own edges,
    DOT: the pairs (2k, 2k+1)); term_count (256,), term_local (256, 3, 2) per code. Returns the
    term count, or -1 when it would pass `bound` (<= the length of ta and tb)."""
    t = tptr[done]
    for i in range(done, code.shape[0]):
        c = code[i]
        e0 = eptr[i]
        nt = (eptr[i + 1] - e0) // 2 if c == oc.DOT else term_count[c]
        if t + nt > bound:
            return -1
        for k in range(nt):
            if c == oc.DOT:
                ta[t] = e0 + 2 * k
                tb[t] = e0 + 2 * k + 1
            else:
                ta[t] = e0 + term_local[c, k, 0]
                tb[t] = e0 + term_local[c, k, 1]
            t += 1
        tptr[i + 1] = t
    return t


def _term_tables():
    """Per op code: number of terms and their local edge pairs (padded), for `_fill_terms`;
    sized for every uint8 code (0 terms for unknown ones), as it reads them."""
    count = np.zeros(256, dtype=np.int64)
    local = np.zeros((256, 3, 2), dtype=np.int64)
    for c, pattern in enumerate(oc.TERM_PATTERN):
        if pattern:
            count[c] = len(pattern)
            local[c, : len(pattern)] = pattern
    return count, local


_TCOUNT, _TLOCAL = _term_tables()
