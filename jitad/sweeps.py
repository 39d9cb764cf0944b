"""Numba-compiled sweeps over the flat tape arrays.

Slots: 0..n_in-1 hold the inputs, slot n_in+i holds the result of op i. Op i's operands are
arg[eptr[i]:eptr[i+1]] (edges) and its second-order terms are ta/tb[tptr[i]:tptr[i+1]] (pairs of
global edge indices). `forward` computes values and stores, per point, each edge's first
partial (d1) and each term's second partial (d2); all other sweeps are op-agnostic
multiply-adds over those. Arrays reaching these functions are validated in `tape.py`
(no bounds checks here).
"""
import numpy as np
from numba import njit, prange

from . import opcodes as oc
from .rules import binary_rule, unary_rule

_jit = njit(cache=True, error_model="numpy", nogil=True)
_pjit = njit(cache=True, error_model="numpy", nogil=True, parallel=True)


@_jit
def forward(code, param, eptr, arg, coef, tptr, n_in, x, partials):
    """Values of all slots; with `partials`, also d1 (per edge) and d2 (per term)."""
    n_ops = code.shape[0]
    val = np.empty(n_in + n_ops)
    val[:n_in] = x
    d1 = np.empty(arg.shape[0] if partials else 0)
    d2 = np.empty(tptr[n_ops] if partials else 0)
    for i in range(n_ops):
        c = code[i]
        e0 = eptr[i]
        e1 = eptr[i + 1]
        if c == oc.LIN:
            v = param[i]
            for e in range(e0, e1):
                v += coef[e] * val[arg[e]]
                if partials:
                    d1[e] = coef[e]
        elif c >= oc.BINARY_BASE:
            mode = (c - oc.BINARY_BASE) % 3
            if mode == oc.VV:
                a = val[arg[e0]]
                b = val[arg[e0 + 1]]
            elif mode == oc.VC:
                a = val[arg[e0]]
                b = param[i]
            else:
                a = param[i]
                b = val[arg[e0]]
            v, da, db, daa, dab, dbb = binary_rule(c, a, b, mode != oc.CV, mode != oc.VC)
            if partials:
                t0 = tptr[i]
                nt = tptr[i + 1] - t0
                if mode == oc.VV:
                    d1[e0] = da
                    d1[e0 + 1] = db
                    if nt == 3:
                        d2[t0] = daa
                        d2[t0 + 1] = dab
                        d2[t0 + 2] = dbb
                    elif nt == 2:  # divide: (0,1), (1,1)
                        d2[t0] = dab
                        d2[t0 + 1] = dbb
                    elif nt == 1:  # multiply: (0,1)
                        d2[t0] = dab
                elif mode == oc.VC:
                    d1[e0] = da
                    if nt == 1:
                        d2[t0] = daa
                else:
                    d1[e0] = db
                    if nt == 1:
                        d2[t0] = dbb
        elif c >= oc.UNARY_BASE:
            v, d, dd = unary_rule(c, val[arg[e0]], partials)
            if partials:
                d1[e0] = d
                if tptr[i + 1] > tptr[i]:
                    d2[tptr[i]] = dd
        elif c == oc.DOT:
            v = param[i]
            t = tptr[i]
            for e in range(e0, e1, 2):
                a = val[arg[e]]
                b = val[arg[e + 1]]
                v += a * b
                if partials:
                    d1[e] = b
                    d1[e + 1] = a
                    d2[t] = 1.0
                    t += 1
        else:  # CONST
            v = param[i]
        val[n_in + i] = v
    return val, d1, d2


@_jit
def gather(val, out):
    y = np.empty(out.shape[0])
    for k in range(out.shape[0]):
        y[k] = val[out[k]]
    return y


@_jit
def reverse1(eptr, arg, d1, n_in, out, w):
    """Adjoints of all slots for output weights w (m,): one reverse sweep."""
    n_ops = eptr.shape[0] - 1
    adj = np.zeros(n_in + n_ops)
    for k in range(out.shape[0]):
        adj[out[k]] += w[k]
    for i in range(n_ops - 1, -1, -1):
        a = adj[n_in + i]
        for e in range(eptr[i], eptr[i + 1]):
            adj[arg[e]] += a * d1[e]
    return adj


