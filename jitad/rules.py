"""Derivative rules: the value, first and second partials of every operation, in one place.

Each op has a *value* part (`unary_value`, `binary_value`) and a *partials* part
(`unary_partials`, `binary_partials`); they are the only code that knows the calculus of an op.
The forward sweep calls both (through `unary_rule` / `binary_rule`) once per op and point and
stores the partials, after which every derivative sweep is multiply-adds.

The partials parts are also run by `jitad.nested` as plain Python (`.py_func`) on *traced*
arrays, one call for all ops of one code, to record the derivative computation itself on a tape
(derivatives of derivatives). So they are written to be correct both ways: numpy functions
(`np.sin`, not `math.sin`), the value available as `v` (tan' = 1 + v*v records no second tan),
no Python `if` on operand values (branch-free forms: |x|' = sign(x)), only on the op code, the
`wa`/`wb`/`second` flags and power's constant exponent (`nested` passes one exponent at a
time). Special functions close under differentiation through `polygamma(n, x)`, which
`nested` replaces by its recording version. Value parts may branch freely.

Conventions at non-differentiable points (documented in README.md, they follow torch/JAX):
|x|' = sign(x) (0 at 0); max/min split the derivative 0.5/0.5 at ties and give 0 to both
operands when one is NaN; sign, floor, ceil, round have derivative 0; d/db 0**b = 0 for b >= 0
(torch); comparisons (1.0/0.0) and the condition of a select have derivative 0, and a select
passes the derivative to the branch it takes.
"""
import math

import numpy as np
from numba import njit
from numba.extending import register_jitable

from . import opcodes as oc

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

_jit = njit(cache=True, error_model="numpy", nogil=True)
# the value and partials parts are inlined into unary_rule/binary_rule (numba IR level): as
# separate calls the forward sweep with partials ran ~10% slower
_ijit = njit(cache=True, error_model="numpy", nogil=True, inline="always")


# Partials of the ops that array code runs most, as small functions of their own: the general
# rules below call them, and so do the run loops of `run_sweeps.py`, which inline these instead
# of the whole rule (each inlined copy of a general rule costs ~20 s of compile time) and get
# branch-free loops LLVM vectorises. register_jitable: plain Python too, for `jitad.nested`.
@register_jitable(inline="always")
def multiply_partials(a, b):
    """(d/da, d/db, d2/dadb) of a * b."""
    return b, a, 1.0


@register_jitable(inline="always")
def square_partials(x):
    """(d/dx, d2/dx2) of x**2 (np.square, and power with the constant exponent 2)."""
    return 2.0 * x, 2.0


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


# Bernoulli numbers B_2, B_4, ..., B_20 for the asymptotic series of polygamma
_BERN = np.array([1.0 / 6, -1.0 / 30, 1.0 / 42, -1.0 / 30, 5.0 / 66, -691.0 / 2730, 7.0 / 6,
                  -3617.0 / 510, 43867.0 / 798, -174611.0 / 330])


@_jit
def polygamma(n, x):
    """psi^(n)(x), the n-th derivative of digamma, for integer n >= 0 (n a float; NaN else).

    n = 0, 1: digamma/trigamma. n >= 2: the recurrence psi^(n)(x) = psi^(n)(x + 1) -
    (-1)^n n! / x^(n+1) up to x >= 20 + n, then the asymptotic series (10 Bernoulli terms,
    relative error ~1e-16 there); NaN at the poles (x = 0, -1, -2, ...) and for x < -1e7, where
    the recurrence would take too long.
    """
    if n == 0.0:
        return digamma(x)
    if n == 1.0:
        return trigamma(x)
    if not (n > 1.0 and n == math.floor(n) and n <= 150.0) or np.isnan(x):
        return np.nan
    if x <= 0.0 and x == math.floor(x) or x < -1e7:
        return np.nan
    if x == np.inf:
        return 0.0
    m = int(n)
    fact = 1.0  # n!
    for j in range(2, m + 1):
        fact *= j
    sgn = 1.0 if m % 2 == 1 else -1.0  # (-1)^(n+1)
    acc = 0.0
    x0 = 20.0 + n
    while x < x0:  # psi^(n)(x) = psi^(n)(x+1) + (-1)^(n+1) n! / x^(n+1)
        acc += fact / x ** (n + 1.0)
        x += 1.0
    # (n-1)!/x^n + n!/(2 x^(n+1)) + sum_k B_2k (2k+n-1)!/(2k)! / x^(2k+n)
    s = fact / n / x ** n + 0.5 * fact / x ** (n + 1.0)
    t = fact * (n + 1.0) / 2.0 / x ** (n + 2.0)  # (n+1)!/2! / x^(n+2)
    x2 = x * x
    for k in range(1, 11):
        s += _BERN[k - 1] * t
        t *= (2.0 * k + n) * (2.0 * k + n + 1.0) / ((2.0 * k + 1.0) * (2.0 * k + 2.0) * x2)
    return sgn * (acc + s)


