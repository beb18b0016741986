"""Vectorised document building: the Arrow path writes the same JSON text, byte for byte, as
the value-by-value encoder it replaced (kept as the reference), for every kind of column the
runs hold, including the awkward values (NaN, inf, missing, quotes, backslashes, control
characters, non-ASCII, times with NaT, nullable integers and booleans, Python objects).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from carenet.store import encode as enc
from carenet.store import records as rec


def awkward_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(['plain', 'quo"te', 'back\\slash', 'tab\there', 'new\nline', 'bell\x07',
                      'Zoë – ✓', '', ',",', 'del\x7f', 'line\u2028sep'], dtype=object)
    floats = rng.normal(0, 1e3, n)
    floats[::7] = np.nan
    floats[3] = np.inf
    floats[4] = -np.inf
    floats[5] = 1e-300
    floats[6] = 3.0
    times = pd.Series(pd.to_datetime(rng.integers(0, 2_000_000_000, n), unit="s", utc=True))
    times[::5] = pd.NaT
    text = pd.Series(words[rng.integers(0, len(words), n)], dtype=object)
    text[::6] = None
    nullable = pd.Series(rng.integers(-5, 5, n), dtype="Int64")
    nullable[::4] = pd.NA
    flags = pd.Series(rng.random(n) < 0.5, dtype="boolean")
    flags[::3] = pd.NA
    mixed = pd.Series([None if i % 5 == 0 else (i if i % 2 else float(i) / 3) for i in range(n)],
                      dtype=object)
    lists = pd.Series([[1, 2.5, None] if i % 2 else {"k": float("nan"), "s": "x"}
                       for i in range(n)], dtype=object)
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "score": floats,
        "count": rng.integers(-10**12, 10**12, n),
        "nullable": nullable,
        "flag": rng.random(n) < 0.3,
        "maybe": flags,
        "community": rng.integers(0, 9, n),
        "community_f": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 9, n)),
        "role": pd.Series(rng.choice(["hub", "bridge"], n), dtype="string"),
        "channel": pd.Series(rng.choice(["call", "sms", None], n), dtype="string[pyarrow]"),
        "segment": text,
        "last_seen": times,
        "mixed": mixed,
        "payload": lists,
        "ids_as_json": text.where(text.notna(), None),
    })


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_arrow_json_is_the_reference_text(seed: int) -> None:
    frame = awkward_frame(seed=seed)
    kinds = {c.name: c.type for c in rec.column_catalogue(frame)} | {
        "community_f": "text", "customer_id": "text", "ids_as_json": "json"}
    for col in frame.columns:
        kind = kinds[col]
        assert enc.json_array(frame[col], kind).to_pylist() == enc.json_values(frame[col], kind), col
    objects = enc.json_object_array(frame, kinds).to_pylist()
    assert objects == enc.json_objects(frame, kinds)
    for doc in objects:  # and it is JSON
        json.loads(doc)
    assert enc.json_object_array(frame[[]], kinds).to_pylist() == ["{}"] * len(frame)
    # the typed SQL columns carry the same values as the value-by-value path
    for info in rec.column_catalogue(frame):
        if info.sql:
            assert rec.sql_array(frame, info).to_pylist() == rec.sql_values(frame, info), info


def test_customer_documents_match_the_reference_layout() -> None:
    frame = awkward_frame(seed=4).drop(columns=["community_f"])
    frame["priority"] = np.arange(len(frame), dtype=float)
    frame["reason"] = "exposed through 3 ties"
    catalogue = rec.column_catalogue(frame)
    pct = rec.percentiles(frame, catalogue)
    docs = rec.customer_documents(frame, catalogue, pct).to_pylist()
    kinds = {c.name: c.type for c in catalogue} | {"customer_id": "text"}
    top = enc.json_objects(frame[["customer_id"] + [c.name for c in catalogue
                                                    if c.role == "top"]], kinds)
    scores = enc.json_objects(frame[[c.name for c in catalogue if c.role == "score"]], kinds)
    pcts = enc.json_objects(pct, dict.fromkeys(pct.columns, "float"))
    attrs = enc.json_objects(frame[[c.name for c in catalogue if c.role == "attribute"]], kinds)
    expected = [f'{t[:-1]},"scores":{s},"percentiles":{p},"attributes":{a}}}'
                for t, s, p, a in zip(top, scores, pcts, attrs, strict=True)]
    assert docs == expected
    one = json.loads(docs[1])
    assert one["customer_id"] == "c1" and set(one) >= {"scores", "percentiles", "attributes"}
    assert one["priority"] == 1.0 and one["reason"] == "exposed through 3 ties"


def test_percentiles_are_pandas_ranks() -> None:
    rng = np.random.default_rng(5)
    n = 5_000
    frame = pd.DataFrame({
        "customer_id": [str(i) for i in range(n)],
        "ties": rng.integers(0, 20, n).astype(float),
        "smooth": rng.normal(size=n),
        "count": rng.integers(0, 3, n),
        "gaps": np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 5, n)),
        "inf": np.where(rng.random(n) < 0.1, np.inf, rng.random(n)),
        "empty": np.full(n, np.nan),
    })
    catalogue = rec.column_catalogue(frame)
    ours = rec.percentiles(frame, catalogue)
    cols = [c.name for c in catalogue if c.type in ("int", "float")]
    pandas = (frame[cols].astype("float64").rank(pct=True, method="average") * 100.0).round(2)
    pd.testing.assert_frame_equal(ours, pandas, check_exact=True)


@pytest.mark.parametrize("odd_name", [False, True])
def test_documents_rebuilt_from_rows_are_the_published_text(odd_name: bool) -> None:
    """DocumentBuilder turns a stored row (text columns as a database returns them; numbers,
    booleans and percentiles packed; stored JSON texts) back into the text
    customer_documents writes, on the orjson path and, with a column name orjson writes
    differently from json.dumps, on the template path.
    """
    frame = awkward_frame(seed=9).drop(columns=["community_f"])
    frame["priority"] = np.linspace(-1.0, 1.0, len(frame))
    frame["signed_zero"] = np.where(np.arange(len(frame)) % 2 == 0, -0.0, 2.0)
    if odd_name:
        frame = frame.rename(columns={"score": 'score "Zoë" {0}'})
    catalogue = rec.with_document_forms(frame, rec.column_catalogue(frame))
    pct = rec.percentiles(frame, catalogue)
    expected = rec.customer_documents(frame, catalogue, pct).to_pylist()
    builder = rec.DocumentBuilder([c.to_dict() for c in catalogue])
    assert builder._plain is not odd_name
    by_sql = {c.sql: c for c in catalogue if c.sql}
    stored = {
        "customer_id": frame["customer_id"].tolist(),
        "vals": rec.value_blobs(frame, catalogue).to_pylist(),
        "pct": rec.percentile_blobs(pct).to_pylist(),
        "doc_extra": rec.stored_fragments(frame, catalogue).to_pylist(),
    }
    for sql, info in by_sql.items():
        values = rec.sql_array(frame, info).to_pylist()
        if info.type == "bool":  # SQLite gives booleans back as 0/1
            values = [None if v is None else int(v) for v in values]
        stored[sql] = values
    for i, want in enumerate(expected):
        row = tuple(stored[f][i] for f in builder.fields)
        assert builder.build(row) == want


def test_community_links_counted_densely_as_by_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    """The communities' documents (sizes, top customers, strongest links) are the same text
    whether links are counted in a dense array of community pairs or through np.unique."""
    from servicekit import variant

    run = variant(5.0)
    table = run.tables.get("communities")
    dense = rec.community_documents(run.customers, table, run.graph)
    monkeypatch.setattr(rec, "DENSE_PAIRS", 0)
    assert rec.community_documents(run.customers, table, run.graph) == dense
    links = [json.loads(d)["links"] for _, d in dense]
    assert len(dense) > 2 and sum(map(len, links)) > 0
