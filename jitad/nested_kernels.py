"""Numba kernels of `nested.py` (recording-time helpers, listed in kernel_cache.KERNEL_SOURCES;
kept apart so that edits to nested.py's Python logic do not drop the cached sweeps)."""
import numpy as np
from numba import njit

from . import rules

_jit = njit(cache=True, error_model="numpy", nogil=True)


@_jit
def polygamma_values(n, x):
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = rules.polygamma(n[i], x[i])
    return out


@_jit
def reach(eptr, argrel, seed, forward):
    """Local slots reached from the seeds: forward (depends on a seed) or backward (reaches a
    seed through consumers). eptr (n+1,) local edge offsets, argrel local operand or -1."""
    n = seed.shape[0]
    on = seed.copy()
    if forward:
        for i in range(n):
            if not on[i]:
                for e in range(eptr[i], eptr[i + 1]):
                    if argrel[e] >= 0 and on[argrel[e]]:
                        on[i] = True
                        break
    else:
        for i in range(n - 1, -1, -1):
            if on[i]:
                for e in range(eptr[i], eptr[i + 1]):
                    if argrel[e] >= 0:
                        on[argrel[e]] = True
    return on


@_jit
def support(tgt, srcl, seed_nz):
    """(supp, in_supp) (L, k) bool: the directions a slot's derivative may be nonzero in, and
    those reaching it through an edge. Edges (tgt, srcl) come in sweep order of their targets."""
    supp = seed_nz.copy()
    in_supp = np.zeros(seed_nz.shape, np.bool_)
    k = seed_nz.shape[1]
    for e in range(tgt.shape[0]):
        t = tgt[e]
        s = srcl[e]
        for j in range(k):
            if supp[s, j]:
                supp[t, j] = True
                in_supp[t, j] = True
    return supp, in_supp
