"""What the served views draw: a run's :class:`~carenet.viz.data.ViewData` rebuilt from the
store, and the rendered pages, both kept in small per-process LRU caches.

A view needs the whole per-customer table and the graph of a run, which the API's point reads
never load; building them costs a full scan of the run's tables, so each process keeps the last
few runs (``CARENET_VIEW_CACHE_RUNS``) and the last rendered pages. Published runs never change,
so a cached entry is never stale; a run dropped by retention simply falls out of the cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar
from urllib.parse import quote, urlencode

import pandas as pd

from carenet.store import RunStore, RunView

if TYPE_CHECKING:  # pragma: no cover
    from carenet.viz.data import ViewData

T = TypeVar("T")


class LRU(Generic[T]):
    """A thread-safe least-recently-used cache whose values are built at most once per key
    at a time (two requests for the same new run wait for one build).
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The cached value of ``key``, built by ``build()`` on a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            try:
                value = build()
            finally:
                with self._lock:
                    self._building.pop(key, None)
            with self._lock:
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items


def _labels(s: pd.Series) -> pd.Series:
    """Community labels back as integers when every one is an integer (the store keeps them
    as text so that any label type works).
    """
    text = s.dropna().astype(str)
    if len(text) and text.str.fullmatch(r"-?\d{1,18}").all():
        out = pd.to_numeric(s, errors="coerce")
        return out.astype("int64") if out.notna().all() else out.astype("Int64")
    return s


def _communities_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The stored community documents as the run's community table: integer labels and
    ``top_customers`` as ``;``-separated ids again, without the API's extra fields.
    """
    if frame.empty:
        return frame
    frame = frame.drop(columns=[c for c in ("links", "ranked_by") if c in frame.columns])
    if "community" in frame.columns:
        frame["community"] = _labels(frame["community"])
    if "top_customers" in frame.columns:
        frame["top_customers"] = [
            ";".join(str(t.get("customer_id", "")) for t in v) if isinstance(v, list) else v
            for v in frame["top_customers"]]
    return frame


def view_data(store: RunStore, view: RunView) -> ViewData:
    """A published run's :class:`ViewData` read from the store (customers in graph order)."""
    from carenet.viz.data import ViewData

    customers = store.customers_frame(view)
    if "community" in customers.columns:
        customers["community"] = _labels(customers["community"])
    tables = {name: (store.table_frame(view, name) if name in view.tables else None)
              for name in ("communities", "exposure_sources", "care_plan")}
    communities = tables["communities"]
    if communities is not None:
        communities = _communities_frame(communities)
    row = store.get_run(view.run_id)
    return ViewData(run_id=view.run_id, customers=customers, graph=store.load_graph(view),
                    communities=communities, exposure_sources=tables["exposure_sources"],
                    care_plan=tables["care_plan"], results=dict(row.get("results") or {}),
                    parameters=dict(row.get("parameters") or {}))  # the run's edge model etc.


class PageLinks:
    """:class:`~carenet.viz.data.ViewLinks` for the pages the API serves (``/pages/...``),
    staying on run ``run`` when one was named.
    """

    def __init__(self, run: str | None = None) -> None:
        self.run = run

    def _q(self, params: dict[str, str]) -> str:
        if self.run is not None:
            params = {**params, "run": self.run}
        return "?" + urlencode(params) if params else ""

    def community(self, c: int) -> str:
        """The community view of community ``c``."""
        return f"/pages/communities/{quote(str(c), safe='')}{self._q({})}"

    def customer(self, customer_id: str) -> str:
        """The customer view (ego network) of ``customer_id``."""
        return f"/pages/customers/{quote(str(customer_id), safe='')}{self._q({})}"

    def cascade(self, seeds: Sequence[str]) -> str:
        """The cascade view from ``seeds``."""
        return f"/pages/cascade{self._q({'seeds': ','.join(str(s) for s in seeds)})}"

    def community_map(self) -> str:
        """The community map."""
        return f"/pages/community-map{self._q({})}"

    def dashboard(self) -> str:
        """The dashboard."""
        return f"/dashboard{self._q({})}"
