"""Blocking a cascade: which nodes to protect so that the most value stays out of it.

The model (domain-free; :mod:`carenet.community.care` gives it its customer meaning)
------------------------------------------------------------------------------------
Every node ``v`` starts the cascade spontaneously with probability ``source_prob[v]``; an
active node activates each out-neighbour ``w`` over a live tie, live with the tie's
Independent-Cascade probability. A protected node is *retained* with probability
``retention``: a retained node never activates and never passes the cascade on. Nodes with
``blockable[v] = False`` cannot be protected. The value protected by a set S in one
realisation is the value of the nodes that the cascade reaches without S and does not reach
with the retained members of S; its expectation is what a care plan maximises.

Randomness: every coin is a hash of (seed, realisation, node or tie), so all strategies see
the same sources, live ties and retention coins in realisation r (common random numbers), in
any order and with any number of threads.

Algorithms
----------
* :func:`greedy_blocking`: R forward realisations; in each, the **dominator tree** of the
  reached nodes from a super-source linked to the active sources (Cooper, Harvey & Kennedy's
  iterative algorithm): blocking v alone keeps exactly v's dominator subtree out of the
  cascade. The greedy maximises ``f(S) = mean_r sum_u value(u) (1 - (1 - retention)^{|S ∩
  dom_r(u)|})`` (u is kept out when one of its retained dominators is protected): a monotone
  submodular lower bound of the protected value, so the greedy is within ``1 - 1/e`` of the
  best set for f, and every update after a pick is exact (ancestors lose the picked subtree's
  remaining value, the subtree's nodes keep ``1 - retention`` of theirs).
* :func:`protected_curves`: the protected value of every prefix of a node ordering on fresh
  realisations, all prefixes at once: ``b(u)`` = max over paths from active sources to u of
  the smallest rank of a retained node on the path (a bottleneck path, by a bucket queue), and
  u is kept out by the first k picks exactly when ``b(u) <= k``. Set blocking here is exact,
  not the dominator bound. The nodes reached by paths that avoid every node any ordering
  picks (and keeps) are kept out by none, so the bucket queues run only on the rest (at a
  million customers most of a realisation's cascade is such a free part).
* :func:`exact_protected`: brute force over every world of a tiny graph, the tests' oracle.

>>> dg = DiffusionGraph.from_arrays(3, [0, 1], [1, 2], [1.0, 1.0])
>>> m = BlockingModel(dg, np.array([1.0, 0, 0]), np.ones(3, bool), np.ones(3), 1.0)
>>> exact_protected(m, [1])        # blocking 1 keeps 1 and 2 out of the cascade from 0
2.0
>>> plan = greedy_blocking(m, 1, runs=8, seed=1)
>>> plan.nodes.tolist(), plan.gains.tolist()     # 0 dominates all three
([0], [3.0])
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numba as nb
import numpy as np

from carenet.errors import InvalidInputError
from carenet.graphs._blocking_kernels import G2 as _G2
from carenet.graphs._blocking_kernels import base as _base
from carenet.graphs._blocking_kernels import coin as _coin
from carenet.graphs._blocking_kernels import csr as _csr
from carenet.graphs._blocking_kernels import csr_positions as _csr_positions
from carenet.graphs._blocking_kernels import dominator_tree_kernel
from carenet.graphs._blocking_kernels import dominators as _dominators
from carenet.graphs._blocking_kernels import edge_base as _edge_base
from carenet.graphs._blocking_kernels import grow as _grow
from carenet.graphs._kernels import PARALLEL_LOCK
from carenet.graphs.diffusion import DiffusionGraph
from carenet.graphs.rng import GOLDEN, MASK64

# splitmix64 constants (carenet.graphs.rng, shared with diffusion.py) under local names
_GOLDEN, _MASK64 = GOLDEN, MASK64


# ---------------------------------------------------------------------------- realisations
@nb.njit(cache=True, nogil=True)
def _realise(
    indptr: np.ndarray, indices: np.ndarray, prob: np.ndarray, cand: np.ndarray,
    sprob: np.ndarray, value: np.ndarray, bsrc: np.ndarray, bedge: np.ndarray, r: int,
    out_node: np.ndarray, out_parent: np.ndarray, out_size: np.ndarray,
    out_val: np.ndarray,
) -> int:
    """One realisation: the reached nodes in dominator-tree preorder with their parent's
    position (-1: a child of the super-source), subtree size and subtree value. Returns the
    number of reached nodes.
    """
    n = indptr.size - 1
    sb = _base(bsrc[0], r)
    eb = _edge_base(bedge, r)
    loc = np.full(n, -1, np.int64)
    gnode = np.empty(n + 1, np.int64)
    cap = 4 * 1024
    ea = np.empty(cap, np.int64)
    eb_ = np.empty(cap, np.int64)
    ne = 0
    m = 1
    for j in range(cand.size):
        v = cand[j]
        if _coin(sb, v) < sprob[v]:
            loc[v] = m
            gnode[m] = v
            if ne == cap:
                cap *= 2
                ea = _grow(ea, cap)
                eb_ = _grow(eb_, cap)
            ea[ne] = 0
            eb_[ne] = m
            ne += 1
            m += 1
    head = 1
    while head < m:
        u = gnode[head]
        lu = head
        head += 1
        for e in range(indptr[u], indptr[u + 1]):
            if _coin(eb, e) < prob[e]:
                v = indices[e]
                if loc[v] < 0:
                    loc[v] = m
                    gnode[m] = v
                    m += 1
                if ne == cap:
                    cap *= 2
                    ea = _grow(ea, cap)
                    eb_ = _grow(eb_, cap)
                ea[ne] = lu
                eb_[ne] = loc[v]
                ne += 1
    if m == 1:
        return 0
    sp, sc = _csr(m, ea, eb_, ne)
    pp, pc = _csr(m, eb_, ea, ne)
    idom = np.empty(m, np.int64)
    _dominators(m, sp, sc, pp, pc, idom)
    # dominator tree children, preorder, subtree sizes and values
    cp = np.zeros(m + 1, np.int64)
    for x in range(1, m):
        cp[idom[x] + 1] += 1
    for x in range(m):
        cp[x + 1] += cp[x]
    fill = cp[:-1].copy()
    kids = np.empty(max(m - 1, 1), np.int64)
    for x in range(1, m):
        kids[fill[idom[x]]] = x
        fill[idom[x]] += 1
    pre = np.empty(m, np.int64)
    order = np.empty(m, np.int64)
    stack = np.empty(m, np.int64)
    stack[0] = 0
    sp_ = 1
    k = 0
    while sp_ > 0:
        sp_ -= 1
        x = stack[sp_]
        pre[x] = k
        order[k] = x
        k += 1
        for q in range(cp[x + 1] - 1, cp[x] - 1, -1):
            stack[sp_] = kids[q]
            sp_ += 1
    size = np.ones(m, np.int64)
    sval = np.zeros(m)
    for i in range(m - 1, 0, -1):
        x = order[i]
        sval[x] += value[gnode[x]]
        if idom[x] != 0:
            size[idom[x]] += size[x]
            sval[idom[x]] += sval[x]
    for i in range(1, m):
        x = order[i]
        out_node[i - 1] = gnode[x]
        out_parent[i - 1] = pre[idom[x]] - 1
        out_size[i - 1] = size[x]
        out_val[i - 1] = sval[x]
    return m - 1


@nb.njit(cache=True, nogil=True, parallel=True)
def _realise_batch(
    indptr: np.ndarray, indices: np.ndarray, prob: np.ndarray, cand: np.ndarray,
    sprob: np.ndarray, value: np.ndarray, bsrc: np.ndarray, bedge: np.ndarray, first: int,
    count: int, out_node: np.ndarray, out_parent: np.ndarray, out_size: np.ndarray,
    out_val: np.ndarray, sizes: np.ndarray,
) -> None:
    for s in nb.prange(count):
        sizes[s] = _realise(indptr, indices, prob, cand, sprob, value, bsrc, bedge, first + s,
                            out_node[s], out_parent[s], out_size[s], out_val[s])


# ---------------------------------------------------------------------------- greedy
@nb.njit(cache=True, nogil=True)
def _greedy(
    n: int, node: np.ndarray, parent: np.ndarray, size: np.ndarray, rem: np.ndarray,
    runs: int, retention: float, blockable: np.ndarray, k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy over the dominator trees (see the module docstring); ``parent`` holds global
    entry positions. Returns picks and their marginal gains (stops when nothing gains).
    """
    t_all = node.size
    ptr, idx = _csr_positions(n, node)  # entry positions by node, in order
    scale = retention / runs
    gain = np.zeros(n)
    for t in range(t_all):
        gain[node[t]] += rem[t]
    for v in range(n):
        gain[v] *= scale
    taken = np.zeros(n, np.bool_)
    picks = np.empty(k, np.int64)
    gains = np.empty(k)
    done = 0
    while done < k:
        best = -1
        bg = 1e-12
        for v in range(n):
            if blockable[v] and not taken[v] and gain[v] > bg:
                bg = gain[v]
                best = v
        if best < 0:
            break
        taken[best] = True
        picks[done] = best
        gains[done] = gain[best]
        done += 1
        for q in range(ptr[best], ptr[best + 1]):
            t = idx[q]
            x = rem[t]
            if x <= 0.0:
                continue
            d = retention * x
            a = parent[t]
            while a >= 0:
                rem[a] -= d
                gain[node[a]] -= scale * d
                a = parent[a]
            for s in range(t, t + size[t]):
                y = rem[s]
                if y > 0.0:
                    dy = retention * y
                    rem[s] = y - dy
                    gain[node[s]] -= scale * dy
    return picks[:done], gains[:done]


