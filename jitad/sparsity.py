"""Structural sparsity patterns of a tape's Jacobian and Hessian (numba sweeps over index sets).

Every slot gets the set of inputs it depends on, built in one forward pass (a union per op, by
a stamp array over the inputs, so an n-ary sum of n slots costs O(n), not O(n^2)). Sets live
in one growing arena; a set is dropped after the last op that reads it, and the arena is
compacted when full, so memory follows the live sets rather than the whole tape.

- Jacobian pattern: row r is the set of output r's slot.
- Hessian pattern: the Hessian of sum_k w_k y_k is a sum over second-order terms (p, q) of live
  ops of adj * d2 * (J_p^T J_q + J_q^T J_p), with J_p the Jacobian of the slot of edge p. So
  its pattern is the union of S(p) x S(q) and S(q) x S(p) over the terms of the ops that can
  reach an output. Linear ops have no terms, so nothing couples through them.

Ops that can reach no output are skipped, and piecewise-constant ops (`opcodes.
ZERO_DERIVATIVE`: sign, floor, ...) pass on no dependency: their derivative is zero everywhere.
The patterns are conservative otherwise (a coefficient 0 or a cancellation is still an entry).
Arrays come from a validated Tape (no bounds checks here).
"""
import numpy as np
from numba import njit

_jit = njit(cache=True, error_model="numpy", nogil=True)


# Compile time: these kernels are on the path of the first Hessian in a fresh process. Numba's
# array slice assignment (`b[:k] = a[:k]`) costs ~3 s of compilation there (its broadcasting
# and error-message code) and its sort ~1.5 s, so plain loops and a small heapsort stand in.
@_jit
def copy_range(src, s0, dst, d0, k):
    """dst[d0:d0+k] = src[s0:s0+k]."""
    for u in range(k):
        dst[d0 + u] = src[s0 + u]


@_jit
def grow(a, used, need):
    """a with room for `need` more items after the first `used` (doubling)."""
    if used + need <= a.shape[0]:
        return a
    b = np.empty(max(2 * a.shape[0], used + need), a.dtype)
    copy_range(a, 0, b, 0, used)
    return b


@_jit
def _sift_down(a, lo, root, end):
    """Restore the max-heap a[lo:lo+end] (0-based heap positions) below position root."""
    v = a[lo + root]
    while True:
        child = 2 * root + 1
        if child >= end:
            break
        if child + 1 < end and a[lo + child + 1] > a[lo + child]:
            child += 1
        if a[lo + child] <= v:
            break
        a[lo + root] = a[lo + child]
        root = child
    a[lo + root] = v


