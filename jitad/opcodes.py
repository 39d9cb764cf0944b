"""Every tape operation, enumerated in one place.

A tape op writes one slot. Its operands are *edges* (CSR lists into the slot array) and its
nonzero second partials are *terms* (pairs of its own edges). The derivative sweeps never look
at op codes: they only read the per-edge first partials and per-term second partials that the
forward sweep stores (see `rules.py`), so adding an operation touches this table, the rule and
the recording front end only.

Op code layout (uint8):
  CONST              no edges; value = param
  LIN                v = param + sum(coef[e] * x[arg[e]]); linear, no terms
  DOT                v = param + sum(x[arg[2k]] * x[arg[2k+1]]); term (2k, 2k+1) per pair
  SELECT             edges (cond, a, b): v = a if x[cond] != 0 else b (np.where); no terms
  UNARY_BASE + k     one edge; one term (0, 0) unless the op is piecewise linear
  BINARY_BASE + 3*k + mode
                     mode VV: edges (a, b); mode VC: edge a, b = param; mode CV: a = param, edge b
"""
import numpy as np

CONST = 0
LIN = 1
DOT = 2
SELECT = 3

# Comparison kinds, shared by the comparison ops (value 1.0/0.0, zero derivative) and the
# guards a tape checks at every point (`guards.py`). CMP_SWAP[k]: the kind with operands swapped.
LT, LE, GT, GE, EQ, NE = range(6)
CMP_NAMES = ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal")
CMP_SYMBOLS = ("<", "<=", ">", ">=", "==", "!=")
CMP_SWAP = (GT, GE, LT, LE, EQ, NE)

UNARY_BASE = 8
# name, numpy ufunc name(s), has a nonzero second derivative
UNARY = [
    ("sin", True), ("cos", True), ("tan", True),
    ("arcsin", True), ("arccos", True), ("arctan", True),
    ("sinh", True), ("cosh", True), ("tanh", True),
    ("arcsinh", True), ("arccosh", True), ("arctanh", True),
    ("exp", True), ("exp2", True), ("expm1", True),
    ("log", True), ("log2", True), ("log10", True), ("log1p", True),
    ("sqrt", True), ("cbrt", True), ("square", True), ("reciprocal", True),
    ("absolute", False), ("sign", False), ("floor", False), ("ceil", False), ("rint", False),
    ("erf", True), ("expit", True), ("gammaln", True),
]
UNARY_CODE = {name: UNARY_BASE + k for k, (name, _) in enumerate(UNARY)}

BINARY_BASE = 64
VV, VC, CV = 0, 1, 2
# name, second-derivative term pattern in mode VV (local edge pairs)
_FULL = ((0, 0), (0, 1), (1, 1))
BINARY = [
    ("multiply", ((0, 1),)),
    ("divide", ((0, 1), (1, 1))),
    ("power", _FULL),
    ("arctan2", _FULL),
    ("hypot", _FULL),
    ("maximum", ()),
    ("minimum", ()),
    ("fmax", ()),
    ("fmin", ()),
    ("logaddexp", _FULL),
    # comparisons in CMP order: 1.0 or 0.0, zero derivative (binary_rule kind 10 + CMP kind)
    *((name, ()) for name in CMP_NAMES),
]
CMP_BASE_KIND = 10
assert BINARY[CMP_BASE_KIND][0] == CMP_NAMES[0]
BINARY_KIND = {name: k for k, (name, _) in enumerate(BINARY)}
N_CODES = BINARY_BASE + 3 * len(BINARY)


def binary_code(name, mode):
    return BINARY_BASE + 3 * BINARY_KIND[name] + mode


def _build_tables():
    """Per op code: edge count (-1 = variable) and local term pattern."""
    names = ["?"] * N_CODES
    terms = [None] * N_CODES
    names[CONST], terms[CONST] = "const", ()
    names[LIN], terms[LIN] = "lin", ()
    names[DOT], terms[DOT] = "dot", None  # pairs, built per op
    names[SELECT], terms[SELECT] = "select", ()
    for k, (name, nonlinear) in enumerate(UNARY):
        names[UNARY_BASE + k] = name
        terms[UNARY_BASE + k] = ((0, 0),) if nonlinear else ()
    for k, (name, pattern) in enumerate(BINARY):
        base = BINARY_BASE + 3 * k
        names[base + VV], terms[base + VV] = name, pattern
        # one traced operand: its own diagonal term, present when the VV pattern has it
        names[base + VC], terms[base + VC] = name + "[x,c]", ((0, 0),) if (0, 0) in pattern else ()
        names[base + CV], terms[base + CV] = name + "[c,x]", ((0, 0),) if (1, 1) in pattern else ()
    return names, terms


OP_NAMES, TERM_PATTERN = _build_tables()
VALID_CODES = np.array([n != "?" for n in OP_NAMES], dtype=bool)


def edge_count(code, n_edges):
    """Number of edges an op with this code must have (None when variable)."""
    if code in (LIN, DOT):
        return None
    if code == CONST:
        return 0
    if code == SELECT:
        return 3
    if code < BINARY_BASE:
        return 1
    return 2 if (code - BINARY_BASE) % 3 == VV else 1