# ---------------------------------------------------------------------------- evaluation
@nb.njit(cache=True, nogil=True)
def _split_reached(
    indptr: np.ndarray, indices: np.ndarray, prob: np.ndarray, cand: np.ndarray,
    sprob: np.ndarray, blockable: np.ndarray, picked: np.ndarray, retention: float,
    sb: np.uint64, eb: np.uint64, rb: np.uint64, loc: np.ndarray, queue: np.ndarray,
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One realisation's cascade with nothing blocked, split in two; every coin drawn once.

    * the **free** part: the nodes reached from the active sources by paths avoiding every
      *blocker* (a node some ordering picks, protectable and retained in this realisation).
      No ordering keeps them out, whatever its picks: ``loc[v] = -2``.
    * the **rest** (``gnode[:m]``, local ids in ``loc``): blockers reached from the free part
      or active themselves (``entry``) and what is reached only through blockers, with the
      live ties among them as local CSR (ties into the free part left out: they change
      nothing). ``kept``: protectable and retained.

    Returns (nodes reached in all, m, gnode, entry, kept, ptr, col).
    """
    gnode = np.empty(16, np.int64)
    entry = np.empty(16, np.bool_)
    kept = np.empty(16, np.bool_)
    m = 0
    nf = 0
    for j in range(cand.size):
        v = cand[j]
        if _coin(sb, v) < sprob[v]:
            if picked[v] and blockable[v] and _coin(rb, v) < retention:
                if m == gnode.size:
                    gnode = _grow(gnode, 2 * m)
                    entry = _grow(entry, 2 * m)
                    kept = _grow(kept, 2 * m)
                loc[v] = m
                gnode[m] = v
                entry[m] = True
                kept[m] = True
                m += 1
            else:
                loc[v] = -2
                queue[nf] = v
                nf += 1
    head = 0
    while head < nf:  # the free part
        u = queue[head]
        head += 1
        for e in range(indptr[u], indptr[u + 1]):
            if _coin(eb, e) < prob[e]:
                v = indices[e]
                lv = loc[v]
                if lv == -1:
                    if picked[v] and blockable[v] and _coin(rb, v) < retention:
                        if m == gnode.size:
                            gnode = _grow(gnode, 2 * m)
                            entry = _grow(entry, 2 * m)
                            kept = _grow(kept, 2 * m)
                        loc[v] = m
                        gnode[m] = v
                        entry[m] = True
                        kept[m] = True
                        m += 1
                    else:
                        loc[v] = -2
                        queue[nf] = v
                        nf += 1
    cap = 64
    ea = np.empty(cap, np.int64)
    eb_ = np.empty(cap, np.int64)
    ne = 0
    head = 0
    while head < m:  # the rest: only blockers lead into it from the free part
        u = gnode[head]
        lu = head
        head += 1
        for e in range(indptr[u], indptr[u + 1]):
            if _coin(eb, e) < prob[e]:
                v = indices[e]
                lv = loc[v]
                if lv == -2:
                    continue
                if lv == -1:
                    if m == gnode.size:
                        gnode = _grow(gnode, 2 * m)
                        entry = _grow(entry, 2 * m)
                        kept = _grow(kept, 2 * m)
                    lv = m
                    loc[v] = m
                    gnode[m] = v
                    entry[m] = False
                    kept[m] = blockable[v] and _coin(rb, v) < retention
                    m += 1
                if ne == cap:
                    cap *= 2
                    ea = _grow(ea, cap)
                    eb_ = _grow(eb_, cap)
                ea[ne] = lu
                eb_[ne] = lv
                ne += 1
    ptr, col = _csr(m, ea, eb_, ne)
    return nf + m, m, gnode, entry, kept, ptr, col


@nb.njit(cache=True, nogil=True, parallel=True)
def _curves_kernel(
    indptr: np.ndarray, indices: np.ndarray, prob: np.ndarray, cand: np.ndarray,
    sprob: np.ndarray, value: np.ndarray, blockable: np.ndarray, ranks: np.ndarray,
    picked: np.ndarray, retention: float, bsrc: np.ndarray, bedge: np.ndarray,
    bret: np.ndarray, first: int, kmax: int, curves: np.ndarray, lost: np.ndarray,
    reached: np.ndarray,
) -> None:
    """For each realisation and each ordering (``ranks[s, v]`` in 1..kmax, kmax + 1 when not
    picked; ``picked``: picked by any ordering): ``curves[r, s, k]`` = value kept out of the
    cascade by the first k picks.

    The realisation's reached nodes and live ties are drawn once and split
    (:func:`_split_reached`): the free part, which no ordering keeps out, is only counted;
    then, per ordering and on the rest only, ``b(u)`` = the best over paths from the entries
    (a blocker reached from the free part or active itself) of the smallest effective rank
    on the path (a bottleneck path by a bucket queue, buckets visited from kmax + 1 down),
    and u is kept out by the first k picks exactly when ``b(u) <= k``. Sums run in node
    order, so a realisation's numbers do not depend on the other orderings.
    """
    n = indptr.size - 1
    runs = curves.shape[0]
    strategies = ranks.shape[0]
    inf = kmax + 1
    for r in nb.prange(runs):
        rr = first + r
        sb = _base(bsrc[0], rr)
        eb = _edge_base(bedge, rr)
        rb = _base(bret[0], rr)
        loc = np.full(n, -1, np.int32)  # 4 bytes: half the cache misses of the BFS
        queue = np.empty(n, np.int32)
        total_n, m, gnode, entry, kept, ptr, col = _split_reached(
            indptr, indices, prob, cand, sprob, blockable, picked, retention, sb, eb, rb,
            loc, queue)
        total = 0.0
        for v in range(n):  # in node order: the same sum whatever the orderings
            if loc[v] != -1:
                total += value[v]
        lost[r] = total
        reached[r] = total_n
        by_node = np.argsort(gnode[:m])
        b = np.zeros(m, np.int64)
        eff = np.empty(m, np.int64)
        done = np.zeros(m, np.bool_)
        head = np.full(inf + 1, -1, np.int64)
        cap = 2 * m + 16
        pnode = np.empty(cap, np.int64)
        pnext = np.empty(cap, np.int64)
        for s in range(strategies):
            rank = ranks[s]
            npool = 0
            for i in range(m):
                eff[i] = rank[gnode[i]] if kept[i] else inf
                b[i] = 0
                done[i] = False
                if entry[i]:
                    c = eff[i]
                    b[i] = c
                    if npool == cap:
                        cap *= 2
                        pnode = _grow(pnode, cap)
                        pnext = _grow(pnext, cap)
                    pnode[npool] = i
                    pnext[npool] = head[c]
                    head[c] = npool
                    npool += 1
            for c in range(inf, 0, -1):
                while head[c] >= 0:
                    p = head[c]
                    head[c] = pnext[p]
                    u = pnode[p]
                    if done[u] or b[u] != c:
                        continue
                    done[u] = True
                    for q in range(ptr[u], ptr[u + 1]):
                        w = col[q]
                        if done[w]:
                            continue
                        c2 = eff[w] if eff[w] < c else c
                        if c2 > b[w]:
                            b[w] = c2
                            if npool == cap:
                                cap *= 2
                                pnode = _grow(pnode, cap)
                                pnext = _grow(pnext, cap)
                            pnode[npool] = w
                            pnext[npool] = head[c2]
                            head[c2] = npool
                            npool += 1
            row = curves[r, s]
            for j in range(m):
                i = by_node[j]
                if b[i] <= kmax:
                    row[b[i]] += value[gnode[i]]
            row[0] = 0.0
            for k in range(1, kmax + 1):
                row[k] += row[k - 1]


# ---------------------------------------------------------------------------- Python side
@dataclass(frozen=True, eq=False)
class BlockingModel:
    """A cascade to block: tie probabilities (``dg.prob``), spontaneous activation
    probabilities, which nodes can be protected, their values and the retention rate.
    """

    dg: DiffusionGraph
    source_prob: np.ndarray
    blockable: np.ndarray
    values: np.ndarray
    retention: float

    def __post_init__(self) -> None:
        n = self.dg.n_nodes
        for name in ("source_prob", "blockable", "values"):
            if np.shape(getattr(self, name)) != (n,):
                raise InvalidInputError(f"{name} must have one entry per node ({n})")
        sp = np.asarray(self.source_prob, np.float64)
        if not np.isfinite(sp).all() or (sp < 0).any() or (sp > 1).any():
            raise InvalidInputError("source_prob must lie in [0, 1]")
        v = np.asarray(self.values, np.float64)
        if not np.isfinite(v).all() or (v < 0).any():
            raise InvalidInputError("values must be finite and non-negative")
        if not 0.0 < float(self.retention) <= 1.0:
            raise InvalidInputError(f"retention must be in (0, 1], not {self.retention}")

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(candidate sources, source probabilities, blockable, values) for the kernels."""
        sp = np.ascontiguousarray(self.source_prob, np.float64)
        return (np.flatnonzero(sp > 0).astype(np.int64), sp,
                np.ascontiguousarray(self.blockable, np.bool_),
                np.ascontiguousarray(self.values, np.float64))


def _seeds(seed: int, tie_seed: int | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent coin seeds for sources, ties (``[seed, multiplier]``, see
    :func:`_edge_base`) and retention. With ``tie_seed``, the tie coins are those of
    :func:`carenet.graphs.exposure.forward_exposure` with that seed (common random numbers).
    """
    for value in (seed, tie_seed):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, np.integer))):
            raise InvalidInputError(f"seed must be an integer, not {value!r}")
    s = np.random.SeedSequence(int(seed) & _MASK64).generate_state(3, np.uint64)
    edge = np.array([s[1], _G2], np.uint64)
    if tie_seed is not None:
        edge = np.array([np.uint64(int(tie_seed) & _MASK64), _GOLDEN], np.uint64)
    return s[0:1].copy(), edge, s[2:3].copy()


def dominator_tree(n: int, sources: Sequence[int] | np.ndarray,
                   targets: Sequence[int] | np.ndarray, root: int = 0) -> np.ndarray:
    """Immediate dominator of every node of a directed graph from ``root`` (-1: unreached;
    the root is its own). Cooper, Harvey & Kennedy's iterative algorithm.

    >>> dominator_tree(4, [0, 0, 1, 2], [1, 2, 3, 3]).tolist()
    [0, 0, 0, 0]
    """
    s = np.asarray(sources, np.int64)
    t = np.asarray(targets, np.int64)
    if s.size != t.size:
        raise InvalidInputError("sources and targets must have the same length")
    if n < 1 or not 0 <= root < n or (s.size and (min(s.min(), t.min()) < 0
                                                 or max(s.max(), t.max()) >= n)):
        raise InvalidInputError(f"nodes and root must be positions in [0, {n})")
    perm = np.arange(n)
    perm[[0, root]] = perm[[root, 0]]
    idom = dominator_tree_kernel(n, perm[s], perm[t])
    out = np.where(idom >= 0, perm[np.maximum(idom, 0)], -1)
    return out[perm]


@dataclass(frozen=True, eq=False)
class Realisations:
    """Dominator trees of R realisations as flat arrays: realisation r holds entries
    ``offsets[r]:offsets[r + 1]`` in preorder; ``parent`` is a global entry position (-1: a
    child of the super-source), ``subtree_value`` the value its node alone keeps out.
    """

    runs: int
    offsets: np.ndarray
    node: np.ndarray
    parent: np.ndarray
    size: np.ndarray
    subtree_value: np.ndarray
    seconds: float

    def extend(self, other: Realisations) -> Realisations:
        """These realisations followed by ``other`` (the next ones of the same coins)."""
        shift = self.node.size
        parent = np.where(other.parent >= 0, other.parent + shift, -1)
        return Realisations(
            runs=self.runs + other.runs,
            offsets=np.concatenate([self.offsets, other.offsets[1:] + shift]),
            node=np.concatenate([self.node, other.node]),
            parent=np.concatenate([self.parent, parent]),
            size=np.concatenate([self.size, other.size]),
            subtree_value=np.concatenate([self.subtree_value, other.subtree_value]),
            seconds=self.seconds + other.seconds,
        )

    def protected_per_run(self, remaining: np.ndarray) -> np.ndarray:
        """Value kept out of each realisation's cascade (in expectation over the retention
        coins) once the greedy has left ``remaining`` subtree values: the drop of its roots'.
        """
        roots = np.flatnonzero(self.parent < 0)
        r = np.searchsorted(self.offsets, roots, side="right") - 1
        return np.bincount(r, weights=self.subtree_value[roots] - remaining[roots],
                           minlength=self.runs)

    @property
    def lost_value(self) -> np.ndarray:
        """Value reached by the cascade in each realisation (nothing protected)."""
        # the realisation of the roots only (the same values as of every entry, then masked:
        # three int64 arrays of all entries, ~0.5 GB at 1M customers, the care step's peak)
        roots = np.flatnonzero(self.parent < 0)
        r = np.searchsorted(self.offsets, roots, side="right") - 1
        return np.bincount(r, weights=self.subtree_value[roots], minlength=self.runs)


def realise(model: BlockingModel, runs: int, *, seed: int = 0, batch: int | None = None,
            max_entries: int | None = None, first: int = 0,
            tie_seed: int | None = None) -> Realisations:
    """R forward realisations of the cascade with the dominator tree of each (realisations
    ``first .. first + runs - 1`` of ``seed``'s coins). With ``max_entries``, stops after the
    batch in which the trees reach that many entries (a memory bound: 24 bytes an entry), so
    fewer than ``runs`` realisations may come back. With ``tie_seed``, realisation r's live
    ties are those of exposure's world r with that seed (Independent Cascade).
    """
    t0 = time.perf_counter()
    if runs < 1:
        raise InvalidInputError(f"runs must be >= 1, not {runs}")
    dg = model.dg
    n = dg.n_nodes
    cand, sp, _, val = model.arrays()
    bsrc, bedge, _ = _seeds(seed, tie_seed)
    b = batch or max(2, 2 * nb.get_num_threads())
    nodes, parents, sizes_, vals, counts = [], [], [], [], []
    total = 0  # entries so far: realisation i's first global entry position
    # one set of batch buffers for every batch: fresh ones would fault in new pages each time
    rows = min(b, runs)
    on_all = np.empty((rows, n), np.int64)
    op_all = np.empty((rows, n), np.int64)
    osz_all = np.empty((rows, n), np.int64)
    ov_all = np.empty((rows, n), np.float64)
    for start in range(0, runs, b):
        c = min(b, runs - start)
        on, op, osz, ov = on_all[:c], op_all[:c], osz_all[:c], ov_all[:c]
        sz = np.zeros(c, np.int64)
        with PARALLEL_LOCK:
            _realise_batch(dg.indptr, dg.indices, dg.prob, cand, sp, val, bsrc, bedge,
                           int(first) + start, c, on, op, osz, ov, sz)
        for i in range(c):
            k = int(sz[i])
            nodes.append(on[i, :k].astype(np.int32))
            # parents as global entry positions right away (-1 stays -1): shifting them
            # after the concatenation held three int64 copies of every entry at once
            par = op[i, :k].copy()
            np.add(par, total, out=par, where=par >= 0)
            parents.append(par)
            sizes_.append(osz[i, :k].astype(np.int32))
            vals.append(ov[i, :k].copy())
            counts.append(k)
            total += k
        if max_entries is not None and total >= max_entries:
            break
    del on, op, osz, ov, on_all, op_all, osz_all, ov_all  # the batch buffers (views too)
    runs = len(counts)
    offsets = np.zeros(runs + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    # each column concatenated and its pieces dropped before the next (24 bytes an entry
    # held at a time, plus one column's pieces; not every column twice)
    node = _concatenate(nodes, np.int32)
    parent = _concatenate(parents, np.int64)
    size = _concatenate(sizes_, np.int32)
    value = _concatenate(vals, np.float64)
    return Realisations(
        runs=int(runs), offsets=offsets, node=node, parent=parent, size=size,
        subtree_value=value, seconds=time.perf_counter() - t0,
    )


def _concatenate(pieces: list[np.ndarray], dtype: type) -> np.ndarray:
    """The pieces end to end; empties ``pieces`` (so they are freed as soon as copied)."""
    out = np.concatenate(pieces) if pieces else np.zeros(0, dtype)
    pieces.clear()
    return out


@dataclass(frozen=True, eq=False)
class BlockingPlan:
    """Greedy picks (node positions, in order) with their marginal gains on the greedy's
    own realisations (``gains``; in value), and what it took. ``error``: relative half-width
    (at ``confidence``) of the picks' protected value on those realisations; ``stopped``:
    why no more realisations were drawn.
    """

    nodes: np.ndarray
    gains: np.ndarray
    runs: int
    lost_value: float
    entries: int
    realise_seconds: float
    greedy_seconds: float
    error: float = float("nan")
    error_target: float | None = None
    stopped: str = "fixed runs"


def _relative_half_width(x: np.ndarray, z: float) -> float:
    if x.size < 2:
        return float("inf")
    mean = float(x.mean())
    half = z * float(x.std(ddof=1)) / math.sqrt(x.size)
    if mean <= 0:
        return 0.0 if half == 0 else float("inf")
    return half / mean


def greedy_blocking(model: BlockingModel, k: int, *, runs: int = 200, seed: int = 0,
                    max_entries: int | None = None,
                    realisations: Realisations | None = None, error: float | None = None,
                    min_runs: int = 50, confidence: float = 0.95,
                    tie_seed: int | None = None) -> BlockingPlan:
    """Up to k nodes to protect, greedily over the dominator trees of ``runs`` realisations
    (fewer when their trees reach ``max_entries``; see :func:`realise` and the module
    docstring); stops early when no node gains anything.

    With ``error`` (relative), realisations are drawn in rounds (first ``min_runs``, at most
    ``runs``) and the greedy rerun until the picks' protected value on them has an interval
    half-width (at ``confidence``) of at most ``error`` times that value; realisation r
    always has the same coins, so the result equals the greedy on the first R realisations.
    ``tie_seed``: share the tie coins with exposure's worlds (:func:`realise`).
    """
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, not {k}")
    if error is not None and not 0.0 < error < 1.0:
        raise InvalidInputError(f"error must be in (0, 1), not {error}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    _, _, blockable, _ = model.arrays()
    kk = int(min(k, model.dg.n_nodes))
    if realisations is not None or error is None:
        rs = (realisations if realisations is not None
              else realise(model, runs, seed=seed, max_entries=max_entries,
                           tie_seed=tie_seed))
        t0 = time.perf_counter()
        rem = rs.subtree_value.copy()
        picks, gains = _greedy(model.dg.n_nodes, rs.node, rs.parent, rs.size, rem, rs.runs,
                               float(model.retention), blockable, kk)
        reached = _relative_half_width(rs.protected_per_run(rem), z)
        return BlockingPlan(nodes=picks, gains=gains, runs=rs.runs,
                            lost_value=float(rs.lost_value.mean()) if rs.runs else 0.0,
                            entries=int(rs.node.size), realise_seconds=rs.seconds,
                            greedy_seconds=time.perf_counter() - t0, error=reached)
    rs = realise(model, max(2, min(int(min_runs), runs)), seed=seed, max_entries=max_entries,
                 tie_seed=tie_seed)
    greedy_s = 0.0
    while True:
        t0 = time.perf_counter()
        rem = rs.subtree_value.copy()
        picks, gains = _greedy(model.dg.n_nodes, rs.node, rs.parent, rs.size, rem, rs.runs,
                               float(model.retention), blockable, kk)
        greedy_s += time.perf_counter() - t0
        reached = _relative_half_width(rs.protected_per_run(rem), z)
        full = max_entries is not None and rs.node.size >= max_entries
        if reached <= error or rs.runs >= runs or full:
            stopped = ("error target met" if reached <= error else
                       "max_entries reached" if full else "max runs reached")
            break
        need = math.ceil(rs.runs * (reached / error) ** 2 * 1.05)
        more = max(1, min(need - rs.runs, rs.runs, runs - rs.runs))
        rs = rs.extend(realise(model, more, seed=seed, first=rs.runs,
                               max_entries=None if max_entries is None
                               else max_entries - int(rs.node.size), tie_seed=tie_seed))
    return BlockingPlan(nodes=picks, gains=gains, runs=rs.runs,
                        lost_value=float(rs.lost_value.mean()) if rs.runs else 0.0,
                        entries=int(rs.node.size), realise_seconds=rs.seconds,
                        greedy_seconds=greedy_s, error=reached, error_target=error,
                        stopped=stopped)


def protected_curves(model: BlockingModel, orders: Sequence[Sequence[int] | np.ndarray],
                     kmax: int, *, runs: int = 1000, seed: int = 1, first: int = 0,
                     reached: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Value protected by the first k nodes of each ordering, k = 0..kmax, in each of
    ``runs`` realisations (same coins for every ordering): array ``(runs, orderings, kmax +
    1)``, and the value reached with nothing protected in each realisation. ``reached``
    (int64, ``runs`` long), if given, receives the customers each realisation reaches: the
    work of a realisation is about that times the orderings (the care evaluation's budget).
    """
    if runs < 1 or kmax < 0:
        raise InvalidInputError("runs must be >= 1 and kmax >= 0")
    dg = model.dg
    n = dg.n_nodes
    ranks = np.full((len(orders), n), kmax + 1, np.int64)
    for s, order in enumerate(orders):
        o = np.asarray(order, np.int64)[:kmax]
        if o.size and (o.min() < 0 or o.max() >= n or np.unique(o).size != o.size):
            raise InvalidInputError("an ordering must list distinct node positions")
        ranks[s, o] = np.arange(1, o.size + 1)
    cand, sp, blockable, val = model.arrays()
    picked = np.asarray((ranks <= kmax).any(axis=0), np.bool_)
    bsrc, bedge, bret = _seeds(seed)
    curves = np.zeros((int(runs), len(orders), int(kmax) + 1))
    lost = np.zeros(int(runs))
    size = np.zeros(int(runs), np.int64) if reached is None else reached
    if size.shape != (int(runs),) or size.dtype != np.int64:
        raise InvalidInputError("reached must be an int64 array of runs entries")
    with PARALLEL_LOCK, nb.parallel_chunksize(1):
        _curves_kernel(dg.indptr, dg.indices, dg.prob, cand, sp, val, blockable, ranks,
                       picked, float(model.retention), bsrc, bedge, bret, int(first),
                       int(kmax), curves, lost, size)
    return curves, lost


def exact_protected(model: BlockingModel, protected: Sequence[int] | np.ndarray,
                    *, max_worlds: int = 1 << 22) -> float:
    """Exact expected value kept out of the cascade by protecting ``protected`` (each
    retained with probability ``retention``), by enumerating every combination of live ties,
    active sources and retention coins. Plain Python, independent of the kernels: the oracle
    of the tests (tiny graphs only).
    """
    dg = model.dg
    n = dg.n_nodes
    src = np.repeat(np.arange(n), np.diff(dg.indptr)).tolist()
    dst = dg.indices.tolist()
    prob = dg.prob.tolist()
    sp = np.asarray(model.source_prob, float).tolist()
    val = np.asarray(model.values, float).tolist()
    prot = [int(v) for v in protected if model.blockable[int(v)]]
    ret = float(model.retention)
    coins: list[list[tuple[float, int]]] = []  # per random variable: (probability, outcome)
    kinds: list[tuple[str, int]] = []
    for e, p in enumerate(prob):
        coins.append([(p, 1), (1 - p, 0)])
        kinds.append(("edge", e))
    for v, p in enumerate(sp):
        if p > 0:
            coins.append([(p, 1), (1 - p, 0)])
            kinds.append(("source", v))
    for v in prot:
        coins.append([(ret, 1), (1 - ret, 0)])
        kinds.append(("kept", v))
    if 2 ** len(coins) > max_worlds:
        raise InvalidInputError(f"too many worlds (2**{len(coins)})")
    total = 0.0
    for outcome in itertools.product(*coins):
        p = 1.0
        live: list[int] = []
        active: list[int] = []
        kept: set[int] = set()
        for (q, x), (kind, i) in zip(outcome, kinds, strict=True):
            p *= q
            if x:
                if kind == "edge":
                    live.append(i)
                elif kind == "source":
                    active.append(i)
                else:
                    kept.add(i)
        if p == 0.0:
            continue
        total += p * (_reach_value(active, live, src, dst, val, set())
                      - _reach_value(active, live, src, dst, val, kept))
    return total


def _reach_value(active: list[int], live: list[int], src: list[int], dst: list[int],
                 val: list[float], blocked: set[int]) -> float:
    adj: dict[int, list[int]] = {}
    for e in live:
        adj.setdefault(src[e], []).append(dst[e])
    seen = {v for v in active if v not in blocked}
    stack = list(seen)
    while stack:
        u = stack.pop()
        for w in adj.get(u, []):
            if w not in seen and w not in blocked:
                seen.add(w)
                stack.append(w)
    return sum(val[v] for v in seen)