@_jit
def sort_range(a, lo, hi):
    """Sort a[lo:hi] in place: insertion sort for short ranges (numba's sort costs ~0.1 us
    per call; on Rosenbrock's 2-entry interaction rows it was 2/3 of building the plan), a
    heapsort for long ones."""
    n = hi - lo
    if n > 16:
        for root in range(n // 2 - 1, -1, -1):
            _sift_down(a, lo, root, n)
        for end in range(n - 1, 0, -1):
            v = a[lo + end]
            a[lo + end] = a[lo]
            a[lo] = v
            _sift_down(a, lo, 0, end)
        return
    for k in range(lo + 1, hi):
        v = a[k]
        q = k - 1
        while q >= lo and a[q] > v:
            a[q + 1] = a[q]
            q -= 1
        a[q + 1] = v


@_jit
def live_ops(code, eptr, arg, n_in, out, zero_d):
    """uint8 (n_ops,): 1 for ops whose value can influence some output through nonzero
    derivatives (reverse reachability, not passing through piecewise-constant ops)."""
    n_ops = eptr.shape[0] - 1
    live = np.zeros(n_in + n_ops, np.uint8)
    for k in range(out.shape[0]):
        live[out[k]] = 1
    for i in range(n_ops - 1, -1, -1):
        if live[n_in + i] and not zero_d[code[i]]:
            for e in range(eptr[i], eptr[i + 1]):
                live[arg[e]] = 1
        else:
            live[n_in + i] = 0
    return live[n_in:].copy()


@_jit
def _sets_sweep(code, eptr, arg, tptr, ta, tb, n_in, live, keep, terms):
    """The forward index-set sweep.

    Returns (start, size, arena, pool_start, pool_size, pool, tpair, n_tpair):
    per slot, its set arena[start:start+size] (kept to the end only where keep[slot]);
    with `terms`, for every term (p, q) of a live op with nonempty operand sets, a pair of ids
    into the pool copies (tpair[2k], tpair[2k+1]), pool id j being pool[pool_start[j]:...+
    pool_size[j]].
    """
    n_ops = eptr.shape[0] - 1
    n_slots = n_in + n_ops
    # last op reading each slot (n_ops for kept slots: never dropped)
    last = np.full(n_slots, -1, np.int64)
    for i in range(n_ops):
        if live[i]:
            for e in range(eptr[i], eptr[i + 1]):
                last[arg[e]] = i
    for s in range(n_slots):
        if keep[s]:
            last[s] = n_ops
    start = np.zeros(n_slots, np.int64)
    size = np.zeros(n_slots, np.int64)
    arena = np.empty(max(2 * n_in, 1024), np.int32)
    used = 0
    for s in range(n_in):
        start[s] = s
        size[s] = 1
        arena[s] = s
    used = n_in
    stamp = np.full(n_in, -1, np.int64)
    tmp = np.empty(max(n_in, 1), np.int32)
    # pool copies of term operand sets (one per slot) and the term pairs
    pid = np.full(n_slots, -1, np.int64)
    pool_start = np.empty(16, np.int64)
    pool_size = np.empty(16, np.int64)
    n_pool = 0
    pool = np.empty(1024, np.int32)
    pool_used = 0
    tpair = np.empty(64, np.int64)
    n_tpair = 0
    for i in range(n_ops):
        if not live[i]:
            continue
        s = n_in + i
        k = 0
        for e in range(eptr[i], eptr[i + 1]):
            t = arg[e]
            for a in range(start[t], start[t] + size[t]):
                v = arena[a]
                if stamp[v] != i:
                    stamp[v] = i
                    tmp[k] = v
                    k += 1
        if terms:
            for tt in range(tptr[i], tptr[i + 1]):
                a = arg[ta[tt]]
                b = arg[tb[tt]]
                if size[a] == 0 or size[b] == 0:
                    continue
                for side in range(2):
                    u = a if side == 0 else b
                    if pid[u] < 0:
                        pool_start = grow(pool_start, n_pool, 1)
                        pool_size = grow(pool_size, n_pool, 1)
                        pool = grow(pool, pool_used, size[u])
                        pool_start[n_pool] = pool_used
                        pool_size[n_pool] = size[u]
                        pool[pool_used:pool_used + size[u]] = arena[start[u]:start[u] + size[u]]
                        pool_used += size[u]
                        pid[u] = n_pool
                        n_pool += 1
                tpair = grow(tpair, n_tpair, 2)
                tpair[n_tpair] = pid[a]
                tpair[n_tpair + 1] = pid[b]
                n_tpair += 2
        if used + k > arena.shape[0]:
            # compact: keep the sets still to be read (or kept), drop the rest
            total = 0
            for r in range(s):
                if last[r] >= i:
                    total += size[r]
            # each compaction scans the s slots so far: room for at least s more entries
            # keeps their cost amortised (and the arena never shrinks)
            fresh = np.empty(max(2 * (total + k), arena.shape[0], s), np.int32)
            pos = 0
            for r in range(s):
                if size[r] > 0 and last[r] >= i:
                    copy_range(arena, start[r], fresh, pos, size[r])
                    start[r] = pos
                    pos += size[r]
                else:
                    size[r] = 0
            arena = fresh
            used = pos
        start[s] = used
        size[s] = k
        copy_range(tmp, 0, arena, used, k)
        used += k
    return start, size, arena, pool_start, pool_size, pool, tpair, n_tpair


@_jit
def jacobian_pattern(code, eptr, arg, tptr, ta, tb, n_in, out, zero_d):
    """CSR (indptr int64 (m+1,), indices int32, sorted per row) of the (m, n_in) Jacobian."""
    n_ops = eptr.shape[0] - 1
    live = live_ops(code, eptr, arg, n_in, out, zero_d)
    keep = np.zeros(n_in + n_ops, np.uint8)
    for r in range(out.shape[0]):
        keep[out[r]] = 1
    start, size, arena, _, _, _, _, _ = _sets_sweep(code, eptr, arg, tptr, ta, tb, n_in, live,
                                                    keep, False)
    m = out.shape[0]
    indptr = np.zeros(m + 1, np.int64)
    for r in range(m):
        indptr[r + 1] = indptr[r] + size[out[r]]
    indices = np.empty(indptr[m], np.int32)
    for r in range(m):
        s = out[r]
        indices[indptr[r]:indptr[r + 1]] = arena[start[s]:start[s] + size[s]]
        sort_range(indices, indptr[r], indptr[r + 1])
    return indptr, indices


@_jit
def hessian_pattern(code, eptr, arg, tptr, ta, tb, n_in, out, zero_d, budget):
    """CSR (indptr int64 (n_in+1,), indices int32, sorted per row) of the symmetric Hessian
    pattern of any weighted sum of the outputs.

    budget >= 0: give up (return an empty indptr) when merging the term sets would take more
    than `budget` steps, i.e. when the Hessian is dense enough that its pattern costs about as
    much as the dense Hessian itself.
    """
    n_ops = eptr.shape[0] - 1
    live = live_ops(code, eptr, arg, n_in, out, zero_d)
    keep = np.zeros(n_in + n_ops, np.uint8)
    _, _, _, pstart, psize, pool, tpair, n_tpair = _sets_sweep(code, eptr, arg, tptr, ta, tb,
                                                               n_in, live, keep, True)
    if budget >= 0:
        work = 0
        for k in range(0, n_tpair, 2):
            a = tpair[k]
            b = tpair[k + 1]
            work += psize[a] * psize[b] * (1 if a == b else 2)
        if work > budget:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
    # row incidence: row r meets partner set j for every term pair with r in the other set
    cnt = np.zeros(n_in + 1, np.int64)
    for k in range(0, n_tpair, 2):
        a = tpair[k]
        b = tpair[k + 1]
        for u in range(pstart[a], pstart[a] + psize[a]):
            cnt[pool[u] + 1] += 1
        if b != a:
            for u in range(pstart[b], pstart[b] + psize[b]):
                cnt[pool[u] + 1] += 1
    for r in range(n_in):
        cnt[r + 1] += cnt[r]
    partner = np.empty(cnt[n_in], np.int64)
    fill = cnt[:n_in].copy()
    for k in range(0, n_tpair, 2):
        a = tpair[k]
        b = tpair[k + 1]
        for u in range(pstart[a], pstart[a] + psize[a]):
            r = pool[u]
            partner[fill[r]] = b
            fill[r] += 1
        if b != a:
            for u in range(pstart[b], pstart[b] + psize[b]):
                r = pool[u]
                partner[fill[r]] = a
                fill[r] += 1
    # rows: union of the partner sets
    stamp = np.full(n_in, -1, np.int64)
    indptr = np.zeros(n_in + 1, np.int64)
    indices = np.empty(1024, np.int32)
    used = 0
    for r in range(n_in):
        worst = 0  # room for the row made once, not per entry (cheaper inner loop)
        for c in range(cnt[r], cnt[r + 1]):
            worst += psize[partner[c]]
        indices = grow(indices, used, worst)
        for c in range(cnt[r], cnt[r + 1]):
            j = partner[c]
            for u in range(pstart[j], pstart[j] + psize[j]):
                v = pool[u]
                if stamp[v] != r:
                    stamp[v] = r
                    indices[used] = v
                    used += 1
        sort_range(indices, indptr[r], used)
        indptr[r + 1] = used
    return indptr, indices[:used].copy()
