"""jitad: exact derivatives of NumPy code, recorded on a flat tape and swept by Numba.

Layers (see CONTRIBUTING.md): opcodes/rules (what each op is) -> recorder/tracing/elementwise/
array_functions (recording NumPy code) -> tape/sweeps (the compiled derivative engine) ->
the functional API on top.
"""
from . import kernel_cache

kernel_cache.check()  # before any kernel is loaded from the cache

from .array_functions import stack  # noqa: E402
from .compiled import Function, function  # noqa: E402
from .guards import BranchChangedError  # noqa: E402
from .functional import grad, hessian, hvp, jacobian, jvp, value_and_grad, vhp, vjp  # noqa: E402
from .lazy import LazyHessian  # noqa: E402
from .record import record  # noqa: E402
from .tape import Tape  # noqa: E402
from .tape_io import load as load_tape  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402
from .tracing import Traced  # noqa: E402

__version__ = "0.1.0"

__all__ = ["record", "Tape", "Traced", "stack", "__version__",
           "jvp", "vjp", "jacobian", "hessian", "hvp", "vhp", "grad", "value_and_grad",
           "LazyHessian", "function", "Function", "BranchChangedError", "set_num_threads",
           "get_num_threads", "load_tape"]
