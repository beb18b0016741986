"""The run store, on SQLite and (with CARENET_TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from servicekit import base_run, variant

from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.store import RunNotReadyError, RunStateError, RunStore, UnknownFieldError
from carenet.store.reads import decode_cursor


def doc(store: RunStore, view, cid: str) -> dict:
    raw = store.customer(view, cid)
    assert raw is not None
    return json.loads(raw)


def test_publish_then_read_every_column(store: RunStore) -> None:
    run = variant(1.0)
    rid = store.publish(run)
    view = store.resolve(None)
    assert view.run_id == rid
    row = run.customers.iloc[7]
    d = doc(store, view, row["customer_id"])
    assert d["customer_id"] == row["customer_id"]
    assert d["community"] == str(row["community"]) and d["role"] == row["role"]
    assert d["priority"] == pytest.approx(row["priority"], rel=1e-15)
    assert d["reason"] == row["reason"]
    assert d["scores"]["pagerank"] == pytest.approx(row["pagerank"], rel=1e-15)
    assert d["scores"]["degree_in"] == row["degree_in"]
    assert d["attributes"]["segment"] == row["segment"]
    assert d["attributes"]["first_seen"].endswith("Z")
    # percentile ranks agree with pandas
    pct = run.customers["strength_in"].rank(pct=True) * 100
    assert d["percentiles"]["strength_in"] == pytest.approx(pct.iloc[7], abs=0.006)
    assert store.customer(view, "nobody") is None
    meta = store.get_run(rid)
    assert meta["status"] == "published" and meta["latest"]
    assert meta["counts"]["customers"] == len(run.customers)
    assert meta["versions"]["carenet"]


def test_ranked_pages_cover_everyone_once_in_order(store: RunStore) -> None:
    run = variant(2.0)
    store.publish(run)
    view = store.resolve(None)
    seen: list[tuple[float, str]] = []
    cursor = None
    while True:
        page = store.customers_page(view, sort="influence", limit=700, cursor=cursor)
        seen += [(json.loads(d)["scores"]["influence"], json.loads(d)["customer_id"])
                 for d in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    ranked = run.customers.dropna(subset=["influence"])
    assert len(seen) == len(ranked) == len({c for _, c in seen})
    assert [v for v, _ in seen] == sorted(ranked["influence"], reverse=True)


def test_filters_and_default_sort(store: RunStore) -> None:
    run = variant(3.0)
    store.publish(run)
    view = store.resolve(None)
    page = store.customers_page(view, community="4", role="hub",
                                bounds={"exposure": (0.5, None), "degree_in": (None, 50)},
                                limit=1000)
    assert page.sort == "priority"
    c = run.customers
    want = c[(c.community == 4) & (c.role == "hub") & (c.exposure >= 0.5) & (c.degree_in <= 50)]
    got = [json.loads(d)["customer_id"] for d in page.items]
    assert got == list(want.sort_values(["priority", "customer_id"],
                                        ascending=False)["customer_id"])
    asc = store.customers_page(view, sort="pagerank", order="asc", limit=3)
    assert [json.loads(d)["customer_id"] for d in asc.items] == list(
        c.sort_values("pagerank")["customer_id"].head(3))


def test_unknown_sort_filter_and_cursor_are_input_errors(store: RunStore) -> None:
    run = base_run()  # the foundation run: no pagerank, community or role yet
    store.publish(run)
    view = store.resolve(None)
    with pytest.raises(UnknownFieldError) as e:
        store.customers_page(view, sort="pagerank")
    assert "strength_in" in e.value.available and "pagerank" not in e.value.available
    with pytest.raises(UnknownFieldError):
        store.customers_page(view, role="hub")
    with pytest.raises(UnknownFieldError):
        store.customers_page(view, bounds={"segment": (1.0, None)})
    page = store.customers_page(view, limit=2)
    assert page.sort == view.default_sort and page.sort in e.value.available
    other = next(c for c in e.value.available if c != page.sort)
    with pytest.raises(InvalidInputError):
        store.customers_page(view, sort=other, cursor=page.next_cursor)
    with pytest.raises(InvalidInputError):
        decode_cursor("not-a-cursor!")


def test_neighbors_match_the_graph(store: RunStore) -> None:
    run = variant(4.0)
    store.publish(run)
    view = store.resolve(None)
    g = run.graph
    node = int(np.argmax(g.out_degree()))
    cid = g.ids[node]
    items = store.neighbors(view, cid, limit=1000)
    assert items is not None
    edges = g.edges_frame()
    touching = edges[(edges.source == cid) | (edges.target == cid)].copy()
    touching["other"] = np.where(touching.source == cid, touching.target, touching.source)
    expected = touching.groupby("other")["weight"].sum()
    assert {i["customer_id"] for i in items} == set(expected.index)
    for i in items:
        assert i["weight"] == pytest.approx(expected[i["customer_id"]])
        assert set(i["channels"]) <= set(g.channel_names)
    assert [i["weight"] for i in items] == sorted((i["weight"] for i in items), reverse=True)
    assert store.neighbors(view, "nobody") is None
    assert len(store.neighbors(view, cid, limit=3) or []) == 3


def test_graph_rebuilt_from_the_store_is_the_runs_graph(store: RunStore) -> None:
    run = variant(4.5)
    store.publish(run)
    g = store.load_graph(store.resolve(None))
    for name in ("ids", "indptr", "indices", "weights", "counts", "channels"):
        assert np.array_equal(getattr(g, name), getattr(run.graph, name)), name
    assert g.channel_names == run.graph.channel_names and g.directed == run.graph.directed


def test_communities_and_care_plan_tables(store: RunStore) -> None:
    run = variant(5.0)
    store.publish(run)
    view = store.resolve(None)
    rows, total = store.table_rows(view, "communities", limit=100)
    assert total == 9
    docs = [json.loads(r) for r in rows]
    assert sum(d["size"] for d in docs) == len(run.customers)
    c3 = json.loads(store.table_row(view, "communities", "3") or "{}")
    members = run.customers[run.customers.community == 3]
    assert c3["top_customers"][0]["customer_id"] == members.sort_values(
        "priority", ascending=False)["customer_id"].iloc[0]
    assert c3["links"] and all(link["community"] != "3" for link in c3["links"])
    plan, n = store.table_rows(view, "care_plan", limit=10)
    assert n == 100 and json.loads(plan[0])["rank"] == 1


def test_failed_publication_leaves_the_published_run(store: RunStore, monkeypatch) -> None:
    first = store.publish(variant(6.0))
    bad = variant(7.0)
    calls = {"n": 0}
    original = store._bulk

    def failing(table, names, rows):
        calls["n"] += 1
        if calls["n"] == 2:  # customers written, ties half-way: the disk filled up
            raise OSError("disk full")
        return original(table, names, rows)

    monkeypatch.setattr(store, "_bulk", failing)
    with pytest.raises(OSError):
        store.publish(bad)
    assert store.resolve(None).run_id == first
    failed = store.get_run(bad.run_id)
    assert failed["status"] == "failed" and "disk full" in failed["error"]
    with pytest.raises(RunNotReadyError):
        store.resolve(bad.run_id)
    from sqlalchemy import inspect

    leftovers = [t for t in inspect(store.engine).get_table_names() if failed["table_key"] in t]
    assert leftovers == []


def test_retention_keeps_last_n_and_kept_runs(store: RunStore) -> None:
    a = store.publish(variant(8.0))
    store.set_kept(a, True)
    b = store.publish(variant(9.0))
    key = store.get_run(b)["table_key"]
    from sqlalchemy import inspect

    assert len([t for t in inspect(store.engine).get_table_names() if key in t]) >= 4
    c = store.publish(variant(10.0))
    d = store.publish(variant(11.0))
    ids = {r["id"] for r in store.list_runs()}
    assert ids == {a, c, d}  # keep_runs=2 plus the kept one; b was dropped
    assert b not in ids
    # every table of the dropped run went with it (customers, points, columns, ties, rows)
    assert [t for t in inspect(store.engine).get_table_names() if key in t] == []
    with pytest.raises(RunNotFoundError):
        store.resolve(b)
    assert json.loads(store.customer(store.resolve(a), base_run().customers.customer_id[0])
                      or "{}")["scores"]["marker"] == 8.0


def test_run_lifecycle_claim_cancel_recover(store: RunStore) -> None:
    q = store.create_run({"logs": []})
    assert q["status"] == "queued"
    assert store.request_cancel(q["id"])["status"] == "cancelled"
    with pytest.raises(RunStateError):
        store.request_cancel(q["id"])
    r = store.create_run({"logs": []})
    claimed = store.claim_next("somehost:1")
    assert claimed is not None and claimed["id"] == r["id"] and claimed["status"] == "running"
    assert store.claim_next("somehost:1") is None
    assert store.report_progress(r["id"], "load", 10, 100, 0.1) is False
    store.request_cancel(r["id"])
    assert store.report_progress(r["id"], "load", 20, 100, 0.2) is True
    s = store.create_run({"logs": []})
    store.claim_next("deadhost:4242")
    failed = store.recover(alive=lambda owner: not owner.startswith("deadhost"))
    assert failed == [s["id"]]
    assert store.get_run(s["id"])["status"] == "failed"
    with pytest.raises(RunStateError):  # an interrupted run can never be published later
        store.publish(variant(12.0), run_id=s["id"])
    with pytest.raises(RunNotFoundError):
        store.get_run("no-such-run")


def test_api_keys_are_hashed_and_revocable(store: RunStore) -> None:
    info, token = store.create_key("analyst", "crm")
    assert store.verify_key(token) == info
    assert token not in json.dumps(store.list_keys())
    assert store.verify_key(token[:-1] + ("x" if token[-1] != "x" else "y")) is None
    assert store.verify_key("garbage") is None
    store.revoke_key(info.id)
    assert store.verify_key(token) is None
    with pytest.raises(InvalidInputError):
        store.create_key("root")
    with pytest.raises(RunNotFoundError):
        store.revoke_key("k-none")


def test_no_run_yet(store: RunStore) -> None:
    with pytest.raises(RunNotFoundError, match="no published run"):
        store.resolve(None)


def test_documents_built_at_read_are_the_publishers_text(store: RunStore) -> None:
    """No document is stored: every customer's document, single or in a ranked page, is
    rebuilt from its row, byte for byte the text the publisher's encoder writes, for every
    kind of column (NaN, inf, -0.0, nullable ints and booleans, times with NaT, quotes,
    control characters, non-ASCII, Python objects and lists).
    """
    from test_records import awkward_frame

    from carenet.store import records as rec

    run = variant(12.0)
    c = run.customers.reset_index(drop=True).copy()
    extra = awkward_frame(len(c), seed=7).drop(columns=["customer_id", "community", "role"])
    for name in extra.columns:
        c[f"x_{name}"] = extra[name].to_numpy()
    c["x_nullable"] = extra["nullable"]  # keep the pandas nullable dtypes
    c["x_maybe"] = extra["maybe"]
    c["x_signed_zero"] = np.where(np.arange(len(c)) % 3 == 0, -0.0, 1.5)
    run = dataclasses.replace(run, customers=c)
    store.publish(run)
    view = store.resolve(None)
    catalogue = rec.column_catalogue(c)
    expected = rec.customer_documents(c, catalogue, rec.percentiles(c, catalogue)).to_pylist()
    forms = {col["name"]: col["doc"] for col in view.columns}
    assert forms["x_score"] == "float" and forms["x_payload"] == "stored"
    assert forms["x_signed_zero"] == "float" and forms["x_nullable"] == "float"
    for i, cid in enumerate(c["customer_id"]):
        assert store.customer(view, cid) == expected[i], cid
    by_id = dict(zip(c["customer_id"], expected, strict=True))
    page = store.customers_page(view, sort="x_score", limit=1000)
    assert page.items and all(doc == by_id[json.loads(doc)["customer_id"]] for doc in page.items)
    with store.engine.connect() as conn:  # and nothing holds the document any more
        names = [col["name"] for col in conn.dialect.get_columns(conn, view.customers.name)]
    assert "record" not in names


@pytest.mark.parametrize(("step_blocks", "arrow"), [(1, False), (100, False), (1, True),
                                                    (100, True)])
def test_tables_stored_in_blocks_read_as_rows(store: RunStore, step_blocks: int, arrow: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Extra tables are stored BLOCK_ROWS records a row: any offset and limit, the row count,
    look-ups by key (the first row with it) and whole frames read as one row per record;
    the same whether the table is encoded in one piece or a block at a time, as JSON blocks
    or as Arrow blocks.
    """
    from carenet.store import publish
    from carenet.store import records as rec

    monkeypatch.setattr(publish, "TABLE_STEP_BLOCKS", step_blocks)
    if not arrow:
        monkeypatch.setattr(rec, "arrow_storable", lambda frame: False)

    run = variant(13.0)
    n = 2 * rec.BLOCK_ROWS + 345
    rng = np.random.default_rng(13)
    ids = run.customers["customer_id"].to_numpy()
    big = pd.DataFrame({"customer_id": ids[rng.integers(0, len(ids), n)],
                        "rank": np.arange(n), "share": rng.random(n),
                        "note": np.where(np.arange(n) % 5 == 0, 'line\nbreak "q"', "x")})
    run = dataclasses.replace(run, tables={**run.tables, "exposure_sources": big})
    store.publish(run)
    view = store.resolve(None)
    assert view.blocks["exposure_sources"][:3] == [rec.BLOCK_ROWS, n, *(["arrow"] * arrow)]
    expected = rec.table_records(big).to_pylist()
    for offset, limit in ((0, 10), (0, n + 5), (rec.BLOCK_ROWS - 3, 7), (rec.BLOCK_ROWS, 1),
                          (n - 1, 10), (n, 10), (1234, rec.BLOCK_ROWS + 2), (5, 0)):
        rows, total = store.table_rows(view, "exposure_sources", limit=limit, offset=offset)
        assert total == n and rows == expected[offset:offset + limit], (offset, limit)
    key = str(big["customer_id"].iloc[2 * rec.BLOCK_ROWS + 7])
    first = int(np.flatnonzero(big["customer_id"].astype(str).to_numpy() == key)[0])
    assert store.table_row(view, "exposure_sources", key) == expected[first]
    assert store.table_row(view, "exposure_sources", "nobody") is None
    frame = store.table_frame(view, "exposure_sources")
    assert frame["rank"].tolist() == list(range(n))
    assert frame["note"].tolist() == big["note"].tolist()
    plan, total = store.table_rows(view, "care_plan", limit=3, offset=2)
    assert total == 100 and [json.loads(p)["rank"] for p in plan] == [3, 4, 5]


