"""Direct sparse Hessian accumulation: the sparse Hessian without compressed sweeps.

The Hessian of sum_r w_r y_r is a sum over second-order terms (p, q) of live ops of
adj_op * d2_t * (g_p g_q^T + g_q g_p^T), g_p the gradient of the slot of edge p with respect to
the inputs. Those gradients are sparse with known index sets (`sparsity.py`), so a plan built
once stores, for the slots that feed a term ("needed" slots), where each operand gradient entry
lands in its consumer's gradient (`gmap`), and for each term the Hessian entries its products
land in (`pair_*`, lower triangle only, mirrored at the end so the result is exactly
symmetric). At a point: one forward pass over the needed ops propagating sparse gradients, one
pass over the terms. Memory and work are the sizes of those maps, which `sparse.py` checks
against a budget before building them (a dense prefix chain would make them quadratic).
"""
import numpy as np
from numba import njit

from .coloring import position as _position
from .sparsity import _sets_sweep, live_ops

_jit = njit(cache=True, error_model="numpy", nogil=True)


@_jit
def direct_plan(code, eptr, arg, tptr, ta, tb, n_in, out, zero_d, h_indptr, h_indices, budget):
    """Maps for `direct_values`, or an empty `gptr` when they would exceed `budget` entries.

    Returns (need_ops int32, gptr int64 (n_slots+1,), gmap int32, mptr int64 (n_ops+1,),
    term_ops int32, pptr int64 (n_terms+1,), pair_a, pair_b, pair_t int32, pair_m uint8,
    upper, lower int64): gradient of slot s at gval[gptr[s]:gptr[s+1]]; the ops need_ops (in
    order) propagate gradients, op i's edges scattering through gmap[mptr[i]:mptr[i+1]]; the
    ops term_ops accumulate: term t adds c * pair_m * gval[pair_a] * gval[pair_b] into
    data[pair_t] for its pairs pptr[t]:pptr[t+1]; finally data[upper] = data[lower].
    """
    n_ops = eptr.shape[0] - 1
    n_slots = n_in + n_ops
    n_terms = ta.shape[0]
    live = live_ops(code, eptr, arg, n_in, out, zero_d)
    need = np.zeros(n_slots, np.uint8)
    for i in range(n_ops - 1, -1, -1):
        if not live[i]:
            continue
        for t in range(tptr[i], tptr[i + 1]):
            need[arg[ta[t]]] = 1
            need[arg[tb[t]]] = 1
        if need[n_in + i] and not zero_d[code[i]]:
            for e in range(eptr[i], eptr[i + 1]):
                need[arg[e]] = 1
    start, size, arena, _, _, _, _, _ = _sets_sweep(code, eptr, arg, tptr, ta, tb, n_in, live,
                                                    need, False)
    op_need = np.zeros(n_ops, np.uint8)
    gptr = np.zeros(n_slots + 1, np.int64)
    mptr = np.zeros(n_ops + 1, np.int64)
    for s in range(n_slots):
        gptr[s + 1] = gptr[s] + (size[s] if need[s] else 0)
    for i in range(n_ops):
        c = 0
        if need[n_in + i] and live[i] and size[n_in + i] > 0:
            op_need[i] = 1
            for e in range(eptr[i], eptr[i + 1]):
                c += size[arg[e]]
        mptr[i + 1] = mptr[i] + c
    total = mptr[n_ops] + gptr[n_slots]
    # pair counts
    pptr = np.zeros(n_terms + 1, np.int64)
    for i in range(n_ops):
        for t in range(tptr[i], tptr[i + 1]):
            k = 0
            if live[i]:
                sp = size[arg[ta[t]]]
                sq = size[arg[tb[t]]]
                k = sp * (sp + 1) // 2 if ta[t] == tb[t] else sp * sq
            pptr[t + 1] = pptr[t] + k
    total += 3 * pptr[n_terms]
    if budget >= 0 and total > budget:
        return (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int32), mptr,
                np.zeros(0, np.int32), pptr, np.zeros(0, np.int32), np.zeros(0, np.int32),
                np.zeros(0, np.int32), np.zeros(0, np.uint8), np.zeros(0, np.int64),
                np.zeros(0, np.int64))
    gmap = np.empty(mptr[n_ops], np.int32)
    pos = np.zeros(n_in, np.int64)
    for i in range(n_ops):
        if not op_need[i]:
            continue
        s = n_in + i
        for u in range(size[s]):
            pos[arena[start[s] + u]] = u
        m = mptr[i]
        for e in range(eptr[i], eptr[i + 1]):
            t = arg[e]
            for u in range(size[t]):
                gmap[m] = pos[arena[start[t] + u]]
                m += 1
    n_pairs = pptr[n_terms]
    pair_a = np.empty(n_pairs, np.int32)  # sizes checked against the int32 range by sparse.py
    pair_b = np.empty(n_pairs, np.int32)
    pair_t = np.empty(n_pairs, np.int32)
    pair_m = np.empty(n_pairs, np.uint8)
    for i in range(n_ops):
        if not live[i]:
            continue
        for t in range(tptr[i], tptr[i + 1]):
            p = arg[ta[t]]
            q = arg[tb[t]]
            same = ta[t] == tb[t]
            k = pptr[t]
            for u in range(size[p]):
                a = arena[start[p] + u]
                for v in range(size[q]):
                    b = arena[start[q] + v]
                    if same and a < b:
                        continue
                    r = max(a, b)
                    col = min(a, b)
                    pair_a[k] = gptr[p] + u
                    pair_b[k] = gptr[q] + v
                    pair_t[k] = _position(h_indices, h_indptr[r], h_indptr[r + 1], col)
                    pair_m[k] = 2 if (a == b and not same) else 1
                    k += 1
    # mirror the strict upper triangle from the lower one
    nnz = h_indices.shape[0]
    upper = np.empty(nnz, np.int64)
    lower = np.empty(nnz, np.int64)
    n_up = 0
    for r in range(h_indptr.shape[0] - 1):
        for kk in range(h_indptr[r], h_indptr[r + 1]):
            col = h_indices[kk]
            if col > r:
                upper[n_up] = kk
                lower[n_up] = _position(h_indices, h_indptr[col], h_indptr[col + 1], r)
                n_up += 1
    # the ops each pass visits, in order
    need_ops = np.nonzero(op_need)[0].astype(np.int32)
    n_term_ops = 0
    for i in range(n_ops):
        if live[i] and pptr[tptr[i + 1]] > pptr[tptr[i]]:
            n_term_ops += 1
    term_ops = np.empty(n_term_ops, np.int32)
    n_term_ops = 0
    for i in range(n_ops):
        if live[i] and pptr[tptr[i + 1]] > pptr[tptr[i]]:
            term_ops[n_term_ops] = i
            n_term_ops += 1
    return (need_ops, gptr, gmap, mptr, term_ops, pptr, pair_a, pair_b, pair_t, pair_m,
            upper[:n_up].copy(), lower[:n_up].copy())


