"""Derivatives of derivatives: the derivative sweeps emitted as operations on the enclosing tape.

When a derivative is asked for on traced values (inside `jitad.record`, or inside a function
that is itself being differentiated), the inner function is recorded inline on the same
recorder and its reverse (or forward) sweep is *recorded* as LIN/DOT ops instead of being run:
the result is a traced value that can be differentiated again and replayed.

The sweep over a slot range [lo, hi) of the recorder, for k seed vectors at once:
- partials: for every op of one code, one vectorised call of the rule's partials part
  (`rules.unary_partials` / `binary_partials`, as plain Python) on the traced operand arrays
  records the first partials as traced values (`edge_partials`); LIN coefficients are
  constants and a DOT op's partials are its own operands, which records nothing;
- propagation: tangent(s) = sum over its operand edges of partial * tangent(operand) (forward),
  adjoint(s) = seed + sum over its consumer edges of partial * adjoint(consumer) (reverse).
  Each sum is one op (LIN when every product has a constant factor, else DOT), and all of them
  go to the recorder in one CSR append in sweep order, so an op only reads slots of earlier ops;
  slots that do not both depend on the seeded inputs and reach the outputs are skipped, and a
  slot gets ops only for the seed directions that reach it (`nested_kernels.support`): the unit
  directions of a recorded Hessian cost what the problem's sparsity allows, not n per slot.
Derivative references are kept as (slot, constant) pairs: slot >= 0 a traced value, else the
constant; constant seeds (the 1 of a gradient, unit directions of a Jacobian) stay constants.

Inputs of the inner function are fresh copies (one LIN op per element) of the traced
arguments, so repeated or constant elements are separate variables, and values the inner
function closes over (outer traced values) are constants to the inner derivative but stay on
the tape for the outer one.
"""
import types

import numpy as np
from . import opcodes as oc
from . import rules, sweeps
from .nested_kernels import polygamma_values, reach, support
from .tracing import Traced, TracedArray, TracedScalar, make, operands

# --------------------------------------------------------------------------- traced rules
def record_polygamma(n, x):
    """polygamma(n, x) for traced x: one op per element (mode CV, n the constant operand)."""
    shape = np.shape(x.val)
    n = np.broadcast_to(np.asarray(n, dtype=np.float64), shape)
    if np.any((n < 0) | (n != np.floor(n))):
        raise ValueError("polygamma: n must be a non-negative integer")
    rec = x.rec
    code = oc.binary_code("polygamma", oc.CV)
    val = polygamma_values(np.ascontiguousarray(n).ravel(),
                            np.asarray(x.val, dtype=np.float64).ravel())
    if isinstance(x, TracedScalar):
        return TracedScalar(rec, rec.append1(code, x.idx, -1, float(n)), float(val[0]))
    slots = rec.append(code, np.asarray(x.idx).reshape(-1, 1), param=n.ravel())
    return make(rec, slots.reshape(shape), val.reshape(shape))


def polygamma(n, x):
    """psi^(n)(x) (scipy.special.polygamma) for integer n >= 0, elementwise (n and x
    broadcast); on traced x it is recorded (its derivatives are polygamma(n + 1, x), ...).
    Returns float64 (a scalar for scalar arguments); NaN at the poles x = 0, -1, -2, ...;
    ValueError for a negative or non-integer n."""
    if isinstance(x, Traced):
        return record_polygamma(n, x)
    if isinstance(n, Traced):
        raise TypeError("polygamma: the order n cannot be a traced value")
    n, x = np.broadcast_arrays(np.asarray(n, dtype=np.float64), np.asarray(x, dtype=np.float64))
    if np.any((n < 0) | (n != np.floor(n))):
        raise ValueError("polygamma: n must be a non-negative integer")
    out = polygamma_values(np.ascontiguousarray(n).ravel(), np.ascontiguousarray(x).ravel())
    return out.reshape(x.shape) if x.ndim else out[0]


def _traced_rule(func):
    """The Python source of an njit rule with `polygamma` recording on traced values."""
    py = func.py_func
    g = dict(py.__globals__)
    g["polygamma"] = polygamma
    return types.FunctionType(py.__code__, g, py.__name__, py.__defaults__, py.__closure__)


