"""Numba passes of the tape optimiser (`optimize.py` drives them; see its docstring).

Each pass is one sweep over the flat tape arrays (int32 index arrays, as a Tape holds them;
`scan`, `value_numbering` and `mark_live` read uint32 views of them, and of `rep`: numba adds
a negative-index wraparound to every access through a signed index, which cost 20% of value
numbering and 60% of mark_live on logistic regression 1000 x 10; `scan` sees a negative
index as one >= 2**31, out of every range it checks).
Ops only ever read earlier slots, so a forward loop sees every operand's final status before the
op itself: constant detection and value numbering reach their fixed point in one pass. `scan`
validates the arrays (without reading out of bounds) before any other pass runs on them;
`optimize.py` checks the array lengths before `scan`.
"""
import numpy as np
from numba import njit

from . import opcodes as oc

_jit = njit(cache=True, error_model="numpy", nogil=True)
# small helpers of the hot loops: inlined in Numba IR (as separate calls they cost ~4x here)
_inline = njit(cache=True, error_model="numpy", nogil=True, inline="always")

# Binary op kinds whose operands commute exactly (the rule is symmetric in a, b): CSE may
# compare their operands in sorted order.
_COMMUTATIVE = np.zeros(oc.N_CODES, dtype=np.uint8)
for _name in ("multiply", "hypot", "maximum", "minimum", "fmax", "fmin", "logaddexp"):
    _COMMUTATIVE[oc.binary_code(_name, oc.VV)] = 1


@_jit
def scan(code, eptr, arg, tptr, ta, tb, n_in, valid, counts, isc):
    """Validate the tape and find its constant slots, in one forward pass.

    Checks (reading nothing out of bounds, since the arrays are not trusted yet): op codes are
    valid (`valid` (256,) bool), offsets increase within the edge/term arrays, every operand is
    an earlier slot, every term pairs edges of its own op. counts (N_CODES,) int64 := ops per
    code. isc (n_slots,) uint8 := 1 for slots that do not depend on the inputs: CONST ops, ops
    without edges and ops whose operands are all such slots.

    Returns (error, last, n_mixed): error 0 when valid (1 op code, 2 offsets, 3 operand, 4 term);
    the last op that is constant but not a CONST op (-1: none; the forward sweep must run up to
    it for the folded values); the number of non-constant ops with a constant operand.
    """
    n_ops = code.shape[0]
    n_edges = arg.shape[0]
    n_terms = ta.shape[0]
    isc[:n_in] = 0
    counts[:] = 0
    last = -1
    n_mixed = 0
    if eptr[0] != 0 or tptr[0] != 0 or eptr[n_ops] != n_edges or tptr[n_ops] != n_terms:
        return 2, last, n_mixed
    for i in range(n_ops):
        c = code[i]
        if not valid[c]:
            return 1, last, n_mixed
        counts[c] += 1
        e0 = eptr[i]
        e1 = eptr[i + 1]
        t0 = tptr[i]
        t1 = tptr[i + 1]
        if e1 < e0 or e1 > n_edges or t1 < t0 or t1 > n_terms:
            return 2, last, n_mixed
        s = n_in + i
        n_c = 0
        for e in range(e0, e1):
            a = arg[e]
            if a < 0 or a >= s:
                return 3, last, n_mixed
            n_c += isc[a]
        for t in range(t0, t1):
            if ta[t] < e0 or ta[t] >= e1 or tb[t] < e0 or tb[t] >= e1:
                return 4, last, n_mixed
        if n_c == e1 - e0:
            isc[s] = 1
            if c != oc.CONST:
                last = i
        else:
            isc[s] = 0
            if n_c:
                n_mixed += 1
    return 0, last, n_mixed


@_jit
def _cval(code, param, val, n_in, s):
    """Value of constant slot s: CONST ops hold it in param, folded ops in val (forward sweep)."""
    i = s - n_in
    return param[i] if code[i] == oc.CONST else val[s]


