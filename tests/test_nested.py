"""Derivatives of derivatives (issue 7): derivative calls on traced inputs record their sweeps
on the enclosing tape. References are independent of the nested machinery: analytic third
derivatives, and 6th-order finite differences (tests/fdcheck.py) of Hessians and gradients
computed by the plain (non-nested) tape sweeps.
"""
import math

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import jitad
from fdcheck import assert_close, assert_fd_close, fd_jacobian
from test_ops import B, U, U_IDS
from test_properties import SMOOTH, _generic, _sane, make_ctx, programs, run


def third_tensor(F, x):
    """d^3 F / dx_i dx_j dx_k recorded as a Jacobian of a Hessian."""
    return jitad.jacobian(lambda z: jitad.hessian(F, z), x)


def fd_third(F, x):
    """Finite differences of the plain Hessian (n, n, n)."""
    n = x.size
    return fd_jacobian(lambda z: jitad.hessian(F, z), x, h=1e-3).reshape(n, n, n)


# ------------------------------------------------------------------ the identities
def f_mixed(x):
    return np.sum(np.sin(x) * x ** 3) + np.prod(x) + np.log1p(x @ x)


X3 = np.array([0.3, -0.7, 1.1])


def test_jacobian_of_grad_is_hessian():
    assert_close(jitad.jacobian(jitad.grad(f_mixed), X3), jitad.hessian(f_mixed, X3),
                 rtol=1e-12, atol=1e-12)


def test_grad_of_grad_dot_u_is_hvp():
    u = np.array([1.0, -2.0, 0.5])
    hv = jitad.grad(lambda x: jitad.grad(f_mixed)(x) @ u)(X3)
    assert_close(hv, jitad.hessian(f_mixed, X3) @ u, rtol=1e-12, atol=1e-12)


def test_third_derivative_tensor_against_fd_of_hessians():
    T = third_tensor(f_mixed, X3)
    assert T.shape == (3, 3, 3)
    assert_fd_close(T, fd_third(f_mixed, X3), rtol=1e-7, atol=1e-7)
    for p in [(0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2)]:
        assert_close(T, T.transpose(p), rtol=1e-10, atol=1e-12)


def test_fourth_derivative_of_polynomial():
    """d^4/dx^4 of sum c_i x_i^5 + x0^2 x1^2 through four nested calls."""
    c = np.array([0.5, -1.5])

    def f(x):
        return np.sum(c * x ** 5) + x[0] ** 2 * x[1] ** 2

    x = np.array([0.7, -1.3])
    Q = jitad.jacobian(lambda z: jitad.jacobian(lambda w: jitad.hessian(f, w), z), x)
    ref = np.zeros((2, 2, 2, 2))
    ref[0, 0, 0, 0] = 120 * c[0] * x[0]
    ref[1, 1, 1, 1] = 120 * c[1] * x[1]
    for idx in [(0, 0, 1, 1), (0, 1, 0, 1), (0, 1, 1, 0), (1, 0, 0, 1), (1, 0, 1, 0),
                (1, 1, 0, 0)]:
        ref[idx] = 4.0
    assert_close(Q, ref, rtol=1e-12, atol=1e-12)


