"""Network position of each customer: degree and strength, PageRank, eigenvector,
betweenness, harmonic closeness and k-core number.

Every function takes a :class:`~carenet.graphs.model.CustomerGraph` first, keyword-only
options after, and returns a frozen :class:`CentralityScores` whose ``values`` are aligned to
node positions and which remembers how it was made (algorithm, parameters, backend, seed,
timing, error bound).

Conventions (the numbers a care strategist reads):

* **Weight is closeness.** An interaction weight is a strength: more (and more recent)
  contact means a closer tie. Walk-based measures (PageRank, eigenvector) use it as is.
  Path-based measures (betweenness, harmonic) need a *length*, so a tie of weight ``w`` has
  length ``1 / w`` (``weighted=True``, the default): a path over strong ties is short. With
  ``weighted=False`` every tie has length 1 (hop counts).
* **Direction.** Directed graphs follow tie direction: PageRank flows along ties, betweenness
  counts directed shortest paths, harmonic closeness sums ``1 / d(u -> v)`` over the other
  customers ``u`` (how easily others reach ``v``, networkx's convention). Eigenvector
  centrality and the k-core use the undirected view (a tie in either direction links two
  customers), because on a directed customer graph the eigenvector is zero outside the one
  strongly connected core and says nothing about everybody else (``direction="in"`` gives the
  directed variant).
* **Scales.** PageRank sums to 1; eigenvector has maximum 1; betweenness is the share of
  ordered customer pairs (s, t), s, t != v, whose shortest paths run through v (networkx's
  ``normalized=True``); harmonic closeness is ``sum(1 / d(u, v)) / (n - 1)`` (in [0, 1] when
  unweighted); the core number is an integer.
* **Exact and sampled.** Betweenness and harmonic closeness are exact up to
  ``exact_max`` customers (default 5,000: about a second on two cores). Above, they are
  estimated from ``samples`` source customers drawn uniformly without replacement with the
  given ``seed`` (Brandes and Pich's estimator, scaled to be unbiased), and the result states
  a uniform error bound: with probability ``confidence``, *every* customer's estimate is within
  ``error_bound`` of the exact value (Hoeffding's inequality with a union bound over
  customers), plus a per-customer standard error from the spread over sources.

Backends: ``"native"`` (carenet's own kernels on the CSR arrays: scipy sparse products, numba
shortest paths on both cores), ``"igraph"`` (the default elsewhere in carenet) and
``"networkx"`` (the reference, for parity tests and small graphs). ``"auto"`` picks the
fastest measured one for each measure (see ``benchmarks/measures.py``); every measure here is
fastest natively, because the native kernels need no conversion of the graph (building an
igraph graph of 10M ties alone takes longer than PageRank). An explicitly requested backend
never silently falls back: a missing one raises
:class:`~carenet.errors.BackendUnavailableError`, and so does a backend that cannot do the
requested variant (it says why).

>>> from carenet.graphs.model import CustomerGraph
>>> g = CustomerGraph.from_edges(["a", "b", "c", "d"], [0, 1, 2, 3], [1, 2, 0, 0])
>>> pr = pagerank(g)
>>> pr.top(2)["customer_id"].tolist()
['a', 'b']
>>> round(float(pr.values.sum()), 6)
1.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from carenet.errors import BackendUnavailableError, ConvergenceError, InvalidInputError
from carenet.graphs import _path_sampling as ps
from carenet.graphs.backends import BACKENDS, Backend, resolve_backend
from carenet.graphs.model import CustomerGraph

if TYPE_CHECKING:  # pragma: no cover
    import igraph
    import networkx

Direction = Literal["in", "out", "total"]
EXACT_MAX = 5_000
"""Largest graph (customers) on which betweenness and harmonic closeness are exact by default."""
SAMPLES = 128
"""Default number of source customers for sampled betweenness and harmonic closeness."""


# ---------------------------------------------------------------------------- result object
@dataclass(frozen=True, eq=False)
class CentralityScores:
    """One centrality measure for every customer, and how it was computed.

    ``values[i]`` belongs to customer ``ids[i]`` (node position ``i``). ``exact`` is false for
    sampled estimates, which then carry ``samples``, ``seed``, ``error_bound`` (uniform over
    customers, at probability ``confidence``) and a per-customer ``stderr``; sampled with an
    error target, also ``error_target``, ``error_reached`` (largest half-width over the
    customers relative to the top score), ``target_met`` and ``sources_cap`` (the most
    sources allowed).
    """

    measure: str
    values: np.ndarray
    ids: np.ndarray = field(repr=False)
    algorithm: str
    backend: str
    parameters: Mapping[str, Any]
    seconds: float
    exact: bool = True
    seed: int | None = None
    samples: int | None = None
    error_bound: float | None = None
    confidence: float | None = None
    stderr: np.ndarray | None = field(default=None, repr=False)
    iterations: int | None = None
    error_target: float | None = None
    error_reached: float | None = None
    target_met: bool | None = None
    sources_cap: int | None = None

    def __len__(self) -> int:
        return len(self.values)

    def top(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` customers with the highest score: ``rank``, ``customer_id``, the score
        (ties keep node order, so the answer is deterministic).
        """
        if k < 0:
            raise InvalidInputError(f"k must be >= 0, not {k}")
        order = np.argsort(-np.asarray(self.values, dtype=np.float64), kind="stable")[:k]
        return pd.DataFrame({
            "rank": np.arange(1, len(order) + 1),
            "customer_id": self.ids[order],
            self.measure: self.values[order],
        })

    def to_frame(self) -> pd.DataFrame:
        """One row per customer: ``customer_id``, the score (and ``<measure>_stderr``)."""
        frame = pd.DataFrame({"customer_id": self.ids, self.measure: self.values})
        if self.stderr is not None:
            frame[f"{self.measure}_stderr"] = self.stderr
        return frame

    def to_dict(self, *, values: bool = True) -> dict[str, Any]:
        """JSON-ready description (native Python numbers only); ``values=False`` leaves out
        the per-customer arrays.
        """
        out: dict[str, Any] = {
            "measure": self.measure,
            "algorithm": self.algorithm,
            "backend": self.backend,
            "parameters": _plain(dict(self.parameters)),
            "seconds": float(self.seconds),
            "exact": bool(self.exact),
            "seed": None if self.seed is None else int(self.seed),
            "samples": None if self.samples is None else int(self.samples),
            "error_bound": None if self.error_bound is None else float(self.error_bound),
            "confidence": None if self.confidence is None else float(self.confidence),
            "iterations": None if self.iterations is None else int(self.iterations),
            "customers": len(self.values),
        }
        if self.error_target is not None:
            out |= {"error_target": float(self.error_target),
                    "error_reached": _plain(self.error_reached),
                    "target_met": bool(self.target_met),
                    "sources_cap": _plain(self.sources_cap)}
        if values:
            out["ids"] = [str(x) for x in self.ids.tolist()]
            out["values"] = np.asarray(self.values).tolist()
            if self.stderr is not None:
                out["stderr"] = np.asarray(self.stderr).tolist()
        return out


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


