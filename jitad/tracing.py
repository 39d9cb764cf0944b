"""Traced values: numpy-like stand-ins for the arguments while a function is recorded.

A traced value holds the tape slots of its elements (`idx`) and their values at the recording
point (`val`). Structural numpy operations act on both arrays alike and record nothing;
arithmetic appends ops to the recorder (`elementwise.py`, `array_functions.py`).
Scalars are a separate class without __len__/__getitem__ so that numpy asks them for
__float__ (and gets a clear TypeError) when one is stored into a float array.
"""
import numbers

import numpy as np

CONVERT_MSG = (
    "a jitad traced value cannot be converted to a Python float or stored into a numpy float "
    "array: the derivative would be lost. Use numpy functions on the traced value (np.sin, "
    "np.sum, ...), and build arrays from traced scalars with np.stack([...]) or "
    "jitad.stack([...]) instead of float(), math.*, np.array([...]) or out[i] = value."
)

HANDLED_UFUNCS = {}     # ufunc name -> implementation(*inputs)
HANDLED_FUNCTIONS = {}  # numpy function -> implementation(*args, **kwargs)
HOOKS = {}  # "index"/"indices": traced numbers used as ints (conditions.py: under a guard)


def implements(*funcs):
    def deco(impl):
        for f in funcs:
            HANDLED_FUNCTIONS[f] = impl
        return impl
    return deco


class Traced:
    __slots__ = ("rec", "idx", "val")
    __array_priority__ = 1000.0
    dtype = np.dtype(np.float64)

    def __init__(self, rec, idx, val):
        self.rec = rec
        self.idx = idx
        self.val = val

    # ---- conversions that would lose the derivative ----
    def __array__(self, dtype=None, copy=None):
        raise TypeError(CONVERT_MSG)

    def __float__(self):
        raise TypeError(CONVERT_MSG)

    def __complex__(self):
        raise TypeError(CONVERT_MSG)

    def __int__(self):
        if np.ndim(self.val):
            raise TypeError(CONVERT_MSG)
        return HOOKS["index"](self)  # integer values only, under an equality guard

    __index__ = __int__

    def __bool__(self):
        # the recorded outcome, guarded: `x != 0` is a traced condition (conditions.py)
        return bool(HANDLED_UFUNCS["not_equal"](self, 0.0))

    # ---- numpy protocols ----
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if kwargs.get("out") is not None:
            raise TypeError(f"jitad: np.{ufunc.__name__}(..., out=...) is not supported on traced "
                            "values; assign the result instead")
        kwargs.pop("out", None)
        if method == "__call__":
            impl = HANDLED_UFUNCS.get(ufunc.__name__)
            if impl is not None:
                if kwargs:
                    raise TypeError(f"jitad: np.{ufunc.__name__} keyword arguments "
                                    f"{sorted(kwargs)} are not supported on traced values")
                return impl(*inputs)
        else:
            impl = HANDLED_UFUNCS.get(ufunc.__name__ + "." + method)
            if impl is not None:
                return impl(*inputs, **kwargs)
        _not_supported(f"np.{ufunc.__name__}" + ("" if method == "__call__" else "." + method))

    def __array_function__(self, func, types, args, kwargs):
        impl = HANDLED_FUNCTIONS.get(func)
        if impl is None:
            _not_supported(f"{func.__module__}.{func.__name__}")
        return impl(*args, **kwargs)

    # ---- array attributes ----
    @property
    def shape(self):
        return np.shape(self.val)

    @property
    def ndim(self):
        return np.ndim(self.val)

    @property
    def size(self):
        return np.size(self.val)

    @property
    def T(self):
        return np.transpose(self)

    @property
    def value(self):
        """The value at the recording point (a numpy copy, no derivative)."""
        return np.array(self.val, dtype=np.float64)

    def __repr__(self):
        return f"Traced(shape={self.shape}, value={self.val!r})"

    # ---- comparisons: traced conditions (conditions.py), guarded when Python consumes them
    def __lt__(self, o):
        return HANDLED_UFUNCS["less"](self, o)

    def __le__(self, o):
        return HANDLED_UFUNCS["less_equal"](self, o)

    def __gt__(self, o):
        return HANDLED_UFUNCS["greater"](self, o)

    def __ge__(self, o):
        return HANDLED_UFUNCS["greater_equal"](self, o)

    def __eq__(self, o):
        return HANDLED_UFUNCS["equal"](self, o)

    def __ne__(self, o):
        return HANDLED_UFUNCS["not_equal"](self, o)

    __hash__ = None

    # ---- arithmetic ----
    def __add__(self, o):
        return HANDLED_UFUNCS["add"](self, o)

    def __radd__(self, o):
        return HANDLED_UFUNCS["add"](o, self)

    def __sub__(self, o):
        return HANDLED_UFUNCS["subtract"](self, o)

    def __rsub__(self, o):
        return HANDLED_UFUNCS["subtract"](o, self)

    def __mul__(self, o):
        return HANDLED_UFUNCS["multiply"](self, o)

    def __rmul__(self, o):
        return HANDLED_UFUNCS["multiply"](o, self)

    def __truediv__(self, o):
        return HANDLED_UFUNCS["true_divide"](self, o)

    def __rtruediv__(self, o):
        return HANDLED_UFUNCS["true_divide"](o, self)

    def __pow__(self, o):
        return HANDLED_UFUNCS["power"](self, o)

    def __rpow__(self, o):
        return HANDLED_UFUNCS["power"](o, self)

    def __matmul__(self, o):
        return HANDLED_UFUNCS["matmul"](self, o)

    def __rmatmul__(self, o):
        return HANDLED_UFUNCS["matmul"](o, self)

    def __neg__(self):
        return HANDLED_UFUNCS["negative"](self)

    def __pos__(self):
        return HANDLED_UFUNCS["positive"](self)

    def __abs__(self):
        return HANDLED_UFUNCS["absolute"](self)

    def __round__(self, ndigits=None):
        if ndigits not in (None, 0):
            raise TypeError("jitad: round() with digits is not supported on traced values")
        return HANDLED_UFUNCS["rint"](self)

    # ---- ndarray methods ----
    def sum(self, axis=None, keepdims=False):
        return np.sum(self, axis=axis, keepdims=keepdims)

    def prod(self, axis=None, keepdims=False):
        return np.prod(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return np.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return np.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return np.min(self, axis=axis, keepdims=keepdims)

    def cumsum(self, axis=None):
        return np.cumsum(self, axis=axis)

    def dot(self, o):
        return np.dot(self, o)

    def clip(self, a_min=None, a_max=None):
        return np.clip(self, a_min, a_max)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
            shape = shape[0]
        return np.reshape(self, shape, order=order)

    def ravel(self, order="C"):
        return np.ravel(self, order=order)

    def flatten(self, order="C"):
        return np.ravel(self, order=order)

    def transpose(self, *axes):
        if len(axes) == 1 and not isinstance(axes[0], numbers.Integral):
            axes = axes[0]
        return np.transpose(self, axes or None)

    def squeeze(self, axis=None):
        return np.squeeze(self, axis=axis)

    def swapaxes(self, a, b):
        return np.swapaxes(self, a, b)

    def copy(self):
        return np.copy(self)

    def astype(self, dtype, copy=True):
        if np.dtype(dtype).kind != "f":
            raise TypeError(f"jitad: cannot cast a traced value to {np.dtype(dtype)}; "
                            "the derivative would be lost")
        return np.copy(self) if copy else self


class TracedScalar(Traced):
    """A traced 0-d value: idx is a Python int, val a Python float."""

    __slots__ = ()


class TracedArray(Traced):
    """A traced n-d array: idx an int64 array of slots, val a float64 array, same shape."""

    __slots__ = ()

    def __len__(self):
        if self.val.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.val.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, key):
        if type(key) is int and self.idx.ndim == 1 and not self.rec.n_const:
            return TracedScalar(self.rec, int(self.idx[key]), float(self.val[key]))  # loop fast path
        key = _index_key(key)
        return make(self.rec, self.idx[key], self.val[key])

    def __setitem__(self, key, value):
        key = _index_key(key)
        if isinstance(value, Traced):
            if value.rec is not self.rec:
                raise TypeError("jitad: values from different recordings cannot be mixed")
            self.idx[key] = value.idx
            self.val[key] = value.val
        else:
            value = np.asarray(value, dtype=np.float64)
            target_shape = np.shape(self.val[key])
            value = np.broadcast_to(value, target_shape)
            self.idx[key] = self.rec.constants(value).reshape(target_shape)
            self.val[key] = value


