"""Hand-written @njit Hessian-vector products and dense Hessians: the ceiling of bench_peers.py.

perf/problems.py holds the hand-written value and gradient of each problem; this module adds
the second order (and `sum(x**3)`, which problems.py does not have). Every function takes the
flat input vector x of length n first, then the problem's constant data (`Problem.ref_args`):

    hvp(x, v, *ref_args) -> (n,)        H(x) @ v, matrix-free
    hess(x, *ref_args)   -> (n, n)      dense, symmetric

Imports numpy and numba only, so a fresh process can time its first Hessian without jitad.
"""
import numpy as np
from numba import njit

_njit = njit(cache=True, error_model="numpy", nogil=True)


# ------------------------------------------------------------------ chained Rosenbrock
# f = sum_i 100 a_i^2 + b_i^2 with a_i = x[i+1] - x[i]^2, b_i = 1 - x[i]
@_njit
def rosenbrock_hvp(x, v):
    n = x.shape[0]
    hv = np.zeros(n)
    for i in range(n - 1):
        dii = 1200.0 * x[i] * x[i] - 400.0 * x[i + 1] + 2.0
        off = -400.0 * x[i]
        hv[i] += dii * v[i] + off * v[i + 1]
        hv[i + 1] += off * v[i] + 200.0 * v[i + 1]
    return hv


@_njit
def rosenbrock_hess(x):
    n = x.shape[0]
    H = np.zeros((n, n))
    for i in range(n - 1):
        H[i, i] += 1200.0 * x[i] * x[i] - 400.0 * x[i + 1] + 2.0
        H[i, i + 1] -= 400.0 * x[i]
        H[i + 1, i] -= 400.0 * x[i]
        H[i + 1, i + 1] += 200.0
    return H


# ------------------------------------------------------------------ logistic regression
# f = sum_k log1p(exp(-y_k z_k)) + lam/2 w.w with z = X w; d2/dz2 = y^2 e / (1 + e)^2, e = exp(-y z)
@_njit
def _logistic_curvature(w, X, y):
    m, d = X.shape
    s = np.empty(m)
    for k in range(m):
        z = 0.0
        for j in range(d):
            z += X[k, j] * w[j]
        e = np.exp(-y[k] * z)
        s[k] = y[k] * y[k] * e / ((1.0 + e) * (1.0 + e))
    return s


@_njit
def logistic_hvp(w, v, X, y, lam):
    m, d = X.shape
    s = _logistic_curvature(w, X, y)
    hv = lam * v
    for k in range(m):
        xv = 0.0
        for j in range(d):
            xv += X[k, j] * v[j]
        c = s[k] * xv
        for j in range(d):
            hv[j] += c * X[k, j]
    return hv


@_njit
def logistic_hess(w, X, y, lam):
    m, d = X.shape
    s = _logistic_curvature(w, X, y)
    H = np.zeros((d, d))
    for k in range(m):  # upper triangle of X^T diag(s) X, then mirrored
        for i in range(d):
            c = s[k] * X[k, i]
            for j in range(i, d):
                H[i, j] += c * X[k, j]
    for i in range(d):
        H[i, i] += lam
        for j in range(i + 1, d):
            H[j, i] = H[i, j]
    return H


# ------------------------------------------------------------------ Lennard-Jones
# E = sum_pairs 4 (u^-6 - u^-3) with u = |d|^2, d = x_i - x_j: the pair's 3x3 block is
# B = 4 E''(u) d d^T + 2 E'(u) I, added to (i,i) and (j,j) and subtracted from (i,j) and (j,i).
@_njit
def _lj_pair(x, i, j):
    dx = x[3 * i] - x[3 * j]
    dy = x[3 * i + 1] - x[3 * j + 1]
    dz = x[3 * i + 2] - x[3 * j + 2]
    inv = 1.0 / (dx * dx + dy * dy + dz * dz)
    inv3 = inv * inv * inv
    e1 = 4.0 * inv * inv3 * (3.0 - 6.0 * inv3)            # dE/du = 4(-6 u^-7 + 3 u^-4)
    e2 = 4.0 * inv * inv * inv3 * (42.0 * inv3 - 12.0)    # d2E/du2 = 4(42 u^-8 - 12 u^-5)
    return dx, dy, dz, e1, e2


@_njit
def lj_hvp(x, v):
    n = x.shape[0] // 3
    hv = np.zeros(x.shape[0])
    d = np.empty(3)
    for i in range(n):
        for j in range(i + 1, n):
            d[0], d[1], d[2], e1, e2 = _lj_pair(x, i, j)
            dv = 0.0
            for a in range(3):
                dv += d[a] * (v[3 * i + a] - v[3 * j + a])
            for a in range(3):
                t = 4.0 * e2 * d[a] * dv + 2.0 * e1 * (v[3 * i + a] - v[3 * j + a])
                hv[3 * i + a] += t
                hv[3 * j + a] -= t
    return hv


@_njit
def lj_hess(x):
    n = x.shape[0] // 3
    H = np.zeros((x.shape[0], x.shape[0]))
    d = np.empty(3)
    for i in range(n):
        for j in range(i + 1, n):
            d[0], d[1], d[2], e1, e2 = _lj_pair(x, i, j)
            for a in range(3):
                for b in range(3):
                    B = 4.0 * e2 * d[a] * d[b] + (2.0 * e1 if a == b else 0.0)
                    H[3 * i + a, 3 * i + b] += B
                    H[3 * j + a, 3 * j + b] += B
                    H[3 * i + a, 3 * j + b] -= B
                    H[3 * j + a, 3 * i + b] -= B
    return H


# ------------------------------------------------------------------ sum(x**3)
@_njit
def cube_f(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i] * x[i]
    return s


@_njit
def cube_g(x):
    return 3.0 * x * x


@_njit
def cube_hvp(x, v):
    return 6.0 * x * v


@_njit
def cube_hess(x):
    n = x.shape[0]
    H = np.zeros((n, n))
    for i in range(n):
        H[i, i] = 6.0 * x[i]
    return H
