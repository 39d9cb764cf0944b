"""Packs: a tape's and its run plan's constant arrays concatenated by dtype, for the one-call
kernels of small tapes: `gradient`, `hvp_at` and `value` of `run_sweeps` (with a plan) and
`value_and_gradient`, `hvp_at` and `value` of `sweeps` (without).

A compiled call unboxes each array argument, 80-120 ns apiece on this machine: the 23 arguments
of the one-call gradient cost 1.9-2.7 us per call, as much as half its kernel on a 10^3-input
Rosenbrock. The 15 constant arrays (five dtypes) go into four, built once per tape; `unpack`,
inlined into the kernels, slices them back (views, no copies), so the kernels they call keep
their signatures and compiled code. Packs are built only for tapes under runs.PARALLEL_OPS ops
(those the one-call kernels sweep), so the copies of the index arrays stay small.
"""
import numpy as np
from numba import njit

from . import runs

# U[:HEADER]: n_in, n_ops, n_edges, n_terms, n_out, and R, the run plan's segment count
HEADER = 6


class Pack:
    """arrays = (B, U, I, C): B uint8 [code | kind | flags | value-free mask] (R each but
    code); U uint32 [header | eptr | arg | tptr | ta | tb | out]; I int64 [seg | base |
    stride] (R+1, 2R, 2R); C float64 [param | coef | const (3R) | 1.0 (the weight of a
    gradient's single output)]. skips: whether the plan has value-free runs
    (`runs.Plan.value_free`) for a derivative-only sweep to skip."""

    def __init__(self, tape, plan=None):
        if plan is None:  # for the per-op kernels of sweeps.py: R = 0
            plan = _NO_PLAN
            free = runs.SKIP_NONE
        else:
            free = plan.value_free(tape.code, tape.eptr, tape.arg, tape.n_inputs)
        self.skips = bool(free.shape[0])
        R = len(plan)
        B = np.concatenate((tape.code, plan.kind.view(np.uint8), plan.flags.view(np.uint8),
                            free if self.skips else np.zeros(R, np.uint8)))
        header = np.array([tape.n_inputs, tape.code.shape[0], tape.arg.shape[0],
                           tape.ta.shape[0], tape.out.shape[0], R], dtype=np.uint32)
        U = np.concatenate((header, tape._ueptr, tape._uarg, tape._utptr, tape._uta, tape._utb,
                            tape._uout))
        I = np.concatenate((plan.seg, plan.base.ravel(), plan.stride.ravel()))
        C = np.concatenate((tape.param, tape.coef, plan.const.ravel(), [1.0]))
        assert (B.dtype, U.dtype, I.dtype, C.dtype) == (np.uint8, np.uint32, np.int64,
                                                         np.float64)
        self.arrays = (B, U, I, C)


_NO_PLAN = runs.Plan([0], [], np.zeros((0, 2)), np.zeros((0, 2)))


@njit(cache=True, nogil=True, inline="always")
def unpack(B, U, I, C):
    """(n_in, code, param, eptr, arg, coef, tptr, ta, tb, out, seg, kind, base, stride, flags,
    const, free, one): views of a `Pack`'s arrays, as the Tape and its plan hold them."""
    n_in = np.int64(U[0])
    n_ops = np.int64(U[1])
    n_e = np.int64(U[2])
    n_t = np.int64(U[3])
    m = np.int64(U[4])
    R = np.int64(U[5])
    a = HEADER
    eptr = U[a:a + n_ops + 1]
    a += n_ops + 1
    arg = U[a:a + n_e]
    a += n_e
    tptr = U[a:a + n_ops + 1]
    a += n_ops + 1
    ta = U[a:a + n_t]
    tb = U[a + n_t:a + 2 * n_t]
    out = U[a + 2 * n_t:a + 2 * n_t + m]
    code = B[:n_ops]
    kind = B[n_ops:n_ops + R].view(np.int8)
    flags = B[n_ops + R:n_ops + 2 * R].view(np.int8)
    free = B[n_ops + 2 * R:n_ops + 3 * R]
    seg = I[:R + 1]
    base = I[R + 1:3 * R + 1].reshape((R, 2))
    stride = I[3 * R + 1:5 * R + 1].reshape((R, 2))
    param = C[:n_ops]
    coef = C[n_ops:n_ops + n_e]
    c = n_ops + n_e + 3 * R
    const = C[n_ops + n_e:c].reshape((R, 3))
    one = C[c:c + 1]
    return (n_in, code, param, eptr, arg, coef, tptr, ta, tb, out, seg, kind, base, stride,
            flags, const, free, one)
