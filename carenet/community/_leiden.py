"""Compiled kernels behind :mod:`carenet.community.detection`: Leiden / Louvain and label
propagation on a symmetric CSR graph.

The quality function is written for both objectives at once. Each node has a weight ``k_v``
(its strength for modularity, its size for CPM) and moving node ``v`` into community ``C``
gains ``w(v, C) - gamma * k_v * K_C`` where ``w(v, C)`` is the tie weight between ``v`` and
``C`` and ``K_C`` the summed node weight of ``C``; for modularity the caller passes
``gamma = resolution / 2m``, for CPM ``gamma = resolution``. Gains are in tie-weight units,
as in igraph and leidenalg (so ``theta`` means the same there and here).

Randomness comes from a ``numpy.random.Generator`` handed in by the caller (numba supports
them), never from global state. Node visiting orders are drawn from it; candidate lists are
walked in a fixed order, so equal seeds give equal partitions.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def move_nodes(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    node_w: np.ndarray,
    comm: np.ndarray,
    gamma: float,
    order: np.ndarray,
) -> bool:
    """Leiden's fast local moving: visit nodes from a queue (initially ``order``); move each to
    the neighbouring (or an empty) community with the largest gain; re-queue the neighbours
    that now lie outside its new community. ``comm`` is updated in place (labels < n).
    Returns whether any node moved.
    """
    n = node_w.size
    comm_w = np.zeros(n)
    comm_n = np.zeros(n, np.int64)
    for v in range(n):
        comm_w[comm[v]] += node_w[v]
        comm_n[comm[v]] += 1
    empty = np.empty(n, np.int64)
    n_empty = 0
    for c in range(n - 1, -1, -1):
        if comm_n[c] == 0:
            empty[n_empty] = c
            n_empty += 1
    queue = order.copy()
    in_queue = np.ones(n, np.bool_)
    head = 0
    size = n
    neigh_w = np.zeros(n)
    seen = np.zeros(n, np.bool_)
    touched = np.empty(n, np.int64)
    moved = False
    while size > 0:
        v = queue[head]
        head += 1
        if head == n:
            head = 0
        size -= 1
        in_queue[v] = False
        a = comm[v]
        nt = 1
        touched[0] = a
        seen[a] = True
        for k in range(indptr[v], indptr[v + 1]):
            u = indices[k]
            if u == v:
                continue
            c = comm[u]
            if not seen[c]:
                seen[c] = True
                touched[nt] = c
                nt += 1
            neigh_w[c] += weights[k]
        kv = node_w[v]
        comm_w[a] -= kv
        comm_n[a] -= 1
        best = a
        best_gain = neigh_w[a] - gamma * kv * comm_w[a]
        for j in range(1, nt):
            c = touched[j]
            gain = neigh_w[c] - gamma * kv * comm_w[c]
            if gain > best_gain:
                best_gain = gain
                best = c
        if best_gain < 0.0 and comm_n[a] > 0 and n_empty > 0:
            # alone is better than any neighbour's community: open an empty one
            n_empty -= 1
            best = empty[n_empty]
        for j in range(nt):
            c = touched[j]
            neigh_w[c] = 0.0
            seen[c] = False
        if comm_n[a] == 0 and best != a:
            empty[n_empty] = a
            n_empty += 1
        comm_w[best] += kv
        comm_n[best] += 1
        if best != a:
            comm[v] = best
            moved = True
            for k in range(indptr[v], indptr[v + 1]):
                u = indices[k]
                if u != v and not in_queue[u] and comm[u] != best:
                    in_queue[u] = True
                    tail = head + size
                    if tail >= n:
                        tail -= n
                    queue[tail] = u
                    size += 1
    return moved


@nb.njit(cache=True, nogil=True)
def refine(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    node_w: np.ndarray,
    comm: np.ndarray,
    gamma: float,
    theta: float,
    order: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Leiden's refinement: inside each community, start from singletons and merge each
    still-single, well-connected node into a well-connected sub-community of the same
    community, drawn with probability proportional to ``exp(gain / theta)`` among the
    non-negative gains. Returns the refined labels (< n); every refined community lies inside
    one community of ``comm``.
    """
    n = node_w.size
    comm_w = np.zeros(n)
    for v in range(n):
        comm_w[comm[v]] += node_w[v]
    ref = np.arange(n)
    ref_w = node_w.copy()
    ref_n = np.ones(n, np.int64)
    # ext[c]: tie weight between refined community c and the rest of its community
    ext = np.zeros(n)
    for v in range(n):
        s = 0.0
        for k in range(indptr[v], indptr[v + 1]):
            u = indices[k]
            if u != v and comm[u] == comm[v]:
                s += weights[k]
        ext[v] = s
    neigh_w = np.zeros(n)
    seen = np.zeros(n, np.bool_)
    touched = np.empty(n, np.int64)
    cand = np.empty(n, np.int64)
    gains = np.empty(n)
    for v in order:
        r = ref[v]
        if ref_n[r] != 1:
            continue
        s_comm = comm[v]
        kv = node_w[v]
        total = comm_w[s_comm]
        if ext[r] < gamma * kv * (total - kv):
            continue
        nt = 0
        for k in range(indptr[v], indptr[v + 1]):
            u = indices[k]
            if u == v or comm[u] != s_comm:
                continue
            c = ref[u]
            if not seen[c]:
                seen[c] = True
                touched[nt] = c
                nt += 1
            neigh_w[c] += weights[k]
        # staying alone gains 0; candidates are well-connected sub-communities
        nc = 0
        best_gain = 0.0
        for j in range(nt):
            c = touched[j]
            if ext[c] >= gamma * ref_w[c] * (total - ref_w[c]):
                gain = neigh_w[c] - gamma * kv * ref_w[c]
                if gain >= 0.0:
                    cand[nc] = c
                    gains[nc] = gain
                    nc += 1
                    if gain > best_gain:
                        best_gain = gain
        chosen = r
        if nc > 0:
            stay = np.exp(-best_gain / theta)  # staying alone gains 0
            cum = stay
            for j in range(nc):
                cum += np.exp((gains[j] - best_gain) / theta)
                gains[j] = cum
            x = rng.random() * cum
            if x >= stay:
                chosen = cand[nc - 1]
                for j in range(nc):
                    if x < gains[j]:
                        chosen = cand[j]
                        break
        if chosen != r:
            w_vc = neigh_w[chosen]
            ext[chosen] = ext[chosen] + ext[r] - 2.0 * w_vc
            ref_w[chosen] += kv
            ref_n[chosen] += 1
            ref_n[r] = 0
            ref_w[r] = 0.0
            ref[v] = chosen
        for j in range(nt):
            c = touched[j]
            neigh_w[c] = 0.0
            seen[c] = False
    return ref


