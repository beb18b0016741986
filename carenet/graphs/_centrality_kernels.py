"""Compiled kernels behind :mod:`carenet.graphs.centrality`.

Shortest-path accumulation (Brandes' betweenness and harmonic closeness from a set of source
customers, in one pass per source) and the k-core peeling. They work on plain CSR arrays; the
wrappers in :mod:`carenet.graphs.centrality` choose sources, validate and scale.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# Two path lengths closer than this (relative) are the same length: sums of reciprocal weights
# are not exact in floating point, and a shortest path must not be lost to rounding.
_REL_EPS = 1e-10


@nb.njit(cache=True, nogil=True, inline="always")
def _same(a: float, b: float) -> bool:
    return abs(a - b) <= _REL_EPS * max(abs(a), abs(b))


@nb.njit(cache=True, nogil=True)
def _heap_push(heap: np.ndarray, pos: np.ndarray, key: np.ndarray, size: int, v: int) -> int:
    """Insert v (not in the heap) into an indexed binary min-heap on ``key``."""
    i = size
    heap[i] = v
    pos[v] = i
    size += 1
    _sift_up(heap, pos, key, i)
    return size


@nb.njit(cache=True, nogil=True)
def _sift_up(heap: np.ndarray, pos: np.ndarray, key: np.ndarray, i: int) -> None:
    v = heap[i]
    kv = key[v]
    while i > 0:
        parent = (i - 1) >> 1
        p = heap[parent]
        # ties broken by node position, so the settle order never depends on insert order
        if key[p] < kv or (key[p] == kv and p < v):
            break
        heap[i] = p
        pos[p] = i
        i = parent
    heap[i] = v
    pos[v] = i


@nb.njit(cache=True, nogil=True)
def _heap_pop(heap: np.ndarray, pos: np.ndarray, key: np.ndarray, size: int) -> tuple[int, int]:
    """Remove and return the minimum; returns (node, new size)."""
    top = heap[0]
    pos[top] = -1
    size -= 1
    if size == 0:
        return top, size
    v = heap[size]
    kv = key[v]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size:
            a = heap[c]
            b = heap[c + 1]
            if key[b] < key[a] or (key[b] == key[a] and b < a):
                c += 1
        u = heap[c]
        if key[u] > kv or (key[u] == kv and u > v):
            break
        heap[i] = u
        pos[u] = i
        i = c
    heap[i] = v
    pos[v] = i
    return top, size


@nb.njit(cache=True, nogil=True)
def _single_source(
    s: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    length: np.ndarray,
    weighted: bool,
    dist: np.ndarray,
    sigma: np.ndarray,
    delta: np.ndarray,
    order: np.ndarray,
    heap: np.ndarray,
    pos: np.ndarray,
) -> int:
    """Shortest paths from ``s``: distances, path counts and the settle order; returns how
    many customers were reached (``order[:count]``). BFS when unweighted, else Dijkstra.
    """
    count = 0
    dist[s] = 0.0
    sigma[s] = 1.0
    if not weighted:
        order[0] = s
        head = 0
        count = 1
        while head < count:
            v = order[head]
            head += 1
            dv = dist[v] + 1.0
            for k in range(indptr[v], indptr[v + 1]):
                w = indices[k]
                if w == v:
                    continue
                if dist[w] == np.inf:
                    dist[w] = dv
                    order[count] = w
                    count += 1
                if dist[w] == dv:
                    sigma[w] += sigma[v]
        return count
    size = _heap_push(heap, pos, dist, 0, s)
    while size > 0:
        v, size = _heap_pop(heap, pos, dist, size)
        order[count] = v
        count += 1
        dv = dist[v]
        for k in range(indptr[v], indptr[v + 1]):
            w = indices[k]
            if w == v:
                continue
            nd = dv + length[k]
            dw = dist[w]
            if dw == np.inf:
                dist[w] = nd
                sigma[w] = sigma[v]
                size = _heap_push(heap, pos, dist, size, w)
            elif _same(nd, dw):
                if pos[w] >= 0:
                    sigma[w] += sigma[v]
            elif nd < dw and pos[w] >= 0:
                dist[w] = nd
                sigma[w] = sigma[v]
                _sift_up(heap, pos, dist, pos[w])
    return count


@nb.njit(cache=True, nogil=True)
def _accumulate_chunk(
    sources: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    length: np.ndarray,
    weighted: bool,
    want_bc: bool,
    want_h: bool,
    bc: np.ndarray,
    bc_sq: np.ndarray,
    h: np.ndarray,
    h_sq: np.ndarray,
) -> None:
    n = indptr.size - 1
    dist = np.full(n, np.inf)
    sigma = np.zeros(n)
    delta = np.zeros(n)
    order = np.empty(n, np.int64)
    heap = np.empty(n, np.int64)
    pos = np.full(n, -1, np.int64)
    for s in sources:
        count = _single_source(s, indptr, indices, length, weighted, dist, sigma, delta,
                               order, heap, pos)
        if want_h:
            for j in range(1, count):
                v = order[j]
                x = 1.0 / dist[v]
                h[v] += x
                h_sq[v] += x * x
        if want_bc:
            for j in range(count - 1, -1, -1):
                v = order[j]
                dv = dist[v]
                acc = 0.0
                for k in range(indptr[v], indptr[v + 1]):
                    w = indices[k]
                    if w == v:
                        continue
                    step = length[k] if weighted else 1.0
                    if dist[w] != np.inf and _same(dist[w], dv + step) and dist[w] > dv:
                        acc += sigma[v] / sigma[w] * (1.0 + delta[w])
                delta[v] = acc
                if v != s:
                    bc[v] += acc
                    bc_sq[v] += acc * acc
        for j in range(count):
            v = order[j]
            dist[v] = np.inf
            sigma[v] = 0.0
            delta[v] = 0.0


@nb.njit(cache=True, nogil=True, parallel=True)
def path_sums(
    sources: np.ndarray,
    bounds: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    length: np.ndarray,
    weighted: bool,
    want_bc: bool,
    want_h: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-customer sums (and sums of squares) over the given sources of Brandes' dependency
    ``delta_s(v)`` and of ``1 / d(s, v)``. Chunk c holds ``sources[bounds[c]:bounds[c + 1]]``
    and runs on its own thread with its own buffers; the caller adds chunk results in chunk
    order, so the result does not depend on thread scheduling. Returns arrays of shape
    (chunks, n).
    """
    n = indptr.size - 1
    t = bounds.size - 1
    bc = np.zeros((t, n))
    bc_sq = np.zeros((t, n))
    h = np.zeros((t, n))
    h_sq = np.zeros((t, n))
    for c in nb.prange(t):
        mine = sources[bounds[c]:bounds[c + 1]]
        _accumulate_chunk(mine, indptr, indices, length, weighted, want_bc, want_h,
                          bc[c], bc_sq[c], h[c], h_sq[c])
    return bc, bc_sq, h, h_sq


