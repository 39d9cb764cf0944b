"""Recording of numpy array functions: reductions, products, selections, structure.

Reductions and products become n-ary ops (LIN with coefficient lists, DOT with operand
pairs), one op per output element, so a dense mat-vec costs one op per row. Structural
functions apply the same numpy call to the slot array and the value array and record nothing.
"""
import numpy as np

from . import opcodes as oc
from .tracing import (HANDLED_FUNCTIONS, HANDLED_UFUNCS, Traced, as_slots, implements, make,
                      operands, value_of)


try:
    from numpy.lib.array_utils import normalize_axis_tuple as _normalize_axis_tuple
except ImportError:  # numpy < 2
    from numpy.core.numeric import normalize_axis_tuple as _normalize_axis_tuple


def _traced_or_const(x):
    return x if isinstance(x, Traced) else np.asarray(x, dtype=np.float64)


def _split_axis(a, axis):
    """Move the reduced axes of arrays (idx, val) to the end: returns (idx2d, val2d, out_shape,
    keep_shape) with rows = output elements."""
    idx, val = np.asarray(a.idx), np.asarray(a.val)
    nd = idx.ndim
    if axis is None:  # the common full reduction: the same arrays with ~10 numpy calls fewer
        return idx.reshape(1, -1), val.reshape(1, -1), (), (1,) * nd
    axes = tuple(_normalize_axis_tuple(axis, nd))
    kept = [d for d in range(nd) if d not in axes]
    perm = kept + list(axes)
    out_shape = tuple(idx.shape[d] for d in kept)
    keep_shape = tuple(1 if d in axes else idx.shape[d] for d in range(nd))
    k = int(np.prod([idx.shape[d] for d in axes], dtype=np.int64))
    m = int(np.prod(out_shape, dtype=np.int64))
    return (idx.transpose(perm).reshape(m, k), val.transpose(perm).reshape(m, k), out_shape,
            keep_shape)


def _finish(rec, slots, val, out_shape, keep_shape, keepdims):
    shape = keep_shape if keepdims else out_shape
    return make(rec, slots.reshape(shape), np.asarray(val, dtype=np.float64).reshape(shape))


def _linear_reduce(a, axis, keepdims, scale):
    rec = a.rec
    idx, val, out_shape, keep_shape = _split_axis(a, axis)
    m, k = idx.shape
    if k == 0:
        out = np.zeros(keep_shape if keepdims else out_shape) * scale(0)
        return out if out.ndim else out[()]
    c = scale(k)
    slots = rec.append(oc.LIN, idx, coef=c)
    return _finish(rec, slots, val.sum(axis=1) * c, out_shape, keep_shape, keepdims)


def _check_reduce_kwargs(kwargs):
    for key, v in kwargs.items():
        if key in ("dtype", "out", "initial", "where") and v is None:
            continue
        if key == "dtype" and np.dtype(v).kind == "f":
            continue
        raise TypeError(f"jitad: reduction keyword {key}={v!r} is not supported on traced values")


@implements(np.sum)
def _sum(a, axis=None, keepdims=False, **kwargs):
    _check_reduce_kwargs(kwargs)
    return _linear_reduce(a, axis, keepdims, lambda k: 1.0)


@implements(np.mean)
def _mean(a, axis=None, keepdims=False, **kwargs):
    _check_reduce_kwargs(kwargs)
    return _linear_reduce(a, axis, keepdims, lambda k: 1.0 / k if k else np.nan)


def _tree_reduce(a, axis, keepdims, name):
    """prod/max/min as a balanced tree of binary ops, each level one vectorised append."""
    rec = a.rec
    idx, val, out_shape, keep_shape = _split_axis(a, axis)
    m, k = idx.shape
    if k == 0:
        if name == "multiply":
            out = np.ones(keep_shape if keepdims else out_shape)
            return out if out.ndim else out[()]
        raise ValueError("zero-size array to reduction operation which has no identity")
    ufunc = getattr(np, name)
    code = oc.binary_code(name, oc.VV)
    while idx.shape[1] > 1:
        half = idx.shape[1] // 2
        left, right = idx[:, :half], idx[:, half:2 * half]
        lval, rval = val[:, :half], val[:, half:2 * half]
        new_val = ufunc(lval, rval)
        slots = rec.append(code, np.stack([left.ravel(), right.ravel()], axis=1))
        new_idx = slots.reshape(m, half)
        if idx.shape[1] % 2:
            new_idx = np.concatenate([new_idx, idx[:, -1:]], axis=1)
            new_val = np.concatenate([new_val, val[:, -1:]], axis=1)
        idx, val = new_idx, new_val
    return _finish(rec, idx[:, 0], val[:, 0], out_shape, keep_shape, keepdims)