@_jit
def fold(code, param, eptr, arg, coef, tptr, ta, tb, n_in, isc, val,
         ncode, nparam, neptr, narg, ncoef, ntptr, nta, ntb, emap, stats):
    """Constant folding into the n* arrays (same ops and slots; edges and terms only drop).

    Constant ops become CONST ops holding their value (val from the forward sweep, i.e. the
    op's own rule). Non-constant ops lose their constant operands: LIN adds coef * value to
    param; DOT adds products of constant pairs to param and becomes LIN when every remaining
    pair has one constant side (its value becomes the coefficient); a binary op in mode VV
    moves its constant operand into param (mode VC or CV). A term survives when both its edges
    do, which gives each mode its term pattern of `opcodes.py`. emap (n_edges,) work array.
    stats (3,) int64 := ops made CONST, ops partially folded, edges removed.
    Returns (n_edges, n_terms) of the result.
    """
    n_ops = code.shape[0]
    E = 0
    T = 0
    neptr[0] = 0
    ntptr[0] = 0
    n_const = 0
    n_part = 0
    e_before = eptr[n_ops]
    for i in range(n_ops):
        c = code[i]
        e0 = eptr[i]
        e1 = eptr[i + 1]
        s = n_in + i
        p = param[i]
        nc = c
        if isc[s]:
            if c != oc.CONST:
                n_const += 1
            nc = oc.CONST
            p = _cval(code, param, val, n_in, s)
            for e in range(e0, e1):
                emap[e] = -1
        else:
            n_c = 0
            for e in range(e0, e1):
                n_c += isc[arg[e]]
            if n_c == 0:
                for e in range(e0, e1):
                    narg[E] = arg[e]
                    ncoef[E] = coef[e]
                    emap[e] = E
                    E += 1
            else:
                n_part += 1
                if c == oc.LIN:
                    for e in range(e0, e1):
                        a = arg[e]
                        if isc[a]:
                            p += coef[e] * _cval(code, param, val, n_in, a)
                            emap[e] = -1
                        else:
                            narg[E] = a
                            ncoef[E] = coef[e]
                            emap[e] = E
                            E += 1
                elif c == oc.DOT:
                    traced_pair = False  # a pair with no constant side stays a product
                    for e in range(e0, e1, 2):
                        if isc[arg[e]] == 0 and isc[arg[e + 1]] == 0:
                            traced_pair = True
                    if not traced_pair:
                        nc = oc.LIN
                    changed = not traced_pair
                    for e in range(e0, e1, 2):
                        a = arg[e]
                        b = arg[e + 1]
                        if isc[a] and isc[b]:
                            p += _cval(code, param, val, n_in, a) * _cval(code, param, val, n_in, b)
                            emap[e] = -1
                            emap[e + 1] = -1
                            changed = True
                        elif not traced_pair:  # one constant side: a LIN edge
                            if isc[a]:
                                k, kc = e + 1, a
                                emap[e] = -1
                            else:
                                k, kc = e, b
                                emap[e + 1] = -1
                            narg[E] = arg[k]
                            ncoef[E] = _cval(code, param, val, n_in, kc)
                            emap[k] = E
                            E += 1
                        else:
                            for k in range(e, e + 2):
                                narg[E] = arg[k]
                                ncoef[E] = coef[k]
                                emap[k] = E
                                E += 1
                    if not changed:  # only pairs with one constant side next to traced pairs
                        n_part -= 1
                elif c >= oc.BINARY_BASE and (c - oc.BINARY_BASE) % 3 == oc.VV:
                    # one constant operand (unary ops and modes VC/CV have a single edge)
                    if isc[arg[e0]]:
                        nc = c + oc.CV
                        p = _cval(code, param, val, n_in, arg[e0])
                        k = e0 + 1
                        emap[e0] = -1
                    else:
                        nc = c + oc.VC
                        p = _cval(code, param, val, n_in, arg[e0 + 1])
                        k = e0
                        emap[e0 + 1] = -1
                    narg[E] = arg[k]
                    ncoef[E] = coef[k]
                    emap[k] = E
                    E += 1
                else:  # no constant-operand form known for this op: kept as it is
                    n_part -= 1
                    for e in range(e0, e1):
                        narg[E] = arg[e]
                        ncoef[E] = coef[e]
                        emap[e] = E
                        E += 1
        ncode[i] = nc
        nparam[i] = p
        neptr[i + 1] = E
        if nc != oc.CONST and nc != oc.LIN:
            for t in range(tptr[i], tptr[i + 1]):
                a = emap[ta[t]]
                b = emap[tb[t]]
                if a >= 0 and b >= 0:
                    nta[T] = a
                    ntb[T] = b
                    T += 1
        ntptr[i + 1] = T
    stats[0] = n_const
    stats[1] = n_part
    stats[2] = e_before - E
    return E, T


