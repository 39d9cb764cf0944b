"""One-call kernels of the direct sparse Hessian (`direct.py`) for tapes with a run plan, swept
in one thread and without guards (`sparse._fusable`); their arguments come from
`sparse._sweep_args`.

- `sparse_values`: forward sweep, reverse sweep and direct program in one serial call (three
  calls from Python cost a 10^3-input sparse Hessian several microseconds more);
- `hessian`: the dense Hessian in one parallel region: one thread runs the same sweeps and
  program while the others zero the (n, n) result, then it zeroes its own share of the rows.
  Zeroing 8n^2 bytes is most of such a Hessian (10^3 inputs: ~290 us on one core, against
  ~25 us for the sparse entries), so sweeping first and zeroing after on all threads would
  leave the other threads idle during the sweeps.

Both give the entries of `HessianPlan.values` bitwise (the same kernels).
"""
import numpy as np
from numba import njit, prange

from . import direct, run_sweeps
from .dense_out import scatter_rows, stream_zero_rows, zero_rows


@njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def hessian(code, param, eptr, arg, coef, tptr, n_in, x, lin_ready, val, d1, d2, seg, kind,
            base, stride, flags, const, skip, out, w, adj, ud, g_in, n_gval, ggptr, gcnt, goff,
            gdst, gsrc, gedge, term_t, term_op, hgptr, hcnt, hoff, hdst, pa, pb, pterm, hzero,
            upper, lower, pptr, piece, par, c, data, indptr, indices, H, own_rows, n_parts):
    """H (n, n) <- the Hessian of sum_k w[k] y[k] at x, from the entries on the pattern
    (indptr, indices) that the direct program writes into data (nnz,); val, d1, d2, adj are
    the point arrays (the forward and reverse sweeps of `run_sweeps` write them; the forward
    sweep skips the runs marked in skip, `run_sweeps.forward_some`), ud and c the direct
    program's work arrays (ud[:len(d1)] is d1). Part 0 of n_parts sweeps and then zeroes
    the last own_rows rows; the other parts zero the rows before them. Returns whether every
    entry is finite (else H is not complete: the caller takes another path)."""
    n = H.shape[0]
    shared = n - own_rows
    for part in prange(n_parts):
        if part == 0:
            run_sweeps.forward_some(code, param, eptr, arg, coef, tptr, n_in, x, True,
                                    lin_ready, val, d1, d2, seg, kind, base, stride, flags,
                                    const, skip)
            run_sweeps.reverse1(eptr, arg, d1, n_in, out, w, adj, code, seg, kind, base, stride,
                                flags, const)
            direct.direct_values(ud, arg.shape[0], d2, n_in, adj, g_in,
                                 n_gval, ggptr, gcnt, goff, gdst, gsrc, gedge, term_t, term_op,
                                 hgptr, hcnt, hoff, hdst, pa, pb, pterm, hzero, upper, lower,
                                 pptr, piece, par, c, data)
            if n_parts > 1:  # keeps the sweeps' arrays in this core's cache for the next call
                stream_zero_rows(H, shared, n)
            else:  # alone, the faster ordinary stores: measured 380 against 416 us at 10^3
                zero_rows(H, shared, n)
            # its own rows' entries while the other threads still zero theirs
            scatter_rows(H, indptr, indices, data, shared, n)
        else:
            zero_rows(H, (part - 1) * shared // (n_parts - 1), part * shared // (n_parts - 1))
    for k in range(data.shape[0]):
        if not np.isfinite(data[k]):
            return False
    scatter_rows(H, indptr, indices, data, 0, shared)
    return True


@njit(cache=True, error_model="numpy", nogil=True)
def sparse_values(code, param, eptr, arg, coef, tptr, n_in, x, lin_ready, val, d1, d2, seg,
                  kind, base, stride, flags, const, skip, out, w, adj, ud, g_in, n_gval, ggptr,
                  gcnt, goff, gdst, gsrc, gedge, term_t, term_op, hgptr, hcnt, hoff, hdst, pa,
                  pb, pterm, hzero, upper, lower, pptr, piece, par, c, data):
    """The sparse Hessian's entries (data (nnz,)) as `hessian` computes them, in one serial
    call (arguments as there)."""
    run_sweeps.forward_some(code, param, eptr, arg, coef, tptr, n_in, x, True, lin_ready, val,
                            d1, d2, seg, kind, base, stride, flags, const, skip)
    run_sweeps.reverse1(eptr, arg, d1, n_in, out, w, adj, code, seg, kind, base, stride, flags,
                        const)
    direct.direct_values(ud, arg.shape[0], d2, n_in, adj, g_in, n_gval, ggptr, gcnt, goff, gdst,
                         gsrc, gedge, term_t, term_op, hgptr, hcnt, hoff, hdst, pa, pb, pterm,
                         hzero, upper, lower, pptr, piece, par, c, data)
