"""`python -m jitad`: versions, threading, and a short demonstration through the public API."""
import time

import numba
import numpy as np

import jitad
from jitad.threads import threading_layer


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def main():
    print(f"jitad {jitad.__version__}, numpy {np.__version__}, numba {numba.__version__}")
    x = np.linspace(-1.0, 1.0, 6)
    tape = jitad.record(rosenbrock, x)  # compiles (or loads) the sweeps on first use
    tape.hessian(x)
    print(f"numba threading layer: {threading_layer()}, threads: {numba.get_num_threads()}")
    print()
    print("f(x) = sum(100*(x[1:] - x[:-1]**2)**2 + (1 - x[:-1])**2)   (chained Rosenbrock)")
    print(f"x = {x}")
    print(tape)
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    print(f"value    f(x) = {tape.forward(x)[0]:.6f}")
    print(f"gradient g(x) = {tape.gradient(x)}")
    print("Hessian  H(x) =")
    print(tape.hessian(x))
    n = 1000
    xb = np.linspace(-1.0, 1.0, n)
    big = jitad.record(rosenbrock, xb)
    big.hessian(xb)
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        big.hessian(xb)
    dt = (time.perf_counter() - t0) / reps
    print(f"one dense Hessian of Rosenbrock n={n} ({len(big)} ops): {dt * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