_M1 = np.int64(-7046029254386353131)
_M2 = np.int64(1099511628211)
CHAIN = 8  # ops kept per first operand before further ones go to the hash table


@_inline
def _pair(rep, arg, cbits, e):
    """(rep, coef bits) of edges e and e + 1 in canonical order: by representative, then bits."""
    ra = rep[arg[e]]
    rb = rep[arg[e + 1]]
    ca = cbits[e]
    cb = cbits[e + 1]
    if ra > rb or (ra == rb and ca > cb):
        return rb, cb, ra, ca
    return ra, ca, rb, cb


@_inline
def _paired(c, ne, pb):
    """Whether an op's edges compare as exactly commutative pairs (see value_numbering)."""
    return c == oc.DOT or (ne == 2 and (_COMMUTATIVE[c] == 1 or (c == oc.LIN and pb == 0)))


@_inline
def _same(i, j, paired, eptr, arg, cbits, rep):
    """Whether ops i and j, of the same code, param and edge count, have the same operands
    (representatives) and coefficients, exactly commutative pairs in canonical order."""
    e0 = eptr[i]
    f0 = eptr[j]
    ne = eptr[i + 1] - e0
    k = 0
    if paired:
        while k + 1 < ne:
            if _pair(rep, arg, cbits, e0 + k) != _pair(rep, arg, cbits, f0 + k):
                return False
            k += 2
    while k < ne:
        if rep[arg[e0 + k]] != rep[arg[f0 + k]] or cbits[e0 + k] != cbits[f0 + k]:
            return False
        k += 1
    return True


@_inline
def _hash(c, pb, paired, e0, e1, arg, cbits, rep):
    """Hash of an op's code, param bits and canonical (representative, coef bits) edges."""
    h = (np.int64(c) + 1) * _M1 + pb
    e = e0
    if paired:
        while e + 1 < e1:
            ra, ca, rb, cb = _pair(rep, arg, cbits, e)
            h = (h ^ (ra * _M1 + ca)) * _M2
            h = (h ^ (rb * _M1 + cb)) * _M2
            e += 2
    while e < e1:
        h = (h ^ (rep[arg[e]] * _M1 + cbits[e])) * _M2  # one multiply on the chain per edge
        e += 1
    return h ^ (h >> 29)


