"""Communities of customers: Leiden (default), Louvain, label propagation and Infomap.

Every algorithm runs on the undirected view of the graph (a tie in either direction links two
customers, ``w(u, v) = w(u -> v) + w(v -> u)``; self-loops are ignored) and returns a frozen
:class:`Partition`: one community label per customer (aligned to node positions), the
algorithm, its parameters and seed, the modularity, the community sizes and the time taken.

**Labels.** Community 0 is the largest; equal sizes are ordered by their smallest customer id,
so the labels do not depend on how customers are stored. :func:`align` renames the
communities of a new run after the previous run's (matched by Jaccard overlap), so that a
community keeps its id from run to run, and reports splits, merges, births and deaths.

**Determinism.** The same seed gives the same partition in any process. The native kernels
(numba) draw from a local ``numpy.random.Generator`` and work on the customers in the order of
their ids, so the partition does not change when customers are relabelled or ties reordered.
igraph's random number generator is process-global: it is set from the seed for the call and
restored afterwards.

**Backends.** ``native`` (carenet's numba kernels on the CSR arrays: Leiden, Louvain, label
propagation), ``igraph`` (all four; the only Infomap) and ``networkx`` (Louvain and label
propagation, the reference). ``auto`` uses native where it exists (it is faster than igraph
including igraph's graph conversion, see ``benchmarks/measures.py``) and igraph for Infomap.

**Objectives.** ``modularity`` (with a ``resolution``: higher gives smaller communities) or
``cpm``, the constant Potts model (a community must have internal tie density above
``resolution``; no resolution limit, so it finds small close-knit groups in big graphs).

>>> from carenet.graphs.model import CustomerGraph
>>> two_triangles = CustomerGraph.from_edges(
...     list("abcdef"), [0, 1, 2, 3, 4, 5, 2], [1, 2, 0, 4, 5, 3, 3], directed=False)
>>> p = leiden(two_triangles, seed=1)
>>> p.labels.tolist(), p.sizes.tolist(), round(p.modularity, 4)
([0, 0, 0, 1, 1, 1], [3, 3], 0.3571)
"""

from __future__ import annotations

import inspect
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.graphs.backends import Backend, resolve_backend
from carenet.graphs.model import CustomerGraph, csr_from_edges

if TYPE_CHECKING:  # pragma: no cover
    import igraph

Algorithm = Literal["leiden", "louvain", "label_propagation", "infomap"]
Objective = Literal["modularity", "cpm"]
ALGORITHMS: tuple[str, ...] = ("leiden", "louvain", "label_propagation", "infomap")
_BACKENDS: dict[str, tuple[str, ...]] = {
    "leiden": ("native", "igraph"),
    "louvain": ("native", "igraph", "networkx"),
    "label_propagation": ("native", "igraph", "networkx"),
    "infomap": ("igraph",),
}


