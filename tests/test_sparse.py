"""Sparse derivatives: patterns, colourings, compressed values, the per-tape plan, the API.

References: patterns against the nonzeros of the dense derivatives (the dense sweeps are tested
against finite differences elsewhere) on random structured programs; colourings checked by
their defining property directly (brute force over paths); values against the dense path and
against finite differences of plain numpy code.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitad
from jitad import coloring, direct, sparse, sparsity
from jitad.threads import parallel
from fdcheck import fd_hessian, fd_jacobian

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
RNG = np.random.default_rng(7)


# ------------------------------------------------------------------ random structured programs
KINDS = ["unary", "mul", "lin_nl", "linear", "triple", "div", "sum_linear", "floor", "sq_sum"]
UNARY = [np.sin, np.exp, np.square, np.tanh]


def _term(x, kind, i, j, k, c):
    if kind == "unary":
        return UNARY[k % len(UNARY)](x[i])
    if kind == "mul":
        return x[i] * x[j]
    if kind == "lin_nl":
        return np.sin(c * x[i] + x[j])  # c + 1 != 0: no cancellation when i == j
    if kind == "linear":
        return c * x[i] + x[j]
    if kind == "triple":
        return x[i] * x[j] * x[k]
    if kind == "div":
        return x[i] / (2.0 + x[j] ** 2)
    if kind == "sum_linear":
        return c * np.sum(x)
    if kind == "floor":
        return x[i] * np.floor(x[j])  # floor(x[j]) == 1 at the test points; d/dx[j] == 0
    return (x[i] + x[j] + x[k]) ** 2


@st.composite
def programs(draw):
    n = draw(st.integers(2, 9))
    idx = st.integers(0, n - 1)
    terms = draw(st.lists(st.tuples(st.sampled_from(KINDS), idx, idx, idx,
                                    st.sampled_from([0.5, 2.0, -3.0])), min_size=1, max_size=8))
    seed = draw(st.integers(0, 2 ** 16))
    x = np.random.default_rng(seed).uniform(1.1, 1.9, n)
    return n, terms, x


def _scalar(terms):
    return lambda x: sum(_term(x, *t) for t in terms)


def _vector(terms):
    return lambda x: jitad.stack([_term(x, *t) for t in terms])


@SETTINGS
@given(programs())
def test_hessian_pattern_is_the_dense_nonzeros(prog):
    n, terms, x = prog
    tape = jitad.record(_scalar(terms), x)
    pattern = tape.hessian_sparsity()
    assert pattern.shape == (n, n)
    np.testing.assert_array_equal(pattern.toarray(), tape._dense_hessian(x, None) != 0)
    H = tape.sparse_hessian(x)
    Hd = tape._dense_hessian(x, None)
    np.testing.assert_allclose(H.toarray(), Hd, rtol=1e-13, atol=0)
    plan = sparse.HessianPlan(tape)  # the compressed path on the same program
    plan.direct = None
    if plan.compressed:
        np.testing.assert_allclose(sparse.SparseMatrix(plan.pattern, plan.values(tape, x, None))
                                   .toarray(), Hd, rtol=1e-13, atol=0)


@SETTINGS
@given(programs())
def test_jacobian_pattern_is_the_dense_nonzeros(prog):
    n, terms, x = prog
    tape = jitad.record(_vector(terms), x)
    J = tape.jacobian(x)
    np.testing.assert_array_equal(tape.jacobian_sparsity().toarray(), J != 0)
    np.testing.assert_allclose(tape.sparse_jacobian(x).toarray(), J, rtol=1e-14, atol=0)
    # the Hessian of a weighted sum of outputs: pattern covers every weight's nonzeros
    w = np.random.default_rng(len(terms)).uniform(0.5, 1.5, len(terms))
    Hw = tape._dense_hessian(x, w)
    np.testing.assert_array_equal(tape.hessian_sparsity().toarray(), Hw != 0)
    np.testing.assert_allclose(tape.sparse_hessian(x, w).toarray(), Hw, rtol=1e-13, atol=0)


def test_no_coupling_through_linear_ops_or_piecewise_constant_ops():
    def f(x):  # linear mixing, a sum, and floor: none of them couple anything
        y = 3.0 * x[:-1] - x[1:]
        return np.sum(y) * 2.0 + np.sum(x ** 3) + x[0] * np.floor(x[1]) + np.sum(np.sign(x) * x)

    x = np.linspace(1.1, 1.9, 6)
    tape = jitad.record(f, x)
    np.testing.assert_array_equal(tape.hessian_sparsity().toarray(), np.eye(6, dtype=bool))
    row = tape.jacobian_sparsity().toarray()[0]
    assert row.all()  # sign(x) * x still depends on x through the product's other edge


# ------------------------------------------------------------------ colourings
def _adjacency(n, density, seed):
    rng = np.random.default_rng(seed)
    A = rng.random((n, n)) < density
    A = A | A.T | np.eye(n, dtype=bool)
    indptr = np.concatenate([[0], np.cumsum(A.sum(1))]).astype(np.int64)
    indices = np.nonzero(A)[1].astype(np.int32)
    return A, indptr, indices


def assert_star_coloring(A, color):
    """Proper, and every path on four vertices uses at least three colours (brute force)."""
    n = A.shape[0]
    nbrs = [[j for j in np.nonzero(A[i])[0] if j != i] for i in range(n)]
    for i in range(n):
        for j in nbrs[i]:
            assert color[i] != color[j], f"edge ({i}, {j}) has one colour"
    for w in range(n):
        for x in nbrs[w]:  # middle edge w-x of the path v-w-x-y
            for v in nbrs[w]:
                if v == x:
                    continue
                for y in nbrs[x]:
                    if y in (w, v):
                        continue
                    assert not (color[v] == color[x] and color[w] == color[y]), \
                        f"two-coloured path {v}-{w}-{x}-{y}"


@SETTINGS
@given(st.integers(1, 25), st.floats(0.0, 0.6), st.integers(0, 2 ** 16))
def test_star_coloring_property_and_recovery(n, density, seed):
    A, indptr, indices = _adjacency(n, density, seed)
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    color = coloring.star_coloring(indptr, indices, order)
    assert color.min() >= 0
    assert_star_coloring(A, color)
    k = int(color.max()) + 1
    src_v, src_c, ok = coloring.star_sources(indptr, indices, color, k)
    assert ok
    # direct recovery of a random symmetric matrix with this pattern from H @ S
    H = np.where(A, np.random.default_rng(seed + 1).standard_normal((n, n)), 0.0)
    H = H + H.T
    S = np.zeros((n, k))
    S[np.arange(n), color] = 1.0
    BT = (H @ S).T
    rows = np.repeat(np.arange(n), np.diff(indptr))
    np.testing.assert_allclose(BT[src_c, src_v], H[rows, indices], rtol=1e-12, atol=1e-12)


@SETTINGS
@given(st.lists(st.integers(-5, 40), max_size=80), st.integers(0, 5), st.integers(0, 5))
def test_sort_range_and_grow_match_numpy(values, lo_pad, hi_pad):
    # the hand-written kernels (heapsort above 16 items, insertion sort below, loop copies)
    a = np.array([99] * lo_pad + values + [-99] * hi_pad, np.int32)
    ref = a.copy()
    ref[lo_pad:lo_pad + len(values)].sort()
    sparsity.sort_range(a, lo_pad, lo_pad + len(values))
    np.testing.assert_array_equal(a, ref)
    b = sparsity.grow(a, len(values), 3 * len(a) + 1)
    assert b.dtype == a.dtype and b.shape[0] >= len(values) + 3 * len(a) + 1
    np.testing.assert_array_equal(b[:len(values)], a[:len(values)])
    assert sparsity.grow(a, 0, a.shape[0]) is a


def test_star_sources_rejects_a_colouring_that_is_not_star():
    # path 0-1-2-3 coloured a, b, a, b: two-coloured P4
    A = np.eye(4, dtype=bool)
    for i in range(3):
        A[i, i + 1] = A[i + 1, i] = True
    indptr = np.concatenate([[0], np.cumsum(A.sum(1))]).astype(np.int64)
    indices = np.nonzero(A)[1].astype(np.int32)
    assert not coloring.star_sources(indptr, indices, np.array([0, 1, 0, 1], np.int32), 2)[2]
    assert coloring.star_sources(indptr, indices, np.array([0, 1, 2, 0], np.int32), 3)[2]


@SETTINGS
@given(st.integers(1, 20), st.integers(1, 20), st.floats(0.0, 0.5), st.integers(0, 2 ** 16))
def test_column_coloring_is_structurally_orthogonal(m, n, density, seed):
    P = np.random.default_rng(seed).random((m, n)) < density
    indptr = np.concatenate([[0], np.cumsum(P.sum(1))]).astype(np.int64)
    indices = np.nonzero(P)[1].astype(np.int32)
    tptr, tind = coloring.transpose_pattern(indptr, indices, n)
    np.testing.assert_array_equal(np.diff(tptr), P.sum(0))
    color = coloring.greedy_partition(tptr, tind, indptr, indices, np.arange(n, dtype=np.int64))
    for r in range(m):
        cols = np.nonzero(P[r])[0]
        assert len(set(color[cols])) == len(cols), f"row {r} has two columns of one colour"


# ------------------------------------------------------------------ structured cases
def banded(x):  # Hessian bandwidth 2
    return np.sum((x[2:] - x[:-2] * x[1:-1]) ** 2) + np.sum(np.cos(x))


def arrow(x):  # x[0] couples with every other entry, nothing else couples
    return np.sum(x[0] * x[1:] ** 2) + np.sum(np.sin(x))


def block_diagonal(x):  # blocks of 4
    X = x.reshape(-1, 4)
    return np.sum(np.sum(X, axis=1) ** 2) + np.sum(np.exp(0.1 * x))


def dense(x):  # Lennard-Jones-like pair sum: every entry couples
    P = x.reshape(-1, 2)
    D = P[:, None, :] - P[None, :, :]
    r2 = np.sum(D ** 2, axis=2)[np.triu_indices(P.shape[0], 1)]
    return np.sum(1.0 / r2 ** 6 - 2.0 / r2 ** 3)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


CASES = [(banded, 80, True), (arrow, 80, True), (block_diagonal, 80, True),
         (rosenbrock, 100, True), (dense, 80, False)]


@pytest.mark.parametrize("f, n, sparse_expected", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_structured_cases(f, n, sparse_expected):
    x = np.random.default_rng(n).uniform(0.5, 1.5, n)
    if f is dense:
        x = np.stack(np.meshgrid(np.arange(8.0), np.arange(5.0)), -1).reshape(-1) * 1.1 + 0.05 * x
    tape = jitad.record(f, x)
    Hd = tape._dense_hessian(x, None)
    plan = tape.hessian_plan()
    assert plan.auto == sparse_expected
    np.testing.assert_array_equal(tape.hessian_sparsity().toarray(), Hd != 0)
    S = tape.sparse_hessian(x)
    np.testing.assert_allclose(S.toarray(), Hd, rtol=1e-12, atol=1e-12 * np.abs(Hd).max())
    assert np.array_equal(S.toarray(), S.toarray().T)  # exactly symmetric by construction
    H = tape.hessian(x)  # the dense call: compressed path when the plan says so
    np.testing.assert_allclose(H, Hd, rtol=1e-12, atol=1e-12 * np.abs(Hd).max())
    assert sparse.auto_hessian(tape, x, None) is None or sparse_expected
    if sparse_expected:  # what tape.hessian does from AUTO_MIN_N inputs on
        np.testing.assert_allclose(sparse.auto_hessian(tape, x, None), Hd, rtol=1e-12,
                                   atol=1e-12 * np.abs(Hd).max())
    if sparse_expected:
        assert plan.n_colors <= {banded: 5, arrow: 2, block_diagonal: 4, rosenbrock: 3}[f]


def test_values_match_finite_differences():
    x = np.random.default_rng(3).uniform(0.5, 1.5, 12)
    for f in (banded, arrow, block_diagonal):
        tape = jitad.record(f, x)
        np.testing.assert_allclose(tape.sparse_hessian(x).toarray(), fd_hessian(f, x),
                                   rtol=1e-6, atol=1e-6)


def test_auto_hessian_uses_few_directions(monkeypatch):
    x = np.random.default_rng(4).uniform(0.5, 1.5, 300)
    tape = jitad.record(rosenbrock, x)
    widths = []
    real = jitad.Tape._hvp_rows

    def counting(self, x, w, V, unit, k):
        widths.append(k)
        return real(self, x, w, V, unit, k)

    monkeypatch.setattr(jitad.Tape, "_hvp_rows", counting)
    H = tape.hessian(x)
    assert tape.hessian_plan().method == "direct" and widths == []  # no HVP sweep at all
    np.testing.assert_allclose(H, tape._dense_hessian(x, None), rtol=1e-13, atol=1e-10)
    assert widths == [300]
    widths.clear()
    tape.hessian_plan().direct = None  # the compressed HVPs: 3 colours, one sweep
    np.testing.assert_allclose(tape.hessian(x), H, rtol=1e-13, atol=1e-10)
    assert tape.hessian_plan().method == "compressed"


@pytest.mark.parametrize("f, n", [(banded, 80), (arrow, 80), (block_diagonal, 80),
                                  (rosenbrock, 100), (dense, 80)],
                         ids=["banded", "arrow", "block", "rosenbrock", "dense"])
def test_every_method_gives_the_same_values(f, n):
    x = np.random.default_rng(n + 1).uniform(0.5, 1.5, n)
    if f is dense:
        x = np.stack(np.meshgrid(np.arange(8.0), np.arange(5.0)), -1).reshape(-1) * 1.1 + 0.05 * x
    tape = jitad.record(f, x)
    ref = tape._dense_hessian(x, None)
    tol = 1e-12 * np.abs(ref).max()
    plan = sparse.HessianPlan(tape)
    assert plan.method == "direct"
    np.testing.assert_allclose(sparse.SparseMatrix(plan.pattern, plan.values(tape, x, None))
                               .toarray(), ref, rtol=1e-12, atol=tol)
    plan.direct = None
    assert plan.method == ("dense" if f is dense else "compressed")
    np.testing.assert_allclose(sparse.SparseMatrix(plan.pattern, plan.values(tape, x, None))
                               .toarray(), ref, rtol=1e-12, atol=tol)


def test_direct_maps_respect_their_budget():
    x = np.ones(20)
    tape = jitad.record(banded, x)
    p = tape.hessian_sparsity()
    maps = direct.direct_plan(*sparse._tape_args(tape), p.indptr, p.indices, 10)
    assert maps[2].shape[0] == 0  # given up
    maps = direct.direct_plan(*sparse._tape_args(tape), p.indptr, p.indices, -1)
    # one dot product per gradient entry of an op, but for the partials of inputs (read in d1)
    n_alias = maps[1] - maps[0] - maps[2][-1]
    assert 0 < n_alias < maps[1] - maps[0]


def test_auto_hessian_falls_back_to_dense_on_nonfinite_values():
    def f(x):
        return np.sum(np.sqrt(x) * x[0])

    x = np.linspace(0.0, 1.0, 200)  # sqrt at 0: inf partials
    tape = jitad.record(f, x)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(tape.hessian(x), tape._dense_hessian(x, None))


def test_plan_is_built_once_and_reused(monkeypatch):
    x = np.random.default_rng(5).uniform(0.5, 1.5, 50)
    tape = jitad.record(banded, x)
    calls = []
    real = sparsity.hessian_pattern
    monkeypatch.setattr(sparsity, "hessian_pattern", lambda *a: calls.append(1) or real(*a))
    plan = tape.hessian_plan()
    for k in range(3):
        xk = x + 0.1 * k
        np.testing.assert_allclose(tape.sparse_hessian(xk).toarray(),
                                   tape._dense_hessian(xk, None), rtol=1e-12, atol=1e-12)
    assert tape.hessian_plan() is plan and calls == [1]
    assert plan.pattern_seconds >= 0 and plan.coloring_seconds >= 0


# ------------------------------------------------------------------ Jacobians
@pytest.mark.parametrize("f", [banded, arrow, block_diagonal])
def test_direct_values_split_over_threads_are_the_same(f):
    # each group of the direct programs split into chunks (threads): the same entries, bitwise
    x = np.linspace(0.3, 1.7, 204)
    tape = jitad.record(f, x)
    plan = tape.hessian_plan()
    assert plan.method == "direct"
    x = x[::-1].copy()
    _, d1, d2, adj = tape._adjoints(x, np.ones(1))
    d = plan.direct
    results = []
    for n_parts in (0, 1, 2, 3, 7):  # 0: the serial kernel
        data = np.full(plan.pattern.nnz, np.nan)
        ud = np.concatenate([d1, np.full(d[1], np.nan)])
        c = np.full(d[8].shape[0], np.nan)
        if n_parts:
            parallel(direct.direct_values_parallel, ud, d1.shape[0], d2, tape.n_inputs, adj, *d,
                     c, data, n_parts)
        else:
            direct.direct_values(ud, d1.shape[0], d2, tape.n_inputs, adj, *d, c, data)
        results.append(data)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    ref = tape.hessian(x)
    np.testing.assert_allclose(sparse.SparseMatrix(plan.pattern, results[0]).toarray(), ref,
                               rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def banded_map(x):  # tridiagonal Jacobian
    y = -2.0 * x ** 2
    y[1:] = y[1:] + x[:-1]
    y[:-1] = y[:-1] + np.sin(x[1:])
    return y


def group_sums(x):  # 3 outputs, each a long row: reverse mode colours rows
    return np.sum(np.exp(x.reshape(3, -1)), axis=1)


@pytest.mark.parametrize("f, mode, k", [(banded_map, "forward", 3), (group_sums, "reverse", 1)])
def test_sparse_jacobian(f, mode, k):
    x = np.random.default_rng(6).uniform(0.5, 1.5, 60)
    tape = jitad.record(f, x)
    plan = tape.jacobian_plan()
    assert plan.mode == mode and plan.n_colors == k and plan.compressed
    J = tape.jacobian(x)
    np.testing.assert_array_equal(tape.jacobian_sparsity().toarray(), J != 0)
    np.testing.assert_allclose(tape.sparse_jacobian(x).toarray(), J, rtol=1e-14, atol=0)
    np.testing.assert_allclose(J, fd_jacobian(f, x), rtol=1e-6, atol=1e-6)


def test_dense_jacobian_pattern_falls_back():
    def f(x):
        return np.stack([np.sum(x ** 2), np.prod(x)])

    x = np.linspace(0.5, 1.5, 8)
    tape = jitad.record(f, x)
    S = tape.sparse_jacobian(x)
    np.testing.assert_allclose(S.toarray(), tape.jacobian(x), rtol=1e-14)


# ------------------------------------------------------------------ API, results, errors
def test_results_and_scipy():
    sp = pytest.importorskip("scipy.sparse")
    x = np.random.default_rng(8).uniform(0.5, 1.5, 10)
    tape = jitad.record(arrow, x)
    S = tape.sparse_hessian(x)
    assert isinstance(S, jitad.SparseMatrix) and S.shape == (10, 10) and S.nnz == 28
    assert S.indptr.dtype == np.int64 and S.indices.dtype == np.int32
    C = S.tocsr()
    assert isinstance(C, sp.csr_matrix)
    np.testing.assert_array_equal(C.toarray(), S.toarray())
    P = tape.hessian_sparsity()
    np.testing.assert_array_equal(P.tocsr().toarray(), P.toarray())
    assert S.pattern is P


def test_empty_and_linear_tapes():
    tape = jitad.record(lambda x: np.sum(3.0 * x), np.ones(5))
    S = tape.sparse_hessian(np.ones(5))
    assert S.nnz == 0 and not S.toarray().any()
    np.testing.assert_array_equal(tape.sparse_jacobian(np.ones(5)).toarray(), 3.0 * np.ones((1, 5)))


def test_errors():
    x = np.ones(6)
    tape = jitad.record(banded, x)
    with pytest.raises(ValueError, match=r"x must have shape \(6,\)"):
        tape.sparse_hessian(np.ones(5))
    with pytest.raises(ValueError, match=r"x must have shape \(6,\)"):
        tape.sparse_jacobian(np.ones(7))
    vec = jitad.record(banded_map, x)
    with pytest.raises(ValueError, match="output weights w are required"):
        vec.sparse_hessian(x)
    with pytest.raises(ValueError, match=r"w must have shape \(6,\)"):
        vec.sparse_hessian(x, np.ones(3))
    with pytest.raises(ValueError, match="sparse=True does not combine"):
        jitad.hessian(banded, x, sparse=True, lazy=True)
    with pytest.raises(ValueError, match="exactly one element"):
        jitad.hessian(banded_map, x, sparse=True)


def test_functional_and_compiled():
    x = np.random.default_rng(9).uniform(0.5, 1.5, 8)
    y = np.random.default_rng(10).uniform(0.5, 1.5, 4)

    def g(x, y):
        return banded(x) + np.sum(x[:4] * y ** 2)

    full = jitad.hessian(g, (x, y), sparse=True)
    ref = fd_hessian(lambda z: g(z[:8], z[8:]), np.concatenate([x, y]))
    np.testing.assert_allclose(full.toarray(), ref, rtol=1e-6, atol=1e-6)

    f = jitad.function(g)
    np.testing.assert_allclose(f.sparse_hessian(x, y).toarray(), full.toarray(), rtol=1e-14)
    f1 = jitad.function(g, argnums=1)
    np.testing.assert_allclose(f1.sparse_hessian(x, y).toarray(), full.toarray()[8:, 8:],
                               rtol=1e-14)
    f10 = jitad.function(g, argnums=(1, 0))
    perm = np.r_[8:12, 0:8]
    np.testing.assert_allclose(f10.sparse_hessian(x, y).toarray(),
                               full.toarray()[np.ix_(perm, perm)], rtol=1e-14)

    m = jitad.function(banded_map)
    np.testing.assert_allclose(m.sparse_jacobian(x).toarray(), fd_jacobian(banded_map, x),
                               rtol=1e-6, atol=1e-6)
    h = jitad.function(lambda x, y: banded_map(x) * y[0], argnums=0)
    np.testing.assert_allclose(h.sparse_jacobian(x, y).toarray(),
                               jitad.jacobian(lambda x: banded_map(x) * y[0], x), rtol=1e-14)


def test_threads_share_a_tape_and_its_plan():
    from concurrent.futures import ThreadPoolExecutor
    x = np.random.default_rng(11).uniform(0.5, 1.5, 200)
    tape = jitad.record(banded, x)
    points = [x + 0.01 * k for k in range(8)]
    refs = [tape._dense_hessian(p, None) for p in points]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda p: tape.sparse_hessian(p).toarray(), points * 3))
    for k, H in enumerate(got):
        np.testing.assert_allclose(H, refs[k % 8], rtol=1e-12, atol=1e-12)


def reversed_mix(x):  # steps that go down (the affine pieces' uint64 wrap-around)
    y = x[::-1]
    return (np.sum(100.0 * (y[1:] - y[:-1] ** 2) ** 2 + (1.0 - y[:-1]) ** 2)
            + np.sum(x[::2] * x[1::2] ** 2))


@pytest.mark.parametrize("f", [banded, arrow, block_diagonal, rosenbrock, reversed_mix])
def test_affine_pieces_match_the_indexed_loops(f):
    # `direct._pieces`: the pieces tile every Hessian group, an affine piece's indices
    # advance by its steps, and its entries equal the indexed loop's bit for bit
    x = np.linspace(0.3, 1.7, 204)
    tape = jitad.record(f, x)
    d = tape.hessian_plan().direct
    hgptr, hcnt, hoff, hdst, pa, pb, pterm = d[10:17]
    pptr, piece, hpar = d[20:23]
    hpp, hpiece = pptr, piece  # the Hessian groups' pieces come first
    n_affine = 0
    for g in range(hgptr.shape[0] - 1):
        pieces = hpiece[hpp[g]:hpp[g + 1]]
        assert pieces[0, 0] == hgptr[g] and pieces[-1, 1] == hgptr[g + 1]
        assert (pieces[1:, 0] == pieces[:-1, 1]).all() and (pieces[:, 1] > pieces[:, 0]).all()
        cnt, o = hcnt[g], hoff[g] - hgptr[g] * hcnt[g]
        for m0, m1, q in pieces:
            if q < 0:
                continue
            n_affine += 1
            assert m1 - m0 >= direct.AFFINE_MIN_LENGTH and cnt <= direct.AFFINE_MAX_COUNT
            i = np.arange(m1 - m0)
            np.testing.assert_array_equal(hdst[m0:m1].astype(np.int64),
                                          int(hdst[m0]) + i * hpar[q])
            for j in range(cnt):
                k = o + np.arange(m0, m1) * cnt + j
                for arr, s in ((pterm, hpar[q + 1 + 3 * j]), (pa, hpar[q + 2 + 3 * j]),
                               (pb, hpar[q + 3 + 3 * j])):
                    np.testing.assert_array_equal(arr[k].astype(np.int64), int(arr[k[0]]) + i * s)
    if f is rosenbrock or f is reversed_mix:
        assert n_affine >= 2
    if f is reversed_mix:
        assert (hpar < 0).any()
    _, d1, d2, adj = tape._adjoints(x[::-1].copy(), np.ones(1))
    results = []
    for pieces in (piece, np.column_stack([piece[:, :2], np.full(piece.shape[0], -1)])):
        data = np.full(tape.hessian_plan().pattern.nnz, np.nan)
        ud = np.concatenate([d1, np.full(d[1], np.nan)])
        c = np.full(d[8].shape[0], np.nan)
        direct.direct_values(ud, d1.shape[0], d2, tape.n_inputs, adj, *d[:21], pieces, hpar, c,
                             data)  # all four programs: affine pieces, then none
        results.append(data)
    np.testing.assert_array_equal(results[0], results[1])
    ref = tape._dense_hessian(x[::-1].copy(), None)
    np.testing.assert_allclose(sparse.SparseMatrix(tape.hessian_plan().pattern, results[0])
                               .toarray(), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
