"""Comparisons on traced values: conditions that re-decide in np.where and become guards when
Python consumes them.

`x > 0` on a traced x returns a traced condition (`ConditionScalar` / `ConditionArray`) that
holds, per element, the comparison kind, the operand slots (or a constant) and the recorded
outcome. How it is consumed decides what is recorded:

- `np.where(cond, a, b)`, arithmetic (`cond * x`), `& | ^ ~`, `np.any/all`: the condition is a
  0/1 value on the tape (comparison ops, recorded on first use), so a replay re-decides it at
  every point (`SELECT` ops for np.where) and no guard is needed;
- `bool(cond)` (`if`, `and`, `while`, `sorted`, `max(a, b)`), `int(cond)`, a boolean mask used
  as an index, `np.asarray(cond)`, `np.nonzero(cond)`: the recorded outcome is returned and a
  guard is recorded, which the tape checks at every replay (`guards.py`).

Order functions (`np.argmax/argmin/argsort/sort`) record the guards their result relies on,
and integer-valued traced scalars used as ints or indices (`x[int(np.floor(t))]`) record an
equality guard on their value.
"""
import operator

import numpy as np

from . import opcodes as oc
from .array_functions import JOINS, STRUCTURAL, _tree_reduce
from .tracing import (CONVERT_MSG, HANDLED_FUNCTIONS, HANDLED_UFUNCS, HOOKS, Traced,
                      TracedArray, TracedScalar, _index_key, as_slots, implements, make,
                      operands, value_of)

_PY_CMP = (operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne)
_NP_CMP = (np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal)


class _Condition:
    """Shared behaviour of traced conditions. Fields: code (kind per element), a (left slots),
    b (right slots, -1: constant c), c, ok (recorded outcomes, bool), _slots (the 0/1 value
    slots once recorded)."""

    __slots__ = ()
    dtype = np.dtype(bool)

    # ---- as a traced 0/1 value (arithmetic, np.where, reductions)
    @property
    def idx(self):
        if self._slots is None:
            self._slots = _value_slots(self)
        return self._slots

    @property
    def val(self):
        return np.asarray(self.ok, dtype=np.float64) if np.ndim(self.ok) else float(self.ok)

    # ---- consumed as Python values: guarded
    def concrete(self):
        """The recorded outcome(s) (a bool or a bool array), guarded."""
        g = self.rec.guards
        if np.ndim(self.ok) == 0:
            g.add1(int(self.code), int(self.a), int(self.b), float(self.c), bool(self.ok))
            return bool(self.ok)
        g.add(np.asarray(self.code, np.uint8), self.a, self.b, self.c, self.ok)
        return np.array(self.ok, dtype=bool)

    def __bool__(self):
        if np.ndim(self.ok) == 0:
            return self.concrete()
        if np.size(self.ok) != 1:
            raise ValueError("The truth value of an array with more than one element is "
                             "ambiguous. Use a.any() or a.all()")
        return _scalar_of(self).concrete()

    def __int__(self):
        return int(self.__bool__())

    __index__ = __int__

    def __float__(self):
        return float(self.__bool__())

    def __array__(self, dtype=None, copy=None):
        ok = self.concrete()
        return np.asarray(ok, dtype=dtype) if dtype is not None else np.asarray(ok)

    # ---- structure: rearranging a condition keeps it a condition (a mask stays a mask)
    def __array_function__(self, func, types, args, kwargs):
        if func in STRUCTURAL and args and args[0] is self:
            return _fieldwise(lambda f: func(f, *args[1:], **kwargs), self)
        if func in JOINS and args and isinstance(args[0], (list, tuple)) and all(
                isinstance(c, _Condition) for c in args[0]):
            items = args[0]
            operands(*items)
            shapes = [np.shape(c.ok) for c in items]
            fields = [[np.broadcast_to(getattr(c, k), sh) for c, sh in zip(items, shapes)]
                      for k in ("code", "a", "b", "c", "ok")]
            slots = None
            if all(c._slots is not None for c in items):
                slots = func([np.asarray(c._slots) for c in items], *args[1:], **kwargs)
            return condition(items[0].rec, *(func(f, *args[1:], **kwargs) for f in fields),
                             slots=slots)
        return Traced.__array_function__(self, func, types, args, kwargs)

    # ---- logic (re-decided at every point)
    def __and__(self, o):
        return HANDLED_UFUNCS["logical_and"](self, o)

    __rand__ = __and__

    def __or__(self, o):
        return HANDLED_UFUNCS["logical_or"](self, o)

    __ror__ = __or__

    def __xor__(self, o):
        return HANDLED_UFUNCS["logical_xor"](self, o)

    __rxor__ = __xor__

    def __invert__(self):
        return HANDLED_UFUNCS["logical_not"](self)

    def any(self, axis=None, keepdims=False):
        return _any(self, axis, keepdims=keepdims)

    def all(self, axis=None, keepdims=False):
        return _all(self, axis, keepdims=keepdims)

    def astype(self, dtype, copy=True):
        if np.dtype(dtype) == bool:
            return self
        if np.dtype(dtype).kind == "f":
            return make(self.rec, self.idx, self.val)  # the 0/1 value, re-decided per point
        return np.asarray(self).astype(dtype)  # integers: the recorded outcome, guarded

    def __repr__(self):
        return f"TracedCondition(shape={np.shape(self.ok)}, recorded={self.ok!r})"