# ---------------------------------------------------------------------------- result object
@dataclass(frozen=True, eq=False)
class Partition:
    """A community for every customer, and how it was found.

    ``labels[i]`` is the community of customer ``ids[i]``; labels run 0..k-1 with 0 the
    largest community (see :func:`align` for labels kept across runs, which may then have
    gaps). ``modularity`` is Newman's modularity at resolution 1 on the undirected weighted
    view (comparable across algorithms); ``quality`` is the objective the algorithm optimised
    at its parameters.
    """

    labels: np.ndarray
    ids: np.ndarray = field(repr=False)
    algorithm: str
    backend: str
    parameters: Mapping[str, Any]
    seed: int | None
    modularity: float
    quality: float
    seconds: float
    levels: int | None = None

    @property
    def sizes(self) -> np.ndarray:
        """Customers per community, indexed by label (0 for unused labels)."""
        if len(self.labels) == 0:
            return np.zeros(0, np.int64)
        return np.bincount(self.labels)

    @property
    def n_communities(self) -> int:
        """Number of non-empty communities."""
        return int(np.count_nonzero(self.sizes))

    def members(self, community: int) -> np.ndarray:
        """Customer ids in one community."""
        if not (self.labels == community).any():
            raise RunNotFoundError(f"no community {community}")
        return self.ids[self.labels == community]

    def to_frame(self) -> pd.DataFrame:
        """One row per customer: ``customer_id``, ``community``."""
        return pd.DataFrame({"customer_id": self.ids, "community": self.labels})

    def to_dict(self, *, values: bool = True) -> dict[str, Any]:
        """JSON-ready description (native Python numbers only)."""
        sizes = self.sizes
        used = np.flatnonzero(sizes)
        out: dict[str, Any] = {
            "algorithm": self.algorithm,
            "backend": self.backend,
            "parameters": {str(k): (v.item() if isinstance(v, np.generic) else v)
                           for k, v in self.parameters.items()},
            "seed": None if self.seed is None else int(self.seed),
            "modularity": float(self.modularity),
            "quality": float(self.quality),
            "seconds": float(self.seconds),
            "levels": None if self.levels is None else int(self.levels),
            "customers": len(self.labels),
            "communities": len(used),
            "largest": int(sizes.max()) if len(sizes) else 0,
        }
        if values:
            out["ids"] = [str(x) for x in self.ids.tolist()]
            out["labels"] = self.labels.tolist()
            out["sizes"] = {str(c): int(sizes[c]) for c in used.tolist()}
        return out


