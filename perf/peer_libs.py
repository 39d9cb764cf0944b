"""One adapter per library for perf/bench_peers.py: build the four operations of a PeerCase.

    lib = JAX()                      # lib.note is a string when the library is missing
    ops = lib.prepare(case, xs, v)   # {(op, column): Op or note string}, setup seconds in lib.setup

op is "value", "gradient", "hvp" or "hessian"; column is the table column ("JAX", "torch
AF vec=True", ...; see peer_table.kind for the naming convention). An Op holds the callable, its
argument tuples (one per point: calls alternate between points, so no library can answer from
the previous call's cache), and a function turning its result into a NumPy array, which
bench_peers checks against the hand-written ceiling before timing anything.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np

import optional_peers

OPS = ("value", "gradient", "hvp", "hessian")


@dataclass
class Op:
    fn: object
    args: list                       # one argument tuple per point
    to_numpy: object = np.asarray    # result -> ndarray, for the correctness check


def _skip_hessian(case):
    gb = case.n * case.n * 8 / 1e9
    return f"skipped: dense {case.n}x{case.n} is {gb:,.0f} GB"


class Library:
    name = ""
    note = None      # why the library is skipped, or None

    def __init__(self):
        self.setup = {}   # (case key, what) -> seconds: recording, compiling, ...

    def prepare(self, case, xs, v):
        raise NotImplementedError

    def close(self):
        """Release files or resources held for the run."""

    def describe(self):
        """Version and settings, for the report."""
        return self.name


# ------------------------------------------------------------------ jitad
class Jitad(Library):
    """The Tape, recorded once per case: tape.forward/gradient/hvp/hessian (replay); the
    Hessian also with numba.set_num_threads(1), and one-shot (`jitad.hessian(func, x)`,
    recording included)."""
    name = "jitad"

    def __init__(self):
        super().__init__()
        import numba

        import jitad
        self.jitad, self.numba = jitad, numba

    def describe(self):
        try:
            layer = f", threading layer {self.numba.threading_layer()}"
        except ValueError:  # no parallel region ran
            layer = ""
        where = os.path.dirname(os.path.dirname(os.path.abspath(self.jitad.__file__)))
        return (f"jitad {self.jitad.__version__} from {where} (Tape; "
                f"{self.numba.get_num_threads()} Numba threads{layer})")

    def prepare(self, case, xs, v):
        t0 = time.perf_counter()
        tape = self.jitad.record(case.flat_func(), xs[0])
        self.setup[(case.key, "record")] = time.perf_counter() - t0
        pts = [(x,) for x in xs]
        ops = {("value", "jitad"): Op(tape.forward, pts),
               ("gradient", "jitad"): Op(tape.gradient, pts),
               ("hvp", "jitad"): Op(tape.hvp, [(x, v) for x in xs])}
        if not case.dense:
            ops[("hessian", "jitad")] = ops[("hessian", "jitad 1 thread")] = _skip_hessian(case)
            ops[("hessian", "jitad one-shot")] = _skip_hessian(case)
            return ops
        numba = self.numba

        def hessian_1thread(x):  # the parallel Hessian suffers most when other processes
            prev = numba.get_num_threads()  # hold the cores: both are reported
            numba.set_num_threads(1)
            try:
                return tape.hessian(x)
            finally:
                numba.set_num_threads(prev)

        func = case.flat_func()

        def one_shot(x):  # issue 4: recording included, against torch AF vec=True
            return self.jitad.hessian(func, x)

        ops[("hessian", "jitad")] = Op(tape.hessian, pts)
        ops[("hessian", "jitad 1 thread")] = Op(hessian_1thread, pts)
        ops[("hessian", "jitad one-shot")] = Op(one_shot, pts)
        return ops


# ------------------------------------------------------------------ hand-written @njit
class Njit(Library):
    """The ceiling: hand-written @njit loops (perf/problems.py, perf/ceilings.py)."""
    name = "njit"

    def describe(self):
        return "hand-written @njit (ceiling, 1 thread)"

    def prepare(self, case, xs, v):
        p = case.p
        c = p.ref_args
        ops = {("value", "njit"): Op(p.ref_f, [(x, *c) for x in xs]),
               ("gradient", "njit"): Op(p.ref_grad, [(x, *c) for x in xs]),
               ("hvp", "njit"): Op(case.ref_hvp, [(x, v, *c) for x in xs])}
        ops[("hessian", "njit")] = (Op(case.ref_hess, [(x, *c) for x in xs]) if case.dense
                                    else _skip_hessian(case))
        return ops


# ------------------------------------------------------------------ JAX
class JAX(Library):
    """jax.jit of the function, grad, jvp(grad) and hessian; float64 on the CPU. The first call
    (trace and XLA compile) is setup."""
    name = "JAX"

    def __init__(self):
        super().__init__()
        jax, self.note = optional_peers.jax()
        if jax is None:
            return
        self.jax, self.jnp = jax, jax.numpy

    def describe(self):
        return f"JAX {self.jax.__version__} ({self.jax.default_backend()}, float64)"

    def prepare(self, case, xs, v):
        jax, jnp = self.jax, self.jnp

        def f(x):
            return case.jax_f(x, jnp)

        g = jax.grad(f)
        fns = {"value": jax.jit(f), "gradient": jax.jit(g),
               "hvp": jax.jit(lambda x, u: jax.jvp(g, (x,), (u,))[1]),
               "hessian": jax.jit(jax.hessian(f))}
        pts = [jnp.asarray(x) for x in xs]
        vj = jnp.asarray(v)
        ops = {}
        for op, fn in fns.items():
            if op == "hessian" and not case.dense:
                ops[(op, "JAX")] = _skip_hessian(case)
                continue
            args = [(x, vj) if op == "hvp" else (x,) for x in pts]
            t0 = time.perf_counter()
            fn(*args[0]).block_until_ready()
            self.setup[(case.key, f"jit {op}")] = time.perf_counter() - t0
            ops[(op, "JAX")] = Op(lambda *a, fn=fn: fn(*a).block_until_ready(), args)
        return ops


# ------------------------------------------------------------------ torch
class Torch(Library):
    """Eager torch, float64: value under no_grad, gradient by autograd.grad, HVP by double
    backward (autograd.grad of the create_graph gradient), and the three dense Hessians of the
    issue."""
    name = "torch"

    def __init__(self):
        super().__init__()
        torch, self.note = optional_peers.torch()
        if torch is None:
            return
        self.torch, self.taf = torch, torch.autograd.functional

    def describe(self):
        return (f"torch {self.torch.__version__} ({self.torch.get_num_threads()} threads, "
                "float64)")

    def prepare(self, case, xs, v):
        torch, taf = self.torch, self.taf

        def f(x):
            return case.torch_f(x, torch)

        def value(x):
            with torch.no_grad():
                return f(x)

        def gradient(x):
            x = x.detach().requires_grad_(True)
            return torch.autograd.grad(f(x), x)[0]

        def hvp(x, u):  # double backward: 4-6x faster here than torch.func.jvp(grad)
            x = x.detach().requires_grad_(True)
            g = torch.autograd.grad(f(x), x, create_graph=True)[0]
            return torch.autograd.grad(g, x, u)[0]

        func_hessian = torch.func.hessian(f)

        def af_hessian(vec):
            def h(x):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return taf.hessian(f, x, vectorize=vec)
            return h

        pts = [torch.from_numpy(x.copy()) for x in xs]
        vt = torch.from_numpy(v.copy())
        args = [(x,) for x in pts]

        def conv(t):
            return t.detach().numpy()

        ops = {("value", "torch"): Op(value, args, conv),
               ("gradient", "torch"): Op(gradient, args, conv),
               ("hvp", "torch"): Op(hvp, [(x, vt) for x in pts], conv)}
        for col, fn in (("torch AF vec=True", af_hessian(True)),
                        ("torch AF vec=False", af_hessian(False)),
                        ("torch.func", func_hessian)):
            ops[("hessian", col)] = Op(fn, args, conv) if case.dense else _skip_hessian(case)
        return ops


# ------------------------------------------------------------------ CasADi
GCC_MAX_INSTRUCTIONS = 40_000  # larger generated C takes minutes of gcc: skipped with a note
GCC_TIMEOUT = 45.0             # seconds per function
CASADI_HESSIAN_MAX = 20e6      # estimated SX instructions (gradient's times n) of a dense Hessian:
#                                logistic 1000x200 (~2e8) takes minutes to build: skipped unless
#                                --casadi-big
GCC_BUDGET = 150.0             # seconds of gcc per run, after which the gcc variant is skipped


def compile_shared(gcc, c_file, so_file, timeout):
    """gcc -O1 -shared c_file -> so_file; None or a note. On timeout the whole process group
    is killed (killing the gcc driver alone leaves cc1 running)."""
    proc = subprocess.Popen([gcc, "-O1", "-fPIC", "-shared", c_file, "-o", so_file],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"gcc -O1 over {timeout:.0f} s"
    return None if proc.returncode == 0 else f"gcc failed ({err.decode()[-80:]!r})"


class CasADi(Library):
    """CasADi SX graph of the same function; casadi.Function for value, gradient, HVP (jtimes of
    the gradient) and the densified Hessian, called through the zero-copy buffer API
    (`f.buffer()`: set_arg/set_res on NumPy memory, then eval) so Python overhead stays small.
    "CasADi VM" runs CasADi's SX virtual machine; "CasADi gcc" is the same Function generated as
    C and compiled with `gcc -O1` (compile time reported as setup; skipped when the generated
    code is too large, gcc is missing, the compile times out or the run's gcc budget is spent).
    The generated C and the libraries go to a temporary directory, removed by close()."""
    name = "CasADi"

    def __init__(self, gcc=True, big=False):
        super().__init__()
        self.big = big
        self.ca, self.note = optional_peers.casadi()
        if self.ca is None:
            return
        self.gcc = shutil.which("gcc") if gcc else None
        self.gcc_note = (None if self.gcc else
                         "skipped: " + ("no gcc on PATH" if gcc else "--no-casadi-gcc"))
        self.tmp = tempfile.mkdtemp(prefix="bench_peers_casadi_")
        self.gcc_spent = 0.0

    def close(self):
        shutil.rmtree(getattr(self, "tmp", ""), ignore_errors=True)

    def describe(self):
        return f"CasADi {self.ca.__version__} (" + (
            f"gcc variant: {self.gcc} -O1)" if self.gcc else "no gcc variant)")

    def _functions(self, case):
        ca = self.ca
        t0 = time.perf_counter()
        x = ca.SX.sym("x", case.n)
        v = ca.SX.sym("v", case.n)
        fx = case.casadi_f(x, ca)
        g = ca.gradient(fx, x)
        tag = case.key.replace("-", "_")  # Function names double as C symbol names
        fns = {"value": ca.Function(f"val_{tag}", [x], [fx]),
               "gradient": ca.Function(f"grad_{tag}", [x], [g]),
               "hvp": ca.Function(f"hvp_{tag}", [x, v], [ca.jtimes(g, x, v)])}
        estimate = fns["gradient"].n_instructions() * case.n
        if case.dense and (self.big or estimate <= CASADI_HESSIAN_MAX):
            fns["hessian"] = ca.Function(f"hes_{tag}", [x],
                                         [ca.densify(ca.hessian(fx, x)[0])])
        elif case.dense:
            fns["hessian"] = (f"skipped: SX Hessian ~{estimate:.0e} instructions, minutes to "
                              "build (--casadi-big)")
        self.setup[(case.key, "SX graph and Functions")] = time.perf_counter() - t0
        return fns

    def _compile(self, case, op, fn):
        """(compiled Function, None) or (None, note)."""
        if self.gcc is None:
            return None, self.gcc_note
        size = fn.n_instructions()
        if size > GCC_MAX_INSTRUCTIONS:
            return None, f"skipped: {size:,} SX instructions (gcc limit {GCC_MAX_INSTRUCTIONS:,})"
        if self.gcc_spent > GCC_BUDGET:
            return None, f"skipped: this run's {GCC_BUDGET:.0f} s of gcc are spent"
        name = fn.name()
        t0 = time.perf_counter()
        c_file = os.path.join(self.tmp, name + ".c")
        so_file = os.path.join(self.tmp, name + ".so")
        shutil.move(fn.generate(name + ".c"), c_file)  # generate() writes into the cwd
        note = compile_shared(self.gcc, c_file, so_file, GCC_TIMEOUT)
        spent = time.perf_counter() - t0
        self.gcc_spent += spent
        if note:
            return None, f"skipped: {note} ({size:,} instructions)"
        self.setup[(case.key, f"gcc {op}")] = spent
        return self.ca.external(name, so_file), None

    def _op(self, fn, case, op, xs, v):
        """Op calling fn through one buffer per point; results land in a shared NumPy array."""
        n = case.n
        out = np.zeros(1 if op == "value" else (n * n if op == "hessian" else n))
        calls = []
        self._keep = getattr(self, "_keep", [])
        for x in xs:
            x = np.ascontiguousarray(x, dtype=np.float64)
            buf, trigger = fn.buffer()
            buf.set_arg(0, memoryview(x))
            if op == "hvp":
                buf.set_arg(1, memoryview(v))
            buf.set_res(0, memoryview(out))
            self._keep.append((x, buf, trigger))  # the buffer holds raw pointers into x and out
            calls.append((trigger,))

        def to_numpy(_):
            return out.reshape(n, n).T.copy() if op == "hessian" else out.copy()

        return Op(lambda trigger: trigger(), calls, to_numpy)

    def prepare(self, case, xs, v):
        v = np.ascontiguousarray(v, dtype=np.float64)
        fns = self._functions(case)
        ops = {}
        for op in OPS:
            if op not in fns or isinstance(fns[op], str):
                note = fns.get(op) or _skip_hessian(case)
                ops[(op, "CasADi VM")] = ops[(op, "CasADi gcc")] = note
                continue
            ops[(op, "CasADi VM")] = self._op(fns[op], case, op, xs, v)
            compiled, note = self._compile(case, op, fns[op])
            ops[(op, "CasADi gcc")] = note or self._op(compiled, case, op, xs, v)
        return ops


NAMES = ("jitad", "njit", "jax", "torch", "casadi")  # column order


def libraries(names=None, casadi_gcc=True, casadi_big=False):
    """The adapters named in `names` (all by default), in column order."""
    makers = {"jitad": Jitad, "njit": Njit, "jax": JAX, "torch": Torch,
              "casadi": lambda: CasADi(gcc=casadi_gcc, big=casadi_big)}
    unknown = set(names or ()) - set(makers)
    if unknown:
        raise ValueError(f"unknown libraries {sorted(unknown)}; choose from {sorted(makers)}")
    return [makers[k]() for k in makers if names is None or k in names]