@_jit
def reverse(eptr, arg, d1, n_in, out, W):
    """Adjoints (n_slots, k) for k weight vectors W (k, m)."""
    n_ops = eptr.shape[0] - 1
    k = W.shape[0]
    adj = np.zeros((n_in + n_ops, k))
    for r in range(out.shape[0]):
        s = out[r]
        for j in range(k):
            adj[s, j] += W[j, r]
    for i in range(n_ops - 1, -1, -1):
        s = n_in + i
        for e in range(eptr[i], eptr[i + 1]):
            t = arg[e]
            de = d1[e]
            for j in range(k):
                adj[t, j] += de * adj[s, j]
    return adj


@_jit
def tangent(eptr, arg, d1, n_in, V):
    """Tangents (n_slots, k) of all slots for input directions V (n_in, k)."""
    n_ops = eptr.shape[0] - 1
    k = V.shape[1]
    dot = np.zeros((n_in + n_ops, k))
    dot[:n_in, :] = V
    for i in range(n_ops):
        s = n_in + i
        for e in range(eptr[i], eptr[i + 1]):
            t = arg[e]
            de = d1[e]
            for j in range(k):
                dot[s, j] += de * dot[t, j]
    return dot


@_jit
def hvp(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, V):
    """Forward-over-reverse: (n_in, k) = H_w @ V, given first-order adjoints adj for weights w."""
    n_ops = eptr.shape[0] - 1
    k = V.shape[1]
    dot = tangent(eptr, arg, d1, n_in, V)
    bar = np.zeros((n_in + n_ops, k))
    for i in range(n_ops - 1, -1, -1):
        s = n_in + i
        for e in range(eptr[i], eptr[i + 1]):
            t = arg[e]
            de = d1[e]
            for j in range(k):
                bar[t, j] += de * bar[s, j]
        a = adj[s]
        for t in range(tptr[i], tptr[i + 1]):
            c = a * d2[t]
            if c == 0.0:
                continue
            p = ta[t]
            q = tb[t]
            sp = arg[p]
            sq = arg[q]
            for j in range(k):
                bar[sp, j] += c * dot[sq, j]
            if p != q:
                for j in range(k):
                    bar[sq, j] += c * dot[sp, j]
    return bar[:n_in, :].copy()


@_pjit
def hessian(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, block):
    """Dense (n_in, n_in) Hessian: blocks of `block` rows as multi-direction HVPs in prange."""
    n_blocks = (n_in + block - 1) // block
    H = np.empty((n_in, n_in))
    for b in prange(n_blocks):
        j0 = b * block
        k = min(n_in, j0 + block) - j0
        V = np.zeros((n_in, k))
        for j in range(k):
            V[j0 + j, j] = 1.0
        R = hvp(eptr, arg, d1, tptr, ta, tb, d2, n_in, adj, V)
        for j in range(k):
            H[j0 + j, :] = R[:, j]
    return H


@_pjit
def jacobian_forward(eptr, arg, d1, n_in, out, block):
    """(m, n_in) Jacobian from blocks of input directions in prange."""
    m = out.shape[0]
    n_blocks = (n_in + block - 1) // block
    J = np.empty((m, n_in))
    for b in prange(n_blocks):
        j0 = b * block
        k = min(n_in, j0 + block) - j0
        V = np.zeros((n_in, k))
        for j in range(k):
            V[j0 + j, j] = 1.0
        dot = tangent(eptr, arg, d1, n_in, V)
        for r in range(m):
            for j in range(k):
                J[r, j0 + j] = dot[out[r], j]
    return J


@_pjit
def jacobian_reverse(eptr, arg, d1, n_in, out, block):
    """(m, n_in) Jacobian from blocks of output adjoints in prange."""
    m = out.shape[0]
    n_blocks = (m + block - 1) // block
    J = np.empty((m, n_in))
    for b in prange(n_blocks):
        r0 = b * block
        k = min(m, r0 + block) - r0
        W = np.zeros((k, m))
        for j in range(k):
            W[j, r0 + j] = 1.0
        adj = reverse(eptr, arg, d1, n_in, out, W)
        for j in range(k):
            for c in range(n_in):
                J[r0 + j, c] = adj[c, j]
    return J


@_jit
def influence(eptr, arg, n_in, out):
    """Which inputs some output structurally depends on (reverse reachability)."""
    n_ops = eptr.shape[0] - 1
    live = np.zeros(n_in + n_ops, dtype=np.bool_)
    for k in range(out.shape[0]):
        live[out[k]] = True
    for i in range(n_ops - 1, -1, -1):
        if live[n_in + i]:
            for e in range(eptr[i], eptr[i + 1]):
                live[arg[e]] = True
    return live[:n_in].copy()
