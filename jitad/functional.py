"""The functional API: torch.autograd.functional / paddle.autograd / jax.grad semantics on a Tape.

Every call records `func` once on its inputs (`jitad.record`) and asks the tape for the
derivative; `jitad.function` (compiled.py) keeps the tapes and replays them instead.

Conventions (as torch defines them):
- `inputs` is one array (Python floats/ints and 0-d arrays too; lists are array-likes) or a
  tuple of them. Results that belong to the inputs have the same structure: one array, or a
  tuple with one entry per input.
- jacobian(func, inputs)[i][j] = d out_i / d in_j, shape out_i.shape + in_j.shape; a plain tuple
  when only one side is a tuple, an array when neither is.
- hessian(func, inputs)[i][j] has shape in_i.shape + in_j.shape.
- Results of shape () are numpy float64 scalars.
"""
import itertools
import math
import numbers

import numpy as np

from . import limits
from .lazy import LazyHessian, RowCache
from .record import as_float_array, record


__all__ = ["jvp", "vjp", "jacobian", "hessian", "hvp", "vhp", "grad", "value_and_grad"]


# --------------------------------------------------------------------------- structure helpers
def _shaped(flat, shape):
    """flat (size,) reshaped to `shape`; a float64 scalar for shape ()."""
    if shape == ():
        return np.float64(flat.reshape(-1)[0])
    return flat.reshape(shape)


def _offsets(shapes):
    sizes = [math.prod(s) for s in shapes]
    return sizes, [0, *itertools.accumulate(sizes)]


def _fmt(shape):
    return str(tuple(shape))


def _as_inputs(inputs, name="inputs"):
    """(is_tuple, [float64 arrays]) for one array-like or a tuple of them."""
    is_tuple = isinstance(inputs, tuple)
    items = inputs if is_tuple else (inputs,)
    arrays = [as_float_array(a, f"{name}[{k}]" if is_tuple else name) for k, a in enumerate(items)]
    return is_tuple, arrays