_UNARY_PARTIALS = _traced_rule(rules.unary_partials)
_BINARY_PARTIALS = _traced_rule(rules.binary_partials)
_SELECT_PARTIALS = _traced_rule(rules.select_partials)


# --------------------------------------------------------------------------- slot values
def slot_values(rec):
    """Values of all slots of `rec` at its recording point (forward sweep over new ops only)."""
    rec.flush()
    x0 = getattr(rec, "x0", None)
    if x0 is None:
        raise RuntimeError("jitad: nested derivatives need a recorder made by jitad.record")
    state = getattr(rec, "_nested_values", None)
    if state is None:
        val = np.empty(max(256, rec.n_slots))
        val[:rec.n_in] = x0
        state = rec._nested_values = [val, 0]
    val, done = state
    n_ops = rec.code.n
    if n_ops > done:
        if val.shape[0] < rec.n_slots:
            new = np.empty(max(rec.n_slots, 2 * val.shape[0]))
            new[:rec.n_in + done] = val[:rec.n_in + done]
            val = state[0] = new
        eptr = rec.eptr.view()[done:]
        tptr = rec.tptr.view()[done:]
        n0 = rec.n_in + done
        u = np.uint32  # the recorder's int32 indices (non-negative, `recorder._fit` keeps
        # them in range), read unsigned as the Tape's kernels read them
        sweeps.forward(rec.code.view()[done:], rec.param.view()[done:], eptr.view(u),
                       rec.arg.view().view(u), rec.coef.view(), tptr.view(u), n0, val[:n0],
                       False, val, np.empty(0), np.empty(0))
        state[1] = n_ops
    return val[:rec.n_slots]


# --------------------------------------------------------------------------- partials
def _ref(r, K):
    """(slots, consts) of a partials result for K ops: a traced value or a constant."""
    if isinstance(r, Traced):
        return np.broadcast_to(np.asarray(r.idx, dtype=np.int64), (K,)), np.zeros(K)
    return np.full(K, -1, np.int64), np.broadcast_to(np.asarray(r, dtype=np.float64), (K,))


def _traced(rec, slots, val):
    return TracedArray(rec, np.asarray(slots, dtype=np.int64), np.asarray(val, dtype=np.float64))


def _spans(starts, counts):
    """Concatenated ranges [starts[i], starts[i] + counts[i]) (vectorised)."""
    return np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())


