"""`jitad.record`: run a function once on traced arguments and return its Tape."""
import numbers

import numpy as np

from . import array_functions  # noqa: F401  (registers numpy functions)
from . import elementwise  # noqa: F401  (registers ufuncs)
from . import conditions  # noqa: F401  (comparisons, np.where, guarded orders)
from .optimize import optimize_arrays
from .recorder import Recorder
from .tape import Tape
from .tracing import Traced, TracedArray, TracedScalar


def as_float_array(a, what="argument"):
    """float64 array from an array-like of real numbers, or TypeError naming the problem."""
    if isinstance(a, Traced):
        raise TypeError(f"{what} is a traced value; nested recording is not supported here")
    if isinstance(a, (str, bytes)) or a is None:
        raise TypeError(f"{what} must be a real number or a numpy array of them, got "
                        f"{type(a).__name__}")
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be real-valued (got dtype {arr.dtype})")
    return np.asarray(arr, dtype=np.float64)


def trace_inputs(rec, arrays):
    """Traced stand-ins for float arrays whose slots are consecutive from 0."""
    traced, offset = [], 0
    for arr in arrays:
        n = arr.size
        if arr.ndim == 0:
            traced.append(TracedScalar(rec, offset, float(arr)))
        else:
            idx = np.arange(offset, offset + n, dtype=np.int64).reshape(arr.shape)
            traced.append(TracedArray(rec, idx, arr.copy()))
        offset += n
    return traced


def output_slots(rec, out):
    """(slots (m,), shapes, is_tuple) of a function's return value."""
    is_tuple = isinstance(out, (tuple, list))
    items = list(out) if is_tuple else [out]
    slots, shapes = [], []
    for k, item in enumerate(items):
        if isinstance(item, Traced):
            if item.rec is not rec:
                raise TypeError("the function returned a value traced by another recording")
            s = np.asarray(item.idx, dtype=np.int64)
        elif isinstance(item, (numbers.Number, np.ndarray, np.generic)):
            val = as_float_array(item, f"output {k}")
            s = rec.constants(val).reshape(val.shape)
        else:
            raise TypeError(f"the function must return arrays, numbers or a tuple of them; output "
                            f"{k} is {type(item).__name__}")
        slots.append(s.ravel())
        shapes.append(s.shape)
    flat = np.concatenate(slots) if slots else np.empty(0, np.int64)
    return flat, shapes, is_tuple


def record(func, *args, optimize=True):
    """Record func(*args) on a Tape.

    args: numpy arrays of any shape, Python floats/ints or 0-d arrays (taken as float64). They
    are flattened in C order and concatenated into the tape's input vector; func may return a
    scalar, an array or a tuple of them, flattened likewise into the output vector.
    optimize: fold constants, merge common subexpressions and drop ops no output depends on
    (`jitad/optimize.py`; `tape.summary()` reports what it did). False keeps the tape as
    recorded.
    """
    arrays = [as_float_array(a, f"argument {k}") for k, a in enumerate(args)]
    n_in = sum(a.size for a in arrays)
    rec = Recorder(n_in)
    rec.x0 = np.concatenate([a.ravel() for a in arrays]) if arrays else np.empty(0)
    with rec:
        out = func(*trace_inputs(rec, arrays))
    slots, shapes, is_tuple = output_slots(rec, out)
    rec.flush()
    x0 = rec.x0  # the recording point (also read by nested derivatives)
    tape_arrays = (rec.code.final(), rec.param.final(), rec.eptr.final(), rec.arg.final(),
                   rec.coef.final(), rec.tptr.final(), rec.ta.final(), rec.tb.final())
    guards = rec.guards.arrays()
    report = None
    if optimize:
        # guard operands are slots too: kept alive and renumbered with the tape (guard_b -1
        # means a constant operand); without guards that bookkeeping is skipped (~10 us)
        ga, gb = guards["guard_a"], guards["guard_b"]
        keep = [ga, gb[gb >= 0]] if ga.size else ()
        opt = optimize_arrays(n_in, *tape_arrays, slots, x=x0, keep=keep)
        tape_arrays, slots, report = opt.arrays, opt.out, opt.report
        if ga.size:
            new_b = np.full(gb.shape, -1, dtype=opt.keep[1].dtype)
            new_b[gb >= 0] = opt.keep[1]
            guards = dict(guards, guard_a=opt.keep[0], guard_b=new_b)
    tape = Tape(n_in, *tape_arrays, slots, input_shapes=[a.shape for a in arrays],
                output_shapes=shapes, output_is_tuple=is_tuple, x0=x0, guards=guards,
                guard_sources=rec.guards.sources)
    tape.optimization = report
    return tape
