"""The functional API: torch.autograd.functional / paddle / jax semantics (issue 3).

References are analytic formulas and central finite differences computed here with plain numpy,
never the tape itself.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitad
from jitad.lazy import LazyHessian

RNG = np.random.default_rng(1234)


# --------------------------------------------------------------------------- references
def flattened(func, arrays):
    """(x0, g): the flattened, concatenated arrays and g(x) = func applied to x's pieces."""
    shapes = [np.shape(a) for a in arrays]
    sizes = [int(np.prod(s)) for s in shapes]
    x0 = np.concatenate([np.ravel(a) for a in arrays]).astype(float)

    def g(x):
        parts, o = [], 0
        for s, k in zip(shapes, sizes):
            parts.append(x[o:o + k].reshape(s))
            o += k
        return func(*parts)
    return x0, g


def fd_jacobian(func, arrays, h=1e-6):
    """J (m, n) of the flattened outputs w.r.t. the flattened inputs by central differences."""
    x0, g = flattened(func, arrays)

    def flat_f(x):
        out = g(x)
        items = out if isinstance(out, tuple) else (out,)
        return np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in items])

    cols = []
    for j in range(x0.size):
        e = np.zeros_like(x0)
        e[j] = h
        cols.append((flat_f(x0 + e) - flat_f(x0 - e)) / (2 * h))
    return np.stack(cols, axis=1) if cols else np.zeros((flat_f(x0).size, 0))


def fd_hessian(func, arrays, h=1e-4):
    """(n, n) Hessian of a scalar function by the four-point central formula."""
    x0, g = flattened(func, arrays)

    def flat_f(x):
        return float(np.asarray(g(x)).reshape(()))

    n = x0.size
    H = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i] = h
            ej[j] = h
            H[i, j] = H[j, i] = (flat_f(x0 + ei + ej) - flat_f(x0 + ei - ej)
                                 - flat_f(x0 - ei + ej) + flat_f(x0 - ei - ej)) / (4 * h * h)
    return H


def flat(result):
    """Concatenate a structured result (array or nested tuples) into one vector."""
    if isinstance(result, tuple):
        return np.concatenate([flat(r) for r in result]) if result else np.empty(0)
    return np.ravel(np.asarray(result, dtype=float))


# --------------------------------------------------------------------------- torch examples
def pow_reducer(x):
    return (x ** 3).sum()


def pow_adder_reducer(x, y):
    return (2 * x ** 2 + 3 * y ** 2).sum()


def exp_reducer(x):
    return np.exp(x).sum(axis=1)


def adder(x, y):
    return 2 * x + 3 * y


def exp_adder(x, y):
    return 2 * np.exp(x) + 3 * y


def test_torch_hessian_pow_reducer():
    x = RNG.random((2, 2))
    H = jitad.hessian(pow_reducer, x)
    assert H.shape == (2, 2, 2, 2)
    expected = np.zeros((2, 2, 2, 2))
    for i in range(2):
        for j in range(2):
            expected[i, j, i, j] = 6 * x[i, j]
    np.testing.assert_allclose(H, expected, rtol=1e-14, atol=0)


def test_torch_hessian_pow_adder_reducer():
    inputs = (RNG.random(2), RNG.random(2))
    H = jitad.hessian(pow_adder_reducer, inputs)
    assert isinstance(H, tuple) and len(H) == 2
    assert all(isinstance(row, tuple) and len(row) == 2 for row in H)
    np.testing.assert_array_equal(H[0][0], 4 * np.eye(2))
    np.testing.assert_array_equal(H[0][1], np.zeros((2, 2)))
    np.testing.assert_array_equal(H[1][0], np.zeros((2, 2)))
    np.testing.assert_array_equal(H[1][1], 6 * np.eye(2))


def test_torch_jvp_exp_reducer():
    inputs = RNG.random((4, 4))
    v = np.ones((4, 4))
    out, jvp = jitad.jvp(exp_reducer, inputs, v)
    assert out.shape == (4,) and jvp.shape == (4,)
    np.testing.assert_allclose(out, np.exp(inputs).sum(axis=1), rtol=1e-14)
    np.testing.assert_allclose(jvp, out, rtol=1e-14)


