"""The run plan of a tape: where consecutive ops can be swept as one tight loop.

Array code records many consecutive ops of one code over contiguous operands (x[1:] - x[:-1]**2
is two appends of n-1 ops each). The per-op tape stays the source of truth; from it, once per
tape and with vectorised numpy, `build` derives a partition of the ops into *segments*:

- ELEM: ops of one code with the same edge count E <= 2 and term count, whose operand at edge
  position p is base[p] + k * stride[p] for the k-th op of the segment, stride 0 (a broadcast
  operand) or 1 (contiguous memory);
- BLOCK: LIN ops with E >= 3 edges over contiguous slots base + k * stride + j (j < E), for any
  stride >= 0: an n-ary sum (one op) or a matmul-shaped block (X @ w: stride 0, coefficients
  row k of X);
- OPS: everything else, swept op by op as before.

A run never reads its own outputs (every operand slot is below the run's first output slot), so
its loop has no dependences between iterations and the order of its ops does not matter for the
values. The run kernels (`run_sweeps.py`) add contributions in the same order as the per-op
sweeps, so their results are bitwise identical.
"""
import numpy as np

from . import opcodes as oc

OPS, ELEM, BLOCK = 0, 1, 2
# Shorter runs are swept op by op: entering a run costs ~60-90 ns (forward + reverse), which
# the run repays at ~16 ops (measured on chains of sin/tanh/scale/multiply runs; perf/README.md).
MIN_RUN = 16
# Below this fraction of ops in runs the tape keeps the per-op sweeps: the per-op segments of
# the run sweeps are ~10% slower than `sweeps.py` (measured, cause not found).
MIN_COVERAGE = 0.25
# Tapes with fewer ops keep the per-op sweeps (a plan saves little there, and the run kernels
# take four more arguments, which costs call overhead on tiny tapes).
MIN_TAPE = 64
WIDE = 3  # LIN ops with at least this many edges are BLOCK candidates
_SPLIT_PASSES = 8  # self-read splits per build; runs still reading themselves go to OPS


# flags of a run: its ops share one param / one coefficient per edge position (the kernels then
# read a scalar instead of a stream: x[1:] - x[:-1] is coef (1, -1) and param 0 for every op)
SAME_PARAM, SAME_COEF = 1, 2


class Plan:
    """Segments of a tape: seg (R+1,) op offsets, kind (R,) int8 (OPS/ELEM/BLOCK), base and
    stride (R, 2) int64 (per edge position for ELEM; position 0 only for BLOCK), flags (R,) int8
    (SAME_PARAM | SAME_COEF) and const (R, 3) float64 (the shared param, coef 0, coef 1)."""

    def __init__(self, seg, kind, base, stride, flags=None, const=None):
        self.seg = np.ascontiguousarray(seg, dtype=np.int64)
        self.kind = np.ascontiguousarray(kind, dtype=np.int8)
        self.base = np.ascontiguousarray(base, dtype=np.int64)
        self.stride = np.ascontiguousarray(stride, dtype=np.int64)
        R = self.kind.shape[0]
        self.flags = np.zeros(R, np.int8) if flags is None else np.ascontiguousarray(flags, np.int8)
        self.const = (np.zeros((R, 3)) if const is None
                      else np.ascontiguousarray(const, dtype=np.float64))

    @property
    def arrays(self):
        """The arrays the run kernels take, in their argument order."""
        return self.seg, self.kind, self.base, self.stride, self.flags, self.const

    def __len__(self):
        return int(self.kind.shape[0])

    def has_runs(self):
        return bool((self.kind != OPS).any())

    def worthwhile(self):
        """Whether the run sweeps should replace the per-op sweeps for this tape."""
        return self.has_runs() and self.coverage() >= MIN_COVERAGE

    def coverage(self):
        """Fraction of ops that are in ELEM or BLOCK runs."""
        n = self.seg[-1]
        if n == 0:
            return 0.0
        lengths = np.diff(self.seg)
        return float(lengths[self.kind != OPS].sum() / n)

    def __repr__(self):
        counts = np.bincount(self.kind, minlength=3)
        return (f"<jitad run plan: {counts[ELEM]} elementwise runs, {counts[BLOCK]} block runs, "
                f"{counts[OPS]} per-op segments, {100 * self.coverage():.0f}% of ops in runs>")


