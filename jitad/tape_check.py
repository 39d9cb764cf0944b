"""The structural check of a tape, compiled: one pass over the ops, no temporaries.

`structure` verifies every invariant the sweeps rely on beyond dtypes and lengths (which
`tape_io.validate` checks in Python before calling it, so the index reads below that are not
guarded by an explicit test are in range by those checks). It returns (0, 0) for a valid
tape, else (error code, position); `tape_io` turns the pair into a ValueError message. A
numpy version cost about 200 us on a 64-op tape (a third of recording it) and several
slot-sized temporaries on large ones; this kernel costs a few microseconds and none.
It reads uint32 views of the int32 index arrays (numba adds a negative-index wraparound to
every access through a signed index: 15% of this pass); a negative index reads as one
>= 2**31, outside every range checked here, so the same tapes fail with the same codes.
"""
from numba import njit

from . import opcodes as oc

OK = 0
BAD_CODE = 1         # position: op
BAD_EPTR = 2         # op whose edge offsets are out of order or past the edge count
BAD_EDGE_COUNT = 3   # op
BAD_ARG = 4          # edge whose operand is not an input or an earlier slot
BAD_TPTR = 5         # op whose term offsets are out of order or past the term count
BAD_TERM_COUNT = 6   # op
BAD_TA = 7           # term whose first edge is not the op's pattern
BAD_TB = 8           # term whose second edge is not the op's pattern
BAD_OUT = 9          # output index


@njit(cache=True, error_model="numpy", nogil=True)
def structure(n_in, code, eptr, arg, tptr, ta, tb, out, valid, edge_count, term_count,
              term_local):
    """(error, position) of the first violated invariant, (0, 0) when there is none.

    Lengths are checked by the caller: code (n_ops,), eptr/tptr (n_ops + 1,), ta/tb of one
    length; valid/edge_count/term_count (256,) and term_local (256, 3, 2) per op code.
    """
    n_ops = code.shape[0]
    n_edges = arg.shape[0]
    n_terms = ta.shape[0]
    e1 = 0
    t1 = 0
    for i in range(n_ops):
        c = code[i]
        if not valid[c]:
            return BAD_CODE, i
        e0 = e1
        if eptr[i] != e0:
            return BAD_EPTR, i
        e1 = eptr[i + 1]
        if e1 < e0 or e1 > n_edges:
            return BAD_EPTR, i
        ne = e1 - e0
        want = edge_count[c]
        if (want >= 0 and ne != want) or (c == oc.DOT and ne % 2 != 0):
            return BAD_EDGE_COUNT, i
        for e in range(e0, e1):
            a = arg[e]
            if a < 0 or a >= n_in + i:
                return BAD_ARG, e
        t0 = t1
        if tptr[i] != t0:
            return BAD_TPTR, i
        t1 = tptr[i + 1]
        if t1 < t0 or t1 > n_terms:
            return BAD_TPTR, i
        nt = ne // 2 if c == oc.DOT else term_count[c]
        if t1 - t0 != nt:
            return BAD_TERM_COUNT, i
        for k in range(nt):
            if c == oc.DOT:
                pa = 2 * k
                pb = 2 * k + 1
            else:
                pa = term_local[c, k, 0]
                pb = term_local[c, k, 1]
            if ta[t0 + k] != e0 + pa:
                return BAD_TA, t0 + k
            if tb[t0 + k] != e0 + pb:
                return BAD_TB, t0 + k
    if eptr[n_ops] != e1 or e1 != n_edges:
        return BAD_EPTR, n_ops
    if tptr[n_ops] != t1 or t1 != n_terms:
        return BAD_TPTR, n_ops
    n_slots = n_in + n_ops
    for k in range(out.shape[0]):
        if out[k] < 0 or out[k] >= n_slots:
            return BAD_OUT, k
    return OK, 0
