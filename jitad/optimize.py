"""Tape optimisation at the end of recording: constant folding, CSE, dead-op elimination.

`optimize_arrays` runs five passes over the flat tape arrays (kernels in `optkernels.py`, one
sweep each), in this order because each feeds the next:

1. constant folding: ops whose operands are all constant (CONST ops, ops without edges, and
   recursively) become CONST ops holding their value, computed by the forward sweep over the
   tape prefix (the ops' own rules in `rules.py`). Ops with some constant operands fold them
   away: LIN into param, DOT pairs into param (or DOT -> LIN when every pair has a constant
   side), binary ops from mode VV to VC/CV.
2. common-subexpression elimination (value numbering): an op identical to an earlier one
   (code, param, operands after renaming, coefficients; exactly commutative operand pairs in
   canonical order) is replaced by it.
3. loop sums (`_absorb_lin_chains`): a LIN op read only by one LIN op of at most two edges is
   absorbed into it; the running sum of a Python loop becomes one sum of its terms.
4. dead-op elimination: only ops that an output (or a kept slot) depends on stay.
5. scheduling (`schedule_order`): scalar-loop code is reordered so that its iterations' ops
   form runs, as array code's do.

Then the live ops are renumbered. **Every array of the tape that references slots goes through
`remap_slots` with the pass's `slot_map`** (operands, outputs, and any `keep` arrays such as
the branch guards' operands, which `record.py` passes): a slot referenced there stays alive and
its new number is consistent.

Values of the optimised tape equal the recorded ones up to summation order (folded LIN/DOT
constants), derivatives likewise; dead ops no longer contribute 0 * inf = NaN to adjoints.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from . import opcodes as oc
from . import optkernels as ok
from . import runs, sweeps, workspace
from .tape import INDEX


@dataclass
class Sizes:
    """Sizes of a tape's arrays (for the before/after report)."""
    n_inputs: int
    n_outputs: int
    ops: int
    edges: int
    terms: int
    counts: np.ndarray = field(repr=False)  # (N_CODES,) ops per code

    @property
    def slots(self):
        return self.n_inputs + self.ops

    @property
    def nbytes(self):
        """Bytes of the tape arrays as a Tape holds them (== Tape.nbytes)."""
        index = np.dtype(INDEX).itemsize
        return (self.ops * (1 + 8) + 2 * (self.ops + 1) * index + self.edges * (index + 8)
                + 2 * self.terms * index + self.n_outputs * index)

    @classmethod
    def of(cls, n_in, code, eptr, tptr, out):
        counts = np.bincount(code, minlength=oc.N_CODES)
        return cls(int(n_in), int(out.shape[0]), int(code.shape[0]), int(eptr[-1]),
                   int(tptr[-1]), counts)


@dataclass
class Report:
    """What `optimize_arrays` did: sizes before and after, and what each pass removed."""
    before: Sizes
    after: Sizes
    folded: int = 0          # ops that became CONST ops
    partially_folded: int = 0  # ops that lost constant operands (into param / mode / LIN)
    folded_edges: int = 0    # edges removed by folding
    merged: int = 0          # ops replaced by an identical earlier op (CSE)
    dead: int = 0            # ops no output depends on (not counting merged ones)
    absorbed: int = 0        # LIN ops absorbed into the one LIN op reading them (loop sums)
    scheduled: int = 0       # ops reordered into runs (`schedule_order`), 0 when kept in order
    seconds: float = 0.0


@dataclass
class Optimized:
    """Result of `optimize_arrays`: the new tape arrays (int32 indices), the outputs and the
    `keep` arrays renumbered, slot_map (old slot -> new slot, -1 removed) and the report."""
    code: np.ndarray
    param: np.ndarray
    eptr: np.ndarray
    arg: np.ndarray
    coef: np.ndarray
    tptr: np.ndarray
    ta: np.ndarray
    tb: np.ndarray
    out: np.ndarray
    keep: list
    slot_map: np.ndarray
    report: Report

    @property
    def arrays(self):
        """(code, param, eptr, arg, coef, tptr, ta, tb): the Tape constructor's order."""
        return (self.code, self.param, self.eptr, self.arg, self.coef, self.tptr, self.ta,
                self.tb)


