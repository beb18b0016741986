"""What the views need from a run, and how views link to each other.

:class:`ViewData` gathers the pieces of an :class:`~carenet.pipeline.AnalysisRun` the views
read (the per-customer table aligned with the graph's node positions, the community and
exposure-source tables, the care plan when the care step ran). :class:`ViewLinks` says where a
click leads: :class:`FileLinks` for a report directory (``community-7.html``, ...), and the
API's pages bring their own implementation. A link is a string; the empty string means "no
page for that", and the view then shows no link.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.graphs.model import CustomerGraph

T = TypeVar("T")

if TYPE_CHECKING:  # pragma: no cover - typing only
    from carenet.run import AnalysisRun


@dataclass(frozen=True, eq=False)
class ViewData:
    """A run as the views see it.

    ``customers`` is the run's per-customer table (``customer_id`` first), row i describing the
    graph's node i; ``communities``, ``exposure_sources`` and ``care_plan`` are the run's tables
    of those names, or None when the run has none; ``results`` is ``run.results`` and ``parameters``
    the run's configuration (the cascade view simulates with the run's edge model).
    """

    run_id: str
    customers: pd.DataFrame
    graph: CustomerGraph
    communities: pd.DataFrame | None = None
    exposure_sources: pd.DataFrame | None = None
    care_plan: pd.DataFrame | None = None
    results: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.customers) != self.graph.n_customers:
            raise InvalidInputError(
                f"the customers table has {len(self.customers)} rows for a graph of "
                f"{self.graph.n_customers} customers"
            )
        if "customer_id" not in self.customers:
            raise InvalidInputError("the customers table has no customer_id column")

    @classmethod
    def from_run(cls, run: AnalysisRun) -> ViewData:
        """The view data of an analysis run (in memory or loaded from its directory)."""
        table = run.customers
        ids = table["customer_id"].astype(str).to_numpy()
        if not np.array_equal(ids, run.graph.ids.astype(str)):
            # align rows with node positions (runs write them aligned; be safe with others)
            order = pd.Index(ids).get_indexer(pd.Index(run.graph.ids.astype(str)))
            if (order < 0).any():
                raise InvalidInputError("the customers table does not cover the graph's ids")
            table = table.iloc[order].reset_index(drop=True)
        return cls(
            run_id=run.run_id, customers=table, graph=run.graph,
            communities=run.tables.get("communities"),
            exposure_sources=run.tables.get("exposure_sources"),
            care_plan=run.tables.get("care_plan"), results=dict(run.results),
            parameters=dict(run.parameters),
        )

    @classmethod
    def load(cls, run_dir: str | Path) -> ViewData:
        """The view data of a run directory written by ``AnalysisRun.save``."""
        from carenet.run import AnalysisRun

        return cls.from_run(AnalysisRun.load(run_dir))

    # ------------------------------------------------------------------ lookups
    @property
    def ids(self) -> np.ndarray:
        """Customer ids by node position (as strings)."""
        if "ids" not in self._cache:
            self._cache["ids"] = self.customers["customer_id"].astype(str).to_numpy()
        return self._cache["ids"]  # type: ignore[no-any-return]

    @property
    def _cache(self) -> dict[str, Any]:
        """Lookups derived from this customers table (ids, index, hover columns)."""
        return self._memo

    def derived(self, key: str, compute: Callable[[], T]) -> T:
        """A lookup derived from this view data alone (hover columns, ...), computed once."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[no-any-return]

    def position(self, customer_id: Any) -> int:
        """Node position of a customer id; an unknown id raises ``RunNotFoundError``."""
        if "index" not in self._cache:
            self._cache["index"] = {c: i for i, c in enumerate(self.ids.tolist())}
        pos = self._cache["index"].get(str(customer_id))
        if pos is None:
            raise RunNotFoundError(f"no customer {customer_id!r} in run {self.run_id}")
        return int(pos)

    def column(self, name: str, default: float = np.nan) -> np.ndarray:
        """A numeric per-customer column as float (``default`` everywhere when absent)."""
        if name not in self.customers:
            return np.full(len(self.customers), default, dtype=float)
        return pd.to_numeric(self.customers[name], errors="coerce").to_numpy(float)

    def has(self, name: str) -> bool:
        """Whether the customers table has a column."""
        return name in self.customers

    def community_labels(self) -> np.ndarray:
        """Community id per node (int64; -1 when the run has no communities)."""
        if "community" not in self.customers:
            return np.full(len(self.customers), -1, np.int64)
        return (pd.to_numeric(self.customers["community"], errors="coerce")
                .fillna(-1).to_numpy(np.int64))

    def ranking(self) -> np.ndarray:
        """Node positions from most to least important: by care priority when the run has
        it (``priority_rank``, else ``priority``), by influence otherwise, then by id.
        """
        n = len(self.customers)
        if self.has("priority_rank"):
            r = self.column("priority_rank", np.inf)
            r = np.where(np.isnan(r) | (r <= 0), np.inf, r)
            return np.lexsort((np.arange(n), r))
        for name in ("priority", "influence", "pagerank", "strength_in"):
            if self.has(name):
                v = np.nan_to_num(self.column(name), nan=-np.inf)
                return np.lexsort((np.arange(n), -v))
        return np.arange(n)


