"""Compiled guard checks: the forward sweep followed by the check of every recorded guard.

A guard says that a comparison made while recording (`val[a] <kind> val[b]`, or against the
constant c when b < 0) must have the recorded outcome for the tape to describe the function at
a point. The check runs in the same compiled call as the forward sweep, so a guarded tape costs
one comparison per guard per point. Arrays are validated in `tape.py` (no bounds checks here).
"""
import numpy as np
from numba import njit

from . import sweeps
from .rules import compare

_jit = njit(cache=True, error_model="numpy", nogil=True)


@_jit
def check(val, gi, gc):
    """Index of the first guard whose outcome at the slot values val differs from the recorded
    one, -1 when all hold. gi (k, 4) int32 rows (kind, a slot, b slot or -1, outcome), gc (k,)
    the constants (`Tape._guard_pack`: two arrays cost less to pass than six)."""
    for g in range(gi.shape[0]):
        j = gi[g, 2]
        b = val[j] if j >= 0 else gc[g]
        if compare(gi[g, 0], val[gi[g, 1]], b) != (gi[g, 3] != 0):
            return g
    return -1


@_jit
def forward(code, param, eptr, arg, coef, tptr, n_in, x, partials, val, d1, d2, gi, gc):
    """`sweeps.forward`, then the guard check: returns the first failing guard or -1."""
    sweeps.forward(code, param, eptr, arg, coef, tptr, n_in, x, partials, val, d1, d2)
    return check(val, gi, gc)


@_jit
def value_and_gradient(code, param, eptr, arg, coef, tptr, n_in, x, out, val, d1, d2, adj,
                       gi, gc):
    """(y, -1) with the gradient in adj, as `sweeps.value_and_gradient`; (nan, g) without the
    reverse sweep when guard g fails."""
    sweeps.forward(code, param, eptr, arg, coef, tptr, n_in, x, True, val, d1, d2)
    g = check(val, gi, gc)
    if g >= 0:
        return np.nan, g
    w = np.ones(1)
    sweeps.reverse1(eptr, arg, d1, n_in, out, w, adj)
    return val[out[0]], -1
