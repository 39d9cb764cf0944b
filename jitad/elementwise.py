"""Recording of numpy ufuncs on traced values: one op per output element, appended vectorised.

Linear ufuncs (add, subtract, negative, scaling by a constant) become LIN ops; the others use
the unary/binary op codes of `opcodes.py`. A binary op with one constant operand keeps the
constant as the op's parameter (modes VC/CV), so constants never become tape slots here.
"""
import operator

import numpy as np

from . import opcodes as oc
from .tracing import HANDLED_UFUNCS, Traced, TracedScalar, make, operands

def _unary(name, ufunc):
    code = oc.UNARY_CODE[name]

    def impl(x):
        rec = x.rec
        if isinstance(x, TracedScalar):
            v = float(ufunc(x.val))
            return TracedScalar(rec, rec.append1(code, x.idx), v)
        val = np.asarray(ufunc(x.val), dtype=np.float64)
        slots = rec.append(code, x.idx.reshape(-1, 1))
        return make(rec, slots.reshape(val.shape), val)
    return impl


def _modes(a, b):
    """(mode, constant operand or None) of a binary op on a and b, one of them traced."""
    if isinstance(a, Traced) and isinstance(b, Traced):
        return oc.VV, None
    if isinstance(a, Traced):
        return oc.VC, b
    return oc.CV, a


def _record_scalar(rec, codes, lin, mode, s, t, c):
    """Record one op on traced scalar slot s (and t in mode VV) with constant c: LIN where
    lin(mode, c) says the op is linear, else the op's code for that mode."""
    linear = lin(mode, c) if lin is not None else None
    if linear is not None:
        coefs, param = linear
        if mode == oc.VV:
            return rec.append1(oc.LIN, s, t, float(param), float(coefs[0]), float(coefs[1]))
        return rec.append1(oc.LIN, s, -1, float(param), float(coefs[0]))
    if mode == oc.VV:
        return rec.append1(codes[oc.VV], s, t)
    return rec.append1(codes[mode], s, -1, c)


def _record_binary(rec, a, b, val, codes, lin=None):
    """Append one op per element of the broadcast result (val: the numpy result).

    `lin(mode, const)` gives (coefs, param) when the op is linear in that mode (None: not).
    """
    mode, const = _modes(a, b)
    if np.ndim(val) == 0:
        s = (a if mode != oc.CV else b).idx
        t = b.idx if mode == oc.VV else -1
        c = 0.0 if const is None else float(np.asarray(const))
        return TracedScalar(rec, _record_scalar(rec, codes, lin, mode, s, t, c), float(val))
    if const is not None:
        const = np.asarray(const, dtype=np.float64)
    linear = lin(mode, const) if lin is not None else None
    shape = np.shape(val)
    K = int(np.size(val))

    def flat(x):
        """x as (K,) over the broadcast result."""
        x = np.asarray(x)
        return x.reshape(K) if x.shape == shape else np.broadcast_to(x, shape).reshape(K)

    def per_element(x):
        """flat(x), or x itself when it is a scalar (slice assignment broadcasts it)."""
        return x if np.ndim(x) == 0 else flat(x)

    if mode == oc.VV:
        args = np.empty((K, 2), dtype=np.int64)
        args[:, 0] = flat(a.idx)
        args[:, 1] = flat(b.idx)
    else:
        args = flat((a if mode == oc.VC else b).idx).reshape(K, 1)
    if linear is not None:
        coefs, param = linear
        coef = np.empty((K, len(coefs)))
        for j, c in enumerate(coefs):
            coef[:, j] = per_element(c)
        slots = rec.append(oc.LIN, args, coef=coef, param=per_element(param))
    else:
        slots = rec.append(codes[mode], args, param=0.0 if const is None else per_element(const))
    return make(rec, slots.reshape(shape), np.asarray(val, dtype=np.float64))


_PY_SCALARS = (float, int, np.float64)