def test_polynomial_third_tensor_analytic():
    c = np.array([1.5, -0.5, 2.0, 0.25])

    def f(x):
        return np.sum(c * x ** 4) + x[0] * x[1] * x[2] + x[0] ** 2 * x[3] + x[3] ** 3

    x = np.array([0.4, -1.2, 0.9, 1.7])
    T = third_tensor(f, x)
    ref = np.zeros((4, 4, 4))
    for i in range(4):
        ref[i, i, i] = 24 * c[i] * x[i]
    ref[3, 3, 3] += 6.0
    for p in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]:
        ref[p] = 1.0
    ref[0, 0, 3] = ref[0, 3, 0] = ref[3, 0, 0] = 2.0
    assert_close(T, ref, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ every elementary op
def _replay(pts):
    p = np.asarray(pts, dtype=np.float64)
    return p[::-1] * 0.9 + 0.1 * np.linspace(p.min(), p.max(), p.size)


@pytest.mark.parametrize("name,f,d1,d2,pts", U, ids=U_IDS)
def test_unary_third_derivative(name, f, d1, d2, pts):
    """sum(f(x)) + a coupling term: third-derivative tensor against FD of Hessians, at the
    recording point and (replayed from one outer tape) at another point."""
    def F(z):
        return np.sum(f(z)) + 0.1 * np.sum(z[:-1] * z[1:]) ** 2

    x0 = np.array(pts, dtype=np.float64)
    T = third_tensor(F, x0)
    assert_fd_close(T, fd_third(F, x0), rtol=1e-6, atol=1e-6, err_msg=name)
    outer = jitad.record(lambda z: jitad.hessian(F, z), x0)
    x1 = _replay(pts)
    n = x1.size
    assert_close(outer.forward(x1).reshape(n, n), jitad.hessian(F, x1), rtol=1e-12,
                 atol=1e-12)
    assert_fd_close(outer.jacobian(x1).reshape(n, n, n), fd_third(F, x1), rtol=1e-6,
                    atol=1e-6, err_msg=name)


THIRD = {  # analytic third derivatives
    "sin": lambda x: -np.cos(x),
    "cos": np.sin,
    "tan": lambda x: 2 * (1 + np.tan(x) ** 2) * (1 + 3 * np.tan(x) ** 2),
    "exp": np.exp,
    "log": lambda x: 2 / x ** 3,
    "sqrt": lambda x: 0.375 * x ** -2.5,
    "arctan": lambda x: (6 * x * x - 2) / (1 + x * x) ** 3,
    "tanh": lambda x: -2 / np.cosh(x) ** 2 * (1 / np.cosh(x) ** 2 - 2 * np.tanh(x) ** 2),
    "reciprocal": lambda x: -6 / x ** 4,
    "erf": lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x) * (4 * x * x - 2),
    "gammaln": lambda x: sps.polygamma(2, x),
    "gammaln<0": lambda x: sps.polygamma(2, x),
    "absolute": lambda x: 0 * x,
}


@pytest.mark.parametrize("name", sorted(THIRD))
def test_unary_third_derivative_analytic(name):
    entry = U[U_IDS.index(name)]
    f, pts = entry[1], np.array(entry[4], dtype=np.float64)
    for x in (pts, _replay(pts)):
        g3 = jitad.grad(lambda z: np.sum(jitad.grad(lambda w: np.sum(
            jitad.grad(lambda v: np.sum(f(v)))(w)))(z)))(x)
        assert_close(g3, THIRD[name](x), rtol=1e-9, atol=1e-10, err_msg=name)


BINARY_CASES = [b for b in B if b[0] not in ("+", "-", "*", "/", "**")]


@pytest.mark.parametrize("name,f,partials,a,b", BINARY_CASES,
                         ids=[b[0] for b in BINARY_CASES])
@pytest.mark.parametrize("mode", ["vv", "vc", "cv"])
def test_binary_third_derivative(name, f, partials, a, b, mode):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = a.size
    if mode == "vv":
        def F(z):
            return np.sum(f(z[:n], z[n:]) ** 2)
        x = np.concatenate([a, b])
    elif mode == "vc":
        def F(z):
            return np.sum(f(z, b) ** 2)
        x = a
    else:
        def F(z):
            return np.sum(f(a, z) ** 2)
        x = b
    T = third_tensor(F, x)
    assert_fd_close(T, fd_third(F, x), rtol=1e-6, atol=1e-6, err_msg=f"{name} {mode}")


def test_power_constant_exponents_and_replay():
    """x**0, x**1, x**2, x**3, x**2.5 and x**-1 in one function: the exponent groups."""
    def F(z):
        return np.sum(z ** 2.5 + z ** 3 + z ** 2 * z ** 1 + z ** 0 + z ** -1.0)

    x0 = np.array([0.5, 1.3, 2.0])
    outer = jitad.record(lambda z: jitad.grad(F)(z), x0)
    for x in (x0, np.array([0.8, 0.4, 3.0])):
        ref = 2.5 * 1.5 * x ** 0.5 + 6 * x + 6 * x + 2 * x ** -3
        assert_close(outer.jacobian(x), np.diag(ref), rtol=1e-12, atol=1e-12)


