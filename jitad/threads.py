"""Calling Numba's parallel kernels safely from any thread."""
import threading

import numba

_parallel_lock = threading.Lock()
_layer = None  # numba's threading layer, known after the first parallel call


def parallel(kernel, *args):
    """Call a prange kernel and return its result. Numba's 'workqueue' threading layer (used
    when neither OpenMP nor TBB is available) aborts the process on concurrent parallel calls,
    so calls are serialised under it; with 'omp' or 'tbb' threads run their parallel kernels
    concurrently."""
    global _layer
    if _layer is None or _layer == "workqueue":
        with _parallel_lock:
            result = kernel(*args)
            _layer = numba.threading_layer()
        return result
    return kernel(*args)


def set_num_threads(k):
    """Threads used by jitad's parallel sweeps (dense Hessians, Jacobians, HVP blocks) in the
    calling thread: numba's own setting (`numba.set_num_threads`), 1..NUMBA_NUM_THREADS."""
    k = int(k)
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= k <= limit:
        raise ValueError(f"jitad.set_num_threads: k must be in 1..{limit} (NUMBA_NUM_THREADS), "
                         f"got {k}")
    numba.set_num_threads(k)


def get_num_threads():
    """The thread count jitad's parallel sweeps use in the calling thread."""
    return numba.get_num_threads()


def threading_layer():
    """Numba's threading layer ('omp', 'tbb' or 'workqueue'), starting its thread pool with a
    tiny parallel kernel if no parallel sweep has run yet in this process."""
    try:
        return numba.threading_layer()
    except ValueError:  # not initialised until a parallel kernel runs
        import numpy as np

        from .sweeps import symmetrize
        parallel(symmetrize, np.zeros((1, 1)), 1)
        return numba.threading_layer()
