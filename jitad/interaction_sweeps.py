"""Kernels of the interaction Hessian: H = sum over ops i of adj_i * sum over the op's
second-order terms (a, b) of d2 * (grad u_a) (grad u_b)^T.

Here adj_i is the first-order adjoint of op i, d2 the term's stored second partial and grad u
the gradient of an operand slot with respect to the inputs (its *row*). This is the
second-order chain rule read off the tape: the terms are exactly where curvature enters, and
linear ops contribute none. When the operand rows are short (partially separable objectives,
pair potentials, a mat-vec with a constant matrix followed by elementwise functions) the
Hessian costs sum(|row a| * |row b|) multiply-adds instead of n multi-direction HVP sweeps.

Rows are kept sparse. A slot whose operands all share one row (unary chains, scaling,
x * x) shares that row with a per-point scale instead of storing its own; only ops that mix
different rows store a merged row, whose index pattern is built once per tape (`plan`).
"""
import numpy as np
from numba import njit, prange

from . import opcodes as oc
from . import sweeps
from .sparsity import grow, sort_range

_jit = njit(cache=True, error_model="numpy", nogil=True)
_pjit = njit(cache=True, error_model="numpy", nogil=True, parallel=True)

# kind of a slot in the plan
NONE = 0    # not needed by any term, or constant: row is empty
INPUT = 1   # input j: row e_j (row id j)
SHARED = 2  # scale * the row of its operands (all operands with a row share it)
MERGED = 3  # own stored row: sum over edges of d1 * scale * operand row
DIRECT = 4  # MERGED whose edges are distinct single-entry rows in increasing order (a mat-vec
            # row over the inputs): row value k is edge k's d1 * scale, no scatter needed
CONSTANT = 5  # DIRECT row of a LIN op straight over the inputs (a row of X in X @ w): its
              # values are the op's coefficients at every point, written once per work array