def test_torch_jvp_adder():
    inputs = (RNG.random(2), RNG.random(2))
    v = (np.ones(2), np.ones(2))
    out, jvp = jitad.jvp(adder, inputs, v)
    np.testing.assert_allclose(out, 2 * inputs[0] + 3 * inputs[1], rtol=1e-14)
    np.testing.assert_array_equal(jvp, [5.0, 5.0])


def test_torch_vjp_exp_reducer():
    inputs = RNG.random((4, 4))
    v = np.ones(4)
    out, vjp = jitad.vjp(exp_reducer, inputs, v)
    assert vjp.shape == (4, 4)
    np.testing.assert_allclose(vjp, np.exp(inputs), rtol=1e-14)


def test_torch_vjp_adder():
    inputs = (RNG.random(2), RNG.random(2))
    v = np.ones(2)
    out, vjp = jitad.vjp(adder, inputs, v)
    assert isinstance(vjp, tuple)
    np.testing.assert_array_equal(vjp[0], [2.0, 2.0])
    np.testing.assert_array_equal(vjp[1], [3.0, 3.0])


def test_torch_jacobian_examples():
    x = RNG.random((2, 2))
    J = jitad.jacobian(exp_reducer, x)
    assert J.shape == (2, 2, 2)
    expected = np.zeros((2, 2, 2))
    for i in range(2):
        expected[i, i, :] = np.exp(x[i])
    np.testing.assert_allclose(J, expected, rtol=1e-14)

    inputs = (RNG.random(2), RNG.random(2))
    J = jitad.jacobian(exp_adder, inputs)
    assert isinstance(J, tuple) and len(J) == 2 and not isinstance(J[0], tuple)
    np.testing.assert_allclose(J[0], np.diag(2 * np.exp(inputs[0])), rtol=1e-14)
    np.testing.assert_array_equal(J[1], 3 * np.eye(2))


def test_torch_hvp_vhp_examples():
    x = RNG.random((2, 2))
    v = np.ones((2, 2))
    for call in (jitad.hvp, jitad.vhp):
        out, r = call(pow_reducer, x, v)
        assert np.shape(out) == ()
        np.testing.assert_allclose(out, np.sum(x ** 3), rtol=1e-14)
        np.testing.assert_allclose(r, 6 * x, rtol=1e-14)
    inputs = (RNG.random(2), RNG.random(2))
    v = (np.ones(2), np.ones(2))
    for call in (jitad.hvp, jitad.vhp):
        out, r = call(pow_adder_reducer, inputs, v)
        assert isinstance(r, tuple)
        np.testing.assert_array_equal(r[0], [4.0, 4.0])
        np.testing.assert_array_equal(r[1], [6.0, 6.0])


# --------------------------------------------------------------------------- paddle example
def test_paddle_lazy_hessian_example():
    def f(x1, x2):
        return x1.sum() + x2.sum()

    x1 = RNG.random(3)
    x2 = RNG.random(4)
    H = jitad.hessian(f, (x1, x2), lazy=True)
    assert isinstance(H, tuple) and len(H) == 2 and len(H[0]) == 2
    assert all(isinstance(b, LazyHessian) for row in H for b in row)
    block = H[0][1][:]
    assert block.shape == (3, 4)
    np.testing.assert_array_equal(block, np.zeros((3, 4)))
    for i, ni in enumerate((3, 4)):
        for j, nj in enumerate((3, 4)):
            assert H[i][j].shape == (ni, nj)
            np.testing.assert_array_equal(np.asarray(H[i][j]), np.zeros((ni, nj)))


# --------------------------------------------------------------------------- structure
def two_out(x, y):
    return np.sin(x) * y[0], np.sum(x ** 2) * y


SHAPES = [(), (3,), (2, 3)]


