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

    @property
    def n_ops(self):
        return self.code.n

    @property
    def n_slots(self):
        return self.n_in + self.code.n

    def __enter__(self):
        stack = getattr(_active, "stack", None)
        if stack is None:
            stack = _active.stack = []
        stack.append(self)
        return self

    def __exit__(self, *exc):
        _active.stack.pop()

    def append(self, code, args, coef=None, param=0.0, pairs=None):
        """Append K ops of one `code`; args (K, E) slot indices. Returns the K new slots.

        coef (K, E) for LIN; param scalar or (K,); pairs = number of operand pairs for DOT.
        """
        args = np.asarray(args, dtype=np.int64)
        K, E = args.shape
        base = self.n_slots
        if K == 0:
            return np.empty(0, dtype=np.int64)
        e_base = self.arg.n
        self.code.extend(np.full(K, code, dtype=np.uint8))
        self.param.extend(np.broadcast_to(np.asarray(param, dtype=np.float64), (K,)))
        self.eptr.extend(e_base + E * np.arange(1, K + 1, dtype=np.int64))
        self.arg.extend(args)
        if coef is None:
            self.coef.extend(np.zeros(K * E))
        else:
            self.coef.extend(np.broadcast_to(np.asarray(coef, dtype=np.float64), (K, E)))
        if code == oc.DOT:
            local = np.stack([np.arange(0, E, 2), np.arange(1, E, 2)], axis=1)
        else:
            local = np.asarray(oc.TERM_PATTERN[code], dtype=np.int64).reshape(-1, 2)
        T = local.shape[0]
        t_base = self.tptr.a[self.tptr.n - 1]
        self.tptr.extend(t_base + T * np.arange(1, K + 1, dtype=np.int64))
        if T:
            starts = e_base + E * np.arange(K, dtype=np.int64)
            self.ta.extend(starts[:, None] + local[None, :, 0])
            self.tb.extend(starts[:, None] + local[None, :, 1])
        if code == oc.CONST:
            self.n_const += K
        return base + np.arange(K, dtype=np.int64)

    def constants(self, values):
        """Slots holding constant values (used where constants mix with traced elements)."""
        values = np.ravel(np.asarray(values, dtype=np.float64))
        return self.append(oc.CONST, np.empty((values.shape[0], 0), np.int64), param=values)

    def is_const_slot(self, slots):
        """Boolean mask: which slots are CONST ops (never inputs)."""
        slots = np.asarray(slots)
        if self.n_const == 0:
            return np.zeros(slots.shape, dtype=bool)
        ops = slots - self.n_in
        mask = ops >= 0
        out = np.zeros(slots.shape, dtype=bool)
        out[mask] = self.code.view()[ops[mask]] == oc.CONST
        return out

    def append1(self, code, a, b=-1, param=0.0, ca=0.0, cb=0.0):
        """Fast path for one op with one or two edges (Python loops over traced scalars)."""
        ne = 1 if b < 0 else 2
        for buf, k in ((self.code, 1), (self.param, 1), (self.eptr, 1), (self.arg, ne), (self.coef, ne),
                       (self.tptr, 1)):
            if buf.n + k > buf.a.shape[0]:
                buf.reserve(k)
        n = self.code.n
        self.code.a[n] = code
        self.param.a[n] = param
        self.code.n = self.param.n = n + 1
        e = self.arg.n
        self.arg.a[e] = a
        self.coef.a[e] = ca
        if ne == 2:
            self.arg.a[e + 1] = b
            self.coef.a[e + 1] = cb
        self.arg.n = self.coef.n = e + ne
        self.eptr.a[self.eptr.n] = e + ne
        self.eptr.n += 1
        pattern = oc.TERM_PATTERN[code]
        t = self.tptr.a[self.tptr.n - 1]
        if pattern:
            self.ta.reserve(len(pattern))
            self.tb.reserve(len(pattern))
            for p, q in pattern:
                self.ta.a[self.ta.n] = e + p
                self.tb.a[self.tb.n] = e + q
                self.ta.n += 1
                self.tb.n += 1
            t += len(pattern)
        self.tptr.a[self.tptr.n] = t
        self.tptr.n += 1
        return self.n_in + n