@_jit
def value_numbering(code, pbits, eptr, arg, cbits, n_in, rep, head, nxt, table):
    """Common-subexpression elimination: rep (n_slots,) := the first slot holding the same
    value as each slot (itself when none).

    Two ops are the same when code, param bits, operand representatives and coefficient bits
    agree. The edges of exactly commutative pairs are compared in canonical order (`_pair`): DOT
    pairs (2k, 2k+1), commutative binary ops, and 2-edge LIN ops with param +0.0 (where
    0 + x + y == 0 + y + x in floating point).
    One forward pass reaches the fixed point: operands are renamed before an op is looked up.

    Candidates are found by first operand: head (n_slots,) and nxt (n_ops,) int32 chain up to
    CHAIN earlier ops per first operand representative, which keeps lookups near the op's own
    operands in memory; ops without edges go to the open-addressing hash table (int32, a power
    of two longer than the op count). When a first operand's chain overflows, its ops move to
    the table and head marks it (-2), so later ops with that operand hash at once instead of
    walking the chain first (a chain step is a dependent load and a mispredicted branch, ~20
    ns: the 1000 rows of `X @ w` all start with w[0], and walking 8 ops each was 80% of this
    pass on logistic regression 1000 x 10). Every earlier op of a first operand is therefore in
    its chain or, once marked, in the table.
    Returns the number of merged ops.
    """
    n_ops = code.shape[0]
    for s in range(n_in):
        rep[s] = s
    head[: n_in + n_ops] = -1
    mask = table.shape[0] - 1
    table_ready = False
    merged = 0
    for i in range(n_ops):
        c = code[i]
        e0 = eptr[i]
        ne = eptr[i + 1] - e0
        pb = pbits[i]
        paired = _paired(c, ne, pb)
        r = n_in + i
        first = -1
        hashed = ne == 0
        if ne:
            first = rep[arg[e0]]
            if paired and ne > 1:
                second = rep[arg[e0 + 1]]
                if second < first:
                    first = second
            j = head[first]
            if j == -2:
                hashed = True
            steps = 0
            while j >= 0:
                if (code[j] == c and pbits[j] == pb and eptr[j + 1] - eptr[j] == ne
                        and _same(i, j, paired, eptr, arg, cbits, rep)):
                    r = n_in + j
                    break
                j = nxt[j]
                steps += 1
            if r == n_in + i and steps >= CHAIN:  # a full chain: its ops move to the table
                if not table_ready:
                    table[:] = -1
                    table_ready = True
                j = head[first]
                while j >= 0:  # (ops of other codes and edge counts: their own pairing)
                    slot = _hash(code[j], pbits[j], _paired(code[j], eptr[j + 1] - eptr[j],
                                                            pbits[j]),
                                 eptr[j], eptr[j + 1], arg, cbits, rep) & mask
                    while table[slot] >= 0:
                        slot = (slot + 1) & mask
                    table[slot] = j
                    j = nxt[j]
                head[first] = -2
                hashed = True
        if hashed and r == n_in + i:
            if not table_ready:
                table[:] = -1
                table_ready = True
            slot = _hash(c, pb, paired, e0, e0 + ne, arg, cbits, rep) & mask
            while table[slot] >= 0:
                j = table[slot]
                if (code[j] == c and pbits[j] == pb and eptr[j + 1] - eptr[j] == ne
                        and _same(i, j, paired, eptr, arg, cbits, rep)):
                    r = n_in + j
                    break
                slot = (slot + 1) & mask
            if r == n_in + i:
                table[slot] = i
        elif r == n_in + i:
            nxt[i] = head[first]
            head[first] = i
        if r != n_in + i:
            merged += 1
        rep[n_in + i] = r
    return merged


@_jit
def mark_live(eptr, arg, tptr, n_in, rep, roots, live, merged):
    """Dead-op elimination: live (n_slots,) uint8 := 1 for the slots some root (output or kept
    slot) depends on, through representatives (merged ops are never live); merged == 0: rep
    is the identity and is not read (a dependent load per edge less).
    Returns (ops, edges, terms) of the live ops."""
    n_ops = eptr.shape[0] - 1
    live[:] = 0
    for k in range(roots.shape[0]):
        live[rep[roots[k]]] = 1
    n_live = 0
    n_e = 0
    n_t = 0
    for i in range(n_ops - 1, -1, -1):
        if live[n_in + i]:
            n_live += 1
            n_t += tptr[i + 1] - tptr[i]
            e0 = eptr[i]
            e1 = eptr[i + 1]
            n_e += e1 - e0
            if merged:
                for e in range(e0, e1):
                    live[rep[arg[e]]] = 1
            else:
                for e in range(e0, e1):
                    live[arg[e]] = 1
    return n_live, n_e, n_t