# ---------------------------------------------------------------------------- helpers
def _import_igraph() -> Any:
    try:
        import igraph
    except ImportError as exc:  # pragma: no cover - igraph is a dependency
        raise BackendUnavailableError(
            "backend 'igraph' requested but python-igraph is not installed "
            "(pip install igraph)"
        ) from exc
    return igraph


def _import_networkx() -> Any:
    try:
        import networkx
    except ImportError as exc:  # pragma: no cover - networkx is a dependency
        raise BackendUnavailableError(
            "backend 'networkx' requested but networkx is not installed (pip install networkx)"
        ) from exc
    return networkx


def undirected_view(graph: CustomerGraph) -> CustomerGraph:
    """The undirected view of ``graph``: :meth:`CustomerGraph.undirected_view`."""
    return graph.undirected_view()


def _check_positive_weights(graph: CustomerGraph) -> None:
    if graph.n_entries and not (graph.weights > 0).all():
        raise InvalidInputError(
            "tie weights must be > 0 for path lengths 1 / weight; drop empty ties first "
            "(graph.min_weight) or use weighted=False"
        )


def _nx_graph(graph: CustomerGraph, *, distance: bool = False) -> networkx.Graph:
    """Networkx view; with ``distance`` each edge also carries ``distance = 1 / weight``."""
    g = graph.to_networkx()

    def add_distances() -> bool:
        for _, _, data in g.edges(data=True):
            data["distance"] = 1.0 / data["weight"]
        return True

    if distance:
        graph.derived("centrality.nx_distance", add_distances)
    return g


def _ig_weights(g: igraph.Graph, *, lengths: bool = False) -> str | None:
    """Name of the igraph edge attribute holding weights (or lengths ``1 / weight``).

    igraph reads a named attribute in C; passing a Python list would convert every weight on
    each call. The length attribute is added once to the (cached) igraph view.
    """
    if g.ecount() == 0:
        return None
    if not lengths:
        return "weight"
    if "length" not in g.es.attributes():
        g.es["length"] = (1.0 / np.asarray(g.es["weight"], dtype=np.float64)).tolist()
    return "length"