@pytest.mark.parametrize("sx", SHAPES)
@pytest.mark.parametrize("sy", SHAPES)
def test_jacobian_tuple_in_tuple_out(sx, sy):
    x = RNG.random(sx) + 0.5
    y = RNG.random(sy) + 0.5

    def f(x, y):
        return np.sin(x) * np.sum(y), np.cos(np.sum(x)) * y ** 2

    J = jitad.jacobian(f, (x, y))
    outs = f(x, y)
    assert isinstance(J, tuple) and len(J) == 2
    for i in range(2):
        assert isinstance(J[i], tuple) and len(J[i]) == 2
        for j, a in enumerate((x, y)):
            assert np.shape(J[i][j]) == np.shape(outs[i]) + np.shape(a)
    ref = fd_jacobian(f, (x, y))
    got = np.concatenate([np.concatenate([np.reshape(J[i][j], (np.size(outs[i]), -1))
                                          for j in range(2)], axis=1) for i in range(2)])
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("sx", SHAPES)
def test_jacobian_one_side_tuple(sx):
    x = RNG.random(sx) + 0.5
    # tuple of outputs, one input: a plain tuple over outputs
    J = jitad.jacobian(lambda x: (np.exp(x), np.sum(x) * np.ones(2)), x)
    assert isinstance(J, tuple) and len(J) == 2 and not isinstance(J[0], tuple)
    assert np.shape(J[0]) == sx + sx and np.shape(J[1]) == (2,) + sx
    np.testing.assert_allclose(np.reshape(J[0], (np.size(x), np.size(x))),
                               np.diag(np.exp(np.ravel(x))), rtol=1e-14)
    np.testing.assert_array_equal(np.reshape(J[1], (2, -1)), np.ones((2, np.size(x))))
    # one output, tuple of inputs: a plain tuple over inputs
    J = jitad.jacobian(lambda x, y: np.sum(x) * y, (x, np.arange(1.0, 4.0)))
    assert isinstance(J, tuple) and len(J) == 2 and not isinstance(J[0], tuple)
    assert np.shape(J[0]) == (3,) + sx and np.shape(J[1]) == (3, 3)
    np.testing.assert_array_equal(np.reshape(J[0], (3, -1)),
                                  np.repeat(np.arange(1.0, 4.0)[:, None], np.size(x), 1))
    np.testing.assert_allclose(J[1], np.sum(x) * np.eye(3), rtol=1e-14)


def test_python_floats_and_scalar_results():
    J = jitad.jacobian(lambda a: a ** 3, 2.0)
    assert np.shape(J) == () and J == pytest.approx(12.0)
    H = jitad.hessian(lambda a, b: a ** 2 * b, (2.0, 3))
    assert all(np.shape(H[i][j]) == () for i in range(2) for j in range(2))
    np.testing.assert_allclose(flat(H), [6.0, 4.0, 4.0, 0.0])
    out, r = jitad.jvp(lambda a: np.sin(a), np.array(0.5))
    assert np.shape(out) == () and np.shape(r) == ()
    assert r == pytest.approx(np.cos(0.5), rel=1e-15)
    out, r = jitad.vjp(lambda a: np.sin(a) * np.ones(2), np.array(0.5), np.array([1.0, 2.0]))
    assert r == pytest.approx(3 * np.cos(0.5), rel=1e-15)


@pytest.mark.parametrize("in_tuple", [False, True])
@pytest.mark.parametrize("out_tuple", [False, True])
def test_jvp_vjp_structures_and_values(in_tuple, out_tuple):
    x = RNG.random((2, 3)) + 0.5
    y = RNG.random(4) + 0.5

    def f(*args):
        x = args[0]
        y = args[1] if in_tuple else np.arange(1.0, 5.0)
        a = np.log(x) * np.sum(y ** 2)
        b = np.sum(np.sin(x)) * y
        return (a, b) if out_tuple else a

    inputs = (x, y) if in_tuple else x
    arrays = (x, y) if in_tuple else (x,)
    J = fd_jacobian(f, arrays)
    v = tuple(RNG.standard_normal(a.shape) for a in arrays)
    out, jv = jitad.jvp(f, inputs, v if in_tuple else v[0])
    assert isinstance(out, tuple) == out_tuple and isinstance(jv, tuple) == out_tuple
    ref_out = f(*arrays)
    for o, r in zip(out if out_tuple else (out,), ref_out if out_tuple else (ref_out,)):
        np.testing.assert_allclose(o, r, rtol=1e-14)
    if out_tuple:
        assert jv[0].shape == (2, 3) and jv[1].shape == (4,)
    np.testing.assert_allclose(flat(jv), J @ flat(v), rtol=1e-6, atol=1e-8)

    w = tuple(RNG.standard_normal(np.shape(o)) for o in (ref_out if out_tuple else (ref_out,)))
    out, wj = jitad.vjp(f, inputs, w if out_tuple else w[0])
    assert isinstance(wj, tuple) == in_tuple
    for g, a in zip(wj if in_tuple else (wj,), arrays):
        assert g.shape == a.shape
    np.testing.assert_allclose(flat(wj), flat(w) @ J, rtol=1e-6, atol=1e-8)