def test_ties_of_a_ranked_page_follow_code_point_order_on_both_stores(store: RunStore) -> None:
    """Customers with equal scores are ordered by id byte for byte (code points), as SQLite
    compares text: PostgreSQL's run tables use the "C" collation whatever the database's
    (a locale such as en_US would put "b" before "C" and ignore "_")."""
    run = variant(12.0)
    c = run.customers.copy()
    ids = ["c_9", "C-1", "b", "B", "_x", "a~", "A", "é", "z"]
    c.loc[c.index[:len(ids)], "customer_id"] = ids
    c.loc[c.index[:len(ids)], "priority"] = 1e9  # tied, above every other customer
    store.publish(dataclasses.replace(run, customers=c))
    view = store.resolve(None)
    page = store.customers_page(view, sort="priority", order="asc",
                                bounds={"priority": (1e9, None)}, limit=20)
    assert [json.loads(d)["customer_id"] for d in page.items] == sorted(ids)
    desc = store.customers_page(view, sort="priority", limit=len(ids))
    assert [json.loads(d)["customer_id"] for d in desc.items] == sorted(ids, reverse=True)
    if store.backend == "postgresql":
        from sqlalchemy import text

        with store.engine.connect() as conn:
            collations = dict(conn.execute(text(
                "SELECT column_name, collation_name FROM information_schema.columns "
                "WHERE table_name = :t AND data_type = 'text'"),
                {"t": view.customers.name}).all())
        assert collations["customer_id"] == "C"