@nb.njit(cache=True, nogil=True)
def relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered 0..k-1 in order of first appearance; returns (labels, k)."""
    n = labels.size
    top = 0
    for v in range(n):
        if labels[v] > top:
            top = labels[v]
    new = np.full(top + 1, -1, np.int64)
    out = np.empty(n, np.int64)
    k = 0
    for v in range(n):
        c = labels[v]
        if new[c] < 0:
            new[c] = k
            k += 1
        out[v] = new[c]
    return out, k


@nb.njit(cache=True, nogil=True)
def aggregate(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    labels: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The graph of communities: node c is community c, tie weights summed (the diagonal
    holds the ties inside c, each counted from both ends).
    """
    n = labels.size
    counts = np.zeros(k + 1, np.int64)
    for v in range(n):
        counts[labels[v] + 1] += 1
    start = np.cumsum(counts)
    members = np.empty(n, np.int64)
    fill = start[:-1].copy()
    for v in range(n):
        c = labels[v]
        members[fill[c]] = v
        fill[c] += 1
    acc = np.zeros(k)
    seen = np.zeros(k, np.bool_)
    touched = np.empty(k, np.int64)
    new_indptr = np.zeros(k + 1, np.int64)
    cap = indices.size
    new_indices = np.empty(cap, np.int64)
    new_weights = np.empty(cap)
    m = 0
    for c in range(k):
        nt = 0
        for j in range(start[c], start[c + 1]):
            v = members[j]
            for e in range(indptr[v], indptr[v + 1]):
                d = labels[indices[e]]
                if not seen[d]:
                    seen[d] = True
                    touched[nt] = d
                    nt += 1
                acc[d] += weights[e]
        for j in range(nt):
            d = touched[j]
            new_indices[m] = d
            new_weights[m] = acc[d]
            m += 1
            acc[d] = 0.0
            seen[d] = False
        new_indptr[c + 1] = m
    return new_indptr, new_indices[:m].copy(), new_weights[:m].copy()