class ConditionScalar(_Condition, TracedScalar):
    """A traced 0-d condition."""

    __slots__ = ("code", "a", "b", "c", "ok", "_slots")

    def __init__(self, rec, code, a, b, c, ok, slots=None):
        self.rec, self.code, self.a, self.b, self.c, self.ok = rec, code, a, b, c, ok
        self._slots = slots

    def __bool__(self):  # the Python-loop path (sorted, max, if): Python scalars throughout
        self.rec.guards.add1(self.code, self.a, self.b, self.c, self.ok)
        return self.ok


class ConditionArray(_Condition, TracedArray):
    """A traced n-d condition (fields are arrays of one shape)."""

    __slots__ = ("code", "a", "b", "c", "ok", "_slots")

    def __init__(self, rec, code, a, b, c, ok, slots=None):
        self.rec, self.code, self.a, self.b, self.c, self.ok = rec, code, a, b, c, ok
        self._slots = slots

    def __len__(self):
        return self.ok.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, key):
        key = _index_key(key)
        shape = self.ok.shape
        f = [np.broadcast_to(v, shape)[key] for v in (self.code, self.a, self.b, self.c, self.ok)]
        slots = None if self._slots is None else self._slots[key]
        return condition(self.rec, *f, slots=slots)


def _fieldwise(func, cond):
    """func applied to every per-element field of cond (a structural rearrangement)."""
    shape = np.shape(cond.ok)
    f = [func(np.broadcast_to(getattr(cond, k), shape)) for k in ("code", "a", "b", "c", "ok")]
    slots = None if cond._slots is None else func(np.asarray(cond._slots))
    return condition(cond.rec, *f, slots=slots)


def condition(rec, code, a, b, c, ok, slots=None):
    """A ConditionScalar or ConditionArray from per-element fields."""
    if np.ndim(ok) == 0:
        return ConditionScalar(rec, int(np.asarray(code)), int(np.asarray(a)),
                               int(np.asarray(b)), float(np.asarray(c)), bool(ok),
                               None if slots is None else int(np.asarray(slots)))
    return ConditionArray(rec, code, a, b, c, np.asarray(ok, dtype=bool), slots)


def _scalar_of(cond):
    """The single element of a size-1 condition array as a ConditionScalar."""
    return cond[(0,) * np.ndim(cond.ok)]


def from_values(t):
    """A condition "t != 0" for a traced 0/1 value t whose slots are the condition's slots."""
    if not isinstance(t, Traced):
        return np.asarray(t) != 0
    if isinstance(t, _Condition):
        return t
    ok = np.asarray(t.val) != 0
    idx = np.asarray(t.idx)
    return condition(t.rec, np.uint8(oc.NE), idx, np.int64(-1), 0.0, ok if ok.ndim else bool(ok),
                     slots=idx if idx.ndim else int(idx))


def _value_slots(cond):
    """Record the comparison ops giving cond's 0/1 values; returns their slots."""
    rec = cond.rec
    if np.ndim(cond.ok) == 0:
        if cond.b >= 0:
            return rec.append1(oc.binary_code(oc.CMP_NAMES[cond.code], oc.VV), cond.a, cond.b)
        return rec.append1(oc.binary_code(oc.CMP_NAMES[cond.code], oc.VC), cond.a, -1, cond.c)
    shape = cond.ok.shape
    code, a, b, c = (np.broadcast_to(v, shape).ravel() for v in (cond.code, cond.a, cond.b,
                                                                 cond.c))
    out = np.empty(code.shape[0], dtype=np.int64)
    vv = b >= 0
    for kind in np.unique(code):
        for mode in (oc.VV, oc.VC):
            m = (code == kind) & (vv if mode == oc.VV else ~vv)
            if not m.any():
                continue
            op = oc.binary_code(oc.CMP_NAMES[kind], mode)
            if mode == oc.VV:
                out[m] = rec.append(op, np.stack([a[m], b[m]], axis=1))
            else:
                out[m] = rec.append(op, a[m].reshape(-1, 1), param=c[m])
    return out.reshape(shape)