def test_max_abs_partials_follow_replayed_branch():
    """The recorded partials of |x| and max are sign ops, so a replay at a point on the other
    side of the kink gets the other branch's derivative."""
    def F(z):
        return np.sum(np.abs(z) * z + np.maximum(z, 0.5) ** 2)

    outer = jitad.record(jitad.grad(F), np.array([1.0, -2.0]))
    x = np.array([-1.5, 0.7])
    ref = np.diag(2 * np.sign(x) + 2 * (x > 0.5))
    assert_close(outer.jacobian(x), ref, rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------------ polygamma
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 6])
def test_polygamma_values(n):
    x = np.array([-3.7, -0.5, 0.2, 1.0, 2.5, 15.0, 40.0, 100.0, 1e4])
    assert_close(jitad.polygamma(n, x), sps.polygamma(n, x), rtol=1e-11, atol=1e-14)


def test_polygamma_poles_and_bad_order():
    assert np.isnan(jitad.polygamma(2, -1.0)) and np.isnan(jitad.polygamma(3, 0.0))
    with pytest.raises(ValueError, match="non-negative integer"):
        jitad.polygamma(1.5, 2.0)
    with pytest.raises(ValueError, match="non-negative integer"):
        jitad.grad(lambda x: np.sum(jitad.polygamma(-1, x)))(np.array([1.0]))
    with pytest.raises(TypeError, match="traced"):
        jitad.grad(lambda t: jitad.polygamma(t, 2.0))(1.0)


def test_polygamma_and_digamma_traced():
    x = np.array([0.4, 1.7, 5.0])
    g = jitad.grad(lambda z: np.sum(jitad.polygamma(2, z) + sps.digamma(z)))(x)
    assert_close(g, sps.polygamma(3, x) + sps.polygamma(1, x), rtol=1e-10, atol=1e-12)
    H = jitad.hessian(lambda z: np.sum(jitad.polygamma(1, z)), x)
    assert_close(H, np.diag(sps.polygamma(3, x)), rtol=1e-10, atol=1e-12)
    s = jitad.grad(lambda z: jitad.polygamma(0, z))(2.5)
    assert_close(s, sps.polygamma(1, 2.5), rtol=1e-12)


# ------------------------------------------------------------------ applications
def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_gradient_norm_penalty():
    """d/dx [f + lam |grad f|^2] = grad f + 2 lam H grad f."""
    lam = 0.01

    def penalised(x):
        g = jitad.grad(rosen)(x)
        return rosen(x) + lam * (g @ g)

    tape = jitad.record(penalised, np.full(5, 0.5))
    rng = np.random.default_rng(3)
    for x in (np.full(5, 0.5), rng.uniform(-1, 1, 5)):
        g, H = jitad.grad(rosen)(x), jitad.hessian(rosen, x)
        assert_close(tape.gradient(x), g + 2 * lam * H @ g, rtol=1e-11, atol=1e-9)
        assert_close(jitad.grad(penalised)(x), g + 2 * lam * H @ g, rtol=1e-11, atol=1e-9)
        fd = fd_jacobian(lambda z: jitad.grad(rosen)(z) + lam * 2 * jitad.hessian(rosen, z)
                         @ jitad.grad(rosen)(z), x)
        assert_fd_close(tape.hessian(x), fd, rtol=1e-6, atol=1e-6)


def test_newton_step_sensitivity():
    """s(x) = H(x)^-1 g(x) for a 2-D problem (explicit inverse): ds/dx against FD."""
    def f(x):
        return np.exp(0.5 * x[0]) + x[0] ** 2 * x[1] ** 2 + np.cosh(x[1]) + x[0] * x[1]

    def newton_step(x):
        g = jitad.grad(f)(x)
        H = jitad.hessian(f, x)
        det = H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]
        return jitad.stack([H[1, 1] * g[0] - H[0, 1] * g[1],
                            H[0, 0] * g[1] - H[1, 0] * g[0]]) / det

    x = np.array([0.3, -0.8])
    H, g = jitad.hessian(f, x), jitad.grad(f)(x)
    assert_close(newton_step(x), np.linalg.solve(H, g), rtol=1e-12, atol=1e-14)
    J = jitad.jacobian(newton_step, x)
    assert_fd_close(J, fd_jacobian(newton_step, x), rtol=1e-7, atol=1e-8)
    tape = jitad.record(newton_step, x)
    x1 = np.array([-0.4, 0.6])
    assert_close(tape.forward(x1), newton_step(x1), rtol=1e-12, atol=1e-14)
    assert_fd_close(tape.jacobian(x1), fd_jacobian(newton_step, x1), rtol=1e-7, atol=1e-8)


