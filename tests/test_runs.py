"""The run plan (jitad/runs.py) and the run-aware sweeps (jitad/run_sweeps.py).

The run sweeps must give bitwise the same values, partials, adjoints, tangents and HVPs as the
per-op sweeps
(they add in the same order), on random programs (hypothesis, with every run length allowed so
that short runs of every kind are exercised) and on the benchmark problems. Run detection is
checked on hand-made cases: broadcast operands, strides, self-reads, mixed codes, mat-vecs.
"""
import os
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jitad
from jitad import opcodes as oc
from jitad import run_sweeps, runs, sweeps
from test_properties import ALL_OPS, SETTINGS, floats, make_ctx, run

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "perf"))
import problems  # noqa: E402


def plan_of(tape, min_run=runs.MIN_RUN):
    plan = runs.build(tape.code, tape.param, tape.eptr, tape.arg, tape.coef, tape.tptr,
                      tape.n_inputs, tape.out, min_run=min_run)
    runs.check(plan, tape.code, tape.eptr, tape.arg, tape.n_inputs)
    return plan


def sweep_both(tape, plan, x, w):
    """(per-op, run) results: (val, d1, d2, adj) of each sweep at x for output weights w (the
    kernels read the unsigned index views, as the Tape passes them)."""
    results = []
    for use_plan in (False, True):
        val = np.full(tape.n_slots, np.nan)
        d1 = np.full(tape.arg.shape[0], np.nan)
        d2 = np.full(tape.ta.shape[0], np.nan)
        adj = np.full(tape.n_slots, np.nan)
        args = (tape.code, tape.param, tape._ueptr, tape._uarg, tape.coef, tape._utptr,
                tape.n_inputs, x, True)
        if use_plan:
            run_sweeps.forward(*args, False, val, d1, d2, *plan.arrays)
            run_sweeps.reverse1(tape._ueptr, tape._uarg, d1, tape.n_inputs, tape._uout, w, adj,
                                tape.code, *plan.arrays)
        else:
            sweeps.forward(*args, val, d1, d2)
            sweeps.reverse1(tape._ueptr, tape._uarg, d1, tape.n_inputs, tape._uout, w, adj)
        results.append((val, d1, d2, adj))
    return results