def test_hessian_tuple_blocks_against_finite_differences():
    x = RNG.random((2, 2)) + 0.5
    y = RNG.random(3) + 0.5
    s = 1.3

    def f(x, y, s):
        return np.sum(np.sin(x) * np.sum(y ** 2)) * s + np.prod(y) * np.sum(x) + s ** 3

    H = jitad.hessian(f, (x, y, s))
    shapes = [(2, 2), (3,), ()]
    for i in range(3):
        for j in range(3):
            assert np.shape(H[i][j]) == shapes[i] + shapes[j]
    sizes = [4, 3, 1]
    full = np.block([[np.reshape(H[i][j], (sizes[i], sizes[j])) for j in range(3)]
                     for i in range(3)])
    np.testing.assert_allclose(full, fd_hessian(f, (x, y, s)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full, full.T, rtol=1e-14, atol=1e-14)


def test_hvp_against_finite_differences_of_gradient():
    x = RNG.random(5) + 0.5

    def f(x):
        return np.sum(np.exp(x[:-1] * x[1:])) + np.sum(np.log(x)) ** 2

    v = RNG.standard_normal(5)
    out, hv = jitad.hvp(f, x, v)
    H = fd_hessian(f, (x,))
    np.testing.assert_allclose(hv, H @ v, rtol=1e-5, atol=1e-6)
    out2, vh = jitad.vhp(f, x, v)
    np.testing.assert_allclose(vh, v @ H, rtol=1e-5, atol=1e-6)
    assert out == pytest.approx(f(x), rel=1e-14) and out2 == pytest.approx(f(x), rel=1e-14)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(1, 3), min_size=0, max_size=2), min_size=1, max_size=3),
       st.integers(0, 2 ** 31 - 1))
def test_hessian_shapes_property(shapes, seed):
    rng = np.random.default_rng(seed)
    arrays = tuple(rng.random(tuple(s)) + 0.5 for s in shapes)

    def f(*args):
        total = 0.0
        for k, a in enumerate(args):
            total = total + np.sum(np.sin(a) ** 2) * (k + 1) + np.sum(a) * np.sum(args[0])
        return total

    H = jitad.hessian(f, arrays)
    sizes = [int(np.prod(s)) for s in shapes]
    for i in range(len(shapes)):
        for j in range(len(shapes)):
            assert np.shape(H[i][j]) == tuple(shapes[i]) + tuple(shapes[j])
    full = np.block([[np.reshape(H[i][j], (sizes[i], sizes[j])) for j in range(len(sizes))]
                     for i in range(len(sizes))])
    np.testing.assert_allclose(full, fd_hessian(f, arrays), rtol=1e-5, atol=1e-5)
    if len(arrays) == 1:
        H1 = jitad.hessian(f, arrays[0])
        np.testing.assert_array_equal(np.reshape(H1, full.shape), full)


# --------------------------------------------------------------------------- v rules and errors
def test_v_none_only_for_single_element():
    out, jv = jitad.jvp(lambda a: a ** 2 * np.ones(3), 2.0)
    np.testing.assert_array_equal(jv, [4.0, 4.0, 4.0])
    out, jv = jitad.jvp(lambda a: a ** 2, (np.array([2.0]),))
    assert isinstance(jv, np.ndarray) and jv.shape == (1,) and jv[0] == 4.0
    out, vj = jitad.vjp(lambda x: np.sum(x ** 2), np.arange(3.0))
    np.testing.assert_array_equal(vj, [0.0, 2.0, 4.0])
    out, hv = jitad.hvp(lambda a: a ** 3, 2.0)
    assert hv == pytest.approx(12.0)
    with pytest.raises(ValueError, match=r"v can only be None.*\(3,\).*3 elements"):
        jitad.jvp(lambda x: x, np.ones(3))
    with pytest.raises(ValueError, match=r"v can only be None.*\(2,\)"):
        jitad.vjp(lambda x: x * 2, np.ones(2))
    with pytest.raises(ValueError, match="v can only be None"):
        jitad.hvp(lambda x: np.sum(x ** 3), np.ones(2))
    with pytest.raises(ValueError, match="v can only be None"):
        jitad.vhp(lambda x, y: np.sum(x * y), (1.0, 2.0))


