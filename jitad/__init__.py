"""jitad: exact derivatives of NumPy code, recorded on a flat tape and swept by Numba.

Layers (see CONTRIBUTING.md): opcodes/rules (what each op is) -> recorder/tracing/elementwise/
array_functions (recording NumPy code) -> tape/sweeps (the compiled derivative engine) ->
the functional API on top.
"""
from .array_functions import stack
from .compiled import Function, function
from .functional import grad, hessian, hvp, jacobian, jvp, value_and_grad, vhp, vjp
from .lazy import LazyHessian
from .record import record
from .tape import Tape
from .tracing import Traced

__version__ = "0.1.0"

__all__ = ["record", "Tape", "Traced", "stack", "__version__",
           "jvp", "vjp", "jacobian", "hessian", "hvp", "vhp", "grad", "value_and_grad",
           "LazyHessian", "function", "Function"]
