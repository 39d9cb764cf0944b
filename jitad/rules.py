"""Derivative rules: the value, first and second partials of every operation, in one place.

`unary_rule` and `binary_rule` are the only code that knows the calculus of an op; the forward
sweep calls them once per op and point and stores the partials, after which every derivative
sweep is multiply-adds. Conventions at non-differentiable points (documented in README.md,
they follow torch/JAX): |x|' = sign(x) (0 at 0); max/min split the derivative 0.5/0.5 at ties;
sign, floor, ceil, round have derivative 0; comparisons (1.0/0.0) and the condition of a
select have derivative 0, and a select passes the derivative to the branch it takes.
"""
import math

import numpy as np
from numba import njit

from . import opcodes as oc

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

_jit = njit(cache=True, error_model="numpy", nogil=True)


@_jit
def digamma(x):
    if x <= 0.0 and x == math.floor(x):
        return np.nan
    if x < 0.0:  # reflection
        return digamma(1.0 - x) - math.pi / math.tan(math.pi * x)
    acc = 0.0
    while x < 12.0:  # recurrence up to where the asymptotic series is accurate to ~1e-16
        acc -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    return acc + math.log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (
        1.0 / 240 - f * (1.0 / 132 - f * (691.0 / 32760 - f / 12.0))))))


@_jit
def trigamma(x):
    if x <= 0.0 and x == math.floor(x):
        return np.nan
    if x < 0.0:  # reflection: psi1(1-x) + psi1(x) = pi^2 / sin^2(pi x)
        s = math.sin(math.pi * x)
        return -trigamma(1.0 - x) + math.pi * math.pi / (s * s)
    acc = 0.0
    while x < 12.0:
        acc += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    return acc + 1.0 / x + f / 2.0 + (1.0 / x) * f * (1.0 / 6 - f * (1.0 / 30 - f * (1.0 / 42 - f * (
        1.0 / 30 - f * (5.0 / 66 - f * (691.0 / 2730 - f * 7.0 / 6))))))


@_jit
def unary_rule(code, x, partials):
    """(value, d/dx, d2/dx2) of unary op `code` at x; partials skipped when not asked for."""
    k = code - oc.UNARY_BASE
    d = 0.0
    dd = 0.0
    if k == 0:  # sin
        v = math.sin(x)
        if partials:
            d = math.cos(x)
            dd = -v
    elif k == 1:  # cos
        v = math.cos(x)
        if partials:
            d = -math.sin(x)
            dd = -v
    elif k == 2:  # tan
        v = math.tan(x)
        d = 1.0 + v * v
        dd = 2.0 * v * d
    elif k == 3:  # arcsin
        v = np.arcsin(x)
        d = 1.0 / np.sqrt(1.0 - x * x)
        dd = x * d * d * d
    elif k == 4:  # arccos
        v = np.arccos(x)
        d = -1.0 / np.sqrt(1.0 - x * x)
        dd = x * d * d * d
    elif k == 5:  # arctan
        v = math.atan(x)
        d = 1.0 / (1.0 + x * x)
        dd = -2.0 * x * d * d
    elif k == 6:  # sinh
        v = math.sinh(x)
        d = math.cosh(x)
        dd = v
    elif k == 7:  # cosh
        v = math.cosh(x)
        d = math.sinh(x)
        dd = v
    elif k == 8:  # tanh
        v = math.tanh(x)
        d = 1.0 - v * v
        dd = -2.0 * v * d
    elif k == 9:  # arcsinh
        v = math.asinh(x)
        d = 1.0 / math.sqrt(x * x + 1.0)
        dd = -x * d * d * d
    elif k == 10:  # arccosh
        v = np.arccosh(x)
        d = 1.0 / np.sqrt(x * x - 1.0)
        dd = -x * d * d * d
    elif k == 11:  # arctanh
        v = np.arctanh(x)
        d = 1.0 / (1.0 - x * x)
        dd = 2.0 * x * d * d
    elif k == 12:  # exp
        v = math.exp(x)
        d = v
        dd = v
    elif k == 13:  # exp2
        v = np.exp2(x)
        d = v * _LN2
        dd = d * _LN2
    elif k == 14:  # expm1
        v = math.expm1(x)
        d = v + 1.0
        dd = d
    elif k == 15:  # log
        v = np.log(x)
        d = 1.0 / x
        dd = -d * d
    elif k == 16:  # log2
        v = np.log2(x)
        d = 1.0 / (x * _LN2)
        dd = -d / x
    elif k == 17:  # log10
        v = np.log10(x)
        d = 1.0 / (x * _LN10)
        dd = -d / x
    elif k == 18:  # log1p
        v = np.log1p(x)
        d = 1.0 / (1.0 + x)
        dd = -d * d
    elif k == 19:  # sqrt
        v = np.sqrt(x)
        d = 0.5 / v
        dd = -0.5 * d / x
    elif k == 20:  # cbrt
        v = np.cbrt(x)
        d = 1.0 / (3.0 * v * v)
        dd = -2.0 * d / (3.0 * x)
    elif k == 21:  # square
        v = x * x
        d = 2.0 * x
        dd = 2.0
    elif k == 22:  # reciprocal
        v = 1.0 / x
        d = -v * v
        dd = -2.0 * d * v
    elif k == 23:  # absolute
        v = abs(x)
        d = 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)
    elif k == 24:  # sign
        v = 1.0 if x > 0.0 else (-1.0 if x < 0.0 else (0.0 if x == 0.0 else x))
    elif k == 25:  # floor (np.floor stays float: math.floor returns an int64 in numba)
        v = np.floor(x)
    elif k == 26:  # ceil
        v = np.ceil(x)
    elif k == 27:  # rint (np.round): round half to even
        v = np.rint(x)
    elif k == 28:  # erf
        v = math.erf(x)
        d = _TWO_OVER_SQRT_PI * math.exp(-x * x)
        dd = -2.0 * x * d
    elif k == 29:  # expit
        if x >= 0.0:
            v = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            v = e / (1.0 + e)
        d = v * (1.0 - v)
        dd = d * (1.0 - 2.0 * v)
    elif k == 30:  # gammaln
        v = math.lgamma(x) if math.isfinite(x) else (np.inf if not np.isnan(x) else x)
        if partials:
            d = digamma(x)
            dd = trigamma(x)
    else:
        v = np.nan
    return v, d, dd


