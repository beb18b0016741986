"""Ranked pages of layout-3 and later runs (numpy over column blocks) against their oracles:
a pandas sort of the same rows, and the SQL pages of the same run published in layout 2, on
SQLite and (with CARENET_TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from servicekit import variant

from carenet.store import RunStore, publish
from carenet.store.points import block_size
from carenet.store.ranking import ColumnCache, IdOrder, SortedKey, numbers


def _oracle(values: pd.Series, ids: pd.Series, mask: np.ndarray, descending: bool,
            after: tuple[float, str] | None, limit: int) -> list[int]:
    """Positions in SQL order: filter, (value, id) after the cursor, sort by both."""
    frame = pd.DataFrame({"v": values, "id": ids, "pos": np.arange(len(ids))})[mask]
    frame = frame[frame["v"].notna()]
    if after is not None:
        v, i = after
        if descending:
            frame = frame[(frame.v < v) | ((frame.v == v) & (frame.id < i))]
        else:
            frame = frame[(frame.v > v) | ((frame.v == v) & (frame.id > i))]
    ordered = sorted(zip(frame.v, frame.id, frame.pos, strict=True), reverse=descending)
    return [p for _, _, p in ordered[:limit]]


@pytest.mark.parametrize("seed", range(6))
def test_sorted_key_pages_match_a_sort_of_the_filtered_rows(seed: int) -> None:
    """Many ties (a few distinct values), nulls, non-ASCII ids, cursors inside a run of ties,
    limits around the tie size: every page is the oracle's."""
    rng = np.random.default_rng(seed)
    n = 3000
    ids = pd.Series([f"{c}{i}" for i, c in zip(rng.permutation(n), rng.choice(
        list("aAbB_é9"), n), strict=True)])
    raw = (rng.choice([0.0, 0.5, 1.0, 2.5], n) if seed % 2 and seed % 3
           else rng.integers(0, 5, n) * 1.0)
    values = pd.Series(raw).where(rng.random(n) > 0.1)
    arrow = pa.array(values, pa.float64(), from_pandas=True)
    if seed % 3 == 0:  # integers keep their dtype
        arrow = pa.array(values.astype("Int64"), pa.int64())
    x, ok = numbers(arrow)
    order = IdOrder.of(pa.array(ids, pa.large_string()))
    key = SortedKey.of(x, ok, order)
    for descending in (True, False):
        for mask in (None, rng.random(n) > 0.3, rng.random(n) > 0.995):
            for limit in (1, 7, 400, n):
                after = None
                for _ in range(4):
                    want = _oracle(values, ids, ok if mask is None else mask & ok, descending,
                                   after, limit)
                    got = key.page(mask, order, descending=descending, after=after,
                                   limit=limit).tolist()
                    assert got == want, (descending, limit, after)
                    if not got:
                        break
                    after = (float(values[got[-1]]), str(ids[got[-1]]))


def test_id_order_places_ids_that_are_not_customers() -> None:
    order = IdOrder.of(pa.array(["b", "B", "é", "a"], pa.large_string()))
    assert [order.bounds(i) for i in ("a", "aa", "B", "0", "zz", "é")] == [
        (1, 2), (2, 2), (0, 1), (0, 0), (3, 3), (3, 4)]


def test_column_cache_drops_the_least_recently_used() -> None:
    cache = ColumnCache(max_bytes=100)
    loads: list[str] = []

    def load(name: str) -> str:
        loads.append(name)
        return name

    for name in ("a", "b", "a", "c", "a", "b"):
        cache.get(("run", name), lambda n=name: load(n), lambda _: 40)
    assert loads == ["a", "b", "c", "b"]  # c pushed b out (a was used after b)
    cache.drop("run")
    cache.get(("run", "a"), lambda: load("a"), lambda _: 40)
    assert loads[-1] == "a"


def _queries(run) -> list[dict]:
    c = run.customers
    return [
        {"sort": "priority"}, {"sort": "priority", "order": "asc"},
        {"sort": "influence"}, {"sort": "exposure", "order": "asc"},
        {"sort": "exposure", "community": str(c["community"].iloc[0])},
        {"sort": "pagerank", "role": "hub"},
        {"sort": "priority", "bounds": {"exposure": (0.2, 0.7)}},
        {"sort": "influence", "order": "asc", "role": "bridge",
         "bounds": {"priority": (None, 5.0)}},
        {"sort": "degree", "order": "desc"}, {"sort": "degree", "order": "asc"},
    ]