def edge_partials(rec, ops, val):
    """First partials of every edge of the ops `ops` (op indices), recorded as traced values.

    Returns (edges, slots, consts): the global edge indices and each one's partial as a slot
    (>= 0) or a constant.
    """
    code = rec.code.view()
    eptr = rec.eptr.view()
    arg = rec.arg.view()
    param = rec.param.view()
    n_in = rec.n_in
    counts = eptr[ops + 1] - eptr[ops]
    edges = _spans(eptr[ops], counts)
    ps = np.full(edges.shape[0], -1, np.int64)
    pc = np.zeros(edges.shape[0])
    pos = np.cumsum(counts) - counts  # first position of each op's edges in `edges`
    codes = code[ops]
    for c in np.unique(codes):
        c = int(c)
        sel = np.nonzero(codes == c)[0]
        p0 = pos[sel]
        e0 = eptr[ops[sel]]
        K = sel.shape[0]
        if c == oc.LIN:  # constant partials: the coefficients
            mine = _spans(p0, counts[sel])
            pc[mine] = rec.coef.view()[edges[mine]]
        elif c == oc.DOT:  # d/d a_k = b_k and back: the operand slots themselves
            mine = _spans(p0, counts[sel])
            first = (edges[mine] - np.repeat(e0, counts[sel])) % 2 == 0
            ps[mine] = arg[np.where(first, edges[mine] + 1, edges[mine] - 1)]
        elif c == oc.CONST:
            continue
        elif c == oc.SELECT:  # edges (condition, a, b)
            cs = arg[e0]
            for j, d in enumerate(_SELECT_PARTIALS(_traced(rec, cs, val[cs]))):
                ps[p0 + j], pc[p0 + j] = _ref(d, K)
        elif c < oc.BINARY_BASE:
            xs = arg[e0]
            v = _traced(rec, n_in + ops[sel], val[n_in + ops[sel]])
            d, _ = _UNARY_PARTIALS(c, _traced(rec, xs, val[xs]), v, False)
            ps[p0], pc[p0] = _ref(d, K)
        else:
            mode = (c - oc.BINARY_BASE) % 3
            slot_v = n_in + ops[sel]
            if mode == oc.VV:
                a_s, b_s = arg[e0], arg[e0 + 1]
                da, db, _, _, _ = _BINARY_PARTIALS(
                    c, _traced(rec, a_s, val[a_s]), _traced(rec, b_s, val[b_s]),
                    _traced(rec, slot_v, val[slot_v]), True, True, False)
                ps[p0], pc[p0] = _ref(da, K)
                ps[p0 + 1], pc[p0 + 1] = _ref(db, K)
                continue
            xs = arg[e0]
            consts = param[ops[sel]]
            # power branches on its constant exponent: one call per distinct constant
            groups = ([np.arange(K)] if c != oc.binary_code("power", oc.VC)
                      else [np.nonzero(consts == u)[0] for u in np.unique(consts)])
            for g in groups:
                t = _traced(rec, xs[g], val[xs[g]])
                tv = _traced(rec, slot_v[g], val[slot_v[g]])
                cst = consts[g]
                if c == oc.binary_code("power", oc.VC):
                    cst = float(cst[0])
                if mode == oc.VC:
                    d, _, _, _, _ = _BINARY_PARTIALS(c, t, cst, tv, True, False, False)
                else:
                    _, d, _, _, _ = _BINARY_PARTIALS(c, cst, t, tv, False, True, False)
                ps[p0[g]], pc[p0[g]] = _ref(d, g.shape[0])
    return edges, ps, pc


