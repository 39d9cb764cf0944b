"""Per-thread work arrays reused across calls.

Fresh large arrays are expensive here: each new page costs a fault (about 2 us on a VM), which
for a 10^5-op tape exceeds the sweep itself. So the sweeps never allocate slot-sized arrays;
they write into these buffers, owned by one thread each (a Tape can be used from many threads
at once) and grown on demand. Results handed to users are always fresh copies.
"""
import threading

import numpy as np


class _Local(threading.local):
    def __init__(self):
        self.bufs = {}
        self.point_key = None  # (tape uid, x bytes) whose values/partials are in the point arrays
        self.views = {}  # tape uid -> (val, d1, d2, adj) views into bufs, dropped when bufs grow
        self.lin_owner = None  # tape uid whose LIN partials (constants) the d1 buffer holds


_local = _Local()


def local():
    return _local


def buffer(name, shape, dtype=np.float64, zero=False):
    """A work array of `shape`, reused by this thread. Contents undefined, except with
    zero=True: then the buffer is zero when allocated and its users must leave it zero."""
    size = 1
    for s in shape:
        size *= s
    bufs = _local.bufs
    a = bufs.get(name)
    if a is None or a.shape[0] < size or a.dtype != dtype:
        grow = 0 if a is None or a.dtype != dtype else 2 * a.shape[0]
        a = (np.zeros if zero else np.empty)(max(size, grow, 16), dtype=dtype)
        bufs[name] = a
        _local.views.clear()
        if name in ("val", "d1", "d2"):
            _local.point_key = None
            _local.lin_owner = None
    return a[:size].reshape(shape)


# Cached view tuples kept per thread: keys are per tape, and one-shot calls (jitad.hessian(f, x)
# in a loop) make a new tape each time, so beyond this size the oldest entry is dropped
MAX_VIEWS = 256


def cached(key, make):
    """make() -> tuple of views into this thread's buffers, cached under key until a buffer
    grows (then the views would point at released arrays) or MAX_VIEWS newer keys came."""
    views = _local.views
    v = views.get(key)
    if v is None:
        v = make()  # may itself add entries (a tape's point arrays)
        while len(views) >= MAX_VIEWS:
            del views[next(iter(views))]  # dicts keep insertion order: the oldest first
        views[key] = v
    return v


def point_arrays(uid, n_slots, n_edges, n_terms):
    """(val, d1, d2, adj) work arrays sized for one tape; cached per tape for small-call speed."""
    return cached(uid, lambda: (buffer("val", (n_slots,)), buffer("d1", (n_edges,)),
                                buffer("d2", (n_terms,)), buffer("adj", (n_slots,))))


def clear():
    """Release this thread's work arrays."""
    _local.bufs.clear()
    _local.views.clear()
    _local.point_key = None
    _local.lin_owner = None