# ---------------------------------------------------------------- comparisons
def compare(kind, x, y):
    """x <kind> y with x or y traced: a traced condition (nothing is recorded yet)."""
    if isinstance(x, TracedScalar) and (isinstance(y, TracedScalar) or type(y) in (float, int)):
        if isinstance(y, TracedScalar):  # the Python-loop fast path
            if x.rec is not y.rec:
                operands(x, y)  # raises
            return ConditionScalar(x.rec, kind, x.idx, y.idx, 0.0, _PY_CMP[kind](x.val, y.val))
        return ConditionScalar(x.rec, kind, x.idx, -1, float(y), _PY_CMP[kind](x.val, y))
    if not isinstance(x, Traced):
        return compare(oc.CMP_SWAP[kind], y, x)
    rec = operands(x, y)
    xv = x.val
    yv = y.val if isinstance(y, Traced) else np.asarray(y, dtype=np.float64)
    ok = _NP_CMP[kind](xv, yv)
    shape = np.shape(ok)
    if isinstance(y, Traced):
        b, c = np.broadcast_to(y.idx, shape), 0.0
    else:
        b, c = np.int64(-1), np.broadcast_to(yv, shape)
    return condition(rec, np.uint8(kind), np.broadcast_to(x.idx, shape), b, c,
                     ok if shape else bool(ok))


def _comparison(kind):
    def impl(x, y):
        return compare(kind, x, y)
    return impl


for _k, _name in enumerate(oc.CMP_NAMES):
    HANDLED_UFUNCS[_name] = _comparison(_k)


def truth(x):
    """x as a condition (traced values: x != 0), or a numpy bool array for constants."""
    if isinstance(x, _Condition):
        return x
    if isinstance(x, Traced):
        return compare(oc.NE, x, 0.0)
    return np.asarray(x).astype(bool)


def _as01(x):
    """A traced 0/1 value or a float 0/1 constant for a logical operand."""
    t = truth(x)
    return t if isinstance(t, Traced) else t.astype(np.float64)


def _logical(op):
    def impl(x, y):
        return from_values(HANDLED_UFUNCS[op](_as01(x), _as01(y)))
    return impl


HANDLED_UFUNCS["logical_and"] = HANDLED_UFUNCS["bitwise_and"] = _logical("minimum")
HANDLED_UFUNCS["logical_or"] = HANDLED_UFUNCS["bitwise_or"] = _logical("maximum")


def _xor(x, y):
    return compare(oc.NE, _as01(x), _as01(y))


def _not(x):
    return from_values(HANDLED_UFUNCS["subtract"](1.0, _as01(x)))


HANDLED_UFUNCS["logical_xor"] = HANDLED_UFUNCS["bitwise_xor"] = _xor
HANDLED_UFUNCS["logical_not"] = HANDLED_UFUNCS["invert"] = _not
HANDLED_UFUNCS["isnan"] = lambda x: compare(oc.NE, x, x)
HANDLED_UFUNCS["isinf"] = lambda x: compare(oc.EQ, HANDLED_UFUNCS["absolute"](x), np.inf)
HANDLED_UFUNCS["isfinite"] = lambda x: compare(oc.LT, HANDLED_UFUNCS["absolute"](x), np.inf)


def _signbit(x):
    raise TypeError("jitad: np.signbit is not supported on traced values (the sign of -0.0 and "
                    "of NaN cannot be guarded by a comparison); use x < 0")


HANDLED_UFUNCS["signbit"] = _signbit


def _reduce_truth(x, axis, keepdims, name):
    t = _as01(x)
    if not isinstance(t, Traced):
        return getattr(np, "any" if name == "maximum" else "all")(t != 0, axis=axis,
                                                                  keepdims=keepdims)
    if np.ndim(t.val) == 0:
        return from_values(t)
    return from_values(_tree_reduce(make(t.rec, np.asarray(t.idx), np.asarray(t.val)), axis,
                                    keepdims, name))


@implements(np.any)
def _any(a, axis=None, out=None, keepdims=False, **kw):
    if out is not None or kw:
        raise TypeError("jitad: np.any keyword arguments are not supported on traced values")
    return _reduce_truth(a, axis, keepdims, "maximum")


@implements(np.all)
def _all(a, axis=None, out=None, keepdims=False, **kw):
    if out is not None or kw:
        raise TypeError("jitad: np.all keyword arguments are not supported on traced values")
    return _reduce_truth(a, axis, keepdims, "minimum")


