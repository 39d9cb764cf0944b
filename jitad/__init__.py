"""jitad: exact derivatives of NumPy code, recorded on a flat tape and swept by Numba.

Layers (see CONTRIBUTING.md): opcodes/rules (what each op is) -> recorder/tracing/elementwise/
array_functions (recording NumPy code) -> tape/sweeps (the compiled derivative engine) ->
the functional API on top.
"""
from .array_functions import stack
from .record import record
from .tape import Tape
from .tracing import Traced

__version__ = "0.1.0"

__all__ = ["record", "Tape", "Traced", "stack", "__version__"]
