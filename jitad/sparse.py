"""Sparse Jacobians and Hessians, with a plan per tape reused at every point.

A plan holds what depends only on the tape: the sparsity pattern (`sparsity.py`), for Hessians
the maps of the direct accumulation (`direct.py`), a colouring (`coloring.py`), the seed matrix
S with one column per colour, and for every pattern entry where its value sits in the
compressed product. At a point, Hessian values come from the direct accumulation when its maps
were built (within their budget), else, like Jacobian values, from one multi-direction sweep per
block of colours and one gather:

- Hessian: star colouring of the symmetric pattern, B = H @ S by forward-over-reverse, and
  direct recovery H[i, j] = B[v, c] (GMP 2005, section 4);
- Jacobian: column colouring and J @ S by forward mode, or row colouring and S.T @ J by reverse
  mode, whichever needs fewer colours.

Plans are built on first use and cached on the tape (tapes are immutable). When colouring
cannot pay (dense patterns), the plan says so and values come from the dense sweeps.
"""
import time

import numba
import numpy as np

from . import coloring, dense_out, direct, runs, sparsity, sweeps, workspace
from . import opcodes as oc
from .threads import parallel

# `Tape.hessian` tries the sparse plan from this many inputs on. Below it a dense Hessian is
# a few blocks of directions, and on dense problems of that size (Lennard-Jones 30, n = 90)
# finding the pattern costs about as much as the dense Hessian itself (measured).
AUTO_MIN_N = 128
# ... and takes it when the colouring has at most this fraction of n colours.
AUTO_MAX_COLOR_FRACTION = 0.5
# Direct Hessian programs with at least this many gradient entries and products run on all
# threads (each parallel group costs a few microseconds to start; measured on Rosenbrock).
DIRECT_PARALLEL_WORK = 20_000
# Colourings up to this many colours run as one sweep of exactly that width.
BLOCK = 32
# Patterns with more than this fraction of n^2 entries are not coloured (dense).
DENSE_FRACTION = 0.5
# Cost of a tape's sweeps and direct program, in zeroed dense entries per slot, edge, term and
# direct-program item: how many rows fewer the sweeping thread zeroes (`direct_dense.py`)
_SWEEP_ENTRIES = 8.0


def _scipy_sparse():
    try:
        import scipy.sparse
    except ImportError:  # optional dependency
        raise ImportError("converting to a scipy.sparse matrix needs scipy (pip install scipy); "
                          "indptr, indices and data are available without it") from None
    return scipy.sparse


class SparsityPattern:
    """A structural pattern in CSR form: row i has nonzeros in columns
    indices[indptr[i]:indptr[i+1]] (sorted). Attributes: indptr (rows+1,) int64, indices
    (nnz,) int32, shape, nnz. `toarray()` gives a dense bool array, `tocsr()` a
    scipy.sparse.csr_matrix of booleans (scipy required)."""

    def __init__(self, indptr, indices, shape):
        self.indptr = indptr
        self.indices = indices
        self.shape = tuple(int(s) for s in shape)

    @property
    def nnz(self):
        return int(self.indices.shape[0])

    def rows(self):
        """Row index of every entry, (nnz,) int64."""
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))

    def toarray(self):
        a = np.zeros(self.shape, dtype=bool)
        a[self.rows(), self.indices] = True
        return a

    def tocsr(self):
        return _scipy_sparse().csr_matrix(
            (np.ones(self.nnz, dtype=bool), self.indices, self.indptr), shape=self.shape)

    def __repr__(self):
        return f"<jitad.SparsityPattern {self.shape[0]}x{self.shape[1]}, {self.nnz} entries>"


class SparseMatrix(SparsityPattern):
    """Values on a sparsity pattern (CSR): data (nnz,) float64 is aligned with indices.
    `toarray()` gives the dense float array, `tocsr()` a scipy.sparse.csr_matrix (scipy
    required), `pattern` the SparsityPattern."""

    def __init__(self, pattern, data):
        # the pattern's fields as they are (shape is already a tuple of ints): this runs on
        # every sparse Hessian and Jacobian
        self.indptr, self.indices, self.shape = pattern.indptr, pattern.indices, pattern.shape
        self.pattern = pattern
        self.data = data

    def toarray(self):
        return dense_out.from_csr(*self.shape, self.indptr, self.indices, self.data)

    def tocsr(self):
        return _scipy_sparse().csr_matrix((self.data.copy(), self.indices, self.indptr),
                                          shape=self.shape)

    def __repr__(self):
        return f"<jitad.SparseMatrix {self.shape[0]}x{self.shape[1]}, {self.nnz} entries>"