@_jit
def binary_rule(code, a, b, wa, wb):
    """(value, da, db, daa, dab, dbb) of binary op `code` at (a, b).

    wa/wb say which partials are wanted (an operand may be a constant); unwanted ones may be
    left at 0 to save transcendental work.
    """
    k = (code - oc.BINARY_BASE) // 3
    da = 0.0
    db = 0.0
    daa = 0.0
    dab = 0.0
    dbb = 0.0
    if k == 0:  # multiply
        v = a * b
        da = b
        db = a
        dab = 1.0
    elif k == 1:  # divide
        v = a / b
        da = 1.0 / b
        db = -v / b
        dab = -da * da
        dbb = 2.0 * v / (b * b)
    elif k == 2:  # power
        if b == 2.0:  # the common x**2: no pow() calls
            v = a * a
            da = 2.0 * a
            daa = 2.0
        elif b == 3.0:
            v = a * a * a
            da = 3.0 * a * a
            daa = 6.0 * a
        else:
            v = a ** b
            if wa:  # b = 0 and b = 1 spelled out: 0 * 0**-1 would give NaN at a = 0
                if b == 0.0:
                    da = 0.0
                elif b == 1.0:
                    da = 1.0
                else:
                    da = b * a ** (b - 1.0)
                    daa = b * (b - 1.0) * a ** (b - 2.0)
        if wb and not (a == 0.0 and b >= 0.0):  # torch: d/db 0**b = 0 there (not 0 * log 0)
            la = np.log(a)
            db = v * la
            dbb = db * la
            if wa:
                dab = a ** (b - 1.0) * (1.0 + b * la)
    elif k == 3:  # arctan2(a, b) = angle of (b, a)
        v = math.atan2(a, b)
        r2 = a * a + b * b
        da = b / r2
        db = -a / r2
        r4 = r2 * r2
        daa = -2.0 * a * b / r4
        dbb = -daa
        dab = (a * a - b * b) / r4
    elif k == 4:  # hypot
        v = math.hypot(a, b)
        da = a / v
        db = b / v
        v3 = v * v * v
        daa = b * b / v3
        dbb = a * a / v3
        dab = -a * b / v3
    elif k == 5 or k == 7:  # maximum / fmax (fmax ignores a NaN operand)
        if k == 7 and (np.isnan(a) or np.isnan(b)):
            if np.isnan(b):
                v, da = a, 1.0
            else:
                v, db = b, 1.0
        elif a > b:
            v, da = a, 1.0
        elif b > a:
            v, db = b, 1.0
        elif a == b:
            v, da, db = a, 0.5, 0.5
        else:
            v = np.nan
    elif k == 6 or k == 8:  # minimum / fmin
        if k == 8 and (np.isnan(a) or np.isnan(b)):
            if np.isnan(b):
                v, da = a, 1.0
            else:
                v, db = b, 1.0
        elif a < b:
            v, da = a, 1.0
        elif b < a:
            v, db = b, 1.0
        elif a == b:
            v, da, db = a, 0.5, 0.5
        else:
            v = np.nan
    elif k == 9:  # logaddexp
        m = max(a, b)
        if np.isnan(a) or np.isnan(b):
            v = np.nan
        elif a == b:  # also the infinities, where a - b is NaN
            v = a + _LN2
            da = 0.5
            db = 0.5
            daa = 0.0 if np.isinf(a) else 0.25
            dbb = daa
            dab = -daa
        else:
            v = m + math.log1p(math.exp(-abs(a - b)))
            da = math.exp(a - v)
            db = math.exp(b - v)
            daa = da * db
            dbb = daa
            dab = -daa
    elif oc.CMP_BASE_KIND <= k < oc.CMP_BASE_KIND + 6:  # comparisons: 1.0 / 0.0, derivative 0
        v = 1.0 if compare(k - oc.CMP_BASE_KIND, a, b) else 0.0
    else:
        v = np.nan
    return v, da, db, daa, dab, dbb


@_jit
def compare(kind, a, b):
    """a <kind> b for a comparison kind of `opcodes` (LT LE GT GE EQ NE), numpy semantics
    (every comparison with NaN is False except !=). Used by the comparison ops and by guards."""
    if kind == oc.LT:
        return a < b
    if kind == oc.LE:
        return a <= b
    if kind == oc.GT:
        return a > b
    if kind == oc.GE:
        return a >= b
    if kind == oc.EQ:
        return a == b
    return a != b


@_jit
def select_rule(c, a, b):
    """(value, d/dc, d/da, d/db) of SELECT: a where the condition value c is nonzero, else b."""
    if c != 0.0:
        return a, 0.0, 1.0, 0.0
    return b, 0.0, 0.0, 1.0
