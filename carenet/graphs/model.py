"""CustomerGraph: the customer interaction graph as an id table plus CSR arrays.

Node ``i`` is the customer ``ids[i]``; out-ties of ``i`` are ``indices[indptr[i]:indptr[i+1]]``
with their ``weights`` (decayed, channel-weighted interaction volume), ``counts`` (number of
interactions) and ``channels`` (bit mask over ``channel_names``). Column indices are sorted within
each row. Everything else (igraph, networkx, scipy views; the transpose; summaries) is derived
from these arrays on demand and cached, never the other way round.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse import csgraph

from carenet.errors import InvalidInputError, RunNotFoundError

T = TypeVar("T")

if TYPE_CHECKING:  # pragma: no cover - typing only
    import igraph
    import networkx

_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class NodeActivity:
    """Per-customer activity over the log: first/last interaction time and volumes.

    Times are epoch seconds (NaN when the log has no timestamps or the customer never
    interacted); ``sent`` and ``received`` count accepted interactions.
    """

    first_seen: np.ndarray
    last_seen: np.ndarray
    sent: np.ndarray
    received: np.ndarray


@dataclass(frozen=True)
class GraphSummary:
    """What a user checks first about a graph; ``to_dict()`` is JSON-ready."""

    customers: int
    ties: int
    directed: bool
    density: float
    components: int
    largest_component: int
    isolated: int
    reciprocity: float | None
    total_weight: float
    degree: dict[str, float]
    reference_time: float | None
    half_life: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (no numpy scalars)."""
        return {
            "customers": int(self.customers),
            "ties": int(self.ties),
            "directed": bool(self.directed),
            "density": float(self.density),
            "components": int(self.components),
            "largest_component": int(self.largest_component),
            "isolated": int(self.isolated),
            "reciprocity": None if self.reciprocity is None else float(self.reciprocity),
            "total_weight": float(self.total_weight),
            "degree": {k: float(v) for k, v in self.degree.items()},
            "reference_time": self.reference_time,
            "half_life": self.half_life,
        }