def _index_key(key):
    """Indices must be concrete: traced indices and masks use their recorded values, under
    guards (conditions.py)."""
    if isinstance(key, tuple):
        return tuple(_index_key(k) for k in key)
    if isinstance(key, Traced):
        return HOOKS["indices"](key)
    return key


def value_of(x):
    """The recorded value of a traced value; anything else unchanged."""
    return x.val if isinstance(x, Traced) else x


def _not_supported(what):
    raise TypeError(f"jitad: {what} is not supported on traced values (see the README's list "
                    "of supported operations)")


def make(rec, idx, val):
    """Wrap slots and values as a traced scalar or array; all-constant results become numpy."""
    if np.ndim(idx) == 0:
        i = int(idx)
        if rec.n_const and rec.is_const_slot(i):
            return np.float64(val)
        return TracedScalar(rec, i, float(val))
    if rec.n_const and np.all(rec.is_const_slot(idx)):
        return np.array(val, dtype=np.float64)
    return TracedArray(rec, idx, val)


def operands(*xs):
    """The recorder shared by the traced operands, or a TypeError when they come from two."""
    rec = None
    for x in xs:
        if isinstance(x, Traced):
            if rec is None:
                rec = x.rec
            elif x.rec is not rec:
                raise TypeError("jitad: values from different recordings cannot be mixed "
                                "(nested differentiation of a closure over another recording)")
    return rec


def as_slots(rec, x):
    """(idx array, val array) for a traced value or a constant (constants become CONST slots)."""
    if isinstance(x, Traced):
        return np.asarray(x.idx), np.asarray(x.val)
    val = np.asarray(x, dtype=np.float64)
    return rec.constants(val).reshape(val.shape), val
