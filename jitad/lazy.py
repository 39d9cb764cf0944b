"""LazyHessian: a Hessian that computes only the rows an index needs (paddle's lazy Hessian).

Row i of the symmetric Hessian is the HVP H @ e_i. A `RowCache` keeps the rows computed so far
for one tape and point; `LazyHessian` is a view of one block of the flattened (n, n) matrix
(the whole matrix for a single input, block [i][j] for a tuple of inputs) with numpy-style
indexing. A block H[I, J] needs rows I or, by symmetry, rows J: the cache computes the smaller
set of missing ones, all in one multi-direction `tape.hvp` call (parallel over direction blocks
when large).
"""
import numbers
import threading

import numpy as np

__all__ = ["LazyHessian", "RowCache"]


class RowCache:
    """Rows of the Hessian of a scalar-output tape at one point, computed on demand.

    Counters: `hvp_directions` (HVP directions computed, i.e. rows), `hvp_batches` (times
    missing rows were computed), `hvp_calls` (tape.hvp calls: one per batch).
    """

    def __init__(self, tape, x, w=None):
        self.tape = tape
        self.x = np.array(x, dtype=np.float64)
        self.w = w
        self.n = tape.n_inputs
        self.pos = np.full(self.n, -1, dtype=np.int64)  # row i lives at store[pos[i]]
        self.store = np.empty((0, self.n))
        self.count = 0
        self.hvp_directions = 0
        self.hvp_batches = 0
        self.hvp_calls = 0
        self._lock = threading.Lock()

    def _compute(self, rows):
        """Compute and store the given missing rows (unique global indices) in one batch."""
        k = rows.shape[0]
        V = np.zeros((self.n, k))
        V[rows, np.arange(k)] = 1.0
        R = self.tape.hvp(self.x, V, self.w)
        self.hvp_calls += 1
        need = self.count + k
        if need > self.store.shape[0]:
            new = np.empty((max(need, 2 * self.store.shape[0]), self.n))
            new[: self.count] = self.store[: self.count]
            self.store = new
        self.store[self.count: need] = R.T
        self.pos[rows] = np.arange(self.count, need)
        self.count = need
        self.hvp_directions += k
        self.hvp_batches += 1

    def block(self, gI, gJ):
        """H[gI][:, gJ] (len(gI), len(gJ)) for global index arrays without duplicates."""
        gI = np.asarray(gI, dtype=np.int64)
        gJ = np.asarray(gJ, dtype=np.int64)
        if gI.size == 0 or gJ.size == 0:
            return np.zeros((gI.size, gJ.size))
        with self._lock:
            miss_I = gI[self.pos[gI] < 0]
            miss_J = gJ[self.pos[gJ] < 0]
            if miss_I.size == 0:
                by_rows = True
            elif miss_J.size == 0:
                by_rows = False
            else:
                by_rows = miss_I.size <= miss_J.size
                self._compute(np.unique(miss_I if by_rows else miss_J))
            if by_rows:
                return self.store[self.pos[gI]][:, gJ]
            return self.store[self.pos[gJ]][:, gI].T.copy()


def _is_basic(k):
    return isinstance(k, slice) or (isinstance(k, (numbers.Integral, np.integer))
                                    and not isinstance(k, (bool, np.bool_)))


class LazyHessian:
    """Block [r0:r0+nr, c0:c0+nc] of a flattened Hessian, computed on demand.

    Indexing as a numpy (nr, nc) array: H[i], H[i:j], H[:, k], H[a:b, c:d], H[:], H[i, j],
    integer/boolean arrays; `np.asarray(H)` gives the dense block. `hvp_directions` counts the
    HVP directions computed so far by the cache this block shares with its siblings.
    """

    __array_priority__ = 10.0

    def __init__(self, cache, r0, nr, c0, nc):
        self.cache = cache
        self.r0, self.nr, self.c0, self.nc = int(r0), int(nr), int(c0), int(nc)

    @property
    def shape(self):
        return (self.nr, self.nc)

    @property
    def ndim(self):
        return 2

    @property
    def size(self):
        return self.nr * self.nc

    dtype = np.dtype(np.float64)

    def __len__(self):
        return self.nr

    @property
    def hvp_directions(self):
        return self.cache.hvp_directions

    @property
    def hvp_batches(self):
        return self.cache.hvp_batches

    @property
    def hvp_calls(self):
        return self.cache.hvp_calls

    def __repr__(self):
        return (f"<jitad.LazyHessian shape={self.shape}, {self.cache.count} of {self.cache.n} "
                f"rows computed>")

    def _key(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            rest = key[:i] + key[i + 1:]
            if any(k is Ellipsis for k in rest):
                raise IndexError("an index can only have a single ellipsis ('...')")
            key = key[:i] + (slice(None),) * max(0, 2 - len(rest)) + key[i + 1:]
        return key

    def __getitem__(self, key):
        key = self._key(key)
        if len(key) <= 2 and all(_is_basic(k) for k in key):
            rk = key[0] if len(key) > 0 else slice(None)
            ck = key[1] if len(key) > 1 else slice(None)
            I = np.arange(self.nr)[rk]
            J = np.arange(self.nc)[ck]
            sub = self.cache.block(self.r0 + np.atleast_1d(I), self.c0 + np.atleast_1d(J))
            if np.ndim(I) == 0 and np.ndim(J) == 0:
                return np.float64(sub[0, 0])
            if np.ndim(I) == 0:
                return sub[0]
            if np.ndim(J) == 0:
                return sub[:, 0]
            return sub
        # advanced indexing: the row and column of every selected element, with numpy's rules
        rows = np.broadcast_to(np.arange(self.nr)[:, None], self.shape)[key]
        cols = np.broadcast_to(np.arange(self.nc)[None, :], self.shape)[key]
        uI, iI = np.unique(rows, return_inverse=True)
        uJ, iJ = np.unique(cols, return_inverse=True)
        sub = self.cache.block(self.r0 + uI, self.c0 + uJ)
        out = sub[iI.reshape(rows.shape), iJ.reshape(cols.shape)]
        return np.float64(out) if out.ndim == 0 else out

    def __array__(self, dtype=None, copy=None):
        a = self[:, :]
        return a if dtype is None else a.astype(dtype)

    def toarray(self):
        """The dense (nr, nc) block."""
        return self[:, :]
