"""Numba-compiled sweeps over the flat tape arrays.

Slots: 0..n_in-1 hold the inputs, slot n_in+i holds the result of op i. Op i's operands are
arg[eptr[i]:eptr[i+1]] (edges) and its second-order terms are ta/tb[tptr[i]:tptr[i+1]] (pairs of
global edge indices). `forward` computes values and stores, per point, each edge's first
partial (d1) and each term's second partial (d2); all other sweeps are op-agnostic
multiply-adds over those. Arrays reaching these functions are validated in `tape.py`
(no bounds checks here).
"""
import numpy as np
from numba import njit, prange

from . import opcodes as oc
from . import packs
from .rules import binary_rule, select_rule, unary_rule

_jit = njit(cache=True, error_model="numpy", nogil=True)
# The one-direction sweeps are compiled without Numba's reference counting (_nrt=False, see
# run_sweeps.py): they allocate nothing, and their array views only borrow the caller's arrays.
_fjit = njit(cache=True, error_model="numpy", nogil=True, _nrt=False)
_pjit = njit(cache=True, error_model="numpy", nogil=True, parallel=True)


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def store_binary(mode, nt, e0, t0, d1, d2, da, db, daa, dab, dbb):
    """The partials of one binary op into d1/d2, in the layout of its term pattern (nt terms
    from t0; `opcodes.TERM_PATTERN`)."""
    if mode == oc.VV:
        d1[e0] = da
        d1[e0 + 1] = db
        if nt == 3:
            d2[t0] = daa
            d2[t0 + 1] = dab
            d2[t0 + 2] = dbb
        elif nt == 2:  # divide: (0,1), (1,1)
            d2[t0] = dab
            d2[t0 + 1] = dbb
        elif nt == 1:  # multiply: (0,1)
            d2[t0] = dab
    elif mode == oc.VC:
        d1[e0] = da
        if nt == 1:
            d2[t0] = daa
    else:
        d1[e0] = db
        if nt == 1:
            d2[t0] = dbb


@_fjit
def copy_into(dst, src):
    """dst[:len(src)] = src, as a loop over the slices: the slice assignment costs ~3 s of
    compilation (sparsity.py) and ran 2x slower (0.38 against 0.19 us for 10^3 values)."""
    d = dst[:src.shape[0]]
    for j in range(src.shape[0]):
        d[j] = src[j]


@_fjit
def forward(code, param, eptr, arg, coef, tptr, n_in, x, partials, val, d1, d2):
    """Values of all slots into val (n_slots,); with `partials`, also the first partial of every
    edge into d1 (n_edges,) and the second partial of every term into d2 (n_terms,)."""
    copy_into(val, x)
    forward_ops(code, param, eptr, arg, coef, tptr, n_in, partials, val, d1, d2, 0,
                code.shape[0])


# LIN ops with at least this many edges add their products in 4 lanes (`lin_lanes`): one
# running sum waits ~3 cycles per add (10^3 terms ~1 us), 4 independent ones a quarter of that
LANES_FROM = 8


