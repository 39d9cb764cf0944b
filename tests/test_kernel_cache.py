"""kernel_cache: Numba's on-disk cache is dropped when any kernel source changes."""
import os
import re

import jitad
from jitad import kernel_cache

PACKAGE = os.path.dirname(os.path.abspath(jitad.__file__))


def test_every_module_with_cached_kernels_is_a_kernel_source():
    # a module left out would keep stale compiled code of the kernels it calls from others
    # (direct_dense.py inlines run_sweeps' forward sweep, for one)
    cached = {name for name in os.listdir(PACKAGE) if name.endswith(".py")
              and re.search(r"cache\s*=\s*True", open(os.path.join(PACKAGE, name)).read())}
    assert cached, "no module with cache=True found: the search is wrong"
    assert cached <= set(kernel_cache.KERNEL_SOURCES), sorted(cached - set(
        kernel_cache.KERNEL_SOURCES))


def test_a_changed_source_removes_the_kernel_cache_files(tmp_path):
    (tmp_path / "sweeps.forward-47.py311.nbi").write_bytes(b"index")
    (tmp_path / "direct_dense.hessian-22.py311.1.nbc").write_bytes(b"code")
    (tmp_path / "unrelated.f-1.py311.nbi").write_bytes(b"kept")
    (tmp_path / kernel_cache._STAMP).write_text("an older hash")
    kernel_cache.check(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [kernel_cache._STAMP,
                                                           "unrelated.f-1.py311.nbi"]
    assert (tmp_path / kernel_cache._STAMP).read_text() == kernel_cache.source_hash()
    (tmp_path / "sweeps.forward-47.py311.nbi").write_bytes(b"index")
    kernel_cache.check(str(tmp_path))  # same sources: kept
    assert (tmp_path / "sweeps.forward-47.py311.nbi").exists()