def _scores(
    graph: CustomerGraph, measure: str, values: np.ndarray, algorithm: str, backend: str,
    parameters: dict[str, Any], t0: float, **extra: Any,
) -> CentralityScores:
    return CentralityScores(
        measure=measure, values=values, ids=graph.ids, algorithm=algorithm, backend=backend,
        parameters=parameters, seconds=time.perf_counter() - t0, **extra,
    )


# ---------------------------------------------------------------------------- degree, strength
def degree(graph: CustomerGraph, *, direction: Direction = "total") -> CentralityScores:
    """Number of ties per customer: ``in``, ``out`` or ``total`` (in + out; on an undirected
    graph every direction gives the number of ties).

    >>> g = CustomerGraph.from_edges(["a", "b", "c"], [0, 0, 1], [1, 2, 0])
    >>> degree(g).values.tolist(), degree(g, direction="in").values.tolist()
    ([3, 2, 1], [1, 1, 1])
    """
    t0 = time.perf_counter()
    _check_direction(direction)
    if not graph.directed:
        values = graph.out_degree().astype(np.int64)
    elif direction == "in":
        values = graph.in_degree().astype(np.int64)
    elif direction == "out":
        values = graph.out_degree().astype(np.int64)
    else:
        values = (graph.in_degree() + graph.out_degree()).astype(np.int64)
    name = "degree" if direction == "total" else f"degree_{direction}"
    return _scores(graph, name, values, "count", "native", {"direction": direction}, t0)


def strength(graph: CustomerGraph, *, direction: Direction = "total") -> CentralityScores:
    """Sum of tie weights per customer: ``in``, ``out`` or ``total`` (see :func:`degree`).

    >>> g = CustomerGraph.from_edges(["a", "b"], [0, 1], [1, 0], [2.0, 0.5])
    >>> strength(g, direction="out").values.tolist()
    [2.0, 0.5]
    """
    t0 = time.perf_counter()
    _check_direction(direction)
    # the graph's memoised arrays are read-only and shared: the scores get their own copy
    if not graph.directed or direction == "out":
        values = graph.out_strength().copy()
    elif direction == "in":
        values = graph.in_strength().copy()
    else:
        values = graph.in_strength() + graph.out_strength()
    name = "strength" if direction == "total" else f"strength_{direction}"
    return _scores(graph, name, values, "sum", "native", {"direction": direction}, t0)


def _check_direction(direction: str) -> None:
    if direction not in ("in", "out", "total"):
        raise InvalidInputError(f"direction must be in, out or total, not {direction!r}")


# ---------------------------------------------------------------------------- PageRank
Personalization = np.ndarray | Mapping[str, float] | Iterable[str] | None


def _reset_vector(graph: CustomerGraph, personalization: Personalization) -> np.ndarray | None:
    """The teleport distribution (sums to 1), or None for uniform."""
    n = graph.n_customers
    if personalization is None:
        return None
    if isinstance(personalization, np.ndarray) and personalization.dtype.kind in "fiu":
        p = np.asarray(personalization, dtype=np.float64)
        if p.shape != (n,):
            raise InvalidInputError(
                f"personalization vector must have one value per customer ({n}), "
                f"not shape {p.shape}"
            )
    elif isinstance(personalization, Mapping):
        keys = list(personalization)
        pos = graph.index_of(np.asarray(keys, dtype=object), strict=False)
        if (pos < 0).any():
            bad = [k for k, q in zip(keys, pos, strict=True) if q < 0][:5]
            raise InvalidInputError(f"personalization names unknown customers: {bad}")
        p = np.zeros(n)
        np.add.at(p, pos, np.asarray(list(personalization.values()), dtype=np.float64))
    else:
        if isinstance(personalization, str):
            raise InvalidInputError(
                "personalization must be a vector, a mapping or a collection of customer "
                "ids, not one string"
            )
        ids = np.asarray(list(personalization), dtype=object)
        pos = graph.index_of(ids, strict=False)
        if (pos < 0).any():
            raise InvalidInputError(
                f"personalization names unknown customers: {ids[pos < 0][:5].tolist()}"
            )
        p = np.zeros(n)
        p[pos] = 1.0
    if not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise InvalidInputError(
            "personalization must be non-negative, finite and not all zero"
        )
    return p / p.sum()