def test_v_shape_errors_name_expected_and_given():
    with pytest.raises(ValueError, match=r"expected \(2, 2\).*got \(4,\)"):
        jitad.jvp(lambda x: x, np.ones((2, 2)), np.ones(4))
    with pytest.raises(ValueError, match=r"entry 1 of v.*expected \(3,\).*got \(2,\)"):
        jitad.jvp(adder, (np.ones(3), np.ones(3)), (np.ones(3), np.ones(2)))
    with pytest.raises(ValueError, match=r"tuple of invalid length: expected 2.*got 3"):
        jitad.jvp(adder, (np.ones(3), np.ones(3)), (np.ones(3),) * 3)
    # a list is an array-like for one input, a sequence of directions for a tuple of inputs
    _, jv = jitad.jvp(adder, (np.ones(2), np.ones(2)), [np.ones(2), np.zeros(2)])
    np.testing.assert_array_equal(jv, [2.0, 2.0])
    _, jv = jitad.jvp(lambda x: 2 * x, np.ones(2), [1.0, 3.0])
    np.testing.assert_array_equal(jv, [2.0, 6.0])
    with pytest.raises(ValueError, match=r"single array.*got a tuple of 2"):
        jitad.jvp(lambda x: x, np.ones(3), (np.ones(3), np.ones(3)))
    with pytest.raises(ValueError, match=r"expected \(3,\).*output.*got \(2,\)"):
        jitad.vjp(lambda x: x, np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match=r"expected \(3,\).*got \(3, 1\)"):
        jitad.hvp(lambda x: np.sum(x ** 3), np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"entry 0 of v.*expected \(\).*got \(2,\)"):
        jitad.vjp(lambda x: (np.sum(x), x), np.ones(2), (np.ones(2), np.ones(2)))


def test_single_element_output_required():
    with pytest.raises(ValueError, match=r"hessian needs.*one element, got shape \(3,\)"):
        jitad.hessian(lambda x: x ** 2, np.ones(3))
    with pytest.raises(ValueError, match=r"hvp needs.*tuple"):
        jitad.hvp(lambda x: (np.sum(x),), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="vhp needs"):
        jitad.vhp(lambda x: x[:2], np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="hessian needs"):
        jitad.hessian(lambda x: x ** 2, np.ones(3), lazy=True)
    # one element of shape (1,) is accepted
    H = jitad.hessian(lambda x: np.sum(x ** 2, keepdims=True), np.ones(2))
    np.testing.assert_array_equal(H, 2 * np.eye(2))


def test_strict():
    def f(x, y):
        return np.sum(x ** 2)

    args = (np.ones(2), np.ones(3))
    for call in (lambda s: jitad.jacobian(f, args, strict=s),
                 lambda s: jitad.hessian(f, args, strict=s),
                 lambda s: jitad.hessian(f, args, strict=s, lazy=True),
                 lambda s: jitad.jvp(f, args, (np.ones(2), np.ones(3)), strict=s),
                 lambda s: jitad.vjp(f, args, 1.0, strict=s),
                 lambda s: jitad.hvp(f, args, (np.ones(2), np.ones(3)), strict=s),
                 lambda s: jitad.vhp(f, args, (np.ones(2), np.ones(3)), strict=s)):
        with pytest.raises(ValueError, match=r"strict=True.*input 1 \(shape \(3,\)\)"):
            call(True)
        call(False)
    J = jitad.jacobian(f, args)
    np.testing.assert_array_equal(J[1], np.zeros(3))
    _, vj = jitad.vjp(f, args, 1.0)
    np.testing.assert_array_equal(vj[1], np.zeros(3))
    H = jitad.hessian(f, args)
    np.testing.assert_array_equal(H[1][1], np.zeros((3, 3)))
    np.testing.assert_array_equal(H[0][1], np.zeros((2, 3)))
    # every input used: strict passes and gives the same values
    g = lambda x, y: np.sum(x ** 2) * np.sum(y)  # noqa: E731
    np.testing.assert_array_equal(flat(jitad.hessian(g, args, strict=True)),
                                  flat(jitad.hessian(g, args)))
    # an input used only through a constant function of it is still "used" structurally,
    # but one used nowhere is not, whatever its shape
    with pytest.raises(ValueError, match="input 0"):
        jitad.jacobian(lambda a, b: b * 2.0, (3.0, np.ones(2)), strict=True)


