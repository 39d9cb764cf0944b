"""The tape under construction: growable flat arrays that whole numpy operations append to.

Every append adds K ops of one code with the same fan-in E in one vectorised step; the slot of
op i is n_in + i, so an append can refer to slots it is itself creating (cumsum chains).
"""
import threading

import numpy as np

from . import opcodes as oc


class _Buf:
    """Amortised-doubling 1-D buffer."""

    __slots__ = ("a", "n")

    def __init__(self, dtype, cap=256):
        self.a = np.empty(cap, dtype=dtype)
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


_active = threading.local()


def current():
    """The innermost recorder active on this thread (None outside `jitad.record`)."""
    stack = getattr(_active, "stack", None)
    return stack[-1] if stack else None


class Recorder:
    def __init__(self, n_in):
        self.n_in = n_in
        self.code = _Buf(np.uint8)
        self.param = _Buf(np.float64)
        self.eptr = _Buf(np.int64)
        self.eptr.extend(np.zeros(1, np.int64))
        self.arg = _Buf(np.int64)
        self.coef = _Buf(np.float64)
        self.tptr = _Buf(np.int64)
        self.tptr.extend(np.zeros(1, np.int64))
        self.ta = _Buf(np.int64)
        self.tb = _Buf(np.int64)
        self.n_const = 0
        self._pending = ([], [], [], [], [])  # scalar ops not yet in the arrays: see append1
        from .guards import GuardLog  # (guards.py uses this module's _Buf)
        self.guards = GuardLog()  # comparisons the recording relied on (guards.py)

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
            self.flush()
        n, e0 = self.code.n, self.arg.n
        base = self.n_in + n
        local = _local_terms(code, E)
        T = local.shape[0]
        t0 = self.tptr.a[self.tptr.n - 1]
        KE = K * E
        # reserve (a call per buffer only when one of its group is short: the slice
        # assignments below would silently write fewer elements into a short buffer)
        if n + K > min(self.code.a.shape[0], self.param.a.shape[0], self.eptr.a.shape[0] - 1,
                       self.tptr.a.shape[0] - 1):
            for buf in (self.code, self.param, self.eptr, self.tptr):
                buf.reserve(K)
        if e0 + KE > min(self.arg.a.shape[0], self.coef.a.shape[0]):
            self.arg.reserve(KE)
            self.coef.reserve(KE)
        if T and self.ta.n + K * T > min(self.ta.a.shape[0], self.tb.a.shape[0]):
            self.ta.reserve(K * T)
            self.tb.reserve(K * T)
        self.code.a[n: n + K] = code
        self.param.a[n: n + K] = param
        if E:
            self.eptr.a[n + 1: n + 1 + K] = np.arange(e0 + E, e0 + KE + 1, E)
        else:
            self.eptr.a[n + 1: n + 1 + K] = e0
        self.arg.a[e0: e0 + KE].reshape(K, E)[...] = args
        self.coef.a[e0: e0 + KE].reshape(K, E)[...] = 0.0 if coef is None else coef
        if T:
            self.tptr.a[n + 1: n + 1 + K] = np.arange(t0 + T, t0 + K * T + 1, T)
            starts = np.arange(e0, e0 + KE, E)[:, None]
            t1 = self.ta.n
            self.ta.a[t1: t1 + K * T].reshape(K, T)[...] = starts + local[:, 0]
            self.tb.a[t1: t1 + K * T].reshape(K, T)[...] = starts + local[:, 1]
            self.ta.n = self.tb.n = t1 + K * T
        else:
            self.tptr.a[n + 1: n + 1 + K] = t0
        self.code.n = self.param.n = n + K
        self.eptr.n = self.tptr.n = n + 1 + K
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
        self.flush()
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
            p[2].append(1)
            p[3].append(a)
            p[4].append(ca)
        else:
            p[2].append(2)
            p[3].append(a)
            p[3].append(b)
            p[4].append(ca)
            p[4].append(cb)
        return self.n_in + self.code.n + len(p[0]) - 1

    def flush(self):
        """Move pending scalar ops into the arrays."""
        codes, params, nes, args, coefs = self._pending
        if not codes:
            return
        self._pending = ([], [], [], [], [])
        self._extend(np.array(codes, dtype=np.uint8), np.array(params, dtype=np.float64),
                     np.array(nes, dtype=np.int64), np.array(args, dtype=np.int64),
                     np.array(coefs, dtype=np.float64))

    def append_mixed(self, codes, params, counts, args, coefs):
        """Append ops of mixed codes with variable fan-in: op i has counts[i] edges, the edges
        of all ops concatenated in args/coefs; second-order terms follow each code's pattern
        (DOT: the pairs (2k, 2k+1)). Returns the new slots (K,)."""
        self.flush()
        base = self.n_slots
        self._extend(np.asarray(codes, dtype=np.uint8), np.asarray(params, dtype=np.float64),
                     np.asarray(counts, dtype=np.int64), np.asarray(args, dtype=np.int64),
                     np.asarray(coefs, dtype=np.float64))
        return base + np.arange(len(codes), dtype=np.int64)

    def _extend(self, codes, params, counts, args, coefs):
        """The arrays' part of `flush` and `append_mixed` (nothing pending)."""
        K = codes.shape[0]
        e_end = self.arg.n + np.cumsum(counts)
        e_start = e_end - counts
        self.code.extend(codes)
        self.param.extend(params)
        self.eptr.extend(e_end)
        self.arg.extend(args)
        self.coef.extend(coefs)
        is_dot = codes == oc.DOT
        terms = np.where(is_dot, counts // 2, _TERM_COUNT[codes])
        t_base = self.tptr.a[self.tptr.n - 1]
        self.tptr.extend(t_base + np.cumsum(terms))
        total = int(terms.sum())
        if total:
            op = np.repeat(np.arange(K), terms)
            local = np.arange(total) - np.repeat(np.cumsum(terms) - terms, terms)
            pairs = _TERM_LOCAL[codes[op], np.minimum(local, 2)]  # DOT rows are overwritten
            dot = is_dot[op]
            pairs[dot, 0] = 2 * local[dot]
            pairs[dot, 1] = 2 * local[dot] + 1
            self.ta.extend(e_start[op] + pairs[:, 0])
            self.tb.extend(e_start[op] + pairs[:, 1])

_LOCAL_TERMS = {}


def _local_terms(code, E):
    """(T, 2) local edge pairs of an op of this code with E edges (DOT: the pairs (2k, 2k+1))."""
    key = (code, E) if code == oc.DOT else code
    local = _LOCAL_TERMS.get(key)
    if local is None:
        if code == oc.DOT:
            local = np.stack([np.arange(0, E, 2), np.arange(1, E, 2)], axis=1).astype(np.int64)
        else:
            local = np.asarray(oc.TERM_PATTERN[code], dtype=np.int64).reshape(-1, 2)
        _LOCAL_TERMS[key] = local
    return local


def _term_tables():
    """Per op code: number of terms and their local edge pairs (padded), for `flush`."""
    count = np.zeros(oc.N_CODES, dtype=np.int64)
    local = np.zeros((oc.N_CODES, 3, 2), dtype=np.int64)
    for c, pattern in enumerate(oc.TERM_PATTERN):
        if pattern:
            count[c] = len(pattern)
            local[c, : len(pattern)] = pattern
    return count, local


_TERM_COUNT, _TERM_LOCAL = _term_tables()
