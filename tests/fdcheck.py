"""Helpers for the tape-engine tests (imported as `fdcheck`): finite differences, comparisons.

The finite-difference references evaluate *plain numpy code* (never the tape), so they are an
independent check of the recorded derivatives. Stencils are central differences of order 6:
first derivative  f'(x)  ~ sum_k c_k f(x + k h) / h,        k = -3..3
second derivative f''(x) ~ sum_k d_k f(x + k h) / h^2,      k = -3..3
mixed partials use the tensor product of the first-derivative stencil.
"""
import numpy as np

D1 = {1: 3 / 4, 2: -3 / 20, 3: 1 / 60}            # antisymmetric: c_{-k} = -c_k
D2 = {0: -49 / 18, 1: 3 / 2, 2: -3 / 20, 3: 1 / 90}  # symmetric


def _call(f, x):
    with np.errstate(all="ignore"):
        return np.asarray(f(x), dtype=np.float64)


def fd_jacobian(f, x, h=1e-3):
    """6th-order central-difference Jacobian of f: R^n -> R^m (any output shape, flattened).

    Returns (m, n); m = 1 for a scalar-valued f (like Tape.jacobian).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    y0 = _call(f, x)
    cols = []
    for j in range(n):
        acc = np.zeros(y0.size)
        for k, c in D1.items():
            e = np.zeros(n)
            e[j] = k * h
            acc += c * (_call(f, x + e).ravel() - _call(f, x - e).ravel())
        cols.append(acc / h)
    return np.stack(cols, axis=1) if cols else np.zeros((y0.size, 0))


def fd_gradient(f, x, h=1e-3):
    J = fd_jacobian(f, x, h)
    assert J.shape[0] == 1, "fd_gradient needs a scalar function"
    return J[0]


def fd_hessian(f, x, h=4e-3):
    """6th-order finite-difference Hessian of a scalar function from function values only."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    H = np.zeros((n, n))

    def fx(d):
        return float(_call(f, x + d))

    f0 = fx(np.zeros(n))
    for i in range(n):
        acc = D2[0] * f0
        for k in (1, 2, 3):
            e = np.zeros(n)
            e[i] = k * h
            acc += D2[k] * (fx(e) + fx(-e))
        H[i, i] = acc / h ** 2
        for j in range(i):
            acc = 0.0
            for ki, ci in D1.items():
                for kj, cj in D1.items():
                    for si in (1, -1):
                        for sj in (1, -1):
                            d = np.zeros(n)
                            d[i] = si * ki * h
                            d[j] = sj * kj * h
                            acc += si * sj * ci * cj * fx(d)
            H[i, j] = H[j, i] = acc / h ** 2
    return H


def assert_close(actual, desired, rtol=1e-9, atol=1e-9, err_msg=""):
    """assert_allclose with shape checking and NaN never equal to a number."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"shape {actual.shape} != {desired.shape} {err_msg}"
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, err_msg=err_msg)


def assert_fd_close(actual, desired, rtol=1e-6, atol=1e-6, err_msg=""):
    """Comparison against finite differences: tolerance relative to the largest entry."""
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    assert_close(actual, desired, rtol=rtol, atol=atol * scale, err_msg=err_msg)

