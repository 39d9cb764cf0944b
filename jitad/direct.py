"""Direct sparse Hessian accumulation: the sparse Hessian without compressed sweeps.

The Hessian of sum_r w_r y_r is a sum over second-order terms (p, q) of live ops of
adj_op * d2_t * (g_p g_q^T + g_q g_p^T), g_p the gradient of the slot of edge p with respect to
the inputs. Those gradients are sparse with known index sets (`sparsity.py`), so a plan built
once compiles both passes into flat programs over a gradient-value array gval, where slot s
keeps its gradient entries (one per index of its set):

- gradients: every gradient entry j of a needed op is a dot product over (edge e, operand
  entry k) pairs, gval[j] = sum d1[e] * gval[k] (inputs have gval = 1); an entry that is one
  partial of an input, d1[e] * 1, is not copied but read from d1 (gval lives in one array
  after d1, so one index reaches either);
- Hessian: every lower-triangle entry of the pattern is a sum over (term, a, b) triples of
  c_term * gval[a] * gval[b], c_term = adj_op * d2_t; the strict upper triangle is copied
  from it at the end, so the result is exactly symmetric.

Each output entry is written once from a register accumulator (no zeroing, no read-modify-
write of scattered entries), with operands in the per-op order. Entries are grouped by
dependency level and operand count (`_grouped`): every group is a loop with a fixed trip count
over independent entries, which large programs split over the threads. Indices are uint32
(numba's negative-index wraparound on signed ones made these gathers 1.4-1.7x slower). Memory
and work are the sizes of those programs, which `sparse.py` checks against a budget before
building them (a dense prefix chain would make them quadratic).
"""
import numpy as np
from numba import njit, prange

from .coloring import position as _position
from .sparsity import _sets_sweep, live_ops

_jit = njit(cache=True, error_model="numpy", nogil=True)


@_jit
def _needed_slots(code, eptr, arg, tptr, ta, tb, n_in, live, zero_d):
    """Slots whose gradient some live term reads, directly or through the ops feeding it."""
    n_ops = eptr.shape[0] - 1
    need = np.zeros(n_in + n_ops, np.uint8)
    for i in range(n_ops - 1, -1, -1):
        if not live[i]:
            continue
        for t in range(tptr[i], tptr[i + 1]):
            need[arg[ta[t]]] = 1
            need[arg[tb[t]]] = 1
        if need[n_in + i] and not zero_d[code[i]]:
            for e in range(eptr[i], eptr[i + 1]):
                need[arg[e]] = 1
    return need


@_jit
def _gradient_program(eptr, arg, n_in, op_need, gptr, start, size, arena):
    """(sptr int64 (G - g_in + 1,), src int32, edge int32): entry g_in + j of gval is the sum
    over k in sptr[j]:sptr[j+1] of d1[edge[k]] * gval[src[k]], in edge order."""
    n_ops = eptr.shape[0] - 1
    g_in = gptr[n_in]
    sptr = np.zeros(gptr[n_in + n_ops] - g_in + 1, np.int64)
    pos = np.zeros(n_in, np.int64)
    for fill in range(2):  # count, then fill
        if fill:
            for j in range(sptr.shape[0] - 1):
                sptr[j + 1] += sptr[j]
            nxt = sptr[:-1].copy()
            src = np.empty(sptr[-1], np.int32)  # sizes checked against int32 by sparse.py
            edge = np.empty(sptr[-1], np.int32)
        for i in range(n_ops):
            if not op_need[i]:
                continue
            s = n_in + i
            for u in range(size[s]):
                pos[arena[start[s] + u]] = u
            for e in range(eptr[i], eptr[i + 1]):
                t = arg[e]
                for u in range(size[t]):
                    j = gptr[s] + pos[arena[start[t] + u]] - g_in
                    if fill:
                        src[nxt[j]] = gptr[t] + u
                        edge[nxt[j]] = e
                        nxt[j] += 1
                    else:
                        sptr[j + 1] += 1
    return sptr, src, edge


