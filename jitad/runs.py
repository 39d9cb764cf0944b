"""The run plan of a tape: where consecutive ops can be swept as one tight loop.

Array code records many consecutive ops of one code over contiguous operands (x[1:] - x[:-1]**2
is two appends of n-1 ops each). The per-op tape stays the source of truth; from it, once per
tape, `build` derives a partition of the ops into *segments* (one compiled O(ops + edges) scan:
the first version, vectorised numpy, spent ~0.3 s on a 7 * 10^5-op tape, mostly in page faults
of its temporaries):

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
import math

import numpy as np
from numba import njit

from . import opcodes as oc

OPS, ELEM, BLOCK = 0, 1, 2
# Shorter runs are swept op by op: entering a run costs ~60-90 ns (forward + reverse), which
# the run repays at ~16 ops (measured on chains of sin/tanh/scale/multiply runs; perf/README.md).
MIN_RUN = 16
# Below this fraction of ops in runs the tape keeps the per-op sweeps: the per-op segments of
# the run sweeps are ~10% slower than `sweeps.py` (measured, cause not found).
MIN_COVERAGE = 0.25
# Tapes with fewer ops keep the per-op sweeps: compiling the run kernels costs ~10 s of CPU
# once per environment (cached on disk afterwards), which the tiniest problems should not pay.
# Since the sweeps dropped reference counting a plan pays from ~100 ops (Rosenbrock n = 100,
# 595 ops: gradient 2.0 us over its plan, 5.5 op by op); the limit was 1000 before.
MIN_TAPE = 128
WIDE = 3  # LIN ops with at least this many edges are BLOCK candidates
# Tapes with this many ops sweep forward on all threads (`run_sweeps.forward_parallel`), each
# run of at least PARALLEL_MIN_RUN ops split into one chunk per thread: 1.85x on logistic
# regression 10^5 x 50 (exp, log1p and the mat-vec); memory-bound runs (Rosenbrock 10^5, 1.1x)
# and smaller tapes (a parallel region per run costs microseconds) gain little.
PARALLEL_OPS = 50_000
PARALLEL_MIN_RUN = 8192


# flags of a run: its ops share one param / one coefficient per edge position (the kernels then
# read a scalar instead of a stream: x[1:] - x[:-1] is coef (1, -1) and param 0 for every op)
SAME_PARAM, SAME_COEF = 1, 2
# ... and for `run_sweeps.reverse1` (`first_writes`): the run's operand position 0 / 1 makes
# the first contributions to its slots (assigned, not added); every output slot of the
# segment gets its first contribution so (reverse1 need not zero them)
FIRST0, FIRST1, COVERED = 4, 8, 16
# ... and for the forward sweeps (`fused_stretches`): this ELEM run continues the stretch of
# the runs before it, swept together chunk by chunk (FUSE_CHUNK ops of each run in turn)
FUSED = 32
FUSE_CHUNK = 1024
MAX_STRETCH = 32  # runs per stretch (bounds the plan-time overlap test)


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

    def value_free(self, code, eptr, arg, n_in):
        """(R,) uint8: 1 for the runs (and per-op segments) of LIN ops whose values no
        derivative reads (kept on the plan). Derivative-only sweeps
        (`run_sweeps.forward_some`) skip them: their partials are their coefficients, and only
        the function value needs them (a final sum, and the linear combinations feeding it
        only). SKIP_NONE (empty) when there are none."""
        skip = self.__dict__.get("_value_free")
        if skip is None:
            skip = _value_free_runs(code, eptr, arg, n_in, self.seg, self.kind)
            self._value_free = skip = skip if skip.any() else SKIP_NONE
        return skip

    def __repr__(self):
        counts = np.bincount(self.kind, minlength=3)
        return (f"<jitad run plan: {counts[ELEM]} elementwise runs, {counts[BLOCK]} block runs, "
                f"{counts[OPS]} per-op segments, {100 * self.coverage():.0f}% of ops in runs>")


SKIP_NONE = np.zeros(0, np.uint8)  # a skip mask that skips no run (`run_sweeps.forward_some`)


@njit(cache=True)
def _value_free_runs(code, eptr, arg, n_in, seg, kind):
    """See `Plan.value_free`: an op's value is needed when a non-LIN op reads it (its partials
    depend on it) or a LIN op whose value is needed does; ops are visited consumers first."""
    n_ops = eptr.shape[0] - 1
    need = np.zeros(n_in + n_ops, np.uint8)
    for i in range(n_ops - 1, -1, -1):
        if code[i] != oc.LIN or need[n_in + i]:
            for e in range(eptr[i], eptr[i + 1]):
                need[arg[e]] = 1
    skip = np.zeros(kind.shape[0], np.uint8)
    for r in range(kind.shape[0]):  # (per-op segments too: a scheduled loop's final sum)
        free = True
        for i in range(seg[r], seg[r + 1]):
            if code[i] != oc.LIN or need[n_in + i]:
                free = False
                break
        skip[r] = free
    return skip


def build(code, param, eptr, arg, coef, tptr, n_in, out, min_run=MIN_RUN):
    """The run plan of a tape (arrays as validated by `Tape`): one O(ops + edges) scan, and
    one of `first_writes`."""
    n_ops = code.shape[0]
    if n_ops == 0 or not worth_planning(code, min_run):
        return Plan([0, n_ops], [OPS] if n_ops else [], np.zeros((min(n_ops, 1), 2)),
                    np.zeros((min(n_ops, 1), 2)))
    # two passes of one scan: count the segments, then fill arrays of that size (a plan of
    # slot-sized arrays would cost page faults on every large tape)
    none = np.zeros(0, np.int64)
    R = _scan(code, param, eptr, arg, coef, tptr, n_in, min_run, False, none, none.astype(np.int8),
              none.reshape(0, 2), none.reshape(0, 2), none.astype(np.int8), np.zeros((0, 3)))
    seg = np.empty(R + 1, np.int64)
    kind = np.empty(R, np.int8)
    base = np.empty((R, 2), np.int64)
    stride = np.empty((R, 2), np.int64)
    flags = np.empty(R, np.int8)
    const = np.empty((R, 3))
    _scan(code, param, eptr, arg, coef, tptr, n_in, min_run, True, seg, kind, base, stride,
          flags, const)
    first_writes(eptr, arg, n_in, out, seg, kind, base, stride, flags)
    fused_stretches(eptr, n_in, seg, kind, base, stride, flags)
    return Plan(seg, kind, base, stride, flags, const)


@njit(cache=True, error_model="numpy", nogil=True, inline="always")
def disjoint(n, b0, s0, b1, s1):
    """Whether the operand positions of an n-op ELEM run (slots b + k*s) share no slot."""
    return b0 + (n - 1) * s0 < b1 or b1 + (n - 1) * s1 < b0


@njit(cache=True, error_model="numpy", nogil=True)
def _claim(written, assigned, b, s, n, E):
    """Mark slots b + k*s + j (k < n, j < E) written; when none was, also assigned (their
    first contributions are these), and return True."""
    free = True
    for k in range(n):
        for j in range(E):
            if written[b + k * s + j]:
                free = False
    for k in range(n):
        for j in range(E):
            written[b + k * s + j] = 1
            if free:
                assigned[b + k * s + j] = 1
    return free


@njit(cache=True, error_model="numpy", nogil=True)
def first_writes(eptr, arg, n_in, out, seg, kind, base, stride, flags):
    """Add FIRST0/FIRST1/COVERED to flags (R,): follow the reverse sweep's order (the outputs'
    seeds, then segments last to first) and flag an operand position whose slots no earlier
    contribution reached: an ELEM run's, one position at a time when its two are disjoint (the
    kernels' paths), a BLOCK run's when its ops' operand blocks are disjoint. Other segments'
    operands are only marked as reached. A segment is COVERED when every output slot of it
    was first reached by a flagged position."""
    n_ops = eptr.shape[0] - 1
    written = np.zeros(n_in + n_ops, np.uint8)
    assigned = np.zeros(n_in + n_ops, np.uint8)
    for k in range(out.shape[0]):
        written[out[k]] = 1
    for r in range(kind.shape[0] - 1, -1, -1):
        i0 = seg[r]
        i1 = seg[r + 1]
        n = i1 - i0
        E = eptr[i0 + 1] - eptr[i0]
        b0 = base[r, 0]
        s0 = stride[r, 0]
        if kind[r] == ELEM and (E == 1 or E == 2 and disjoint(n, b0, s0, base[r, 1],
                                                              stride[r, 1])):
            if _claim(written, assigned, b0, s0, n, 1):
                flags[r] |= FIRST0
            if E == 2 and _claim(written, assigned, base[r, 1], stride[r, 1], n, 1):
                flags[r] |= FIRST1
        elif kind[r] == BLOCK and (n == 1 or s0 >= E):
            if _claim(written, assigned, b0, s0, n, E):
                flags[r] |= FIRST0
        else:
            for e in range(eptr[i0], eptr[i1]):
                written[arg[e]] = 1
    for r in range(kind.shape[0]):
        covered = True
        for i in range(seg[r], seg[r + 1]):
            if not assigned[n_in + i]:
                covered = False
                break
        if covered:
            flags[r] |= COVERED


@njit(cache=True, error_model="numpy", nogil=True)
def fused_stretches(eptr, n_in, seg, kind, base, stride, flags):
    """Add FUSED to the flags of each ELEM run that can be swept chunk by chunk together with
    the ELEM runs before it (a *stretch*): it has their op count, and each of its operand
    positions either reads none of their outputs or reads one run's outputs in step (stride 1,
    op k reads that run's op k), so that chunk [c0, c1) of every run needs only chunks up to
    [c0, c1) of the runs before. The forward sweeps then keep a chunk's operands in cache
    instead of streaming every run through memory (Rosenbrock 10^5: 6 runs of 8 MB each);
    the values and partials are the same, op by op."""
    s0 = -1  # the stretch's first run
    for r in range(kind.shape[0]):
        n = seg[r + 1] - seg[r]
        ok = (kind[r] == ELEM and s0 >= 0 and r - s0 < MAX_STRETCH
              and n == seg[s0 + 1] - seg[s0])
        if ok:
            for p in range(eptr[seg[r] + 1] - eptr[seg[r]]):
                b = base[r, p]
                hi = b + (n - 1) * stride[r, p]
                for q in range(s0, r):
                    o = n_in + seg[q]
                    if hi >= o and b <= o + n - 1 and not (stride[r, p] == 1 and b == o):
                        ok = False
        if ok:
            flags[r] |= FUSED
        else:
            s0 = r if kind[r] == ELEM else -1


def worth_planning(code, min_run):
    """Cheap first look: whether stretches of one op code of at least min_run ops (the only
    places runs can be) hold MIN_COVERAGE of the ops. Scalar-loop code, whose codes alternate,
    skips the full analysis."""
    n = code.shape[0]
    change = np.flatnonzero(code[1:] != code[:-1]) + 1
    lengths = np.diff(np.concatenate(([0], change, [n])))
    return lengths[lengths >= min_run].sum() >= MIN_COVERAGE * n


@njit(cache=True, error_model="numpy", nogil=True)
def _same_bits(p, q):
    """p and q are the same float bit for bit (0.0 != -0.0; NaN never matches)."""
    return p == q and math.copysign(1.0, p) == math.copysign(1.0, q)


@njit(cache=True, error_model="numpy", nogil=True)
def _op_class(code, eptr, arg, i):
    """1 (ELEM candidate), 2 (BLOCK candidate: wide LIN over consecutive slots) or 0."""
    c = code[i]
    e0 = eptr[i]
    E = eptr[i + 1] - e0
    if c == oc.DOT:
        return 1 if E == 2 else 0
    if E <= 2:
        return 1
    if c != oc.LIN or E < WIDE:
        return 0
    for e in range(e0 + 1, e0 + E):
        if arg[e] != arg[e - 1] + 1:
            return 0
    return 2


@njit(cache=True, error_model="numpy", nogil=True)
def _scan(code, param, eptr, arg, coef, tptr, n_in, min_run, fill, seg, kind, base, stride,
          flags, const):
    """Greedy left-to-right segmentation; returns the number of segments and, with fill,
    writes them. An op joins the open run when its class, code, E and T match, its operand
    steps from the previous op equal the run's (0 or 1 per position for ELEM, >= 0 for BLOCK)
    and it reads no slot the run wrote."""
    n_ops = code.shape[0]
    R = 0
    last_ops = False  # the last emitted segment is OPS (a short run or OPS ops merge into it)
    i = 0
    while i < n_ops:
        cls = _op_class(code, eptr, arg, i)
        j = i + 1
        E = eptr[i + 1] - eptr[i]
        if cls != 0:
            c = code[i]
            T = tptr[i + 1] - tptr[i]
            top = n_in + i  # operands must stay below the run's first output slot
            a0 = arg[eptr[i]] if E >= 1 else -1
            a1 = arg[eptr[i] + 1] if E >= 2 else -1
            hi = a0 + E - 1 if cls == 2 else max(a0, a1)
            d0 = -1
            d1 = -1
            same_p = True
            same_c = cls == 1
            if hi >= top:
                j = i + 1
            else:
                while j < n_ops:
                    e0 = eptr[j]
                    if (code[j] != c or eptr[j + 1] - e0 != E or tptr[j + 1] - tptr[j] != T
                            or _op_class(code, eptr, arg, j) != cls):
                        break
                    s0 = (arg[e0] - arg[eptr[j - 1]]) if E >= 1 else 0
                    s1 = (arg[e0 + 1] - arg[eptr[j - 1] + 1]) if E >= 2 else 0
                    if cls == 1 and not (0 <= s0 <= 1 and 0 <= s1 <= 1):
                        break
                    if cls == 2 and s0 < 0:
                        break
                    if j == i + 1:
                        d0 = s0
                        d1 = s1
                    elif s0 != d0 or s1 != d1:
                        break
                    h = arg[e0] + E - 1 if cls == 2 else max(arg[e0] if E >= 1 else -1,
                                                               arg[e0 + 1] if E >= 2 else -1)
                    if h >= top:
                        break
                    same_p = same_p and _same_bits(param[j], param[i])
                    if same_c:
                        for p in range(E):
                            if not _same_bits(coef[e0 + p], coef[eptr[i] + p]):
                                same_c = False
                    j += 1
            L = j - i
            if L >= min_run or (cls == 2 and L * E >= min_run):
                if fill:
                    seg[R] = i
                    kind[R] = ELEM if cls == 1 else BLOCK
                    base[R, 0] = a0
                    base[R, 1] = a1
                    stride[R, 0] = d0 if L > 1 else 0
                    stride[R, 1] = d1 if L > 1 else 0
                    flags[R] = ((SAME_PARAM if same_p else 0)
                                | (SAME_COEF if same_c and c == oc.LIN else 0))
                    const[R, 0] = param[i]
                    const[R, 1] = coef[eptr[i]] if E >= 1 and cls == 1 else 0.0
                    const[R, 2] = coef[eptr[i] + 1] if E >= 2 and cls == 1 else 0.0
                R += 1
                last_ops = False
                i = j
                continue
        # ops i..j-1 are swept one at a time
        if not last_ops:
            if fill:
                seg[R] = i
                kind[R] = OPS
                base[R, 0] = base[R, 1] = stride[R, 0] = stride[R, 1] = 0
                flags[R] = 0
                const[R, 0] = const[R, 1] = const[R, 2] = 0.0
            R += 1
            last_ops = True
        i = j
    if fill:
        seg[R] = n_ops
    return R


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