# --------------------------------------------------------------------------- batch_axis
def per_sample(x):
    return np.sum(np.sin(x) ** 2, axis=1) + x[:, 0] * x[:, 1] ** 2 + np.prod(x, axis=1)


def per_sample_1(r):
    return np.sum(np.sin(r) ** 2) + r[0] * r[1] ** 2 + np.prod(r)


def test_batch_axis_hessians(count_hvp):
    B, N = 7, 4
    X = RNG.random((B, N)) + 0.5
    Hb = jitad.hessian(per_sample, X, batch_axis=0)
    calls = list(count_hvp)  # the references below may use HVPs too
    assert Hb.shape == (B, N, N)
    # N directions in total (not B*N): one call with v of shape (B*N, N)
    assert calls == [(B * N, N)]
    for b in range(B):
        np.testing.assert_allclose(Hb[b], fd_hessian(per_sample_1, (X[b],)), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(Hb[b], jitad.hessian(per_sample_1, X[b]), rtol=1e-13,
                                   atol=1e-13)


def test_batch_axis_errors():
    X = RNG.random((3, 2))
    with pytest.raises(ValueError, match="batch_axis must be None or 0"):
        jitad.hessian(per_sample, X, batch_axis=1)
    with pytest.raises(ValueError, match="batch_axis must be None or 0"):
        jitad.hessian(per_sample, X, batch_axis=True)
    with pytest.raises(ValueError, match=r"one 2-D input.*tuple"):
        jitad.hessian(lambda a, b: np.sum(a * b, axis=1), (X, X), batch_axis=0)
    with pytest.raises(ValueError, match=r"one 2-D input.*shape \(6,\)"):
        jitad.hessian(lambda a: np.sum(a), X.ravel(), batch_axis=0)
    with pytest.raises(ValueError, match=r"return shape \(3,\).*got shape \(\)"):
        jitad.hessian(lambda a: np.sum(a), X, batch_axis=0)
    with pytest.raises(ValueError, match=r"return shape \(3,\).*got shape \(3, 2\)"):
        jitad.hessian(lambda a: a ** 2, X, batch_axis=0)
    with pytest.raises(ValueError, match="lazy"):
        jitad.hessian(per_sample, X, batch_axis=0, lazy=True)


# --------------------------------------------------------------------------- lazy Hessian
def lazy_problem(n=12):
    x = RNG.random(n) + 0.5

    def f(x):
        return np.sum(np.exp(0.3 * x[:-1] * x[1:])) + np.sum(x) ** 3 / 10 + np.sum(np.log(x))

    return f, x


@pytest.fixture
def count_hvp(monkeypatch):
    calls = []
    real_hvp = jitad.Tape.hvp

    def counting_hvp(self, x, v, w=None):
        calls.append(np.shape(v))
        return real_hvp(self, x, v, w)

    monkeypatch.setattr(jitad.Tape, "hvp", counting_hvp)
    return calls


def test_lazy_hessian_counts_hvps(count_hvp):
    f, x = lazy_problem(12)
    n = x.size
    dense = jitad.hessian(f, x)
    np.testing.assert_allclose(dense, fd_hessian(f, (x,)), rtol=1e-5, atol=1e-5)
    count_hvp.clear()  # the dense reference may use HVPs too
    H = jitad.hessian(f, x, lazy=True)
    assert isinstance(H, LazyHessian) and H.shape == (n, n)
    assert H.hvp_directions == 0 and count_hvp == []

    np.testing.assert_allclose(H[3], dense[3], rtol=1e-13, atol=1e-13)
    assert H.hvp_directions == 1 and count_hvp == [(n, 1)]
    np.testing.assert_allclose(H[:, 3], dense[:, 3], rtol=1e-13, atol=1e-13)  # by symmetry
    assert H.hvp_directions == 1 and len(count_hvp) == 1
    H[3, 5]
    assert H.hvp_directions == 1

    # a 5 x 2 block needs min(5, 2) = 2 HVPs, both in one multi-direction call
    np.testing.assert_allclose(H[0:5, 7:9], dense[0:5, 7:9], rtol=1e-13, atol=1e-13)
    assert H.hvp_directions == 3 and count_hvp[-1] == (n, 2) and len(count_hvp) == 2
    # rows 7, 8 are cached now: a 2 x 10 block needs nothing
    np.testing.assert_allclose(H[7:9, 2:12], dense[7:9, 2:12], rtol=1e-13, atol=1e-13)
    assert H.hvp_directions == 3 and len(count_hvp) == 2
    # a 4 x 6 block with row 3 cached: 3 missing rows, computed in one call
    np.testing.assert_allclose(H[1:5, 4:10], dense[1:5, 4:10], rtol=1e-13, atol=1e-13)
    assert H.hvp_directions == 6 and count_hvp[-1] == (n, 3) and len(count_hvp) == 3
    assert H.hvp_batches == 3 and H.hvp_calls == 3
    # the remaining rows, all together, once
    np.testing.assert_allclose(np.asarray(H), dense, rtol=1e-13, atol=1e-13)
    assert H.hvp_directions == n and count_hvp[-1] == (n, n - 6) and len(count_hvp) == 4
    np.testing.assert_allclose(H[:], dense, rtol=1e-13, atol=1e-13)
    assert H.hvp_directions == n and len(count_hvp) == 4


def test_lazy_hessian_many_rows_in_one_batch(count_hvp):
    f, x = lazy_problem(70)
    dense = jitad.hessian(f, x)
    count_hvp.clear()
    H = jitad.hessian(f, x, lazy=True)
    # 60 missing rows: one tape.hvp call (parallel over direction blocks inside)
    np.testing.assert_allclose(H[5:65], dense[5:65], rtol=1e-13, atol=1e-13)
    assert H.hvp_directions == 60 and H.hvp_batches == 1
    assert sum(s[1] for s in count_hvp) == 60 and len(count_hvp) == H.hvp_calls == 1
    np.testing.assert_allclose(np.asarray(H), dense, rtol=1e-13, atol=1e-13)
    assert H.hvp_directions == 70 and H.hvp_batches == 2


def test_lazy_hessian_exact_zeros_after_a_nan_computation():
    # an HVP whose value is NaN leaves NaN in this thread's reused work arrays
    with np.errstate(invalid="ignore"):
        jitad.hvp(lambda x: np.sum(np.sqrt(x) * x[0]), -np.ones(50), np.ones(50))
    H = jitad.hessian(lambda a, b: a.sum() + b.sum(), (np.ones(3), np.ones(4)), lazy=True)
    np.testing.assert_array_equal(H[0][1][:], np.zeros((3, 4)))
    with np.errstate(invalid="ignore"):
        jitad.hvp(lambda x: np.sum(np.sqrt(x) * x[0]), -np.ones(50), np.ones(50))
    _, jv = jitad.jvp(lambda a: 2 * a, np.ones(3), np.array([1.0, 0.0, 0.0]))
    np.testing.assert_array_equal(jv, [2.0, 0.0, 0.0])


def test_lazy_hessian_indexing_matches_numpy():
    f, x = lazy_problem(9)
    dense = jitad.hessian(f, x)
    H = jitad.hessian(f, x, lazy=True)
    keys = [0, -1, slice(2, 5), slice(None, None, 2), slice(7, 2, -2), (slice(None), 4),
            (slice(1, 4), slice(6, 9)), (2, 3), (-2, slice(1, 3)), Ellipsis, (Ellipsis, 2),
            [1, 4, 4], ([1, 2], [3, 8]), (slice(0, 3), [0, 8]), np.arange(9) % 2 == 0,
            (np.array([[0], [2]]), np.array([1, 3, 5])), (slice(3, 3), slice(None))]
    for key in keys:
        got = H[key]
        ref = dense[key]
        assert np.shape(got) == np.shape(ref), key
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13, err_msg=str(key))
    assert isinstance(H[2, 3], float)
    with pytest.raises(IndexError):
        H[9]
    with pytest.raises(IndexError):
        H[0, 0, 0]
    assert len(H) == 9 and H.ndim == 2
    np.testing.assert_array_equal(H.toarray(), np.asarray(H))