@implements(np.isclose)
def _isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    if equal_nan:
        raise TypeError("jitad: np.isclose(equal_nan=True) is not supported on traced values")
    sub, absolute = HANDLED_UFUNCS["subtract"], HANDLED_UFUNCS["absolute"]
    tol = atol + rtol * (absolute(b) if isinstance(b, Traced) else np.abs(np.asarray(b, float)))
    return compare(oc.LE, absolute(sub(a, b)), tol)


@implements(np.allclose)
def _allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return _all(_isclose(a, b, rtol, atol, equal_nan))


@implements(np.array_equal)
def _array_equal(a1, a2, equal_nan=False):
    if equal_nan:
        raise TypeError("jitad: np.array_equal(equal_nan=True) is not supported on traced values")
    if np.shape(value_of(a1)) != np.shape(value_of(a2)):
        return False
    return _all(compare(oc.EQ, a1, a2) if isinstance(a1, Traced) else compare(oc.EQ, a2, a1))


# ---------------------------------------------------------------- selection
@implements(np.where)
def _where(cond, x=None, y=None):
    if x is None and y is None:
        return np.nonzero(np.asarray(truth(cond)))  # positions: the outcomes, guarded
    if not isinstance(cond, Traced):
        return _where_constant(np.asarray(cond).astype(bool), x, y)
    cond = truth(cond)
    rec = operands(cond, x, y)
    xv = np.asarray(value_of(x), dtype=np.float64)
    yv = np.asarray(value_of(y), dtype=np.float64)
    val = np.where(cond.ok, xv, yv)
    shape = val.shape
    cs = np.broadcast_to(cond.idx, shape).ravel()
    xs = np.broadcast_to(as_slots(rec, x)[0], shape).ravel()
    ys = np.broadcast_to(as_slots(rec, y)[0], shape).ravel()
    slots = rec.append(oc.SELECT, np.stack([cs, xs, ys], axis=1))
    return make(rec, slots.reshape(shape), val)


def _where_constant(cond, x, y):
    """np.where with a constant condition: a selection of slots, nothing recorded."""
    rec = operands(x, y)
    xv = np.asarray(value_of(x), dtype=np.float64)
    yv = np.asarray(value_of(y), dtype=np.float64)
    val = np.where(cond, xv, yv)
    if rec is None:
        return val
    shape = val.shape
    cond_b = np.broadcast_to(cond, shape)
    out = np.empty(shape, dtype=np.int64)
    for side, mask in ((x, cond_b), (y, ~cond_b)):
        if not mask.any():
            continue
        if isinstance(side, Traced):
            out[mask] = np.broadcast_to(np.asarray(side.idx), shape)[mask]
        else:
            out[mask] = rec.constants(np.broadcast_to(np.asarray(side, dtype=np.float64),
                                                      shape)[mask])
    return make(rec, out, val)


def _guarded_truth(func):
    """np.nonzero-like functions: the positions of true elements, guarded."""
    def impl(a, *args, **kwargs):
        return func(np.asarray(truth(a)), *args, **kwargs)
    HANDLED_FUNCTIONS[func] = impl


for _f in (np.nonzero, np.flatnonzero, np.argwhere, np.count_nonzero):
    _guarded_truth(_f)


# ---------------------------------------------------------------- order
def _rows(a, axis):
    """(idx (r, k), val (r, k), back) with the axis last; back(order (r, k)) restores it."""
    idx, val = np.asarray(a.idx), np.asarray(a.val)
    if axis is None:
        idx, val, axis = idx.ravel(), val.ravel(), 0
    idx, val = np.moveaxis(idx, axis, -1), np.moveaxis(val, axis, -1)
    shape = idx.shape
    k = shape[-1] if shape else 1
    return idx.reshape(-1, k), val.reshape(-1, k), shape, axis


def _guard_pairs(rec, kind, ia, ib, va, vb):
    """Guards ia <kind> ib (slot arrays) with their recorded outcomes."""
    rec.guards.add(np.uint8(kind), ia, ib, 0.0, _NP_CMP[kind](va, vb))


def _guard_nans(rec, idx, val):
    """Rows holding a NaN: guard which elements are NaN (comparisons alone cannot tell)."""
    rows = np.isnan(val).any(axis=1)
    if rows.any():
        i, v = idx[rows].ravel(), val[rows].ravel()
        _guard_pairs(rec, oc.EQ, i, i, v, v)