def assert_same_sweeps(tape, plan, x, w=None):
    w = np.ones(tape.n_outputs) if w is None else w
    ref, got = sweep_both(tape, plan, x, w)
    for name, a, b in zip(("values", "d1", "d2", "adjoints"), ref, got):
        np.testing.assert_array_equal(b, a, err_msg=f"run sweep {name} differ from per-op")
    # the Hessian-vector product over the runs: bitwise the per-op one
    _, d1, d2, adj = ref
    v = np.cos(np.arange(tape.n_inputs) * 1.3 + 0.4)
    hv = []
    for use_plan in (False, True):
        dot, bar = np.full(tape.n_slots, np.nan), np.full(tape.n_slots, np.nan)
        args = (tape._ueptr, tape._uarg, d1, tape._utptr, tape._uta, tape._utb, d2,
                tape.n_inputs, adj, v, dot, bar)
        if use_plan:
            run_sweeps.hvp1(*args, tape.code, *plan.arrays)
        else:
            sweeps.hvp1(*args)
        hv.append((dot, bar))
    for name, a, b in zip(("tangents", "second-order adjoints"), *hv):
        np.testing.assert_array_equal(b, a, err_msg=f"run HVP sweep {name} differ from per-op")
    # every run split into chunks, as threads sweep them on large tapes: the same, bitwise
    for n_parts in (2, 3):
        chunked = [np.full(a.shape[0], np.nan) for a in ref[:3]]
        run_sweeps.forward_parallel(tape.code, tape.param, tape._ueptr, tape._uarg, tape.coef,
                                    tape._utptr, tape.n_inputs, x, True, False, *chunked,
                                    *plan.arrays, runs.SKIP_NONE, n_parts, 1)
        for name, a, b in zip(("values", "d1", "d2"), ref, chunked):
            np.testing.assert_array_equal(b, a, err_msg=f"chunked run sweep {name} differ")
        adj = np.full(tape.n_slots, np.nan)
        run_sweeps.reverse1_parallel(tape._ueptr, tape._uarg, ref[1], tape.n_inputs, tape._uout,
                                     w, adj, tape.code, *plan.arrays, n_parts, 1)
        np.testing.assert_array_equal(adj, ref[3], err_msg="chunked reverse sweep differs")
    # value-only forward as well
    val = np.full(tape.n_slots, np.nan)
    run_sweeps.forward(tape.code, tape.param, tape._ueptr, tape._uarg, tape.coef, tape._utptr,
                       tape.n_inputs, x, False, False, val, val[:0], val[:0], *plan.arrays)
    np.testing.assert_array_equal(val, ref[0])
    # with the LIN partials left in d1 by the first sweep, a second one at another point
    # writes only the others, and d1 ends up as a full sweep's at that point
    d1 = ref[1].copy()
    d2 = np.full(tape.ta.shape[0], np.nan)
    x2 = x + 0.25
    run_sweeps.forward(tape.code, tape.param, tape._ueptr, tape._uarg, tape.coef, tape._utptr,
                       tape.n_inputs, x2, True, True, val, d1, d2, *plan.arrays)
    full = [np.full(tape.n_slots, np.nan), np.full(tape.arg.shape[0], np.nan),
            np.full(tape.ta.shape[0], np.nan)]
    sweeps.forward(tape.code, tape.param, tape._ueptr, tape._uarg, tape.coef, tape._utptr,
                   tape.n_inputs, x2, True, *full)
    for name, a, b in zip(("values", "d1", "d2"), full, (val, d1, d2)):
        np.testing.assert_array_equal(b, a, err_msg=f"{name} with the LIN partials kept")


def kinds(plan):
    """[(kind, length)] of the plan's segments."""
    return [(int(k), int(plan.seg[r + 1] - plan.seg[r])) for r, k in enumerate(plan.kind)]


# ------------------------------------------------------------------ run detection
def test_elementwise_chain_is_one_run_per_append():
    x = np.linspace(0.1, 1.0, 20)
    tape = jitad.record(lambda x: np.sum(np.sin(x) * 2.0 + 1.0), x)
    plan = plan_of(tape)
    # sin, 2 * s + 1 (the optimiser's loop-sum pass absorbs * 2 into + 1), sum
    assert kinds(plan) == [(runs.ELEM, 20)] * 2 + [(runs.BLOCK, 1)]
    assert (plan.stride[:2, 0] == 1).all()
    shared = runs.SAME_PARAM | runs.SAME_COEF
    assert plan.flags[1] & shared == shared  # shared p, c
    assert list(plan.const[1, :2]) == [1.0, 2.0]
    # in the reverse sweep each run makes the first contributions to its operands' slots, and
    # the outputs of all but the sum (the output, seeded first) get theirs so
    F, C = runs.FIRST0, runs.COVERED
    assert [int(f) & (F | runs.FIRST1 | C) for f in plan.flags] == [F | C, F | C, F]
    assert_same_sweeps(tape, plan, x + 0.3)


def test_broadcast_operand_has_stride_zero():
    x = np.linspace(0.1, 1.0, 16)
    tape = jitad.record(lambda x: np.sum(x * x[3] - x[0]), x)
    plan = plan_of(tape)
    mul = [r for r in range(len(plan)) if plan.kind[r] == runs.ELEM
           and tape.code[plan.seg[r]] == oc.binary_code("multiply", oc.VV)]
    assert len(mul) == 1
    r = mul[0]
    assert list(plan.stride[r]) == [1, 0] and plan.base[r, 1] == 3
    assert_same_sweeps(tape, plan, np.cos(x))


