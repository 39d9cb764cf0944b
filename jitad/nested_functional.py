"""The functional API on traced inputs: derivatives recorded on the enclosing tape.

`jitad.functional` and `jitad.function` call these when an input is traced (or with
create_graph=True inside a recording). The function is recorded inline on the enclosing
recorder on copies of its inputs (`nested.copy_inputs`) and the derivative sweep is recorded
after it (`nested.propagate`); results are traced values with the structure the plain calls
give (the same `Layout`), so they can be differentiated again.
"""
import numpy as np

from . import nested
from .functional import Layout, normalize_argnums
from .record import output_slots
from .recorder import current
from .tracing import Traced


class _Shapes:
    """What `Layout` reads from a tape: the input/output structure of an inline recording."""

    def __init__(self, in_shapes, out_shapes, out_tuple):
        self.input_shapes = list(in_shapes)
        self.output_shapes = list(out_shapes)
        self.output_is_tuple = out_tuple
        self.n_inputs = int(sum(np.prod(s, dtype=np.int64) for s in in_shapes))
        self.n_outputs = int(sum(np.prod(s, dtype=np.int64) for s in out_shapes))


def recorder_for(values, create_graph=False):
    """The recorder a derivative of `values` is recorded on: theirs when one is traced, the
    current one with create_graph=True, else None (a plain numeric call)."""
    rec = nested.nested_recorder(*values)
    if rec is None and create_graph:
        rec = current()
    return rec


class Inline:
    """func recorded inline on `rec` on fresh copies of `args` (the differentiated inputs).

    xs (n,) the copies' slots, ys (m,) the output slots, lay the structure, lo the first slot
    of the recording (the range the derivative sweeps run over starts there).
    """

    def __init__(self, rec, func, args, in_tuple, sel=None):
        sel = list(range(len(args))) if sel is None else sel
        self.rec = rec
        rec.flush()
        self.lo = rec.n_slots
        copies, self.xs, shapes = nested.copy_inputs(rec, [args[j] for j in sel])
        full = list(args)
        for j, c in zip(sel, copies):
            full[j] = c
        with rec:
            out = func(*full)
        self.ys, out_shapes, out_tuple = output_slots(rec, out)
        self.lay = Layout(_Shapes(shapes, out_shapes, out_tuple), in_tuple)
        self.n, self.m = self.xs.shape[0], self.ys.shape[0]

    # ---- derivative sweeps (refs: (slots, consts) arrays)
    def reverse(self, ys, W_s, W_c, lo=None):
        """Adjoints over the inputs (n, k) for output refs ys with seeds (len(ys), k)."""
        return nested.propagate(self.rec, self.lo if lo is None else lo, ys, W_s, W_c, self.xs,
                                True)

    def forward(self, V_s, V_c, ys):
        """Tangents (len(ys), k) of slots ys for input directions (n, k)."""
        return nested.propagate(self.rec, self.lo, self.xs, V_s, V_c, ys, False)

    def gradient(self):
        """Gradient refs (n,) of the single output."""
        g_s, g_c = self.reverse(self.ys, np.full((1, 1), -1, np.int64), np.ones((1, 1)))
        return g_s[:, 0], g_c[:, 0]

    def jacobian_of(self, ys_s, ys_c):
        """Jacobian refs (len(ys), n) of output refs (constants have zero rows)."""
        q, n = ys_s.shape[0], self.n
        if n <= q:
            J_s, J_c = self.forward(np.full((n, n), -1, np.int64), np.eye(n), ys_s)
            return J_s, J_c
        R_s, R_c = nested.propagate(self.rec, self.lo, ys_s, np.full((q, q), -1, np.int64),
                                    np.eye(q), self.xs, True)
        return R_s.T, R_c.T

    # ---- structured results
    def structure(self, method, R_s, R_c):
        """Apply a Layout method to refs: it sees positions, the leaves become traced values."""
        P = np.arange(R_s.size, dtype=np.float64).reshape(R_s.shape)
        flat_s, flat_c = np.asarray(R_s).ravel(), np.asarray(R_c).ravel()

        def leaf(x):
            if isinstance(x, tuple):
                return tuple(leaf(e) for e in x)
            pos = np.asarray(x).astype(np.int64)
            return nested.as_traced(self.rec, flat_s[pos], flat_c[pos], pos.shape)
        return leaf(method(P))

    def outputs(self):
        return self.structure(self.lay.outputs, self.ys, np.zeros(self.m))

    def refs(self, v, shapes, is_tuple, name, side):
        """Flat refs (len, 1) of a direction v (traced or constant) with the given structure."""
        if v is None:
            size = int(sum(np.prod(s, dtype=np.int64) for s in shapes))
            if size != 1:
                raise ValueError(f"{name} can only be None when the {side} has exactly one "
                                 f"element")
            return np.full((1, 1), -1, np.int64), np.ones((1, 1))
        items = tuple(v) if isinstance(v, tuple) or (is_tuple and isinstance(v, list)) else (v,)
        if len(items) != len(shapes):
            raise ValueError(f"{name} has {len(items)} entries, expected {len(shapes)} (one per "
                             f"{side})")
        for k, (a, s) in enumerate(zip(items, shapes)):
            got = np.shape(a.val) if isinstance(a, Traced) else np.shape(a)
            if tuple(got) != tuple(s):
                raise ValueError(f"entry {k} of {name} has invalid shape: expected {tuple(s)} "
                                 f"(the shape of {side} {k}), got {tuple(got)}")
            if isinstance(a, Traced) and a.rec is not self.rec:
                raise TypeError(f"{name} is traced by another recording")
        s_, c_ = nested.flat_refs(self.rec, items)
        return s_[:, None], c_[:, None]