class Layout:
    """How a tape's flat input/output vectors map to the user's structure.

    `sel` lists the differentiated arguments (all by default); `in_tuple` says whether results
    over the inputs are tuples. Shared by the functional API and `jitad.function`.
    """

    def __init__(self, tape, in_tuple, sel=None):
        self.tape = tape
        self.n = tape.n_inputs
        self.m = tape.n_outputs
        self.in_shapes = [tuple(s) for s in tape.input_shapes]
        self.in_sizes, self.in_offsets = _offsets(self.in_shapes)
        self.out_shapes = [tuple(s) for s in tape.output_shapes]
        self.out_sizes, self.out_offsets = _offsets(self.out_shapes)
        self.out_tuple = bool(tape.output_is_tuple)
        self.sel = list(range(len(self.in_shapes))) if sel is None else list(sel)
        self.in_tuple = bool(in_tuple)
        self.sel_all = self.sel == list(range(len(self.in_shapes)))
        self.sel_shapes = [self.in_shapes[j] for j in self.sel]
        self.sel_sizes, self.sel_offsets = _offsets(self.sel_shapes)
        self.n_sel = self.sel_offsets[-1]
        if self.sel_all:
            self.sel_idx = None
        else:
            self.sel_idx = np.concatenate(
                [np.arange(self.in_offsets[j], self.in_offsets[j + 1], dtype=np.int64)
                 for j in self.sel] or [np.empty(0, np.int64)])
        self.scalar_out = (not self.out_tuple) and self.m == 1

    # ---- flat vectors <-> structure
    def pack_in(self, items):
        return tuple(items) if self.in_tuple else items[0]

    def pack_out(self, items):
        return tuple(items) if self.out_tuple else items[0]

    def outputs(self, y):
        """Structured outputs from y (m,) or a leading-axis (m, ...) array."""
        o = self.out_offsets
        return self.pack_out([_shaped(y[o[i]:o[i + 1]], s) for i, s in enumerate(self.out_shapes)])

    def inputs(self, g):
        """Structured (selected) inputs from a vector over all n inputs."""
        o = self.in_offsets
        return self.pack_in([_shaped(g[o[j]:o[j + 1]], self.in_shapes[j]) for j in self.sel])

    def jacobian(self, J):
        """Structured blocks from J (m, n) over all inputs."""
        oo, io = self.out_offsets, self.in_offsets
        rows = []
        for i, so in enumerate(self.out_shapes):
            row = [_shaped(J[oo[i]:oo[i + 1], io[j]:io[j + 1]], so + self.in_shapes[j])
                   for j in self.sel]
            rows.append(self.pack_in(row))
        return self.pack_out(rows)

    def hessian(self, H):
        """Structured blocks from H (n_sel, n_sel) over the selected inputs."""
        o, sh = self.sel_offsets, self.sel_shapes
        k = len(sh)
        blocks = [self.pack_in([_shaped(H[o[i]:o[i + 1], o[j]:o[j + 1]], sh[i] + sh[j])
                                for j in range(k)]) for i in range(k)]
        return self.pack_in(blocks)

    # ---- directions given by the user
    def _items(self, v, shapes, is_tuple, name, side):
        if isinstance(v, tuple) or (is_tuple and isinstance(v, list)):
            items = tuple(v)
        else:
            items = (v,)
        if len(items) != len(shapes):
            if is_tuple:
                raise ValueError(f"{name} is a tuple of invalid length: expected {len(shapes)} "
                                 f"(one per {side}), got {len(items)}")
            raise ValueError(f"{name} should contain a single array (the {side} is a single "
                             f"array), got a tuple of {len(items)}")
        out = []
        for k, (a, s) in enumerate(zip(items, shapes)):
            a = as_float_array(a, name)
            if a.shape != s:
                where = f"entry {k} of {name}" if is_tuple else name
                raise ValueError(f"{where} has invalid shape: expected {_fmt(s)} (the shape of "
                                 f"{side} {k}), got {_fmt(a.shape)}")
            out.append(a)
        return out

    def input_direction(self, v, name="v"):
        """Flat (n,) direction over all inputs (zero on unselected ones) from a structured v."""
        if v is None:
            if self.n_sel != 1:
                raise ValueError(f"{name} can only be None when the input has exactly one element; "
                                 f"the input has shapes {self._shapes_txt(self.sel_shapes)} "
                                 f"({self.n_sel} elements)")
            flat = np.ones(1)
        else:
            items = self._items(v, self.sel_shapes, self.in_tuple, name, "input")
            flat = (np.concatenate([a.ravel() for a in items]) if items else np.empty(0))
        if self.sel_all:
            return flat
        full = np.zeros(self.n)
        full[self.sel_idx] = flat
        return full

    def output_weights(self, v, name="v"):
        """Flat (m,) output weights from a structured v."""
        if v is None:
            if self.m != 1:
                raise ValueError(f"{name} can only be None when the output has exactly one "
                                 f"element; the output has shapes "
                                 f"{self._shapes_txt(self.out_shapes)} ({self.m} elements)")
            return np.ones(1)
        items = self._items(v, self.out_shapes, self.out_tuple, name, "output")
        return np.concatenate([a.ravel() for a in items]) if items else np.empty(0)

    @staticmethod
    def _shapes_txt(shapes):
        return ", ".join(_fmt(s) for s in shapes) if shapes else "none"

    # ---- checks
    def require_scalar_output(self, what):
        if not self.scalar_out:
            got = ("a tuple of shapes " + self._shapes_txt(self.out_shapes) if self.out_tuple
                   else f"shape {_fmt(self.out_shapes[0])}")
            raise ValueError(f"{what} needs func to return a single array with exactly one "
                             f"element, got {got}")

    def check_strict(self):
        """strict=True: every selected (non-empty) input must influence some output."""
        infl = self.tape.input_influence()
        for j in self.sel:
            a, b = self.in_offsets[j], self.in_offsets[j + 1]
            if b > a and not infl[a:b].any():
                raise ValueError(f"strict=True: the output of the function does not depend on "
                                 f"input {j} (shape {_fmt(self.in_shapes[j])}); with "
                                 "strict=False its derivatives are zeros")

    def select_rows(self, R):
        return R if self.sel_all else R[self.sel_idx]


def _setup(func, inputs, strict):
    is_tuple, arrays = _as_inputs(inputs)
    # one-shot tapes are swept once or a few times: the optimisation passes (which pay off on
    # replay) would cost more than they save here (perf/README.md, tape optimisation)
    tape = record(func, *arrays, optimize=False)
    layout = Layout(tape, is_tuple)
    if strict:
        layout.check_strict()
    x = np.concatenate([a.ravel() for a in arrays]) if arrays else np.empty(0)
    return tape, layout, x


# --------------------------------------------------------------------------- the calls
def jvp(func, inputs, v=None, strict=False, create_graph=False):
    """(func_output, J @ v): v has the structure of `inputs` (None if it has one element).

    On traced inputs (or with create_graph=True inside a recording) the results are traced
    values recorded on the enclosing tape (README "Higher-order derivatives"); likewise below.
    """
    rec = _nested_recorder((inputs, v), create_graph)
    if rec is not None:
        return _nested().jvp(rec, func, inputs, v, strict)
    tape, lay, x = _setup(func, inputs, strict)
    d = lay.input_direction(v)
    y, Jv = tape.jvp(x, d)
    return lay.outputs(y), lay.outputs(Jv)