def test_strided_operands_are_not_runs():
    """x[::2] reads every other slot: not contiguous, swept op by op."""
    x = np.linspace(0.1, 1.0, 32)
    tape = jitad.record(lambda x: np.sum(np.exp(x[::2])), x)
    plan = plan_of(tape)
    assert plan.kind[0] == runs.OPS and plan.seg[1] - plan.seg[0] == 16
    assert_same_sweeps(tape, plan, x * 0.5)


def test_mixed_codes_from_a_scalar_loop_have_no_runs():
    # (as recorded: the optimiser's scheduling pass would reorder it into runs)
    p = problems.rosenbrock_problem(200, loop=True)
    tape = jitad.record(p.func, *p.args, optimize=False)
    assert len(tape) >= runs.MIN_TAPE
    plan = plan_of(tape)
    assert not plan.has_runs() and len(plan) == 1
    assert tape._runs() is None  # the tape keeps the per-op sweeps
    assert_same_sweeps(tape, plan, p.x0)


def test_run_reading_its_own_outputs_is_split():
    """exp(exp(x)) with x the whole input: the second append reads slots n..2n-1 right after
    the first one's operands 0..n-1, so operand steps continue; the run must be cut."""
    x = np.linspace(-1.0, 0.5, 20)
    tape = jitad.record(lambda x: np.sum(np.exp(np.exp(x))), x)
    plan = plan_of(tape)
    assert kinds(plan)[:2] == [(runs.ELEM, 20), (runs.ELEM, 20)]
    assert_same_sweeps(tape, plan, x[::-1].copy())


def test_cumsum_chain_is_swept_op_by_op():
    x = np.linspace(-1.0, 0.5, 40)
    tape = jitad.record(lambda x: np.sum(np.sin(np.cumsum(x))), x)
    plan = plan_of(tape, min_run=2)
    runs.check(plan, tape.code, tape.eptr, tape.arg, tape.n_inputs)
    assert_same_sweeps(tape, plan, np.sin(x))


def test_matvec_is_a_block_run_with_stride_zero():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 7))
    w = rng.standard_normal(7)
    tape = jitad.record(lambda w: np.sum(np.tanh(X @ w)), w)
    plan = plan_of(tape)
    assert kinds(plan)[0] == (runs.BLOCK, 30)
    assert plan.stride[0, 0] == 0 and plan.base[0, 0] == 0
    assert_same_sweeps(tape, plan, np.cos(w))


def test_row_sums_are_a_block_run_with_stride_of_a_row():
    x = np.linspace(-1.0, 0.5, 24)
    tape = jitad.record(lambda x: np.sum(np.sin(x).reshape(6, 4).sum(axis=1) ** 2), x)
    plan = plan_of(tape)
    assert (runs.BLOCK, 6) in kinds(plan)
    r = kinds(plan).index((runs.BLOCK, 6))
    assert plan.stride[r, 0] == 4
    assert_same_sweeps(tape, plan, x * 0.7)


def test_short_runs_are_swept_op_by_op():
    x = np.linspace(0.1, 1.0, 4)
    tape = jitad.record(lambda x: np.sum(np.sin(x) * np.cos(x)), x)
    assert not plan_of(tape).has_runs()          # runs of 4 < MIN_RUN
    plan = plan_of(tape, min_run=1)
    assert plan.has_runs()
    assert_same_sweeps(tape, plan, x + 1.0)


def test_non_uniform_params_and_coefficients():
    """Per-op constants (y * z with y data, c ** x with c data) are read per op."""
    x = np.linspace(0.1, 1.0, 20)
    y = np.linspace(0.5, 3.0, 20)
    tape = jitad.record(lambda x: np.sum(y * x + y ** x + x ** y), x, optimize=False)
    plan = plan_of(tape)
    assert plan.has_runs()
    E = np.diff(tape.eptr)
    lin = [r for r in range(len(plan)) if tape.code[plan.seg[r]] == oc.LIN
           and plan.kind[r] == runs.ELEM and E[plan.seg[r]] == 1]
    assert lin and not plan.flags[lin[0]] & runs.SAME_COEF
    assert_same_sweeps(tape, plan, x * 1.1)