def _inline(rec, func, inputs):
    is_tuple = isinstance(inputs, tuple)
    args = list(inputs) if is_tuple else [inputs]
    return Inline(rec, func, args, is_tuple)


def _no_strict(strict):
    if strict:
        raise ValueError("strict=True is not supported for derivatives recorded on traced "
                         "inputs (nested differentiation)")


def jvp(rec, func, inputs, v, strict):
    _no_strict(strict)
    t = _inline(rec, func, inputs)
    V_s, V_c = t.refs(v, t.lay.in_shapes, t.lay.in_tuple, "v", "input")
    Jv_s, Jv_c = t.forward(V_s, V_c, t.ys)
    return t.outputs(), t.structure(t.lay.outputs, Jv_s[:, 0], Jv_c[:, 0])


def vjp(rec, func, inputs, v, strict):
    _no_strict(strict)
    t = _inline(rec, func, inputs)
    W_s, W_c = t.refs(v, t.lay.out_shapes, t.lay.out_tuple, "v", "output")
    g_s, g_c = t.reverse(t.ys, W_s, W_c)
    return t.outputs(), t.structure(t.lay.inputs, g_s[:, 0], g_c[:, 0])


def jacobian(rec, func, inputs, strict):
    _no_strict(strict)
    t = _inline(rec, func, inputs)
    J_s, J_c = t.jacobian_of(t.ys, np.zeros(t.m))
    return t.structure(t.lay.jacobian, J_s, J_c)


def hessian(rec, func, inputs, strict):
    """Forward-over-reverse: the tangents of the recorded gradient for unit directions."""
    _no_strict(strict)
    t = _inline(rec, func, inputs)
    t.lay.require_scalar_output("hessian")
    g_s, g_c = t.gradient()
    H_s, H_c = t.jacobian_of(g_s, g_c)
    return t.structure(t.lay.hessian, H_s, H_c)


def hvp(rec, func, inputs, v, strict, what):
    _no_strict(strict)
    t = _inline(rec, func, inputs)
    t.lay.require_scalar_output(what)
    V_s, V_c = t.refs(v, t.lay.in_shapes, t.lay.in_tuple, "v", "input")
    g_s, g_c = t.gradient()
    Hv_s, Hv_c = t.forward(V_s, V_c, g_s)
    return t.outputs(), t.structure(t.lay.inputs, Hv_s[:, 0], Hv_c[:, 0])


def grad_call(rec, func, sel, in_tuple, args, kwargs, what):
    """(value, gradient) of func(*args) with respect to args[sel] (jax.grad semantics)."""
    t = Inline(rec, lambda *a: func(*a, **kwargs), list(args), in_tuple, sel)
    t.lay.require_scalar_output(what)
    g_s, g_c = t.gradient()
    val = nested.as_traced(rec, t.ys, np.zeros(1), ())
    return val, t.structure(t.lay.inputs, g_s, g_c)


def function_method(fn, what, args, v=None):
    """A `jitad.Function` method on traced arguments: fn.func recorded inline on the enclosing
    recorder, the derivative recorded after it (structured as the replayed method's result)."""
    rec = nested.nested_recorder(*args, v)
    if what == "__call__":
        return fn.func(*args)
    if what == "hessp":  # hessp(x, p, *args): with respect to argument 0
        t = Inline(rec, fn.func, list(args), False, [0])
    else:
        if fn.argnums is None:
            sel, in_tuple = list(range(len(args))), len(args) > 1
        else:
            sel, in_tuple = normalize_argnums(fn.argnums, len(args))
            if len(set(sel)) != len(sel):
                raise ValueError(f"argnums {fn.argnums!r} names an argument twice")
        t = Inline(rec, fn.func, list(args), in_tuple, sel)
    if what == "jacobian":
        J_s, J_c = t.jacobian_of(t.ys, np.zeros(t.m))
        return t.structure(t.lay.jacobian, J_s, J_c)
    if what == "jvp":
        V_s, V_c = t.refs(v, t.lay.in_shapes, t.lay.in_tuple, "v", "input")
        Jv_s, Jv_c = t.forward(V_s, V_c, t.ys)
        return t.outputs(), t.structure(t.lay.outputs, Jv_s[:, 0], Jv_c[:, 0])
    if what == "vjp":
        W_s, W_c = t.refs(v, t.lay.out_shapes, t.lay.out_tuple, "w", "output")
        g_s, g_c = t.reverse(t.ys, W_s, W_c)
        return t.outputs(), t.structure(t.lay.inputs, g_s[:, 0], g_c[:, 0])
    t.lay.require_scalar_output(what)
    g_s, g_c = t.gradient()
    if what == "grad":
        return t.structure(t.lay.inputs, g_s, g_c)
    if what == "value_and_grad":
        return nested.as_traced(rec, t.ys, np.zeros(1), ()), t.structure(t.lay.inputs, g_s, g_c)
    if what == "hessian":
        H_s, H_c = t.jacobian_of(g_s, g_c)
        return t.structure(t.lay.hessian, H_s, H_c)
    V_s, V_c = t.refs(v, t.lay.in_shapes, t.lay.in_tuple, "v" if what == "hvp" else "p", "input")
    Hv_s, Hv_c = t.forward(V_s, V_c, g_s)
    Hv = t.structure(t.lay.inputs, Hv_s[:, 0], Hv_c[:, 0])
    return Hv if what == "hessp" else (t.outputs(), Hv)