def test_parameter_sensitivity_of_gradient_closure():
    """grad over x of f(x, t) with t an outer traced value: d/dt of the inner gradient."""
    def f(x, t):
        return np.sum(np.sin(t * x) + t ** 2 * x ** 2)

    x = np.array([0.2, -0.9, 1.4])

    def g_of_t(t):
        return jitad.grad(f)(x, t)  # argnums=0: t is a closure for the inner derivative

    t0 = 0.7
    J = jitad.jacobian(g_of_t, t0)
    ref = np.cos(t0 * x) - t0 * x * np.sin(t0 * x) + 4 * t0 * x
    assert_close(J, ref, rtol=1e-12, atol=1e-12)
    # the same with the inner function closing over traced t
    J2 = jitad.jacobian(lambda t: jitad.grad(lambda z: f(z, t))(x), t0)
    assert_close(J2, ref, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ the functional API
def test_create_graph_torch_style_calls():
    x = np.array([0.4, -0.3, 1.2])
    v = np.array([1.0, 0.5, -2.0])
    H = jitad.hessian(f_mixed, x)
    T = third_tensor(f_mixed, x)

    def hvp_sum(z):
        return np.sum(jitad.hvp(f_mixed, z, v, create_graph=True)[1])

    assert_close(jitad.grad(hvp_sum)(x), np.einsum("ijk,j->k", T, v), rtol=1e-10, atol=1e-10)

    def vhp_sum(z):
        return np.sum(jitad.vhp(f_mixed, z, v, create_graph=True)[1])

    assert_close(jitad.grad(vhp_sum)(x), np.einsum("ijk,j->k", T, v), rtol=1e-10, atol=1e-10)
    jv = jitad.jacobian(lambda z: jitad.jvp(jitad.grad(f_mixed), z, v, create_graph=True)[1], x)
    assert_close(jv, np.einsum("ijk,k->ij", T, v), rtol=1e-10, atol=1e-10)
    vj = jitad.jacobian(lambda z: jitad.vjp(jitad.grad(f_mixed), z, v, create_graph=True)[1], x)
    assert_close(vj, np.einsum("ijk,i->jk", T, v), rtol=1e-10, atol=1e-10)
    jac = jitad.jacobian(lambda z: jitad.jacobian(jitad.grad(f_mixed), z, create_graph=True), x)
    assert_close(jac, T, rtol=1e-10, atol=1e-10)
    # values match the plain calls
    out, hv = jitad.hvp(f_mixed, x, v, create_graph=True)  # no recording: plain numbers
    assert isinstance(hv, np.ndarray) and isinstance(out, np.float64)
    assert_close(hv, H @ v, rtol=1e-13, atol=1e-13)


def test_create_graph_with_constant_inputs_inside_recording():
    """create_graph=True on plain inputs inside a recording records on the enclosing tape, so
    a function closing over outer traced values differentiates through it."""
    c = np.array([0.5, -1.0])

    def outer(t):
        H = jitad.hessian(lambda z: np.sum(t * z ** 3), c, create_graph=True)
        return np.sum(H)

    t = np.array([2.0, 3.0])
    assert_close(jitad.grad(outer)(t), 6 * c, rtol=1e-13, atol=1e-13)
    with pytest.raises(TypeError, match="different recordings"):
        jitad.grad(lambda t: np.sum(jitad.hessian(lambda z: np.sum(t * z ** 3), c)))(t)


def test_tuple_inputs_and_outputs():
    def f(a, b):
        return np.sum(a ** 2 * b[0]) + b[1] ** 3

    a = np.array([1.0, 2.0])
    b = np.array([0.5, -1.5])

    def hess_diag_sum(a, b):
        Haa, Hab = jitad.hessian(f, (a, b))[0]
        return np.sum(Haa) + np.sum(Hab)

    ga, gb = jitad.grad(hess_diag_sum, argnums=(0, 1))(a, b)
    # Haa = 2 b0 I, Hab[:, 0] = 2 a: d/da = 2, d/db0 = 2 * 2
    assert_close(ga, [2.0, 2.0], rtol=1e-13, atol=1e-13)
    assert_close(gb, [4.0, 0.0], rtol=1e-13, atol=1e-13)


def test_value_and_grad_nested_and_scalar_inputs():
    def f(x):
        return x ** 3 * np.sin(x)

    def vg(x):
        v, g = jitad.value_and_grad(f)(x)
        return v + g

    x = 0.7
    d1 = 3 * x ** 2 * np.sin(x) + x ** 3 * np.cos(x)
    d2 = 6 * x * np.sin(x) + 6 * x ** 2 * np.cos(x) - x ** 3 * np.sin(x)
    assert_close(jitad.grad(vg)(x), d1 + d2, rtol=1e-12)


def test_errors_on_traced_inputs():
    x = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="strict=True"):
        jitad.grad(lambda z: np.sum(jitad.hessian(lambda w: np.sum(w ** 3), z, strict=True)))(x)
    with pytest.raises(ValueError, match="lazy"):
        jitad.grad(lambda z: jitad.hessian(lambda w: np.sum(w ** 3), z, lazy=True))(x)
    with pytest.raises(ValueError, match="exactly one element"):
        jitad.jacobian(lambda z: jitad.hessian(lambda w: w ** 3, z), x)
    with pytest.raises(ValueError, match="invalid shape"):
        jitad.jacobian(lambda z: jitad.hvp(lambda w: np.sum(w ** 3), z, np.ones(3))[1], x)