@pytest.mark.parametrize("layout", [3, 4])
def test_later_layouts_read_exactly_as_layout_2(store: RunStore, layout: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The same run published in layout 2 and in ``layout``: every ranked page (sorts,
    orders, label and range filters, ties on rounded and integer keys, customers without a
    value, cursors followed to the end), the views' frame, customer documents (layout 4:
    from blocks of block_size customers, the last one partial), id searches, neighbours
    (ties stored TIE_BLOCK customers a row from layout 3) and the rebuilt graph are the
    same. Rows are written 100 at a time, so that chunks start inside the run's arrays."""
    run = variant(21.0)
    c = run.customers.copy()
    c["exposure"] = c["exposure"].round(1)  # ties, paged through by customer id
    c.loc[c.index[::9], "exposure"] = np.nan
    run = dataclasses.replace(run, customers=c)
    monkeypatch.setattr(publish, "_CHUNK", 100)
    size = block_size(store.backend)
    assert len(c) > 3 * size and len(c) % size
    reads = []
    for published in (2, layout):
        store.layout = published
        rid = store.publish(dataclasses.replace(run, run_id=f"{run.run_id}-{published}"))
        view = store.resolve(rid)
        assert (view.typed is not None) == (published >= 3)
        assert (view.points is not None) == (published >= 4)
        assert view.graph.get("point_block") == (size if published >= 4 else None)
        pages = []
        for q in _queries(run):
            if q["sort"] not in view.numeric:
                continue
            for limit in (1, 13, 500):
                cursor, seen = None, []
                for _ in range(200):
                    page = store.customers_page(view, limit=limit, cursor=cursor, **q)
                    seen.append(page.items)
                    cursor = page.next_cursor
                    if cursor is None or limit == 500:
                        break
                pages.append((q["sort"], limit, seen))
        ids = c["customer_id"].astype(str)
        sample = [*ids[::37], ids.iloc[-1], "no such customer"]
        docs = [store.customer(view, i) for i in sample]
        found = [store.search_customers(view, i[:3]) for i in sample[:5]]
        near = [store.neighbors(view, i, limit=50) for i in sample]
        g = store.load_graph(view)
        graph = [g.ids.tolist(), g.indptr, g.indices, g.weights, g.counts, g.channels]
        reads.append((pages, docs, found, store.customers_frame(view), near, graph))
    (pages2, docs2, found2, frame2, near2, graph2), (pages3, docs3, found3, frame3, near3,
                                                     graph3) = reads
    assert len(pages3) >= 20 and pages3 == pages2
    assert docs3 == docs2 and all(d is not None for d in docs3[:-1]) and docs3[-1] is None
    assert found3 == found2 and all(found3)
    pd.testing.assert_frame_equal(frame3, frame2)
    assert near3 == near2 and sum(len(x or []) for x in near3) > 0
    assert graph3[0] == graph2[0] and len(graph3[2]) == run.graph.n_ties
    for a, b in zip(graph3[1:], graph2[1:], strict=True):
        np.testing.assert_array_equal(a, b)
    ranked = [json.loads(d)["customer_id"] for d in pages3[0][2][0]]
    assert ranked  # the first page of the first query is not empty


def test_retention_drops_a_runs_cached_columns(store: RunStore) -> None:
    """Ranked pages cache a run's columns in the reading process; when retention drops the
    run's tables, its columns leave the cache (other runs' stay)."""
    store.keep_runs = 1
    first = store.publish(variant(31.0))
    old = store.resolve(first)
    assert store.customers_page(old, sort="priority", limit=5).items
    second = store.publish(variant(32.0))  # retention drops the first run
    new = store.resolve(second)
    assert store.customers_page(new, sort="priority", limit=5).items
    cached = {k[0] for k in store._column_cache().cached()}
    assert new.key in cached and old.key not in cached