def build(code, param, eptr, arg, coef, tptr, n_in, min_run=MIN_RUN):
    """The run plan of a tape (arrays as in `Tape`). Vectorised: O(ops + edges) numpy work."""
    n_ops = code.shape[0]
    if n_ops == 0 or not _worth_planning(code, min_run):
        return Plan([0, n_ops], [OPS] if n_ops else [], np.zeros((min(n_ops, 1), 2)),
                    np.zeros((min(n_ops, 1), 2)))
    code = code.astype(np.int64)
    eptr = eptr.astype(np.int64)
    arg = arg.astype(np.int64)
    E = np.diff(eptr)
    T = np.diff(tptr.astype(np.int64))
    e0 = eptr[:-1]
    # operands of narrow ops at positions 0 and 1 (-1 when absent)
    a0 = np.where(E >= 1, arg[np.minimum(e0, max(arg.shape[0] - 1, 0))] if arg.size else -1, -1)
    a1 = np.where(E >= 2, arg[np.minimum(e0 + 1, max(arg.shape[0] - 1, 0))] if arg.size else -1,
                  -1)
    narrow = (E <= 2) & (code != oc.DOT) | (code == oc.DOT) & (E == 2)
    wide = (code == oc.LIN) & (E >= WIDE) & _contiguous_edges(eptr, arg, E)
    cls = np.where(narrow, 1, np.where(wide, 2, 0))
    # a link joins op i-1 and op i when both are of one class, code, E and T and the operand
    # steps are allowed; runs break where the steps change
    same = np.zeros(n_ops, dtype=bool)
    same[1:] = ((cls[1:] == cls[:-1]) & (cls[1:] != 0) & (code[1:] == code[:-1])
                & (E[1:] == E[:-1]) & (T[1:] == T[:-1]))
    d0 = np.zeros(n_ops, dtype=np.int64)
    d1 = np.zeros(n_ops, dtype=np.int64)
    d0[1:] = a0[1:] - a0[:-1]
    d1[1:] = a1[1:] - a1[:-1]
    ok = np.where(cls == 1, (d0 == 0) | (d0 == 1), d0 >= 0)
    ok &= np.where(cls == 1, (d1 == 0) | (d1 == 1) | (E < 2), True)
    link = same & ok
    start = ~link
    # a link whose steps differ from the previous link's starts a new run
    change = np.zeros(n_ops, dtype=bool)
    change[2:] = link[2:] & link[1:-1] & ((d0[2:] != d0[1:-1]) | (d1[2:] != d1[1:-1]))
    start |= change
    start[0] = True
    seg = np.flatnonzero(start)
    seg = _split_self_reads(seg, cls, a0, a1, E, n_in, n_ops)
    plan = _finish(seg, cls, a0, a1, E, n_in, n_ops, min_run)
    _constants(plan, param, coef, eptr, E)
    return plan


def _worth_planning(code, min_run):
    """Cheap first look: whether stretches of one op code of at least min_run ops (the only
    places runs can be) hold MIN_COVERAGE of the ops. Scalar-loop code, whose codes alternate,
    skips the full analysis."""
    n = code.shape[0]
    change = np.flatnonzero(code[1:] != code[:-1]) + 1
    lengths = np.diff(np.concatenate(([0], change, [n])))
    return lengths[lengths >= min_run].sum() >= MIN_COVERAGE * n


def _contiguous_edges(eptr, arg, E):
    """Per op: whether its edges name consecutive slots (arg[e+1] == arg[e] + 1)."""
    n_ops = E.shape[0]
    if arg.shape[0] < 2:
        return np.ones(n_ops, dtype=bool)
    step_bad = np.diff(arg) != 1  # between edge e and e+1
    # edge pairs inside one op: e and e+1 with e+1 not an op start
    inner = np.ones(arg.shape[0] - 1, dtype=bool)
    starts = eptr[1:-1]
    inner[starts[(starts > 0) & (starts < arg.shape[0])] - 1] = False
    bad = step_bad & inner
    owner = np.repeat(np.arange(n_ops), E)[:-1]  # op of edge e (for the pair e, e+1)
    nbad = np.bincount(owner[bad], minlength=n_ops)
    return nbad == 0


def _max_operand(seg, cls, a0, a1, E, n_ops):
    """Per op: the largest operand slot (-1 for no edges)."""
    hi = np.maximum(a0, a1)
    hi = np.where(cls == 2, a0 + E - 1, hi)
    return hi


