"""`jitad.function`: a compiled function that records one tape per input shape signature.

(This module is `jitad.compiled` so that the name `jitad.function` is the decorator itself.)

    f = jitad.function(func)            # or @jitad.function, or jitad.function(func, argnums=0)
    f(x), f.grad(x), f.hessian(x), ...  # first call with a new signature records, later ones replay

The Python function runs once per signature (the tuple of argument shapes) and branch pattern:
every later call replays a tape. A call where a branch of the recording would go the other way
(a guard fails, `guards.py`) switches to a kept tape whose guards hold there or records again;
up to MAX_BRANCHES tapes per signature are kept, least recently used dropped. Results have
the structure of the functional API's (`jitad.functional`): with one differentiated argument an
array shaped like it, with several a tuple (as for a tuple of `inputs` there).

`argnums` (None: all arguments; an int or a tuple of ints) chooses which arguments derivatives
are taken with respect to; the other arguments are still replayed inputs (their values may
change between calls) but get no derivative. This is what `scipy.optimize.minimize(f, x0,
args=(data,), jac=f.grad, hess=f.hessian)` needs: `jitad.function(loss, argnums=0)`.
"""
import functools
import threading

import numpy as np

from . import limits
from .functional import Layout, _shaped, normalize_argnums
from .guards import BranchChangedError
from .record import as_float_array, record

__all__ = ["function", "Function"]

MAX_BRANCHES = 8  # tapes kept per shape signature, one per branch pattern (LRU)
_ATTEMPTS = 3     # switches per call before a BranchChangedError is let through


def _retracing(lookup_args=None, keywords=False):
    """Method decorator: on a BranchChangedError, make the signature's current tape one whose
    guards hold at this call's arguments (`Function._follow_branch`) and call again. (The
    wrapper is the only cost on the fast path: a call and a zero-cost try.)"""
    def deco(method):
        def again(self, args, kwargs):
            for _ in range(_ATTEMPTS):
                self._follow_branch(args if lookup_args is None else lookup_args(args))
                try:
                    return method(self, *args, **kwargs)
                except BranchChangedError:
                    pass
            return method(self, *args, **kwargs)

        if keywords:
            def wrapper(self, *args, **kwargs):
                try:
                    return method(self, *args, **kwargs)
                except BranchChangedError:
                    return again(self, args, kwargs)
        else:  # without **kwargs: a measurable share of a 5 us call
            def wrapper(self, *args):
                try:
                    return method(self, *args)
                except BranchChangedError:
                    return again(self, args, {})
        return functools.wraps(method)(wrapper)
    return deco


class _Entry:
    """The tape of one shape signature and how its flat vectors map to the user's structure."""

    __slots__ = ("tape", "lay", "fast", "sel0", "scalar0")

    def __init__(self, tape, lay):
        self.tape = tape
        self.lay = lay
        # one 1-D-or-more argument, differentiated, not a tuple result, one output element
        self.fast = (len(lay.in_shapes) == 1 and lay.sel_all and not lay.in_tuple
                     and lay.scalar_out and len(lay.in_shapes[0]) >= 1)
        self.scalar0 = lay.scalar_out and lay.out_shapes[0] == ()  # f returns a 0-d value
        # flat slice of argument 0 (scipy's x in hessp)
        self.sel0 = slice(lay.in_offsets[0], lay.in_offsets[1]) if lay.in_shapes else slice(0, 0)