@_jit
def plan(code, eptr, arg, coef, tptr, ta, tb, n_in, out, max_nnz):
    """Row structure of a tape, once per tape.

    Returns (ok, kind (n_slots,) int8, base (n_slots,) int32 row ids, rptr (n_rows+1,),
    ridx (nnz,) sorted input indices per row, term_ops (n_live_term_ops,) int32 ascending,
    cost, diag (n_rows,) uint8, varies (n_rows,) uint8): ok is False when the rows would need
    more than max_nnz entries. cost counts the multiply-adds of building rows and of the
    cross-row products; diag marks the rows whose outer product with themselves is needed
    (cost: half their length squared); varies marks the rows whose values depend on the point
    (not the inputs' unit rows nor CONSTANT rows).
    """
    n_ops = eptr.shape[0] - 1
    n_slots = n_in + n_ops
    # one backward pass: an op's consumers come after it, so when the pass reaches it its
    # liveness (some output reads it) and need (some live term reads its row) are final
    live = np.zeros(n_slots, np.uint8)
    need = np.zeros(n_slots, np.uint8)
    for k in range(out.shape[0]):
        live[out[k]] = 1
    n_term_ops = 0
    for i in range(n_ops - 1, -1, -1):
        s = n_in + i
        if not live[s]:
            continue
        if tptr[i + 1] > tptr[i]:
            n_term_ops += 1
            for t in range(tptr[i], tptr[i + 1]):
                need[arg[ta[t]]] = 1
                need[arg[tb[t]]] = 1
        nd = need[s]
        for e in range(eptr[i], eptr[i + 1]):
            live[arg[e]] = 1
            if nd:
                need[arg[e]] = 1
    term_ops = np.empty(n_term_ops, np.int32)
    n_term_ops = 0
    for i in range(n_ops):
        if live[n_in + i] and tptr[i + 1] > tptr[i]:
            term_ops[n_term_ops] = i
            n_term_ops += 1

    kind = np.zeros(n_slots, np.int8)
    base = np.full(n_slots, -1, np.int32)
    cap = n_in + eptr[n_ops] + 16  # one entry per edge; grown when rows merge more
    rptr = np.empty(n_in + n_ops + 1, np.int32)
    ridx = np.empty(min(cap, max_nnz + 1), np.int32)  # grown below when needed
    for j in range(n_in):
        kind[j] = INPUT
        base[j] = j
        rptr[j] = j
        ridx[j] = j
    n_rows = n_in
    nnz = n_in
    rptr[n_rows] = nnz
    mark = np.full(n_in, -1, np.int32)
    cost = 0.0
    for i in range(n_ops):
        s = n_in + i
        if not need[s]:
            continue
        e0 = eptr[i]
        if eptr[i + 1] - e0 == 1:  # one operand (unary chains, scalings): its row, shared
            r = base[arg[e0]]
            if r >= 0:
                kind[s] = SHARED
                base[s] = r
            continue
        b = -1
        mixed = False
        # a row straight over distinct inputs in increasing order (a row of a mat-vec X @ w):
        # its entries are the operands themselves, already sorted, with no union to build
        over_inputs = True
        prev = -1
        for e in range(eptr[i], eptr[i + 1]):
            a = arg[e]
            r = base[a]
            if a >= n_in or a <= prev:
                over_inputs = False
            prev = a
            if r >= 0:
                if b < 0:
                    b = r
                elif r != b:
                    mixed = True
        if b < 0:
            continue  # constant: empty row
        if not mixed:
            kind[s] = SHARED
            base[s] = b
            continue
        if over_inputs:
            ne = eptr[i + 1] - eptr[i]
            if nnz + ne > max_nnz:
                return (False, kind, base, rptr[:1], ridx[:0], term_ops, cost,
                        np.zeros(0, np.uint8), np.zeros(0, np.uint8))
            ridx = grow(ridx, nnz, ne)
            constant = code[i] == oc.LIN
            for e in range(eptr[i], eptr[i + 1]):
                ridx[nnz] = arg[e]
                nnz += 1
                if not np.isfinite(coef[e]):
                    constant = False  # a value to check per point
            cost += ne
            kind[s] = CONSTANT if constant else DIRECT
            base[s] = n_rows
            n_rows += 1
            rptr[n_rows] = nnz
            continue
        # merged row: sorted union of the operand rows. Room for the worst case is made
        # here, once per op: growing inside the loop below made the whole plan 1.4x slower
        start = nnz
        worst = nnz
        for e in range(eptr[i], eptr[i + 1]):
            r = base[arg[e]]
            if r >= 0:
                worst += rptr[r + 1] - rptr[r]
        if worst > ridx.shape[0]:
            ridx = grow(ridx, nnz, worst - nnz)
        for e in range(eptr[i], eptr[i + 1]):
            r = base[arg[e]]
            if r < 0:
                continue
            cost += rptr[r + 1] - rptr[r]
            for q in range(rptr[r], rptr[r + 1]):
                j = ridx[q]
                if mark[j] != n_rows:
                    mark[j] = n_rows
                    if nnz >= max_nnz:
                        return (False, kind, base, rptr[:1], ridx[:0], term_ops, cost,
                                np.zeros(0, np.uint8), np.zeros(0, np.uint8))
                    ridx[nnz] = j
                    nnz += 1
        direct = True  # edges in order, each a distinct one-entry row: already sorted
        prev = -1
        for e in range(eptr[i], eptr[i + 1]):
            r = base[arg[e]]
            if r < 0 or rptr[r + 1] - rptr[r] != 1 or ridx[rptr[r]] <= prev:
                direct = False
                break
            prev = ridx[rptr[r]]
        if not direct:
            sort_range(ridx, start, nnz)
        # (never CONSTANT here: a LIN op straight over distinct inputs took `over_inputs`)
        kind[s] = DIRECT if direct else MERGED
        base[s] = n_rows
        n_rows += 1
        rptr[n_rows] = nnz
    # outer products: a row paired with itself (any number of terms: one weight) costs the
    # upper half of its square; a pair of different rows the full product
    varies = np.zeros(n_rows, np.uint8)
    for s in range(n_in, n_slots):
        if kind[s] == DIRECT or kind[s] == MERGED:
            varies[base[s]] = 1
    diag = np.zeros(n_rows, np.uint8)
    for k in range(term_ops.shape[0]):
        i = term_ops[k]
        for t in range(tptr[i], tptr[i + 1]):
            ra = base[arg[ta[t]]]
            rb = base[arg[tb[t]]]
            if ra >= 0 and rb >= 0:
                if ra == rb:
                    diag[ra] = 1
                else:
                    cost += (rptr[ra + 1] - rptr[ra]) * (rptr[rb + 1] - rptr[rb])
    # views, not copies: fresh copies cost page faults on every one-shot tape
    return (True, kind, base, rptr[: n_rows + 1], ridx[:nnz], term_ops, cost, diag,
            varies)