def test_arrow_blocks_read_exactly_as_json_blocks(store: RunStore,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle of the Arrow blocks is the JSON blocks: a table of every column type Arrow
    stores (numbers with NaN and infinities, integers labelled as text, booleans, naive and
    zoned times with NaT, strings with None, quotes, newlines and non-ASCII, plain Python
    strings) reads the same through table_rows, table_row and table_frame either way; a
    table with a list column is kept as JSON blocks."""
    from carenet.store import records as rec

    n = rec.BLOCK_ROWS + 250
    rng = np.random.default_rng(16)
    ids = variant(16.0).customers["customer_id"].astype(str).to_numpy()
    share = rng.random(n)
    share[::7] = np.nan
    share[3] = np.inf
    share[4] = -np.inf
    times = pd.Series(pd.to_datetime(rng.integers(1.6e9, 1.7e9, n), unit="s"))
    times[::11] = pd.NaT
    text = pd.Series(np.where(np.arange(n) % 3 == 0, 'say "hi"\nthen é✓', "plain"),
                     dtype="str")
    text[::5] = None
    table = pd.DataFrame({
        "customer_id": ids[rng.integers(0, len(ids), n)], "rank": np.arange(n),
        "share": share, "small": rng.integers(0, 5, n).astype(np.int32),
        "community": rng.integers(0, 9, n), "lost": rng.random(n) < 0.3,
        "seen": times, "seen_utc": times.dt.tz_localize("UTC"), "why": text,
        "note": pd.Series([None if i % 4 == 0 else f"n{i}" for i in range(n)], dtype=object)})
    listed = pd.DataFrame({"customer_id": ids[:50], "drivers": [[i, i + 1] for i in range(50)]})
    assert rec.arrow_storable(table) and not rec.arrow_storable(listed)
    reads = []
    for arrow in (False, True):
        if not arrow:
            monkeypatch.setattr(rec, "arrow_storable", lambda frame: False)
        else:
            monkeypatch.undo()
        run = variant(16.0 + arrow)
        run = dataclasses.replace(run, tables={**run.tables, "exposure_sources": table,
                                               "care_reasons": listed})
        store.publish(run)
        view = store.resolve(None)
        assert view.blocks["exposure_sources"][2:3] == (["arrow"] if arrow else [])
        assert len(view.blocks["care_reasons"]) == 2  # JSON blocks either way
        pages = [store.table_rows(view, "exposure_sources", limit=limit, offset=offset)
                 for offset, limit in ((0, n + 1), (rec.BLOCK_ROWS - 2, 5), (n - 1, 3))]
        found = [store.table_row(view, "exposure_sources", k)
                 for k in (table["customer_id"].iloc[-1], table["customer_id"].iloc[0], "x")]
        reads.append((pages, found, store.table_frame(view, "exposure_sources"),
                      store.table_rows(view, "care_reasons", limit=100)))
    (pages_j, found_j, frame_j, listed_j), (pages_a, found_a, frame_a, listed_a) = reads
    assert pages_a == pages_j and found_a == found_j and listed_a == listed_j
    assert found_a[-1] is None and len(pages_a[0][0]) == n
    pd.testing.assert_frame_equal(frame_a, frame_j)


def _check_ids_stored_as_given(store: RunStore, ids: list[str]) -> None:
    run = variant(13.0)
    c = run.customers.copy()
    c.loc[c.index[:len(ids)], "customer_id"] = ids
    store.publish(dataclasses.replace(run, customers=c))
    view = store.resolve(None)
    for i in ids:
        doc = store.customer(view, i)
        assert doc is not None and json.loads(doc)["customer_id"] == i
        assert i in store.search_customers(view, i)
    assert store.customer(view, "nul") is None and store.customer(view, "7") is None
    frame = store.customers_frame(view)
    assert frame["customer_id"].tolist() == c["customer_id"].astype(str).tolist()


ODD_IDS = ['q"1', "back\\slash", "line\nbreak", "\U0001f600", "007", " padded ", "\u2028", "é"]


def test_odd_customer_ids_are_stored_as_given(store: RunStore) -> None:
    """Ids that JSON must escape or that look like numbers come back exactly (SQLite writes
    layout 4's ids through one JSON array a chunk)."""
    _check_ids_stored_as_given(store, ODD_IDS)


def test_an_id_with_a_nul_character_is_stored_whole_on_sqlite(tmp_path: Path) -> None:
    """SQLite's JSON reader would cut an id at a NUL character: such a run's ids are
    written row by row (PostgreSQL's text holds no NUL: SQLite only)."""
    store = RunStore(f"sqlite:///{tmp_path / 'nul.db'}")
    try:
        _check_ids_stored_as_given(store, [*ODD_IDS, "nul\x00inside"])
    finally:
        store.close()


def test_runs_are_published_in_their_stores_layout(store: RunStore) -> None:
    """SQLite stores publish layout 4 (document fields in blocks), PostgreSQL layout 3
    (one row per customer), unless a layout is asked for."""
    view = store.resolve(store.publish(variant(14.0)))
    expected = 3 if store.backend == "postgresql" else 4
    assert view.graph["layout"] == expected
    assert (view.points is not None) == (expected == 4) and view.typed is not None