def _binary(name, ufunc, lin=None, scalar_op=None):
    """The recording implementation of a binary ufunc.

    lin(mode, const) -> (coefs, param) or None says where the op is linear (recorded as LIN);
    scalar_op computes a value on np.float64 with numpy semantics faster than the ufunc.
    """
    if name in oc.BINARY_KIND:
        codes = [oc.binary_code(name, m) for m in (oc.VV, oc.VC, oc.CV)]
    else:
        codes = [None, None, None]
    scalar_op = scalar_op or ufunc

    def impl(a, b):
        ta = type(a) is TracedScalar
        tb = type(b) is TracedScalar
        if (ta or type(a) in _PY_SCALARS) and (tb or type(b) in _PY_SCALARS):
            # the Python-loop fast path: one op, no arrays
            av = a.val if ta else float(a)
            bv = b.val if tb else float(b)
            v = float(scalar_op(np.float64(av), bv))
            if ta and tb:
                rec = operands(a, b)
                return TracedScalar(rec, _record_scalar(rec, codes, lin, oc.VV, a.idx, b.idx, 0.0), v)
            if ta:
                return TracedScalar(a.rec, _record_scalar(a.rec, codes, lin, oc.VC, a.idx, -1, bv), v)
            return TracedScalar(b.rec, _record_scalar(b.rec, codes, lin, oc.CV, b.idx, -1, av), v)
        rec = operands(a, b)
        av = a.val if isinstance(a, Traced) else np.asarray(a, dtype=np.float64)
        bv = b.val if isinstance(b, Traced) else np.asarray(b, dtype=np.float64)
        val = ufunc(av, bv)
        return _record_binary(rec, a, b, val, codes, lin=lin)
    return impl


# linear rules: (mode, const) -> (coefs per edge, param) or None when not linear
def _lin_add(mode, c):
    return ((1.0, 1.0), 0.0) if mode == oc.VV else ((1.0,), c)


def _lin_subtract(mode, c):
    if mode == oc.VV:
        return (1.0, -1.0), 0.0
    return ((1.0,), -c) if mode == oc.VC else ((-1.0,), c)


def _lin_multiply(mode, c):
    return None if mode == oc.VV else ((c,), 0.0)


def _lin_divide(mode, c):
    if mode != oc.VC:
        return None
    if type(c) is float and c != 0.0:  # the Python-loop fast path
        return (1.0 / c,), 0.0
    # x / 0 is x * inf, as numpy's (nan at x = 0); numpy already warned for the value itself
    with np.errstate(divide="ignore"):
        return (np.divide(1.0, c),), 0.0


def _negative(x):
    rec = x.rec
    if isinstance(x, TracedScalar):
        return TracedScalar(rec, rec.append1(oc.LIN, x.idx, -1, 0.0, -1.0), -x.val)
    slots = rec.append(oc.LIN, x.idx.reshape(-1, 1), coef=-1.0)
    return make(rec, slots.reshape(x.val.shape), -x.val)


def _positive(x):
    # numpy returns a new array: a view-sharing result would let `y = +x; y[0] = c` modify x
    if isinstance(x, TracedScalar):
        return x
    return make(x.rec, np.array(x.idx, copy=True), np.array(x.val, copy=True))


_UNARY_UFUNCS = {name: getattr(np, name) for name, _ in oc.UNARY if hasattr(np, name)}

for _name, _uf in _UNARY_UFUNCS.items():
    HANDLED_UFUNCS[_name] = _unary(_name, _uf)


def _scipy_unary(name):
    """scipy.special ufuncs, dispatched by name: scipy stays optional and is not imported by
    jitad (it costs ~0.4 s at start-up); a user calling scipy.special.erf has imported it."""
    impl = None

    def call(x):
        nonlocal impl
        if impl is None:
            import scipy.special
            impl = _unary(name, getattr(scipy.special, name))
        return impl(x)
    return call


for _name in ("erf", "expit", "gammaln"):
    HANDLED_UFUNCS[_name] = _scipy_unary(_name)
HANDLED_UFUNCS["negative"] = _negative
HANDLED_UFUNCS["positive"] = _positive
HANDLED_UFUNCS["add"] = _binary("add", np.add, _lin_add, operator.add)
HANDLED_UFUNCS["subtract"] = _binary("subtract", np.subtract, _lin_subtract, operator.sub)
HANDLED_UFUNCS["multiply"] = _binary("multiply", np.multiply, _lin_multiply, operator.mul)
HANDLED_UFUNCS["true_divide"] = HANDLED_UFUNCS["divide"] = _binary("divide", np.divide, _lin_divide,
                                                                   operator.truediv)
HANDLED_UFUNCS["power"] = _binary("power", np.power, None, operator.pow)
for _name in ("arctan2", "hypot", "maximum", "minimum", "fmax", "fmin", "logaddexp"):
    HANDLED_UFUNCS[_name] = _binary(_name, getattr(np, _name))
HANDLED_UFUNCS["float_power"] = HANDLED_UFUNCS["power"]
HANDLED_UFUNCS["abs"] = HANDLED_UFUNCS["absolute"]
HANDLED_UFUNCS["round"] = HANDLED_UFUNCS["rint"]

# comparisons, isnan/isinf/isfinite and logical ufuncs: conditions.py