def remap_slots(slots, slot_map, what="slot"):
    """New slot numbers of `slots` (any shape of int) after optimisation: slot_map[slots].

    Every slot-referencing tape array must go through here (or be passed as `keep` to
    `optimize_arrays`, which does it) so that renumbering stays consistent. Raises ValueError
    when a slot is out of range or was removed (a slot that must survive has to be a root:
    an output or in `keep`).
    """
    slots = np.asarray(slots)
    if slots.size and (slots.min() < 0 or slots.max() >= slot_map.shape[0]):
        raise ValueError(f"{what}: slot outside the tape (0..{slot_map.shape[0] - 1})")
    new = slot_map[slots]
    if new.size and new.min() < 0:
        raise ValueError(f"{what}: refers to a slot that optimisation removed; pass it in "
                         "`keep` so it stays alive")
    return new.astype(INDEX, copy=False)


_VALID = np.zeros(256, dtype=bool)
_VALID[: oc.N_CODES] = oc.VALID_CODES
_ERRORS = {1: "unknown op code on the tape",
           2: "tape offsets do not increase within the edge/term arrays",
           3: "operand that is not an earlier slot",
           4: "term edge outside its op's edges"}


# The passes' work arrays stay in this thread's workspace for the next recording (fresh pages
# cost a fault each) unless the tape has more slots than this: then they are released, since
# they would hold ~25 bytes per slot for the life of the thread.
KEEP_WORK_UP_TO = 1 << 20
_WORK = ("opt_flags", "opt_rep", "opt_head", "opt_next", "opt_table", "opt_live", "opt_emap",
         "opt_code", "opt_param", "opt_eptr", "opt_arg", "opt_coef", "opt_tptr", "opt_ta",
         "opt_tb", "opt_absorbed", "opt_uses", "opt_aparam", "opt_aeptr", "opt_aarg",
         "opt_acoef", "opt_ata", "opt_atb", "opt_stack_op", "opt_stack_e", "opt_stack_c")


def _release_work():
    bufs = workspace.local().bufs
    for name in _WORK:
        bufs.pop(name, None)


def _as_index(a, what):
    """int32 contiguous index array (the range of int32 arrays is checked by `optkernels.scan`)."""
    if type(a) is np.ndarray and a.dtype == INDEX and a.flags.c_contiguous:
        return a
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise ValueError(f"tape {what} must be integers, got dtype {a.dtype}")
    if a.size and (a.max() > np.iinfo(INDEX).max or a.min() < 0):
        raise ValueError(f"tape too large or corrupt: {what} outside the int32 index range")
    return np.ascontiguousarray(a, dtype=INDEX)