@nb.njit(cache=True, nogil=True)
def leiden(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    node_w: np.ndarray,
    init: np.ndarray,
    gamma: float,
    theta: float,
    use_refinement: bool,
    max_levels: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int, bool]:
    """One Leiden (or, without refinement, Louvain) run from the partition ``init``.

    Levels: local moving; refinement; aggregation of the refined partition, whose nodes start
    in the community of their members. Stops when aggregation would not shrink the graph.
    Returns (labels, levels, changed).
    """
    n = node_w.size
    comm, _ = relabel(init)
    membership = np.arange(n)
    ip, ix, wt, nw = indptr, indices, weights, node_w
    levels = 0
    changed = False
    while levels < max_levels:
        levels += 1
        size = nw.size
        order = rng.permutation(size)
        if move_nodes(ip, ix, wt, nw, comm, gamma, order):
            changed = True
        if use_refinement:
            ref = refine(ip, ix, wt, nw, comm, gamma, theta, rng.permutation(size), rng)
        else:
            ref = comm.copy()
        ref, k = relabel(ref)
        if k >= size:
            break
        # the aggregate's nodes start in the (unrefined) community of their members
        start = np.empty(k, np.int64)
        for v in range(size):
            start[ref[v]] = comm[v]
        ip, ix, wt = aggregate(ip, ix, wt, ref, k)
        new_nw = np.zeros(k)
        for v in range(size):
            new_nw[ref[v]] += nw[v]
        nw = new_nw
        for v in range(n):
            membership[v] = ref[membership[v]]
        comm, _ = relabel(start)
    out = np.empty(n, np.int64)
    for v in range(n):
        out[v] = comm[membership[v]]
    labels, _ = relabel(out)
    return labels, levels, changed


@nb.njit(cache=True, nogil=True)
def label_propagation(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    max_sweeps: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Asynchronous label propagation (Raghavan et al.): in random order, each node takes
    the label with the largest tie weight among its neighbours (ties broken at random,
    keeping the current label when it is among the best); stops when every node holds a
    best label. Returns (labels, sweeps).
    """
    n = indptr.size - 1
    labels = np.arange(n)
    acc = np.zeros(n)
    seen = np.zeros(n, np.bool_)
    touched = np.empty(n, np.int64)
    best_list = np.empty(n, np.int64)
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        order = rng.permutation(n)
        for v in order:
            nt = 0
            for k in range(indptr[v], indptr[v + 1]):
                u = indices[k]
                if u == v:
                    continue
                c = labels[u]
                if not seen[c]:
                    seen[c] = True
                    touched[nt] = c
                    nt += 1
                acc[c] += weights[k]
            if nt > 0:
                best = -1.0
                nb_ = 0
                keep = False
                for j in range(nt):
                    c = touched[j]
                    if acc[c] > best:
                        best = acc[c]
                for j in range(nt):
                    c = touched[j]
                    if acc[c] >= best * (1.0 - 1e-12):
                        best_list[nb_] = c
                        nb_ += 1
                        if c == labels[v]:
                            keep = True
                if not keep:
                    labels[v] = best_list[rng.integers(0, nb_)]
            for j in range(nt):
                c = touched[j]
                acc[c] = 0.0
                seen[c] = False
        # stop when every node holds one of its best labels
        done = True
        for v in range(n):
            nt = 0
            for k in range(indptr[v], indptr[v + 1]):
                u = indices[k]
                if u == v:
                    continue
                c = labels[u]
                if not seen[c]:
                    seen[c] = True
                    touched[nt] = c
                    nt += 1
                acc[c] += weights[k]
            if nt > 0:
                best = 0.0
                for j in range(nt):
                    if acc[touched[j]] > best:
                        best = acc[touched[j]]
                if acc[labels[v]] < best * (1.0 - 1e-12):
                    done = False
            for j in range(nt):
                c = touched[j]
                acc[c] = 0.0
                seen[c] = False
            if not done:
                break
        if done:
            break
    out, _ = relabel(labels)
    return out, sweeps


@nb.njit(cache=True, nogil=True)
def community_stats(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    labels: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per community: summed strength, tie weight inside (each tie counted from both ends)
    and number of (directed CSR) entries inside.
    """
    strength = np.zeros(k)
    inside = np.zeros(k)
    inside_n = np.zeros(k, np.int64)
    n = labels.size
    for v in range(n):
        c = labels[v]
        for e in range(indptr[v], indptr[v + 1]):
            w = weights[e]
            strength[c] += w
            if labels[indices[e]] == c:
                inside[c] += w
                inside_n[c] += 1
    return strength, inside, inside_n
