"""The vectorised encoders of a publication give what the value-by-value code they replaced
gave: ISO times (one compiled pass instead of pandas' strftime), packed ties (one compiled pass instead of
a loop per customer), Python values for SQLite (numpy instead of Arrow scalars) and JSON
strings that need no escape (no escaping pass).
"""

from __future__ import annotations

import itertools
import json
import struct

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from carenet.store import encode as enc
from carenet.store import records as rec


def strftime_reference(s: pd.Series) -> list[str | None]:
    text = s.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [None if pd.isna(v) else v for v in text.tolist()]


@pytest.mark.parametrize("tz", ["UTC", None, "Europe/Paris", "America/St_Johns"])
def test_iso_times_are_strftime(tz: str | None) -> None:
    rng = np.random.default_rng(3)
    micros = rng.integers(-2_000_000_000_000_000, 4_000_000_000_000_000, 500)
    s = pd.Series(pd.to_datetime(micros, unit="us", utc=True))
    s[::7] = pd.NaT
    s = s.dt.tz_convert(tz) if tz else s.dt.tz_localize(None)
    assert enc.iso_times(s).to_pylist() == strftime_reference(s)


@pytest.mark.parametrize("values", [
    ["1500-03-01 12:00:00.75", "9999-12-31 23:59:59.999999", None],  # widest years kept
    ["0500-01-01 00:00:00", "2020-01-01 00:00:00"],  # a 3-digit year: pandas' own path
    [None, None],
    [],
])
def test_iso_times_edges(values: list[str | None]) -> None:
    s = pd.Series(pd.to_datetime(values, utc=True, format="ISO8601").astype(
        "datetime64[us, UTC]"))
    assert enc.iso_times(s).to_pylist() == strftime_reference(s)


def test_iso_digits_are_numpy_over_every_year() -> None:
    """The compiled calendar against numpy's over years 1000-9999: random seconds, both
    ends, the epoch and the second before it, leap days (2000, 2400) and non-leap
    centuries (1900, 2100)."""
    lo = int(np.datetime64("1000-01-01T00:00:00", "s").astype(np.int64))
    hi = int(np.datetime64("9999-12-31T23:59:59", "s").astype(np.int64))
    edges = [np.datetime64(t, "s").astype(np.int64) for t in (
        "2000-02-29T23:59:59", "2000-03-01T00:00:00", "1900-02-28T12:00:00",
        "1900-03-01T00:00:00", "2100-02-28T23:59:59", "2400-02-29T00:00:00")]
    secs = np.concatenate([np.random.default_rng(4).integers(lo, hi + 1, 200_000),
                           [lo, hi, 0, -1, *edges]]).astype(np.int64)
    expected = np.char.add(np.datetime_as_string(secs.astype("datetime64[s]"), unit="s")
                           .astype("S19"), b"Z")
    assert (enc.iso_digits(secs).view("S20").ravel() == expected).all()


def test_packed_rows_are_pack_ties() -> None:
    rng = np.random.default_rng(8)
    n = 300
    deg = rng.integers(0, 6, n)
    deg[[0, 5, n - 1]] = 0
    deg[7] = 400  # a long row (offsets past 2**8 and 2**16 bytes within the chunk)
    indptr = np.r_[0, np.cumsum(deg)].astype(np.int64)
    m = int(indptr[-1])
    targets = rng.integers(0, n, m).astype(np.int32)
    weights = rng.normal(size=m)
    weights[:3] = [-0.0, np.nan, np.inf]
    counts = rng.integers(0, 2**32, m, dtype=np.uint64).astype(np.uint32)
    channels = rng.integers(0, 2**16, m).astype(np.uint16)
    packed = rec._packed_rows(indptr, targets, weights, counts, channels)
    expected = [rec.pack_ties(targets[a:b], weights[a:b], counts[a:b], channels[a:b])
                if b > a else None for a, b in itertools.pairwise(indptr)]
    assert packed.to_pylist() == expected
    assert packed.null_count == int((deg == 0).sum())
    back = rec.unpack_ties(packed[7].as_py())
    np.testing.assert_array_equal(back[1], weights[indptr[7]:indptr[8]])


@pytest.mark.parametrize("array", [
    pa.array([1.5, None, -0.0, float("nan"), float("inf")]),
    pa.array([1, None, -(2**63)], pa.int64()),
    pa.array([3, 4], pa.int32()),
    pa.array([True, None, False]),
    pa.array([True, False]),
    pa.array(["a", None, "é"], pa.large_string()),
    pa.array([b"\x00\x01", None], pa.large_binary()),
    pa.chunked_array([[1.0], [None, 2.0]]),
    pa.array([], pa.float64()),
])
def test_python_values_are_to_pylist(array: pa.Array) -> None:
    ours = enc.python_values(array)
    ref = array.to_pylist()
    assert [type(v) for v in ours] == [type(v) for v in ref]
    assert [repr(v) for v in ours] == [repr(v) for v in ref]


def test_strings_without_escapes_take_the_short_path() -> None:
    plain = pd.Series(["c1", "c22", None, "zoë"], dtype="str")
    assert enc.json_array(plain, "text").to_pylist() == enc.json_values(plain, "text")
    odd = pd.Series(['a"b', "c\\d", "e\x01", None], dtype="str")
    assert enc.json_array(odd, "text").to_pylist() == enc.json_values(odd, "text")


