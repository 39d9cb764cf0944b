"""Dense Hessians from second-order interactions (see `interaction_sweeps.py` for the math).

`Tape.hessian` uses it when `InteractionPlan.use` says it is estimated to beat n
multi-direction HVP sweeps on its tape; the plan (row patterns, cost) is built once per tape.
"""
import numba
import numpy as np

from . import interaction_sweeps as ik
from . import dense_out, workspace
from .threads import parallel

# Row storage allowed per plan, in entries per tape edge/slot: beyond it rows are too dense
# for this method to win and the plan gives up (bounded build time and memory).
_NNZ_PER_EDGE = 4
# Rows per dense group (and length of each) from which BLAS takes their outer products.
_GROUP_MIN_ROWS = 8
_GROUP_MIN_LENGTH = 8
# Longest constant group rows whose outer products `gram` takes: beyond, BLAS syrk is faster
# (1000 rows, gram against sqrt-split + syrk: 9.5/33 us at length 10, 60/61 at 30, 137/119 at
# 50, 741/271 at 100)
_GRAM_MAX_LENGTH = 32
# Outer-product work below which the accumulation stays in the calling thread.
_SERIAL_WORK = 200_000


# A tape used for one Hessian (the functional jitad.hessian) with at most this many inputs
# takes dense rows and no plan (`dense_rows_hessian`), when its rows take at most
# DENSE_ROWS_MAX_ENTRIES entries
DENSE_ROWS_MAX_N = 16
DENSE_ROWS_MAX_ENTRIES = 1 << 21


def one_shot_hessian(tape, x, w):
    """The (n, n) Hessian of a tape used once, from dense rows without a plan (x, w validated
    by the caller), or None when n > DENSE_ROWS_MAX_N, the rows would be too large or an
    entry is not finite. Runs the forward sweep (and the guard check) at x. Not for replayed
    tapes: `Tape.hessian` keeps one method per tape, so that its results do not change in the
    last bits between calls."""
    n = tape.n_inputs
    if n > DENSE_ROWS_MAX_N or tape.n_slots * n > DENSE_ROWS_MAX_ENTRIES:
        return None
    _, d1, d2, adj = tape._point_arrays(x)
    ns = tape.n_slots
    # keyed by size, not by tape: jitad.hessian(f, x) in a loop records a new tape each call
    work = workspace.cached(("ih_dense", ns, n), lambda: (
        workspace.buffer("ih_dense_rows", (ns, n)),
        workspace.buffer("ih_dense_base", (ns,), np.int32),
        workspace.buffer("ih_dense_scale", (ns,)),
        workspace.buffer("ih_dense_weight", (ns,)),
        workspace.buffer("ih_dense_terms", (n, ns)),
        workspace.buffer("ih_dense_weights", (2, ns)),
        workspace.buffer("ih_dense_pair", (2, n))))
    H = np.zeros((n, n))
    ok = ik.dense_rows_hessian(tape._ueptr, tape._uarg, tape._utptr, tape._uta, tape._utb, n,
                               tape._uout, w, d1, d2, adj, *work, H)
    return H if ok else None


