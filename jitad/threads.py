"""Calling Numba's parallel kernels safely from any thread."""
import threading

import numba

_parallel_lock = threading.Lock()
_layer = None  # numba's threading layer, known after the first parallel call


def parallel(kernel, *args):
    """Call a prange kernel. Numba's 'workqueue' threading layer (used when neither OpenMP nor
    TBB is available) aborts the process on concurrent parallel calls, so calls are serialised
    under it; with 'omp' or 'tbb' threads run their parallel kernels concurrently."""
    global _layer
    if _layer is None or _layer == "workqueue":
        with _parallel_lock:
            kernel(*args)
            _layer = numba.threading_layer()
    else:
        kernel(*args)