def _arg_extreme(a, axis, kind_before, kind_after, func):
    if not isinstance(a, Traced):
        return func(a, axis=axis)
    rec = a.rec
    idx, val, shape, ax = _rows(a, axis)
    r, k = idx.shape
    best = func(val, axis=1)
    j = np.arange(k)
    rows = np.repeat(np.arange(r), k)
    bi = np.repeat(best, k)
    cols = np.tile(j, r)
    m = cols != bi  # the winner beats every earlier element strictly and later ones or ties
    before = m & (cols < bi)
    after = m & (cols > bi)
    for sel, kind in ((before, kind_before), (after, kind_after)):
        if sel.any():
            _guard_pairs(rec, kind, idx[rows[sel], bi[sel]], idx[rows[sel], cols[sel]],
                         val[rows[sel], bi[sel]], val[rows[sel], cols[sel]])
    _guard_nans(rec, idx, val)
    res = best.reshape(shape[:-1]) if len(shape) > 1 else best[0]
    return res if axis is not None else np.intp(res)


@implements(np.argmax)
def _argmax(a, axis=None, out=None, keepdims=False):
    if out is not None or keepdims:
        raise TypeError("jitad: np.argmax(out=, keepdims=) is not supported on traced values")
    return _arg_extreme(a, axis, oc.GT, oc.GE, np.argmax)


@implements(np.argmin)
def _argmin(a, axis=None, out=None, keepdims=False):
    if out is not None or keepdims:
        raise TypeError("jitad: np.argmin(out=, keepdims=) is not supported on traced values")
    return _arg_extreme(a, axis, oc.LT, oc.LE, np.argmin)


def _sorted_order(a, axis):
    """The stable sort order of a traced array along axis, guarded by adjacent pairs."""
    rec = a.rec
    idx, val, shape, ax = _rows(a, axis)
    order = np.argsort(val, axis=1, kind="stable")
    if idx.shape[1] > 1:
        lo, hi = order[:, :-1], order[:, 1:]
        si, sv = np.take_along_axis(idx, order, 1), np.take_along_axis(val, order, 1)
        # stable: equal elements keep their index order, so a pair in reversed index order
        # must stay strictly ordered
        strict = (lo > hi).ravel()
        for sel, kind in ((~strict, oc.LE), (strict, oc.LT)):
            if sel.any():
                _guard_pairs(rec, kind, si[:, :-1].ravel()[sel], si[:, 1:].ravel()[sel],
                             sv[:, :-1].ravel()[sel], sv[:, 1:].ravel()[sel])
        _guard_nans(rec, idx, val)
    return order, shape, ax


@implements(np.argsort)
def _argsort(a, axis=-1, kind=None, order=None, **kw):
    if order is not None or kw:
        raise TypeError("jitad: np.argsort(order=...) is not supported on traced values")
    if not isinstance(a, Traced):
        return np.argsort(a, axis=axis, kind=kind)
    o, shape, ax = _sorted_order(a, axis)
    return np.moveaxis(o.reshape(shape), -1, ax)


@implements(np.sort)
def _sort(a, axis=-1, kind=None, order=None, **kw):
    if order is not None or kw:
        raise TypeError("jitad: np.sort(order=...) is not supported on traced values")
    if not isinstance(a, Traced):
        return np.sort(a, axis=axis, kind=kind)
    o, shape, ax = _sorted_order(a, axis)
    idx, val, _, _ = _rows(a, axis)
    si = np.take_along_axis(idx, o, 1).reshape(shape)
    sv = np.take_along_axis(val, o, 1).reshape(shape)
    return make(a.rec, np.moveaxis(si, -1, ax), np.moveaxis(sv, -1, ax))


# ---------------------------------------------------------------- traced numbers as ints
def concrete_index(t):
    """int(t) / operator.index(t) for an integer-valued traced scalar, under an equality guard;
    other values raise TypeError (the derivative would be lost)."""
    v = t.val
    if v != np.round(v) or not np.isfinite(v):
        raise TypeError(CONVERT_MSG + " (Integer-valued traced scalars, e.g. np.floor(t), may "
                        "be used as ints and indices: the value is then guarded.)")
    t.rec.guards.add1(oc.EQ, int(t.idx), -1, float(v), True)
    return int(v)


def concrete_indices(t):
    """An int64 index array from an integer-valued traced array, under equality guards."""
    if isinstance(t, _Condition):
        return t.concrete()
    v = np.asarray(t.val)
    if np.any(v != np.round(v)) or not np.all(np.isfinite(v)):
        raise IndexError("jitad: only integer-valued traced indices are allowed")
    t.rec.guards.add(np.uint8(oc.EQ), np.asarray(t.idx), np.int64(-1), v, True)
    return v.astype(np.int64)


HOOKS["index"] = concrete_index
HOOKS["indices"] = concrete_indices
