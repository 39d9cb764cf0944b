"""Refuse a dense result that cannot fit in memory before allocating it.

numpy's allocations are lazy on Linux: an (n, n) Hessian larger than memory is "allocated"
without error and the process is killed when the sweeps fill it in. So the dense results
(Hessian, multi-direction HVP, Jacobian) are sized up front and a MemoryError names the
alternatives instead.
"""
import os

# Bytes a dense result may take; None: the machine's physical memory (os.sysconf). Tests and
# users with tighter limits (containers, other work) may set it.
DENSE_LIMIT = None


# Results below this size are never refused (and cost no system call: small Hessians are hot).
_ALWAYS_OK = 1 << 28
_physical = []


def physical_memory():
    """Total physical memory in bytes, or None where the platform does not say (read once)."""
    if not _physical:
        try:
            _physical.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (AttributeError, ValueError, OSError):
            _physical.append(None)
    return _physical[0]


def check_dense(rows, cols, what):
    """Raise MemoryError when a float64 (rows, cols) array would exceed DENSE_LIMIT."""
    need = 8 * int(rows) * int(cols)
    if need <= _ALWAYS_OK and DENSE_LIMIT is None:
        return
    limit = DENSE_LIMIT if DENSE_LIMIT is not None else physical_memory()
    if limit is None or need <= limit:
        return
    hint = ("compute the rows you need with jitad.hessian(f, x, lazy=True) or "
            "tape.hvp(x, V), or a sparse Hessian (tape.sparse_hessian(x), "
            "jitad.hessian(f, x, sparse=True), f.sparse_hessian)"
            if "Hessian" in what else "compute the products you need with tape.jvp / tape.vjp")
    raise MemoryError(f"a dense {what} of shape ({rows}, {cols}) needs {need / 2 ** 30:.1f} GiB, "
                      f"more than the {limit / 2 ** 30:.1f} GiB limit (physical memory, or "
                      f"jitad.limits.DENSE_LIMIT); {hint}")