@_jit
def constant_rows(eptr, coef, n_in, kind, base, rptr, rval):
    """The values of the rows that do not depend on the point (inputs' unit rows, CONSTANT
    rows: coefficient k is d1 * scale * 1 of `rows`, bitwise) into rval, once per work array."""
    for j in range(n_in):
        rval[j] = 1.0
    for i in range(eptr.shape[0] - 1):
        if kind[n_in + i] == CONSTANT:
            q = rptr[base[n_in + i]]
            for e in range(eptr[i], eptr[i + 1]):
                rval[q] = coef[e]
                q += 1


@_jit
def rows(eptr, arg, d1, n_in, kind, base, rptr, ridx, scale, rval, acc):
    """Per point: scale (n_slots,) of every needed slot and values rval (nnz,) of the rows that
    vary with the point, from the edge partials d1 (the others are written by
    `constant_rows`). acc (n_in,) is zero on entry and left zero."""
    n_ops = eptr.shape[0] - 1
    for j in range(n_in):
        scale[j] = 1.0
    for i in range(n_ops):
        s = n_in + i
        ks = kind[s]
        if ks == SHARED:
            b = base[s]
            sc = 0.0
            for e in range(eptr[i], eptr[i + 1]):
                a = arg[e]
                if base[a] == b:
                    sc += d1[e] * scale[a]
            scale[s] = sc
        elif ks == DIRECT:
            q = rptr[base[s]]
            for e in range(eptr[i], eptr[i + 1]):
                a = arg[e]
                rval[q] = d1[e] * scale[a] * rval[rptr[base[a]]]
                q += 1
            scale[s] = 1.0
        elif ks == MERGED:
            for e in range(eptr[i], eptr[i + 1]):
                a = arg[e]
                r = base[a]
                if r >= 0:
                    sc = d1[e] * scale[a]
                    for q in range(rptr[r], rptr[r + 1]):
                        acc[ridx[q]] += sc * rval[q]
            r = base[s]
            for q in range(rptr[r], rptr[r + 1]):
                j = ridx[q]
                rval[q] = acc[j]
                acc[j] = 0.0
            scale[s] = 1.0
        elif ks == CONSTANT:
            scale[s] = 1.0


@_jit
def weights(arg, tptr, ta, tb, d2, n_in, adj, term_ops, base, scale, rc, xa, xb, xc):
    """Per point: the weight rc[r] of every row's outer product with itself, and the list of
    cross pairs (xa[k], xb[k], xc[k]) meaning xc * (row xa)(row xb)^T + its transpose.
    Returns the number of cross pairs. rc (n_rows,) must be zero on entry."""
    n_cross = 0
    for k in range(term_ops.shape[0]):
        i = term_ops[k]
        w = adj[n_in + i]
        if w == 0.0:
            continue
        for t in range(tptr[i], tptr[i + 1]):
            p = ta[t]
            q = tb[t]
            a = arg[p]
            b = arg[q]
            ra = base[a]
            rb = base[b]
            if ra < 0 or rb < 0:
                continue
            c = w * d2[t] * scale[a] * scale[b]
            if ra == rb:
                rc[ra] += c if p == q else 2.0 * c
            else:
                xa[n_cross] = ra
                xb[n_cross] = rb
                xc[n_cross] = c
                n_cross += 1
    return n_cross