def _split_self_reads(seg, cls, a0, a1, E, n_in, n_ops):
    """Cut segments where an op reads a slot written earlier in its own segment."""
    hi = _max_operand(seg, cls, a0, a1, E, n_ops)
    for _ in range(_SPLIT_PASSES):
        owner_start = np.repeat(seg, np.diff(np.append(seg, n_ops)))
        bad = (hi >= n_in + owner_start) & (cls != 0)
        if not bad.any():
            break
        # first bad op of each segment starts a new segment there
        new = np.flatnonzero(bad)
        first = new[np.r_[True, owner_start[new[1:]] != owner_start[new[:-1]]]]
        seg = np.union1d(seg, first)
    return seg


def _finish(seg, cls, a0, a1, E, n_in, n_ops, min_run):
    ends = np.append(seg[1:], n_ops)
    L = ends - seg
    c = cls[seg]
    hi = _max_operand(seg, cls, a0, a1, E, n_ops)
    owner_start = np.repeat(seg, L)
    selfread = np.bincount(np.repeat(np.arange(seg.shape[0]), L),
                           weights=(hi >= n_in + owner_start) & (cls != 0),
                           minlength=seg.shape[0]) > 0
    work = L * np.maximum(E[seg], 1)
    kind = np.where((c != 0) & ~selfread & ((L >= min_run) | ((c == 2) & (work >= min_run))),
                    c, OPS)
    base = np.stack([a0[seg], a1[seg]], axis=1)
    last = ends - 1
    stride = np.stack([a0[last] - a0[seg], a1[last] - a1[seg]], axis=1) // np.maximum(L - 1, 1)[:, None]
    # merge consecutive per-op segments into one
    keep = np.ones(seg.shape[0], dtype=bool)
    keep[1:] = ~((kind[1:] == OPS) & (kind[:-1] == OPS))
    seg, kind, base, stride = seg[keep], kind[keep], base[keep], stride[keep]
    base[kind == OPS] = 0
    stride[kind == OPS] = 0
    return Plan(np.append(seg, n_ops), kind, base, stride)


def _same(x, seg, n):
    """Per segment [seg[r], seg[r+1]) of x (n,): whether all entries are bitwise equal."""
    bits = x.view(np.int64)
    return np.maximum.reduceat(bits, seg[:-1]) == np.minimum.reduceat(bits, seg[:-1])


def _constants(plan, param, coef, eptr, E):
    """Fill plan.flags/const: runs whose ops share their param or their coefficients."""
    seg, kind = plan.seg, plan.kind
    R = kind.shape[0]
    if R == 0:
        return
    n_ops = E.shape[0]
    flags = np.where(_same(param[:n_ops], seg, n_ops), SAME_PARAM, 0)
    const = np.zeros((R, 3))
    const[:, 0] = param[seg[:-1]]
    e0 = eptr[:-1]
    narrow = (E >= 1) & (E <= 2)
    if coef.shape[0]:
        last = coef.shape[0] - 1
        c0 = np.where(narrow, coef[np.minimum(e0, last)], 0.0)
        c1 = np.where(E == 2, coef[np.minimum(e0 + 1, last)], 0.0)
        same_c = _same(c0, seg, n_ops) & _same(c1, seg, n_ops) & (kind == ELEM)
        flags |= np.where(same_c, SAME_COEF, 0)
        const[:, 1] = c0[seg[:-1]]
        const[:, 2] = c1[seg[:-1]]
    flags[kind == OPS] = 0
    plan.flags = flags.astype(np.int8)
    plan.const = const


def check(plan, code, eptr, arg, n_in):
    """Verify a plan against its tape (tests and debugging): every run's operands follow its
    base/stride pattern and lie below its first output slot. Raises AssertionError."""
    seg, kind, base, stride = plan.seg, plan.kind, plan.base, plan.stride
    E = np.diff(eptr)
    for r in range(len(plan)):
        i0, i1 = int(seg[r]), int(seg[r + 1])
        if kind[r] == OPS:
            continue
        assert i1 > i0
        assert (code[i0:i1] == code[i0]).all() and (E[i0:i1] == E[i0]).all()
        k = np.arange(i1 - i0)
        e = int(E[i0])
        ops_args = arg[eptr[i0]:eptr[i1]].reshape(i1 - i0, e)
        if kind[r] == ELEM:
            assert e <= 2 and (stride[r] >= 0).all() and (stride[r] <= 1).all()
            want = base[r][None, :e] + k[:, None] * stride[r][None, :e]
        else:
            assert code[i0] == oc.LIN and e >= WIDE and stride[r, 0] >= 0
            want = base[r, 0] + k[:, None] * stride[r, 0] + np.arange(e)[None, :]
        assert (ops_args == want).all(), f"run {r} operands do not follow its pattern"
        assert ops_args.size == 0 or ops_args.max() < n_in + i0, f"run {r} reads its own outputs"