class ViewLinks(Protocol):
    """Where a view's clicks lead; the empty string means "no page for it".

    An implementation may also have ``community_map() -> str``: community views then link
    back to the map.
    """

    def community(self, c: int) -> str:
        """URL of a community's view."""
        ...

    def customer(self, customer_id: str) -> str:
        """URL of a customer's view."""
        ...

    def cascade(self, seeds: Sequence[str]) -> str:
        """URL of the cascade view from these seeds."""
        ...


class NoLinks:
    """Views without navigation (a single page)."""

    def community(self, c: int) -> str:
        """No page."""
        return ""

    def customer(self, customer_id: str) -> str:
        """No page."""
        return ""

    def cascade(self, seeds: Sequence[str]) -> str:
        """No page."""
        return ""


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(text: str) -> str:
    """A file-name-safe form of an id: unsafe characters replaced, plus a short hash when
    anything was replaced, so that two ids never share a file.

    >>> safe_name("C000123"), safe_name("a/b")
    ('C000123', 'a_b-3ec69c85')
    """
    clean = _UNSAFE.sub("_", text)[:80]
    if clean == text and not text.startswith("."):
        return text
    return f"{clean.lstrip('.')}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class FileLinks:
    """Links between view files in one directory: ``community-7.html``,
    ``customer-C000123.html``, ``cascade-<hash>.html`` and ``community-map.html``.

    ``communities``, ``customers`` and ``cascades`` (seed tuples) list the pages that exist;
    None means every page exists. A page that does not exist gets no link.
    """

    communities: Collection[int] | None = None
    customers: Collection[str] | None = None
    cascades: Collection[tuple[str, ...]] | None = None

    @staticmethod
    def community_file(c: int) -> str:
        """File name of a community view."""
        return f"community-{int(c)}.html"

    @staticmethod
    def customer_file(customer_id: str) -> str:
        """File name of a customer view."""
        return f"customer-{safe_name(str(customer_id))}.html"

    @staticmethod
    def cascade_file(seeds: Sequence[str]) -> str:
        """File name of a cascade view (a hash of the sorted seeds)."""
        key = "\x1f".join(sorted(str(s) for s in seeds))
        return f"cascade-{hashlib.sha1(key.encode()).hexdigest()[:10]}.html"

    map_file = "community-map.html"

    def community_map(self) -> str:
        """Relative link to the community map."""
        return self.map_file

    def community(self, c: int) -> str:
        """Relative link to a community view, or ""."""
        if self.communities is not None and int(c) not in self.communities:
            return ""
        return self.community_file(c)

    def customer(self, customer_id: str) -> str:
        """Relative link to a customer view, or ""."""
        if self.customers is not None and str(customer_id) not in self.customers:
            return ""
        return self.customer_file(customer_id)

    def cascade(self, seeds: Sequence[str]) -> str:
        """Relative link to a cascade view, or ""."""
        key = tuple(sorted(str(s) for s in seeds))
        if self.cascades is not None and key not in {tuple(sorted(c)) for c in self.cascades}:
            return ""
        return self.cascade_file(seeds)


__all__ = ["FileLinks", "NoLinks", "ViewData", "ViewLinks", "safe_name"]