@_ijit
def unary_value(code, x):
    """Value of unary op `code` at x (branches on x allowed: this part is never traced)."""
    k = code - oc.UNARY_BASE
    if k == 0:
        return math.sin(x)
    elif k == 1:
        return math.cos(x)
    elif k == 2:
        return math.tan(x)
    elif k == 3:
        return np.arcsin(x)
    elif k == 4:
        return np.arccos(x)
    elif k == 5:
        return math.atan(x)
    elif k == 6:
        return math.sinh(x)
    elif k == 7:
        return math.cosh(x)
    elif k == 8:
        return math.tanh(x)
    elif k == 9:
        return math.asinh(x)
    elif k == 10:
        return np.arccosh(x)
    elif k == 11:
        return np.arctanh(x)
    elif k == 12:
        return math.exp(x)
    elif k == 13:
        return np.exp2(x)
    elif k == 14:
        return math.expm1(x)
    elif k == 15:
        return np.log(x)
    elif k == 16:
        return np.log2(x)
    elif k == 17:
        return np.log10(x)
    elif k == 18:
        return np.log1p(x)
    elif k == 19:
        return np.sqrt(x)
    elif k == 20:
        return np.cbrt(x)
    elif k == 21:
        return x * x
    elif k == 22:
        return 1.0 / x
    elif k == 23:
        return abs(x)
    elif k == 24:
        return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else (0.0 if x == 0.0 else x))
    elif k == 25:  # floor (np.floor stays float: math.floor returns an int64 in numba)
        return np.floor(x)
    elif k == 26:
        return np.ceil(x)
    elif k == 27:  # rint (np.round): round half to even
        return np.rint(x)
    elif k == 28:
        return math.erf(x)
    elif k == 29:  # expit: the stable branch for each sign
        if x >= 0.0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)
    elif k == 30:
        return math.lgamma(x) if math.isfinite(x) else (np.inf if not np.isnan(x) else x)
    return np.nan


@_ijit
def unary_partials(code, x, v, second):
    """(d/dx, d2/dx2) of unary op `code` at x with value v (d2 only when `second`).

    Traceable (see the module docstring): no branch on x.
    """
    k = code - oc.UNARY_BASE
    d = 0.0
    dd = 0.0
    if k == 0:  # sin
        d = np.cos(x)
        if second:
            dd = -v
    elif k == 1:  # cos
        d = -np.sin(x)
        if second:
            dd = -v
    elif k == 2:  # tan
        d = 1.0 + v * v
        if second:
            dd = 2.0 * v * d
    elif k == 3:  # arcsin
        d = 1.0 / np.sqrt(1.0 - x * x)
        if second:
            dd = x * d * d * d
    elif k == 4:  # arccos
        d = -1.0 / np.sqrt(1.0 - x * x)
        if second:
            dd = x * d * d * d
    elif k == 5:  # arctan
        d = 1.0 / (1.0 + x * x)
        if second:
            dd = -2.0 * x * d * d
    elif k == 6:  # sinh
        d = np.cosh(x)
        dd = v
    elif k == 7:  # cosh
        d = np.sinh(x)
        dd = v
    elif k == 8:  # tanh
        d = 1.0 - v * v
        if second:
            dd = -2.0 * v * d
    elif k == 9:  # arcsinh
        d = 1.0 / np.sqrt(x * x + 1.0)
        if second:
            dd = -x * d * d * d
    elif k == 10:  # arccosh
        d = 1.0 / np.sqrt(x * x - 1.0)
        if second:
            dd = -x * d * d * d
    elif k == 11:  # arctanh
        d = 1.0 / (1.0 - x * x)
        if second:
            dd = 2.0 * x * d * d
    elif k == 12:  # exp
        d = v
        dd = v
    elif k == 13:  # exp2
        d = v * _LN2
        dd = d * _LN2
    elif k == 14:  # expm1
        d = v + 1.0
        dd = d
    elif k == 15:  # log
        d = 1.0 / x
        if second:
            dd = -d * d
    elif k == 16:  # log2
        d = 1.0 / (x * _LN2)
        if second:
            dd = -d / x
    elif k == 17:  # log10
        d = 1.0 / (x * _LN10)
        if second:
            dd = -d / x
    elif k == 18:  # log1p
        d = 1.0 / (1.0 + x)
        if second:
            dd = -d * d
    elif k == 19:  # sqrt
        d = 0.5 / v
        if second:
            dd = -0.5 * d / x
    elif k == 20:  # cbrt
        d = 1.0 / (3.0 * v * v)
        if second:
            dd = -2.0 * d / (3.0 * x)
    elif k == 21:  # square
        d, dd = square_partials(x)
    elif k == 22:  # reciprocal
        d = -v * v
        if second:
            dd = -2.0 * d * v
    elif k == 23:  # absolute: sign(x), 0 at 0 and at NaN (so 0 * d stays 0 downstream)
        sg = np.sign(x)
        d = np.fmax(sg, 0.0) + np.fmin(sg, 0.0)  # fmax/fmin drop the NaN
    elif k == 28:  # erf
        d = _TWO_OVER_SQRT_PI * np.exp(-x * x)
        if second:
            dd = -2.0 * x * d
    elif k == 29:  # expit
        d = v * (1.0 - v)
        if second:
            dd = d * (1.0 - 2.0 * v)
    elif k == 30:  # gammaln
        d = polygamma(0.0, x)
        if second:
            dd = polygamma(1.0, x)
    # sign, floor, ceil, rint: derivative 0
    return d, dd