def test_unused_and_linear_inner_functions():
    """Dead code in the inner function, constant gradients and outputs that ignore inputs."""
    def f(x):
        _ = np.log(x)  # unused, not differentiated
        return 3.0 * x[0] + 2.0 * x[1]

    J = jitad.jacobian(jitad.grad(f), np.array([0.5, 1.0]))
    assert isinstance(J, np.ndarray) and np.all(J == 0)
    g = jitad.jacobian(lambda x: jitad.grad(lambda z: np.sum(z * 0.0) + 5.0)(x), np.ones(2))
    assert np.all(g == 0)


# ------------------------------------------------------------------ jitad.function
def test_function_methods_compose_and_replay():
    F = jitad.function(lambda x: np.sum(np.exp(x) * x ** 2) + np.sum(np.sin(x)))
    G = jitad.function(lambda x: F.grad(x) @ F.grad(x))
    for x in (np.array([0.3, -0.7, 1.1]), np.array([0.5, 0.2, -0.4])):
        g, H = F.grad(x), F.hessian(x)
        assert_close(G(x), g @ g, rtol=1e-13)
        assert_close(G.grad(x), 2 * H @ g, rtol=1e-12, atol=1e-12)
    assert G.n_traces == 1
    T = jitad.jacobian(F.hessian, np.array([0.3, -0.7, 1.1]))
    assert_fd_close(T, fd_third(F, np.array([0.3, -0.7, 1.1])), rtol=1e-6, atol=1e-6)
    x = np.array([0.3, -0.7, 1.1])
    v = np.array([1.0, 2.0, 3.0])
    K = jitad.function(lambda z: F.hvp(z, v=v)[1] @ v + F.hessp(z, v) @ v
                       + F.jvp(z, v=v)[1] + F.vjp(z, w=1.0)[1] @ v
                       + F.value_and_grad(z)[0] + F(z) + np.sum(F.jacobian(z)))
    H, g = F.hessian(x), F.grad(x)
    ref = 2 * v @ H @ v + 2 * g @ v + 2 * F(x) + np.sum(g)
    assert_close(K(x), ref, rtol=1e-12)
    assert_fd_close(K.grad(x), fd_jacobian(K, x)[0], rtol=1e-7, atol=1e-7)


def test_function_argnums_nested():
    F = jitad.function(lambda x, t: np.sum(t * x ** 3), argnums=0)
    x = np.array([1.0, 2.0])
    J = jitad.jacobian(lambda t: F.grad(x, t), 0.5)
    assert_close(J, 3 * x ** 2, rtol=1e-13)


# ------------------------------------------------------------------ property test
@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-2.0, 2.0), min_size=6, max_size=6),
       st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3))