@implements(np.prod)
def _prod(a, axis=None, keepdims=False, **kwargs):
    _check_reduce_kwargs(kwargs)
    return _tree_reduce(a, axis, keepdims, "multiply")


@implements(np.max, np.amax)
def _max(a, axis=None, keepdims=False, **kwargs):
    _check_reduce_kwargs(kwargs)
    return _tree_reduce(a, axis, keepdims, "maximum")


@implements(np.min, np.amin)
def _min(a, axis=None, keepdims=False, **kwargs):
    _check_reduce_kwargs(kwargs)
    return _tree_reduce(a, axis, keepdims, "minimum")


def _reduce_method(name, reducer):
    def impl(a, axis=0, keepdims=False, **kwargs):
        _check_reduce_kwargs(kwargs)
        return reducer(_traced_or_const(a), axis, keepdims)
    HANDLED_UFUNCS[name + ".reduce"] = impl


_reduce_method("add", lambda a, ax, kd: _linear_reduce(a, ax, kd, lambda k: 1.0))
_reduce_method("multiply", lambda a, ax, kd: _tree_reduce(a, ax, kd, "multiply"))
_reduce_method("maximum", lambda a, ax, kd: _tree_reduce(a, ax, kd, "maximum"))
_reduce_method("minimum", lambda a, ax, kd: _tree_reduce(a, ax, kd, "minimum"))


# ---------------------------------------------------------------- products

def _left_rows(x):
    """A of A @ B as (..., M, 1, K) (a 1-D A is one row)."""
    x = np.asarray(x)
    return (x[None, :] if x.ndim == 1 else x)[..., :, None, :]


def _right_cols(x):
    """B of A @ B as (..., 1, N, K): its columns (a 1-D B is one column)."""
    x = np.asarray(x)
    return np.swapaxes(x[:, None] if x.ndim == 1 else x, -1, -2)[..., None, :, :]


def _matmul(a, b):
    """numpy matmul semantics (1-D promotion, broadcast batch dims) as LIN/DOT ops."""
    rec = operands(a, b)
    a, b = _traced_or_const(a), _traced_or_const(b)
    ta, tb = isinstance(a, Traced), isinstance(b, Traced)
    av = a.val if ta else a
    bv = b.val if tb else b
    if np.ndim(av) == 0 or np.ndim(bv) == 0:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    val = np.matmul(av, bv)
    if bv.ndim == 1 and av.ndim <= 2 and bv.shape[0] and av.size:
        return _matvec(rec, a, b, ta, tb, av, bv, val)
    # every output element (..., i, j) pairs row i of A with column j of B: lay both out as
    # (..., M, 1, K) and (..., 1, N, K) and broadcast
    A_i, A_v = (_left_rows(a.idx) if ta else None), _left_rows(av)
    B_i, B_v = (_right_cols(b.idx) if tb else None), _right_cols(bv)
    full = np.broadcast_shapes(A_v.shape, B_v.shape)
    K = full[-1]
    out_shape = np.shape(val)
    m = int(np.prod(full[:-1], dtype=np.int64))
    if m == 0:
        return np.zeros(out_shape)
    if K == 0:
        return np.zeros(out_shape) if out_shape else 0.0
    if ta and tb:
        args = np.stack([np.broadcast_to(A_i, full), np.broadcast_to(B_i, full)], axis=-1)
        slots = rec.append(oc.DOT, args.reshape(m, 2 * K))
    elif ta:
        slots = rec.append(oc.LIN, np.broadcast_to(A_i, full).reshape(m, K),
                           coef=np.broadcast_to(B_v, full).reshape(m, K))
    else:
        slots = rec.append(oc.LIN, np.broadcast_to(B_i, full).reshape(m, K),
                           coef=np.broadcast_to(A_v, full).reshape(m, K))
    return make(rec, slots.reshape(out_shape), np.asarray(val, dtype=np.float64))


def _matvec(rec, a, b, ta, tb, av, bv, val):
    """_matmul of a 1-D or 2-D A and a 1-D B (dot products, X @ w): the same ops as the general
    path, without its broadcasting (~25 numpy calls, most of recording a small product)."""
    K = bv.shape[0]
    M = av.size // K
    if ta and tb:
        args = np.empty((M, 2 * K), dtype=np.int64)
        args[:, 0::2] = a.idx.reshape(M, K)
        args[:, 1::2] = b.idx  # (broadcast over the rows)
        slots = rec.append(oc.DOT, args)
    elif ta:
        slots = rec.append(oc.LIN, a.idx.reshape(M, K), coef=bv)
    else:
        slots = rec.append(oc.LIN, np.broadcast_to(b.idx, (M, K)), coef=av.reshape(M, K))
    return make(rec, slots.reshape(np.shape(val)), np.asarray(val, dtype=np.float64))