@_jit
def accumulate(rptr, ridx, rval, rc, xa, xb, xc, n_cross, H, part, n_parts):
    """Add the outer products to H (n, n), both triangles, so no symmetrising pass over the
    n^2 entries is needed (for banded problems that pass would cost more than the rest).
    With n_parts > 1 only the rows j with (j >> 4) % n_parts == part are written, so that parts
    run in parallel on disjoint rows; each part then walks every product in full. Entries
    (j, k) and (k, j) receive bitwise equal increments (c * (u_j * v_k), products commute) in
    the same order, so H is exactly symmetric."""
    serial = n_parts == 1
    for r in range(rc.shape[0]):
        c = rc[r]
        if c == 0.0:
            continue
        q0 = rptr[r]
        q1 = rptr[r + 1]
        for p in range(q0, q1):
            j = ridx[p]
            u = rval[p]
            if serial:  # upper triangle, mirrored
                H[j, j] += c * (u * u)
                for q in range(p + 1, q1):
                    k = ridx[q]
                    h = c * (u * rval[q])
                    H[j, k] += h
                    H[k, j] += h
            elif (j >> 4) % n_parts == part:
                for q in range(q0, q1):
                    H[j, ridx[q]] += c * (u * rval[q])
    for k in range(n_cross):
        c = xc[k]
        ra = xa[k]
        rb = xb[k]
        if serial:  # c * (row_a row_b^T + row_b row_a^T)
            for p in range(rptr[ra], rptr[ra + 1]):
                j = ridx[p]
                u = rval[p]
                for q in range(rptr[rb], rptr[rb + 1]):
                    i = ridx[q]
                    h = c * (u * rval[q])
                    H[j, i] += h
                    H[i, j] += h
            continue
        for side in range(2):
            r1 = ra if side == 0 else rb
            r2 = rb if side == 0 else ra
            for p in range(rptr[r1], rptr[r1 + 1]):
                j = ridx[p]
                if (j >> 4) % n_parts == part:
                    u = rval[p]
                    for q in range(rptr[r2], rptr[r2 + 1]):
                        H[j, ridx[q]] += c * (u * rval[q])


@_pjit
def accumulate_parallel(rptr, ridx, rval, rc, xa, xb, xc, n_cross, A, n_parts):
    for part in prange(n_parts):
        accumulate(rptr, ridx, rval, rc, xa, xb, xc, n_cross, A, part, n_parts)


@_jit
def split_group(rptr, rval, rc, group, Bp, Bn):
    """Rows of one dense group (same contiguous pattern) as sqrt(|rc|)-scaled rows of Bp
    (rc > 0) and Bn (rc < 0), so that their outer products sum to Bp.T @ Bp - Bn.T @ Bn, one
    BLAS syrk each. Clears rc of those rows (the scattered accumulation then skips them).
    Returns (rows in Bp, rows in Bn)."""
    n_p = 0
    n_n = 0
    ln = Bp.shape[1]
    for k in range(group.shape[0]):
        r = group[k]
        c = rc[r]
        if c == 0.0:
            continue
        q0 = rptr[r]
        if c > 0.0:
            f = np.sqrt(c)
            for q in range(ln):
                Bp[n_p, q] = f * rval[q0 + q]
            n_p += 1
        else:
            f = np.sqrt(-c)
            for q in range(ln):
                Bn[n_n, q] = f * rval[q0 + q]
            n_n += 1
        rc[r] = 0.0
    return n_p, n_n


@_jit
def group_candidates(rptr, ridx, diag, n_in, min_length):
    """(rows int32, keys int64): the rows paired with themselves whose index pattern is one
    contiguous range of at least min_length inputs, keyed by (first index, length)."""
    n_rows = rptr.shape[0] - 1
    n = 0
    rows = np.empty(n_rows, np.int32)
    keys = np.empty(n_rows, np.int64)
    for r in range(n_rows):
        ln = rptr[r + 1] - rptr[r]
        if diag[r] and ln >= min_length and ridx[rptr[r + 1] - 1] - ridx[rptr[r]] == ln - 1:
            rows[n] = r
            keys[n] = np.int64(ridx[rptr[r]]) * (n_in + 1) + ln
            n += 1
    return rows[:n], keys[:n]


@_jit
def constant_owners(n_in, kind, base, n_rows):
    """owner (n_rows,) int64: the op whose coefficients are each CONSTANT row's values, -1 for
    the other rows (every row has one owning slot; SHARED slots only point at rows)."""
    owner = np.full(n_rows, -1, np.int64)
    for s in range(n_in, kind.shape[0]):
        if kind[s] == CONSTANT:
            owner[base[s]] = s - n_in
    return owner