@_jit
def unary_rule(code, x, partials):
    """(value, d/dx, d2/dx2) of unary op `code` at x; partials skipped when not asked for."""
    v = unary_value(code, x)
    d = dd = 0.0
    if partials:
        d, dd = unary_partials(code, x, v, True)
    return v, d, dd


@_ijit
def binary_value(code, a, b):
    """Value of binary op `code` at (a, b) (branches on values allowed: never traced)."""
    k = (code - oc.BINARY_BASE) // 3
    if k == 0:  # multiply
        return a * b
    elif k == 1:  # divide
        return a / b
    elif k == 2:  # power
        if b == 2.0:  # the common x**2: no pow() call
            return a * a
        if b == 3.0:
            return a * a * a
        return a ** b
    elif k == 3:  # arctan2(a, b) = angle of (b, a)
        return math.atan2(a, b)
    elif k == 4:
        return math.hypot(a, b)
    elif k == 5 or k == 7:  # maximum / fmax (fmax ignores a NaN operand)
        if k == 7 and (np.isnan(a) or np.isnan(b)):
            return a if np.isnan(b) else b
        if a >= b:
            return a
        if b > a:
            return b
        return np.nan
    elif k == 6 or k == 8:  # minimum / fmin
        if k == 8 and (np.isnan(a) or np.isnan(b)):
            return a if np.isnan(b) else b
        if a <= b:
            return a
        if b < a:
            return b
        return np.nan
    elif k == 9:  # logaddexp
        if np.isnan(a) or np.isnan(b):
            return np.nan
        if a == b:  # also the infinities, where a - b is NaN
            return a + _LN2
        return max(a, b) + math.log1p(math.exp(-abs(a - b)))
    elif oc.CMP_BASE_KIND <= k < oc.CMP_BASE_KIND + 6:  # comparisons: 1.0 / 0.0
        return 1.0 if compare(k - oc.CMP_BASE_KIND, a, b) else 0.0
    elif k == oc.POLYGAMMA_KIND:  # polygamma(n, x): a = n (a constant), b = x
        return polygamma(a, b)
    return np.nan