# ---------------------------------------------------------------------------- helpers
def _canonical_rank(ids: np.ndarray) -> np.ndarray:
    """rank[i] = position of customer ids[i] in sorted id order (a label-free node order)."""
    n = len(ids)
    order = np.argsort(np.asarray(ids).astype(str), kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    return rank


@dataclass(frozen=True, eq=False)
class _Canonical:
    """The undirected view with customers numbered in id order; self-loops dropped."""

    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    rank: np.ndarray

    @property
    def n(self) -> int:
        return len(self.rank)


def _rank(graph: CustomerGraph) -> np.ndarray:
    """The id-order rank of every customer, cached on the graph (sorting ids costs ~1 s at 1M)."""
    return graph.derived("detection.rank", lambda: _canonical_rank(graph.ids))


def _canonical(graph: CustomerGraph) -> _Canonical:
    return graph.derived("detection.canonical", lambda: _build_canonical(graph))


def _build_canonical(graph: CustomerGraph) -> _Canonical:
    n = graph.n_customers
    rank = _rank(graph)
    s = graph.sources()
    t = graph.indices
    keep = s != t
    s, t, w = s[keep], t[keep], graph.weights[keep]
    rs = rank[s].astype(np.int32)
    rt = rank[t].astype(np.int32)
    if graph.directed:
        rs, rt = np.concatenate([rs, rt]), np.concatenate([rt, rs])
        w = np.concatenate([w, w])
    indptr, idx, wt = csr_from_edges(n, rs, rt, w)
    return _Canonical(indptr.astype(np.int64), idx.astype(np.int64), wt, rank)


@contextmanager
def igraph_seed(seed: int) -> Iterator[None]:
    """Seed igraph's process-global random number generator for one call, then restore it.

    python-igraph has no getter for its generator; its default is the ``random`` module, so
    that is what is put back. The seeded generator is a private ``random.Random``, so the
    ``random`` module's own state is never touched.
    """
    import igraph

    igraph.set_random_number_generator(random.Random(seed))
    try:
        yield
    finally:
        igraph.set_random_number_generator(random)


def _ig_undirected(graph: CustomerGraph, weighted: bool) -> tuple[igraph.Graph, Any]:
    view = graph.undirected_view()
    g = view.to_igraph()
    # a named attribute is read by igraph in C, without converting a Python list per call
    return g, ("weight" if g.ecount() and weighted else None)


def _check_seed(seed: int | None) -> int:
    if seed is None:
        return int(np.random.default_rng().integers(0, 2**31 - 1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, not {seed!r}")
    return int(seed)


def canonical_labels(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Community labels renumbered by size (0 = largest), equal sizes by smallest id.

    >>> canonical_labels(np.array([5, 5, 2, 7, 7, 7]), np.array(list("abcdef"), dtype=object))
    array([1, 1, 2, 0, 0, 0])
    """
    return _by_size(np.asarray(labels, dtype=np.int64), _canonical_rank(ids))


def _by_size(labels: np.ndarray, rank: np.ndarray) -> np.ndarray:
    if len(labels) == 0:
        return labels
    _, dense = np.unique(labels, return_inverse=True)
    k = int(dense.max()) + 1
    sizes = np.bincount(dense, minlength=k)
    first = np.full(k, len(labels), np.int64)
    np.minimum.at(first, dense, rank)
    order = np.lexsort((first, -sizes))
    new = np.empty(k, np.int64)
    new[order] = np.arange(k)
    return new[dense]


def _modularity_view(graph: CustomerGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray | None]:
    """A symmetric CSR without self-loops for quality sums: the id-ordered view when it
    exists (native runs built it), else the position-ordered undirected view (igraph and
    networkx runs need no second copy). Returns (indptr, indices, weights, rank or None).
    """
    canon = graph.cached("detection.canonical")
    if canon is not None:
        return canon.indptr, canon.indices, canon.weights, canon.rank
    view = graph.undirected_view()
    s = view.sources()
    if (view.indices == s).any():  # drop self-loops, as the algorithms do
        view = view.filter_ties(view.indices != s)
    return view.indptr.astype(np.int64), view.indices.astype(np.int64), view.weights, None


def modularity(
    graph: CustomerGraph, labels: np.ndarray, *, resolution: float = 1.0, weighted: bool = True,
) -> float:
    """Newman's modularity of ``labels`` on the undirected (weighted) view:
    ``sum_c [w_in(c) / m - resolution * (s_c / 2m)^2]`` with ``w_in(c)`` the tie weight inside
    ``c`` and ``s_c`` its summed strength.

    >>> g = CustomerGraph.from_edges(list("abcd"), [0, 2], [1, 3], directed=False)
    >>> modularity(g, np.array([0, 0, 1, 1]))
    0.5
    """
    from carenet.community import _leiden

    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (graph.n_customers,):
        raise InvalidInputError(
            f"labels must have one entry per customer ({graph.n_customers}), not {labels.shape}"
        )
    indptr, indices, weights, rank = _modularity_view(graph)
    if indices.size == 0:
        return 0.0
    w = weights if weighted else np.ones(indices.size)
    lab = labels
    if rank is not None:
        lab = np.empty_like(labels)
        lab[rank] = labels
    dense = np.unique(lab, return_inverse=True)[1]
    k = int(dense.max()) + 1
    strength, inside, _ = _leiden.community_stats(indptr, indices, w, dense, k)
    two_m = float(w.sum())
    return float((inside.sum() / two_m) - resolution * float(((strength / two_m) ** 2).sum()))


def _cpm_quality(graph: CustomerGraph, labels: np.ndarray, resolution: float,
                 weighted: bool) -> float:
    """CPM: sum_c [w_in(c) - resolution * n_c (n_c - 1) / 2], w_in counting each tie once."""
    from carenet.community import _leiden

    indptr, indices, weights, rank = _modularity_view(graph)
    w = weights if weighted else np.ones(indices.size)
    lab = labels
    if rank is not None:
        lab = np.empty_like(labels)
        lab[rank] = labels
    dense = np.unique(lab, return_inverse=True)[1]
    k = int(dense.max()) + 1 if len(dense) else 0
    _, inside, _ = _leiden.community_stats(indptr, indices, w, dense, k)
    n_c = np.bincount(dense, minlength=k).astype(np.float64)
    return float(inside.sum() / 2 - resolution * (n_c * (n_c - 1) / 2).sum())


def _finish(
    graph: CustomerGraph, raw: np.ndarray, algorithm: str, backend: str,
    params: dict[str, Any], seed: int | None, t0: float, *, objective: str = "modularity",
    resolution: float = 1.0, weighted: bool = True, levels: int | None = None,
) -> Partition:
    labels = _by_size(np.asarray(raw, dtype=np.int64), _rank(graph))
    if graph.n_customers == 0:
        q_mod = 0.0
    else:
        q_mod = modularity(graph, labels, weighted=weighted)
    if objective == "cpm":
        quality = _cpm_quality(graph, labels, resolution, weighted)
    elif resolution == 1.0:
        quality = q_mod
    else:
        quality = modularity(graph, labels, resolution=resolution, weighted=weighted)
    return Partition(
        labels=labels, ids=graph.ids, algorithm=algorithm, backend=backend,
        parameters=params, seed=seed, modularity=q_mod, quality=quality,
        seconds=time.perf_counter() - t0, levels=levels,
    )


# ---------------------------------------------------------------------------- algorithms
def leiden(
    graph: CustomerGraph,
    *,
    objective: Objective = "modularity",
    resolution: float = 1.0,
    theta: float = 0.01,
    n_iterations: int = 2,
    seed: int | None = 0,
    weighted: bool = True,
    initial: np.ndarray | None = None,
    backend: Backend = "auto",
) -> Partition:
    """Leiden (Traag, Waltman and van Eck 2019): Louvain's local moving, plus a refinement
    that only merges well-connected sub-communities, so every community it returns is
    connected (Louvain can return disconnected ones).

    ``n_iterations`` full passes (each from the previous pass's partition; a negative value
    repeats until a pass changes nothing); ``theta`` is the randomness of the refinement
    (igraph's ``beta``); ``initial`` is a starting partition (labels aligned to positions).

    >>> g = CustomerGraph.from_edges(list("abcd"), [0, 2], [1, 3], directed=False)
    >>> leiden(g).labels.tolist()
    [0, 0, 1, 1]
    """
    t0 = time.perf_counter()
    if objective not in ("modularity", "cpm"):
        raise InvalidInputError(f"objective must be modularity or cpm, not {objective!r}")
    if not resolution >= 0:
        raise InvalidInputError(f"resolution must be >= 0, not {resolution}")
    if not theta > 0:
        raise InvalidInputError(f"theta must be > 0, not {theta}")
    if n_iterations == 0:
        raise InvalidInputError("n_iterations must be positive, or negative for 'until stable'")
    seed = _check_seed(seed)
    be = resolve_backend(backend, _BACKENDS["leiden"], "leiden")
    params = {"objective": objective, "resolution": resolution, "theta": theta,
              "n_iterations": n_iterations, "weighted": weighted,
              "initial": initial is not None}
    n = graph.n_customers
    init = _initial(initial, n)
    levels = None
    if n == 0:
        raw = np.zeros(0, np.int64)
    elif be == "native":
        raw, levels = _run_native(graph, objective, resolution, theta, n_iterations, seed,
                                  weighted, init, refine=True)
    else:
        g, w = _ig_undirected(graph, weighted)
        node_weights = None
        if objective == "modularity":
            obj = "modularity"
        else:
            obj = "CPM"
            node_weights = [1.0] * n
        with igraph_seed(seed):
            res = g.community_leiden(
                objective_function=obj, weights=w, resolution=resolution, beta=theta,
                n_iterations=n_iterations, node_weights=node_weights,
                initial_membership=None if init is None else init.tolist(),
            )
        raw = np.asarray(res.membership, dtype=np.int64)
    return _finish(graph, raw, "leiden", be, params, seed, t0, objective=objective,
                   resolution=resolution, weighted=weighted, levels=levels)


def _initial(initial: np.ndarray | None, n: int) -> np.ndarray | None:
    if initial is None:
        return None
    init = np.asarray(initial)
    if init.shape != (n,) or init.dtype.kind not in "iu" or (n and init.min() < 0):
        raise InvalidInputError(
            f"initial must hold one non-negative integer label per customer ({n})"
        )
    return np.unique(init, return_inverse=True)[1].astype(np.int64)


def _run_native(
    graph: CustomerGraph, objective: str, resolution: float, theta: float, n_iterations: int,
    seed: int, weighted: bool, init: np.ndarray | None, *, refine: bool,
) -> tuple[np.ndarray, int]:
    from carenet.community import _leiden

    canon = _canonical(graph)
    n = canon.n
    w = canon.weights if weighted else np.ones(canon.indices.size)
    if objective == "modularity":
        node_w = np.bincount(
            np.repeat(np.arange(n), np.diff(canon.indptr)), weights=w, minlength=n
        ).astype(np.float64)
        two_m = float(w.sum())
        gamma = resolution / two_m if two_m > 0 else 0.0
    else:
        node_w = np.ones(n)
        gamma = resolution
    labels = np.arange(n, dtype=np.int64)
    if init is not None:
        labels = np.empty(n, np.int64)
        labels[canon.rank] = init
    rng = np.random.default_rng(seed)
    total_levels = 0
    iteration = 0
    while n_iterations < 0 or iteration < n_iterations:
        iteration += 1
        labels, levels, changed = _leiden.leiden(
            canon.indptr, canon.indices, w, node_w, labels, gamma, theta, refine, 1000, rng,
        )
        total_levels += levels
        if not changed and n_iterations < 0:
            break
        if n_iterations < 0 and iteration >= 1000:
            break
    return labels[canon.rank], total_levels


def louvain(
    graph: CustomerGraph,
    *,
    resolution: float = 1.0,
    seed: int | None = 0,
    weighted: bool = True,
    backend: Backend = "auto",
) -> Partition:
    """Louvain (Blondel et al. 2008): greedy modularity moves, then aggregation, repeated.

    >>> g = CustomerGraph.from_edges(list("abcd"), [0, 2], [1, 3], directed=False)
    >>> louvain(g).sizes.tolist()
    [2, 2]
    """
    t0 = time.perf_counter()
    if not resolution >= 0:
        raise InvalidInputError(f"resolution must be >= 0, not {resolution}")
    seed = _check_seed(seed)
    be = resolve_backend(backend, _BACKENDS["louvain"], "louvain")
    params = {"resolution": resolution, "weighted": weighted}
    n = graph.n_customers
    levels = None
    if n == 0:
        raw = np.zeros(0, np.int64)
    elif be == "native":
        raw, levels = _run_native(graph, "modularity", resolution, 1.0, 1, seed, weighted,
                                  None, refine=False)
    elif be == "igraph":
        g, w = _ig_undirected(graph, weighted)
        with igraph_seed(seed):
            res = g.community_multilevel(weights=w, resolution=resolution)
        raw = np.asarray(res.membership, dtype=np.int64)
    else:
        import networkx as nx

        g = graph.undirected_view().to_networkx()
        comms = nx.community.louvain_communities(
            g, weight="weight" if weighted else None, resolution=resolution, seed=seed,
        )
        raw = _labels_from_sets(comms, n)
    return _finish(graph, raw, "louvain", be, params, seed, t0, resolution=resolution,
                   weighted=weighted, levels=levels)


def label_propagation(
    graph: CustomerGraph,
    *,
    seed: int | None = 0,
    weighted: bool = True,
    max_sweeps: int = 100,
    backend: Backend = "auto",
) -> Partition:
    """Label propagation (Raghavan, Albert and Kumara 2007): every customer repeatedly takes
    the label carrying the most tie weight among its neighbours. Fast, no objective, and
    prone to one giant community on dense graphs; a quick first look.

    >>> g = CustomerGraph.from_edges(list("abcd"), [0, 2], [1, 3], directed=False)
    >>> label_propagation(g).sizes.tolist()
    [2, 2]
    """
    t0 = time.perf_counter()
    if max_sweeps < 1:
        raise InvalidInputError(f"max_sweeps must be >= 1, not {max_sweeps}")
    seed = _check_seed(seed)
    be = resolve_backend(backend, _BACKENDS["label_propagation"], "label_propagation")
    params = {"weighted": weighted, "max_sweeps": max_sweeps}
    n = graph.n_customers
    levels = None
    if n == 0:
        raw = np.zeros(0, np.int64)
    elif be == "native":
        from carenet.community import _leiden

        canon = _canonical(graph)
        w = canon.weights if weighted else np.ones(canon.indices.size)
        lab, levels = _leiden.label_propagation(canon.indptr, canon.indices, w, max_sweeps,
                                                np.random.default_rng(seed))
        raw = lab[canon.rank]
    elif be == "igraph":
        g, w = _ig_undirected(graph, weighted)
        with igraph_seed(seed):
            res = g.community_label_propagation(weights=w)
        raw = np.asarray(res.membership, dtype=np.int64)
    else:
        import networkx as nx

        g = graph.undirected_view().to_networkx()
        comms = nx.community.asyn_lpa_communities(
            g, weight="weight" if weighted else None, seed=seed,
        )
        raw = _labels_from_sets(list(comms), n)
    return _finish(graph, raw, "label_propagation", be, params, seed, t0, weighted=weighted,
                   levels=levels)


def infomap(
    graph: CustomerGraph,
    *,
    trials: int = 10,
    seed: int | None = 0,
    weighted: bool = True,
    backend: Backend = "auto",
) -> Partition:
    """Infomap (Rosvall and Bergstrom 2008): the partition that compresses the description of
    a random walk best (communities are where the walk lingers). igraph only; its cost grows
    quickly with size, so it suits graphs up to a few hundred thousand ties.

    >>> g = CustomerGraph.from_edges(list("abcdef"), [0, 1, 2, 3, 4, 5, 2], [1, 2, 0, 4, 5, 3, 3],
    ...                              directed=False)
    >>> infomap(g).sizes.tolist()
    [3, 3]
    """
    t0 = time.perf_counter()
    if trials < 1:
        raise InvalidInputError(f"trials must be >= 1, not {trials}")
    seed = _check_seed(seed)
    be = resolve_backend(backend, _BACKENDS["infomap"], "infomap")
    params = {"trials": trials, "weighted": weighted}
    n = graph.n_customers
    if n == 0:
        raw = np.zeros(0, np.int64)
    else:
        g, w = _ig_undirected(graph, weighted)
        with igraph_seed(seed):
            res = g.community_infomap(edge_weights=w, trials=trials)
        raw = np.asarray(res.membership, dtype=np.int64)
    return _finish(graph, raw, "infomap", be, params, seed, t0, weighted=weighted)


def _labels_from_sets(comms: Any, n: int) -> np.ndarray:
    raw = np.full(n, -1, np.int64)
    for c, members in enumerate(comms):
        raw[list(members)] = c
    if (raw < 0).any():  # pragma: no cover - networkx covers every node
        raise InvalidInputError("the backend left customers without a community")
    return raw


def detect(
    graph: CustomerGraph,
    *,
    algorithm: Algorithm = "leiden",
    seed: int | None = 0,
    backend: Backend = "auto",
    **options: Any,
) -> Partition:
    """Run one algorithm by name (``leiden``, ``louvain``, ``label_propagation``,
    ``infomap``) with its keyword options; what the pipeline calls.

    >>> g = CustomerGraph.from_edges(list("abcd"), [0, 2], [1, 3], directed=False)
    >>> detect(g, algorithm="louvain", resolution=1.0).algorithm
    'louvain'
    """
    fns: dict[str, Callable[..., Partition]] = {
        "leiden": leiden, "louvain": louvain, "label_propagation": label_propagation,
        "infomap": infomap,
    }
    if algorithm not in fns:
        raise InvalidInputError(
            f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}"
        )
    fn = fns[algorithm]
    known = set(inspect.signature(fn).parameters) - {"graph", "seed", "backend"}
    unknown = set(options) - known
    if unknown:
        raise InvalidInputError(
            f"{algorithm} has no option(s) {', '.join(sorted(unknown))}; its options: "
            f"{', '.join(sorted(known))}"
        )
    return fn(graph, seed=seed, backend=backend, **options)


# ---------------------------------------------------------------------------- stable ids
@dataclass(frozen=True)
class CommunityChanges:
    """How the communities of a run relate to the previous run's.

    ``continued`` maps each kept id to its Jaccard overlap with its predecessor; ``splits``
    lists previous communities whose members now form several communities (each new part
    drawn mostly from it), ``merges`` new communities formed mostly by several previous ones;
    ``births`` and ``deaths`` are the rest of the new and vanished ids. Only communities of at
    least ``min_size`` customers are listed; counts cover all.
    """

    continued: dict[int, float]
    splits: list[dict[str, Any]]
    merges: list[dict[str, Any]]
    births: list[int]
    deaths: list[int]
    next_id: int
    min_jaccard: float
    min_size: int
    customers_compared: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (native Python numbers only)."""
        return {
            "continued": len(self.continued),
            "mean_jaccard": (float(np.mean(list(self.continued.values())))
                             if self.continued else None),
            "splits": self.splits,
            "merges": self.merges,
            "births": self.births,
            "deaths": self.deaths,
            "counts": {"continued": len(self.continued), "splits": len(self.splits),
                       "merges": len(self.merges), "births": len(self.births),
                       "deaths": len(self.deaths)},
            "next_id": int(self.next_id),
            "min_jaccard": float(self.min_jaccard),
            "min_size": int(self.min_size),
            "customers_compared": int(self.customers_compared),
        }


def _groups(keys: np.ndarray, values: np.ndarray) -> list[tuple[int, list[int]]]:
    """(key, [values]) for each distinct key, keys ascending."""
    out: dict[int, list[int]] = {}
    for key, value in zip(keys.tolist(), values.tolist(), strict=True):
        out.setdefault(int(key), []).append(int(value))
    return sorted(out.items())


def align(
    partition: Partition,
    previous: pd.Series | Mapping[str, int],
    *,
    min_jaccard: float = 0.3,
    min_size: int = 3,
    next_id: int | None = None,
) -> tuple[Partition, CommunityChanges]:
    """Rename ``partition``'s communities after the previous run's so that ids are stable.

    ``previous`` maps customer id -> previous community id (a Series indexed by customer id,
    or a mapping). Pairs (new, previous) are ranked by Jaccard overlap of their customers
    (customers present in only one run count in the union) and matched greedily one-to-one
    when the overlap is at least ``min_jaccard``; a matched community takes its
    predecessor's id. Unmatched new communities take fresh ids from ``next_id`` (default: one
    past the largest previous id), largest first, so an id is never reused for a different
    community.

    >>> g = CustomerGraph.from_edges(list("abcd"), [0, 2], [1, 3], directed=False)
    >>> p, changes = align(leiden(g), {"a": 7, "b": 7, "c": 3, "d": 3})
    >>> p.labels.tolist(), changes.to_dict()["counts"]["continued"]
    ([7, 7, 3, 3], 2)
    """
    if not 0.0 < min_jaccard <= 1.0:
        raise InvalidInputError(f"min_jaccard must be in (0, 1], not {min_jaccard}")
    prev = previous if isinstance(previous, pd.Series) else pd.Series(dict(previous))
    prev = prev[prev.notna()]
    prev = pd.Series(prev.to_numpy().astype(np.int64),
                     index=pd.Index(prev.index.astype(str)))
    new_labels = partition.labels
    k_new = int(new_labels.max()) + 1 if len(new_labels) else 0
    new_sizes = np.bincount(new_labels, minlength=k_new)
    prev_ids = prev.to_numpy()
    prev_sizes = pd.Series(prev_ids).value_counts()
    start_id = int(prev_ids.max()) + 1 if len(prev_ids) else 0
    if next_id is not None:
        start_id = max(start_id, int(next_id))
    pos = pd.Index(prev.index).get_indexer(pd.Index(partition.ids.astype(str)))
    both = pos >= 0
    pairs = pd.DataFrame({"new": new_labels[both], "old": prev_ids[pos[both]]})
    overlap = pairs.groupby(["new", "old"], sort=True).size().rename("overlap").reset_index()
    overlap["new_size"] = new_sizes[overlap["new"].to_numpy()]
    overlap["old_size"] = prev_sizes.reindex(overlap["old"].to_numpy()).to_numpy()
    overlap["jaccard"] = overlap["overlap"] / (
        overlap["new_size"] + overlap["old_size"] - overlap["overlap"]
    )
    ranked = overlap.sort_values(["jaccard", "overlap", "old", "new"],
                                 ascending=[False, False, True, True], kind="stable")
    mapping: dict[int, int] = {}
    used_old: set[int] = set()
    continued: dict[int, float] = {}
    for new_c, old_c, jac in ranked.loc[ranked["jaccard"] >= min_jaccard,
                                        ["new", "old", "jaccard"]].itertuples(index=False):
        if new_c in mapping or old_c in used_old:
            continue
        mapping[int(new_c)] = int(old_c)
        used_old.add(int(old_c))
        continued[int(old_c)] = round(float(jac), 6)
    # fresh ids for the rest, largest first (new labels are already size-ordered)
    fresh = start_id
    final = np.empty(k_new, np.int64)
    for c in range(k_new):
        if c in mapping:
            final[c] = mapping[c]
        else:
            final[c] = fresh
            fresh += 1
    labels = final[new_labels]
    # splits: previous communities with >= 2 new parts drawn mostly (>= half) from them
    frag = overlap[overlap["overlap"] * 2 >= overlap["new_size"]]
    splits: list[dict[str, Any]] = []
    for old_c, parts in _groups(frag["old"].to_numpy(), frag["new"].to_numpy()):
        if len(parts) >= 2 and int(prev_sizes.get(old_c, 0)) >= min_size:
            splits.append({"previous": old_c, "into": sorted(int(final[c]) for c in parts)})
    # merges: new communities holding most (>= half) of >= 2 previous ones
    absorbed = overlap[overlap["overlap"] * 2 >= overlap["old_size"]]
    merges: list[dict[str, Any]] = []
    for new_c, olds in _groups(absorbed["new"].to_numpy(), absorbed["old"].to_numpy()):
        if len(olds) >= 2 and int(new_sizes[new_c]) >= min_size:
            merges.append({"community": int(final[new_c]), "from": sorted(olds)})
    in_split = {c for s in splits for c in s["into"]}
    in_merge = {o for m in merges for o in m["from"]}
    births = sorted(int(final[c]) for c in range(k_new)
                    if c not in mapping and new_sizes[c] >= min_size
                    and int(final[c]) not in in_split)
    deaths = sorted(int(o) for o, size in zip(prev_sizes.index.to_numpy(),
                                              prev_sizes.to_numpy(), strict=True)
                    if int(o) not in used_old and size >= min_size and int(o) not in in_merge)
    changes = CommunityChanges(
        continued=continued, splits=splits, merges=merges, births=births, deaths=deaths,
        next_id=max(fresh, start_id), min_jaccard=min_jaccard, min_size=min_size,
        customers_compared=int(both.sum()),
    )
    params = dict(partition.parameters) | {"aligned_to_previous": True}
    return replace(partition, labels=labels, parameters=params), changes


__all__ = [
    "ALGORITHMS",
    "CommunityChanges",
    "Partition",
    "align",
    "canonical_labels",
    "detect",
    "igraph_seed",
    "infomap",
    "label_propagation",
    "leiden",
    "louvain",
    "modularity",
]