class InteractionPlan:
    """Row patterns of one tape. `ok` is False when the rows would be too dense."""

    def __init__(self, tape):
        n_edges = tape.arg.shape[0]
        max_nnz = _NNZ_PER_EDGE * (n_edges + tape.n_slots)
        (self.ok, self.kind, self.base, self.rptr, self.ridx, self.term_ops, cost, diag,
         self.varies) = ik.plan(tape.code, tape._ueptr, tape._uarg, tape.coef, tape._utptr,
                                tape._uta, tape._utb, tape.n_inputs, tape._uout, max_nnz)
        self.n_rows = self.rptr.shape[0] - 1
        self._uid = tape._uid
        self.groups = self._dense_groups(tape, diag) if self.ok else []
        # multiply-adds of one Hessian: scattered (rows, cross pairs, rows not in a dense
        # group), by BLAS or `gram` (the groups), and those left to `accumulate` (what a
        # parallel region would share)
        in_group = np.zeros(self.n_rows, np.uint8)
        for _, _, members, _ in self.groups:
            in_group[members] = 1
        self.blas_cost, self.scatter_cost, self.accumulate_cost = ik.costs(
            self.rptr, diag, in_group, tape.n_inputs, cost)
        self.use = self._cheaper_than_hvps(tape)
        self.one_call = not self.groups and self.scatter_cost < _SERIAL_WORK
        self._args = (tape.code, tape.param, tape._ueptr, tape._uarg, tape.coef, tape._utptr,
                      tape._uta, tape._utb, tape.n_inputs, tape._uout)
        if self.one_call and self.use:
            self._pack(tape)

    def _pack(self, tape):
        """Flat copies of the tape and plan arrays for `interaction_sweeps.hessian_packed`."""
        ints = [tape.eptr, tape.arg, tape.tptr, tape.ta, tape.tb, tape.out,
                self.kind, self.base, self.rptr, self.ridx, self.term_ops, self.varies]
        self._io = np.cumsum([0] + [a.shape[0] for a in ints]).astype(np.int64)
        self._ints = np.concatenate(ints).astype(np.int32)
        self._fo = np.array([0, tape.param.shape[0], tape.param.shape[0] + tape.coef.shape[0]],
                            np.int64)
        self._floats = np.concatenate([tape.param, tape.coef])
        n_slots, n_terms = tape.n_slots, tape.ta.shape[0]
        sizes = [n_slots, tape.arg.shape[0], n_terms, n_slots, n_slots, self.ridx.shape[0],
                 tape.n_inputs, self.n_rows, n_terms]
        self._wo = np.cumsum([0] + sizes).astype(np.int64)
        self._n_terms = n_terms

    def _dense_groups(self, tape, diag):
        """[(lo, length, row ids, XT)]: rows of term operands whose patterns are the same
        contiguous index range lo..lo+length-1, many of them (a mat-vec with a constant matrix
        followed by elementwise functions). When every row of a group is CONSTANT and at most
        _GRAM_MAX_LENGTH long, XT (length, rows) holds their values and `gram` takes their
        outer products; else (XT None) BLAS does, as Bp.T @ Bp - Bn.T @ Bn (numpy calls syrk
        for a product of a matrix with its own transpose)."""
        rptr = self.rptr
        if rptr.shape[0] < 2 or np.max(rptr[1:] - rptr[:-1]) < _GROUP_MIN_LENGTH:
            return []  # no row long enough (nor the kernel's compile time on a cold start)
        rows, keys = ik.group_candidates(rptr, self.ridx, diag, tape.n_inputs,
                                         _GROUP_MIN_LENGTH)
        if rows.size < _GROUP_MIN_ROWS:
            return []
        if keys.min() == keys.max():  # one group (X @ w): no sort
            found = [rows]
        else:
            _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
            found = [rows[inverse == g] for g in np.flatnonzero(counts >= _GROUP_MIN_ROWS)]
        groups = []
        owner = None
        for members in found:
            r0 = members[0]
            lo, ln = int(self.ridx[self.rptr[r0]]), int(self.rptr[r0 + 1] - self.rptr[r0])
            XT = None
            if ln <= _GRAM_MAX_LENGTH:
                if owner is None:
                    owner = ik.constant_owners(tape.n_inputs, self.kind, self.base,
                                               self.n_rows)
                XT = ik.group_values(tape._ueptr, tape.coef, owner, members, ln)
            groups.append((lo, ln, members, XT if XT is not None and XT.shape[0] else None))
        return groups

    def _cheaper_than_hvps(self, tape):
        """Whether the interaction Hessian is estimated cheaper than n multi-direction HVPs
        (tangent, first- and second-order reverse work per direction and slot/edge)."""
        if not self.ok:
            return False
        n = tape.n_inputs
        hvp_cost = n * (3.0 * tape.arg.shape[0] + 2.0 * tape.ta.shape[0] + tape.n_slots)
        # BLAS runs several times faster than a scattered loop
        return self.scatter_cost + 0.25 * self.blas_cost + 0.5 * n * n < hvp_cost

    def _work(self, tape):
        """This thread's (val, d1, d2, adj) point arrays and the plan's work arrays (its own
        rval, holding the rows that do not vary with the point)."""
        n_terms = tape.ta.shape[0]
        nnz = self.ridx.shape[0]

        def make():
            rval = np.empty(nnz)
            ik.constant_rows(tape._ueptr, tape.coef, tape.n_inputs, self.kind, self.base,
                             self.rptr, rval)
            return tape._arrays() + (
                workspace.buffer("ih_scale", (tape.n_slots,)),
                rval,
                workspace.buffer("ih_acc", (tape.n_inputs,), zero=True),
                workspace.buffer("ih_rc", (self.n_rows,)),
                workspace.buffer("ih_xa", (n_terms,), np.int32),
                workspace.buffer("ih_xb", (n_terms,), np.int32),
                workspace.buffer("ih_xc", (n_terms,)))
        return workspace.cached((self._uid, "interaction"), make)

    def hessian(self, tape, x, w):
        """Dense (n, n) Hessian of sum_k w[k] y[k] at x (x, w validated by the caller), or
        None where a partial or adjoint is not finite (the caller then uses the HVP sweeps).

        Large problems share this thread's point arrays (values and partials at x) with the
        other Tape methods; small ones run in one call on private work arrays."""
        n = tape.n_inputs
        if self.one_call:  # one dispatch with few arguments: what small problems pay for
            H = dense_out.zeros(n, n)
            key = (self._uid, "packed")
            work, iwork = workspace.local().views.get(key) or workspace.cached(key, lambda: (
                workspace.buffer("ih_packed", (self._wo[-1],)),
                workspace.buffer("ih_ipacked", (2 * self._n_terms,), np.int32)))
            ok = ik.hessian_packed(tape.code, self._ints, self._io, self._floats, self._fo, n, x,
                                   w, work, self._wo, iwork, H)
            return H if ok else None
        tape._point(x)  # values and partials at x, by the run-aware forward sweep, cached
        ws = workspace.local()
        work = ws.views.get((self._uid, "interaction")) or self._work(tape)
        args = self._args + (x, w, True) + work[:4] + (
            self.kind, self.base, self.rptr, self.ridx, self.term_ops, self.varies) + work[4:]
        H = dense_out.zeros(n, n)
        n_cross = ik.prepare(*args)
        if n_cross < 0:
            return None
        rval, rc, xa, xb, xc = work[5], work[7], work[8], work[9], work[10]
        for lo, ln, members, XT in self.groups:
            if XT is not None:
                ik.gram(XT, members, rc, lo, H, workspace.buffer("ih_gram", (2, members.shape[0])))
                continue
            Bp = workspace.buffer("ih_Bp", (members.shape[0], ln))
            Bn = workspace.buffer("ih_Bn", (members.shape[0], ln))
            n_p, n_n = ik.split_group(self.rptr, rval, rc, members, Bp, Bn)
            S = H[lo:lo + ln, lo:lo + ln]
            if n_p:
                S += Bp[:n_p].T @ Bp[:n_p]
            if n_n:
                S -= Bn[:n_n].T @ Bn[:n_n]
        threads = 1 if self.accumulate_cost < _SERIAL_WORK else numba.get_num_threads()
        if threads == 1:
            ik.accumulate(self.rptr, self.ridx, rval, rc, xa, xb, xc, n_cross, H, 0, 1)
        else:
            parallel(ik.accumulate_parallel, self.rptr, self.ridx, rval, rc, xa, xb, xc,
                     n_cross, H, threads)
        return H