def test_empty_and_constant_tapes():
    tape = jitad.record(lambda x: x * 0.0 + 3.0, np.zeros(0))
    plan = plan_of(tape)
    assert len(plan) == 0 or not plan.has_runs()
    x = np.linspace(0.1, 1.0, 10)
    tape = jitad.record(lambda x: jitad.stack([x[0] * 0.0 + c for c in range(12)]), x)
    assert_same_sweeps(tape, plan_of(tape, min_run=1), x, np.arange(12.0))


# ------------------------------------------------------------------ tape dispatch
def test_small_tapes_keep_the_per_op_sweeps():
    p = problems.rosenbrock_problem(20)  # runs of 19 ops
    tape = jitad.record(p.func, *p.args)
    assert len(tape) < runs.MIN_TAPE and plan_of(tape).has_runs()
    assert tape._runs() is None


def test_first_sweep_is_per_op_and_the_second_builds_the_plan():
    # a one-shot tape never builds its plan; a replayed one gets it at the second forward sweep,
    # with bitwise the same results either way
    p = problems.logistic_problem(400, 9)
    x0, x1 = p.points(2)
    for method in ("value_and_gradient", "forward", "hessian"):
        tape = jitad.record(p.func, *p.args)
        first = getattr(tape, method)(x0)
        assert tape._plan is False
        getattr(tape, method)(x1)
        assert tape._plan is not False and tape._plan is not None
        again = getattr(tape, method)(x0)
        for a, b in zip(np.atleast_1d(first) if method != "value_and_gradient" else first,
                        np.atleast_1d(again) if method != "value_and_gradient" else again):
            np.testing.assert_array_equal(a, b)
    tape = jitad.record(p.func, *p.args)
    H = jitad.hessian(p.func, x0)  # a one-shot call: dense rows, no plan (summed in another
    # order than the replayed tape's interaction Hessian: equal up to rounding)
    np.testing.assert_allclose(H, tape.hessian(x0), rtol=1e-13, atol=1e-13 * np.abs(H).max())
    assert np.array_equal(H, H.T)


