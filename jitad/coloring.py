"""Graph colourings for compressed derivatives (Gebremedhin, Manne and Pothen, SIAM Review 47,
2005), in numba.

- `greedy_partition`: colour the columns (or rows) of a Jacobian pattern so that no two
  columns of one colour share a row (distance-2 colouring of the bipartite graph): then
  J @ S, S the colour seed matrix, holds every entry of J once.
- `star_coloring`: colour the adjacency graph of a symmetric pattern so that the colouring is
  proper and every path on four vertices uses at least three colours. Then for every edge
  (i, j), j is the only neighbour of i with its colour or i the only neighbour of j with its
  colour, and each entry of H is read directly from H @ S (`star_sources`).

Greedy, in the order given (largest degree first from `sparse.py`). Patterns are CSR with
sorted rows, built by `sparsity.py`.
"""
import numpy as np
from numba import njit

_jit = njit(cache=True, error_model="numpy", nogil=True)


@_jit
def _smallest_free(forbidden, v):
    """The smallest colour not marked forbidden for vertex v (forbidden[c] == v)."""
    c = 0
    while forbidden[c] == v:
        c += 1
    return c


@_jit
def transpose_pattern(indptr, indices, n_cols):
    """CSR of the transpose of a (rows, n_cols) CSR pattern (rows sorted)."""
    n_rows = indptr.shape[0] - 1
    tptr = np.zeros(n_cols + 1, np.int64)
    for k in range(indices.shape[0]):
        tptr[indices[k] + 1] += 1
    for j in range(n_cols):
        tptr[j + 1] += tptr[j]
    fill = tptr[:n_cols].copy()
    tind = np.empty(indices.shape[0], np.int32)
    for r in range(n_rows):
        for k in range(indptr[r], indptr[r + 1]):
            j = indices[k]
            tind[fill[j]] = r
            fill[j] += 1
    return tptr, tind


@_jit
def greedy_partition(ptr, idx, tptr, tidx, order):
    """Colours (int32, from 0) of items v = 0..len(order)-1 such that two items sharing a
    line get different colours: item v lies on lines idx[ptr[v]:ptr[v+1]], line l holds items
    tidx[tptr[l]:tptr[l+1]]. For a column colouring, items are columns and lines rows."""
    n = ptr.shape[0] - 1
    color = np.full(n, -1, np.int32)
    forbidden = np.full(n + 1, -1, np.int64)
    for v in order:
        for a in range(ptr[v], ptr[v + 1]):
            line = idx[a]
            for b in range(tptr[line], tptr[line + 1]):
                w = tidx[b]
                if color[w] >= 0:
                    forbidden[color[w]] = v
        color[v] = _smallest_free(forbidden, v)
    return color


@_jit
def star_coloring(indptr, indices, order):
    """A star colouring (int32 colours from 0) of the graph whose edges are the off-diagonal
    entries of the symmetric CSR pattern, greedily in `order`.

    Vertex v may not take colour c when: a coloured neighbour has c (proper); or, for a
    coloured neighbour w (colour d) and a coloured neighbour x of w (colour c), the path
    v-w-x would end a two-coloured path on four vertices: x has another neighbour y != w of
    colour d (path v-w-x-y), or v has another coloured neighbour u != w of colour d (path
    u-v-w-x). Every path on four vertices is checked when its last vertex is coloured.
    """
    n = indptr.shape[0] - 1
    color = np.full(n, -1, np.int32)
    forbidden = np.full(n + 1, -1, np.int64)
    cstamp = np.full(n + 1, -1, np.int64)
    ccount = np.zeros(n + 1, np.int64)
    for v in order:
        for a in range(indptr[v], indptr[v + 1]):
            w = indices[a]
            if w != v and color[w] >= 0:
                d = color[w]
                forbidden[d] = v
                if cstamp[d] != v:
                    cstamp[d] = v
                    ccount[d] = 0
                ccount[d] += 1
        for a in range(indptr[v], indptr[v + 1]):
            w = indices[a]
            if w == v or color[w] < 0:
                continue
            d = color[w]
            multi = ccount[d] >= 2
            for b in range(indptr[w], indptr[w + 1]):
                x = indices[b]
                if x == v or x == w or color[x] < 0:
                    continue
                c = color[x]
                if forbidden[c] == v:
                    continue
                if multi:
                    forbidden[c] = v
                    continue
                for g in range(indptr[x], indptr[x + 1]):
                    y = indices[g]
                    if y != w and y != x and color[y] == d:
                        forbidden[c] = v
                        break
        color[v] = _smallest_free(forbidden, v)
    return color


@_jit
def position(indices, lo, hi, j):
    """Where j is or would go in the sorted indices[lo:hi] (binary search)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < j:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _find(indices, lo, hi, j):
    """Position of j in the sorted indices[lo:hi] (-1 when absent)."""
    p = position(indices, lo, hi, j)
    return p if p < hi and indices[p] == j else -1


@_jit
def star_sources(indptr, indices, color, n_colors):
    """For each entry k = (i, j) of the symmetric pattern, (vertex, colour) with H[i, j] =
    (H @ S)[vertex, colour], S the seed matrix of the star colouring; both entries of a pair
    read the same source, so the result is exactly symmetric. Returns (src_vertex int64,
    src_color int64, ok) where ok is False if the colouring is not a star colouring."""
    n = indptr.shape[0] - 1
    nnz = indices.shape[0]
    cstamp = np.full(n_colors, -1, np.int64)
    ccount = np.zeros(n_colors, np.int64)
    uniq = np.zeros(nnz, np.uint8)  # j is i's only neighbour of colour color[j]
    for i in range(n):
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            if j != i:
                d = color[j]
                if cstamp[d] != i:
                    cstamp[d] = i
                    ccount[d] = 0
                ccount[d] += 1
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            uniq[k] = 1 if (j == i or ccount[color[j]] == 1) else 0
    src_v = np.empty(nnz, np.int64)
    src_c = np.empty(nnz, np.int64)
    ok = True
    for i in range(n):
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            if j == i:  # no neighbour shares i's colour (checked below): H @ S reads it alone
                src_v[k] = i
                src_c[k] = color[i]
                continue
            a = min(i, j)
            b = max(i, j)
            kab = k if a == i else _find(indices, indptr[a], indptr[a + 1], b)
            kba = k if a == j else _find(indices, indptr[b], indptr[b + 1], a)
            if kab >= 0 and uniq[kab]:
                src_v[k] = a
                src_c[k] = color[b]
            elif kba >= 0 and uniq[kba]:
                src_v[k] = b
                src_c[k] = color[a]
            else:
                ok = False
                src_v[k] = i
                src_c[k] = color[j]
            if color[i] == color[j]:
                ok = False
    return src_v, src_c, ok