@_ijit
def binary_partials(code, a, b, v, wa, wb, second):
    """(da, db, daa, dab, dbb) of binary op `code` at (a, b) with value v.

    wa/wb say which partials are wanted (the other operand is a constant); unwanted ones are
    left at 0, second partials only when `second`. Traceable (see the module docstring).
    """
    k = (code - oc.BINARY_BASE) // 3
    da = 0.0
    db = 0.0
    daa = 0.0
    dab = 0.0
    dbb = 0.0
    if k == 0:  # multiply
        da, db, dab = multiply_partials(a, b)
    elif k == 1:  # divide
        if wa:
            da = 1.0 / b
        if wb:
            db = -v / b
        if second:
            if wa and wb:
                dab = -1.0 / (b * b)
            if wb:
                dbb = 2.0 * v / (b * b)
    elif k == 2:  # power
        if wb:  # traced exponent: the general formulas
            # log(a), but 0 where a = 0 and b >= 0 so that d/db 0**b = 0 there (torch's
            # convention, not 0 * -inf); written as arithmetic on comparisons to stay traceable
            la = np.log(a + (a == 0.0) * (b >= 0.0))
            db = v * la
            if second:
                dbb = db * la
            if wa:
                # a**(b - 1), with exponent 0 where b = 0: b * a**(b-1) is then 0 at a = 0,
                # not 0 * inf (torch masks it the same way); likewise b = 0, 1 in daa
                p = a ** (b - 1.0 + (b == 0.0))
                da = b * p
                if second:
                    daa = (b - 1.0) * b * a ** (b - 2.0 + 2.0 * (b == 0.0) + (b == 1.0))
                    dab = p * (1.0 + b * la)
        elif wa:  # constant exponent b: b = 0 and 1 spelled out (0 * 0**-1 would be NaN)
            if b == 2.0:
                da, daa = square_partials(a)
            elif b == 3.0:
                da = 3.0 * a * a
                if second:
                    daa = 6.0 * a
            elif b == 1.0:
                da = 1.0
            elif b != 0.0:
                da = b * a ** (b - 1.0)
                if second:
                    daa = b * (b - 1.0) * a ** (b - 2.0)
    elif k == 3:  # arctan2(a, b) = angle of (b, a)
        r2 = a * a + b * b
        if wa:
            da = b / r2
        if wb:
            db = -a / r2
        if second:
            r4 = r2 * r2
            daa = -2.0 * a * b / r4
            dbb = -daa
            dab = (a * a - b * b) / r4
    elif k == 4:  # hypot
        if wa:
            da = a / v
        if wb:
            db = b / v
        if second:
            v3 = v * v * v
            daa = b * b / v3
            dbb = a * a / v3
            dab = -a * b / v3
    elif k == 5 or k == 6:  # maximum / minimum: 0.5/0.5 at ties; 0 to both with a NaN operand
        s = np.sign(a - b) if k == 5 else np.sign(b - a)
        # fmax(NaN, 0) = 0: the NaN sign of a NaN operand gives 0 (JAX's convention)
        da = np.fmin(np.fmax(0.5 * (1.0 + s), 0.0), 1.0)
        db = np.fmin(np.fmax(0.5 * (1.0 - s), 0.0), 1.0)
    elif k == 7 or k == 8:  # fmax / fmin: the non-NaN operand gets the derivative
        s = np.sign(a - b) if k == 7 else np.sign(b - a)
        # a NaN sign becomes +1 when b is NaN, -1 when a is NaN
        s = np.fmin(np.fmax(s, 2.0 * np.isnan(b) - 1.0), 1.0 - 2.0 * np.isnan(a))
        da = 0.5 * (1.0 + s)
        db = 0.5 * (1.0 - s)
    elif k == 9 and (wa or wb):  # logaddexp: da = exp(a - v) = expit(a - b)
        t = b - a
        t = np.fmax(t, 0.0) + np.fmin(t, 0.0)  # t, or 0 where a = b = +-inf made it NaN
        da = 1.0 / (1.0 + np.exp(t))
        db = 1.0 - da
        if second:
            daa = da * db
            dbb = daa
            dab = -daa
    elif k == oc.POLYGAMMA_KIND and wb:  # polygamma(n, x): n = a is a constant
        db = polygamma(a + 1.0, b)
        if second:
            dbb = polygamma(a + 2.0, b)
    return da, db, daa, dab, dbb


@_jit
def binary_rule(code, a, b, wa, wb):
    """(value, da, db, daa, dab, dbb) of binary op `code` at (a, b); wa/wb as in
    `binary_partials` (all five are returned, unwanted ones 0)."""
    v = binary_value(code, a, b)
    # no branch around the call (measured ~5% faster): with wa = wb = False the partials part
    # skips its costly work itself
    da, db, daa, dab, dbb = binary_partials(code, a, b, v, wa, wb, wa or wb)
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


@_ijit
def select_partials(c):
    """(d/dc, d/da, d/db) of SELECT at condition value c (traceable: no `if` on c)."""
    t = (c != 0.0) * 1.0
    return 0.0, t, 1.0 - t


@_jit
def select_rule(c, a, b):
    """(value, d/dc, d/da, d/db) of SELECT: a where the condition value c is nonzero, else b."""
    dc, da, db = select_partials(c)
    return (a if c != 0.0 else b), dc, da, db