def vjp(func, inputs, v=None, strict=False, create_graph=False):
    """(func_output, v @ J): v has the structure of func's output (None if it has one element)."""
    rec = _nested_recorder((inputs, v), create_graph)
    if rec is not None:
        return _nested().vjp(rec, func, inputs, v, strict)
    tape, lay, x = _setup(func, inputs, strict)
    w = lay.output_weights(v)
    y, vJ = tape.vjp(x, w)
    return lay.outputs(y), lay.inputs(vJ)


def jacobian(func, inputs, strict=False, create_graph=False):
    """Jacobian blocks: result[i][j] = d out_i / d in_j, shape out_i.shape + in_j.shape."""
    rec = _nested_recorder((inputs,), create_graph)
    if rec is not None:
        return _nested().jacobian(rec, func, inputs, strict)
    tape, lay, x = _setup(func, inputs, strict)
    return lay.jacobian(tape.jacobian(x))


def _check_batch(lay, inputs_is_tuple):
    if inputs_is_tuple or len(lay.in_shapes) != 1 or len(lay.in_shapes[0]) != 2:
        got = ("a tuple of inputs" if inputs_is_tuple
               else f"an input of shape {_fmt(lay.in_shapes[0])}")
        raise ValueError(f"batch_axis=0 needs one 2-D input of shape (B, N), got {got}")
    B, N = lay.in_shapes[0]
    if lay.out_tuple or lay.out_shapes[0] != (B,):
        got = ("a tuple" if lay.out_tuple else f"shape {_fmt(lay.out_shapes[0])}")
        raise ValueError(f"batch_axis=0 needs func to return shape ({B},) (one value per "
                         f"sample), got {got}")
    return B, N


def hessian(func, inputs, strict=False, batch_axis=None, lazy=False, create_graph=False,
            sparse=False):
    """Hessian of a single-element output.

    One input: shape in.shape + in.shape; a tuple of inputs: result[i][j] with shape
    in_i.shape + in_j.shape. batch_axis=0 (paddle): one (B, N) input, func returns (B,) with
    independent samples; returns the (B, N, N) per-sample Hessians from N HVP directions.
    lazy=True: a `LazyHessian` (a tuple of tuples of them for tuple inputs) that computes
    rows on demand. sparse=True: a `jitad.SparseMatrix` (n, n) over all inputs flattened and
    concatenated, from compressed HVPs (see `Tape.sparse_hessian`).
    """
    rec = _nested_recorder((inputs,), create_graph)
    if rec is not None:
        if batch_axis is not None or lazy or sparse:
            raise ValueError("batch_axis, lazy and sparse are not supported for Hessians "
                             "recorded on traced inputs (nested differentiation)")
        return _nested().hessian(rec, func, inputs, strict)
    if batch_axis is not None and not (isinstance(batch_axis, numbers.Integral)
                                       and not isinstance(batch_axis, bool) and batch_axis == 0):
        raise ValueError(f"batch_axis must be None or 0 (the leading axis), got {batch_axis!r}")
    if sparse and (lazy or batch_axis is not None):
        raise ValueError("sparse=True does not combine with lazy=True or batch_axis")
    tape, lay, x = _setup(func, inputs, strict)
    if sparse:
        lay.require_scalar_output("hessian")
        return tape.sparse_hessian(x)
    if batch_axis is not None:
        if lazy:
            raise ValueError("batch_axis=0 does not combine with lazy=True")
        B, N = _check_batch(lay, isinstance(inputs, tuple))
        limits.check_dense(B * N, N, "batched Hessian")
        # sum_b f_b has a block-diagonal Hessian: direction j sets coordinate j of every sample.
        V = np.zeros((B, N, N))
        V[:, np.arange(N), np.arange(N)] = 1.0
        R = tape.hvp(x, V.reshape(B * N, N), np.ones(B))
        return R.reshape(B, N, N)
    lay.require_scalar_output("hessian")
    if lazy:
        cache = RowCache(tape, x)
        o = lay.in_offsets
        blocks = [LazyHessian(cache, o[i], o[i + 1] - o[i], o[j], o[j + 1] - o[j])
                  for i in range(len(o) - 1) for j in range(len(o) - 1)]
        k = len(o) - 1
        if not lay.in_tuple:
            return blocks[0]
        return tuple(tuple(blocks[i * k:(i + 1) * k]) for i in range(k))
    # a tape recorded for this one call: dense rows without a plan when n is small (a plan
    # pays off only on replay); equal to a replayed tape's Hessian up to rounding, not bitwise
    return lay.hessian(tape._hessian(x, None, False))


