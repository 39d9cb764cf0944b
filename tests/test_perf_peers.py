"""perf/bench_peers.py: its hand-written ceilings are right, its tables compute the right ratios,
and a small run (jitad and the ceiling only, no peers needed) produces the report."""
import os
import subprocess
import sys

import numpy as np
import pytest

PERF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "perf")
sys.path.insert(0, PERF)

import jitad  # noqa: E402
import peer_table  # noqa: E402
from peer_problems import cube_case, lj_case, logistic_case, rosenbrock_case  # noqa: E402

from fdcheck import assert_fd_close, fd_hessian  # noqa: E402


def small_cases():
    return [rosenbrock_case(7), rosenbrock_case(6, loop=True), logistic_case(5, m=40),
            lj_case(4), cube_case(9)]


@pytest.mark.parametrize("case", small_cases(), ids=lambda c: c.key)
def test_ceilings_match_jitad_and_finite_differences(case):
    p, c = case.p, case.p.ref_args
    x = p.points(3)[2]
    rng = np.random.default_rng(0)
    v = rng.standard_normal(case.n)
    H_ref = case.ref_hess(x, *c)
    # the hand-written Hessian against jitad's tape (an independent derivation of the same H)
    H = jitad.record(case.flat_func(), x).hessian(x)
    np.testing.assert_allclose(H_ref, H, rtol=1e-10, atol=1e-10 * np.abs(H).max())
    np.testing.assert_allclose(H_ref, H_ref.T, rtol=0, atol=1e-14 * np.abs(H_ref).max())
    # and against finite differences of the plain NumPy function
    assert_fd_close(H_ref, fd_hessian(case.flat_func(), x), rtol=1e-6, atol=1e-6 * np.abs(H).max())
    # the hand-written HVP against central differences of the hand-written gradient
    h = 1e-6
    fd = (p.ref_grad(x + h * v, *c) - p.ref_grad(x - h * v, *c)) / (2 * h)
    hv = case.ref_hvp(x, v, *c)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())
    np.testing.assert_allclose(hv, H_ref @ v, rtol=1e-10, atol=1e-10 * np.abs(hv).max())
    # value and gradient dialects agree with the NumPy function
    assert np.isclose(p.ref_f(x, *c), float(np.asarray(case.flat_func()(x))), rtol=1e-12)


def test_ratios_and_cells():
    S = peer_table.Stats
    row = peer_table.Row("p", 3, "hessian")
    row.cells = {"jitad": S(2e-6, 1e-6, 3e-6, 5, 10), "njit": S(1e-6, 1e-6, 1e-6, 5, 10),
                 "JAX": S(8e-6, 7e-6, 9e-6, 5, 10), "torch": S(4e-6, 4e-6, 5e-6, 5, 10),
                 "CasADi gcc": "skipped: no gcc"}
    q, peer, c = peer_table.ratios(row)
    assert (q, peer, c) == (0.5, "torch", 2.0)
    text = peer_table.render([row])
    assert "### hessian" in text and "2.00 (1.00-3.00)" in text and "skipped: no gcc" in text
    assert "0.50 (torch)" in text
    row.cells = {"jitad": "skipped"}
    assert peer_table.ratios(row) == (None, None, None)


def test_measure_counts_calls():
    calls = []
    st = peer_table.measure(lambda a: calls.append(a), [(1,), (2,)], target=0.01, batches=3)
    assert st.lo <= st.median <= st.hi and st.batches == 3 and st.per_batch >= 1
    assert set(calls) == {1, 2}


def test_small_run_writes_report(tmp_path):
    # the command line in a child process, as a user runs it (jitad and the ceiling only, so no
    # peer needs to be installed)
    out = tmp_path / "RESULTS.md"
    cmd = [sys.executable, os.path.join(PERF, "bench_peers.py"), "--quick", "--libs",
           "jitad,njit", "--only", "rosenbrock-numpy-10,lj-10", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          cwd=os.path.dirname(PERF))
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert text == proc.stdout.rstrip("\n") + "\n"
    for heading in ("## value", "## gradient", "## Hessian-vector product", "## dense Hessian",
                    "## One-time setup"):
        assert heading in text
    assert "lennard-jones 4 particles" not in text and "lennard-jones 10 particles" in text
    assert "rosenbrock numpy | 100 |" not in text   # a full key selects that case only
    assert "Made by `python perf/bench_peers.py --quick --libs jitad,njit" in text
    assert "fresh process" not in text   # latency only runs when selected
