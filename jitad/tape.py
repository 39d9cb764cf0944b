"""The Tape: a recorded function as flat arrays, and its derivative methods (like CppAD's ADFun).

All inputs are flattened in C order and concatenated into one vector x of length n_inputs;
outputs likewise into y of length n_outputs. Every array is validated here before it reaches
a compiled sweep, since those do no bounds checks.
"""
import itertools

import numba
import numpy as np

from . import guard_sweeps
from . import guards as guards_module
from . import opcodes as oc
from . import interaction, limits, packs, runs, sparse, sweeps, tape_io, workspace
from .threads import parallel

# Most directions per multi-direction sweep in dense Hessians/Jacobians: wider blocks spread
# the per-op cost of a sweep over more directions; 32 was best or near-best on Rosenbrock,
# logistic regression and Lennard-Jones (perf/README.md). Narrower when n is small or to give
# every thread the same number of blocks.
BLOCK = 32
INDEX = tape_io.INDEX  # every index array (slots, edges, terms): 4 bytes each
KERNEL_INDEX = np.uint32  # ... as the per-point kernels read them (Tape._ueptr, ...)
KERNEL_INDEX_ARRAYS = ("eptr", "arg", "tptr", "ta", "tb", "out")
# Below this many slot-directions a block run stays in the calling thread (see _run_blocks).
SERIAL_WORK = 200_000
_uids = itertools.count()
_ONE = np.ones(1)
_F64 = np.dtype(np.float64)
_STRIDE8 = (8,)
# this process's per-thread work state (one threading.local object): bound once, as the hot
# paths of small calls read it several times per call
_WS = workspace.local()
_EMPTY2 = np.zeros((0, 0))