@nb.njit(cache=True, nogil=True)
def pagerank_update(
    y: np.ndarray, x: np.ndarray, reset: np.ndarray, inv_out: np.ndarray, damping: float,
    scaled: np.ndarray,
) -> float:
    """One power-iteration step after the product ``y = A^T (x / out)``: in place,
    ``x <- d y + (1 - d sum(y)) reset`` and ``scaled <- x / out``; returns ``||x_new - x||_1``.
    """
    total = 0.0
    for i in range(y.size):
        total += y[i]
    lost = 1.0 - damping * total
    err = 0.0
    for i in range(y.size):
        v = damping * y[i] + lost * reset[i]
        err += abs(v - x[i])
        x[i] = v
        scaled[i] = v * inv_out[i]
    return err


@nb.njit(cache=True, nogil=True)
def core_numbers(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """k-core number of every node of a symmetric simple graph (Batagelj and Zaversnik's
    O(m) bucket peeling). Self-loops are ignored.
    """
    n = indptr.size - 1
    deg = np.zeros(n, np.int64)
    for v in range(n):
        d = 0
        for k in range(indptr[v], indptr[v + 1]):
            if indices[k] != v:
                d += 1
        deg[v] = d
    md = 0
    for v in range(n):
        if deg[v] > md:
            md = deg[v]
    bins = np.zeros(md + 1, np.int64)
    for v in range(n):
        bins[deg[v]] += 1
    start = 0
    for d in range(md + 1):
        num = bins[d]
        bins[d] = start
        start += num
    pos = np.empty(n, np.int64)
    vert = np.empty(n, np.int64)
    for v in range(n):
        pos[v] = bins[deg[v]]
        vert[pos[v]] = v
        bins[deg[v]] += 1
    for d in range(md, 0, -1):
        bins[d] = bins[d - 1]
    if md >= 0:
        bins[0] = 0
    for i in range(n):
        v = vert[i]
        for k in range(indptr[v], indptr[v + 1]):
            u = indices[k]
            if u == v:
                continue
            if deg[u] > deg[v]:
                du = deg[u]
                pu = pos[u]
                pw = bins[du]
                w = vert[pw]
                if u != w:
                    pos[u] = pw
                    vert[pu] = w
                    pos[w] = pu
                    vert[pw] = u
                bins[du] += 1
                deg[u] -= 1
    return deg
