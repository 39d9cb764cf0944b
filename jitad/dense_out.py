"""Dense (n, n) results: zeroed, and filled from sparse entries, by all threads.

A dense Hessian of 10^3 inputs is 8 MB, and writing 8 MB takes about 290 us on one core
here (warm memory; np.zeros' memset is no faster), several times what computing a sparse
Hessian's entries costs. Two threads write it in about 150 us, so large dense results are
zeroed in parallel row blocks, with the sparse entries written by the thread that zeroed
their row.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

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
        lo = part * n // n_parts
        hi = (part + 1) * n // n_parts
        zero_rows(H, lo, hi)
        if has_entries:
            scatter_rows(H, indptr, indices, data, lo, hi)


@intrinsic
def _stream_zeros4(typingctx, flat, k):
    """flat[k:k+4] = 0 by one 32-byte non-temporal store (flat's data + 8k 32-byte aligned):
    the zeros go to memory without evicting the cache."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        vec = ir.VectorType(ir.DoubleType(), 4)
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), vec.as_pointer())
        store = builder.store(ir.Constant(vec, [0.0] * 4), ptr, align=32)
        store.set_metadata("nontemporal",
                           builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
    return types.void(flat, k), codegen


@intrinsic
def _store_fence(typingctx):
    """Orders the non-temporal stores before what follows (they are weakly ordered)."""
    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
    return types.void(), codegen


@njit(cache=True, error_model="numpy", nogil=True)
def zero_rows(H, lo, hi):
    """H[lo:hi] = 0."""
    for i in range(lo, hi):
        for j in range(H.shape[1]):
            H[i, j] = 0.0


@njit(cache=True, error_model="numpy", nogil=True)
def stream_zero_rows(H, lo, hi):
    """H[lo:hi] = 0 (H C-contiguous) with non-temporal stores, which leave this core's cache
    as it was: for the thread that runs the sweeps, whose arrays an ordinary 8 MB fill would
    evict (Rosenbrock 10^3: its next sparse Hessian took 71 instead of 33 us). They write
    ~10% slower than ordinary stores here, so the other threads use those."""
    flat = H.reshape(-1)
    m = H.shape[1]
    k = lo * m
    k1 = hi * m
    head = (-(flat.ctypes.data // 8)) % 4  # entries before the first 32-byte boundary
    while k < k1 and (k - head) % 4 != 0:
        flat[k] = 0.0
        k += 1
    while k + 4 <= k1:
        _stream_zeros4(flat, k)
        k += 4
    while k < k1:
        flat[k] = 0.0
        k += 1
    _store_fence()


@njit(cache=True, error_model="numpy", nogil=True)
def scatter_rows(H, indptr, indices, data, lo, hi):
    """The CSR entries of rows lo..hi-1 into H."""
    for i in range(lo, hi):
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