def optimize_arrays(n_in, code, param, eptr, arg, coef, tptr, ta, tb, out, x=None, keep=()):
    """Fold constants, merge common subexpressions and drop dead ops of a recorded tape.

    n_in: number of inputs; code (n_ops,) ... tb: the tape arrays (any int dtype; converted to
    int32 like a Tape's); out (m,): output slots; x (n_in,): any input point (only constant ops
    are evaluated, whose values do not depend on it; zeros when None); keep: sequence of int
    arrays of slots that must stay alive (e.g. branch guards), returned renumbered.
    Returns an `Optimized`.
    """
    t0 = time.perf_counter()
    n_in = int(n_in)
    code = np.ascontiguousarray(code, dtype=np.uint8)
    param = np.ascontiguousarray(param, dtype=np.float64)
    coef = np.ascontiguousarray(coef, dtype=np.float64)
    eptr, arg = _as_index(eptr, "edge offsets"), _as_index(arg, "operand slots")
    tptr, ta = _as_index(tptr, "term offsets"), _as_index(ta, "term edges")
    tb = _as_index(tb, "term edges")
    out = np.asarray(out)
    keep = [np.asarray(k) for k in keep]
    n_ops, n_edges, n_terms = code.shape[0], arg.shape[0], ta.shape[0]
    if (param.shape != (n_ops,) or eptr.shape != (n_ops + 1,) or tptr.shape != (n_ops + 1,)
            or coef.shape != (n_edges,) or tb.shape != (n_terms,)):
        raise ValueError("tape arrays of inconsistent lengths")
    n_slots = n_in + n_ops
    for what, slots in [("output", out)] + [("kept slots", k) for k in keep]:
        if slots.size and (slots.min() < 0 or slots.max() >= n_slots):
            raise ValueError(f"{what}: slot outside the tape (0..{n_slots - 1})")
    counts = np.empty(oc.N_CODES, np.int64)
    isc = workspace.buffer("opt_flags", (n_slots,), np.uint8)
    u = np.uint32  # (a negative index reads as >= 2**31: out of range for scan too)
    err, last, n_mixed = ok.scan(code, eptr.view(u), arg.view(u), tptr.view(u), ta.view(u),
                                 tb.view(u), n_in, _VALID, counts, isc)
    if err:
        raise ValueError(f"corrupt tape: {_ERRORS[err]}")
    before = Sizes(n_in, int(out.size), n_ops, n_edges, n_terms, counts)
    before_code = code
    report = Report(before, before)

    # 1. constant folding
    if last >= 0 or n_mixed:
        val = workspace.buffer("fval", (n_slots,))
        if last >= 0:
            xin = np.zeros(n_in) if x is None else np.ascontiguousarray(x, dtype=np.float64)
            if xin.shape != (n_in,):
                raise ValueError(f"x must have shape ({n_in},), got {xin.shape}")
            with np.errstate(all="ignore"):
                u = np.uint32  # as the Tape's kernels read them: one compiled forward sweep
                sweeps.forward(code[: last + 1], param[: last + 1], eptr[: last + 2].view(u),
                               arg.view(u), coef, tptr[: last + 2].view(u), n_in, xin, False,
                               val, val[:0], val[:0])
        n_edges, n_terms = arg.shape[0], ta.shape[0]
        # the folded tape is an intermediate (compact copies the live ops out): work buffers
        b = workspace.buffer
        f = (b("opt_code", (n_ops,), np.uint8), b("opt_param", (n_ops,)),
             b("opt_eptr", (n_ops + 1,), INDEX), b("opt_arg", (n_edges,), INDEX),
             b("opt_coef", (n_edges,)), b("opt_tptr", (n_ops + 1,), INDEX),
             b("opt_ta", (n_terms,), INDEX), b("opt_tb", (n_terms,), INDEX))
        emap = workspace.buffer("opt_emap", (n_edges,), INDEX)
        stats = np.zeros(3, np.int64)
        E, T = ok.fold(code, param, eptr, arg, coef, tptr, ta, tb, n_in, isc, val, *f, emap,
                       stats)
        report.folded, report.partially_folded, report.folded_edges = (int(v) for v in stats)
        if report.folded or report.partially_folded:
            code, param, eptr, tptr = f[0], f[1], f[2], f[5]
            arg, coef, ta, tb = f[3][:E], f[4][:E], f[6][:T], f[7][:T]

    # 2. common subexpressions
    rep = workspace.buffer("opt_rep", (n_slots,), np.int32)
    work = (workspace.buffer("opt_head", (n_slots,), np.int32),
            workspace.buffer("opt_next", (n_ops,), np.int32),
            workspace.buffer("opt_table", (max(16, 1 << (2 * n_ops).bit_length()),), np.int32))
    ueptr, uarg, urep = eptr.view(u), arg.view(u), rep.view(u)
    report.merged = int(ok.value_numbering(code, param.view(np.int64), ueptr, uarg,
                                           coef.view(np.int64), n_in, urep, *work))

    # 3. loop sums: LIN ops read once by a short LIN op, absorbed into it (among the live ops)
    roots = np.concatenate([out.ravel().astype(np.int64)] + [k.ravel().astype(np.int64)
                                                              for k in keep])
    live = workspace.buffer("opt_live", (n_slots,), np.uint8)
    n_live, n_e, n_t = ok.mark_live(ueptr, uarg, tptr.view(u), n_in, urep, roots, live,
                                    report.merged)
    absorbed = _absorb_lin_chains(n_in, code, param, eptr, arg, coef, tptr, ta, tb, rep, live,
                                  roots)
    if absorbed is not None:  # liveness again: the absorbed ops are dead now
        report.absorbed, (param, eptr, arg, coef, ta, tb) = absorbed
        ueptr, uarg = eptr.view(u), arg.view(u)
        n_live, n_e, n_t = ok.mark_live(ueptr, uarg, tptr.view(u), n_in, urep, roots, live,
                                        report.merged)

    # 4. dead ops, then renumbering
    report.dead = n_ops - n_live - report.merged - report.absorbed
    if (n_live == n_ops and not report.merged and not report.folded and not report.absorbed
            and code is before_code):
        # nothing removed (partial folds keep slots): no renumbering, the arrays as they are
        slot_map = np.arange(n_slots, dtype=INDEX)
        new = (code, param, eptr, arg, coef, tptr, ta, tb)
    else:
        slot_map = np.empty(n_slots, INDEX)
        new = (np.empty(n_live, np.uint8), np.empty(n_live), np.empty(n_live + 1, INDEX),
               np.empty(n_e, INDEX), np.empty(n_e), np.empty(n_live + 1, INDEX),
               np.empty(n_t, INDEX), np.empty(n_t, INDEX))
        ok.compact(code, param, eptr, arg, coef, tptr, ta, tb, n_in, rep, live, slot_map, *new)

    # 5. scheduling: scalar code into runs
    order = schedule_order(n_in, new[0], new[2], new[3], new[5])
    if order is not None:
        old = new
        new = tuple(np.empty_like(a) for a in old)  # (old may be the caller's arrays)
        smap = np.empty(n_slots_after := n_in + order.shape[0], INDEX)
        ok.permute(*old, n_in, order, smap, *new)
        live_old = slot_map >= 0
        slot_map[live_old] = smap[slot_map[live_old]]
        report.scheduled = n_slots_after - n_in
    new_out = slot_map[out].astype(INDEX)  # outputs are roots: never removed
    new_keep = [remap_slots(k, slot_map, "kept slots") for k in keep]
    report.after = (before if new[0] is before_code else
                    Sizes.of(n_in, new[0], new[2], new[5], new_out))
    if n_slots > KEEP_WORK_UP_TO:
        _release_work()
    report.seconds = time.perf_counter() - t0
    return Optimized(*new, new_out, new_keep, slot_map, report)