@_jit
def group_values(eptr, coef, owner, members, ln):
    """XT (ln, len(members)): the values of a dense group's rows as columns when every row is
    a CONSTANT row (owner >= 0: its op's coefficients), else an empty (0, 0) array."""
    m = members.shape[0]
    for k in range(m):
        if owner[members[k]] < 0:
            return np.empty((0, 0))
    XT = np.empty((ln, m))
    for k in range(m):
        e0 = eptr[owner[members[k]]]
        for j in range(ln):
            XT[j, k] = coef[e0 + j]
    return XT


@_jit
def costs(rptr, diag, in_group, n_in, cost):
    """(blas, scatter, accumulate) multiply-adds of one Hessian (`InteractionPlan`): a row
    paired with itself costs the upper half of its square, by `gram`/BLAS when it is in a
    dense group, else by `accumulate`; cost adds the rows' building and the cross pairs."""
    blas = 0.0
    rest = 0.0
    built = 0.0
    for r in range(rptr.shape[0] - 1):
        ln = float(rptr[r + 1] - rptr[r])
        if r >= n_in:
            built += ln
        if diag[r]:
            if in_group[r]:
                blas += 0.5 * ln * (ln + 1.0)
            else:
                rest += 0.5 * ln * (ln + 1.0)
    return blas, cost + rest, rest + max(0.0, cost - built)


@njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc", "contract"})
def _weighted_gram_lower(RT, c, K, H, u):
    """H[j, i] += sum_k c[k] RT[j, k] RT[i, k] for i <= j (the lower triangle), over the first
    K columns of RT (n, >= K); u (K,) work. Reassociation lets LLVM vectorise the sums over k
    (the caller checks the result for non-finite entries)."""
    n = RT.shape[0]
    for j in range(n):
        rj = RT[j]
        for k in range(K):
            u[k] = c[k] * rj[k]
        for i in range(j + 1):
            ri = RT[i]
            acc = 0.0
            for k in range(K):
                acc += u[k] * ri[k]
            H[j, i] += acc


@_jit
def gram(XT, members, rc, lo, H, work):
    """H[lo:lo+ln, lo:lo+ln] += sum_k rc[members[k]] XT[:, k] XT[:, k]^T: the outer products
    of a dense group of CONSTANT rows (XT (ln, m): member k's row values as column k, kept by
    the plan), both triangles with the same values, by `_weighted_gram_lower`; clears rc of
    those rows (the scattered accumulation then skips them). work (2, m). The weights and rows
    are finite here (`prepare` checks the weights, CONSTANT rows have finite values)."""
    ln, m = XT.shape
    t = work[0]
    for k in range(m):
        r = members[k]
        t[k] = rc[r]
        rc[r] = 0.0
    S = np.zeros((ln, ln))
    _weighted_gram_lower(XT, t, m, S, work[1])
    for j in range(ln):
        for i in range(j + 1):
            H[lo + j, lo + i] += S[j, i]
            if i != j:
                H[lo + i, lo + j] += S[j, i]


@_jit
def _scaled_row(G, rb, rs, s, row):
    """row (n,) := the dense row of slot s, rs[s] * G[rb[s]]."""
    g = G[rb[s]]
    f = rs[s]
    for j in range(row.shape[0]):
        row[j] = f * g[j]