def pagerank(
    graph: CustomerGraph,
    *,
    damping: float = 0.85,
    weighted: bool = True,
    personalization: Personalization = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    backend: Backend = "auto",
) -> CentralityScores:
    """PageRank: the share of time a random walk along ties spends at each customer.

    At each step the walk follows an out-tie with probability proportional to its weight
    (``weighted``), and with probability ``1 - damping`` jumps to a customer drawn from
    ``personalization`` (uniform by default; a vector aligned to positions, a mapping
    ``customer_id -> weight``, or a collection of customer ids for a uniform jump among them).
    A customer without out-ties (dangling) jumps by the same distribution, as in networkx.

    The native method is power iteration with scipy sparse products on the CSR arrays
    (no graph conversion); it stops when ``d / (1 - d) * ||x_t - x_{t-1}||_1 <= tol``, which
    bounds the L1 distance to the exact PageRank by ``tol`` (so every customer's value is
    within ``tol``). igraph uses PRPACK (a direct solver); networkx runs its power iteration
    with a tolerance giving the same guarantee.

    >>> g = CustomerGraph.from_edges(["a", "b", "c"], [0, 1, 2], [1, 2, 0])
    >>> pagerank(g).values.round(4).tolist()
    [0.3333, 0.3333, 0.3333]
    >>> pagerank(g, personalization={"a"}).top(1)["customer_id"].item()
    'a'
    """
    t0 = time.perf_counter()
    if not 0.0 <= damping < 1.0:
        raise InvalidInputError(f"damping must be in [0, 1), not {damping}")
    if not tol > 0:
        raise InvalidInputError(f"tol must be > 0, not {tol}")
    if max_iter < 1:
        raise InvalidInputError(f"max_iter must be >= 1, not {max_iter}")
    be = resolve_backend(backend, ("native", "igraph", "networkx"), "pagerank")
    n = graph.n_customers
    p = _reset_vector(graph, personalization)
    params = {"damping": damping, "weighted": weighted, "tol": tol, "max_iter": max_iter,
              "personalized": p is not None}
    if n == 0:
        return _scores(graph, "pagerank", np.zeros(0), "none", be, params, t0)
    iterations: int | None = None
    if be == "native":
        values, iterations = _pagerank_native(graph, damping, weighted, p, tol, max_iter)
        algorithm = "power_iteration"
    elif be == "igraph":
        g = graph.to_igraph()
        reset = None if p is None else p.tolist()
        values = np.asarray(g.personalized_pagerank(
            directed=graph.directed, damping=damping, reset=reset,
            weights=_ig_weights(g) if weighted else None,
            implementation="prpack",
        ))
        algorithm = "prpack"
    else:
        nx = _import_networkx()
        g = _nx_graph(graph)
        pers = None if p is None else dict(enumerate(p.tolist()))
        try:
            res = nx.pagerank(
                g, alpha=damping, personalization=pers, weight="weight" if weighted else None,
                tol=tol * (1 - damping) / max(damping, 1e-300) / n, max_iter=max_iter,
            )
        except nx.PowerIterationFailedConvergence as exc:
            raise ConvergenceError(
                f"pagerank (networkx) did not reach tol={tol} in {max_iter} iterations"
            ) from exc
        values = np.array([res[i] for i in range(n)])
        algorithm = "power_iteration"
    return _scores(graph, "pagerank", values, algorithm, be, params, t0, iterations=iterations)


def _pagerank_native(
    graph: CustomerGraph, damping: float, weighted: bool, p: np.ndarray | None, tol: float,
    max_iter: int,
) -> tuple[np.ndarray, int]:
    from carenet.graphs import _centrality_kernels as kern

    n = graph.n_customers
    w = graph.weights if weighted else np.ones(graph.n_entries)
    out = np.bincount(graph.sources(), weights=w, minlength=n)
    inv = np.zeros(n)
    np.divide(1.0, out, out=inv, where=out > 0)
    # A^T as CSC shares the CSR arrays (int32 indices stay shared when indptr fits int32 too):
    # y = A^T (x / out) is a scatter over out-ties, cheaper than building the transpose for
    # the few dozen products power iteration needs.
    indptr = graph.indptr
    if graph.n_entries < 2**31 - 1 and graph.indices.dtype == np.int32:
        indptr = indptr.astype(np.int32)
    at = sp.csr_array((w, graph.indices, indptr), shape=(n, n), copy=False).T
    reset = np.full(n, 1.0 / n) if p is None else p
    x = reset.copy()
    scaled = x * inv
    stop = tol * (1 - damping) / damping if damping > 0 else math.inf
    err = math.inf
    for it in range(1, max_iter + 1):
        y = at @ scaled
        # x <- d y + (1 - d sum(y)) reset: teleport plus dangling mass, which keeps sum = 1
        err = kern.pagerank_update(y, x, reset, inv, damping, scaled)
        if err <= stop:
            return x, it
    raise ConvergenceError(
        f"pagerank did not converge to tol={tol} in {max_iter} iterations (last change "
        f"{err:.3g}); raise max_iter or tol"
    )