HANDLED_UFUNCS["matmul"] = _matmul


@implements(np.dot)
def _dot(a, b, out=None):
    if out is not None:
        raise TypeError("jitad: np.dot(..., out=...) is not supported on traced values")
    if np.ndim(value_of(a)) == 0 or np.ndim(value_of(b)) == 0:
        return HANDLED_UFUNCS["multiply"](a, b)
    if np.ndim(value_of(b)) > 2:
        raise TypeError("jitad: np.dot with a >2-D second operand is not supported; use matmul")
    return _matmul(a, b)


@implements(np.inner)
def _inner(a, b):
    if np.ndim(value_of(a)) == 0 or np.ndim(value_of(b)) == 0:
        return HANDLED_UFUNCS["multiply"](a, b)
    bt = np.swapaxes(b, -1, -2) if np.ndim(value_of(b)) >= 2 else b
    if np.ndim(value_of(b)) > 2:
        raise TypeError("jitad: np.inner with a >2-D second operand is not supported")
    return _matmul(a, bt)


@implements(np.vdot)
def _vdot(a, b):
    return _matmul(np.ravel(a), np.ravel(b))


@implements(np.outer)
def _outer(a, b, out=None):
    return HANDLED_UFUNCS["multiply"](np.ravel(a)[:, None], np.ravel(b)[None, :])



@implements(np.linalg.norm)
def _norm(x, ord=None, axis=None, keepdims=False):
    nd = np.ndim(x.val)
    if ord in (None, "fro") or (ord == 2 and (nd == 1 or axis is not None and np.ndim(axis) == 0)):
        if axis is None and nd > 0 and ord in (None, "fro"):
            flat = np.ravel(x)
            r = np.sqrt(_matmul(flat, flat))
            return np.reshape(r, (1,) * nd) if keepdims else r
        return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))
    if nd == 1 or (axis is not None and np.ndim(axis) == 0):
        if ord == 1:
            return np.sum(np.abs(x), axis=axis, keepdims=keepdims)
        if ord == np.inf:
            return np.max(np.abs(x), axis=axis, keepdims=keepdims)
        if ord == -np.inf:
            return np.min(np.abs(x), axis=axis, keepdims=keepdims)
    raise TypeError(f"jitad: np.linalg.norm with ord={ord!r} is not supported on traced values")


# ---------------------------------------------------------------- scans

@implements(np.cumsum)
def _cumsum(a, axis=None, dtype=None, out=None):
    if out is not None:
        raise TypeError("jitad: np.cumsum(..., out=...) is not supported on traced values")
    rec = a.rec
    if axis is None:
        a, axis = np.ravel(a), 0
    idx, val = np.moveaxis(np.asarray(a.idx), axis, -1), np.moveaxis(np.asarray(a.val), axis, -1)
    shape = idx.shape
    k = shape[-1]
    idx2 = idx.reshape(-1, k)
    m = idx2.shape[0]
    out_val = np.cumsum(val, axis=-1)
    if k <= 1 or m == 0:
        return make(rec, np.moveaxis(idx.copy(), -1, axis), np.moveaxis(out_val, -1, axis))
    # op (r, j) for j >= 1 computes y[r, j] = y[r, j-1] + x[r, j]; slots are known in advance
    base = rec.n_slots
    op_slot = base + np.arange(m * (k - 1), dtype=np.int64).reshape(m, k - 1)
    prev = np.concatenate([idx2[:, :1], op_slot[:, :-1]], axis=1)
    args = np.stack([prev, idx2[:, 1:]], axis=-1).reshape(-1, 2)
    slots = rec.append(oc.LIN, args, coef=1.0)
    out_idx = np.concatenate([idx2[:, :1], slots.reshape(m, k - 1)], axis=1).reshape(shape)
    return make(rec, np.moveaxis(out_idx, -1, axis), np.moveaxis(out_val, -1, axis))


def _accumulate_add(a, axis=0, dtype=None, out=None):
    return _cumsum(a, axis=axis, out=out)


HANDLED_UFUNCS["add.accumulate"] = _accumulate_add


@implements(np.diff)
def _diff(a, n=1, axis=-1, prepend=None, append=None):
    if prepend is not None or append is not None:
        parts = ([prepend] if prepend is not None else []) + [a] + (
            [append] if append is not None else [])
        a = np.concatenate([np.broadcast_to(p, _edge_shape(a, p, axis)) if not isinstance(
            p, Traced) and np.ndim(p) == 0 else p for p in parts], axis=axis)
    for _ in range(n):
        hi = np.take(a, np.arange(1, a.shape[axis]), axis=axis)
        lo = np.take(a, np.arange(0, a.shape[axis] - 1), axis=axis)
        a = HANDLED_UFUNCS["subtract"](hi, lo)
    return a