def test_lazy_hessian_tuple_blocks_share_rows(count_hvp):
    def f(a, b):
        return np.sum(a ** 2 * np.sum(b)) + np.sum(np.sin(b)) * a[0]

    a = RNG.random(3) + 0.5
    b = RNG.random((2, 2)) + 0.5
    dense = jitad.hessian(f, (a, b))
    count_hvp.clear()
    H = jitad.hessian(f, (a, b), lazy=True)
    assert H[0][0].shape == (3, 3) and H[0][1].shape == (3, 4) and H[1][1].shape == (4, 4)
    np.testing.assert_allclose(H[0][1][:], dense[0][1].reshape(3, 4), rtol=1e-13, atol=1e-13)
    assert H[0][0].hvp_directions == 3 and len(count_hvp) == 1  # rows of a (3 < 4)
    np.testing.assert_allclose(H[1][0][:], dense[1][0].reshape(4, 3), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(H[0][0][:], dense[0][0], rtol=1e-13, atol=1e-13)
    assert H[1][1].hvp_directions == 3 and len(count_hvp) == 1  # all from the shared cache
    np.testing.assert_allclose(H[1][1][1:3, 2], dense[1][1].reshape(4, 4)[1:3, 2],
                               rtol=1e-13, atol=1e-13)
    assert H[1][1].hvp_directions == 4  # one more: column 2 of b, by symmetry


# --------------------------------------------------------------------------- grad / value_and_grad
def test_grad_argnums():
    def f(x, y, z):
        return np.sum(x ** 2 * y) + np.sin(z) * np.sum(y)

    x = RNG.random(3)
    y = RNG.random(3)
    z = 0.7
    gx = jitad.grad(f)(x, y, z)
    np.testing.assert_allclose(gx, 2 * x * y, rtol=1e-14)
    gy = jitad.grad(f, argnums=1)(x, y, z)
    np.testing.assert_allclose(gy, x ** 2 + np.sin(z), rtol=1e-14)
    gz = jitad.grad(f, argnums=-1)(x, y, z)
    assert np.shape(gz) == () and gz == pytest.approx(np.cos(z) * np.sum(y), rel=1e-14)
    g = jitad.grad(f, argnums=(2, 0))(x, y, z)
    assert isinstance(g, tuple) and len(g) == 2
    assert g[0] == pytest.approx(np.cos(z) * np.sum(y), rel=1e-14)
    np.testing.assert_allclose(g[1], 2 * x * y, rtol=1e-14)
    g1 = jitad.grad(f, argnums=(1,))(x, y, z)
    assert isinstance(g1, tuple) and len(g1) == 1 and g1[0].shape == (3,)
    val, g = jitad.value_and_grad(f, argnums=(0, 1))(x, y, z)
    assert val == pytest.approx(f(x, y, z), rel=1e-14)
    np.testing.assert_allclose(g[0], 2 * x * y, rtol=1e-14)
    np.testing.assert_allclose(g[1], x ** 2 + np.sin(z), rtol=1e-14)
    val, g = jitad.value_and_grad(f)(x, y, z)
    assert val == pytest.approx(f(x, y, z), rel=1e-14) and g.shape == (3,)
    # against finite differences, on a 2-D argument
    M = RNG.random((2, 3))
    h = lambda M, s: np.sum(np.tanh(M @ s)) ** 2  # noqa: E731
    s = RNG.random(3)
    np.testing.assert_allclose(jitad.grad(h)(M, s), fd_jacobian(h, (M, s))[0, :6].reshape(2, 3),
                               rtol=1e-7, atol=1e-9)


def test_grad_other_arguments_pass_through():
    def f(x, n, label, scale=1.0):
        assert isinstance(n, int) and label == "a"
        return scale * np.sum(x[:n] ** 3)

    x = RNG.random(4)
    g = jitad.grad(f)(x, 2, "a", scale=2.0)
    np.testing.assert_allclose(g, [6 * x[0] ** 2, 6 * x[1] ** 2, 0.0, 0.0], rtol=1e-14)
    assert jitad.grad(f).__name__ == "grad_f" and jitad.value_and_grad(f).__wrapped__ is f


def test_grad_errors():
    with pytest.raises(ValueError, match=r"grad needs.*shape \(3,\)"):
        jitad.grad(lambda x: x ** 2)(np.ones(3))
    with pytest.raises(ValueError, match="value_and_grad needs"):
        jitad.value_and_grad(lambda x: (x, x))(1.0)
    with pytest.raises(ValueError, match="out of range"):
        jitad.grad(lambda x: x, argnums=1)(1.0)
    with pytest.raises(TypeError, match="argnums"):
        jitad.grad(lambda x: x, argnums=[0])(1.0)
    with pytest.raises(ValueError, match="twice"):
        jitad.grad(lambda x, y: x * y, argnums=(0, -2))(1.0, 2.0)
