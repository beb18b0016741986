"""The numba building blocks of :mod:`carenet.graphs.blocking`: the hashed coins of a
realisation, the dominator-tree kernel (Cooper, Harvey & Kennedy) and counting-sort CSR.

Kept apart so that ``blocking.py`` holds the model, the realisations, the greedy and the
evaluation; the names are public here and imported there under their old local names.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from carenet.graphs.rng import GOLDEN, S11, TO_UNIT, mix

G2 = np.uint64(0xD1B54A32D192ED03)  # a second odd constant: realisation bases apart from keys


# ---------------------------------------------------------------------------- coins
@nb.njit(cache=True, nogil=True, inline="always")
def base(seed: np.uint64, r: int) -> np.uint64:
    """The coin base of realisation r."""
    return mix(mix(seed) + np.uint64(r + 1) * G2)


@nb.njit(cache=True, nogil=True, inline="always")
def edge_base(bedge: np.ndarray, r: int) -> np.uint64:
    """The tie-coin base of realisation r: ``bedge = [seed, multiplier]`` (the multiplier is
    ``G2`` for this module's own seeds, ``GOLDEN`` for a ``tie_seed`` shared with
    :mod:`carenet.graphs.exposure`, whose world r has base ``mix(mix(seed) + (r + 1) *
    GOLDEN)``: then a tie is live in realisation r exactly when it is in exposure's world r).
    """
    return mix(mix(bedge[0]) + np.uint64(r + 1) * bedge[1])


@nb.njit(cache=True, nogil=True, inline="always")
def coin(base: np.uint64, key: int) -> float:
    """A uniform number in [0, 1) for (realisation, node or tie ``key``)."""
    return float(mix(base + np.uint64(key + 1) * GOLDEN) >> S11) * TO_UNIT


# ---------------------------------------------------------------------------- dominators
@nb.njit(cache=True, nogil=True)
def intersect(a: int, b: int, idom: np.ndarray, po: np.ndarray) -> int:
    while a != b:
        while po[a] < po[b]:
            a = idom[a]
        while po[b] < po[a]:
            b = idom[b]
    return a


@nb.njit(cache=True, nogil=True)
def dominators(m: int, succ_ptr: np.ndarray, succ: np.ndarray, pred_ptr: np.ndarray,
                pred: np.ndarray, idom: np.ndarray) -> int:
    """Immediate dominators of nodes 0..m-1 from root 0 (Cooper, Harvey & Kennedy 2001):
    depth-first postorder, then the iterative intersection in reverse postorder until stable.
    ``idom[root] = 0``; nodes not reached from the root get -1. Returns the nodes reached.
    """
    po = np.full(m, -1, np.int64)
    post = np.empty(m, np.int64)
    it = np.empty(m, np.int64)
    stack = np.empty(m, np.int64)
    seen = np.zeros(m, np.bool_)
    seen[0] = True
    stack[0] = 0
    it[0] = succ_ptr[0]
    sp = 1
    cnt = 0
    while sp > 0:
        u = stack[sp - 1]
        if it[u] < succ_ptr[u + 1]:
            v = succ[it[u]]
            it[u] += 1
            if not seen[v]:
                seen[v] = True
                it[v] = succ_ptr[v]
                stack[sp] = v
                sp += 1
        else:
            po[u] = cnt
            post[cnt] = u
            cnt += 1
            sp -= 1
    for i in range(m):
        idom[i] = -1
    idom[0] = 0
    changed = True
    while changed:
        changed = False
        for j in range(cnt - 2, -1, -1):
            b = post[j]
            new = -1
            for q in range(pred_ptr[b], pred_ptr[b + 1]):
                p = pred[q]
                if not seen[p] or idom[p] == -1:
                    continue
                new = p if new == -1 else intersect(p, new, idom, po)
            if idom[b] != new:
                idom[b] = new
                changed = True
    return cnt


@nb.njit(cache=True, nogil=True)
def _row_pointers(m: int, a: np.ndarray, count: int) -> np.ndarray:
    """CSR row pointers of rows ``a[:count]`` over m rows (the counting sort's first half)."""
    ptr = np.zeros(m + 1, np.int64)
    for i in range(count):
        ptr[a[i] + 1] += 1
    for i in range(m):
        ptr[i + 1] += ptr[i]
    return ptr


@nb.njit(cache=True, nogil=True)
def csr(m: int, a: np.ndarray, b: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``a[:count]`` -> columns ``b[:count]`` as CSR over m rows (counting sort)."""
    ptr = _row_pointers(m, a, count)
    fill = ptr[:-1].copy()
    col = np.empty(count, np.int64)
    for i in range(count):
        col[fill[a[i]]] = b[i]
        fill[a[i]] += 1
    return ptr, col


@nb.njit(cache=True, nogil=True)
def csr_positions(m: int, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`csr` of rows ``a`` -> their positions ``0 .. a.size - 1`` (the same arrays as
    ``csr(m, a, np.arange(a.size), a.size)``, without that int64 range: 8 bytes a row, tens
    of millions of dominator-tree entries at 1M customers).
    """
    ptr = _row_pointers(m, a, a.size)
    fill = ptr[:-1].copy()
    col = np.empty(a.size, np.int64)
    for i in range(a.size):
        col[fill[a[i]]] = i
        fill[a[i]] += 1
    return ptr, col


@nb.njit(cache=True, nogil=True)
def dominator_tree_kernel(m: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Immediate dominators of an explicit graph on nodes 0..m-1 from root 0."""
    sp, sc = csr(m, src, dst, src.size)
    pp, pc = csr(m, dst, src, src.size)
    idom = np.empty(m, np.int64)
    dominators(m, sp, sc, pp, pc, idom)
    return idom


@nb.njit(cache=True, nogil=True)
def grow(a: np.ndarray, cap: int) -> np.ndarray:
    """A copy of ``a`` in a new array of ``cap`` elements (buffers that grow)."""
    b = np.empty(cap, a.dtype)
    b[: a.size] = a
    return b


__all__ = ["G2", "base", "coin", "csr", "dominator_tree_kernel", "dominators", "edge_base", "grow",
           "intersect"]
