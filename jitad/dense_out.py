"""Dense (n, n) results: zeroed, and filled from sparse entries, by all threads.

A dense Hessian of 10^3 inputs is 8 MB, and writing 8 MB takes about 290 us on one core
here (warm memory; np.zeros' memset is no faster), several times what computing a sparse
Hessian's entries costs. Two threads write it in about 150 us, so large dense results are
zeroed in parallel row blocks, with the sparse entries written by the thread that zeroed
their row.
"""
import numba
import numpy as np
from numba import njit, prange

from .threads import parallel

_pjit = njit(cache=True, error_model="numpy", nogil=True, parallel=True)

# From this many entries (1 MB) a dense result is zeroed by all threads: a parallel region
# costs a few microseconds, writing 2^17 entries about 35 us on one core
PARALLEL_ENTRIES = 1 << 17


@_pjit
def _zero_and_scatter(H, indptr, indices, data, n_parts):
    """H (n, m) <- 0 with H[i, indices[k]] = data[k] for k in indptr[i]:indptr[i+1] (an empty
    indptr: no entries), rows split into n_parts contiguous blocks run in prange."""
    n = H.shape[0]
    m = H.shape[1]
    has_entries = indptr.shape[0] > 0
    for part in prange(n_parts):
        for i in range(part * n // n_parts, (part + 1) * n // n_parts):
            for j in range(m):
                H[i, j] = 0.0
            if has_entries:
                for k in range(indptr[i], indptr[i + 1]):
                    H[i, indices[k]] = data[k]


_NO_ENTRIES = (np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0))


def zeros(n, m):
    """A zero (n, m) float64 array, written by all threads when it is large."""
    return from_csr(n, m, *_NO_ENTRIES)


def from_csr(n, m, indptr, indices, data):
    """The dense (n, m) array with the CSR entries (indptr (n+1,) int64, indices (nnz,) int32
    in 0..m-1, data (nnz,); or all three empty: zeros) and zeros elsewhere."""
    threads = numba.get_num_threads() if n * m >= PARALLEL_ENTRIES else 1
    if threads == 1 and indptr.shape[0] == 0:
        return np.zeros((n, m))  # calloc: as fast as one thread's writes
    H = np.empty((n, m))
    if threads == 1:
        _zero_and_scatter(H, indptr, indices, data, 1)
    else:
        parallel(_zero_and_scatter, H, indptr, indices, data, threads)
    return H