@_jit
def compact(code, param, eptr, arg, coef, tptr, ta, tb, n_in, rep, live,
            slot_map, ncode, nparam, neptr, narg, ncoef, ntptr, nta, ntb):
    """Copy the live ops into the n* arrays, renumbered: slot_map (n_slots,) := the new slot of
    every old slot (inputs keep theirs; a merged op maps to its representative's; -1: removed).
    Operands are renamed through slot_map; term edge indices shift with their op's edges."""
    n_ops = code.shape[0]
    for s in range(n_in):
        slot_map[s] = s
    k = 0
    E = 0
    T = 0
    neptr[0] = 0
    ntptr[0] = 0
    for i in range(n_ops):
        s = n_in + i
        if live[s] == 0:
            slot_map[s] = -1
            continue
        slot_map[s] = n_in + k
        ncode[k] = code[i]
        nparam[k] = param[i]
        e0 = eptr[i]
        shift = E - e0
        for e in range(e0, eptr[i + 1]):
            narg[E] = slot_map[rep[arg[e]]]
            ncoef[E] = coef[e]
            E += 1
        for t in range(tptr[i], tptr[i + 1]):
            nta[T] = ta[t] + shift
            ntb[T] = tb[t] + shift
            T += 1
        k += 1
        neptr[k] = E
        ntptr[k] = T
    for s in range(n_in, n_in + n_ops):
        if slot_map[s] < 0 and live[rep[s]]:
            slot_map[s] = slot_map[rep[s]]


@_jit
def levels(eptr, arg, n_in, level):
    """level (n_ops,) := each op's depth in the data flow: 0 when it reads only inputs (or
    nothing), else 1 + the largest level among the ops it reads."""
    for i in range(eptr.shape[0] - 1):
        L = 0
        for e in range(eptr[i], eptr[i + 1]):
            s = arg[e]
            if s >= n_in and level[s - n_in] + 1 > L:
                L = level[s - n_in] + 1
        level[i] = L


@_jit
def permute(code, param, eptr, arg, coef, tptr, ta, tb, n_in, order, slot_map, ncode, nparam,
            neptr, narg, ncoef, ntptr, nta, ntb):
    """The tape with its ops in `order` (n_ops,), a topological order (every op after the ops
    it reads): new op k is old op order[k]. slot_map (n_slots,) := the new slot of every old
    one; operands are renamed through it, term edge indices shift with their op's edges, and
    the operands of LIN ops of 3 or more edges (no terms) are sorted by slot."""
    n_ops = code.shape[0]
    for s in range(n_in):
        slot_map[s] = s
    for k in range(n_ops):
        slot_map[n_in + order[k]] = n_in + k
    E = 0
    T = 0
    neptr[0] = 0
    ntptr[0] = 0
    for k in range(n_ops):
        i = order[k]
        ncode[k] = code[i]
        nparam[k] = param[i]
        e0 = eptr[i]
        shift = E - e0
        for e in range(e0, eptr[i + 1]):
            narg[E] = slot_map[arg[e]]
            ncoef[E] = coef[e]
            E += 1
        if code[i] == oc.LIN and E - (shift + e0) >= 3:
            # a sum's operands in slot order: a loop's terms are runs of consecutive slots
            # now, so the sum reads contiguous memory (a BLOCK run, `runs.py`)
            a = shift + e0
            perm = np.argsort(narg[a:E], kind="mergesort")
            sa = narg[a:E][perm]
            sc = ncoef[a:E][perm]
            narg[a:E] = sa
            ncoef[a:E] = sc
        for t in range(tptr[i], tptr[i + 1]):
            nta[T] = ta[t] + shift
            ntb[T] = tb[t] + shift
            T += 1
        neptr[k + 1] = E
        ntptr[k + 1] = T