class Tape:
    """A recorded function R^n -> R^m.

    Attributes: n_inputs, n_outputs, input_shapes, output_shapes, output_is_tuple, x0 (the
    recording point). len(tape) is the number of recorded operations.

    `Tape(n_in, code, param, eptr, arg, coef, tptr, ta, tb, out, ...)` validates its arrays
    (`tape_io.validate`) and may keep the caller's arrays without copying: do not modify them
    afterwards (the sweeps rely on the invariants checked here).
    """

    def __init__(self, n_in, code, param, eptr, arg, coef, tptr, ta, tb, out,
                 input_shapes=None, output_shapes=None, output_is_tuple=False, x0=None,
                 guards=None, guard_sources=None):
        # every invariant the sweeps rely on, checked once here (tape_io.validate: one table)
        arrays = dict(code=code, param=param, eptr=eptr, arg=arg, coef=coef, tptr=tptr, ta=ta,
                      tb=tb, out=out)
        arrays.update(guards_module.empty_arrays() if guards is None else guards)
        self.n_inputs, arrays, self.input_shapes, self.output_shapes, self.x0 = tape_io.validate(
            n_in, arrays, input_shapes, output_shapes, x0)
        self.__dict__.update(arrays)
        # Unsigned views of the validated index arrays, for the per-point kernels: numba adds a
        # negative-index wraparound to every array access through a signed index, which cost
        # 1.3-1.5x in the per-op sweeps (uint32 is exact: validation keeps them in range)
        for name in KERNEL_INDEX_ARRAYS:
            setattr(self, "_u" + name, getattr(self, name).view(KERNEL_INDEX))
        self.n_outputs = int(self.out.shape[0])
        self._out0 = int(self.out[0]) if self.n_outputs else -1  # a gradient's output slot
        self.output_is_tuple = output_is_tuple
        self._set_guards(guard_sources)
        self._uid = next(_uids)  # names this tape in the per-thread point cache

    def save(self, file):
        """Write the tape to `file` (path or binary file object): an uncompressed .npz with a
        format version; `jitad.load_tape(file)` reads it back, validated."""
        tape_io.save(self, file)

    def __reduce__(self):
        # pickling goes through the same validation as files (tape_io.tape_from_state)
        return tape_io.tape_from_state, (tape_io.tape_state(self),)

    def __len__(self):
        return int(self.code.shape[0])

    def __repr__(self):
        return (f"<jitad.Tape: {self.n_inputs} inputs -> {self.n_outputs} outputs, {len(self)} ops, "
                f"{self.arg.shape[0]} edges, {self.ta.shape[0]} second-order terms>")

    @property
    def nbytes(self):
        """Bytes held by the tape's arrays."""
        return sum(getattr(self, name).nbytes for name in tape_io.ARRAY_NAMES)

    def op_counts(self):
        """{op name: count} of the recorded operations."""
        codes, counts = np.unique(self.code, return_counts=True)
        return {oc.OP_NAMES[c]: int(k) for c, k in zip(codes, counts)}

    # ---------------------------------------------------------------- validation of arguments
    def _x(self, x):
        # the fast path of repeated calls: identity and tuple tests (x.dtype == np.float64
        # and x.flags cost ~0.3 us of a 10 us gradient); a 1-d array of stride 8 is contiguous
        if (type(x) is np.ndarray and x.dtype is _F64 and x.shape == (self.n_inputs,)
                and x.strides == _STRIDE8):
            return x
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_inputs,):
            raise ValueError(f"x must have shape ({self.n_inputs},) (the tape's n_inputs), "
                             f"got shape {x.shape}")
        return np.ascontiguousarray(x)

    def _directions(self, v, n, name, side):
        v = np.asarray(v, dtype=np.float64)
        if v.ndim == 1 and v.shape[0] == n:
            return np.ascontiguousarray(v[:, None]) if side == "col" else v[None, :], True
        if v.ndim == 2:
            if side == "col" and v.shape[0] == n:
                return np.ascontiguousarray(v), False
            if side == "row" and v.shape[1] == n:
                return np.ascontiguousarray(v), False
        want = f"({n},) or ({n}, k)" if side == "col" else f"({n},) or (k, {n})"
        raise ValueError(f"{name} must have shape {want}, got shape {v.shape}")

    def _weights(self, w):
        if w is None:
            if self.n_outputs != 1:
                raise ValueError(f"output weights w are required: the tape has {self.n_outputs} "
                                 "outputs (second derivatives are of sum_k w[k]*y[k])")
            return _ONE
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.n_outputs,):
            raise ValueError(f"w must have shape ({self.n_outputs},) (the tape's n_outputs), got "
                             f"shape {w.shape}")
        return np.ascontiguousarray(w)

    # ---------------------------------------------------------------- sweeps
    @property
    def n_slots(self):
        return self.n_inputs + self.code.shape[0]

    def _point(self, x):
        """(val, d1, d2) at x: values and local partials, in this thread's work arrays."""
        return self._point_arrays(x)[:3]

    def _point_arrays(self, x):
        """(val, d1, d2, adj) with values and local partials at x (adj unspecified).

        The latest point per thread is kept, so gradient-then-Hessian at one x runs the
        forward sweep once. The arrays are reused: never hand them to users.
        """
        arrays = self._arrays()
        xb = x.tobytes()  # once: a copy of x (80 kB at 10^4 inputs)
        if not self._at_point(xb):
            self._forward(x, True, *arrays[:3])
            _WS.point_key = (self._uid, xb)
        return arrays

    def _arrays(self):
        # the views cached by point_arrays, looked up first: this runs on every sweep call
        return _WS.views.get(self._uid) or workspace.point_arrays(
            self._uid, self.n_slots, self.arg.shape[0], self.ta.shape[0])

    def _at_point(self, xb):
        """Whether this thread's point arrays hold this tape's values and partials at the point
        whose bytes (x.tobytes()) are xb."""
        key = _WS.point_key
        return key is not None and key[0] == self._uid and key[1] == xb

    def forward(self, x):
        """y (m,) = f(x) for x (n,)."""
        x = self._x(x)
        key = _WS.point_key
        if key is not None and key[0] == self._uid and key[1] == x.tobytes():
            return sweeps.gather(self._arrays()[0], self._uout)
        call = self._value_call
        if call is None:
            call = self._value_kernel()
        if call:  # one compiled call on the tape's pack (a line search's hot path)
            val = _WS.views.get((self._uid, "fval")) or self._value_work()
            return call[0](*call[1], x, val[0])
        val = workspace.buffer("fval", (self.n_slots,))
        self._forward(x, False, val, val[:0], val[:0], point=False)
        return sweeps.gather(val, self._uout)

    _value_call = None  # (kernel, pack arrays) of `forward` once chosen, or False

    def _value_kernel(self):
        """(kernel, pack arrays) for `forward` in one call: `run_sweeps.value` on the plan's
        pack, `sweeps.value` on the per-op pack of a replayed tape without a plan; False for
        guarded tapes (guards are checked by `_forward`) and tapes too large for a pack; None
        while the tape's plan is undecided (its first sweep)."""
        plan = self._plan
        if self._guarded or len(self) >= runs.PARALLEL_OPS:
            call = False
        elif plan is None:
            call = (sweeps.value, self._per_op_pack())
        elif plan is not False:
            call = (plan.kernels.value, self._gradient_args()[0])
        else:
            return None
        self._value_call = call
        return call

    def _value_work(self):
        return workspace.cached((self._uid, "fval"),
                                lambda: (workspace.buffer("fval", (self.n_slots,)),))

    def _adjoints(self, x, w):
        """(val, d1, d2, adj): the point and first-order adjoints for output weights w (m,)."""
        arrays = self._point_arrays(x)
        self._reverse1(arrays[1], w, arrays[3])
        return arrays

    def value_and_gradient(self, x):
        """(y (), g (n,)) for a scalar-output tape."""
        return self._value_and_gradient(x, True)

    def gradient(self, x):
        """g (n,) = df/dx for a scalar-output tape."""
        return self._value_and_gradient(x, False)[1]

    def _value_and_gradient(self, x, value):
        """(y or None, g): without `value`, the run plan's forward sweep may skip the runs
        whose values only y needs (`runs.Plan.value_free`: a final sum, 1 of the 4.5 us of a
        10^3-input Rosenbrock forward sweep), as JAX's grad drops the value."""
        if self.n_outputs != 1:
            raise ValueError(f"gradient needs a single output, the tape has {self.n_outputs}; use "
                             "jacobian or vjp")
        # the hot path of optimisers: every attribute lookup and method call here is a
        # measurable share of a small tape's gradient (~1 us of Python around a 1-2 us kernel
        # call); `_x`'s fast test, inline:
        if not (type(x) is np.ndarray and x.dtype is _F64 and x.strides == _STRIDE8
                and x.shape[0] == self.n_inputs):
            x = self._x(x)
        ws = _WS
        uid = self._uid
        key = ws.point_key
        xb = None  # x's bytes: only to compare with, or to store as, the cached point
        if key is not None and key[0] == uid:
            xb = x.tobytes()
            if key[1] == xb:
                val, d1, _, adj = self._arrays()
                self._reverse1(d1, _ONE, adj)
                return val[self.out[0]], adj[: self.n_inputs].copy()
        fused = False  # tapes without a run plan (small ones, scalar code) skip the lookup
        plan = self._plan  # (identity tests: a Plan's truth value is a call of its __len__)
        if plan is not None and plan is not False:
            fused = ws.views.get((uid, "gradient")) or self._gradient_args()
        if fused:  # the run plan's sweeps in one compiled call
            pack, point, skips = fused
            lin_ready = ws.lin_owner == uid
            skip = skips and lin_ready and not value
            ws.point_key = None
            g = np.empty(self.n_inputs)
            plan.kernels.gradient(*pack, x, lin_ready, skip, *point, g)
            ws.lin_owner = uid
            if skip:  # val misses the skipped runs' values: not a cached point
                return None, g
            ws.point_key = (uid, x.tobytes() if xb is None else xb)
            return point[0][self._out0], g
        else:
            val, d1, d2, adj = self._arrays()
            replayed = self._swept  # not the tape's first sweep
            plan = self._sweep_plan()
            if plan is not None:  # guarded, or large enough for the threads' forward sweep
                skip = runs.SKIP_NONE  # guards compare values, maybe the value-free ones
                if not (value or self._guarded or ws.lin_owner != uid):
                    skip = plan.value_free(self.code, self.eptr, self.arg, self.n_inputs)
                ws.point_key = None
                self._forward(x, True, val, d1, d2, skip=skip)
                self._reverse1(d1, _ONE, adj)
                if skip.shape[0]:
                    return None, adj[: self.n_inputs].copy()
                y = val[self.out[0]]
            elif self._guarded:
                ws.lin_owner = uid  # these write every partial of this tape into d1
                y, g = guard_sweeps.value_and_gradient(self.code, self.param, self._ueptr,
                                                       self._uarg, self.coef, self._utptr,
                                                       self.n_inputs, x, self._uout, val, d1, d2,
                                                       adj, *self._guard_pack)
                self._check(g)
            else:
                ws.lin_owner = uid
                # (a one-shot tape, jitad.grad, sweeps once: no pack; large tapes have none)
                pack = replayed and self._per_op_pack()
                if pack:
                    g = np.empty(self.n_inputs)
                    y = sweeps.value_and_gradient(*pack, x, val, d1, d2, adj, g)
                    ws.point_key = (uid, x.tobytes() if xb is None else xb)
                    return y, g
                sweeps.forward(self.code, self.param, self._ueptr, self._uarg, self.coef,
                               self._utptr, self.n_inputs, x, True, val, d1, d2)
                self._reverse1(d1, _ONE, adj)  # (no plan: the per-op sweep)
                y = val[self.out[0]]
        ws.point_key = (uid, x.tobytes() if xb is None else xb)
        return y, adj[: self.n_inputs].copy()

    def _gradient_args(self):
        """For the one-call kernels `run_sweeps.gradient` and `hvp_at`: (the arrays of the
        tape's pack (`packs.Pack`), this thread's point arrays, whether the plan has value-free
        runs), kept per thread; False (not kept) when the tape has no run plan yet or sweeps
        otherwise (guards to check, or ops enough for the threads' forward sweep)."""
        plan = sparse._fusable(self)  # the same condition as the one-call sparse kernels
        if plan is None:
            return False
        pack = self.__dict__.get("_pack")
        if pack is None:
            self._pack = pack = packs.Pack(self, plan)
        return workspace.cached((self._uid, "gradient"),
                                lambda: (pack.arrays, self._arrays(), pack.skips))

    def jvp(self, x, v):
        """(y (m,), J @ v): v (n,) -> (m,), or k directions v (n, k) -> (m, k)."""
        x = self._x(x)
        V, single = self._directions(v, self.n_inputs, "v", "col")
        val, d1, _ = self._point(x)
        dot = workspace.buffer("dot", (self.n_slots, V.shape[1]))
        act = workspace.buffer("act", (self.n_slots,), np.uint8)
        sweeps.tangent(self._ueptr, self._uarg, d1, self.n_inputs, V, dot, act)
        Jv = np.where(act[self.out, None] != 0, dot[self.out, :], 0.0)  # unset rows hold garbage
        return val[self.out], (Jv[:, 0] if single else Jv)

    def vjp(self, x, w):
        """(y (m,), w @ J): w (m,) -> (n,), or k weight rows w (k, m) -> (k, n)."""
        x = self._x(x)
        W, single = self._directions(w, self.n_outputs, "w", "row")
        val, d1, _ = self._point(x)
        adj = workspace.buffer("adjk", (self.n_slots, W.shape[0]))
        sweeps.reverse(self._ueptr, self._uarg, d1, self.n_inputs, self._uout,
                       np.ascontiguousarray(W), adj)
        wJ = np.array(adj[: self.n_inputs, :].T)  # always a copy: adj is a reused work array
        return val[self.out], (wJ[0] if single else wJ)

    def _run_blocks(self, n_dirs, serial, parallel_kernel, args, work):
        """Run n_dirs unit or given directions in blocks: serially in this thread when the work
        is small (a parallel region costs tens of microseconds, and milliseconds when another
        process holds a core), else in `parallel_kernel` with one chunk of blocks per thread.

        work(c, width) returns the work arrays for c chunks of blocks of `width` directions;
        serial(*args, *work arrays of chunk 0, b0, b1) runs blocks b0..b1-1.
        """
        if n_dirs == 0:
            return
        threads = numba.get_num_threads()
        width = min(BLOCK, -(-n_dirs // 8) * 8)
        if threads == 1 or n_dirs <= width or n_dirs * self.n_slots <= SERIAL_WORK:
            arrays = work(1, width)
            serial(*args, *(a[0] for a in arrays), 0, -(-n_dirs // width))
            return
        # balance: every thread gets the same number of blocks, each at most BLOCK wide
        per_thread = -(-n_dirs // (threads * BLOCK))
        width = -(-n_dirs // (threads * per_thread * 8)) * 8
        n_blocks = -(-n_dirs // width)
        parallel(parallel_kernel, *args, *work(min(threads, n_blocks), width))

    def _block_work(self, rows, cols, *names):
        """Work-array factory for c chunks of blocks of `width` directions: 'V' (c, rows or
        width, cols or width) (None means the width; zero, and the kernels leave it zero), then
        per name (c, n_slots, width) float arrays ('act' gives (c, 2, n_slots) uint8)."""
        def make(c, width):
            arrays = [workspace.buffer("V", (c, rows or width, cols or width), zero=True)]
            for name in names:
                if name == "act":
                    arrays.append(workspace.buffer("act", (c, 2, self.n_slots), np.uint8))
                else:
                    arrays.append(workspace.buffer(name, (c, self.n_slots, width)))
            return tuple(arrays)
        return lambda c, width: workspace.cached((self._uid, rows, cols, names, c, width),
                                                 lambda: make(c, width))

    def jacobian(self, x):
        """J (m, n): forward mode when n <= m, else reverse mode; blocks in parallel."""
        x = self._x(x)
        _, d1, _ = self._point(x)
        n, m = self.n_inputs, self.n_outputs
        limits.check_dense(m, n, "Jacobian")
        J = np.empty((m, n))
        if n <= m:
            block_work = self._block_work(n, None, "dot", "act")

            def work(c, width):
                V, dot, act = block_work(c, width)
                return V, dot, act[:, 0]
            self._run_blocks(n, sweeps.tangent_chunk, sweeps.jacobian_forward,
                             (self._ueptr, self._uarg, d1, n, self._uout, J), work)
        else:
            self._run_blocks(m, sweeps.reverse_chunk, sweeps.jacobian_reverse,
                             (self._ueptr, self._uarg, d1, n, self._uout, J),
                             self._block_work(None, m, "dot"))
        return J

    def _hvp_rows(self, x, w, V, unit, k):
        """(k, n) rows (H_w @ V).T, V (n, k) (unit: V is the identity, k = n)."""
        n = self.n_inputs
        limits.check_dense(k, n, "Hessian" if unit else "Hessian-vector product (H @ V).T")
        _, d1, d2, adj = self._adjoints(x, self._weights(w))
        out = np.empty((k, n))
        self._run_blocks(k, sweeps.hvp_chunk, sweeps.hvp_columns,
                         (self._ueptr, self._uarg, d1, d2, self._transposed(), n, adj, V, unit,
                          out),
                         self._block_work(n, None, "dot", "bar", "act"))
        return out

    def hvp(self, x, v, w=None):
        """H_w @ v, H_w the Hessian of sum_k w[k]*y[k]: v (n,) -> (n,), v (n, k) -> (n, k)."""
        x = self._x(x)
        V, single = self._directions(v, self.n_inputs, "v", "col")
        if single and sparse._fusable(self):  # the sweeps in one call
            return self._hvp_one_call(x, self._weights(w), V[:, 0], self._plan.kernels.hvp_at,
                                      self._gradient_args()[0])
        # (a replayed tape: its plan was decided, none)
        if single and self._plan is None and not self._guarded and self._per_op_pack():
            return self._hvp_one_call(x, self._weights(w), V[:, 0], sweeps.hvp_at,
                                      self._ops_pack)
        if single:
            _, d1, d2, adj = self._adjoints(x, self._weights(w))
            dot = workspace.buffer("dot", (self.n_slots,))
            bar = workspace.buffer("bar", (self.n_slots,))
            args = (self._ueptr, self._uarg, d1, self._utptr, self._uta, self._utb, d2,
                    self.n_inputs, adj, V[:, 0], dot, bar)
            plan = self._plan
            if plan:
                plan.kernels.hvp1(*args, self.code, *plan.arrays)
            else:
                sweeps.hvp1(*args)
            return bar[: self.n_inputs].copy()
        return np.ascontiguousarray(self._hvp_rows(x, w, V, False, V.shape[1]).T)

    def _hvp_one_call(self, x, w, v, kernel, pack):
        """H_w @ v (n,) by `kernel` (`run_sweeps.hvp_at`, or `sweeps.hvp_at` without a plan)
        on the tape's pack: the sweeps at x unless this thread's point arrays hold x, the
        adjoints for w, and the product, in one call (three calls and their work-array
        lookups were a fifth of a 10^3-input Rosenbrock HVP)."""
        ws = _WS
        uid = self._uid
        dot, bar = workspace.cached((uid, "hvp"), lambda: (
            workspace.buffer("dot", (self.n_slots,)), workspace.buffer("bar", (self.n_slots,))))
        # after dot and bar: growing a buffer drops the cached views (point arrays included)
        point = self._arrays()
        key = ws.point_key
        xb = x.tobytes()
        sweep = key is None or key[0] != uid or key[1] != xb
        ws.point_key = None
        hv = np.empty(self.n_inputs)
        kernel(*pack, x, sweep, ws.lin_owner == uid, *point, w, v, dot, bar, hv)
        ws.lin_owner = uid
        ws.point_key = (uid, xb)
        return hv

    def hessian(self, x, w=None):
        """Dense symmetric Hessian (n, n) of sum_k w[k]*y[k] (w optional for one output).

        Three methods, the same values up to rounding, chosen per tape once from cost
        estimates: from 128 inputs on, for tapes without dense groups, the star-coloured
        sparse plan (`sparse.py`) when it needs at most n/2 colours; else the interaction
        Hessian (`interaction.py`) when the operands of the second-order terms have sparse
        gradient rows; else the sparse plan for the other large tapes; else n unit HVPs."""
        return self._hessian(x, w, True)

    def _hessian(self, x, w, replay):
        """`hessian`; replay False: the tape is used for this one Hessian (`jitad.hessian`):
        small ones take dense rows and no plan (`interaction.one_shot_hessian`)."""
        x = self._x(x)
        n = self.n_inputs
        limits.check_dense(n, n, "Hessian")
        if not replay:
            H = interaction.one_shot_hessian(self, x, _ONE if w is None else self._weights(w))
            if H is not None:
                return H
        plan = self.__dict__.get("_iplan") or self._interaction_plan()
        # without dense groups, the interaction Hessian scatters the same entries that the
        # sparse plan's direct program computes in a third of the time (Rosenbrock 10^3:
        # 99 against 35 us): large replayed tapes ask the sparse plan first. Its pattern,
        # colouring and maps cost milliseconds, so a tape used once does not (Rosenbrock
        # 10^3 one-shot: 3.5 against 1.0 ms)
        sparse_first = replay and n >= sparse.AUTO_MIN_N and not plan.groups
        if sparse_first:
            H = sparse.auto_hessian(self, x, w)
            if H is not None:
                return H
        if plan.use:
            w = _ONE if w is None and self.n_outputs == 1 else self._weights(w)
            if self._guarded and plan.one_call:
                self._point(x)  # checks the guards (raises BranchChangedError)
            H = plan.hessian(self, x, w)
            if H is not None:
                return H
        if n >= sparse.AUTO_MIN_N and not sparse_first:
            H = sparse.auto_hessian(self, x, w)
            if H is not None:
                return H
        return self._dense_hessian(x, w)

    def _dense_hessian(self, x, w):
        """The Hessian from n unit HVP directions in blocks, symmetrised."""
        n = self.n_inputs
        H = self._hvp_rows(x, w, _EMPTY2, True, n)
        if n * n <= SERIAL_WORK:
            with np.errstate(invalid="ignore"):  # inf + -inf is nan, as in the sweeps: no warning
                H += H.T  # small: numpy's temporary copy is cheap
                H *= 0.5
        else:
            parallel(sweeps.symmetrize, H, 64)  # in place: no 8n^2-byte temporary to fault in
        return H

    def _derived(self, name, make):
        """make(self), built on first use and kept as attribute `name`: structures derived from
        the (immutable) tape arrays. Threads racing on the first use may both build it; one
        result is kept, both are equal."""
        v = self.__dict__.get(name)
        if v is None:
            v = self.__dict__[name] = make(self)
        return v

    def _interaction_plan(self):
        """Row patterns for the interaction Hessian (`interaction.py`)."""
        return self._derived("_iplan", interaction.InteractionPlan)

    def _transposed(self):
        """The tape read backwards, for the pulling second-order sweep (`sweeps.hvp`), 8 bytes
        per edge, 12 per term side:

        cptr/cedge: the edges that consume each slot (CSR over slots); eop: the op of each edge;
        rptr/rterm/rpartner/rop: per slot s, the second-order terms with an edge on s, the other
        edge of each (the term itself for a diagonal term) and its op.
        """
        return self._derived("_tr", lambda t: sweeps.transpose(t.eptr, t.arg, t.tptr, t.ta, t.tb,
                                                               t.n_slots))

    def input_influence(self):
        """Boolean (n,): which inputs any output depends on (from the tape's structure)."""
        return sweeps.influence(self.eptr, self.arg, self.n_inputs, self.out)

    # ---------------------------------------------------------------- guards (guards.py)
    def _set_guards(self, sources):
        """Keep the guard sources and pack the (validated) guard arrays for the sweeps."""
        self.guard_sources = guards_module.check_sources(self.guard_site, sources)
        gi = np.empty((self.guard_code.shape[0], 4), dtype=np.int32)
        gi[:, 0], gi[:, 1], gi[:, 2], gi[:, 3] = (self.guard_code, self.guard_a, self.guard_b,
                                                  self.guard_out)
        self._guard_pack = (gi, self.guard_c)
        self._guarded = gi.shape[0] > 0

    @property
    def n_guards(self):
        """Number of recorded guards (comparisons the recorded path relies on)."""
        return int(self.guard_code.shape[0])

    def _check(self, g, point=True):
        """Raise BranchChangedError for failing guard g (>= 0); the point arrays now hold a
        point that failed, so this thread's point cache is dropped first."""
        if g >= 0:
            if point:
                _WS.point_key = None
            raise guards_module.error(self, g)

    def failing_guard(self, x):
        """Index of the first guard that fails at x (n,), -1 when all hold (forward values only,
        no derivatives)."""
        x = self._x(x)
        if not self._guarded:
            return -1
        val = workspace.buffer("fval", (self.n_slots,))
        return int(guard_sweeps.forward(self.code, self.param, self._ueptr, self._uarg, self.coef,
                                        self._utptr, self.n_inputs, x, False, val, val[:0],
                                        val[:0], *self._guard_pack))

    def guards_hold(self, x):
        """Whether every recorded comparison has its recorded outcome at x (n,): whether the
        tape's path applies there. Computes values only, no derivatives."""
        return self.failing_guard(x) < 0

    def describe_guard(self, g):
        """Guard g in words, with the source line of its comparison when known."""
        where = guards_module.source(self, g)
        return guards_module.describe(self, g) + ("" if where is None else f" at {where}")

    # ---------------------------------------------------------------- sparse derivatives
    def jacobian_sparsity(self):
        """Structural (m, n) Jacobian pattern: a `SparsityPattern` (CSR indptr, indices;
        .tocsr() with scipy). Conservative, computed once per tape."""
        return sparse.jacobian_pattern(self)

    def hessian_sparsity(self):
        """Structural (n, n) symmetric pattern of the Hessian of any weighted sum of the
        outputs: a `SparsityPattern`. Conservative, no coupling through linear ops."""
        return sparse.hessian_pattern(self)

    def jacobian_plan(self):
        """The tape's `sparse.JacobianPlan` (pattern, colouring; built once, reused)."""
        return sparse.jacobian_plan(self)

    def hessian_plan(self):
        """The tape's `sparse.HessianPlan` (pattern, star colouring; built once, reused)."""
        return sparse.hessian_plan(self)

    def sparse_jacobian(self, x):
        """The (m, n) Jacobian at x (n,) as a `SparseMatrix` on `jacobian_sparsity()`, from
        one compressed sweep per colour block."""
        x = self._x(x)
        plan = sparse.jacobian_plan(self)
        return sparse.SparseMatrix(plan.pattern, plan.values(self, x))

    def sparse_hessian(self, x, w=None):
        """The (n, n) Hessian of sum_k w[k]*y[k] at x (n,) as a `SparseMatrix` on
        `hessian_sparsity()`: direct accumulation, or one compressed HVP sweep per colour
        block (`hessian_plan().method`)."""
        x = self._x(x)
        plan = sparse.hessian_plan(self)
        return sparse.SparseMatrix(plan.pattern, plan.values(self, x, w))

    # ---------------------------------------------------------------- optimisation report
    optimization = None  # optimize.Report of the passes run when recording ended (record.py)

    def summary(self):
        """Readable report (str): op counts by kind and slots/edges/terms/bytes, before and
        after the optimisation passes of `jitad.record`, and what each pass removed."""
        from .optimize import summary
        return summary(self)

    # ---------------------------------------------------------------- run plan (runs.py)
    # The run kernels (run_sweeps.py) are imported on first use (kept as plan.kernels): tapes
    # that never use a plan (small ones, scalar loops) do not load them, which keeps import and
    # tiny calls as before.
    _plan = False  # not built yet
    _ops_pack = None  # `_per_op_pack`, once built
    _swept = False  # a forward sweep has run (without a plan: see _sweep_plan)

    def _per_op_pack(self):
        """The arrays of the tape's pack without a plan (`packs.Pack`), for the one-call
        per-op kernels of a replayed tape whose plan was decided against (built on first use);
        False for tapes of runs.PARALLEL_OPS ops or more (no copy of their arrays)."""
        pack = self._ops_pack
        if pack is None:
            pack = self._ops_pack = len(self) < runs.PARALLEL_OPS and packs.Pack(self).arrays
        return pack

    def _sweep_plan(self):
        """The run plan for this forward sweep: None for the tape's first sweep, the plan
        (`_runs`) from the second on. A one-shot tape (`jitad.hessian(f, x)`, `jitad.grad`)
        sweeps once, and building its plan cost more than the plan saves in one sweep
        (logistic regression 1000 x 10: ~200 us to build, ~15 us saved per sweep); the per-op
        sweeps give bitwise the same values and partials."""
        plan = self._plan
        if plan is False:
            if not self._swept:
                self._swept = True
                return None
            plan = self._runs()
        return plan

    def _runs(self):
        """The tape's run plan (`runs.build`), built on first use and kept; None when the tape
        is small or has no runs, and the per-op sweeps are used."""
        plan = self._plan
        if plan is False:
            plan = None
            if self.code.shape[0] >= runs.MIN_TAPE:
                plan = runs.build(self.code, self.param, self.eptr, self.arg, self.coef,
                                  self.tptr, self.n_inputs, self.out)
                if not plan.worthwhile():
                    plan = None
                else:
                    from . import run_sweeps
                    plan.kernels = run_sweeps
            self._plan = plan
        return plan

    def _forward(self, x, partials, val, d1, d2, point=True, skip=runs.SKIP_NONE):
        """Values into val (n_slots,), with partials d1/d2 (`sweeps.forward`), over the run
        plan when there is one, then the guard check (raises BranchChangedError). point: val/d1/
        d2 are this thread's point arrays, whose cache key is dropped first, and whose d1 may
        keep this tape's LIN partials from its previous sweep (`workspace.local().lin_owner`).
        skip: runs of the plan not to sweep (`run_sweeps.forward_some`; only with a plan and
        this tape's LIN partials in d1)."""
        plan = self._sweep_plan()
        if plan is None:
            if point and partials:  # the per-op sweeps write every partial of this tape
                _WS.lin_owner = self._uid
            if self._guarded:  # one compiled call: forward sweep and guard check
                self._check(guard_sweeps.forward(self.code, self.param, self._ueptr, self._uarg,
                                                 self.coef, self._utptr, self.n_inputs, x,
                                                 partials, val, d1, d2, *self._guard_pack),
                            point)
                return
            sweeps.forward(self.code, self.param, self._ueptr, self._uarg, self.coef, self._utptr,
                           self.n_inputs, x, partials, val, d1, d2)
            return
        # the point arrays' d1 keeps the LIN partials of the tape that last wrote it
        ws = _WS
        lin_ready = point and ws.lin_owner == self._uid
        args = (self.code, self.param, self._ueptr, self._uarg, self.coef, self._utptr,
                self.n_inputs, x, partials, lin_ready, val, d1, d2) + plan.arrays + (skip,)
        threads = self._sweep_threads()
        if threads > 1:
            parallel(plan.kernels.forward_parallel, *args, threads, runs.PARALLEL_MIN_RUN)
        else:
            plan.kernels.forward_some(*args)
        if point and partials:
            ws.lin_owner = self._uid
        if self._guarded:
            self._check(guard_sweeps.check(val, *self._guard_pack), point)

    def _sweep_threads(self):
        """Threads for the run plan's forward and reverse sweeps: all from runs.PARALLEL_OPS
        ops on, else the calling thread alone."""
        return numba.get_num_threads() if self.code.shape[0] >= runs.PARALLEL_OPS else 1

    def _reverse1(self, d1, w, adj):
        """Adjoints into adj (n_slots,) for output weights w (m,) (`sweeps.reverse1`), over
        the run plan once the forward sweeps have built it (bitwise the same adjoints)."""
        plan = self._plan
        if plan is False or plan is None:
            sweeps.reverse1(self._ueptr, self._uarg, d1, self.n_inputs, self._uout, w, adj)
            return
        args = (self._ueptr, self._uarg, d1, self.n_inputs, self._uout, w, adj, self.code)
        threads = self._sweep_threads()
        if threads > 1:  # as the forward sweep: long runs split over the threads
            parallel(plan.kernels.reverse1_parallel, *args, *plan.arrays, threads,
                     runs.PARALLEL_MIN_RUN)
        else:
            plan.kernels.reverse1(*args, *plan.arrays)