# --------------------------------------------------------------------------- propagation
def propagate(rec, lo, src, seed_s, seed_c, dst, reverse):
    """Record one tangent (forward) or adjoint (reverse) sweep over the slots [lo, rec.n_slots).

    src (p,) seeded slots in the range (the input copies forward, the outputs in reverse) with
    seeds (p, k) as slots seed_s (>= 0) or constants seed_c; dst (q,) the slots whose
    derivatives are returned (outputs forward, input copies in reverse) as (q, k) refs
    (slots, consts). Repeated src slots add their seeds.
    """
    rec.flush()
    hi = rec.n_slots
    n_in = rec.n_in
    k = seed_s.shape[1]
    L = hi - lo
    i0, i1 = lo - n_in, hi - n_in
    eptr_all = rec.eptr.view()
    e_lo, e_hi = eptr_all[i0], eptr_all[i1]
    eptr = eptr_all[i0:i1 + 1] - e_lo
    arg = rec.arg.view()[e_lo:e_hi]
    argrel = np.where(arg >= lo, arg - lo, -1)
    src_in = (src >= lo) & (src < hi)  # an output outside the range has no inner derivative
    src, seed_s, seed_c = src[src_in], seed_s[src_in], seed_c[src_in]
    seeded = np.zeros(L, bool)
    seeded[src - lo] = True
    # forward: depend on src and reach dst; reverse: reach src and depend on dst
    end = np.zeros(L, bool)
    dst_in = (dst >= lo) & (dst < hi)
    end[dst[dst_in] - lo] = True
    if reverse:
        need = reach(eptr, argrel, seeded, False) & reach(eptr, argrel, end, True)
    else:
        need = reach(eptr, argrel, seeded, True) & reach(eptr, argrel, end, False)
    cons = np.repeat(np.arange(L), np.diff(eptr))  # local consumer of each edge
    keep = (argrel >= 0)
    keep[keep] = need[argrel[keep]]
    keep &= need[cons]
    kept = np.nonzero(keep)[0]
    # partials of the kept edges (recorded now: they follow the range)
    ops = np.unique(cons[kept]) + i0
    val = slot_values(rec)
    edges, ps_all, pc_all = edge_partials(rec, ops, val)
    where = np.searchsorted(edges, kept + e_lo)
    ps, pc = ps_all[where], pc_all[where]
    if reverse:
        tgt, srcl = argrel[kept], cons[kept]
    else:
        tgt, srcl = cons[kept], argrel[kept]
    # per-slot seeds (L, k): constants summed, traced seeds as (slot, direction, seed slot)
    c_seed = np.zeros((L, k))
    loc = src - lo
    traced_seed = seed_s >= 0
    np.add.at(c_seed, loc, np.where(traced_seed, 0.0, seed_c))
    ts_loc, ts_j = np.nonzero(traced_seed)
    ts_tgt_l, ts_slot = loc[ts_loc], seed_s[ts_loc, ts_j]
    seed_nz = c_seed != 0.0
    seed_nz[ts_tgt_l, ts_j] = True
    # which directions each slot's derivative can be nonzero in (unit directions of a Hessian
    # or Jacobian reach only the slots that depend on them): ops only for those (slot, j)
    sweep = np.argsort(-tgt if reverse else tgt, kind="stable")
    supp, in_supp = support(tgt[sweep], srcl[sweep], seed_nz)
    is_op = in_supp
    is_op[ts_tgt_l, ts_j] = True
    is_op &= need[:, None]
    rows = np.nonzero(need)[0]
    if reverse:
        rows = rows[::-1]
    flat = is_op[rows].ravel()
    n_t = int(flat.sum())
    rank = np.full((L, k), -1, np.int64)
    rank[rows] = np.where(flat, np.cumsum(flat) - 1, -1).reshape(rows.shape[0], k)
    # products per (kept edge, direction the source is nonzero in): partial x source derivative
    eI, J = np.nonzero(supp[srcl])
    a_s, a_c = ps[eI], pc[eI]
    sl = srcl[eI]
    b_rank = rank[sl, J]
    b_op = b_rank >= 0
    b_c = np.where(b_op, 0.0, c_seed[sl, J])
    t_op = rank[tgt[eI], J]
    a_slot = a_s >= 0
    both_c = ~a_slot & ~b_op  # both constant: into the op's constant term
    param = np.bincount(t_op[both_c], weights=(a_c * b_c)[both_c], minlength=n_t).astype(float)
    seeded_op = is_op & (c_seed != 0.0)
    param[rank[seeded_op]] += c_seed[seeded_op]
    keep_ts = rank[ts_tgt_l, ts_j] >= 0
    ts_tgt, ts_slot = rank[ts_tgt_l, ts_j][keep_ts], ts_slot[keep_ts]
    dot_item = a_slot & b_op
    lin_a = a_slot & ~b_op & (b_c != 0.0)  # partial traced, source constant
    lin_b = ~a_slot & b_op & (a_c != 0.0)  # partial constant, source traced
    is_dot_op = np.zeros(n_t, bool)
    is_dot_op[t_op[dot_item]] = True
    lin_t = np.concatenate([t_op[lin_a], t_op[lin_b], ts_tgt])
    lin_coef = np.concatenate([b_c[lin_a], a_c[lin_b], np.ones(ts_tgt.shape[0])])
    # constant factors of LIN items inside DOT ops become CONST slots (one per distinct value)
    in_dot = is_dot_op[lin_t]
    const_slot = np.zeros(lin_t.shape[0], np.int64)
    if in_dot.any():
        uniq, inv = np.unique(lin_coef[in_dot], return_inverse=True)
        const_slot[in_dot] = rec.constants(uniq)[inv]
    base = rec.n_slots  # the target ops' slots are known before they exist: base + rank
    src_slot = np.where(b_op, base + b_rank, -1)
    lin_slot = np.concatenate([a_s[lin_a], src_slot[lin_b], ts_slot])
    d_t = t_op[dot_item]
    all_t = np.concatenate([d_t, lin_t])
    all_w = np.concatenate([np.full(d_t.shape[0], 2), np.where(in_dot, 2, 1)])
    arg1 = np.concatenate([a_s[dot_item], lin_slot])
    arg2 = np.concatenate([src_slot[dot_item], const_slot])
    coefs = np.concatenate([np.zeros(d_t.shape[0]), np.where(in_dot, 0.0, lin_coef)])
    srt = np.argsort(all_t, kind="stable")
    all_t, all_w, arg1, arg2, coefs = all_t[srt], all_w[srt], arg1[srt], arg2[srt], coefs[srt]
    counts = np.bincount(all_t, weights=all_w, minlength=n_t).astype(np.int64)
    out_arg = np.empty(int(all_w.sum()), np.int64)
    out_coef = np.zeros(out_arg.shape[0])
    start = np.cumsum(all_w) - all_w
    out_arg[start] = arg1
    two = all_w == 2
    out_arg[start[two] + 1] = arg2[two]
    out_coef[start] = coefs
    rec.append_mixed(np.where(is_dot_op, oc.DOT, oc.LIN), param, counts, out_arg, out_coef)
    # derivatives of dst: op slots, constant seeds, or zero
    q = dst.shape[0]
    r_s = np.full((q, k), -1, np.int64)
    r_c = np.zeros((q, k))
    inside = np.nonzero(dst_in)[0]
    dl = dst[inside] - lo
    rk = rank[dl]
    r_s[inside] = np.where(rk >= 0, base + rk, -1)
    r_c[inside] = np.where((rk < 0) & need[dl][:, None] & supp[dl], c_seed[dl], 0.0)
    return r_s, r_c