@_jit
def direct_plan(code, eptr, arg, tptr, ta, tb, n_in, out, zero_d, h_indptr, h_indices, budget):
    """Programs for `direct_values`, or an empty `ggptr` when they would exceed `budget`
    entries.

    Returns (g_in, n_gval, ggptr, gcnt, goff, gdst, gsrc, gedge, term_t, term_op, hgptr, hcnt,
    hoff, hdst, pa, pb, pterm, hzero, upper, lower, pptr, piece, par). The programs work on one
    array ud = [d1 (n_edges,) | gval (n_gval,)]: gval holds 1.0 in its first g_in entries (the
    inputs' own gradients), and a gradient entry that is one partial of an input is read from
    d1 itself. gdst, gsrc, pa, pb index ud; gedge indexes d1. The gradient program, in groups
    (`_grouped`) of one level and operand count, sets ud[gdst[m]] = sum_i d1[gedge[k_i]] *
    ud[gsrc[k_i]]; compact term q is term term_t[q] of op term_op[q], with c[q] = its op's
    adjoint * d2; the Hessian program, in groups of one count, sets data[hdst[m]] = sum_i
    c[pterm[k_i]] * ud[pa[k_i]] * ud[pb[k_i]], data[hzero] = 0, and finally data[upper] =
    data[lower]; pptr, piece, par split the programs into indexed and affine pieces
    (`_pieces`).
    """
    n_ops = eptr.shape[0] - 1
    n_slots = n_in + n_ops
    live = live_ops(code, eptr, arg, n_in, out, zero_d)
    need = _needed_slots(code, eptr, arg, tptr, ta, tb, n_in, live, zero_d)
    start, size, arena, _, _, _, _, _ = _sets_sweep(code, eptr, arg, tptr, ta, tb, n_in, live,
                                                    need, False)
    op_need = np.zeros(n_ops, np.uint8)
    gptr = np.zeros(n_slots + 1, np.int64)
    n_src = 0
    for s in range(n_slots):
        gptr[s + 1] = gptr[s] + (size[s] if need[s] else 0)
    for i in range(n_ops):
        if need[n_in + i] and live[i] and size[n_in + i] > 0:
            op_need[i] = 1
            for e in range(eptr[i], eptr[i + 1]):
                n_src += size[arg[e]]
    # pairs per term (a diagonal entry from two different operands counts twice)
    n_pairs = 0
    n_q = 0
    for i in range(n_ops):
        if not live[i]:
            continue
        for t in range(tptr[i], tptr[i + 1]):
            sp = size[arg[ta[t]]]
            sq = size[arg[tb[t]]]
            if sp * sq > 0:
                n_q += 1
                n_pairs += sp * (sp + 1) // 2 if ta[t] == tb[t] else 2 * sp * sq
    g_in = gptr[n_in]
    if budget >= 0 and 2 * n_src + gptr[n_slots] + 3 * n_pairs + 2 * n_q > budget:
        none = np.zeros(0, np.int64)
        e = np.zeros(0, np.uint32)
        return (g_in, gptr[n_slots], none, none, none, e, e, e, e, e, none, none, none, e, e,
                e, e, e, e, e, none, np.zeros((0, 3), np.int64), none)
    sptr, src, edge = _gradient_program(eptr, arg, n_in, op_need, gptr, start, size, arena)
    term_t = np.empty(n_q, np.int32)
    term_op = np.empty(n_q, np.int32)
    nnz = h_indices.shape[0]
    hptr = np.zeros(nnz + 1, np.int64)
    for fill in range(2):  # count, then fill: triples grouped by the entry they land in
        if fill:
            for h in range(nnz):
                hptr[h + 1] += hptr[h]
            nxt = hptr[:-1].copy()
            pa = np.empty(hptr[nnz], np.int32)
            pb = np.empty(hptr[nnz], np.int32)
            pterm = np.empty(hptr[nnz], np.int32)
        q_id = 0
        for i in range(n_ops):
            if not live[i]:
                continue
            for t in range(tptr[i], tptr[i + 1]):
                p = arg[ta[t]]
                q = arg[tb[t]]
                if size[p] * size[q] == 0:
                    continue
                if fill:
                    term_t[q_id] = t
                    term_op[q_id] = i
                same = ta[t] == tb[t]
                for u in range(size[p]):
                    a = arena[start[p] + u]
                    for v in range(size[q]):
                        b = arena[start[q] + v]
                        if same and a < b:
                            continue
                        r = max(a, b)
                        h = _position(h_indices, h_indptr[r], h_indptr[r + 1], min(a, b))
                        reps = 2 if (a == b and not same) else 1
                        for _ in range(reps):
                            if fill:
                                k = nxt[h]
                                pa[k] = gptr[p] + u
                                pb[k] = gptr[q] + v
                                pterm[k] = q_id
                                nxt[h] += 1
                            else:
                                hptr[h + 1] += 1
                q_id += 1
    # the strict upper triangle mirrors the lower one
    upper = np.empty(nnz, np.int64)
    lower = np.empty(nnz, np.int64)
    is_upper = np.zeros(nnz, np.uint8)
    n_up = 0
    for r in range(h_indptr.shape[0] - 1):
        for kk in range(h_indptr[r], h_indptr[r + 1]):
            col = h_indices[kk]
            if col > r:
                upper[n_up] = kk
                lower[n_up] = _position(h_indices, h_indptr[col], h_indptr[col + 1], r)
                is_upper[kk] = 1
                n_up += 1
    # gradient entries by level (1 + the highest level they read; inputs are level 0)
    n_ent = sptr.shape[0] - 1
    level = np.zeros(n_ent, np.int64)
    for j in range(n_ent):
        lv = 0
        for k in range(sptr[j], sptr[j + 1]):
            if src[k] >= g_in:
                lv = max(lv, level[src[k] - g_in])
        level[j] = lv + 1
    # entries that are one partial of an input (d1[e] * 1) are not copied: programs read them
    # from d1 itself. Indices below address one array ud = [d1 (n_edges,) | gval (n_gval,)].
    n_edges = arg.shape[0]
    alias = np.zeros(n_ent, np.uint8)
    where = np.empty(gptr[n_slots], np.int64)
    for k in range(g_in):
        where[k] = n_edges + k
    for j in range(n_ent):
        if sptr[j + 1] - sptr[j] == 1 and src[sptr[j]] < g_in:
            alias[j] = 1
            where[g_in + j] = edge[sptr[j]]
        else:
            where[g_in + j] = n_edges + g_in + j
    order, ggptr, gcnt, operand, goff = _grouped(sptr, level, alias)
    gdst = where[order.astype(np.int64) + g_in]
    gsrc = where[src[operand]]
    gedge = edge[operand]
    # Hessian entries: one level; entries without triples are mirrored (upper) or zero
    skip = np.zeros(nnz, np.uint8)
    n_zero = 0
    for h in range(nnz):
        if hptr[h + 1] == hptr[h]:
            skip[h] = 1
            if not is_upper[h]:
                n_zero += 1
    hzero = np.empty(n_zero, np.int32)
    n_zero = 0
    for h in range(nnz):
        if skip[h] and not is_upper[h]:
            hzero[n_zero] = h
            n_zero += 1
    hdst, hgptr, hcnt, operand, hoff = _grouped(hptr, np.zeros(nnz, np.int64), skip)
    u = np.uint32  # unsigned indices: numba then skips its negative-index wraparound, which
    # made these gather loops 1.4-1.7x slower (measured with int32 and int64)
    hdst = hdst.astype(u)
    pa = where[pa[operand]].astype(u)
    pb = where[pb[operand]].astype(u)
    pterm = pterm[operand].astype(u)
    gdst = gdst.astype(u)
    gsrc = gsrc.astype(u)
    gedge = gedge.astype(u)
    term_t = term_t.astype(u)
    term_op = term_op.astype(u)
    upper = upper[:n_up].astype(u)
    lower = lower[:n_up].astype(u)
    pptr, piece, par = _pieces(ggptr, gcnt, goff, gdst, gsrc, gedge, term_t, term_op, hgptr,
                               hcnt, hoff, hdst, pa, pb, pterm, upper, lower)
    return (g_in, gptr[n_slots], ggptr, gcnt, goff, gdst, gsrc, gedge, term_t, term_op, hgptr,
            hcnt, hoff, hdst, pa, pb, pterm, hzero.astype(u), upper, lower, pptr, piece, par)


