"""Packs: a tape's and its run plan's constant arrays in one byte buffer, for the one-call
kernels of small tapes: `gradient`, `hvp_at` and `value` of `run_sweeps` (with a plan) and
`value_and_gradient`, `hvp_at` and `value` of `sweeps` (without).

A compiled call unboxes each array argument, 50-120 ns apiece on these machines: the 23
arguments of the one-call gradient cost 1.9-2.7 us per call, as much as half its kernel on a
10^3-input Rosenbrock. The 15 constant arrays (five dtypes) go into one uint8 array, built once
per tape, in sections by dtype, each starting at a multiple of 8 bytes; `unpack`, inlined into
the kernels, views them back (no copies), so the kernels they call keep their signatures and
compiled code. Packs are built only for tapes under runs.PARALLEL_OPS ops (those the one-call
kernels sweep), so the copies of the index arrays stay small.
"""
import numpy as np
from numba import njit

from . import runs

# the first HEADER int64: n_in, n_ops, n_edges, n_terms, n_out, and R, the plan's segment count
HEADER = 6


def _pad8(nbytes):
    return -nbytes % 8


class Pack:
    """arrays = (P,): P uint8 holds, at offsets that are multiples of 8, the sections
    header (int64, HEADER); C float64 [param | coef | const (3R) | 1.0 (the weight of a
    gradient's single output)]; I int64 [seg | base | stride] (R+1, 2R, 2R); U uint32 [eptr |
    arg | tptr | ta | tb | out]; B uint8 [code | kind | flags | value-free mask] (R each but
    code). skips: whether the plan has value-free runs (`runs.Plan.value_free`) for a
    derivative-only sweep to skip."""

    def __init__(self, tape, plan=None):
        if plan is None:  # for the per-op kernels of sweeps.py: R = 0
            plan = _NO_PLAN
            free = runs.SKIP_NONE
        else:
            free = plan.value_free(tape.code, tape.eptr, tape.arg, tape.n_inputs)
        self.skips = bool(free.shape[0])
        R = len(plan)
        header = np.array([tape.n_inputs, tape.code.shape[0], tape.arg.shape[0],
                           tape.ta.shape[0], tape.out.shape[0], R], dtype=np.int64)
        C = np.concatenate((tape.param, tape.coef, plan.const.ravel(), [1.0]))
        I = np.concatenate((plan.seg, plan.base.ravel(), plan.stride.ravel()))
        U = np.concatenate((tape._ueptr, tape._uarg, tape._utptr, tape._uta, tape._utb,
                            tape._uout))
        B = np.concatenate((tape.code, plan.kind.view(np.uint8), plan.flags.view(np.uint8),
                            free if self.skips else np.zeros(R, np.uint8)))
        assert (C.dtype, I.dtype, U.dtype, B.dtype) == (np.float64, np.int64, np.uint32,
                                                         np.uint8)
        parts = []
        for a in (header, C, I, U, B):
            parts += [a.view(np.uint8), np.zeros(_pad8(a.nbytes), np.uint8)]
        self.arrays = (np.concatenate(parts),)


_NO_PLAN = runs.Plan([0], [], np.zeros((0, 2)), np.zeros((0, 2)))


@njit(cache=True, nogil=True, inline="always")
def unpack(P):
    """(n_in, code, param, eptr, arg, coef, tptr, ta, tb, out, seg, kind, base, stride, flags,
    const, free, one): views of a `Pack`'s buffer, as the Tape and its plan hold them."""
    H = P[:8 * HEADER].view(np.int64)
    n_in = H[0]
    n_ops = H[1]
    n_e = H[2]
    n_t = H[3]
    m = H[4]
    R = H[5]
    a = 8 * HEADER
    nC = n_ops + n_e + 3 * R + 1
    C = P[a:a + 8 * nC].view(np.float64)
    a += 8 * nC
    nI = 5 * R + 1
    I = P[a:a + 8 * nI].view(np.int64)
    a += 8 * nI
    nU = 2 * (n_ops + 1) + n_e + 2 * n_t + m
    U = P[a:a + 4 * nU].view(np.uint32)
    a += 4 * nU
    a += -a % 8
    B = P[a:a + n_ops + 3 * R]
    eptr = U[:n_ops + 1]
    a = n_ops + 1
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