def _tape_args(tape):
    return (tape.code, tape.eptr, tape.arg, tape.tptr, tape.ta, tape.tb, tape.n_inputs, tape.out,
            oc.ZERO_DERIVATIVE)


def jacobian_pattern(tape):
    """The (m, n) Jacobian pattern of a tape (cached on the tape)."""
    p = tape.__dict__.get("_jac_pattern")
    if p is None:
        indptr, indices = sparsity.jacobian_pattern(*_tape_args(tape))
        p = tape._jac_pattern = SparsityPattern(indptr, indices, (tape.n_outputs, tape.n_inputs))
    return p


def _hessian_pattern(tape, budget):
    p = tape.__dict__.get("_hess_pattern")
    if p is None:
        indptr, indices = sparsity.hessian_pattern(*_tape_args(tape), budget)
        if indptr.shape[0] == 0:
            return None  # over budget: dense
        p = tape._hess_pattern = SparsityPattern(indptr, indices,
                                                 (tape.n_inputs, tape.n_inputs))
    return p


def hessian_pattern(tape):
    """The (n, n) symmetric Hessian pattern of any weighted sum of the outputs (cached)."""
    return _hessian_pattern(tape, -1)


def _order(degree):
    """Largest degree first (ties by index): fewer colours than the natural order in general."""
    return np.argsort(-degree, kind="stable").astype(np.int64)


