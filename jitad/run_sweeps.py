"""Run-aware forward and reverse sweeps: the per-op sweeps of `sweeps.py`, with the runs of a
`runs.Plan` swept as tight loops over contiguous memory.

A run branches on its op code once, then loops over its ops reading operands at base + k *
stride (no CSR gather of `arg`) and writing values and partials contiguously; LIN runs (the
bulk of array code: sums, differences, scaling, mat-vecs) are plain loops LLVM vectorises.
Partials are stored in d1/d2 exactly as the per-op forward stores them, so every other sweep
(tangent, HVP, Hessian, Jacobian) reads them unchanged. Contributions are added in the per-op
order (ops last to first in the reverse sweep), so results are bitwise identical to `sweeps.py`.
Besides the forward and reverse sweeps: `gradient` (both in one call) and `hvp1` (the
single-direction Hessian-vector product). Arrays are validated in `tape.py` and the plan is
checked when built (`runs.build`): no bounds checks here.
"""
from numba import njit, prange

from . import opcodes as oc
from . import packs, sweeps
from .rules import binary_rule, multiply_partials, square_partials, unary_rule
from .runs import (BLOCK, COVERED, ELEM, FIRST0, FIRST1, FUSE_CHUNK, FUSED, OPS, SAME_COEF,
                   SAME_PARAM, SKIP_NONE, disjoint)

# The sweeps allocate nothing, so they are compiled without Numba's reference counting
# (`_fjit`, as in sweeps.py): every array view (a run's operands, a pack's arrays) otherwise
# costs an NRT_incref/NRT_decref pair of calls, ~150 ns per run entered (measured: a run of 20
# squares 79 ns with it, 14 ns without), a third of a 100-input Rosenbrock gradient. Views
# here only borrow the caller's arrays. A kernel that returns a new array keeps it (`_jit`).
_fjit = njit(cache=True, error_model="numpy", nogil=True, _nrt=False)
_ijit = njit(cache=True, error_model="numpy", nogil=True, inline="always")
_jit = njit(cache=True, error_model="numpy", nogil=True)


_ops_forward = sweeps.forward_ops  # the per-op stretches between runs


_store_binary = sweeps.store_binary


# The rules inlined into the run loops (numba IR inlining of the same functions: the calculus
# stays in rules.py). Called out of line, as the per-op sweep does, a run of x**2 cost ~3x more
# per op: the call and its 6-tuple return dominate once the op-code dispatch is gone.
_unary_rule = njit(cache=True, error_model="numpy", nogil=True, inline="always")(
    unary_rule.py_func)
_binary_rule = njit(cache=True, error_model="numpy", nogil=True, inline="always")(
    binary_rule.py_func)


@_fjit
def _lin_same(y, val, n, E, b0, s0, b1, s1, p, c0, c1):
    """y[k] = (p + c0 * x0[k]) + c1 * x1[k] with shared p, c0, c1 (same rounding as per op).

    Operands are sliced out of val so that LLVM sees unit-stride loops it can vectorise."""
    if E == 1:
        if s0 == 1:
            x0 = val[b0:b0 + n]
            for k in range(n):
                y[k] = p + c0 * x0[k]
        else:
            y[:] = p + c0 * val[b0]
    elif E == 2:
        if s0 == 1 and s1 == 1:
            x0 = val[b0:b0 + n]
            x1 = val[b1:b1 + n]
            for k in range(n):
                y[k] = (p + c0 * x0[k]) + c1 * x1[k]
        elif s0 == 1:
            x0 = val[b0:b0 + n]
            q = c1 * val[b1]
            for k in range(n):
                y[k] = (p + c0 * x0[k]) + q
        elif s1 == 1:
            x1 = val[b1:b1 + n]
            q = p + c0 * val[b0]
            for k in range(n):
                y[k] = q + c1 * x1[k]
        else:
            y[:] = (p + c0 * val[b0]) + c1 * val[b1]
    else:
        y[:] = p


@_fjit
def _lin_any(y, pp, cc, val, n, E, b0, s0, b1, s1):
    """y[k] = (pp[k] + cc[E*k] * x0[k]) + cc[E*k+1] * x1[k] (per-op params and coefficients)."""
    if E == 1:
        if s0 == 1:
            x0 = val[b0:b0 + n]
            for k in range(n):
                y[k] = pp[k] + cc[k] * x0[k]
        else:
            z = val[b0]
            for k in range(n):
                y[k] = pp[k] + cc[k] * z
    elif E == 2:
        for k in range(n):
            y[k] = (pp[k] + cc[2 * k] * val[b0 + k * s0]) + cc[2 * k + 1] * val[b1 + k * s1]
    else:
        sweeps.copy_into(y, pp)