# ---------------------------------------------------------------------------- eigenvector
def eigenvector(
    graph: CustomerGraph,
    *,
    weighted: bool = True,
    direction: Literal["undirected", "in"] = "undirected",
    tol: float = 1e-10,
    max_iter: int = 10_000,
    backend: Backend = "auto",
) -> CentralityScores:
    """Eigenvector centrality: a customer is central when tied to central customers.

    The leading eigenvector of the (weighted) adjacency matrix, scaled to maximum 1. By
    default on the undirected view (see the module notes); ``direction="in"`` scores each
    customer by the in-ties from central customers (networkx's directed convention). On a
    graph with several components the vector lives on the component with the largest
    eigenvalue; other customers score 0.

    Native: Lanczos (scipy ``eigsh``, ARPACK) on the symmetric matrix, dense for small
    graphs; power iteration on ``A^T + I`` for ``direction="in"``.

    >>> g = CustomerGraph.from_edges(["hub", "a", "b"], [0, 0], [1, 2], directed=False)
    >>> eigenvector(g).values.round(4).tolist()
    [1.0, 0.7071, 0.7071]
    """
    t0 = time.perf_counter()
    if direction not in ("undirected", "in"):
        raise InvalidInputError(f"direction must be undirected or in, not {direction!r}")
    be = resolve_backend(backend, ("native", "igraph", "networkx"), "eigenvector")
    view = graph.undirected_view() if direction == "undirected" else graph
    n = view.n_customers
    params = {"weighted": weighted, "direction": direction, "tol": tol, "max_iter": max_iter}
    if view.n_entries == 0:
        return _scores(graph, "eigenvector", np.zeros(n), "none", be, params, t0)
    if be == "native":
        w = view.weights if weighted else np.ones(view.n_entries)
        a = sp.csr_array((w, view.indices, view.indptr), shape=(n, n))
        if not view.directed:
            values, algorithm = _leading_symmetric(a, tol)
        else:
            values = _power_in(a, tol, max_iter)
            algorithm = "power_iteration"
    elif be == "igraph":
        g = view.to_igraph()
        # python-igraph 1.0 rejects directed=False ("invalid mode"); an undirected graph
        # needs no flag, and the "in" variant is its directed=True
        flags = {"directed": True} if view.directed else {}
        values = np.asarray(g.eigenvector_centrality(
            weights=_ig_weights(g) if weighted else None, **flags,
        ))
        algorithm = "arpack"
    else:
        nx = _import_networkx()
        try:
            res = nx.eigenvector_centrality(
                _nx_graph(view), max_iter=max_iter, tol=tol,
                weight="weight" if weighted else None,
            )
        except nx.PowerIterationFailedConvergence as exc:
            raise ConvergenceError(
                f"eigenvector (networkx) did not converge in {max_iter} iterations"
            ) from exc
        values = np.array([res[i] for i in range(n)])
        algorithm = "power_iteration"
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    top = values.max()
    if top > 0:
        values = values / top
    return _scores(graph, "eigenvector", values, algorithm, be, params, t0)


def _leading_symmetric(a: sp.csr_array, tol: float) -> tuple[np.ndarray, str]:
    n = a.shape[0]
    if n <= 500:
        _, vecs = np.linalg.eigh(a.toarray())
        vec = vecs[:, -1]
        algorithm = "dense"
    else:
        from scipy.sparse.linalg import ArpackNoConvergence, eigsh

        try:
            _, vecs = eigsh(a, k=1, which="LA", v0=np.ones(n), tol=min(tol, 1e-12),
                               maxiter=max(1000, 20 * n))
        except ArpackNoConvergence as exc:
            raise ConvergenceError("eigenvector: ARPACK did not converge") from exc
        vec = vecs[:, 0]
        algorithm = "lanczos"
    if vec.sum() < 0:
        vec = -vec
    return vec, algorithm


def _power_in(a: sp.csr_array, tol: float, max_iter: int) -> np.ndarray:
    """Networkx's iteration: x <- (A^T + I) x / ||.||_2 until the L1 change is below n * tol."""
    n = a.shape[0]
    at = a.T
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        y = at @ x + x
        norm = np.linalg.norm(y)
        if norm == 0:
            return np.zeros(n)
        y /= norm
        if np.abs(y - x).sum() < n * tol:
            return y
        x = y
    raise ConvergenceError(f"eigenvector did not converge in {max_iter} iterations")