# --------------------------------------------------------------------------- front end helpers
def nested_recorder(*values):
    """The recorder of the traced values among `values` (None when none is traced)."""
    flat = []
    for v in values:
        if isinstance(v, (tuple, list)):
            flat.extend(v)
        else:
            flat.append(v)
    return operands(*flat)


def copy_inputs(rec, args):
    """Fresh slots for each argument (traced or constant): LIN copies, one op per element.

    Returns (traced copies, flat slots (n,), shapes)."""
    copies, slots, shapes = [], [], []
    for a in args:
        if isinstance(a, Traced):
            idx = np.asarray(a.idx, dtype=np.int64)
            val = np.asarray(a.val, dtype=np.float64)
            s = rec.append(oc.LIN, idx.reshape(-1, 1), coef=1.0)
        else:
            val = np.asarray(a, dtype=np.float64)
            if val.dtype.kind not in "f":
                raise TypeError("derivative inputs must be real arrays")
            s = rec.append(oc.LIN, np.empty((val.size, 0), np.int64), param=val.ravel())
        shape = val.shape
        if shape == ():
            copies.append(TracedScalar(rec, int(s[0]), float(val)))
        else:
            copies.append(TracedArray(rec, s.reshape(shape), val.copy()))
        slots.append(s)
        shapes.append(shape)
    flat = np.concatenate(slots) if slots else np.empty(0, np.int64)
    return copies, flat, shapes


def flat_refs(rec, items):
    """(slots, consts) of a list of traced/constant arrays, flattened and concatenated."""
    ss, cs = [], []
    for a in items:
        if isinstance(a, Traced):
            s = np.asarray(a.idx, dtype=np.int64).ravel()
            ss.append(s)
            cs.append(np.zeros(s.shape[0]))
        else:
            c = np.asarray(a, dtype=np.float64).ravel()
            ss.append(np.full(c.shape[0], -1, np.int64))
            cs.append(c)
    if not ss:
        return np.empty(0, np.int64), np.empty(0)
    return np.concatenate(ss), np.concatenate(cs)


def as_traced(rec, r_s, r_c, shape):
    """A traced array (numpy when every entry is constant) of refs, reshaped to `shape`."""
    r_s = np.array(r_s, dtype=np.int64).ravel()
    r_c = np.asarray(r_c, dtype=np.float64).ravel()
    const = r_s < 0
    if const.all():
        out = r_c.reshape(shape)
        return np.float64(out) if shape == () else out.copy()
    if const.any():
        r_s[const] = rec.constants(r_c[const])
    val = slot_values(rec)[r_s]
    return make(rec, r_s.reshape(shape), val.reshape(shape))

