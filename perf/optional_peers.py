"""The optional peers of the benchmarks (the `perf` extra), imported once each way.

Each function returns (module, None), or (None, note) when the library is missing: the scripts
print the note and skip that library's columns.
"""


def _missing(name, e, extra=""):
    return None, f"{name} not installed ({e}){extra}: its columns are skipped"


def jax():
    """jax with float64 enabled (jax.numpy is then `jax.numpy`)."""
    try:
        import jax
        import jax.numpy  # noqa: F401  (imported for the attribute)
    except ImportError as e:  # pragma: no cover - depends on the machine
        return _missing("JAX", e)
    jax.config.update("jax_enable_x64", True)
    return jax, None


def torch():
    """torch with float64 as the default dtype (also loads torch.autograd.functional and
    torch.func)."""
    try:
        import torch
        import torch.autograd.functional  # noqa: F401
        import torch.func  # noqa: F401
    except ImportError as e:  # pragma: no cover
        return _missing("torch", e)
    torch.set_default_dtype(torch.float64)
    return torch, None


def casadi():
    try:
        import casadi
    except ImportError as e:  # pragma: no cover
        return _missing("CasADi", e, ", `pip install casadi`")
    return casadi, None