def _hvp(func, inputs, v, strict, what, create_graph):
    rec = _nested_recorder((inputs, v), create_graph)
    if rec is not None:
        return _nested().hvp(rec, func, inputs, v, strict, what)
    tape, lay, x = _setup(func, inputs, strict)
    lay.require_scalar_output(what)
    Hv = tape.hvp(x, lay.input_direction(v))
    return lay.outputs(tape.forward(x)), lay.inputs(Hv)


def hvp(func, inputs, v=None, strict=False, create_graph=False):
    """(func_output, H @ v) for a single-element output; v has the structure of `inputs`."""
    return _hvp(func, inputs, v, strict, "hvp", create_graph)


def vhp(func, inputs, v=None, strict=False, create_graph=False):
    """(func_output, v @ H): equal to hvp's result since the Hessian is symmetric."""
    return _hvp(func, inputs, v, strict, "vhp", create_graph)


# --------------------------------------------------------------------------- jax-style grad
def normalize_argnums(argnums, n_args):
    """(list of argument indices, result is a tuple)."""
    def one(a):
        if not isinstance(a, numbers.Integral) or isinstance(a, bool):
            raise TypeError(f"argnums must be an int or a tuple of ints, got {a!r}")
        a = int(a)
        if not -n_args <= a < n_args:
            raise ValueError(f"argnums {a} is out of range for a call with {n_args} "
                             "positional arguments")
        return a % n_args

    if isinstance(argnums, tuple):
        return [one(a) for a in argnums], True
    return [one(argnums)], False


def _grad_call(func, argnums, args, kwargs, what):
    if not args:
        raise TypeError(f"{what}: the function must be called with at least one positional "
                        "argument to differentiate")
    sel, is_tuple = normalize_argnums(argnums, len(args))
    if len(set(sel)) != len(sel):
        raise ValueError(f"argnums {argnums!r} names an argument twice")
    # inside a recording (traced arguments, or a function closing over traced values) the
    # gradient is recorded on the enclosing tape, as jax.grad composes inside a trace
    rec = _nested_recorder(list(args) + list(kwargs.values()), True)
    if rec is not None:
        return _nested().grad_call(rec, func, sel, is_tuple, args, kwargs, what)
    arrays = [as_float_array(args[j], f"argument {j}") for j in sel]

    def partial(*traced):
        full = list(args)
        for j, t in zip(sel, traced):
            full[j] = t
        return func(*full, **kwargs)

    tape = record(partial, *arrays, optimize=False)  # one-shot: see _setup
    lay = Layout(tape, is_tuple)
    lay.require_scalar_output(what)
    x = np.concatenate([a.ravel() for a in arrays]) if arrays else np.empty(0)
    val, g = tape.value_and_gradient(x)
    return np.float64(val), lay.inputs(g)


def grad(func, argnums=0):
    """jax.grad: a function returning d func / d args[argnums] (structure of the argument(s)).

    func must return a single element. Arguments not in argnums are passed through unchanged
    (treated as constants); argnums is an int or a tuple of ints.
    """
    def grad_f(*args, **kwargs):
        return _grad_call(func, argnums, args, kwargs, "grad")[1]

    _wrap(grad_f, func, "grad")
    return grad_f


def value_and_grad(func, argnums=0):
    """jax.value_and_grad: a function returning (func(*args), grad(func, argnums)(*args))."""
    def value_and_grad_f(*args, **kwargs):
        return _grad_call(func, argnums, args, kwargs, "value_and_grad")

    _wrap(value_and_grad_f, func, "value_and_grad")
    return value_and_grad_f


def _wrap(wrapper, func, kind):
    name = getattr(func, "__name__", "function")
    wrapper.__name__ = f"{kind}_{name}"
    wrapper.__qualname__ = wrapper.__name__
    wrapper.__doc__ = f"jitad.{kind} of {name}."
    wrapper.__wrapped__ = func


# --------------------------------------------------------------------------- nesting
def _nested_recorder(values, create_graph):
    """The recorder to record a derivative on (traced values among `values`, or the current
    recording with create_graph=True), None for a plain numeric call."""
    from .nested_functional import recorder_for
    return recorder_for(values, create_graph)


def _nested():
    from . import nested_functional
    return nested_functional