@dataclass(frozen=True, eq=False)
class CustomerGraph:
    """Customers and their ties, as CSR arrays aligned to an id table.

    Build one with :func:`carenet.graphs.build.build_graph` or :meth:`from_edges`.

    >>> g = CustomerGraph.from_edges(["a", "b", "c"], [0, 1], [1, 2], [2.0, 1.0])
    >>> g.n_customers, g.n_ties, g.out_strength().tolist()
    (3, 2, [2.0, 1.0, 0.0])
    """

    ids: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    counts: np.ndarray
    channels: np.ndarray
    channel_names: tuple[str, ...] = ()
    directed: bool = True
    reference_time: float | None = None
    half_life: float | None = None
    activity: NodeActivity | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.indptr.shape != (n + 1,):
            raise InvalidInputError(f"indptr must have n + 1 = {n + 1} entries")
        m = int(self.indptr[-1]) if n else 0
        for name in ("indices", "weights", "counts", "channels"):
            if len(getattr(self, name)) != m:
                raise InvalidInputError(f"{name} must have {m} entries (one per tie)")
        if len(self.channel_names) > 16:
            raise InvalidInputError("at most 16 channels fit the channel bit mask")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_edges(
        cls,
        ids: Sequence[str] | np.ndarray,
        sources: Iterable[int] | np.ndarray,
        targets: Iterable[int] | np.ndarray,
        weights: Iterable[float] | np.ndarray | None = None,
        *,
        directed: bool = True,
    ) -> CustomerGraph:
        """A graph from edge lists over node positions; duplicate edges are summed.

        For an undirected graph give each tie once; it is stored in both directions.
        Meant for tests, examples and interop; logs go through ``build_graph``.
        """
        from carenet.graphs import _kernels

        id_arr = np.asarray(list(ids), dtype=object)
        s = np.asarray(list(sources) if not isinstance(sources, np.ndarray) else sources)
        t = np.asarray(list(targets) if not isinstance(targets, np.ndarray) else targets)
        s = s.astype(np.int32)
        t = t.astype(np.int32)
        w = (
            np.ones(len(s), np.float64)
            if weights is None
            else np.asarray(list(weights) if not isinstance(weights, np.ndarray) else weights)
        ).astype(np.float64)
        n = len(id_arr)
        if len(s) != len(t) or len(s) != len(w):
            raise InvalidInputError("sources, targets and weights must have the same length")
        if len(s) and (s.min() < 0 or t.min() < 0 or s.max() >= n or t.max() >= n):
            raise InvalidInputError("edge endpoints must be node positions in [0, len(ids))")
        if not directed:
            loops = s == t
            s, t, w = (
                np.concatenate([s, t[~loops]]),
                np.concatenate([t, s[~loops]]),
                np.concatenate([w, w[~loops]]),
            )
        ones = np.ones(len(s), np.uint32)
        chan = np.zeros(len(s), np.uint16)
        indptr, idx, wt, cnt, ch = _kernels.reduce_edges(n, s, t, w, ones, chan)
        return cls(id_arr, indptr, idx, wt, cnt, ch, (), directed)

    # ------------------------------------------------------------------ sizes
    @property
    def n_customers(self) -> int:
        """Number of customers (nodes), isolated ones included."""
        return len(self.ids)

    @property
    def n_entries(self) -> int:
        """Stored CSR entries (an undirected tie is stored twice)."""
        return len(self.indices)

    @property
    def n_ties(self) -> int:
        """Number of ties: directed pairs, or unordered pairs when undirected."""
        if self.directed:
            return self.n_entries
        loops = int(np.count_nonzero(self.indices == self.sources()))
        return (self.n_entries - loops) // 2 + loops

    @property
    def nbytes(self) -> int:
        """Bytes held by the CSR arrays (the tie structure, not the id strings)."""
        return int(
            self.indptr.nbytes
            + self.indices.nbytes
            + self.weights.nbytes
            + self.counts.nbytes
            + self.channels.nbytes
        )

    # ------------------------------------------------------------------ derived data
    def derived(self, key: str, compute: Callable[[], T]) -> T:
        """Data derived from this graph alone, computed once and kept with the graph.

        The graph is immutable, so anything computed from it alone (an undirected view, a
        diffusion graph under one tie model, an id-ordered copy) can live as long as it does.
        ``key`` names what is kept: prefix it with the module that computes it.

        Examples
        --------
        >>> g = CustomerGraph.from_edges(["a", "b"], [0], [1], [2.0])
        >>> g.derived("doc.total", lambda: float(g.weights.sum()))
        2.0
        >>> g.cached("doc.total")
        2.0
        """
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]  # type: ignore[no-any-return]

    def cached(self, key: str) -> Any | None:
        """What :meth:`derived` keeps under ``key``, or None when nothing was computed yet."""
        return self._cache.get(key)

    def undirected_view(self) -> CustomerGraph:
        """The undirected view (``w(u, v) = w(u -> v) + w(v -> u)``), computed once.

        An undirected graph is its own view.
        """
        if not self.directed:
            return self
        return self.derived("undirected", self.symmetrize)

    def sources(self) -> np.ndarray:
        """Source position of every CSR entry (int32), aligned with ``indices``."""
        if "sources" not in self._cache:
            deg = np.diff(self.indptr)
            self._cache["sources"] = np.repeat(
                np.arange(self.n_customers, dtype=np.int32), deg
            )
        return self._cache["sources"]  # type: ignore[no-any-return]

    @property
    def csr(self) -> sp.csr_array:
        """Weighted adjacency as a scipy CSR array (rows = sources); shares the arrays."""
        if "csr" not in self._cache:
            n = self.n_customers
            self._cache["csr"] = sp.csr_array(
                (self.weights, self.indices, self.indptr), shape=(n, n), copy=False
            )
        return self._cache["csr"]  # type: ignore[no-any-return]

    def transpose(self) -> CustomerGraph:
        """The graph with every tie reversed (in-ties as CSR); cached. Undirected: itself."""
        if not self.directed:
            return self
        if "transpose" not in self._cache:
            from carenet.graphs import _kernels

            indptr, idx, w, c, ch = _kernels.reduce_edges(
                self.n_customers, self.indices, self.sources(), self.weights, self.counts,
                self.channels,
            )
            self._cache["transpose"] = CustomerGraph(
                self.ids, indptr, idx, w, c, ch, self.channel_names, True,
                self.reference_time, self.half_life, self.activity,
            )
        return self._cache["transpose"]  # type: ignore[no-any-return]

    def _frozen(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """:meth:`derived` for a per-customer array that every step shares: read-only, so a
        caller that wants to change it has to copy it first.
        """
        def build() -> np.ndarray:
            arr = np.asarray(compute())
            arr.flags.writeable = False
            return arr

        return self.derived(key, build)

    def out_degree(self) -> np.ndarray:
        """Number of out-ties per customer (all ties when undirected); computed once per graph
        (the loader's columns, centrality and diffusion share it), read-only.
        """
        return self._frozen("out_degree", lambda: np.diff(self.indptr))

    def in_degree(self) -> np.ndarray:
        """Number of in-ties per customer (all ties when undirected); computed once, read-only."""
        return self._frozen("in_degree",
                            lambda: np.bincount(self.indices, minlength=self.n_customers))

    def out_strength(self) -> np.ndarray:
        """Sum of out-tie weights per customer; computed once, read-only."""
        return self._frozen("out_strength", lambda: np.bincount(
            self.sources(), weights=self.weights, minlength=self.n_customers))

    def in_strength(self) -> np.ndarray:
        """Sum of in-tie weights per customer; computed once, read-only (the weighted
        cascade's denominators come from it too).
        """
        return self._frozen("in_strength", lambda: np.bincount(
            self.indices, weights=self.weights, minlength=self.n_customers))

    def channel_list(self, mask: int) -> list[str]:
        """Names of the channels set in one tie's bit mask."""
        return [name for b, name in enumerate(self.channel_names) if mask >> b & 1]

    # ------------------------------------------------------------------ ids
    @cached_property
    def _index(self) -> pd.Index:
        return pd.Index(self.ids)

    def index_of(
        self, customer_ids: Sequence[str] | np.ndarray, *, strict: bool = True
    ) -> np.ndarray:
        """Node positions of external ids; unknown ids raise (or give -1 when not ``strict``)."""
        pos = self._index.get_indexer(pd.Index(np.asarray(customer_ids, dtype=object)))
        if strict and (pos < 0).any():
            missing = np.asarray(customer_ids, dtype=object)[pos < 0][:5].tolist()
            raise RunNotFoundError(f"unknown customer id(s): {', '.join(map(str, missing))}")
        return pos.astype(np.int64)

    def neighbors(self, node: int) -> tuple[np.ndarray, np.ndarray]:
        """(targets, weights) of one customer's out-ties."""
        a, b = self.indptr[node], self.indptr[node + 1]
        return self.indices[a:b], self.weights[a:b]

    # ------------------------------------------------------------------ transforms
    def symmetrize(self) -> CustomerGraph:
        """Undirected version: w(u, v) = w(u -> v) + w(v -> u); counts summed, channels OR-ed."""
        if not self.directed:
            return self
        from carenet.graphs import _kernels

        s = self.sources()
        src = np.concatenate([s, self.indices])
        dst = np.concatenate([self.indices, s])
        indptr, idx, w, c, ch = _kernels.reduce_edges(
            self.n_customers, src, dst, np.concatenate([self.weights, self.weights]),
            np.concatenate([self.counts, self.counts]),
            np.concatenate([self.channels, self.channels]),
        )
        return CustomerGraph(
            self.ids, indptr, idx, w, c, ch, self.channel_names, False,
            self.reference_time, self.half_life, self.activity,
        )

    def filter_ties(self, keep: np.ndarray) -> CustomerGraph:
        """A graph keeping only the CSR entries where ``keep`` is true (customers all stay)."""
        keep = np.asarray(keep, dtype=bool)
        per_row = np.bincount(self.sources()[keep], minlength=self.n_customers)
        indptr = np.zeros(self.n_customers + 1, np.int64)
        np.cumsum(per_row, out=indptr[1:])
        return CustomerGraph(
            self.ids, indptr, self.indices[keep], self.weights[keep], self.counts[keep],
            self.channels[keep], self.channel_names, self.directed, self.reference_time,
            self.half_life, self.activity,
        )

    def relabel(self, order: np.ndarray) -> CustomerGraph:
        """The same graph with customers stored in another order: new position i holds old
        customer ``order[i]`` (used to test that results do not depend on labels).
        """
        from carenet.graphs import _kernels

        order = np.asarray(order, dtype=np.int64)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        s = inverse[self.sources()].astype(np.int32)
        t = inverse[self.indices].astype(np.int32)
        indptr, idx, w, c, ch = _kernels.reduce_edges(
            self.n_customers, s, t, self.weights, self.counts, self.channels
        )
        act = None
        if self.activity is not None:
            a = self.activity
            act = NodeActivity(a.first_seen[order], a.last_seen[order], a.sent[order],
                               a.received[order])
        return CustomerGraph(
            self.ids[order], indptr, idx, w, c, ch, self.channel_names, self.directed,
            self.reference_time, self.half_life, act,
        )

    # ------------------------------------------------------------------ views
    def to_igraph(self) -> igraph.Graph:
        """Igraph view (cached): vertices are positions, edge attributes weight and count.

        Undirected graphs get each tie once. Building it costs seconds at 10M ties, so steps
        that do not need igraph never call this.
        """
        if "igraph" not in self._cache:
            import igraph as ig

            s = self.sources()
            t = self.indices
            w = self.weights
            c = self.counts
            if not self.directed:
                keep = s <= t
                s, t, w, c = s[keep], t[keep], w[keep], c[keep]
            edges = np.column_stack([s, t])
            g = ig.Graph(n=self.n_customers, edges=edges, directed=self.directed)
            g.es["weight"] = w
            g.es["count"] = c
            self._cache["igraph"] = g
        return self._cache["igraph"]  # type: ignore[no-any-return]

    def to_networkx(self) -> networkx.Graph | networkx.DiGraph:
        """Networkx view (cached): nodes are positions with a ``customer_id`` attribute,
        edges carry ``weight`` and ``count``. For small graphs, oracles and interop.
        """
        if "networkx" not in self._cache:
            import networkx as nx

            g: nx.Graph = nx.DiGraph() if self.directed else nx.Graph()
            g.add_nodes_from(
                (i, {"customer_id": cid}) for i, cid in enumerate(self.ids.tolist())
            )
            g.add_edges_from(
                (int(u), int(v), {"weight": float(w), "count": int(c)})
                for u, v, w, c in zip(
                    self.sources().tolist(), self.indices.tolist(), self.weights.tolist(),
                    self.counts.tolist(), strict=True,
                )
            )
            self._cache["networkx"] = g
        return self._cache["networkx"]  # type: ignore[no-any-return]

    def edges_frame(self, *, external_ids: bool = True) -> pd.DataFrame:
        """One row per stored tie: source, target, weight, count, channels."""
        s = self.sources()
        frame = pd.DataFrame(
            {
                "source": self.ids[s] if external_ids else s,
                "target": self.ids[self.indices] if external_ids else self.indices,
                "weight": self.weights,
                "count": self.counts,
            }
        )
        if self.channel_names:
            masks = self.channels
            frame["channels"] = [",".join(self.channel_list(int(m))) for m in masks.tolist()]
        return frame

    # ------------------------------------------------------------------ summary
    def summary(self) -> GraphSummary:
        """Customers, ties, density, components, isolated customers, reciprocity, degrees."""
        n = self.n_customers
        m = self.n_ties
        if n:
            ncomp, labels = csgraph.connected_components(
                self.csr, directed=self.directed, connection="weak"
            )
            largest = int(np.bincount(labels).max())
        else:
            ncomp, largest = 0, 0
        deg = self.out_degree() + (self.in_degree() if self.directed else 0)
        # a customer is isolated when no tie touches it
        isolated = int(np.count_nonzero(deg == 0))
        pairs = n * (n - 1) if self.directed else n * (n - 1) / 2
        reciprocity = None
        if self.directed and self.n_entries:
            key = self.sources().astype(np.int64) * n + self.indices
            rkey = self.indices.astype(np.int64) * n + self.sources()
            loops = self.sources() == self.indices
            recip = np.isin(rkey, key) & ~loops
            reciprocity = float(recip.sum() / max(1, (~loops).sum()))
        stats = (
            {
                "min": float(deg.min()),
                "median": float(np.median(deg)),
                "mean": float(deg.mean()),
                "p90": float(np.percentile(deg, 90)),
                "p99": float(np.percentile(deg, 99)),
                "max": float(deg.max()),
            }
            if n
            else {}
        )
        return GraphSummary(
            customers=n,
            ties=m,
            directed=self.directed,
            density=float(m / pairs) if pairs else 0.0,
            components=int(ncomp),
            largest_component=largest,
            isolated=isolated,
            reciprocity=reciprocity,
            total_weight=float(self.weights.sum() / (1 if self.directed else 2)),
            degree=stats,
            reference_time=self.reference_time,
            half_life=self.half_life,
        )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write the graph to ``directory`` (``graph.npz`` + ``graph.json``); returns it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "indptr": self.indptr,
            "indices": self.indices,
            "weights": self.weights,
            "counts": self.counts,
            "channels": self.channels,
        }
        if self.activity is not None:
            a = self.activity
            arrays |= {
                "first_seen": a.first_seen,
                "last_seen": a.last_seen,
                "sent": a.sent,
                "received": a.received,
            }
        np.savez(d / "graph.npz", **arrays)  # type: ignore[arg-type]
        pq.write_table(pa.table({"customer_id": pa.array(self.ids.tolist(), pa.string())}),
                       d / "graph_ids.parquet")
        meta = {
            "format_version": _FORMAT_VERSION,
            "directed": self.directed,
            "channel_names": list(self.channel_names),
            "reference_time": self.reference_time,
            "half_life": self.half_life,
        }
        (d / "graph.json").write_text(json.dumps(meta, indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> CustomerGraph:
        """Read a graph written by :meth:`save`."""
        import pyarrow.parquet as pq

        d = Path(directory)
        try:
            meta = json.loads((d / "graph.json").read_text())
            z = np.load(d / "graph.npz")
            ids = np.asarray(
                pq.read_table(d / "graph_ids.parquet")["customer_id"].to_numpy(
                    zero_copy_only=False
                ),
                dtype=object,
            )
        except FileNotFoundError as exc:
            raise RunNotFoundError(f"{d}: no saved graph here ({exc.filename} missing)") from exc
        activity = None
        if "first_seen" in z:
            activity = NodeActivity(z["first_seen"], z["last_seen"], z["sent"], z["received"])
        return cls(
            ids, z["indptr"], z["indices"], z["weights"], z["counts"], z["channels"],
            tuple(meta["channel_names"]), bool(meta["directed"]), meta["reference_time"],
            meta["half_life"], activity,
        )


def csr_from_edges(n: int, sources: np.ndarray, targets: np.ndarray,
                   weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays ``(indptr, indices, weights)`` of ``n`` nodes from an edge list, duplicate
    ``(source, target)`` pairs summed and each row's targets sorted (the graph kernels' own
    reduction, for callers that need plain arrays rather than a :class:`CustomerGraph`).

    Examples
    --------
    >>> indptr, indices, w = csr_from_edges(3, np.array([0, 0, 2]), np.array([1, 1, 0]),
    ...                                     np.array([1.0, 2.0, 5.0]))
    >>> indptr.tolist(), indices.tolist(), w.tolist()
    ([0, 1, 1, 2], [1, 0], [3.0, 5.0])
    """
    from carenet.graphs import _kernels

    m = len(sources)
    indptr, idx, wt, _, _ = _kernels.reduce_edges(
        n, sources, targets, weights, np.ones(m, np.uint32), np.zeros(m, np.uint16))
    return indptr, idx, wt