@_fjit
def lin_lanes(coef, val, arg, e0, e1):
    """sum(coef[e] * val[arg[e]]) over edges e0..e1-1 (at least 4): edge e0 + 4j + l goes
    to lane l, then (lane 0 + lane 1) + (lane 2 + lane 3). `run_sweeps._block_lanes` adds
    contiguous operands in exactly this order (the run and per-op sweeps agree bitwise)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    e = e0
    while e + 4 <= e1:
        s0 += coef[e] * val[arg[e]]
        s1 += coef[e + 1] * val[arg[e + 1]]
        s2 += coef[e + 2] * val[arg[e + 2]]
        s3 += coef[e + 3] * val[arg[e + 3]]
        e += 4
    if e < e1:
        s0 += coef[e] * val[arg[e]]
    if e + 1 < e1:
        s1 += coef[e + 1] * val[arg[e + 1]]
    if e + 2 < e1:
        s2 += coef[e + 2] * val[arg[e + 2]]
    return (s0 + s1) + (s2 + s3)


@_fjit
def forward_ops(code, param, eptr, arg, coef, tptr, n_in, partials, val, d1, d2, i0, i1):
    """Ops i0..i1-1 of `forward`, one at a time (also the per-op stretches of `run_sweeps`)."""
    for i in range(i0, i1):
        c = code[i]
        e0 = eptr[i]
        e1 = eptr[i + 1]
        if c == oc.LIN:
            if e1 - e0 >= LANES_FROM:
                v = param[i] + lin_lanes(coef, val, arg, e0, e1)
                if partials:
                    for e in range(e0, e1):
                        d1[e] = coef[e]
            else:  # one loop: the short sums of scalar code are most of its ops
                v = param[i]
                for e in range(e0, e1):
                    v += coef[e] * val[arg[e]]
                    if partials:
                        d1[e] = coef[e]
        elif c >= oc.BINARY_BASE:
            mode = (c - oc.BINARY_BASE) % 3
            if mode == oc.VV:
                a = val[arg[e0]]
                b = val[arg[e0 + 1]]
            elif mode == oc.VC:
                a = val[arg[e0]]
                b = param[i]
            else:
                a = param[i]
                b = val[arg[e0]]
            v, da, db, daa, dab, dbb = binary_rule(c, a, b, partials and mode != oc.CV,
                                                  partials and mode != oc.VC)
            if partials:
                store_binary(mode, tptr[i + 1] - tptr[i], e0, tptr[i], d1, d2, da, db, daa, dab,
                             dbb)
        elif c >= oc.UNARY_BASE:
            v, d, dd = unary_rule(c, val[arg[e0]], partials)
            if partials:
                d1[e0] = d
                if tptr[i + 1] > tptr[i]:
                    d2[tptr[i]] = dd
        elif c == oc.DOT:
            v = param[i]
            t = tptr[i]
            for e in range(e0, e1, 2):
                a = val[arg[e]]
                b = val[arg[e + 1]]
                v += a * b
                if partials:
                    d1[e] = b
                    d1[e + 1] = a
                    d2[t] = 1.0
                    t += 1
        elif c == oc.SELECT:
            v, dc, da, db = select_rule(val[arg[e0]], val[arg[e0 + 1]], val[arg[e0 + 2]])
            if partials:
                d1[e0] = dc
                d1[e0 + 1] = da
                d1[e0 + 2] = db
        else:  # CONST
            v = param[i]
        val[n_in + i] = v


@_jit
def gather(val, out):
    y = np.empty(out.shape[0])
    for k in range(out.shape[0]):
        y[k] = val[out[k]]
    return y


@_fjit
def reverse1(eptr, arg, d1, n_in, out, w, adj):
    """Adjoints of all slots into adj (n_slots,) for output weights w (m,): one reverse sweep."""
    reverse1_down_to(eptr, arg, d1, n_in, out, w, adj, 0)


@_fjit
def reverse1_down_to(eptr, arg, d1, n_in, out, w, adj, i0):
    """`reverse1` stopped after op i0: the adjoints of ops i0.. are final (every consumer of
    their slots comes later), those of lower slots are partial."""
    n_ops = eptr.shape[0] - 1
    adj[:] = 0.0
    for k in range(out.shape[0]):
        adj[out[k]] += w[k]
    for i in range(n_ops - 1, i0 - 1, -1):
        a = adj[n_in + i]
        for e in range(eptr[i], eptr[i + 1]):
            adj[arg[e]] += a * d1[e]


@_fjit
def tangent1(eptr, arg, d1, n_in, v, dot):
    """Tangents of all slots into dot (n_slots,) for one input direction v (n_in,)."""
    copy_into(dot, v)
    tangent1_ops(eptr, arg, d1, n_in, dot, 0, eptr.shape[0] - 1)


@_fjit
def tangent1_ops(eptr, arg, d1, n_in, dot, i0, i1):
    """The tangents of ops i0..i1-1 (`tangent1`), their operands' tangents in dot; ops of
    LANES_FROM edges or more sum in `lin_lanes`' 4 lanes (a mat-vec row's tangent is as
    long a sum as its value)."""
    for i in range(i0, i1):
        e0 = eptr[i]
        e1 = eptr[i + 1]
        if e1 - e0 >= LANES_FROM:
            dot[n_in + i] = lin_lanes(d1, dot, arg, e0, e1)
        else:
            acc = 0.0
            for e in range(e0, e1):
                acc += d1[e] * dot[arg[e]]
            dot[n_in + i] = acc


@_fjit
def hvp1(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, v, dot, bar):
    """H_w @ v for one direction v (n_in,) into bar[:n_in]; dot, bar (n_slots,) work arrays.

    The single-direction case gets its own 1-D kernel: 2-D indexing with k = 1 costs about 2x.
    """
    tangent1(eptr, arg, d1, n_in, v, dot)
    bar[:] = 0.0
    hvp1_ops(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, dot, bar, 0, eptr.shape[0] - 1)


@_fjit
def hvp1_ops(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, dot, bar, i0, i1):
    """`hvp1`'s reverse sweep over ops i1-1 down to i0: into bar, the first-order
    contributions of each op (its edges in order), then its second-order terms."""
    for i in range(i1 - 1, i0 - 1, -1):
        s = n_in + i
        b = bar[s]
        for e in range(eptr[i], eptr[i + 1]):
            bar[arg[e]] += d1[e] * b
        a = adj[s]
        for t in range(tptr[i], tptr[i + 1]):
            c = a * d2[t]
            p = ta[t]
            q = tb[t]
            bar[arg[p]] += c * dot[arg[q]]
            if p != q:
                bar[arg[q]] += c * dot[arg[p]]


@_fjit
def value_and_gradient(P, x, val, d1, d2, adj, g):
    """Forward sweep with partials then one reverse sweep, for a tape's pack without a plan
    (`packs.Pack`): returns y, the gradient into g (n_in,) (one dispatch of 7 arguments for
    small tapes: their unboxing is a tenth of a 100-input Rosenbrock gradient)."""
    n_in, code, param, eptr, arg, coef, tptr, _, _, out, _, _, _, _, _, _, _, one = (
        packs.unpack(P))
    forward(code, param, eptr, arg, coef, tptr, n_in, x, True, val, d1, d2)
    reverse1(eptr, arg, d1, n_in, out, one, adj)
    copy_into(g, adj[:n_in])
    return val[out[0]]


@_jit
def value(P, x, val):
    """The forward sweep without partials for a tape's pack without a plan (`packs.Pack`):
    values into val (n_slots,); returns the outputs y (m,) (one call of 3 arguments)."""
    n_in, code, param, eptr, arg, coef, tptr, _, _, out, _, _, _, _, _, _, _, _ = (
        packs.unpack(P))
    forward(code, param, eptr, arg, coef, tptr, n_in, x, False, val, val[:0], val[:0])
    return gather(val, out)


@_fjit
def hvp_at(P, x, sweep, lin_ready, val, d1, d2, adj, w, v, dot, bar, hv):
    """`run_sweeps.hvp_at` for a tape's pack without a plan: H_w @ v into hv (n_in,) in one
    call, the forward sweep at x first with `sweep` (lin_ready is unused: the per-op forward
    sweep writes every partial)."""
    n_in, code, param, eptr, arg, coef, tptr, ta, tb, out, _, _, _, _, _, _, _, _ = (
        packs.unpack(P))
    if sweep:
        forward(code, param, eptr, arg, coef, tptr, n_in, x, True, val, d1, d2)
    reverse1(eptr, arg, d1, n_in, out, w, adj)
    hvp1(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, v, dot, bar)
    copy_into(hv, bar[:n_in])


@_jit
def reverse(eptr, arg, d1, n_in, out, W, adj):
    """Adjoints into adj (n_slots, k) for k output weight vectors W (k, m)."""
    n_ops = eptr.shape[0] - 1
    k = W.shape[0]
    adj[:, :] = 0.0
    for r in range(out.shape[0]):
        s = out[r]
        for j in range(k):
            adj[s, j] += W[j, r]
    for i in range(n_ops - 1, -1, -1):
        s = n_in + i
        for e in range(eptr[i], eptr[i + 1]):
            t = arg[e]
            de = d1[e]
            for j in range(k):
                adj[t, j] += de * adj[s, j]


@_jit
def tangent(eptr, arg, d1, n_in, V, dot, act):
    """Tangents of all slots for input directions V (n_in, k), written into dot (n_slots, k).

    act (n_slots,) uint8 is set to 1 where a slot's tangent may be nonzero; rows of dot with
    act == 0 are left unwritten (they are zero). Ops whose operands are all inactive cost one
    flag check, which makes unit-seed blocks of a Hessian cheap on sparse problems.
    """
    n_ops = eptr.shape[0] - 1
    k = V.shape[1]
    for r in range(n_in):
        a = 0
        for j in range(k):
            dot[r, j] = V[r, j]
            if V[r, j] != 0.0:
                a = 1
        act[r] = a
    for i in range(n_ops):
        s = n_in + i
        started = False
        for e in range(eptr[i], eptr[i + 1]):
            t = arg[e]
            if act[t]:
                de = d1[e]
                if started:
                    for j in range(k):
                        dot[s, j] += de * dot[t, j]
                else:
                    for j in range(k):
                        dot[s, j] = de * dot[t, j]
                    started = True
        act[s] = 1 if started else 0


@_jit
def hvp(eptr, arg, d1, d2, n_in, adj, V, dot, bar, act, bact, tr):
    """Forward-over-reverse: H_w @ V (n_in, k) into bar[:n_in] (rows with bact == 0 are zero),
    given the first-order adjoints `adj` for the output weights w.

    The second-order reverse sweep *pulls*: slot s gathers from the ops that consume it and the
    second-order terms that name it, through the transposed index `tr` (see
    `tape.Tape._transposed`), and writes bar[s] once. Pushing instead (bar[arg[e]] += ...) makes
    every op that reads the same few slots (a mat-vec with a constant matrix) update the same
    memory in a chain of dependent stores, 2-3x slower on dense problems.
    dot, bar (n_slots, k) and act, bact (n_slots,) uint8 are work arrays; slots that no nonzero
    tangent or adjoint reaches are skipped by their flags.
    """
    cptr, cedge, eop, rptr, rterm, rpartner, rop = tr
    n_ops = eptr.shape[0] - 1
    k = V.shape[1]
    tangent(eptr, arg, d1, n_in, V, dot, act)
    acc = np.empty(k)
    for s in range(n_in + n_ops - 1, -1, -1):
        # the two loops below are written out: as a shared @njit helper (not inlined) the
        # kernel ran 1.4-1.8x slower on dense Hessians (measured side by side in one process)
        started = False
        for c in range(cptr[s], cptr[s + 1]):  # ops consuming s: d1 * their adjoint tangents
            e = cedge[c]
            o = n_in + eop[e]
            if bact[o]:
                de = d1[e]
                if started:
                    for j in range(k):
                        acc[j] += de * bar[o, j]
                else:
                    for j in range(k):
                        acc[j] = de * bar[o, j]
                    started = True
        for c in range(rptr[s], rptr[s + 1]):  # terms (s, q): adj * d2 * tangent of q
            q = arg[rpartner[c]]
            if act[q]:
                cc = adj[n_in + rop[c]] * d2[rterm[c]]
                if started:
                    for j in range(k):
                        acc[j] += cc * dot[q, j]
                else:
                    for j in range(k):
                        acc[j] = cc * dot[q, j]
                    started = True
        if started:
            for j in range(k):
                bar[s, j] = acc[j]
            bact[s] = 1
        else:
            bact[s] = 0


@_jit
def _chunk(n_blocks, n_chunks, c):
    """Blocks [b0, b1) of chunk c: contiguous, sizes differing by at most one."""
    q, r = divmod(n_blocks, n_chunks)
    b0 = c * q + min(c, r)
    return b0, b0 + q + (1 if c < r else 0)


@_jit
def hvp_chunk(eptr, arg, d1, d2, tr, n_in, adj, V, unit, out, Vc, dot, bar, acts, b0, b1):
    """Blocks b0..b1-1 of multi-direction HVPs: out[j, :] = (H_w @ V[:, j]) for the columns j of
    those blocks (unit: V is the identity and is not read). Vc (n_in, block) must be zero on
    entry and is left zero; dot, bar (n_slots, block), acts (2, n_slots) are work arrays."""
    act = acts[0]
    bact = acts[1]
    block = Vc.shape[1]
    n_cols = out.shape[0]
    for b in range(b0, b1):
        j0 = b * block
        k = min(n_cols, j0 + block) - j0
        for j in range(k):
            if unit:
                Vc[j0 + j, j] = 1.0
            else:
                for r in range(n_in):
                    Vc[r, j] = V[r, j0 + j]
        hvp(eptr, arg, d1, d2, n_in, adj, Vc, dot, bar, act, bact, tr)
        for j in range(k):
            if unit:
                Vc[j0 + j, j] = 0.0
            else:
                for r in range(n_in):
                    Vc[r, j] = 0.0
            for r in range(n_in):
                out[j0 + j, r] = bar[r, j] if bact[r] else 0.0


@_pjit
def hvp_columns(eptr, arg, d1, d2, tr, n_in, adj, V, unit, out, Vw, dotw, barw, actw):
    """out (k, n_in) = (H_w @ V).T for V (n_in, k) (or the identity when unit: the Hessian).

    Blocks of columns are split into c contiguous chunks run in prange; chunk i owns the work
    arrays Vw[i] (n_in, block, zero), dotw[i], barw[i] (n_slots, block), actw[i] (2, n_slots)
    and writes only its own rows of out.
    """
    block = Vw.shape[2]
    n_blocks = (out.shape[0] + block - 1) // block
    n_chunks = min(Vw.shape[0], n_blocks)
    for c in prange(n_chunks):
        b0, b1 = _chunk(n_blocks, n_chunks, c)
        hvp_chunk(eptr, arg, d1, d2, tr, n_in, adj, V, unit, out, Vw[c], dotw[c], barw[c],
                  actw[c], b0, b1)


@_jit
def tangent_chunk(eptr, arg, d1, n_in, out, J, Vc, dot, act, b0, b1):
    """Blocks b0..b1-1 of unit input directions: columns of the Jacobian J (m, n_in)."""
    m = out.shape[0]
    block = Vc.shape[1]
    for b in range(b0, b1):
        j0 = b * block
        k = min(n_in, j0 + block) - j0
        for j in range(k):
            Vc[j0 + j, j] = 1.0
        tangent(eptr, arg, d1, n_in, Vc, dot, act)
        for j in range(k):
            Vc[j0 + j, j] = 0.0
        for r in range(m):
            s = out[r]
            for j in range(k):
                J[r, j0 + j] = dot[s, j] if act[s] else 0.0


@_pjit
def jacobian_forward(eptr, arg, d1, n_in, out, J, Vw, dotw, actw):
    """Jacobian into J (m, n_in) from blocks of unit input directions; chunks in prange with
    work arrays Vw[c] (n_in, block, zero), dotw[c] (n_slots, block), actw[c] (n_slots,)."""
    block = Vw.shape[2]
    n_blocks = (n_in + block - 1) // block
    n_chunks = min(Vw.shape[0], n_blocks)
    for c in prange(n_chunks):
        b0, b1 = _chunk(n_blocks, n_chunks, c)
        tangent_chunk(eptr, arg, d1, n_in, out, J, Vw[c], dotw[c], actw[c], b0, b1)


@_jit
def reverse_chunk(eptr, arg, d1, n_in, out, J, Wc, adj, b0, b1):
    """Blocks b0..b1-1 of unit output adjoints: rows of the Jacobian J (m, n_in)."""
    m = out.shape[0]
    block = Wc.shape[0]
    for b in range(b0, b1):
        r0 = b * block
        k = min(m, r0 + block) - r0
        for j in range(k):
            Wc[j, r0 + j] = 1.0
        reverse(eptr, arg, d1, n_in, out, Wc, adj)
        for j in range(k):
            Wc[j, r0 + j] = 0.0
            for col in range(n_in):
                J[r0 + j, col] = adj[col, j]


@_pjit
def jacobian_reverse(eptr, arg, d1, n_in, out, J, Ww, adjw):
    """Jacobian into J (m, n_in) from blocks of unit output adjoints; chunks in prange with work
    arrays Ww[c] (block, m, zero) and adjw[c] (n_slots, block)."""
    block = Ww.shape[1]
    n_blocks = (out.shape[0] + block - 1) // block
    n_chunks = min(Ww.shape[0], n_blocks)
    for c in prange(n_chunks):
        b0, b1 = _chunk(n_blocks, n_chunks, c)
        reverse_chunk(eptr, arg, d1, n_in, out, J, Ww[c], adjw[c], b0, b1)


@_jit
def influence(eptr, arg, n_in, out):
    """Which inputs some output structurally depends on (reverse reachability)."""
    n_ops = eptr.shape[0] - 1
    live = np.zeros(n_in + n_ops, dtype=np.bool_)
    for k in range(out.shape[0]):
        live[out[k]] = True
    for i in range(n_ops - 1, -1, -1):
        if live[n_in + i]:
            for e in range(eptr[i], eptr[i + 1]):
                live[arg[e]] = True
    return live[:n_in].copy()


@_pjit
def symmetrize(H, tile):
    """H <- (H + H.T) / 2 in place, in tiles (no temporary), tile rows in prange."""
    n = H.shape[0]
    n_tiles = (n + tile - 1) // tile
    for ti in prange(n_tiles):
        i0 = ti * tile
        i1 = min(n, i0 + tile)
        for j0 in range(i0, n, tile):
            j1 = min(n, j0 + tile)
            for i in range(i0, i1):
                for j in range(max(j0, i + 1), j1):
                    a = 0.5 * (H[i, j] + H[j, i])
                    H[i, j] = a
                    H[j, i] = a


@_jit
def transpose(eptr, arg, tptr, ta, tb, n_slots):
    """The tape read backwards for the pulling `hvp` (counting sorts, one pass each):
    (cptr, cedge, eop, rptr, rterm, rpartner, rop) as uint32 arrays (read unsigned: see
    CONTRIBUTING, "Unsigned indices"), see `Tape._transposed`."""
    n_ops = eptr.shape[0] - 1
    n_edges = arg.shape[0]
    n_terms = ta.shape[0]
    eop = np.empty(n_edges, np.uint32)
    for i in range(n_ops):
        for e in range(eptr[i], eptr[i + 1]):
            eop[e] = i
    cptr = np.zeros(n_slots + 1, np.uint32)
    for e in range(n_edges):
        cptr[arg[e] + 1] += 1
    for s in range(n_slots):
        cptr[s + 1] += cptr[s]
    fill = cptr[:n_slots].copy()
    cedge = np.empty(n_edges, np.uint32)
    for e in range(n_edges):
        s = arg[e]
        cedge[fill[s]] = e
        fill[s] += 1
    rptr = np.zeros(n_slots + 1, np.uint32)
    for t in range(n_terms):
        rptr[arg[ta[t]] + 1] += 1
        if ta[t] != tb[t]:
            rptr[arg[tb[t]] + 1] += 1
    for s in range(n_slots):
        rptr[s + 1] += rptr[s]
    n_sides = rptr[n_slots]
    rterm = np.empty(n_sides, np.uint32)
    rpartner = np.empty(n_sides, np.uint32)
    rop = np.empty(n_sides, np.uint32)
    fill = rptr[:n_slots].copy()
    for i in range(n_ops):
        for t in range(tptr[i], tptr[i + 1]):
            for side in range(2 if ta[t] != tb[t] else 1):
                own = ta[t] if side == 0 else tb[t]
                s = arg[own]
                c = fill[s]
                rterm[c] = t
                rpartner[c] = tb[t] if side == 0 else ta[t]
                rop[c] = i
                fill[s] += 1
    return cptr, cedge, eop, rptr, rterm, rpartner, rop