_MUL_VV = oc.binary_code("multiply", oc.VV)
_POW_VC = oc.binary_code("power", oc.VC)
_SQUARE = oc.UNARY_CODE["square"]


@_fjit
def _multiply_run(val, y, n, b0, b1, partials, d1, d2, e0, t0):
    """A run of a * b over contiguous operands: no rule dispatch, so LLVM vectorises it."""
    x0 = val[b0:b0 + n]
    x1 = val[b1:b1 + n]
    for k in range(n):
        y[k] = x0[k] * x1[k]
    if partials:
        # sliced destinations: indexing d1[e0 + k] checks for a negative index on every
        # store, which kept LLVM from vectorising these loops (x**2 runs took 3.6x longer)
        g = d1[e0:e0 + 2 * n]
        h = d2[t0:t0 + n]
        for k in range(n):
            da, db, dab = multiply_partials(x0[k], x1[k])
            g[2 * k] = da
            g[2 * k + 1] = db
            h[k] = dab


@_fjit
def _square_run(val, y, n, b0, partials, d1, d2, e0, t0):
    """A run of x**2 (np.square, or power with the shared exponent 2) over contiguous
    operands: one edge and one term per op."""
    x0 = val[b0:b0 + n]
    for k in range(n):
        y[k] = x0[k] * x0[k]
    if partials:
        g = d1[e0:e0 + n]  # sliced: see _multiply_run
        h = d2[t0:t0 + n]
        for k in range(n):
            d, dd = square_partials(x0[k])
            g[k] = d
            h[k] = dd


@_fjit
def _geometry(eptr, tptr, n_in, i0, i1):
    """(ops, first edge, edges per op, first term, terms per op, first output slot) of the
    run of ops i0..i1-1."""
    e0 = eptr[i0]
    t0 = tptr[i0]
    return i1 - i0, e0, eptr[i0 + 1] - e0, t0, tptr[i0 + 1] - t0, n_in + i0


@_ijit
def _elem_common(c, param, eptr, coef, tptr, n_in, partials, lin_d1, val, d1, d2, i0, i1, b0,
                 s0, b1, s1, fl, p, c0, c1):
    """The ELEM runs array code records most (LIN, a * b, x**2; arguments as `_elem_forward`):
    swept here, returns True; else False. A small function of its own: entering
    `_elem_forward`, whose inlined rules make it large, cost ~70 ns per run, a third of a
    100-input Rosenbrock forward sweep."""
    n, e0, E, t0, nt, o = _geometry(eptr, tptr, n_in, i0, i1)
    y = val[o:o + n]
    if c == oc.LIN:
        if (fl & SAME_PARAM) != 0 and (fl & SAME_COEF) != 0:
            _lin_same(y, val, n, E, b0, s0, b1, s1, p, c0, c1)
        else:
            _lin_any(y, param[i0:i1], coef[e0:e0 + n * E], val, n, E, b0, s0, b1, s1)
        if lin_d1:
            sweeps.copy_into(d1[e0:e0 + n * E], coef[e0:e0 + n * E])
    elif c == _MUL_VV and s0 == 1 and s1 == 1:
        _multiply_run(val, y, n, b0, b1, partials, d1, d2, e0, t0)
    elif s0 == 1 and (c == _SQUARE or c == _POW_VC and (fl & SAME_PARAM) != 0 and p == 2.0):
        _square_run(val, y, n, b0, partials, d1, d2, e0, t0)
    else:
        return False
    return True


@_fjit
def _elem_forward(c, param, eptr, coef, tptr, n_in, partials, lin_d1, val, d1, d2, i0, i1, b0,
                  s0, b1, s1, fl, p, c0, c1):
    """An ELEM run not swept by `_elem_common`: ops i0..i1-1 of code c, operand p of op i0+k
    at slot b_p + k*s_p; fl are its SAME_* flags with the shared param p and coefficients c0,
    c1. lin_d1: write the partials of LIN ops too (they are their coefficients)."""
    n, e0, E, t0, nt, o = _geometry(eptr, tptr, n_in, i0, i1)
    y = val[o:o + n]
    if c >= oc.BINARY_BASE:
        mode = (c - oc.BINARY_BASE) % 3
        wa = partials and mode != oc.CV
        wb = partials and mode != oc.VC
        same_p = (fl & SAME_PARAM) != 0  # x**2: a loop-invariant exponent LLVM can unswitch on
        for k in range(n):
            q = p if same_p else param[i0 + k]
            if mode == oc.VV:
                a = val[b0 + k * s0]
                b = val[b1 + k * s1]
            elif mode == oc.VC:
                a = val[b0 + k * s0]
                b = q
            else:
                a = q
                b = val[b0 + k * s0]
            v, da, db, daa, dab, dbb = _binary_rule(c, a, b, wa, wb)
            y[k] = v
            if partials:
                _store_binary(mode, nt, e0 + k * E, t0 + k * nt, d1, d2, da, db, daa, dab, dbb)
    elif c >= oc.UNARY_BASE:
        # one inlined call site: each copy of the 31-way rule costs seconds of compile time
        for k in range(n):
            v, d, dd = _unary_rule(c, val[b0 + k * s0], partials)
            y[k] = v
            if partials:
                d1[e0 + k] = d
                if nt == 1:
                    d2[t0 + k] = dd
    elif c == oc.DOT:  # one pair per op
        for k in range(n):
            a = val[b0 + k * s0]
            b = val[b1 + k * s1]
            y[k] = param[i0 + k] + a * b
            if partials:
                d1[e0 + 2 * k] = b
                d1[e0 + 2 * k + 1] = a
                d2[t0 + k] = 1.0
    else:  # CONST
        sweeps.copy_into(y, param[i0:i1])