@_jit
def dense_rows_hessian(eptr, arg, tptr, ta, tb, n_in, out, w, d1, d2, adj, G, rb, rs, rw, RT,
                       cw, pair, H):
    """The same sum without a plan, rows kept dense: for a tape used for one Hessian at small
    n, where building the plan would cost more than the rows (`one_shot_hessian`). d1, d2: the
    point's partials; adj (n_slots,), G (n_slots, n), rb (n_slots,) int, rs, rw (n_slots,),
    RT (n, n_slots), cw (2, n_slots), pair (2, n) work; H (n, n) zero on entry.
    The row of slot s is rs[s] * G[rb[s]]: inputs store their unit vectors; an op of one
    operand only scales its operand's row (unary chains cost one multiply, not a row); an op
    of several stores the sum over its edges of d1 * operand row. Rows are built for the ops
    below the last op with terms. A term of one operand adds c g g^T, a term of two
    c (g_a g_b^T + g_b g_a^T), with c = adjoint * d2: when both are one stored row (scaled),
    c times the scales adds to that row's weight, and the weighted rows are summed at the end
    by `_weighted_gram_lower`. Returns False (H unspecified) when a partial on an input's unit
    row or an entry is not finite: the caller then takes the plan's way (and its fall-back to
    the HVP sweeps, whose entry-wise special values are the documented ones)."""
    n_ops = eptr.shape[0] - 1
    first = n_ops
    last = 0
    for i in range(n_ops):
        if tptr[i + 1] > tptr[i]:
            first = min(first, i)
            last = i
    sweeps.reverse1_down_to(eptr, arg, d1, n_in, out, w, adj, first)
    for s in range(n_in):
        for j in range(n_in):
            G[s, j] = 0.0
        G[s, s] = 1.0
        rb[s] = s
        rs[s] = 1.0
    for i in range(last):
        s = n_in + i
        e0 = eptr[i]
        if eptr[i + 1] - e0 == 1:
            a = arg[e0]
            rb[s] = rb[a]
            rs[s] = d1[e0] * rs[a]
            continue
        rb[s] = s
        rs[s] = 1.0
        row = G[s]
        for j in range(n_in):
            row[j] = 0.0
        for e in range(e0, eptr[i + 1]):
            a = arg[e]
            f = d1[e] * rs[a]
            b = rb[a]
            if b < n_in:  # a unit row: one entry (inf * 0 elsewhere would be NaN: give up)
                if not np.isfinite(f):
                    return False
                row[b] += f
            else:
                gb = G[b]
                for j in range(n_in):
                    row[j] += f * gb[j]
    # terms on one stored row (the same row after scaling) add to its weight rw, as the plan's
    # `weights`; products of two different stored rows are added to H at once
    for s in range(n_in + last):
        rw[s] = 0.0
    for i in range(first, n_ops):
        a = adj[n_in + i]
        if a == 0.0:
            continue  # no 0 * inf from an op no output depends on (as `weights`)
        for t in range(tptr[i], tptr[i + 1]):
            p = arg[ta[t]]
            q = arg[tb[t]]
            f = a * d2[t]
            if rb[p] == rb[q]:
                f = f * rs[p] * rs[q]
                rw[rb[p]] += f if ta[t] == tb[t] else 2.0 * f
                continue
            ga = pair[0]
            gb = pair[1]
            _scaled_row(G, rb, rs, p, ga)
            _scaled_row(G, rb, rs, q, gb)
            for j in range(n_in):
                u = f * ga[j]
                v = f * gb[j]
                for k in range(j + 1):
                    H[j, k] += u * gb[k] + v * ga[k]
    # the weighted stored rows, as columns of RT, summed by a vectorised Gram product
    c = cw[0]
    K = 0
    for s in range(n_in + last):
        if rw[s] != 0.0:  # (NaN too: the final check then gives up)
            c[K] = rw[s]
            for j in range(n_in):
                RT[j, K] = G[s, j]
            K += 1
    _weighted_gram_lower(RT, c, K, H, cw[1])
    for j in range(n_in):
        for k in range(j + 1):
            h = H[j, k]
            if not np.isfinite(h):
                return False
            H[k, j] = h
    return True


@_jit
def prepare(code, param, eptr, arg, coef, tptr, ta, tb, n_in, out, x, w, at_point,
            val, d1, d2, adj, kind, base, rptr, ridx, term_ops, varies, scale, rval, acc, rc,
            xa, xb, xc):
    """Everything of one Hessian that is linear in the tape size: forward sweep (unless the
    point arrays already hold x), adjoints for weights w (of the ops with terms and above:
    nothing below the first of them is read), rows, outer-product weights.
    Returns the number of cross pairs, or -1 when a row value or a weight is not finite: then
    the products would mix infinities differently from the HVP sweeps, whose entry-wise special
    values are the documented ones, so the caller uses those."""
    if not at_point:
        sweeps.forward(code, param, eptr, arg, coef, tptr, n_in, x, True, val, d1, d2)
    first = term_ops[0] if term_ops.shape[0] else eptr.shape[0] - 1
    sweeps.reverse1_down_to(eptr, arg, d1, n_in, out, w, adj, first)
    rows(eptr, arg, d1, n_in, kind, base, rptr, ridx, scale, rval, acc)
    rc[:] = 0.0
    n_cross = weights(arg, tptr, ta, tb, d2, n_in, adj, term_ops, base, scale, rc, xa, xb, xc)
    # inf * 0 and inf - inf are NaN: sums tell if anything is not finite (four of them, so that
    # the additions do not wait on each other)
    b0 = b1 = b2 = b3 = 0.0
    for r in range(varies.shape[0]):
        if varies[r]:
            q = rptr[r]
            q1 = rptr[r + 1]
            while q + 4 <= q1:
                b0 += 0.0 * rval[q]
                b1 += 0.0 * rval[q + 1]
                b2 += 0.0 * rval[q + 2]
                b3 += 0.0 * rval[q + 3]
                q += 4
            while q < q1:
                b0 += 0.0 * rval[q]
                q += 1
    for r in range(rc.shape[0]):
        b1 += 0.0 * rc[r]
    for k in range(n_cross):
        b2 += 0.0 * xc[k]
    return n_cross if (b0 + b1) + (b2 + b3) == 0.0 else -1