# ---------------------------------------------------------------------------- shortest paths
def shortest_path_measures(
    graph: CustomerGraph,
    *,
    measures: Collection[str] = ("betweenness", "harmonic"),
    weighted: bool = True,
    exact_max: int = EXACT_MAX,
    samples: int = SAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
    backend: Backend = "auto",
    error: float | None = None,
    budget: float | None = None,
) -> dict[str, CentralityScores]:
    """Betweenness and harmonic closeness from one set of shortest-path searches.

    Both measures come from single-source shortest paths out of the same customers (all of
    them up to ``exact_max`` customers, else a sample drawn with ``seed``), so computing
    them together costs one search per source, not two. See :func:`betweenness` and
    :func:`harmonic` for definitions, error bounds and backends.

    Without ``error`` the sample is ``samples`` sources. With an ``error`` target (a
    half-width at ``confidence`` relative to the top score, e.g. 0.1: every estimate within
    +-10% of the highest score) the sources are searched in doubling rounds from 16 until
    the estimates are that precise, at most
    ``samples`` sources and at most ``budget / (customers + ties)`` of them (the graph's size
    sets the cap); the scores then carry ``error_target``, ``error_reached`` and
    ``target_met`` (see :mod:`carenet.graphs._path_sampling`). The igraph and networkx
    backends search the cap at once (no rounds) and report the error reached.
    """
    t0 = time.perf_counter()
    wanted = list(dict.fromkeys(measures))
    bad = set(wanted) - {"betweenness", "harmonic"}
    if bad or not wanted:
        raise InvalidInputError(
            f"measures must be betweenness and/or harmonic, not {sorted(bad) or wanted}"
        )
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be in (0, 1), not {confidence}")
    if error is not None and not error > 0:
        raise InvalidInputError(f"error must be > 0, not {error}")
    if budget is not None and not budget > 0:
        raise InvalidInputError(f"budget must be > 0, not {budget}")
    supported = ("native", "igraph", "networkx")
    be = resolve_backend(backend, supported, "/".join(wanted))
    if weighted:
        _check_positive_weights(graph)
    n = graph.n_customers
    most = samples if error is None else ps.cap(n, graph.n_entries, samples, budget)
    src = ps.pick_sources(n, exact_max, most, seed)
    params = {"weighted": weighted, "exact_max": exact_max, "samples": samples,
              "seed": seed, "confidence": confidence, "error": error, "budget": budget}
    if be == "igraph" and "harmonic" in wanted and not src.exact:
        raise BackendUnavailableError(
            "harmonic: igraph has no source-sampled harmonic closeness (its harmonic "
            "centrality is exact, O(n m)); use backend='native' or 'networkx'"
        )
    if n < 2:
        zeros = np.zeros(n)
        return {m: _scores(graph, m, zeros, "none", be, params, t0, exact=True)
                for m in wanted}
    lmax = float(graph.weights.max()) if weighted and graph.n_entries else 1.0
    denoms = {"betweenness": float((n - 1) * (n - 2) if n > 2 else 1), "harmonic": n - 1.0}
    scales = {"betweenness": 1.0, "harmonic": lmax}
    adaptive: ps.Adaptive | None = None
    # sums over sources s of X_s(v) and X_s(v)^2 (X = dependency or 1 / distance)
    if be == "native" and error is not None and not src.exact:
        adaptive = ps.adaptive_sums(
            n, seed=seed, most=most, error=error, confidence=confidence, wanted=wanted,
            denoms=denoms,
            searches=lambda nodes: _path_sums_native(graph, nodes, weighted, wanted))
        src = adaptive.sources
        bc_sum, bc_sq, h_sum, h_sq = adaptive.sums
    elif be == "native":
        bc_sum, bc_sq, h_sum, h_sq = _path_sums_native(graph, src.nodes, weighted, wanted)
    k = len(src.nodes)
    if be == "native":
        bc_var, h_var = ps.sample_variance(bc_sum, bc_sq, k), ps.sample_variance(h_sum, h_sq, k)
    else:
        bc_sum, bc_var, h_sum, h_var = _path_sums_reference(graph, src, weighted, wanted, be)
    algorithm = {"betweenness": "brandes", "harmonic": "sssp"}
    out: dict[str, CentralityScores] = {}
    for measure in wanted:
        total, var = (bc_sum, bc_var) if measure == "betweenness" else (h_sum, h_var)
        denom = denoms[measure]
        extra: dict[str, Any] = {"exact": src.exact}
        if src.exact:
            values = total / denom
        else:
            # per-customer standard error of the scaled mean (var: the variance of one
            # source's contribution), with the finite-population correction
            values, stderr = ps.estimate(total, var, n, k, denom)
            # X_s(v) / (n - 2) is in [0, 1] for betweenness; 1 / d is in [0, max weight]
            bound = ps.hoeffding(n, k, confidence, scales[measure])
            extra |= {"seed": src.seed, "samples": k, "error_bound": bound,
                      "confidence": confidence, "stderr": stderr}
            if error is not None:
                reached = (adaptive.errors[measure] if adaptive is not None
                           else ps.scaled_error(values, stderr, confidence))
                extra |= {"error_target": error, "error_reached": reached,
                          "target_met": reached <= error, "sources_cap": most}
        name = f"{algorithm[measure]}{'' if src.exact else '_sampled'}"
        out[measure] = _scores(graph, measure, values, name, be, params, t0, **extra)
    return out