def _absorb_lin_chains(n_in, code, param, eptr, arg, coef, tptr, ta, tb, rep, live, roots):
    """Pass 3 (`ok.lin_chains`, `ok.absorb`): the running sum s = s + t of a Python loop
    becomes one sum of its terms, one op instead of a chain of dependent ones. Returns None
    when no op is absorbed, else (ops absorbed, the new (param, eptr, arg, coef, ta, tb) in
    this thread's work buffers: code and tptr stay; the absorbed ops keep no edges, and
    dead-op elimination drops them)."""
    n_ops = code.shape[0]
    n_slots = n_in + n_ops
    b = workspace.buffer
    root = b("opt_flags", (n_slots,), np.uint8)  # (scan's constant flags are used up)
    root[:] = 0
    root[rep[roots]] = 1
    absorbed = b("opt_absorbed", (n_ops,), np.uint8)
    u = np.uint32
    if not ok.lin_chains(code, eptr.view(u), arg.view(u), n_in, rep.view(u), live, root,
                         b("opt_uses", (n_slots,), np.int32), absorbed):
        return None
    n_e = arg.shape[0]
    new = (b("opt_aparam", (n_ops,)), b("opt_aeptr", (n_ops + 1,), INDEX),
           b("opt_aarg", (n_e,), INDEX), b("opt_acoef", (n_e,)),
           b("opt_ata", (ta.shape[0],), INDEX), b("opt_atb", (tb.shape[0],), INDEX))
    stack = (b("opt_stack_op", (n_ops,), INDEX), b("opt_stack_e", (n_ops,), INDEX),
             b("opt_stack_c", (n_ops,)))
    E = ok.absorb(code, param, eptr, arg, coef, tptr, ta, tb, n_in, rep, live, absorbed, *new,
                  *stack)
    if E < 0:
        raise RuntimeError("internal error: the loop-sum pass outgrew the tape's edges")
    return int(absorbed.sum()), new[:2] + (new[2][:E], new[3][:E]) + new[4:]