@_jit
def lin_chains(code, eptr, arg, n_in, rep, live, root, uses, absorbed):
    """Mark the LIN ops that their one consumer absorbs (`absorb`): absorbed (n_ops,) uint8 :=
    1 for a LIN op read by exactly one edge, of a LIN op of at most two edges (s = s + t in a
    loop; wide sums and mat-vecs absorb nothing, so array code keeps its runs), and not a root
    (root (n_slots,) uint8: outputs, kept slots). Only live ops count (live (n_slots,) from
    `mark_live`: merged and dead ops are not), their operands read through the CSE
    representatives rep (n_slots,). uses (n_slots,) int32 is a work array. Returns the
    number marked."""
    n_ops = code.shape[0]
    uses[:] = 0
    absorbed[:] = 0
    for i in range(n_ops):
        if live[n_in + i]:
            for e in range(eptr[i], eptr[i + 1]):
                uses[rep[arg[e]]] += 1
    count = 0
    for i in range(n_ops):
        if code[i] != oc.LIN or eptr[i + 1] - eptr[i] > 2 or not live[n_in + i]:
            continue
        for e in range(eptr[i], eptr[i + 1]):
            s = rep[arg[e]]
            if s >= n_in and code[s - n_in] == oc.LIN and uses[s] == 1 and root[s] == 0:
                absorbed[s - n_in] = 1
                count += 1
    return count


@_jit
def absorb(code, param, eptr, arg, coef, tptr, ta, tb, n_in, rep, live, absorbed, nparam,
           neptr, narg, ncoef, nta, ntb, stack_op, stack_e, stack_c):
    """Each LIN op that reads absorbed LIN ops (`lin_chains`) reads their operands instead,
    in their place, coefficients multiplied along the way (recursively: a loop's running sum
    becomes one sum of all its terms); its param gains theirs likewise. Absorbed ops keep no
    edges (no op reads them any more: dead-op elimination drops them); other ops are copied
    unchanged, dead ones too (live as in `lin_chains`: an absorbed op is expanded only in its
    one live reader, so the edges cannot outgrow the arrays). Operands are read through rep
    (`lin_chains`). New params, edges and terms into the n* arrays (at most as many edges as
    before); stack_* (n_ops,) are work arrays. Returns the new edge count (-1 if the edges
    would not fit: a bug)."""
    n_ops = code.shape[0]
    E = 0
    T = 0
    neptr[0] = 0
    for i in range(n_ops):
        shift = E - eptr[i]
        p = param[i]
        if code[i] == oc.LIN and absorbed[i] == 0 and live[n_in + i]:
            # depth-first over the absorbed operands: frames (op, next edge, multiplier)
            d = 0
            stack_op[0] = i
            stack_e[0] = eptr[i]
            stack_c[0] = 1.0
            while d >= 0:
                j = stack_op[d]
                e = stack_e[d]
                if e == eptr[j + 1]:
                    d -= 1
                    continue
                stack_e[d] = e + 1
                s = rep[arg[e]]
                c = stack_c[d] * coef[e]
                if s >= n_in and absorbed[s - n_in]:
                    p += c * param[s - n_in]
                    d += 1
                    stack_op[d] = s - n_in
                    stack_e[d] = eptr[s - n_in]
                    stack_c[d] = c
                elif E < narg.shape[0]:  # (always: the check keeps a bug from writing past)
                    narg[E] = s
                    ncoef[E] = c
                    E += 1
                else:
                    return -1
        elif absorbed[i] == 0:
            for e in range(eptr[i], eptr[i + 1]):
                narg[E] = arg[e]
                ncoef[E] = coef[e]
                E += 1
        nparam[i] = p
        neptr[i + 1] = E
        for t in range(tptr[i], tptr[i + 1]):
            nta[T] = ta[t] + shift
            ntb[T] = tb[t] + shift
            T += 1
    return E