class Function:
    """A function recorded once per input shape signature and replayed afterwards.

    Call it like the function; derivatives: grad, value_and_grad, jacobian, hessian,
    hvp(*args, v=...), jvp(*args, v=...), vjp(*args, w=...), and hessp(x, p, *args) with
    scipy's signature. `tape(*args)` returns the tape of that signature; `n_traces` counts
    the recordings (calls of the Python function).
    """

    def __init__(self, func, argnums=None):
        if not callable(func):
            raise TypeError(f"jitad.function needs a callable, got {type(func).__name__}")
        if argnums is not None:
            normalize_argnums(argnums, 1 << 30)  # type check now, range check per call
        functools.update_wrapper(self, func)
        self.func = func
        self.argnums = argnums
        self._fast = {}     # shape -> entry, for calls with one ndarray argument
        self._entries = {}  # tuple of argument shapes -> entry (the last one used)
        self._branches = {}  # tuple of argument shapes -> entries kept, least recent first
        self._lock = threading.RLock()
        self.n_traces = 0

    def __repr__(self):
        name = getattr(self.func, "__qualname__", repr(self.func))
        return f"<jitad.function {name}: {len(self._entries)} recorded signature(s)>"

    @property
    def signatures(self):
        """The recorded input shape signatures (tuples of argument shapes)."""
        return list(self._entries)

    # ---------------------------------------------------------------- signature lookup
    def _record(self, arrays, key, new=False):
        """The entry of signature key, recorded now at arrays if there is none (or if new: a
        further branch pattern of the signature)."""
        with self._lock:
            e = None if new else self._entries.get(key)
            if e is not None:
                return e
            if self.argnums is None:
                sel, in_tuple = None, len(arrays) > 1
            else:
                sel, in_tuple = normalize_argnums(self.argnums, len(arrays))
                if len(set(sel)) != len(sel):
                    raise ValueError(f"argnums {self.argnums!r} names an argument twice")
            tape = record(self.func, *arrays)
            self.n_traces += 1
            e = _Entry(tape, Layout(tape, in_tuple, sel))
            kept = self._branches.setdefault(key, [])
            kept.append(e)
            if len(kept) > MAX_BRANCHES:
                del kept[0]
            self._use(key, e)
            return e

    def _use(self, key, e):
        self._entries[key] = e
        if len(key) == 1:
            self._fast[key[0]] = e

    def _follow_branch(self, args):
        """Make the current tape of args' signature one whose guards hold at args: the most
        recently used kept tape that fits, else a new recording at args."""
        arrays = [as_float_array(a, f"argument {k}") for k, a in enumerate(args)]
        key = tuple(a.shape for a in arrays)
        x = np.concatenate([a.ravel() for a in arrays]) if arrays else np.empty(0)
        with self._lock:
            kept = self._branches.get(key, [])
            failed = self._entries.get(key)  # the caller just saw its guards fail at x
            for e in reversed(kept):
                if e is not failed and e.tape.guards_hold(x):
                    kept.remove(e)
                    kept.append(e)
                    self._use(key, e)
                    return e
            e = self._record(arrays, key, new=True)
            g = e.tape.failing_guard(x)
            if g >= 0:
                raise BranchChangedError(
                    "a tape recorded at this very point fails its own guard "
                    f"{e.tape.describe_guard(g)}: the compiled replay computes a compared value "
                    "differently from numpy at a branch boundary (rounding), or the function is "
                    "not deterministic", guard=g)
            return e

    @property
    def branches(self):
        """{signature: number of tapes kept for it} (one per branch pattern met, at most
        MAX_BRANCHES)."""
        return {k: len(v) for k, v in self._branches.items()}

    def _lookup(self, args):
        """(entry, flat x) for a call's positional arguments."""
        if len(args) == 1:
            a = args[0]
            if a.__class__ is np.ndarray:
                e = self._fast.get(a.shape)
                if e is not None:
                    return e, a.reshape(-1)
        if not args:
            raise TypeError("a jitad.function must be called with at least one argument")
        arrays = [as_float_array(a, f"argument {k}") for k, a in enumerate(args)]
        key = tuple(a.shape for a in arrays)
        e = self._entries.get(key)
        if e is None:
            e = self._record(arrays, key)
        x = arrays[0].reshape(-1) if len(arrays) == 1 else np.concatenate(
            [a.ravel() for a in arrays])
        return e, x

    def tape(self, *args):
        """The tape for these arguments: of their shape signature, with guards that hold at
        them (recorded now if there is none)."""
        e, x = self._lookup(args)
        if not e.tape.guards_hold(x):
            e = self._follow_branch(args)
        return e.tape

    # ---------------------------------------------------------------- evaluation
    @_retracing()
    def __call__(self, *args):
        e, x = self._lookup(args)
        y = e.tape.forward(x)
        if e.scalar0:
            return y[0]
        return e.lay.outputs(y)

    @_retracing()
    def grad(self, *args):
        """Gradient of a single-element output, structured like the differentiated argument(s)."""
        if len(args) == 1:  # fast path: one ndarray argument of a recorded shape
            a = args[0]
            if a.__class__ is np.ndarray:
                e = self._fast.get(a.shape)
                if e is not None and e.fast:
                    if a.ndim == 1:
                        return e.tape.gradient(a)
                    return e.tape.gradient(a.reshape(-1)).reshape(a.shape)
        e, x = self._lookup(args)
        e.lay.require_scalar_output("grad")
        return e.lay.inputs(e.tape.gradient(x))

    @_retracing()
    def value_and_grad(self, *args):
        """(value, gradient) of a single-element output."""
        e, x = self._lookup(args)
        e.lay.require_scalar_output("value_and_grad")
        val, g = e.tape.value_and_gradient(x)
        return np.float64(val), e.lay.inputs(g)

    @_retracing()
    def jacobian(self, *args):
        """Jacobian blocks as `jitad.jacobian` returns them."""
        e, x = self._lookup(args)
        lay, tape = e.lay, e.tape
        if lay.sel_all or lay.n_sel > lay.m:
            J = tape.jacobian(x)
        else:  # few differentiated inputs: forward directions for them only
            V = np.zeros((lay.n, lay.n_sel))
            V[lay.sel_idx, np.arange(lay.n_sel)] = 1.0
            J = np.zeros((lay.m, lay.n))
            J[:, lay.sel_idx] = tape.jvp(x, V)[1]
        return lay.jacobian(J)

    @_retracing()
    def hessian(self, *args):
        """Hessian of a single-element output, as `jitad.hessian` returns it."""
        if len(args) == 1:
            a = args[0]
            if a.__class__ is np.ndarray and a.ndim == 1:
                e = self._fast.get(a.shape)
                if e is not None and e.fast:
                    return e.tape.hessian(a)
        e, x = self._lookup(args)
        lay = e.lay
        lay.require_scalar_output("hessian")
        if lay.sel_all:
            H = e.tape.hessian(x)
        else:  # rows of the differentiated inputs only
            limits.check_dense(lay.n, lay.n_sel, "Hessian")
            V = np.zeros((lay.n, lay.n_sel))
            V[lay.sel_idx, np.arange(lay.n_sel)] = 1.0
            H = e.tape.hvp(x, V)[lay.sel_idx]
            with np.errstate(invalid="ignore"):  # inf + -inf: nan without a warning
                H = 0.5 * (H + H.T)
        return lay.hessian(H)

    @_retracing(keywords=True)
    def hvp(self, *args, v=None):
        """(value, H @ v); v has the structure of the differentiated argument(s)."""
        e, x = self._lookup(args)
        lay = e.lay
        lay.require_scalar_output("hvp")
        Hv = e.tape.hvp(x, lay.input_direction(v))
        return lay.outputs(e.tape.forward(x)), lay.inputs(Hv)

    @_retracing(lambda a: (a[0],) + tuple(a[2:]))
    def hessp(self, x, p, *args):
        """H(x) @ p with respect to the first argument: scipy's hessp(x, p, *args)."""
        if not args and x.__class__ is np.ndarray and x.ndim == 1:
            e = self._fast.get(x.shape)
            if e is not None and e.fast:
                return e.tape.hvp(x, p)
        e, xf = self._lookup((x,) + args)
        lay = e.lay
        lay.require_scalar_output("hessp")
        if 0 not in lay.sel:
            raise ValueError(f"hessp differentiates with respect to argument 0, which argnums "
                             f"{self.argnums!r} excludes")
        p = as_float_array(p, "p")
        s0 = lay.in_shapes[0]
        if p.shape != s0 and p.size != lay.in_sizes[0]:
            raise ValueError(f"p has invalid shape: expected {s0} (the shape of x), got {p.shape}")
        v = np.zeros(lay.n)
        v[e.sel0] = p.ravel()
        return _shaped(e.tape.hvp(xf, v)[e.sel0], s0)

    @_retracing(keywords=True)
    def jvp(self, *args, v=None):
        """(value, J @ v); v has the structure of the differentiated argument(s)."""
        e, x = self._lookup(args)
        lay = e.lay
        y, Jv = e.tape.jvp(x, lay.input_direction(v))
        return lay.outputs(y), lay.outputs(Jv)

    @_retracing(keywords=True)
    def vjp(self, *args, w=None):
        """(value, w @ J); w has the structure of the output."""
        e, x = self._lookup(args)
        lay = e.lay
        y, wJ = e.tape.vjp(x, lay.output_weights(w, "w"))
        return lay.outputs(y), lay.inputs(wJ)


def function(func=None, *, argnums=None):
    """Compile `func` into a `Function`: one tape per input shape signature, replayed afterwards.

    Usable as `jitad.function(func)`, `@jitad.function` and `@jitad.function(argnums=0)`.
    """
    if func is None:
        return lambda f: Function(f, argnums)
    return Function(func, argnums)