@_fjit
def _block_lanes(c, x):
    """sum(c * x) in the 4 lanes of `sweeps.lin_lanes`, in its order."""
    E = c.shape[0]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    q = E // 4
    for j in range(q):
        s0 += c[4 * j] * x[4 * j]
        s1 += c[4 * j + 1] * x[4 * j + 1]
        s2 += c[4 * j + 2] * x[4 * j + 2]
        s3 += c[4 * j + 3] * x[4 * j + 3]
    e = 4 * q
    if e < E:
        s0 += c[e] * x[e]
    if e + 1 < E:
        s1 += c[e + 1] * x[e + 1]
    if e + 2 < E:
        s2 += c[e + 2] * x[e + 2]
    return (s0 + s1) + (s2 + s3)


@_fjit
def _block_row(p, c, x):
    """p + sum(c * x), in the order of the per-op sweeps: 4 lanes from sweeps.LANES_FROM
    terms on, else one running sum from p."""
    if c.shape[0] >= sweeps.LANES_FROM:
        return p + _block_lanes(c, x)
    v = p
    for j in range(c.shape[0]):
        v += c[j] * x[j]
    return v


@_fjit
def _block_forward(param, eptr, coef, n_in, lin_d1, val, d1, i0, i1, b, s):
    """A BLOCK run: LIN op i0+k sums coef * x over slots b + k*s + j, j < E (sum, mat-vec)."""
    e0 = eptr[i0]
    E = eptr[i0 + 1] - e0
    o = n_in + i0
    for k in range(i1 - i0):
        val[o + k] = _block_row(param[i0 + k], coef[e0 + k * E:e0 + (k + 1) * E],
                                val[b + k * s:b + k * s + E])
    if lin_d1:
        sweeps.copy_into(d1[e0:e0 + (i1 - i0) * E], coef[e0:e0 + (i1 - i0) * E])


@_fjit
def forward(code, param, eptr, arg, coef, tptr, n_in, x, partials, lin_ready, val, d1, d2,
            seg, kind, base, stride, flags, const):
    """`sweeps.forward` over a run plan (`runs.Plan.arrays`): the same values in val
    (n_slots,) and, with `partials`, the same d1 (n_edges,) and d2 (n_terms,).

    lin_ready: d1 already holds the partials of the LIN runs (their coefficients, the same at
    every point) from an earlier sweep into the same array; they are the bulk of the edges of
    array code, and not writing them again halves the memory traffic of the sweep."""
    forward_some(code, param, eptr, arg, coef, tptr, n_in, x, partials, lin_ready, val, d1, d2,
                 seg, kind, base, stride, flags, const, SKIP_NONE)


@_jit
def value(P, x, val):
    """`sweeps.value` for a tape's pack with its plan: the run forward sweep without partials;
    returns the outputs y (m,)."""
    (n_in, code, param, eptr, arg, coef, tptr, _, _, out, seg, kind, base, stride, flags,
     const, _, _) = packs.unpack(P)
    forward_some(code, param, eptr, arg, coef, tptr, n_in, x, False, True, val, val[:0],
                 val[:0], seg, kind, base, stride, flags, const, SKIP_NONE)
    return sweeps.gather(val, out)