def schedule_order(n_in, code, eptr, arg, tptr):
    """A new order of the ops of scalar-loop code, or None to keep the recorded one.

    Array code records runs of one op code over contiguous operands, which the run sweeps
    (`runs.py`) sweep as tight loops; a Python loop records its iterations one after another,
    so op codes alternate and no run forms. Ordered by (level in the data flow, code, edge
    count, term count, recorded position), the iterations' independent ops line up in runs
    again: the k-th iteration's op at the k-th place of each run, its operands at steps of one
    when the iterations read consecutive elements. Only tapes large enough for a run plan
    (runs.MIN_TAPE) whose recorded order has too few runs (`runs.worth_planning`) and whose new
    order has enough are reordered. Values are computed by the same ops (the same numbers,
    but for sums of 3 or more terms, whose operands `ok.permute` sorts by slot); adjoints
    are summed in the new reverse order (the same up to rounding)."""
    n_ops = code.shape[0]
    if n_ops < runs.MIN_TAPE or runs.worth_planning(code, runs.MIN_RUN):
        return None
    level = np.empty(n_ops, np.int32)
    u = np.uint32
    ok.levels(eptr.view(u), arg.view(u), n_in, level)
    order = np.lexsort((np.diff(tptr), np.diff(eptr), code, level))  # stable: last key first
    if not runs.worth_planning(code[order], runs.MIN_RUN):
        return None
    return order.astype(INDEX)


# ------------------------------------------------------------------ the report
def _pct(a, b):
    return "" if b == 0 or a == b else f"{100.0 * (a - b) / b:+.0f}%"


def _fmt_bytes(b):
    for unit, k in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if b >= k:
            return f"{b / k:.1f} {unit}"
    return f"{b} B"


def summary(tape):
    """Readable report of a Tape: sizes and op counts by kind, before and after optimisation
    when the tape was optimised at the end of recording, and what each pass removed."""
    rep = tape.optimization
    after = Sizes.of(tape.n_inputs, tape.code, tape.eptr, tape.tptr, tape.out)
    before = rep.before if rep is not None else None
    head = (f"jitad.Tape: {tape.n_inputs} inputs -> {tape.n_outputs} outputs"
            + ("" if rep is not None else
               " (no optimisation report: recorded with optimize=False, or loaded)"))
    rows = [("ops", lambda s: s.ops), ("slots", lambda s: s.slots), ("edges", lambda s: s.edges),
            ("second-order terms", lambda s: s.terms), ("bytes", lambda s: s.nbytes)]
    lines = [head]
    if before is None:
        for name, get in rows:
            v = get(after)
            lines.append(f"  {name:<20}{_fmt_bytes(v) if name == 'bytes' else v:>12}")
    else:
        lines.append(f"  {'':<20}{'recorded':>12}{'optimised':>12}")
        for name, get in rows:
            a, b = get(before), get(after)
            fa, fb = (_fmt_bytes(a), _fmt_bytes(b)) if name == "bytes" else (a, b)
            lines.append(f"  {name:<20}{fa:>12}{fb:>12}  {_pct(b, a)}")
    lines.append("  ops by kind:")
    codes = np.flatnonzero(after.counts + (before.counts if before is not None else 0))
    for c in codes:
        name = oc.OP_NAMES[c]
        if before is None:
            lines.append(f"    {name:<18}{after.counts[c]:>12}")
        else:
            lines.append(f"    {name:<18}{before.counts[c]:>12}{after.counts[c]:>12}")
    if rep is not None:
        t = rep.seconds
        lines += ["  passes:",
                  f"    constant folding  {rep.folded} ops made constants, constant operands of "
                  f"{rep.partially_folded} more folded ({rep.folded_edges} edges removed)",
                  f"    CSE               {rep.merged} duplicate ops merged",
                  f"    dead ops          {rep.dead} ops removed",
                  f"    loop sums         {rep.absorbed} LIN ops absorbed into the sums "
                  "reading them",
                  "    scheduling        " + (f"{rep.scheduled} ops reordered into runs"
                                                 if rep.scheduled else "recorded order kept"),
                  "    time              " + (f"{t:.3g} s" if t >= 1 else f"{t * 1e3:.3g} ms")]
    return "\n".join(lines)