def decode_copy_rows(data: bytes, types: list[str]) -> list[tuple[object, ...]]:
    """A plain reading of binary COPY tuples (the reference for copy_binary)."""
    rows, o = [], 0
    unpack = {"float8": ">d", "int8": ">q", "int4": ">i"}
    while o < len(data):
        (k,) = struct.unpack_from(">h", data, o)
        o += 2
        assert k == len(types)
        row: list[object] = []
        for kind in types:
            (m,) = struct.unpack_from(">i", data, o)
            o += 4
            if m == -1:
                row.append(None)
                continue
            raw = data[o:o + m]
            o += m
            if kind in unpack:
                row.append(struct.unpack(unpack[kind], raw)[0])
            elif kind == "bool":
                row.append(raw == b"\x01")
            else:
                row.append(raw.decode() if kind == "text" else raw)
        rows.append(tuple(row))
    return rows


def test_copy_binary_writes_each_value_as_postgresql_reads_it() -> None:
    long_text = "x" * 70_000  # a length past 2**16: all four bytes of the length used
    table = pa.table({
        "f": pa.array([1.5, None, -0.0, 1e-300, float("nan")]),
        "i8": pa.array([-(2**63), 2**40, None, 0, 7], pa.int64()),
        "i4": pa.array([0, 1, 2**31 - 1, -5, None], pa.int64()),
        "b": pa.array([True, False, None, True, False]),
        "t": pa.array(["plain", 'quo"te\ttab\nnl\\', None, "zoë ✓", long_text],
                      pa.large_string()),
        "s": pa.array(["a", "", None, "b", "c"], pa.string()),
        "y": pa.array([b"\x00\xff", None, b"", b"\x01" * 300, b"z"], pa.binary()),
        "n": pa.nulls(5, pa.large_binary()),
    })
    types = ["float8", "int8", "int4", "bool", "text", "text", "bytea", "bytea"]
    rows = decode_copy_rows(enc.copy_binary(table, types), types)
    expected = list(zip(*[c.to_pylist() for c in table.columns], strict=True))
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert repr(got) == repr(want)  # -0.0 and nan kept
    # a slice (Arrow offsets not starting at 0) encodes as the same rows
    sliced = decode_copy_rows(enc.copy_binary(table.slice(2, 3), types), types)
    assert repr(sliced) == repr(rows[2:])
    with pytest.raises(ValueError, match="no binary COPY encoder"):
        enc.copy_binary(table.select(["f"]), ["json"])


def test_escapes_found_in_a_sliced_array() -> None:
    # an Arrow slice starts its offsets past the buffer's start: the look at the bytes must
    # cover the slice's own bytes (here only the sliced-in values need escapes)
    values = pa.array(["plain", "plain", 'q"uote', "back\\slash", "bell\x07"],
                      pa.large_string())
    for start in range(len(values)):
        part = values.slice(start)
        expected = [json.dumps(v, ensure_ascii=False) for v in part.to_pylist()]
        assert enc._quoted(part).to_pylist() == expected


def test_records_with_bare_strings_are_the_reference_text() -> None:
    # columns whose every value is a string needing no escape (no null) take the quotes
    # into the record's literal pieces; one escape or one null sends a column back
    n = 50
    frame = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "seen": pd.Series(pd.to_datetime(np.arange(n) * 86_399, unit="s", utc=True)),
        "ids": pd.Series([f"s{i}" for i in range(n)], dtype=object),
        "label": pd.Series(["zoë"] * n, dtype="string"),
        "score": np.linspace(0, 1, n),
        "quoted": ['say "hi"'] + ["plain"] * (n - 1),
        "gappy": pd.Series([None] + ["x"] * (n - 1), dtype=object),
    })
    kinds = {"customer_id": "text", "seen": "text", "ids": "json", "label": "text",
             "score": "float", "quoted": "text", "gappy": "text"}
    assert enc._bare_strings(frame["ids"], "json")[0] is not None
    assert enc._bare_strings(frame["seen"], "text")[0] is not None
    assert enc._bare_strings(frame["quoted"], "text")[0] is None
    assert enc._bare_strings(frame["gappy"], "text")[0] is None
    assert enc.json_object_array(frame, kinds).to_pylist() == enc.json_objects(frame, kinds)


@pytest.mark.parametrize("start", [0, 5])
def test_tie_blocks_give_each_positions_ties_back(start: int) -> None:
    """Blocks of packed ties (layout 3) give back each position's bytes, empty positions
    and blocks without ties included, also from a slice that starts inside its buffers."""
    rng = np.random.default_rng(start)
    values = [None if k % 4 == 0 else rng.bytes(int(rng.integers(1, 30))) for k in range(700)]
    values[256:512] = [None] * 256  # a block with no ties: no row
    packed = pa.array(values, pa.large_binary()).slice(start)
    numbers, blocks = rec.tie_blocks(packed, 256)
    mine = values[start:]
    assert numbers.tolist() == [b for b in range(3) if any(mine[256 * b:256 * b + 256])]
    stored = dict(zip(numbers.tolist(), blocks.to_pylist(), strict=True))
    for i, want in enumerate(mine):
        assert (rec.block_ties(stored.get(i // 256), i % 256) or None) == want