@_fjit
def forward_some(code, param, eptr, arg, coef, tptr, n_in, x, partials, lin_ready, val, d1, d2,
                 seg, kind, base, stride, flags, const, skip):
    """`forward` without the runs r with skip[r] (an empty skip: none): for derivative-only
    sweeps, `runs.Plan.value_free` with lin_ready (the skipped runs' partials are in d1).
    Their values are then missing from val."""
    lin_d1 = partials and not lin_ready
    sweeps.copy_into(val, x)
    R = kind.shape[0]
    some = skip.shape[0] > 0
    r = 0
    while r < R:
        if kind[r] == OPS:
            if not (some and skip[r]):
                _ops_forward(code, param, eptr, arg, coef, tptr, n_in, partials, val, d1, d2,
                             seg[r], seg[r + 1])
            r += 1
            continue
        r1 = _stretch_end(flags, r)
        _stretch(code, param, eptr, coef, tptr, n_in, partials, lin_d1, val, d1, d2, seg, kind,
                 base, stride, flags, const, skip, r, r1, 0, seg[r + 1] - seg[r])
        r = r1


@_fjit
def _stretch_end(flags, r):
    """The end of the stretch of runs that starts at run r (`runs.fused_stretches`)."""
    r1 = r + 1
    while r1 < flags.shape[0] and (flags[r1] & FUSED) != 0:
        r1 += 1
    return r1


@_fjit
def _stretch(code, param, eptr, coef, tptr, n_in, partials, lin_d1, val, d1, d2, seg, kind,
             base, stride, flags, const, skip, r0, r1, a, b):
    """Ops a..b-1 of each run r0..r1-1 of a stretch (`runs.fused_stretches`), runs skip[r]
    left out: chunk by chunk of runs.FUSE_CHUNK ops, every run's chunk in turn (a single run:
    in one piece)."""
    some = skip.shape[0] > 0
    step = b - a if r1 == r0 + 1 else FUSE_CHUNK
    for c0 in range(a, b, max(step, 1)):
        c1 = min(b, c0 + step)
        for r in range(r0, r1):
            if some and skip[r]:
                continue
            i0 = seg[r]
            _run(code, param, eptr, coef, tptr, n_in, partials, lin_d1, val, d1, d2, i0 + c0,
                 i0 + c1, kind[r], base[r, 0] + c0 * stride[r, 0], stride[r, 0],
                 base[r, 1] + c0 * stride[r, 1], stride[r, 1], flags[r], const[r, 0],
                 const[r, 1], const[r, 2])


@_ijit
def _run(code, param, eptr, coef, tptr, n_in, partials, lin_d1, val, d1, d2, i0, i1, kind, b0,
         s0, b1, s1, fl, p, c0, c1):
    """Ops i0..i1-1 of an ELEM or BLOCK run (the whole run, or a chunk of it: a run's ops
    are independent of each other), operand positions at b0 + k*s0 and b1 + k*s1."""
    if kind == ELEM:
        if not _elem_common(code[i0], param, eptr, coef, tptr, n_in, partials, lin_d1, val, d1,
                            d2, i0, i1, b0, s0, b1, s1, fl, p, c0, c1):
            _elem_forward(code[i0], param, eptr, coef, tptr, n_in, partials, lin_d1, val, d1,
                          d2, i0, i1, b0, s0, b1, s1, fl, p, c0, c1)
    else:
        _block_forward(param, eptr, coef, n_in, lin_d1, val, d1, i0, i1, b0, s0)


@njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def forward_parallel(code, param, eptr, arg, coef, tptr, n_in, x, partials, lin_ready, val, d1,
                     d2, seg, kind, base, stride, flags, const, skip, n_parts, min_ops):
    """`forward_some` with every stretch of runs of at least min_ops ops each split into
    n_parts parts swept by threads, a part of every run of the stretch per thread (the same
    values and partials, bitwise: each op is computed the same way)."""
    lin_d1 = partials and not lin_ready
    sweeps.copy_into(val, x)
    R = kind.shape[0]
    some = skip.shape[0] > 0
    r = 0
    while r < R:
        i0 = seg[r]
        n = seg[r + 1] - i0
        if kind[r] == OPS:
            if not (some and skip[r]):
                _ops_forward(code, param, eptr, arg, coef, tptr, n_in, partials, val, d1, d2, i0,
                             i0 + n)
            r += 1
            continue
        r1 = _stretch_end(flags, r)
        if n >= min_ops:
            for part in prange(n_parts):
                _stretch(code, param, eptr, coef, tptr, n_in, partials, lin_d1, val, d1, d2, seg,
                         kind, base, stride, flags, const, skip, r, r1, n * part // n_parts,
                         n * (part + 1) // n_parts)
        else:
            _stretch(code, param, eptr, coef, tptr, n_in, partials, lin_d1, val, d1, d2, seg,
                     kind, base, stride, flags, const, skip, r, r1, 0, n)
        r = r1


@_fjit
def gradient(P, x, lin_ready, skip_free, val, d1, d2, adj, g):
    """`forward_some` with partials, then `reverse1`, for a tape's pack (`packs.Pack`): the
    gradient of its single output into g (n_in,) and the adjoints into adj (n_slots,), in one
    call (two calls cost a microsecond more in argument unboxing, a tenth of a 10^3-input
    Rosenbrock gradient). skip_free: skip the value-free runs (needs lin_ready)."""
    (n_in, code, param, eptr, arg, coef, tptr, _, _, out, seg, kind, base, stride, flags,
     const, free, one) = packs.unpack(P)
    skip = free if skip_free else free[:0]
    forward_some(code, param, eptr, arg, coef, tptr, n_in, x, True, lin_ready, val, d1, d2,
                 seg, kind, base, stride, flags, const, skip)
    reverse1(eptr, arg, d1, n_in, out, one, adj, code, seg, kind, base, stride, flags, const)
    sweeps.copy_into(g, adj[:n_in])  # here, not adj[:n_in].copy() in Python: 0.15 against 0.7 us


@_fjit
def _rev_operand(adj, d1, e0, step, o, n, b, s, same, cv, first):
    """adj[b + k*s] += D[k] * adj[o + k] for one operand position of a run, where D[k] is its
    partial d1[e0 + k*step] (or cv when the run's ops share it). A stride-0 operand gathers its
    contributions for k = n-1 down to 0, the per-op order. first (`runs.FIRST0`): these are
    the slots' first contributions, added to 0.0 instead of to adj (which reverse1 then need
    not zero; 0.0 + p is the per-op sum, -0.0 included)."""
    ao = adj[o:o + n]
    if s == 1:
        xa = adj[b:b + n]
        if first:
            if same:
                for k in range(n):
                    xa[k] = 0.0 + ao[k] * cv
            elif step == 1:
                dk = d1[e0:e0 + n]
                for k in range(n):
                    xa[k] = 0.0 + ao[k] * dk[k]
            else:
                for k in range(n):
                    xa[k] = 0.0 + ao[k] * d1[e0 + k * step]
        elif same:
            for k in range(n):
                xa[k] += ao[k] * cv
        elif step == 1:
            dk = d1[e0:e0 + n]
            for k in range(n):
                xa[k] += ao[k] * dk[k]
        else:
            for k in range(n):
                xa[k] += ao[k] * d1[e0 + k * step]
    else:
        acc = 0.0 if first else adj[b]
        if same:
            for k in range(n - 1, -1, -1):
                acc += ao[k] * cv
        else:
            for k in range(n - 1, -1, -1):
                acc += ao[k] * d1[e0 + k * step]
        adj[b] = acc


@_fjit
def _rev_pair(adj, d1, e0, o, n, b0, b1, same, c0, c1, f0, f1):
    """adj[b0 + k] += D0[k] * adj[o + k] and adj[b1 + k] += D1[k] * adj[o + k] in one pass
    (disjoint unit-stride operands of a two-operand run; D and first (f0, f1) as in
    `_rev_operand`)."""
    ao = adj[o:o + n]
    xa = adj[b0:b0 + n]
    xb = adj[b1:b1 + n]
    if same:
        if f0 and f1:
            for k in range(n):
                xa[k] = 0.0 + ao[k] * c0
                xb[k] = 0.0 + ao[k] * c1
        elif f0:
            for k in range(n):
                xa[k] = 0.0 + ao[k] * c0
                xb[k] += ao[k] * c1
        elif f1:
            for k in range(n):
                xa[k] += ao[k] * c0
                xb[k] = 0.0 + ao[k] * c1
        else:
            for k in range(n):
                xa[k] += ao[k] * c0
                xb[k] += ao[k] * c1
    else:
        dk = d1[e0:e0 + 2 * n]
        if f0 and f1:
            for k in range(n):
                xa[k] = 0.0 + ao[k] * dk[2 * k]
                xb[k] = 0.0 + ao[k] * dk[2 * k + 1]
        elif f0:
            for k in range(n):
                xa[k] = 0.0 + ao[k] * dk[2 * k]
                xb[k] += ao[k] * dk[2 * k + 1]
        elif f1:
            for k in range(n):
                xa[k] += ao[k] * dk[2 * k]
                xb[k] = 0.0 + ao[k] * dk[2 * k + 1]
        else:
            for k in range(n):
                xa[k] += ao[k] * dk[2 * k]
                xb[k] += ao[k] * dk[2 * k + 1]


@_fjit
def _elem_reverse(c, eptr, d1, n_in, adj, i0, i1, b0, s0, b1, s1, fl, c0, c1, first):
    """The adjoint contributions of an ELEM run; first: honour the run's FIRST0/FIRST1 flags
    (the first-order reverse sweeps; `hvp1` zeroes its second-order adjoints)."""
    n = i1 - i0
    e0 = eptr[i0]
    E = eptr[i0 + 1] - e0
    o = n_in + i0
    same = c == oc.LIN and (fl & SAME_COEF) != 0  # partials are the shared coefficients
    f0 = first and (fl & FIRST0) != 0
    f1 = first and (fl & FIRST1) != 0
    if E == 1:
        _rev_operand(adj, d1, e0, 1, o, n, b0, s0, same, c0, f0)
    elif E == 2:
        if disjoint(n, b0, s0, b1, s1):
            if s0 == 1 and s1 == 1:  # one pass for both: each slot gets one contribution
                _rev_pair(adj, d1, e0, o, n, b0, b1, same, c0, c1, f0, f1)
            else:  # one pass per operand
                _rev_operand(adj, d1, e0, 2, o, n, b0, s0, same, c0, f0)
                _rev_operand(adj, d1, e0 + 1, 2, o, n, b1, s1, same, c1, f1)
        else:  # shared slots: the exact per-op order
            for k in range(n - 1, -1, -1):
                a = adj[o + k]
                adj[b0 + k * s0] += a * d1[e0 + 2 * k]
                adj[b1 + k * s1] += a * d1[e0 + 2 * k + 1]


@_fjit
def _block_reverse(eptr, d1, n_in, adj, i0, i1, b, s, first):
    """The adjoint contributions of a BLOCK run; first: its FIRST0 flag, honoured (the ops'
    operand blocks are then disjoint: `runs.first_writes`)."""
    e0 = eptr[i0]
    E = eptr[i0 + 1] - e0
    o = n_in + i0
    for k in range(i1 - i0 - 1, -1, -1):
        a = adj[o + k]
        dk = d1[e0 + k * E:e0 + (k + 1) * E]
        xa = adj[b + k * s:b + k * s + E]
        if first:
            for j in range(E):
                xa[j] = 0.0 + a * dk[j]
        else:
            for j in range(E):
                xa[j] += a * dk[j]


@_fjit
def reverse1(eptr, arg, d1, n_in, out, w, adj, code, seg, kind, base, stride, flags, const):
    """`sweeps.reverse1` over a run plan: adjoints of all slots into adj (n_slots,). Runs
    flagged FIRST0/FIRST1 assign their operands' first contributions, so only the inputs and
    the outputs of segments not COVERED are zeroed (`runs.first_writes`: 1/8 of the slots of
    a Rosenbrock tape, whose full zeroing was a tenth of its gradient)."""
    _zero_unreached(adj, n_in, seg, flags, 0, 1)
    for k in range(out.shape[0]):
        adj[out[k]] += w[k]
    for r in range(kind.shape[0] - 1, -1, -1):
        i0 = seg[r]
        i1 = seg[r + 1]
        kr = kind[r]
        if kr == ELEM:
            _elem_reverse(code[i0], eptr, d1, n_in, adj, i0, i1, base[r, 0], stride[r, 0],
                          base[r, 1], stride[r, 1], flags[r], const[r, 1], const[r, 2], True)
        elif kr == BLOCK:
            _block_reverse(eptr, d1, n_in, adj, i0, i1, base[r, 0], stride[r, 0],
                           (flags[r] & FIRST0) != 0)
        else:
            _ops_reverse(eptr, arg, d1, n_in, adj, i0, i1)


@_fjit
def _zero_unreached(adj, n_in, seg, flags, part, n_parts):
    """Zero part `part` of n_parts of the adjoints `reverse1` does not assign first: the
    inputs' and those of the segments not COVERED (`runs.first_writes`)."""
    for r in range(-1, seg.shape[0] - 1):
        if r < 0:
            a, b = 0, n_in
        elif flags[r] & COVERED:
            continue
        else:
            a, b = n_in + seg[r], n_in + seg[r + 1]
        z = adj[a + (b - a) * part // n_parts:a + (b - a) * (part + 1) // n_parts]
        for j in range(z.shape[0]):
            z[j] = 0.0


@njit(cache=True, error_model="numpy", nogil=True, parallel=True)
def reverse1_parallel(eptr, arg, d1, n_in, out, w, adj, code, seg, kind, base, stride, flags,
                      const, n_parts, min_ops):
    """`reverse1` with the zeroing, and every run of at least min_ops ops whose ops write
    distinct slots, split into n_parts chunks swept by threads: ELEM runs of unit-stride
    (and, for two, disjoint) operands, and single sums (one BLOCK op). Each slot gets the
    same contributions in the same order (first ones assigned alike), so the adjoints are
    bitwise `reverse1`'s."""
    for part in prange(n_parts):
        _zero_unreached(adj, n_in, seg, flags, part, n_parts)
    for k in range(out.shape[0]):
        adj[out[k]] += w[k]
    for r in range(kind.shape[0] - 1, -1, -1):
        i0 = seg[r]
        i1 = seg[r + 1]
        n = i1 - i0
        kr = kind[r]
        b0 = base[r, 0]
        s0 = stride[r, 0]
        b1 = base[r, 1]
        s1 = stride[r, 1]
        E = eptr[i0 + 1] - eptr[i0]
        if (kr == ELEM and n >= min_ops and s0 == 1 and (E == 1 or E == 2 and s1 == 1 and (
                b0 + n <= b1 or b1 + n <= b0))):
            for part in prange(n_parts):
                a = i0 + n * part // n_parts
                b = i0 + n * (part + 1) // n_parts
                if b > a:
                    _elem_reverse(code[i0], eptr, d1, n_in, adj, a, b, b0 + (a - i0),
                                  s0, b1 + (a - i0) * s1, s1, flags[r], const[r, 1],
                                  const[r, 2], True)
        elif kr == BLOCK and n == 1 and E >= min_ops:  # a sum: its operands are E slots
            g = adj[n_in + i0]
            e0 = eptr[i0]
            first = (flags[r] & FIRST0) != 0
            for part in prange(n_parts):
                lo = E * part // n_parts
                hi = E * (part + 1) // n_parts
                xa = adj[b0 + lo:b0 + hi]
                dk = d1[e0 + lo:e0 + hi]
                if first:
                    for j in range(hi - lo):
                        xa[j] = 0.0 + g * dk[j]
                else:
                    for j in range(hi - lo):
                        xa[j] += g * dk[j]
        elif kr == ELEM:
            _elem_reverse(code[i0], eptr, d1, n_in, adj, i0, i1, b0, s0, b1, s1, flags[r],
                          const[r, 1], const[r, 2], True)
        elif kr == BLOCK:
            _block_reverse(eptr, d1, n_in, adj, i0, i1, b0, s0, (flags[r] & FIRST0) != 0)
        else:
            _ops_reverse(eptr, arg, d1, n_in, adj, i0, i1)


@_fjit
def _ops_reverse(eptr, arg, d1, n_in, adj, i0, i1):
    """Ops i1-1 down to i0 one at a time: the loop of `sweeps.reverse1`."""
    for i in range(i1 - 1, i0 - 1, -1):
        a = adj[n_in + i]
        for e in range(eptr[i], eptr[i + 1]):
            adj[arg[e]] += a * d1[e]


# ------------------------------------------------------------------ Hessian-vector product
@_fjit
def hvp1(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, v, dot, bar, code, seg, kind, base,
         stride, flags, const):
    """`sweeps.hvp1` over a run plan: H_w @ v into bar[:n_in] (adj: the first-order adjoints
    for w; dot, bar (n_slots,) work arrays), bitwise the same (each slot gets its
    contributions in the per-op order)."""
    sweeps.copy_into(dot, v)
    for r in range(kind.shape[0]):
        i0 = seg[r]
        i1 = seg[r + 1]
        if kind[r] == ELEM:
            _elem_tangent(eptr, d1, n_in, dot, i0, i1, base[r, 0], stride[r, 0], base[r, 1],
                          stride[r, 1])
        elif kind[r] == BLOCK:
            _block_tangent(eptr, d1, n_in, dot, i0, i1, base[r, 0], stride[r, 0])
        else:
            sweeps.tangent1_ops(eptr, arg, d1, n_in, dot, i0, i1)
    bar[:] = 0.0
    for r in range(kind.shape[0] - 1, -1, -1):
        i0 = seg[r]
        i1 = seg[r + 1]
        if kind[r] == BLOCK:  # LIN ops: no second-order terms
            _block_reverse(eptr, d1, n_in, bar, i0, i1, base[r, 0], stride[r, 0], False)
        elif kind[r] == ELEM and tptr[i1] == tptr[i0]:  # no terms: the first-order reverse
            _elem_reverse(code[i0], eptr, d1, n_in, bar, i0, i1, base[r, 0], stride[r, 0],
                          base[r, 1], stride[r, 1], flags[r], const[r, 1], const[r, 2], False)
        elif kind[r] == ELEM:
            _elem_hvp(eptr, d1, tptr, ta, tb, d2, n_in, adj, dot, bar, arg, i0, i1, base[r, 0],
                      stride[r, 0], base[r, 1], stride[r, 1])
        else:
            sweeps.hvp1_ops(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, dot, bar, i0, i1)


@_fjit
def hvp_at(P, x, sweep, lin_ready, val, d1, d2, adj, w, v, dot, bar, hv):
    """H_w @ v into hv (n_in,) in one call, for a tape's pack (`packs.Pack`): with `sweep`,
    the forward sweep at x first (else val, d1, d2 hold x's values and partials); then the
    adjoints for w into adj, and `hvp1`."""
    (n_in, code, param, eptr, arg, coef, tptr, ta, tb, out, seg, kind, base, stride, flags,
     const, _, _) = packs.unpack(P)
    if sweep:
        forward_some(code, param, eptr, arg, coef, tptr, n_in, x, True, lin_ready, val, d1, d2,
                     seg, kind, base, stride, flags, const, SKIP_NONE)
    reverse1(eptr, arg, d1, n_in, out, w, adj, code, seg, kind, base, stride, flags, const)
    hvp1(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, v, dot, bar, code, seg, kind, base, stride,
         flags, const)
    sweeps.copy_into(hv, bar[:n_in])


@_fjit
def _elem_tangent(eptr, d1, n_in, dot, i0, i1, b0, s0, b1, s1):
    """Tangents of an ELEM run: 0.0 + the sum of d1 * operand tangents, in edge order (the
    per-op rounding, -0.0 included)."""
    n = i1 - i0
    e0 = eptr[i0]
    E = eptr[i0 + 1] - e0
    o = n_in + i0
    y = dot[o:o + n]
    if E == 1:
        g = d1[e0:e0 + n]
        if s0 == 1:
            t = dot[b0:b0 + n]
            for k in range(n):
                y[k] = 0.0 + g[k] * t[k]
        else:
            z = dot[b0]
            for k in range(n):
                y[k] = 0.0 + g[k] * z
    elif E == 2:
        g = d1[e0:e0 + 2 * n]
        if s0 == 1 and s1 == 1:
            ta = dot[b0:b0 + n]
            tb = dot[b1:b1 + n]
            for k in range(n):
                y[k] = (0.0 + g[2 * k] * ta[k]) + g[2 * k + 1] * tb[k]
        else:
            for k in range(n):
                y[k] = (0.0 + g[2 * k] * dot[b0 + k * s0]) + g[2 * k + 1] * dot[b1 + k * s1]
    else:  # constants
        y[:] = 0.0


@_fjit
def _block_tangent(eptr, d1, n_in, dot, i0, i1, b, s):
    e0 = eptr[i0]
    E = eptr[i0 + 1] - e0
    o = n_in + i0
    for k in range(i1 - i0):  # as `sweeps.tangent1_ops` (0.0 + a lane sum is the lane sum)
        dot[o + k] = _block_row(0.0, d1[e0 + k * E:e0 + (k + 1) * E],
                                dot[b + k * s:b + k * s + E])


@_fjit
def _elem_hvp(eptr, d1, tptr, ta, tb, d2, n_in, adj, dot, bar, arg, i0, i1, b0, s0, b1, s1):
    """`sweeps.hvp1_ops` over an ELEM run with second-order terms. With unit-stride operands
    (and, for two, disjoint ones) each slot gets contributions from one op of the run only,
    so op k's edges then terms, for all k at once, keep the per-op order; otherwise op by
    op. The terms follow the code's pattern (`opcodes.TERM_PATTERN`, checked when the tape
    was made), read off the run's first op."""
    n, e0, E, t0, nt, o = _geometry(eptr, tptr, n_in, i0, i1)
    bo = bar[o:o + n]
    ao = adj[o:o + n]
    if E == 1 and s0 == 1 and nt == 1:  # unary ops and x**c: the one term (0, 0)
        xb = bar[b0:b0 + n]
        xd = dot[b0:b0 + n]
        g = d1[e0:e0 + n]
        h = d2[t0:t0 + n]
        for k in range(n):
            xb[k] += g[k] * bo[k]
            xb[k] += (ao[k] * h[k]) * xd[k]
    elif (E == 2 and s0 == 1 and s1 == 1 and nt <= 3
          and (b0 + n <= b1 or b1 + n <= b0)):
        xa = bar[b0:b0 + n]
        xb = bar[b1:b1 + n]
        da = dot[b0:b0 + n]
        db = dot[b1:b1 + n]
        g = d1[e0:e0 + 2 * n]
        h = d2[t0:t0 + n * nt]
        for k in range(n):
            b = bo[k]
            xa[k] += g[2 * k] * b
            xb[k] += g[2 * k + 1] * b
            a = ao[k]
            for j in range(nt):
                c = a * h[k * nt + j]
                p = ta[t0 + j] - e0
                q = tb[t0 + j] - e0
                if p != q:  # (0, 1): the patterns hold no (1, 0)
                    xa[k] += c * db[k]
                    xb[k] += c * da[k]
                elif p == 0:
                    xa[k] += c * da[k]
                else:
                    xb[k] += c * db[k]
    else:
        sweeps.hvp1_ops(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, dot, bar, i0, i1)