@_jit
def direct_values(eptr, arg, d1, tptr, d2, n_in, adj, need_ops, gptr, gmap, mptr, term_ops, pptr,
                  pair_a, pair_b, pair_t, pair_m, upper, lower, gval, data):
    """Hessian entries into data (nnz,) from the point's partials d1, d2 and first-order
    adjoints adj (n_slots,); gval (gptr[-1],) is a work array."""
    for r in range(n_in):
        if gptr[r + 1] > gptr[r]:
            gval[gptr[r]] = 1.0
    for i in need_ops:
        s = n_in + i
        g0 = gptr[s]
        for u in range(g0, gptr[s + 1]):
            gval[u] = 0.0
        m = mptr[i]
        for e in range(eptr[i], eptr[i + 1]):
            t = arg[e]
            de = d1[e]
            for u in range(gptr[t], gptr[t + 1]):
                gval[g0 + gmap[m]] += de * gval[u]
                m += 1
    data[:] = 0.0
    for i in term_ops:
        a = adj[n_in + i]
        if a == 0.0:
            continue
        for t in range(tptr[i], tptr[i + 1]):
            c = a * d2[t]
            for k in range(pptr[t], pptr[t + 1]):
                data[pair_t[k]] += (c * pair_m[k]) * gval[pair_a[k]] * gval[pair_b[k]]
    for k in range(upper.shape[0]):
        data[upper[k]] = data[lower[k]]