@_jit
def hessian_serial(code, param, eptr, arg, coef, tptr, ta, tb, n_in, out, x, w, at_point,
                   val, d1, d2, adj, kind, base, rptr, ridx, term_ops, varies, scale, rval, acc,
                   rc, xa, xb, xc, H):
    """The whole Hessian in one call (small problems: one dispatch). H (n, n) zero on entry.
    Returns False (H untouched) where `prepare` finds non-finite values."""
    n_cross = prepare(code, param, eptr, arg, coef, tptr, ta, tb, n_in, out, x, w, at_point,
                      val, d1, d2, adj, kind, base, rptr, ridx, term_ops, varies, scale, rval,
                      acc, rc, xa, xb, xc)
    if n_cross < 0:
        return False
    accumulate(rptr, ridx, rval, rc, xa, xb, xc, n_cross, H, 0, 1)
    return True


@_jit
def hessian_packed(code, ints, io, floats, fo, n_in, x, w, work, wo, iwork, H):
    """`hessian_serial` with the tape, plan and work arrays packed into a few flat arrays
    (code stays the tape's uint8 array, so the forward sweep compiled for it is reused instead
    of compiled again for int32 codes; ints: eptr, arg, tptr, ta, tb, out, kind, base, rptr,
    ridx, term_ops, varies split at io;
    floats: param, coef at fo; work: val, d1, d2, adj, scale, rval, acc, rc, xc at wo; iwork:
    xa, xb): Numba's dispatch costs about as much per argument as a small Hessian's sweeps."""
    # the tape's index arrays as the other per-point kernels read them (Tape._ueptr, ...)
    eptr = ints[io[0]:io[1]].view(np.uint32)
    arg = ints[io[1]:io[2]].view(np.uint32)
    tptr = ints[io[2]:io[3]].view(np.uint32)
    ta = ints[io[3]:io[4]].view(np.uint32)
    tb = ints[io[4]:io[5]].view(np.uint32)
    out = ints[io[5]:io[6]].view(np.uint32)
    kind = ints[io[6]:io[7]]
    base = ints[io[7]:io[8]]
    rptr = ints[io[8]:io[9]]
    ridx = ints[io[9]:io[10]]
    term_ops = ints[io[10]:io[11]]
    varies = ints[io[11]:io[12]]
    param = floats[fo[0]:fo[1]]
    coef = floats[fo[1]:fo[2]]
    val = work[wo[0]:wo[1]]
    d1 = work[wo[1]:wo[2]]
    d2 = work[wo[2]:wo[3]]
    adj = work[wo[3]:wo[4]]
    scale = work[wo[4]:wo[5]]
    rval = work[wo[5]:wo[6]]
    acc = work[wo[6]:wo[7]]
    rc = work[wo[7]:wo[8]]
    xc = work[wo[8]:wo[9]]
    # the buffers are shared by plans with other layouts
    acc[:] = 0.0
    constant_rows(eptr, coef, n_in, kind, base, rptr, rval)
    nt = ta.shape[0]
    return hessian_serial(code, param, eptr, arg, coef, tptr, ta, tb, n_in, out, x, w, False,
                          val, d1, d2, adj, kind, base, rptr, ridx, term_ops, varies, scale,
                          rval, acc, rc, iwork[:nt], iwork[nt:2 * nt], xc, H)
