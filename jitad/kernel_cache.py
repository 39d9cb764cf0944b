"""Keep Numba's on-disk cache of the sweeps coherent.

Numba invalidates a cached function only when its own source file changes, not when an @njit
function it calls from another module does: an edit to rules.py or opcodes.py would leave a
stale compiled `sweeps.forward` in the cache. So a hash of the kernel sources is stored next to
the cache, and on a mismatch the kernels' cache files are removed before they are loaded.
Unrelated edits (tape.py, the front end) do not touch the cache. When the package directory is
read-only, Numba itself falls back to a user-wide cache directory; the sources cannot change
there, so nothing needs checking.
"""
import hashlib
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
# every module with cached kernels, and those they import kernels or constants from
# (tests/test_kernel_cache.py checks the first part)
KERNEL_SOURCES = ("opcodes.py", "rules.py", "sweeps.py", "guard_sweeps.py",
                  "interaction_sweeps.py", "tape_check.py", "nested_kernels.py", "sparsity.py",
                  "coloring.py", "direct.py", "optkernels.py", "runs.py", "run_sweeps.py",
                  "direct_dense.py", "dense_out.py", "recorder.py", "packs.py")
_STAMP = "jitad-kernels.stamp"


def source_hash():
    h = hashlib.sha256()
    for name in KERNEL_SOURCES:
        with open(os.path.join(_HERE, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def check(cache_dir=os.path.join(_HERE, "__pycache__")):
    """Remove the kernels' cache files in cache_dir when the kernel sources changed."""
    try:
        stamp_path = os.path.join(cache_dir, _STAMP)
        digest = source_hash()
        try:
            with open(stamp_path) as f:
                if f.read() == digest:
                    return
        except OSError:
            pass
        if not os.path.isdir(cache_dir):
            return
        prefixes = tuple(name[:-3] + "." for name in KERNEL_SOURCES)
        for name in os.listdir(cache_dir):
            if name.startswith(prefixes) and name.endswith((".nbi", ".nbc")):
                os.remove(os.path.join(cache_dir, name))
        with open(stamp_path, "w") as f:
            f.write(digest)
    except OSError:
        pass  # read-only install: Numba uses its user-wide cache, sources cannot change