def test_random_cubic_quartic_third_tensor(coefs, x):
    """F = sum a_i x_i^4 + b (x0 x1 x2) + c x0^3: every third derivative analytic."""
    a = np.array(coefs[:3])
    b, c = coefs[3], coefs[4]
    x = np.array(x)

    def F(z):
        return np.sum(a * z ** 4) + b * z[0] * z[1] * z[2] + c * z[0] ** 3 + coefs[5]

    ref = np.zeros((3, 3, 3))
    for i in range(3):
        ref[i, i, i] = 24 * a[i] * x[i]
    ref[0, 0, 0] += 6 * c
    for p in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]:
        ref[p] = b
    assert_close(third_tensor(F, x), ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(programs(SMOOTH))
def test_random_programs_gradient_and_hessian_on_tape(case):
    """Random smooth programs (tests/test_properties.py): a gradient and a Hessian recorded on
    a tape at one point, replayed at another, against the plain Hessian there and finite
    differences of plain Hessians."""
    prog, n, p0, p1, out_mode, seed = case
    ctx = make_ctx(n, seed)

    def F(z):
        out = run(prog, z[:n], z[n], out_mode, ctx)
        items = out if isinstance(out, tuple) else (out,)
        return sum(np.sum(v) * (0.3 + 0.1 * q) for q, v in enumerate(items))

    z0, z1 = np.append(*p0), _generic(np.append(*p1))
    with np.errstate(all="ignore"):
        assume(_sane(np.atleast_1d(F(z0))) and _sane(np.atleast_1d(F(z1))))
        H1 = jitad.hessian(F, z1)
        assume(_sane(H1))
        grad_tape = jitad.record(jitad.grad(F), z0)
        scale = max(1.0, float(np.max(np.abs(H1))))
        assert_close(grad_tape.forward(z1), jitad.grad(F)(z1), rtol=1e-10, atol=1e-10 * scale)
        assert_close(grad_tape.jacobian(z1), H1, rtol=1e-9, atol=1e-9 * scale)
        hess_tape = jitad.record(lambda z: jitad.hessian(F, z), z0)
        m = z1.size
        T = hess_tape.jacobian(z1).reshape(m, m, m)
        Tfd = fd_jacobian(lambda z: jitad.hessian(F, z), z1, h=1e-3).reshape(m, m, m)
        assume(np.all(np.isfinite(Tfd)) and np.max(np.abs(Tfd), initial=0) < 1e4)
        assert_fd_close(T, Tfd, rtol=1e-5, atol=1e-5)


def test_traced_directions_with_constant_inputs():
    """jvp/vjp/hvp with a traced direction v and constant inputs: linear in v."""
    x = np.array([0.4, -0.3, 1.2])
    u0 = np.array([1.0, 2.0, -1.0])
    H, g = jitad.hessian(f_mixed, x), jitad.grad(f_mixed)(x)
    assert_close(jitad.grad(lambda u: jitad.jvp(f_mixed, x, u)[1])(u0), g, rtol=1e-13)
    J = jitad.jacobian(lambda u: jitad.vjp(jitad.grad(f_mixed), x, u)[1], u0)
    assert_close(J, H, rtol=1e-12, atol=1e-13)
    J = jitad.jacobian(lambda u: jitad.hvp(f_mixed, x, u)[1], u0)
    assert_close(J, H, rtol=1e-12, atol=1e-13)


def test_nested_through_select_and_comparisons():
    """Branch-free conditionals (np.where: comparison + select ops) inside a differentiated
    gradient: the Hessian of the recorded gradient re-decides at every point."""
    def f(x):
        return np.sum(np.where(x > 0.0, x ** 3, np.sin(x)) * (x < 1.0))

    def hess(x):
        d = np.where(x > 0.0, 6.0 * x, -np.sin(x)) * (x < 1.0)
        return np.diag(d)
    x0 = np.array([0.5, -0.7, 1.5, 0.2])
    g = jitad.function(lambda x: jitad.grad(f)(x))
    for x in (x0, -x0, np.array([-0.3, 0.8, 0.4, 2.0])):
        np.testing.assert_allclose(g.jacobian(x), hess(x), rtol=1e-12, atol=1e-12)
    assert g.n_traces == 1