def _edge_shape(a, p, axis):
    shape = list(np.shape(value_of(a)))
    shape[axis] = 1
    return tuple(shape)


# ---------------------------------------------------------------- selection

# np.where (a SELECT op when the condition is traced): conditions.py


@implements(np.clip)
def _clip(a, a_min=None, a_max=None, out=None, **kwargs):
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    if out is not None or kwargs:
        raise TypeError("jitad: np.clip keyword arguments are not supported on traced values")
    if a_min is not None:
        a = HANDLED_UFUNCS["maximum"](a, a_min)
    if a_max is not None:
        a = HANDLED_UFUNCS["minimum"](a, a_max)
    return a


@implements(np.round, np.around)
def _round(a, decimals=0, out=None):
    if decimals != 0 or out is not None:
        raise TypeError("jitad: np.round with decimals or out is not supported on traced values")
    return HANDLED_UFUNCS["rint"](a)


# ---------------------------------------------------------------- structure

def _structural(func):
    """A numpy function that only rearranges elements: apply it to slots and values alike."""
    def impl(a, *args, **kwargs):
        a = _traced_or_const(a)
        if not isinstance(a, Traced):
            return func(a, *args, **kwargs)
        return make(a.rec, func(np.asarray(a.idx), *args, **kwargs),
                    np.asarray(func(np.asarray(a.val), *args, **kwargs), dtype=np.float64))
    HANDLED_FUNCTIONS[func] = impl
    return impl


STRUCTURAL = (np.reshape, np.ravel, np.transpose, np.squeeze, np.expand_dims, np.moveaxis,
              np.swapaxes, np.flip, np.fliplr, np.flipud, np.roll, np.broadcast_to, np.atleast_1d,
              np.atleast_2d, np.atleast_3d, np.take, np.repeat, np.tile, np.copy, np.rot90,
              np.diagonal)
for _f in STRUCTURAL:
    _structural(_f)


@implements(np.trace)
def _trace(a, offset=0, axis1=0, axis2=1):
    return np.sum(np.diagonal(a, offset, axis1, axis2), axis=-1)


@implements(np.shape)
def _shape(a):
    return a.shape


@implements(np.ndim)
def _ndim(a):
    return a.ndim


@implements(np.size)
def _size(a, axis=None):
    return a.size if axis is None else a.shape[axis]


@implements(np.zeros_like, np.empty_like)
def _zeros_like(a, dtype=None, order="K", subok=True, shape=None):
    return np.zeros(np.shape(a.val) if shape is None else shape, dtype=dtype or np.float64)


@implements(np.ones_like)
def _ones_like(a, dtype=None, order="K", subok=True, shape=None):
    return np.ones(np.shape(a.val) if shape is None else shape, dtype=dtype or np.float64)


@implements(np.full_like)
def _full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None):
    return np.full(np.shape(a.val) if shape is None else shape, fill_value,
                   dtype=dtype or np.float64)


def _lift(x):
    """A (nested) list/tuple holding traced scalars or arrays becomes one stacked traced array,
    as numpy would turn it into an array (np.concatenate([v, [t]]) with a traced scalar t)."""
    if isinstance(x, (list, tuple)):
        items = [_lift(e) for e in x]
        if any(isinstance(e, Traced) for e in items):
            return HANDLED_FUNCTIONS[np.stack](items)
    return x


def _join(func):
    """concatenate/stack and friends over a mix of traced and constant arrays."""
    def impl(arrays, *args, **kwargs):
        arrays = [_lift(x) for x in arrays]
        rec = operands(*arrays)
        if rec is None:
            return func([np.asarray(x) for x in arrays], *args, **kwargs)
        idxs, vals = zip(*(as_slots(rec, x) for x in arrays))
        return make(rec, func(list(idxs), *args, **kwargs),
                    np.asarray(func(list(vals), *args, **kwargs), dtype=np.float64))
    HANDLED_FUNCTIONS[func] = impl
    return impl


JOINS = (np.concatenate, np.stack, np.hstack, np.vstack, np.dstack, np.column_stack)
for _f in JOINS:
    _join(_f)


def stack(arrays, axis=0):
    """Build a traced array from traced scalars/arrays (and constants): like np.stack.

    Returns a numpy array when nothing is traced.
    """
    return HANDLED_FUNCTIONS[np.stack](arrays, axis=axis)


# sort, argsort, argmax, argmin (guarded orders), isclose, allclose, array_equal: conditions.py