def _path_sums_native(
    graph: CustomerGraph, sources: np.ndarray, weighted: bool, wanted: list[str],
) -> ps.Sums:
    """Per-customer sums over the sources of X_s(v) and X_s(v)^2 (betweenness, harmonic)."""
    import numba

    from carenet.graphs import _centrality_kernels as kern
    from carenet.graphs._kernels import PARALLEL_LOCK

    threads = max(1, min(numba.get_num_threads(), len(sources)))
    bounds = np.linspace(0, len(sources), threads + 1).astype(np.int64)
    length = 1.0 / graph.weights if weighted else np.ones(1)
    with PARALLEL_LOCK:
        bc, bc_sq, h, h_sq = kern.path_sums(
            sources, bounds, graph.indptr.astype(np.int64), graph.indices, length, weighted,
            "betweenness" in wanted, "harmonic" in wanted,
        )
    return bc.sum(axis=0), bc_sq.sum(axis=0), h.sum(axis=0), h_sq.sum(axis=0)


BATCHES = 8
"""Sampled sources go to igraph / networkx in this many batches: the spread of the batch
means gives the standard error (one call per source would cost a Python list of n values
per source)."""


def _path_sums_reference(
    graph: CustomerGraph, src: ps.Sources, weighted: bool, wanted: list[str], backend: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sums over sources with igraph or networkx, and the variance of one source's share
    estimated from batch means (sampled only).
    """
    n = graph.n_customers
    # a directed graph's undirected twin counts each unordered pair once; we count ordered
    pair_factor = 1.0 if graph.directed else 2.0
    k = len(src.nodes)
    groups = ([src.nodes] if src.exact
              else [b for b in np.array_split(src.nodes, min(BATCHES, k)) if len(b)])
    bc_parts: list[np.ndarray] = []
    h_parts: list[np.ndarray] = []
    if backend == "igraph":
        g = graph.to_igraph()
        lengths = _ig_weights(g, lengths=True) if weighted else None
        for group in groups:
            if "betweenness" in wanted:
                if src.exact:
                    x = np.asarray(g.betweenness(directed=graph.directed, weights=lengths))
                else:
                    x = np.asarray(g.betweenness(directed=graph.directed, weights=lengths,
                                                 sources=group.tolist(), targets=None))
                bc_parts.append(x * pair_factor)
            if "harmonic" in wanted:
                h_parts.append(np.asarray(g.harmonic_centrality(mode="in", weights=lengths,
                                                                normalized=False)))
    else:
        nx = _import_networkx()
        g = _nx_graph(graph, distance=weighted)
        dist = "distance" if weighted else None
        nodes = list(range(n))
        for group in groups:
            if "betweenness" in wanted:
                if src.exact:
                    res = nx.betweenness_centrality(g, normalized=False, weight=dist)
                else:
                    res = nx.betweenness_centrality_subset(g, group.tolist(), nodes,
                                                           normalized=False, weight=dist)
                bc_parts.append(np.array([res[i] for i in nodes]) * pair_factor)
            if "harmonic" in wanted:
                res = nx.harmonic_centrality(g, distance=dist,
                                             sources=None if src.exact else group.tolist())
                h_parts.append(np.array([res[i] for i in nodes], dtype=np.float64))
    sizes = np.array([len(b) for b in groups], dtype=np.float64)

    def combine(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if not parts:
            return np.zeros(n), np.zeros(n)
        stack = np.vstack(parts)
        total = stack.sum(axis=0)
        if len(parts) < 2:
            return total, np.zeros(n)
        means = stack / sizes[:, None]
        # batch means vary with variance sigma^2 / m: sigma^2 ~ m * their sample variance
        var = means.var(axis=0, ddof=1) * float(sizes.mean())
        return total, var

    bc_sum, bc_var = combine(bc_parts)
    h_sum, h_var = combine(h_parts)
    return bc_sum, bc_var, h_sum, h_var


def betweenness(
    graph: CustomerGraph,
    *,
    weighted: bool = True,
    exact_max: int = EXACT_MAX,
    samples: int = SAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
    backend: Backend = "auto",
    error: float | None = None,
    budget: float | None = None,
) -> CentralityScores:
    """Betweenness: the share of ordered customer pairs whose shortest paths run through a
    customer (a broker between otherwise distant customers).

    Shortest paths follow tie direction, with length ``1 / weight`` (``weighted``) or one hop
    per tie; ties between equally short paths share the credit (Brandes' algorithm). Exact up
    to ``exact_max`` customers; above, estimated from ``samples`` source customers drawn
    uniformly without replacement with ``seed``: ``n / k`` times the dependencies summed over
    the sampled sources (unbiased). ``error_bound`` is Hoeffding's bound
    ``n / (n - 1) * sqrt(ln(2 n / delta) / (2 k))`` (each source contributes a value in
    [0, 1] after dividing by ``n - 2``), valid for every customer at once with probability
    ``confidence = 1 - delta``; ``stderr`` is the per-customer standard error. With an
    ``error`` target the number of sources is chosen by it (see
    :func:`shortest_path_measures`).

    Native: numba BFS / Dijkstra from each source, the sources split over the cores. igraph
    and networkx (subset betweenness from the same sources) give the same estimate.

    >>> g = CustomerGraph.from_edges(["a", "b", "c"], [0, 1], [1, 2], directed=False)
    >>> betweenness(g).values.tolist()
    [0.0, 1.0, 0.0]
    """
    return shortest_path_measures(
        graph, measures=("betweenness",), weighted=weighted, exact_max=exact_max,
        samples=samples, seed=seed, confidence=confidence, backend=backend, error=error,
        budget=budget,
    )["betweenness"]


def harmonic(
    graph: CustomerGraph,
    *,
    weighted: bool = True,
    exact_max: int = EXACT_MAX,
    samples: int = SAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
    backend: Backend = "auto",
    error: float | None = None,
    budget: float | None = None,
) -> CentralityScores:
    """Harmonic closeness: ``sum(1 / d(u, v) for u != v) / (n - 1)``, how easily the other
    customers reach ``v`` (unreachable customers add 0, so it works on disconnected graphs).

    Path lengths as in :func:`betweenness`; sampled above ``exact_max`` customers from
    ``samples`` sources ``u`` (unbiased, scaled by ``n / k``), with Hoeffding's uniform bound
    ``n / (n - 1) * L * sqrt(ln(2 n / delta) / (2 k))`` where ``L`` is the largest
    ``1 / d`` possible (1 unweighted, the largest tie weight weighted). igraph computes only
    the exact variant.

    >>> g = CustomerGraph.from_edges(["a", "b", "c"], [0, 1], [1, 2], directed=False)
    >>> harmonic(g).values.round(4).tolist()
    [0.75, 1.0, 0.75]
    """
    return shortest_path_measures(
        graph, measures=("harmonic",), weighted=weighted, exact_max=exact_max,
        samples=samples, seed=seed, confidence=confidence, backend=backend, error=error,
        budget=budget,
    )["harmonic"]


# ---------------------------------------------------------------------------- k-core
def core(graph: CustomerGraph, *, backend: Backend = "auto") -> CentralityScores:
    """k-core number: the largest k such that the customer belongs to a group in which
    everybody has at least k ties inside the group (on the undirected view, so a pair with
    ties both ways counts once; weights are ignored).

    Native: Batagelj and Zaversnik's O(m) bucket peeling (numba).

    >>> g = CustomerGraph.from_edges(list("abcd"), [0, 1, 2, 2], [1, 2, 0, 3], directed=False)
    >>> core(g).values.tolist()
    [2, 2, 2, 1]
    """
    t0 = time.perf_counter()
    be = resolve_backend(backend, ("native", "igraph", "networkx"), "core")
    view = graph.undirected_view()
    if be == "native":
        from carenet.graphs import _centrality_kernels as kern

        values = kern.core_numbers(view.indptr.astype(np.int64), view.indices)
    elif be == "igraph":
        values = np.asarray(view.to_igraph().coreness(mode="all"), dtype=np.int64)
    else:
        nx = _import_networkx()
        g = _nx_graph(view).copy()
        g.remove_edges_from(list(nx.selfloop_edges(g)))
        res = nx.core_number(g)
        values = np.array([res[i] for i in range(view.n_customers)], dtype=np.int64)
    return _scores(graph, "core", np.asarray(values, dtype=np.int64), "bz_peeling", be, {},
                   t0)


__all__ = [
    "BACKENDS",
    "EXACT_MAX",
    "SAMPLES",
    "Backend",
    "CentralityScores",
    "betweenness",
    "core",
    "degree",
    "eigenvector",
    "harmonic",
    "pagerank",
    "shortest_path_measures",
    "strength",
    "undirected_view",
]