class HessianPlan:
    """Pattern, star colouring, seed and recovery indices of a tape's Hessian.

    Attributes: pattern (SparsityPattern, None when it was given up as dense), method (how
    values are computed: "direct", "compressed" or "dense"), colors ((n,) int32 or None when
    not coloured), n_colors, compressed (colouring with fewer than n colours), pattern_seconds,
    direct_seconds (building the direct maps), coloring_seconds.
    """

    def __init__(self, tape, budget=-1, direct_maps=True):
        n = tape.n_inputs
        self.n = n
        t0 = time.perf_counter()
        self.pattern = _hessian_pattern(tape, budget)
        t1 = time.perf_counter()
        self.pattern_seconds = t1 - t0
        self.colors = None
        self.n_colors = n
        self.compressed = False
        self.coloring_seconds = self.direct_seconds = 0.0
        self.direct = None
        self._direct_tried = False
        p = self.pattern
        if p is None:
            return
        if direct_maps:
            self._build_direct(tape)
        t1 = time.perf_counter()
        if p.nnz > DENSE_FRACTION * n * n:
            return
        rows = p.rows()
        offdiag = rows != p.indices
        degree = np.bincount(rows[offdiag], minlength=n).astype(np.int64)
        # greedy star colouring steps: sum over w of deg(w) * sum of its neighbours' degrees
        steps = float(np.dot(degree, np.bincount(rows[offdiag], weights=degree[p.indices[offdiag]],
                                                 minlength=n)))
        if steps > 10.0 * n * (tape.n_slots + tape.arg.shape[0]) + 1e6:
            return  # colouring would cost more than dense HVPs
        colors = coloring.star_coloring(p.indptr, p.indices, _order(degree))
        k = int(colors.max()) + 1 if n else 0
        src_v, src_c, ok = coloring.star_sources(p.indptr, p.indices, colors, max(k, 1))
        if not ok:
            raise RuntimeError("internal error: the Hessian colouring is not a star colouring")
        self.colors, self.n_colors, self.compressed = colors, k, k < n
        self.seed = np.zeros((n, k))
        self.seed[np.arange(n), colors] = 1.0
        self.source = src_c * n + src_v  # flat index into (H @ S).T, shape (k, n)
        self.source_k = src_v * k + src_c  # flat index into H @ S, shape (n, k)
        self.src_v = src_v
        self.coloring_seconds = time.perf_counter() - t1

    def _build_direct(self, tape):
        """Maps of the direct accumulation (`direct.py`) when they stay within a few times
        the tape's size (else None)."""
        t0 = time.perf_counter()
        self._direct_tried = True
        p = self.pattern
        budget = 8 * (tape.n_slots + tape.arg.shape[0] + tape.ta.shape[0]) + 4 * p.nnz
        maps = direct.direct_plan(*_tape_args(tape), p.indptr, p.indices, budget)
        # empty ggptr: over budget; d1 + gval and the terms must stay in the index range
        if (maps[2].shape[0] > 0 and max(maps[1] + tape.arg.shape[0], maps[8].shape[0])
                < np.iinfo(np.int32).max):
            self.direct = maps
            self._direct_work = maps[5].shape[0] + maps[14].shape[0]  # entries + products
            self._sweep_entries = _SWEEP_ENTRIES * (tape.n_slots + tape.arg.shape[0]
                                                    + tape.ta.shape[0] + self._direct_work)
        self.direct_seconds = time.perf_counter() - t0

    def _direct_maps(self, tape):
        """The direct maps (None when over budget or without a pattern), built on first use
        when the automatic choice of `Tape.hessian` deferred them."""
        if not self._direct_tried and self.pattern is not None:
            self._build_direct(tape)
        return self.direct

    @property
    def method(self):
        """How `values` computes the entries: "direct" (sparse gradients and term pairs),
        "compressed" (n_colors HVP directions) or "dense" (n directions). A plan made by the
        automatic choice of `Tape.hessian` builds its direct maps on its first `values`."""
        return "direct" if self.direct is not None else (
            "compressed" if self.compressed else "dense")

    @property
    def auto(self):
        """Whether the dense `Tape.hessian` should take the compressed path."""
        return self.compressed and self.n_colors <= AUTO_MAX_COLOR_FRACTION * self.n

    def _direct_work_arrays(self, tape):
        """(ud, c): the direct program's work arrays in this thread. The gradients live after
        the point arrays' d1, in its buffer (`direct.py`): grown (if it must be) before the
        sweeps fill d1; the views are kept per thread until a buffer grows (a few microseconds
        of a 10^3-input Hessian otherwise)."""
        d = self.direct
        n_e = tape.arg.shape[0]
        return workspace.cached((tape._uid, "direct", d[1], d[8].shape[0]), lambda: (
            workspace.buffer("d1", (n_e + d[1],)),
            workspace.buffer("sp_direct", (d[8].shape[0],))))

    def values(self, tape, x, w):
        """(nnz,) Hessian entries on the pattern at x (validated) for output weights w."""
        d = self._direct_maps(tape)
        if d is not None:
            data = np.empty(self.pattern.indices.shape[0])
            # (numba.get_num_threads costs microseconds: asked only for large programs)
            threads = numba.get_num_threads() if self._direct_work >= DIRECT_PARALLEL_WORK else 1
            run_plan = _fusable(tape) if threads == 1 else None
            if run_plan is not None:  # sweeps and direct program in one call
                args, complete = _sweep_args(self, tape, run_plan, x, tape._weights(w))
                _kernels().sparse_values(*args, data)
                _swept(tape, x, complete)
                return data
            n_e = tape.arg.shape[0]
            ud, c = self._direct_work_arrays(tape)
            _, d1, d2, adj = tape._adjoints(x, tape._weights(w))
            if d1.base is not ud.base:  # ud[:n_e] must be the d1 the sweeps just wrote
                raise RuntimeError("internal error: the point arrays' d1 is not in its buffer")
            if threads > 1:
                parallel(direct.direct_values_parallel, ud, n_e, d2, tape.n_inputs, adj, *d, c,
                         data, threads)
            else:
                direct.direct_values(ud, n_e, d2, tape.n_inputs, adj, *d, c, data)
            return data
        if not self.compressed:
            H = tape._dense_hessian(x, w)
            return H[self.pattern.rows(), self.pattern.indices]
        if self.pattern.nnz == 0:
            tape._weights(w)
            return np.zeros(0)
        k = self.n_colors
        if k > BLOCK:  # blocks of colours in parallel
            BT = tape._hvp_rows(x, w, self.seed, False, k)  # (k, n) = (H @ S).T
            return BT.ravel()[self.source]
        # one sweep exactly k wide (the block runner would pad k to a multiple of 8)
        _, d1, d2, adj = tape._adjoints(x, tape._weights(w))
        ns = tape.n_slots
        dot = workspace.buffer("sp_dot", (ns, k))
        bar = workspace.buffer("sp_bar", (ns, k))
        acts = workspace.buffer("sp_act", (2, ns), np.uint8)
        sweeps.hvp(tape._ueptr, tape._uarg, d1, d2, tape.n_inputs, adj, self.seed, dot, bar,
                   acts[0], acts[1], tape._transposed())
        # rows of bar with bact == 0 were not written: they are zero
        return np.where(acts[1][self.src_v] != 0, bar.reshape(-1)[self.source_k], 0.0)


