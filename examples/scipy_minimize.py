"""Minimise with scipy.optimize using exact derivatives from a jitad.function.

The Python function is recorded once per input shape; every f, f.grad, f.hessian and f.hessp
call that scipy makes afterwards replays the tape.
"""
import numpy as np
from scipy.optimize import minimize

import jitad


@jitad.function
def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


x0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])
res = minimize(rosen, x0, jac=rosen.grad, hess=rosen.hessian, method="trust-exact")
print(f"trust-exact : x = {res.x}, {res.nit} iterations")
res = minimize(rosen, x0, jac=rosen.grad, hessp=rosen.hessp, method="trust-krylov")
print(f"trust-krylov: x = {res.x}, {res.nit} iterations")


# Extra arguments (data) pass through scipy's args=; argnums=0 differentiates w.r.t. w only.
@jitad.function(argnums=0)
def logistic_loss(w, X, y, lam):
    return np.sum(np.log1p(np.exp(-y * (X @ w)))) + 0.5 * lam * w @ w


rng = np.random.default_rng(0)
X = rng.standard_normal((200, 5))
y = np.sign(X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.5 * rng.standard_normal(200))
res = minimize(logistic_loss, np.zeros(5), args=(X, y, 0.1), jac=logistic_loss.grad,
               hessp=logistic_loss.hessp, method="Newton-CG")
print(f"Newton-CG   : w = {res.x}, {res.nit} iterations")
print(f"Python function runs: rosen {rosen.n_traces}, logistic_loss {logistic_loss.n_traces}")