# The programs' affine pieces: stretches of at least AFFINE_MIN_LENGTH entries whose indices
# (destination and every operand's) each advance by a constant step, as the elementwise ops of
# array code lay them out, run unrolled kernels that compute the indices instead of loading
# them: Rosenbrock's 4-product Hessian entries 4.3 -> 2.1 us per 10^3 (measured). Hessian
# groups of more than AFFINE_MAX_COUNT products per entry (and gradient groups of more than 2
# operands) keep the indexed loops (a generic loop over the steps measured slower).
AFFINE_MAX_COUNT = 4
AFFINE_MIN_LENGTH = 16


@_jit
def _program_pieces(ptr, cnt_of, off, dst, ops, max_cnt):
    """Every group of a program split into pieces: (piece_ptr (G+1,) int64; piece (P, 3)
    int64: first and end position, and the offset into par of an affine piece's steps, or -1
    for an indexed piece). Group g's position m writes dst[m] from operands j < cnt_of[g] whose
    indices are ops[a, off[g] + (m - ptr[g]) * cnt + j] for each row a of ops; an affine piece
    (groups of at most max_cnt operands) is at least AFFINE_MIN_LENGTH positions over which
    every one of those indices advances by a constant step: par holds the step of dst, then
    of ops[a] for operand j at 1 + j * len(ops) + a."""
    n_groups = ptr.shape[0] - 1
    n_rows = ops.shape[0]
    piece_ptr = np.zeros(n_groups + 1, np.int64)
    piece = np.empty((ptr[n_groups] + n_groups, 3), np.int64)
    par = np.empty((ptr[n_groups] // AFFINE_MIN_LENGTH + n_groups) * (1 + n_rows * max_cnt),
                   np.int64)
    step = np.empty(1 + n_rows * max_cnt, np.int64)
    n_p = 0
    n_par = 0
    for g in range(n_groups):
        cnt = cnt_of[g]
        m0 = ptr[g]
        m1 = ptr[g + 1]
        o = off[g] - m0 * cnt
        n_s = 1 + n_rows * cnt
        m = m0
        while m < m1:
            e = m + 1
            if cnt <= max_cnt and m + 1 < m1:
                step[0] = np.int64(dst[m + 1]) - np.int64(dst[m])
                for j in range(cnt):
                    for a in range(n_rows):
                        k = o + (m + 1) * cnt + j
                        step[1 + j * n_rows + a] = ops[a, k] - ops[a, k - cnt]
                e = m + 2
                holds = True
                while e < m1 and holds:
                    holds = np.int64(dst[e]) - np.int64(dst[e - 1]) == step[0]
                    for j in range(cnt):
                        for a in range(n_rows):
                            k = o + e * cnt + j
                            holds = holds and ops[a, k] - ops[a, k - cnt] == step[
                                1 + j * n_rows + a]
                    if holds:
                        e += 1
            if e - m >= AFFINE_MIN_LENGTH:
                piece[n_p, 0] = m
                piece[n_p, 1] = e
                piece[n_p, 2] = n_par
                par[n_par:n_par + n_s] = step[:n_s]
                n_par += n_s
                n_p += 1
            elif n_p > piece_ptr[g] and piece[n_p - 1, 2] < 0:
                e = m + 1
                piece[n_p - 1, 1] = e  # extends the indexed piece before it
            else:
                e = m + 1
                piece[n_p, 0] = m
                piece[n_p, 1] = e
                piece[n_p, 2] = -1
                n_p += 1
            m = e
        piece_ptr[g + 1] = n_p
    return piece_ptr, piece[:n_p].copy(), par[:n_par].copy()


@_jit
def _pieces(ggptr, gcnt, goff, gdst, gsrc, gedge, term_t, term_op, hgptr, hcnt, hoff, hdst, pa,
            pb, pterm, upper, lower):
    """The affine and indexed pieces of the four programs of `direct_values` in one table
    (pptr, piece, par): pptr holds the piece offsets of the Hessian groups (G_h + 1), then of
    the gradient groups (G_g + 1), of the term weights (2) and of the upper-triangle copy (2);
    each program split by `_program_pieces`."""
    i64 = np.int64
    h = _program_pieces(hgptr, hcnt, hoff, hdst,
                        np.vstack((pterm.astype(i64), pa.astype(i64), pb.astype(i64))),
                        AFFINE_MAX_COUNT)
    g = _program_pieces(ggptr, gcnt, goff, gdst, np.vstack((gedge.astype(i64),
                                                            gsrc.astype(i64))), 2)
    n_q = term_t.shape[0]
    one = np.ones(1, i64)
    zero = np.zeros(1, i64)
    t = _program_pieces(np.array([0, n_q], i64), one, zero, np.arange(n_q),
                        np.vstack((term_t.astype(i64), term_op.astype(i64))), 1)
    n_u = upper.shape[0]
    u = _program_pieces(np.array([0, n_u], i64), one, zero, upper,
                        lower.astype(i64).reshape(1, n_u), 1)
    parts = (h, g, t, u)
    n_ptr = 0
    n_piece = 0
    n_par = 0
    for pp, pc, pr in parts:
        n_ptr += pp.shape[0]
        n_piece += pc.shape[0]
        n_par += pr.shape[0]
    pptr = np.empty(n_ptr, i64)
    piece = np.empty((n_piece, 3), i64)
    par = np.empty(n_par, i64)
    a = 0
    b = 0
    q = 0
    for pp, pc, pr in parts:
        pptr[a:a + pp.shape[0]] = pp + b
        piece[b:b + pc.shape[0], :2] = pc[:, :2]
        for r in range(pc.shape[0]):
            piece[b + r, 2] = pc[r, 2] + q if pc[r, 2] >= 0 else -1
        par[q:q + pr.shape[0]] = pr
        a += pp.shape[0]
        b += pc.shape[0]
        q += pr.shape[0]
    return pptr, piece, par


@_jit
def _grouped(ptr, level, skip):
    """Entries j (ptr (J+1,): entry j's operands are ptr[j]:ptr[j+1]) reordered into groups of
    one level and one operand count, skipping entries with skip[j]. Returns (order int32: entry
    of each position, gptr int64 (G+1,): positions of group g, gcnt int64 (G,),
    operand int64 (K,): operand index of position m's i-th operand at ptr-order place
    goff[g] + (m - gptr[g]) * gcnt[g] + i, goff int64 (G,)). A level's entries only read
    entries of lower levels, so groups run in order; within a group the loop has a fixed trip
    count and no branches."""
    J = ptr.shape[0] - 1
    maxc = 0
    for j in range(J):
        maxc = max(maxc, ptr[j + 1] - ptr[j])
    key = np.empty(J, np.int64)
    n_keep = 0
    for j in range(J):
        key[j] = level[j] * (maxc + 1) + (ptr[j + 1] - ptr[j])
        if skip[j]:
            key[j] = -1
        else:
            n_keep += 1
    order = np.argsort(key, kind="mergesort")[J - n_keep:]
    n_groups = 0
    for m in range(n_keep):
        if m == 0 or key[order[m]] != key[order[m - 1]]:
            n_groups += 1
    gptr = np.zeros(n_groups + 1, np.int64)
    gcnt = np.zeros(n_groups, np.int64)
    goff = np.zeros(n_groups, np.int64)
    operand = np.empty(ptr[J], np.int64)
    g = -1
    k = 0
    for m in range(n_keep):
        j = order[m]
        if m == 0 or key[j] != key[order[m - 1]]:
            g += 1
            gptr[g] = m
            gcnt[g] = ptr[j + 1] - ptr[j]
            goff[g] = k
        for q in range(ptr[j], ptr[j + 1]):
            operand[k] = q
            k += 1
    gptr[n_groups] = n_keep
    return order.astype(np.int32), gptr, gcnt, operand[:k].copy(), goff


@_jit
def _chunk(m0, m1, part, n_parts):
    """Positions m0..m1-1 split into n_parts contiguous chunks: the bounds of chunk `part`."""
    n = m1 - m0
    return m0 + n * part // n_parts, m0 + n * (part + 1) // n_parts


@_jit
def _clipped(piece, p, m0, m1):
    """Positions of piece p within m0..m1-1 (this thread's chunk): lo, hi (empty: lo >= hi)."""
    return max(piece[p, 0], m0), min(piece[p, 1], m1)


@_jit
def _gradient_group(ud, ggptr, gcnt, goff, gdst, gsrc, gedge, pptr, piece, par, g, part,
                    n_parts):
    """Entries of gradient group g (its chunk `part` of n_parts): ud[dst] = sum d1 * ud, d1
    being the first part of ud; piece by piece (`_program_pieces`)."""
    m0, m1 = _chunk(ggptr[g], ggptr[g + 1], part, n_parts)
    cnt = gcnt[g]
    o = goff[g] - ggptr[g] * cnt  # operands of position m from o + m * cnt
    base = pptr.shape[0] - 4 - ggptr.shape[0]  # this program's offsets in pptr (`_pieces`)
    for p in range(pptr[base + g], pptr[base + g + 1]):
        lo, hi = _clipped(piece, p, m0, m1)
        if lo >= hi:
            continue
        q = piece[p, 2]
        if q < 0:
            _gradient_indexed(ud, cnt, o, gdst, gsrc, gedge, lo, hi)
            continue
        first = piece[p, 0]
        k = o + first * cnt
        d0 = np.uint64(gdst[first])
        ds = np.uint64(par[q])
        e0 = np.uint64(gedge[k])
        s0 = np.uint64(gsrc[k])
        se0 = np.uint64(par[q + 1])
        ss0 = np.uint64(par[q + 2])
        if cnt == 1:
            for m in range(lo, hi):
                i = np.uint64(m - first)
                ud[d0 + i * ds] = ud[e0 + i * se0] * ud[s0 + i * ss0]
        else:
            e1 = np.uint64(gedge[k + 1])
            s1 = np.uint64(gsrc[k + 1])
            se1 = np.uint64(par[q + 3])
            ss1 = np.uint64(par[q + 4])
            for m in range(lo, hi):
                i = np.uint64(m - first)
                ud[d0 + i * ds] = (ud[e0 + i * se0] * ud[s0 + i * ss0]
                                   + ud[e1 + i * se1] * ud[s1 + i * ss1])


@_jit
def _gradient_indexed(ud, cnt, o, gdst, gsrc, gedge, m0, m1):
    """Entries m0..m1-1 of a gradient group of cnt operands, from the index arrays."""
    if cnt == 1:
        for m in range(m0, m1):
            ud[gdst[m]] = ud[gedge[o + m]] * ud[gsrc[o + m]]
    elif cnt == 2:
        for m in range(m0, m1):
            k = o + 2 * m
            ud[gdst[m]] = ud[gedge[k]] * ud[gsrc[k]] + ud[gedge[k + 1]] * ud[gsrc[k + 1]]
    else:  # two accumulators, as in _hessian_indexed
        for m in range(m0, m1):
            k = o + m * cnt
            k1 = k + cnt
            a0 = 0.0
            a1 = 0.0
            while k + 1 < k1:
                a0 += ud[gedge[k]] * ud[gsrc[k]]
                a1 += ud[gedge[k + 1]] * ud[gsrc[k + 1]]
                k += 2
            if k < k1:
                a0 += ud[gedge[k]] * ud[gsrc[k]]
            ud[gdst[m]] = a0 + a1


@_jit
def _term_weights(d2, n_in, adj, term_t, term_op, pptr, piece, par, c, part, n_parts):
    """c[q] = adjoint of term q's op * its d2 (chunk `part` of n_parts), piece by piece: an
    affine piece of terms in tape order reads adj and d2 contiguously (a vector loop)."""
    q0, q1 = _chunk(0, term_t.shape[0], part, n_parts)
    base = pptr.shape[0] - 4
    for p in range(pptr[base], pptr[base + 1]):
        lo, hi = _clipped(piece, p, q0, q1)
        if lo >= hi:
            continue
        s = piece[p, 2]
        if s < 0:
            for q in range(lo, hi):
                c[q] = _term_weight(adj[n_in + term_op[q]], d2[term_t[q]])
            continue
        first = piece[p, 0]
        t0 = np.uint64(term_t[first])
        st = np.uint64(par[s + 1])
        o0 = np.uint64(n_in + term_op[first])
        so = np.uint64(par[s + 2])
        for q in range(lo, hi):
            i = np.uint64(q - first)
            c[q] = _term_weight(adj[o0 + i * so], d2[t0 + i * st])


@_jit
def _term_weight(a, dd):
    v = a * dd
    return v if a != 0.0 else 0.0  # no 0 * inf from a dead branch; a select, no branch


@_jit
def _copy_upper(data, upper, lower, pptr, piece, par):
    """data[upper] = data[lower], piece by piece."""
    base = pptr.shape[0] - 2
    for p in range(pptr[base], pptr[base + 1]):
        m0 = piece[p, 0]
        m1 = piece[p, 1]
        s = piece[p, 2]
        if s < 0:
            for k in range(m0, m1):
                data[upper[k]] = data[lower[k]]
            continue
        u0 = np.uint64(upper[m0])
        su = np.uint64(par[s])
        l0 = np.uint64(lower[m0])
        sl = np.uint64(par[s + 1])
        for k in range(m0, m1):
            i = np.uint64(k - m0)
            data[u0 + i * su] = data[l0 + i * sl]


@_jit
def _hessian_group(hgptr, hcnt, hoff, hdst, pa, pb, pterm, pptr, piece, par, c, ud, data, g,
                   part, n_parts):
    """Entries of Hessian group g (chunk `part` of n_parts): data[dst] = sum c * ud * ud, piece
    by piece (`_program_pieces`; the Hessian groups' offsets come first in pptr)."""
    m0, m1 = _chunk(hgptr[g], hgptr[g + 1], part, n_parts)
    cnt = hcnt[g]
    o = hoff[g] - hgptr[g] * cnt  # operands of position m from o + m * cnt
    for p in range(pptr[g], pptr[g + 1]):
        lo, hi = _clipped(piece, p, m0, m1)
        if lo >= hi:
            continue
        if piece[p, 2] < 0:
            _hessian_indexed(cnt, o, hdst, pa, pb, pterm, c, ud, data, lo, hi)
        else:
            _hessian_affine(cnt, o, hdst, pa, pb, pterm, par, piece[p, 2], piece[p, 0], c, ud,
                            data, lo, hi)
@_jit
def _hessian_indexed(cnt, o, hdst, pa, pb, pterm, c, ud, data, m0, m1):
    """Entries m0..m1-1 of a group of cnt products per entry, from the index arrays."""
    if cnt == 1:
        for m in range(m0, m1):
            k = o + m
            data[hdst[m]] = c[pterm[k]] * ud[pa[k]] * ud[pb[k]]
    elif cnt == 2:
        for m in range(m0, m1):
            k = o + 2 * m
            data[hdst[m]] = (c[pterm[k]] * ud[pa[k]] * ud[pb[k]]
                             + c[pterm[k + 1]] * ud[pa[k + 1]] * ud[pb[k + 1]])
    else:  # two accumulators: the additions of one entry do not all wait on each other
        # (Rosenbrock's 4-product diagonal entries: 11.0 -> 8.4 us at n = 1000)
        for m in range(m0, m1):
            k = o + m * cnt
            k1 = k + cnt
            a0 = 0.0
            a1 = 0.0
            while k + 1 < k1:
                a0 += c[pterm[k]] * ud[pa[k]] * ud[pb[k]]
                a1 += c[pterm[k + 1]] * ud[pa[k + 1]] * ud[pb[k + 1]]
                k += 2
            if k < k1:
                a0 += c[pterm[k]] * ud[pa[k]] * ud[pb[k]]
            data[hdst[m]] = a0 + a1


@_jit
def _product(c, ud, hpar, q, j, kt, ka, kb, i):
    """Product j of the entry i positions into an affine piece: c * ud * ud at the piece's
    first indices (kt, ka, kb) plus i times its steps (uint64: steps may be negative, the
    wrapped sums land on the right index)."""
    return (c[kt + i * np.uint64(hpar[q + 1 + 3 * j])]
            * ud[ka + i * np.uint64(hpar[q + 2 + 3 * j])]
            * ud[kb + i * np.uint64(hpar[q + 3 + 3 * j])])


@_jit
def _hessian_affine(cnt, o, hdst, pa, pb, pterm, hpar, q, first, c, ud, data, m0, m1):
    """Entries m0..m1-1 of the affine piece starting at position `first` with steps hpar[q:]:
    the same products summed in the same order as `_hessian_indexed` (bitwise equal)."""
    k = o + first * cnt
    d0 = np.uint64(hdst[first])
    ds = np.uint64(hpar[q])
    t0 = np.uint64(pterm[k])
    a0 = np.uint64(pa[k])
    b0 = np.uint64(pb[k])
    if cnt == 1:
        for m in range(m0, m1):
            i = np.uint64(m - first)
            data[d0 + i * ds] = _product(c, ud, hpar, q, 0, t0, a0, b0, i)
        return
    t1 = np.uint64(pterm[k + 1])
    a1 = np.uint64(pa[k + 1])
    b1 = np.uint64(pb[k + 1])
    if cnt == 2:
        for m in range(m0, m1):
            i = np.uint64(m - first)
            data[d0 + i * ds] = (_product(c, ud, hpar, q, 0, t0, a0, b0, i)
                                 + _product(c, ud, hpar, q, 1, t1, a1, b1, i))
        return
    t2 = np.uint64(pterm[k + 2])
    a2 = np.uint64(pa[k + 2])
    b2 = np.uint64(pb[k + 2])
    four = cnt == 4  # loop-invariant: LLVM unswitches the loop on it
    k3 = k + 3 if four else k  # (read only when four)
    t3 = np.uint64(pterm[k3])
    a3 = np.uint64(pa[k3])
    b3 = np.uint64(pb[k3])
    for m in range(m0, m1):
        i = np.uint64(m - first)
        s0 = 0.0
        s1 = 0.0
        s0 += _product(c, ud, hpar, q, 0, t0, a0, b0, i)
        s1 += _product(c, ud, hpar, q, 1, t1, a1, b1, i)
        s0 += _product(c, ud, hpar, q, 2, t2, a2, b2, i)
        if four:
            s1 += _product(c, ud, hpar, q, 3, t3, a3, b3, i)
        data[d0 + i * ds] = s0 + s1


@_jit
def direct_values(ud, n_edges, d2, n_in, adj, g_in, n_gval, ggptr, gcnt, goff, gdst, gsrc,
                  gedge, term_t, term_op, hgptr, hcnt, hoff, hdst, pa, pb, pterm, hzero, upper,
                  lower, pptr, piece, par, c, data):
    """Hessian entries into data (nnz,) from the point's partials d1 = ud[:n_edges], d2 and
    first-order adjoints adj (n_slots,); ud[n_edges:n_edges + n_gval] is scratch for the
    gradients (gval), c (len(term_t),) for the term weights. In the calling thread: a serial
    kernel, because numba's parallel=True compilation made the same loops 1.4x slower
    (Rosenbrock n = 10^3: 19 against 13 us)."""
    ud[n_edges:n_edges + g_in] = 1.0
    for g in range(ggptr.shape[0] - 1):
        _gradient_group(ud, ggptr, gcnt, goff, gdst, gsrc, gedge, pptr, piece, par, g, 0, 1)
    _term_weights(d2, n_in, adj, term_t, term_op, pptr, piece, par, c, 0, 1)
    for h in hzero:
        data[h] = 0.0
    for g in range(hgptr.shape[0] - 1):
        _hessian_group(hgptr, hcnt, hoff, hdst, pa, pb, pterm, pptr, piece, par, c, ud, data,
                       g, 0, 1)
    _copy_upper(data, upper, lower, pptr, piece, par)


@njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def direct_values_parallel(ud, n_edges, d2, n_in, adj, g_in, n_gval, ggptr, gcnt, goff, gdst,
                           gsrc, gedge, term_t, term_op, hgptr, hcnt, hoff, hdst, pa, pb, pterm,
                           hzero, upper, lower, pptr, piece, par, c, data, n_parts):
    """`direct_values` on n_parts threads: the entries of a group are independent of each
    other, so each group is split into n_parts chunks run in prange (a group waits for the
    groups before it)."""
    ud[n_edges:n_edges + g_in] = 1.0
    for g in range(ggptr.shape[0] - 1):
        for part in prange(n_parts):
            _gradient_group(ud, ggptr, gcnt, goff, gdst, gsrc, gedge, pptr, piece, par, g, part,
                            n_parts)
    for part in prange(n_parts):
        _term_weights(d2, n_in, adj, term_t, term_op, pptr, piece, par, c, part, n_parts)
    for h in hzero:
        data[h] = 0.0
    for g in range(hgptr.shape[0] - 1):
        for part in prange(n_parts):
            _hessian_group(hgptr, hcnt, hoff, hdst, pa, pb, pterm, pptr, piece, par, c, ud,
                           data, g, part, n_parts)
    _copy_upper(data, upper, lower, pptr, piece, par)