class JacobianPlan:
    """Pattern, row or column colouring, seed and recovery indices of a tape's Jacobian.

    Attributes: pattern, mode ("forward": columns coloured, J @ S by tangents; "reverse": rows
    coloured, S.T @ J by adjoints), colors (None when not coloured), n_colors, compressed,
    pattern_seconds, coloring_seconds.
    """

    def __init__(self, tape):
        m, n = tape.n_outputs, tape.n_inputs
        t0 = time.perf_counter()
        p = self.pattern = jacobian_pattern(tape)
        t1 = time.perf_counter()
        self.pattern_seconds = t1 - t0
        self.colors, self.compressed, self.coloring_seconds = None, False, 0.0
        row_len = np.diff(p.indptr)
        col_len = np.bincount(p.indices, minlength=n)
        # a colouring needs at least the longest row (columns) / column (rows) colours
        need_fwd = int(row_len.max()) if m else 0
        need_rev = int(col_len.max()) if n else 0
        self.mode = "forward" if (need_fwd, n) <= (need_rev, m) else "reverse"
        self.n_colors = n if self.mode == "forward" else m
        if p.nnz == 0 or min(need_fwd, need_rev) > 0.5 * max(1, min(n, m)) + 1:
            return
        tptr, tind = coloring.transpose_pattern(p.indptr, p.indices, n)
        rows = p.rows()
        if self.mode == "forward":
            colors = coloring.greedy_partition(tptr, tind, p.indptr, p.indices, _order(col_len))
            k = int(colors.max()) + 1
            self.seed = np.zeros((n, k))
            self.seed[np.arange(n), colors] = 1.0
            self.source = rows * k + colors[p.indices]  # into J @ S, (m, k)
        else:
            colors = coloring.greedy_partition(p.indptr, p.indices, tptr, tind, _order(row_len))
            k = int(colors.max()) + 1
            self.seed = np.zeros((k, m))
            self.seed[colors, np.arange(m)] = 1.0
            self.source = colors[rows].astype(np.int64) * n + p.indices  # into S.T @ J, (k, n)
        self.colors, self.n_colors = colors, k
        self.compressed = k < (n if self.mode == "forward" else m)
        self.coloring_seconds = time.perf_counter() - t1

    def values(self, tape, x):
        """(nnz,) Jacobian entries on the pattern at x (validated)."""
        p = self.pattern
        if p.nnz == 0:
            return np.zeros(0)
        if not self.compressed:
            return tape.jacobian(x)[p.rows(), p.indices]
        if self.mode == "forward":
            B = tape.jvp(x, self.seed)[1]
        else:
            B = tape.vjp(x, self.seed)[1]
        return np.ascontiguousarray(B).ravel()[self.source]


def hessian_plan(tape):
    """The tape's HessianPlan (built on first use, then cached on the tape)."""
    return tape._derived("_hess_plan", HessianPlan)


def jacobian_plan(tape):
    """The tape's JacobianPlan (built on first use, then cached on the tape)."""
    return tape._derived("_jac_plan", JacobianPlan)


def auto_hessian(tape, x, w):
    """The dense Hessian from the compressed path when the tape's plan makes it cheaper, else
    None (the caller runs the dense sweeps). The first call decides, with a pattern budget of
    about a quarter of one dense Hessian's work, so dense problems pay little for asking."""
    plan = tape.__dict__.get("_hess_auto")
    if plan is None:
        plan = tape.__dict__.get("_hess_plan")
        if plan is None:
            n = tape.n_inputs
            budget = n * (tape.n_slots + tape.arg.shape[0] + tape.ta.shape[0]) // 4
            plan = HessianPlan(tape, budget, direct_maps=False)
            if plan.pattern is not None:  # a plan given up over budget is not the tape's plan
                tape._hess_plan = plan
        plan = tape._hess_auto = plan if plan.auto else False
    if plan is False:
        return None
    n = tape.n_inputs
    run_plan = _fusable(tape)
    if run_plan is not None and plan._direct_maps(tape) is not None:
        return _direct_dense(plan, tape, run_plan, x, tape._weights(w))
    data = plan.values(tape, x, w)
    if not np.isfinite(data).all():
        return None  # inf/nan: the dense sweeps give the documented special values entry-wise
    return dense_out.from_csr(n, n, plan.pattern.indptr, plan.pattern.indices, data)