def test_tape_uses_the_plan_and_matches_hand_written_gradients():
    for p in (problems.rosenbrock_problem(300), problems.logistic_problem(400, 9)):
        tape = jitad.record(p.func, *p.args)
        assert tape._runs() is not None and tape._runs().coverage() > 0.99
        for x in p.points(3):
            f, g = tape.value_and_gradient(x)
            np.testing.assert_allclose(f, p.ref_f(x, *p.ref_args), rtol=1e-12)
            np.testing.assert_allclose(g, p.ref_grad(x, *p.ref_args), rtol=1e-10,
                                       atol=1e-12 * np.abs(g).max())
            np.testing.assert_array_equal(tape.forward(x), [f])
            assert_same_sweeps(tape, tape._runs(), x)
        # second-order sweeps after a run-aware gradient (which may leave no cached point)
        x = p.x0
        tape.gradient(x)
        v = np.sin(np.arange(p.n) + 1.0)
        h = 1e-5
        fd = (p.ref_grad(x + h * v, *p.ref_args) - p.ref_grad(x - h * v, *p.ref_args)) / (2 * h)
        np.testing.assert_allclose(tape.hvp(x, v), fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


def test_tapes_sharing_the_point_arrays_keep_their_own_linear_partials():
    # The LIN partials stay in this thread's d1 between gradients of one tape; other tapes
    # (with and without a run plan, guarded or not) write the same buffer in between.
    a, b = problems.rosenbrock_problem(300), problems.logistic_problem(400, 9)
    small = problems.rosenbrock_problem(20)
    ta, tb, ts = (jitad.record(p.func, *p.args) for p in (a, b, small))

    def branchy(x):
        return np.sum((3.0 * x) ** 2) if x[0] > 0 else np.sum(x)

    tg = jitad.record(branchy, np.linspace(0.5, 1.5, 1200))
    assert ta._runs() is not None and tb._runs() is not None and ts._runs() is None
    assert tg.n_guards == 1 and tg._runs() is not None
    for k in range(3):
        for p, tape in ((a, ta), (b, tb), (small, ts)):
            x = p.points(3)[k]
            ref = p.ref_grad(x, *p.ref_args)
            np.testing.assert_allclose(tape.gradient(x), ref, rtol=1e-10,
                                       atol=1e-10 * np.abs(ref).max())
        xg = np.linspace(0.5, 1.5, 1200) + 0.1 * k
        np.testing.assert_allclose(tg.gradient(xg), 18.0 * xg, rtol=1e-14)


def test_pack_unpacks_to_the_tape_and_plan_arrays():
    # the one-call kernels read the tape through its pack (packs.py): every view unpack
    # slices out must be the array the other kernels read, dtype included
    from jitad import packs
    p = problems.logistic_problem(400, 9)
    tape = jitad.record(p.func, *p.args)
    plan = tape._runs()
    pack = packs.Pack(tape, plan)
    got = packs.unpack(*pack.arrays)
    free = plan.value_free(tape.code, tape.eptr, tape.arg, tape.n_inputs)
    want = (tape.n_inputs, tape.code, tape.param, tape._ueptr, tape._uarg, tape.coef,
            tape._utptr, tape._uta, tape._utb, tape._uout, *plan.arrays,
            free if free.shape[0] else np.zeros(len(plan), np.uint8), np.ones(1))
    assert got[0] == want[0] and len(got) == len(want)
    for a, b in zip(got[1:], want[1:]):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert pack.skips == bool(free.shape[0])
    # without a plan (the per-op value_and_gradient of small tapes): empty plan arrays
    got = packs.unpack(*packs.Pack(tape).arrays)
    assert got[0] == tape.n_inputs and got[10].tolist() == [0]
    for a, b in zip(got[1:10], want[1:10]):
        np.testing.assert_array_equal(a, b)
    assert all(a.shape[0] == 0 for a in got[11:17]) and got[17].tolist() == [1.0]


def test_per_op_gradient_of_a_replayed_tape_takes_its_pack():
    # a small tape without a plan: the first gradient sweeps in two calls, the later ones in
    # one (sweeps.value_and_gradient on the tape's pack), bitwise the same; the point is kept
    p = problems.rosenbrock_problem(20, loop=True)
    tape = jitad.record(p.func, *p.args)
    assert len(tape) < runs.MIN_TAPE
    x0, x1 = p.points(2)
    first = tape.value_and_gradient(x0)
    assert tape._ops_pack is None and tape._plan is False
    tape.gradient(x1)
    assert tape._ops_pack and tape._plan is None
    again = tape.value_and_gradient(x0)
    assert first[0] == again[0]
    np.testing.assert_array_equal(first[1], again[1])
    np.testing.assert_allclose(again[1], p.ref_grad(x0, *p.ref_args), rtol=1e-12)
    assert jitad.workspace.local().point_key[0] == tape._uid
    np.testing.assert_array_equal(tape.forward(x0), [first[0]])
    # the one-direction HVP on the same pack (sweeps.hvp_at), at a new and at the cached
    # point, bitwise the three-call sweeps of a fresh tape's first HVP
    v = np.sin(np.arange(p.n) + 0.5)
    fresh = jitad.record(p.func, *p.args)
    ref = fresh.hvp(x1, v)
    assert fresh._plan is False
    np.testing.assert_array_equal(tape.hvp(x1, v), ref)  # x0's point is cached: a new one
    np.testing.assert_array_equal(tape.hvp(x1, v), ref)  # now cached
    tape.gradient(x0)
    np.testing.assert_array_equal(tape.hvp(x0, v), fresh.hvp(x0, v))


def test_forward_of_a_replayed_tape_is_one_call_on_its_pack():
    # tape.forward from the plan's decision on: sweeps.value / run_sweeps.value on the tape's
    # pack, bitwise the first (per-op) sweep; guarded tapes keep _forward and its guard check
    for p in (problems.rosenbrock_problem(20, loop=True), problems.rosenbrock_problem(300)):
        tape = jitad.record(p.func, *p.args)
        x0, x1, x2 = p.points(3)
        y0 = tape.forward(x0)
        assert tape._value_call is None
        tape.forward(x1)
        tape.forward(x2)
        assert tape._value_call and (tape._plan is None) == (p.n == 20)
        np.testing.assert_array_equal(tape.forward(x0), y0)
        np.testing.assert_allclose(y0, [p.ref_f(x0, *p.ref_args)], rtol=1e-13)

    def branchy(x):
        return np.sum((3.0 * x) ** 2) if x[0] > 0 else np.sum(x)

    tape = jitad.record(branchy, np.linspace(0.5, 1.5, 1200))
    for k in range(3):
        xk = np.linspace(0.5, 1.5, 1200) + 0.1 * k
        np.testing.assert_allclose(tape.forward(xk), [np.sum((3.0 * xk) ** 2)], rtol=1e-13)
    assert tape._value_call is False
    with pytest.raises(jitad.BranchChangedError):
        tape.forward(-np.linspace(0.5, 1.5, 1200))


@pytest.mark.parametrize("n", [1500, 9000])
def test_gradient_skips_the_runs_only_the_value_needs(n):
    # Rosenbrock's final sum and the sum of squares feeding it (which absorbed the scaling by
    # 100) are value-free (only LIN ops read them): once the plan is
    # built and d1 holds its LIN partials, tape.gradient skips them (and leaves no cached
    # point: val misses their values), with bitwise value_and_gradient's gradient; at
    # n = 9000 the tape has runs.PARALLEL_OPS ops and more (the threads' forward sweep)
    p = problems.rosenbrock_problem(n)
    tape = jitad.record(p.func, *p.args)
    assert (len(tape) >= runs.PARALLEL_OPS) == (n == 9000)
    x0, x1, x2 = p.points(3)
    tape.gradient(x0)
    tape.gradient(x1)
    plan = tape._runs()
    assert plan.value_free(tape.code, tape.eptr, tape.arg, tape.n_inputs).sum() == 2
    for x in (x2, x0, x2):
        g = tape.gradient(x)
        assert jitad.workspace.local().point_key is None  # nothing cached after a skip
        y, g_ref = tape.value_and_gradient(x)
        np.testing.assert_array_equal(g, g_ref)
        np.testing.assert_allclose(g, p.ref_grad(x, *p.ref_args), rtol=1e-10,
                                   atol=1e-12 * np.abs(g).max())
        assert y == tape.forward(x)[0]
        tape.gradient(x)  # then the value and the Hessian-vector product at the same point
        np.testing.assert_array_equal(tape.forward(x), [y])
        Hx = tape.hessian(x) @ x
        np.testing.assert_allclose(tape.hvp(x, x), Hx, rtol=1e-12, atol=1e-12 * np.abs(Hx).max())


def test_gradient_of_a_guarded_tape_keeps_the_values_its_guards_read():
    # the guard reads sum(x), a value-free run for the derivatives: it is swept all the same
    def f(x):
        return np.sum(2.0 * x) if np.sum(x) > 0 else np.sum(x * x)

    x = np.linspace(0.5, 1.5, 1200)
    tape = jitad.record(f, x)
    assert tape.n_guards == 1
    for k in range(3):
        np.testing.assert_array_equal(tape.gradient(x + 0.1 * k), np.full(1200, 2.0))
    assert tape._runs() is not None
    with pytest.raises(jitad.BranchChangedError):
        tape.gradient(-x)


PERF_PROBLEMS = {  # perf/problems.py at sizes that keep the suite fast (10^5 -> 2 * 10^4)
    "rosenbrock numpy": lambda: problems.rosenbrock_problem(20_000),
    "rosenbrock numpy small": lambda: problems.rosenbrock_problem(100),
    "rosenbrock scalar loop": lambda: problems.rosenbrock_problem(100, loop=True),
    "logistic regression": lambda: problems.logistic_problem(),
    "logistic regression tall": lambda: problems.logistic_problem(20_000, 50),
    "lennard-jones": lambda: problems.lennard_jones_problem(12),
}


@pytest.mark.parametrize("name", sorted(PERF_PROBLEMS))
def test_perf_problems_match_per_op_sweeps(name):
    p = PERF_PROBLEMS[name]()
    tape = jitad.record(p.func, *p.args)
    plan = plan_of(tape)
    for x in p.points(2):
        assert_same_sweeps(tape, plan, x)


# ------------------------------------------------------------------ random programs
@st.composite
def long_programs(draw):
    """Programs of test_properties.py over longer vectors (runs of up to 40 ops)."""
    n = draw(st.integers(1, 40))
    names = sorted(ALL_OPS)
    instr = st.tuples(st.sampled_from(names), st.integers(0, 50), st.integers(0, 50),
                      st.floats(-1.5, 1.5, allow_nan=False))
    prog = draw(st.lists(instr, min_size=1, max_size=7))
    x = np.array(draw(st.lists(floats, min_size=n + 1, max_size=n + 1)))
    seed = draw(st.integers(0, 2 ** 16))
    min_run = draw(st.sampled_from([1, 2, runs.MIN_RUN]))
    return prog, n, x, seed, min_run


@SETTINGS
@given(long_programs())
def test_random_programs_match_per_op_sweeps(case):
    prog, n, z, seed, min_run = case
    ctx = make_ctx(n, seed)

    def f(x, s):
        with np.errstate(all="ignore"):
            return run(prog, x, s, "vector", ctx)

    with np.errstate(all="ignore"):
        tape = jitad.record(f, z[:n], z[n])
    plan = plan_of(tape, min_run)
    w = np.cos(np.arange(tape.n_outputs) * 0.9 + 0.2)
    with np.errstate(all="ignore"):
        assert_same_sweeps(tape, plan, z + 0.05 * np.sin(np.arange(n + 1.0)), w)


def test_term_patterns_have_no_reversed_pairs():
    # run_sweeps._elem_hvp reads a two-operand term (p, q) with p != q as (0, 1)
    for pattern in oc.TERM_PATTERN:
        for p, q in pattern or ():
            assert p <= q


def per_op_hvp(tape, x, v, w):
    """H_w @ v by the per-op sweeps into fresh arrays (the reference of the run kernels)."""
    val, adj, dot, bar = (np.full(tape.n_slots, np.nan) for _ in range(4))
    d1, d2 = np.full(tape.arg.shape[0], np.nan), np.full(tape.ta.shape[0], np.nan)
    sweeps.forward(tape.code, tape.param, tape._ueptr, tape._uarg, tape.coef, tape._utptr,
                   tape.n_inputs, x, True, val, d1, d2)
    sweeps.reverse1(tape._ueptr, tape._uarg, d1, tape.n_inputs, tape._uout, w, adj)
    sweeps.hvp1(tape._ueptr, tape._uarg, d1, tape._utptr, tape._uta, tape._utb, d2,
                tape.n_inputs, adj, v, dot, bar)
    return bar[:tape.n_inputs].copy()


def test_one_call_hvp_at_new_and_cached_points_matches_the_per_op_sweeps():
    # tape.hvp of a tape with a run plan: forward (unless the point is cached), reverse and
    # HVP in one call (run_sweeps.hvp_at), bitwise the per-op sweeps; a bigger tape in between
    # grows the work buffers (the cached argument tuples must follow), and a two-output tape
    # takes its weights
    p, big = problems.rosenbrock_problem(1500), problems.rosenbrock_problem(6000)
    tape, tb = jitad.record(p.func, *p.args), jitad.record(big.func, *big.args)

    def two(x):
        return np.sum(x[1:] * x[:-1]) ** 2, np.sum(np.sin(x) * x)

    t2 = jitad.record(two, p.x0)
    x0, x1 = p.points(2)
    for t, pts in ((tape, (x0, x1)), (tb, big.points(2)), (t2, (x0, x1))):
        for x in pts:
            t.gradient(x) if t.n_outputs == 1 else t.forward(x)
            t.forward(x)
        assert t._gradient_args()
    v = np.cos(np.arange(1500) * 0.7)
    vb = np.cos(np.arange(6000) * 0.3)
    one, w2 = np.ones(1), np.array([0.5, -2.0])
    steps = [(tape, x0, v, one), (tape, x0, v, one), ("vg", x1, None, None),
             (tape, x1, v, one), (tb, big.x0, vb, one), (tape, x0, v, one),
             (t2, x1, v, w2), (t2, x1, -v, w2), (tape, x1, v, one)]
    for t, x, d, w in steps:
        if t == "vg":
            tape.value_and_gradient(x)  # leaves x cached: the next HVP skips the forward sweep
            continue
        got = t.hvp(x, d, w if t is t2 else None)
        np.testing.assert_array_equal(got, per_op_hvp(t, x, d, w))


def test_weighted_sums_split_over_threads_keep_their_weights():
    # a sum with distinct coefficients (c @ y): the chunked reverse sweep reads each edge's
    # own partial; 4-lane sums with every remainder of 4
    rng = np.random.default_rng(5)
    for n in (37, 38, 39, 40):
        c = rng.normal(size=n)
        tape = jitad.record(lambda x: c @ np.sin(x) ** 2, rng.normal(size=n))
        plan = plan_of(tape, 1)
        assert runs.BLOCK in plan.kind
        assert_same_sweeps(tape, plan, rng.normal(size=n))


def test_stretches_of_runs_are_swept_chunk_by_chunk():
    """ELEM runs of one op count whose operands are the outputs of the runs before them, in
    step, continue their stretch (runs.FUSED) and the forward sweeps take them
    runs.FUSE_CHUNK ops at a time, every run's chunk in turn: bitwise the per-op sweeps on a
    tape longer than a chunk. A run reading one element of an earlier run's outputs (stride
    0, here the last one: computed in the last chunk) starts a new stretch."""
    n = 2 * runs.FUSE_CHUNK + 300
    x = np.linspace(-1.0, 1.0, n)
    tape = jitad.record(problems.rosenbrock, x)
    plan = plan_of(tape)
    # x[:-1]**2, x[1:] - it, its square, 1 - x[:-1], its square, 100 a + b; the sum
    assert [bool(f & runs.FUSED) for f in plan.flags] == [False] + [True] * 5 + [False]
    assert_same_sweeps(tape, plan, x[::-1].copy())

    def broadcast(x):
        s = np.sin(x)
        return np.sum(np.cos(s) * s[-1])

    tape = jitad.record(broadcast, x)
    plan = plan_of(tape)
    assert kinds(plan)[:3] == [(runs.ELEM, n)] * 3  # sin, cos, multiply
    assert [bool(f & runs.FUSED) for f in plan.flags[:3]] == [False, True, False]
    assert_same_sweeps(tape, plan, x * 0.7)