def _fusable(tape):
    """The tape's run plan when one-call kernels (`direct_dense`, `run_sweeps.gradient` and
    `hvp_at`) can sweep it (built by an earlier sweep, swept in one thread, no guards to
    check), else None."""
    run_plan = tape._plan  # False until a sweep built it (a tape's first sweep runs op by op)
    if (run_plan is not None and run_plan is not False and not tape._guarded
            and tape.code.shape[0] < runs.PARALLEL_OPS):
        return run_plan
    return None


_dd_module = None  # the module `direct_dense`, imported (and compiled) on first use


def _kernels():
    global _dd_module
    if _dd_module is None:
        from . import direct_dense
        _dd_module = direct_dense
    return _dd_module


def _sweep_args(plan, tape, run_plan, x, w):
    """(arguments of `direct_dense`'s kernels up to the direct programs' c, whether val will
    hold every value), with this thread's point arrays, whose cache key is dropped (they are
    rewritten: `_swept` sets it after the call when val is complete). The forward sweep skips
    the runs whose values no derivative needs when d1 holds the tape's LIN partials. The
    arguments but x, w and the skipping are kept per thread (a 10^3-input sparse Hessian is
    ~25 us, and building the 50-argument tuple took several)."""
    ws = workspace.local()
    key = (tape._uid, "fused")
    parts = ws.views.get(key)
    if parts is None or parts[4] is not plan:
        ws.views.pop(key, None)
        parts = workspace.cached(key, lambda: _sweep_parts(plan, tape, run_plan))
    lin_ready = ws.lin_owner == tape._uid
    ws.point_key = None
    skip, complete = parts[3] if lin_ready else (runs.SKIP_NONE, True)
    return parts[0] + (x, lin_ready) + parts[1] + (skip, tape._uout, w) + parts[2], complete


def _sweep_parts(plan, tape, run_plan):
    """The parts of `_sweep_args` that stay while this thread's buffers do."""
    ud, c = plan._direct_work_arrays(tape)  # first: it may grow the d1 buffer
    val, d1, d2, adj = tape._arrays()
    if d1.base is not ud.base:  # ud[:n_edges] must be the d1 the sweeps write
        raise RuntimeError("internal error: the point arrays' d1 is not in its buffer")
    skip = run_plan.value_free(tape.code, tape.eptr, tape.arg, tape.n_inputs)
    return ((tape.code, tape.param, tape._ueptr, tape._uarg, tape.coef, tape._utptr,
             tape.n_inputs), (val, d1, d2) + run_plan.arrays, (adj, ud) + plan.direct + (c,),
            (skip, skip.shape[0] == 0), plan)


def _swept(tape, x, complete):
    """After a `direct_dense` kernel: this thread's point arrays hold the point x (values
    too when complete) and d1 the tape's LIN partials."""
    ws = workspace.local()
    if complete:
        ws.point_key = (tape._uid, x.tobytes())
    ws.lin_owner = tape._uid


def _direct_dense(plan, tape, run_plan, x, w):
    """The dense Hessian by `direct_dense.hessian` (the sweeps at x in one thread while the
    others zero H), or None when an entry is not finite."""
    n = tape.n_inputs
    threads = numba.get_num_threads() if n * n >= dense_out.PARALLEL_ENTRIES else 1
    own_rows = n
    if threads > 1:
        sweep = plan._sweep_entries
        own_rows = min(n, max(0, int(round(((n * n + sweep) / threads - sweep) / n))))
    H = np.empty((n, n))
    data = np.empty(plan.pattern.indices.shape[0])
    args, complete = _sweep_args(plan, tape, run_plan, x, w)
    ok = parallel(_kernels().hessian, *args, data, plan.pattern.indptr, plan.pattern.indices,
                  H, own_rows, threads)
    _swept(tape, x, complete)
    return H if ok else None


def select(S, rows, cols):
    """The SparseMatrix S[rows][:, cols] for integer index arrays rows, cols (each index once),
    in the order given (used for the differentiated arguments of a `jitad.function`)."""
    pos_r = np.full(S.shape[0], -1, np.int64)
    pos_r[rows] = np.arange(len(rows))
    pos_c = np.full(S.shape[1], -1, np.int64)
    pos_c[cols] = np.arange(len(cols))
    r = pos_r[S.pattern.rows()]
    c = pos_c[S.indices]
    keep = (r >= 0) & (c >= 0)
    r, c, data = r[keep], c[keep], S.data[keep]
    order = np.lexsort((c, r))
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(np.bincount(r, minlength=len(rows)), out=indptr[1:])
    pattern = SparsityPattern(indptr, c[order].astype(np.int32), (len(rows), len(cols)))
    return SparseMatrix(pattern, data[order])
