"""Turning an :class:`~carenet.pipeline.AnalysisRun` into store rows, and a customer's stored
row back into its JSON document.

What a read needs is prepared here once, at publish time, with vectorised pandas/numpy: typed
sort/filter columns, percentile ranks packed two bytes each, packed tie arrays and community
summaries. A customer's JSON document (scores, percentile ranks, attributes) is not stored: it
is rebuilt at read time from the typed columns by :class:`DocumentBuilder`, byte for byte the
text :func:`customer_documents` writes (storing it cost 2.3 KB a customer, most of a 1M-customer
publication; see benchmarks/README.md "publish.py").
"""

from __future__ import annotations

import json
import operator
import os
import struct
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numba as nb
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from carenet.graphs.model import CustomerGraph
from carenet.store.schema import INDEXED, sql_column_names

TOP_LEVEL = ("community", "role", "priority", "reason")
"""Customer columns shown at the top of a customer document (the rest go to scores or
attributes)."""
CATEGORICAL = ("community", "role", "segment")
"""Columns that are labels even when their values are numbers (no percentile, text filter)."""
RANK_PREFERENCE = ("priority", "influence", "exposure", "pagerank", "strength_in", "degree_in")
"""Default sort key: the first of these the run has."""

_TIE_HEADER = struct.Struct("<I")


@dataclass(frozen=True)
class ColumnInfo:
    """One customer column: its name, kind and SQL column."""

    name: str
    type: str  # float | int | bool | text | json
    sql: str | None
    indexed: bool
    role: str  # top | score | attribute
    doc: str | None = None  # how the document writes it: see DOC_FORMS (None: old layout)

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored in ``runs.columns``."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "sql": self.sql,
                               "indexed": self.indexed, "role": self.role}
        if self.doc is not None:
            out["doc"] = self.doc
        return out


def column_catalogue(frame: pd.DataFrame) -> list[ColumnInfo]:
    """Kind, SQL name and index flag of every customer column except ``customer_id``."""
    names = [str(c) for c in frame.columns if c != "customer_id"]
    sql = sql_column_names(names)
    out = []
    for name in names:
        s = frame[name]
        if pd.api.types.is_bool_dtype(s):
            kind = "bool"
        elif pd.api.types.is_integer_dtype(s):
            kind = "int"
        elif pd.api.types.is_float_dtype(s):
            kind = "float"
        elif pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_string_dtype(s):
            kind = "text"
        else:
            kind = _object_kind(s)
        if name in CATEGORICAL and kind in ("int", "float", "bool"):
            kind = "text"
        role = "top" if name in TOP_LEVEL else (
            "score" if kind in ("int", "float") else "attribute")
        out.append(ColumnInfo(name=name, type=kind, sql=None if kind == "json" else sql[name],
                              indexed=name in INDEXED and kind in ("int", "float"), role=role))
    return out


def _object_kind(s: pd.Series) -> str:
    sample = s.dropna().head(100).tolist()
    if all(isinstance(v, str) for v in sample):
        return "text"
    if all(isinstance(v, (bool, np.bool_)) for v in sample):
        return "bool"
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
           for v in sample):
        return "float"
    return "json"


def sql_values(frame: pd.DataFrame, info: ColumnInfo) -> list[Any]:
    """Plain-Python values of one column for its typed SQL column (NaN/NaT -> None)."""
    s = frame[info.name]
    if info.type == "text":
        if pd.api.types.is_datetime64_any_dtype(s):
            s = s.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif not pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s):
            s = s.map(lambda v: None if _missing(v) else str(v))
        return s.astype(object).where(s.notna(), None).tolist()  # type: ignore[no-any-return]
    if info.type == "bool":
        return s.astype(object).where(s.notna(), None).tolist()  # type: ignore[no-any-return]
    if info.type == "float" or s.isna().any():
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        values: list[Any] = arr.tolist()
        bad = ~np.isfinite(arr)
        if bad.any():
            for i in np.flatnonzero(bad).tolist():
                values[i] = None
        if info.type == "int":
            values = [None if v is None else int(v) for v in values]
        return values
    return s.to_numpy(dtype=np.int64).tolist()  # type: ignore[no-any-return]


def sql_array(frame: pd.DataFrame, info: ColumnInfo) -> pa.Array:
    """:func:`sql_values` as an Arrow array (the same values; missing and non-finite -> null)."""
    return _flat(_sql_array(frame[info.name], frame, info))


def _sql_array(s: pd.Series, frame: pd.DataFrame, info: ColumnInfo) -> pa.Array:
    if info.type == "text":
        if pd.api.types.is_datetime64_any_dtype(s):
            return iso_times(s)
        if not pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s):
            return _text_array(s)
        return pa.array(s, pa.large_string(), from_pandas=True)
    if info.type == "bool":
        return pa.array(sql_values(frame, info), pa.bool_())
    if info.type == "float" or s.isna().any():
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(arr)
        if info.type == "int":
            return pa.array(np.where(bad, 0, arr).astype(np.int64), pa.int64(), mask=bad)
        return pa.array(arr, pa.float64(), mask=bad)
    return pa.array(s.to_numpy(dtype=np.int64), pa.int64())


def iso_times(s: pd.Series) -> pa.Array:
    """``s.dt.strftime("%Y-%m-%dT%H:%M:%SZ")`` as Arrow strings (null for NaT) without a
    Python call per value: the wall time in the column's zone floored to the second by numpy
    and written by ``numpy.datetime_as_string``, then the literal ``Z`` (pandas' strftime
    formats each value in Python: 10 s of a 1M-customer publication's 2 time columns).
    Years outside 1000-9999, where the two could differ in width, take pandas' path.
    """
    wall = s.dt.tz_localize(None) if s.dt.tz is not None else s
    secs = wall.to_numpy().astype("datetime64[s]")
    na = np.isnat(secs)
    years = secs[~na].astype("datetime64[Y]").astype(np.int64) + 1970
    if len(years) and (years.min() < 1000 or years.max() > 9999):
        return pa.array(s.dt.strftime("%Y-%m-%dT%H:%M:%SZ"), pa.large_string(),
                        from_pandas=True)
    n = len(secs)
    text = np.datetime_as_string(np.where(na, np.datetime64(0, "s"), secs), unit="s")
    data = np.empty((n, 20), np.uint8)
    data[:, :19] = text.astype("S19").view(np.uint8).reshape(n, 19)
    data[:, 19] = ord("Z")
    out = pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(np.arange(n + 1, dtype=np.int64) * 20), pa.py_buffer(data))
    if na.any():
        out = pc.if_else(pa.array(na), pa.scalar(None, pa.large_string()), out)
    return out


def python_values(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    """``col.to_pylist()`` (None for nulls), converted through numpy for numbers and booleans:
    Arrow builds a scalar per value first, several times the cost of ``ndarray.tolist()``
    (what SQLite's ``executemany`` binds is the same Python ints, floats and bools).
    """
    col = _flat(col)
    kind = col.type
    if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)
            or pa.types.is_boolean(kind)):
        return col.to_pylist()  # type: ignore[no-any-return]
    if col.null_count == 0:
        return col.to_numpy(zero_copy_only=False).tolist()  # type: ignore[no-any-return]
    values: list[Any] = col.fill_null(False if pa.types.is_boolean(kind) else 0).to_numpy(
        zero_copy_only=False).tolist()
    for i in np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False)).tolist():
        values[i] = None
    return values


COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
"""What a binary ``COPY`` stream starts with: signature, flags, no header extension."""
COPY_TRAILER = b"\xff\xff"
"""What a binary ``COPY`` stream ends with."""
COPY_TYPES = ("float8", "int8", "int4", "bool", "text", "bytea")
"""PostgreSQL types :func:`copy_binary` writes."""
_FIXED = {"float8": ">f8", "int8": ">i8", "int4": ">i4", "bool": "u1"}


def copy_binary(table: pa.Table, types: Sequence[str]) -> bytes:
    """The rows of ``table`` in PostgreSQL's binary ``COPY`` format (without the stream's
    signature and trailer), ``types[i]`` the PostgreSQL type of column i (:data:`COPY_TYPES`).

    Numbers go as their big-endian bytes and text and bytea as they are, so neither side
    formats or parses a value (the CSV form wrote every float as text for the server to parse
    back, and every blob as hex); the rows are assembled by one compiled pass.
    """
    n = table.num_rows
    k = table.num_columns
    starts = np.empty((n, k), np.int64)
    lengths = np.empty((n, k), np.int64)
    datas: list[np.ndarray] = []
    base = 0
    for c, (col, kind) in enumerate(zip(table.columns, types, strict=True)):
        arr = _flat(col)
        valid = (arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count
                 else np.ones(n, bool))
        if kind in _FIXED:
            width = np.dtype(_FIXED[kind]).itemsize
            if kind == "bool":
                values = arr.fill_null(False).to_numpy(zero_copy_only=False).astype("u1")
            else:
                values = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(_FIXED[kind])
            data = np.ascontiguousarray(values).view(np.uint8)
            starts[:, c] = np.arange(n, dtype=np.int64) * width + base
            lengths[:, c] = np.where(valid, width, -1)
        elif kind in ("text", "bytea"):
            wide = arr.cast(pa.large_string() if kind == "text" else pa.large_binary())
            offsets = np.frombuffer(wide.buffers()[1], np.int64, n + 1, wide.offset * 8)
            first, last = int(offsets[0]), int(offsets[-1])
            buf = wide.buffers()[2]
            data = (np.frombuffer(buf, np.uint8)[first:last] if buf is not None and last > first
                    else np.zeros(0, np.uint8))
            starts[:, c] = offsets[:-1] - first + base
            lengths[:, c] = np.where(valid, np.diff(offsets), -1)
        else:
            raise ValueError(f"no binary COPY encoder for type {kind!r}")
        datas.append(data)
        base += len(data)
    joined = np.concatenate(datas) if datas else np.zeros(0, np.uint8)
    return _copy_rows(starts, lengths, joined).tobytes()  # type: ignore[no-any-return]


@nb.njit(cache=True, nogil=True)
def _copy_rows(starts: np.ndarray, lengths: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Binary ``COPY`` tuples: per row the field count (int16), then per field its length
    (int32, -1: NULL) and bytes, all big-endian; field (i, c) is
    ``data[starts[i, c]:starts[i, c] + lengths[i, c]]`` (row-major: a row's fields are
    adjacent; bytes copied in a plain loop, fields being mostly 8 bytes).
    """
    n, k = starts.shape
    size = 0
    for i in range(n):
        size += 2 + 4 * k
        for c in range(k):
            if lengths[i, c] > 0:
                size += lengths[i, c]
    out = np.empty(size, np.uint8)
    o = 0
    for i in range(n):
        out[o] = (k >> 8) & 0xFF
        out[o + 1] = k & 0xFF
        o += 2
        for c in range(k):
            m = lengths[i, c]
            u = m & 0xFFFFFFFF
            out[o] = (u >> 24) & 0xFF
            out[o + 1] = (u >> 16) & 0xFF
            out[o + 2] = (u >> 8) & 0xFF
            out[o + 3] = u & 0xFF
            o += 4
            a = starts[i, c]
            for j in range(m):
                out[o + j] = data[a + j]
            if m > 0:
                o += m
    return out


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or v is pd.NaT or v is pd.NA


def json_values(s: pd.Series, kind: str) -> list[str]:
    """Each value of a column as JSON text: shortest round-trip floats, NaN/inf -> null,
    times as ISO 8601 (UTC). Numbers are encoded by orjson in one call per column.
    """
    if kind in ("float", "int", "bool") and not pd.api.types.is_object_dtype(s):
        if kind == "bool":
            flags = s.astype(object).where(s.notna(), None).tolist()
            return ["null" if v is None else ("true" if v else "false") for v in flags]
        if kind == "int" and not s.isna().any():
            arr = s.to_numpy(dtype=np.int64)
        else:
            arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        text = orjson.dumps(np.ascontiguousarray(arr), option=orjson.OPT_SERIALIZE_NUMPY)
        return text[1:-1].decode().split(",") if len(arr) else []
    if kind in ("float", "int"):
        return [json.dumps(_clean(v)) for v in s.tolist()]
    if kind == "bool":
        return ["null" if _missing(v) else ("true" if v else "false") for v in s.tolist()]
    if kind == "text":
        if pd.api.types.is_datetime64_any_dtype(s):
            text_s = s.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            return ["null" if pd.isna(v) else f'"{v}"' for v in text_s.tolist()]
        values = s.astype(object).where(s.notna(), None).tolist()
        return ["null" if v is None else orjson.dumps(str(v)).decode() for v in values]
    return [json.dumps(_clean(v), ensure_ascii=False, default=str) for v in s.tolist()]


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if _missing(v):
        return None
    return v


def json_objects(frame: pd.DataFrame, kinds: dict[str, str]) -> list[str]:
    """One JSON object per row of ``frame`` (columns serialised by kind)."""
    n = len(frame)
    if frame.shape[1] == 0:
        return ["{}"] * n
    cols = [json_values(frame[c], kinds.get(c, "json")) for c in frame.columns]
    template = "{{" + ",".join(
        json.dumps(str(c)).replace("{", "{{").replace("}", "}}") + ":{}" for c in frame.columns
    ) + "}}"
    fmt = template.format
    return [fmt(*row) for row in zip(*cols, strict=True)]


# ---------------------------------------------------------------------------- vectorised JSON
# The same JSON text as json_values/json_objects, built column-wise in Arrow: numbers are
# encoded by orjson in one call per column and cut at the commas with numpy, strings escaped
# with Arrow's string kernels, and the documents joined element-wise in C. Only columns of
# Python objects (lists, dicts, mixed values) still go value by value.
_CONTROL = "[\\x00-\\x1f]"


def _split_numbers(text: bytes, n: int) -> pa.Array:
    """Orjson's ``[a,b,...]`` as an Arrow string array of its n elements (no copy per value)."""
    body = np.frombuffer(text, np.uint8)[1:-1]
    if n == 0:
        return pa.array([], pa.large_string())
    is_comma = body == 44
    commas = np.flatnonzero(is_comma)
    data = body[~is_comma]
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    offsets[1:-1] = commas - np.arange(len(commas))
    offsets[-1] = len(data)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _quoted(values: pa.Array, encode: Any = None) -> pa.Array:
    """JSON string literals of an Arrow string array, ``null`` for nulls (rows with control
    characters are encoded one by one by ``encode``, orjson's by default).
    """
    encode = encode or (lambda v: orjson.dumps(v).decode())
    values = _flat(values).cast(pa.large_string())
    # which escapes the text can need, from one look at its bytes (ids and labels need none)
    has = _byte_classes(values)
    text = values
    if has["backslash"]:
        text = pc.replace_substring(text, "\\", "\\\\")
    if has["quote"]:
        text = pc.replace_substring(text, '"', '\\"')
    out = _join(['"', text, '"'], len(values))
    control = (pc.fill_null(pc.match_substring_regex(values, _CONTROL), False)
               if has["control"] else None)
    if control is not None and pc.any(control).as_py():
        fixed = [encode(v) if c else q
                 for v, c, q in zip(values.to_pylist(), control.to_pylist(), out.to_pylist(),
                                    strict=True)]
        out = pa.array(fixed, pa.large_string())
    return pc.fill_null(out, "null")


def _byte_classes(values: pa.Array) -> dict[str, bool]:
    """Whether the bytes of a string array hold a backslash, a double quote or a control
    character (any slot, null ones included: a false alarm only takes the slower path).
    """
    offsets, data = values.buffers()[1], values.buffers()[2]
    if data is None or len(values) == 0:
        return {"backslash": False, "quote": False, "control": False}
    ends = np.frombuffer(offsets, np.int64, len(values) + 1, values.offset * 8)
    raw = np.frombuffer(data, np.uint8)[int(ends[0]):int(ends[-1])]
    return {"backslash": bool((raw == 92).any()), "quote": bool((raw == 34).any()),
            "control": bool((raw < 32).any())}


def json_array(s: pd.Series, kind: str) -> pa.Array:
    """:func:`json_values` as an Arrow large-string array (same text, built column-wise)."""
    n = len(s)
    obj = pd.api.types.is_object_dtype(s)
    if kind in ("float", "int") and not obj:
        if kind == "int" and not s.isna().any():
            arr = s.to_numpy(dtype=np.int64)
        else:
            arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        text = orjson.dumps(np.ascontiguousarray(arr), option=orjson.OPT_SERIALIZE_NUMPY)
        return _split_numbers(text, n)
    if kind == "bool" and not obj:
        na = s.isna().to_numpy()
        flags = s.astype(object).where(~na, False).astype(bool).to_numpy()
        return pa.array(np.where(na, "null", np.where(flags, "true", "false")),
                        pa.large_string())
    if kind == "text" and pd.api.types.is_datetime64_any_dtype(s):
        return pc.fill_null(_join(['"', iso_times(s), '"'], n), "null")
    strings = _string_values(s, kind)
    if strings is not None:
        return _quoted(*strings)
    return pa.array(json_values(s, kind), pa.large_string())


def _string_values(s: pd.Series, kind: str) -> tuple[pa.Array, Any] | None:
    """The strings of a text column (``str`` of each value) or of a JSON column holding only
    strings, with the encoder of its rows that hold control characters (None: the column is
    neither; times are not handled here).
    """
    if kind == "text" and not pd.api.types.is_datetime64_any_dtype(s):
        return _text_array(s), None
    if kind == "json":  # e.g. an extra table's customer ids: strings, escaped as json.dumps
        strings = _only_strings(s)
        if strings is not None:
            return strings, lambda v: json.dumps(v, ensure_ascii=False)
    return None


def _bare_strings(s: pd.Series, kind: str) -> tuple[pa.Array | None, Any]:
    """``(strings, None)`` when every JSON value of the column is its string in plain quotes
    (text or JSON strings, times included, with no null and nothing to escape), so that a
    record can take the quotes into its literal pieces; else ``(None, what json_array needs
    to finish the column)``.
    """
    if kind == "text" and pd.api.types.is_datetime64_any_dtype(s):
        stamps = iso_times(s)
        return (stamps, None) if stamps.null_count == 0 else (None, None)
    strings = _string_values(s, kind)
    if strings is None:
        return None, None
    values = _flat(strings[0]).cast(pa.large_string())
    if values.null_count == 0 and not any(_byte_classes(values).values()):
        return values, None
    return None, (values, strings[1])


def _only_strings(s: pd.Series) -> pa.Array | None:
    """The column as Arrow strings when every value is a string or missing, else None."""
    if pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s):
        return _flat(pa.array(s, pa.large_string(), from_pandas=True))
    if not pd.api.types.is_object_dtype(s):
        return None
    present = s.dropna()
    if not all(isinstance(v, str) for v in present.tolist()):
        return None
    return _flat(pa.array(s.where(s.notna(), None), pa.large_string(), from_pandas=True))


def _text_array(s: pd.Series) -> pa.Array:
    """``str(v)`` of every value as Arrow strings (nulls for missing values)."""
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s):
        if pd.api.types.is_bool_dtype(s):
            return pa.array(s.astype(object).where(s.notna(), None).map(
                lambda v: None if v is None else str(v)), pa.large_string(), from_pandas=True)
        return pc.cast(pa.array(s, from_pandas=True), pa.large_string())
    if pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s):
        return pa.array(s, pa.large_string(), from_pandas=True)
    try:
        return pa.array(s.where(s.notna(), None), pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        values = s.astype(object).where(s.notna(), None).tolist()
        return pa.array([None if v is None else str(v) for v in values], pa.large_string())


def _object_parts(frame: pd.DataFrame, kinds: dict[str, str]) -> list[Any]:
    """Pieces of ``{"a":..,"b":..}`` for an element-wise join (literals and columns)."""
    parts: list[Any] = []
    for i, c in enumerate(frame.columns):
        key = ("{" if i == 0 else ",") + json.dumps(str(c)) + ":"
        kind = kinds.get(c, "json")
        bare, strings = _bare_strings(frame[c], kind)
        if bare is not None:  # the quotes join the literals: one column piece, not three
            parts += [key + '"', bare, '"']
        else:
            parts += [key, _quoted(*strings) if strings is not None
                      else json_array(frame[c], kind)]
    parts.append("}" if len(frame.columns) else "{}")
    return parts


def _flat(values: Any) -> pa.Array:
    """One Arrow array (pandas' Arrow-backed columns convert to chunked arrays)."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _join(parts: list[Any], n: int) -> pa.Array:
    """Element-wise concatenation of literals and columns into n strings."""
    merged: list[Any] = []
    for p in parts:  # adjacent literals as one piece
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p if isinstance(p, str) else _flat(p))
    parts = merged
    if not any(isinstance(p, pa.Array) for p in parts):
        return pa.array(["".join(parts)] * n, pa.large_string())
    pieces = [pa.scalar(p, pa.large_string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*pieces, pa.scalar("", pa.large_string()))


def json_object_array(frame: pd.DataFrame, kinds: dict[str, str]) -> pa.Array:
    """:func:`json_objects` as an Arrow large-string array (same text)."""
    return _join(_object_parts(frame, kinds), len(frame))


def _records(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    for row in frame.to_dict(orient="records"):
        yield {str(k): _clean(v) for k, v in row.items()}


def percentiles(frame: pd.DataFrame, catalogue: list[ColumnInfo]) -> pd.DataFrame:
    """Percentile rank (0-100, ties averaged, 2 decimals) of every numeric score column."""
    cols = [c.name for c in catalogue if c.type in ("int", "float") and c.name not in CATEGORICAL]
    if not cols:
        return pd.DataFrame(index=frame.index)

    def one(name: str) -> np.ndarray:
        return np.round(_pct_rank(frame[name].to_numpy(dtype=np.float64, na_value=np.nan))
                        * 100.0, 2)

    # numpy sorts without the GIL: the columns' sorts share the cores (40 sorts of 1M values
    # are most of a 1M-customer publication's percentiles)
    with ThreadPoolExecutor(max_workers=max(1, min(len(cols), os.cpu_count() or 1, 4))) as pool:
        out = dict(zip(cols, pool.map(one, cols), strict=True))
    return pd.DataFrame(out, index=frame.index)


def _pct_rank(a: np.ndarray) -> np.ndarray:
    """Percentile rank as pandas' ``rank(pct=True, method="average")`` (NaN kept, ties
    averaged), with one sort: the same floats (a tie group's mean rank is a half-integer).
    """
    out = np.full(len(a), np.nan)
    missing = np.isnan(a)
    if not missing.any():  # the usual case: no index of the valid values to build
        m = len(a)
        order = np.argsort(a)  # any order within ties: a tie group shares its rank
    else:
        valid = np.flatnonzero(~missing)
        m = len(valid)
        if m == 0:
            return out
        order = valid[np.argsort(a[valid])]
    ranked = a[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], m]  # exclusive: a group holds ranks starts+1 .. ends
    mean_rank = (starts + 1 + ends) / 2.0
    out[order] = np.repeat(mean_rank, ends - starts) / m
    return out


def customer_documents(frame: pd.DataFrame, catalogue: list[ColumnInfo],
                       pct: pd.DataFrame) -> pa.Array:
    """The JSON document of every customer of ``frame`` (a slice of the run's table, with
    ``pct`` its percentile ranks), without the run id (added at read time), as Arrow strings:
    ``{<top>,"scores":{..},"percentiles":{..},"attributes":{..}}``.
    """
    kinds = {c.name: c.type for c in catalogue}
    kinds["customer_id"] = "text"
    top = frame[["customer_id"] + [c.name for c in catalogue if c.role == "top"]]
    scores = frame[[c.name for c in catalogue if c.role == "score"]]
    attrs = frame[[c.name for c in catalogue if c.role == "attribute"]]
    parts = _object_parts(top, kinds)[:-1]
    for label, part, part_kinds in (("scores", scores, kinds),
                                    ("percentiles", pct, dict.fromkeys(pct.columns, "float")),
                                    ("attributes", attrs, kinds)):
        parts.append(f',"{label}":')
        parts.extend(_object_parts(part, part_kinds))
    parts.append("}")
    return _join(parts, len(frame))


# ---------------------------------------------------------------------------- documents at read
# A published run stores no customer document: each column has a "document form" saying how
# the document writes it from the stored row. Text comes from the typed SQL column (the same
# string); numbers and booleans from one packed blob a row (float64/int64/int8: exact, -0.0
# and NaN included; orjson writes a Python float as it writes a numpy float64), which a point
# read decodes with one struct.unpack instead of one fetched column each (the typed columns
# stay, for sorting, filtering and the views' frames); percentile ranks are two-decimal numbers
# 0-100, stored as uint16 hundredths (one blob a row). What no stored value gives back byte
# for byte (Python objects, lists, JSON-only columns) keeps its JSON text in ``doc_extra``.
DOC_FORMS = ("float", "int", "bool", "text", "stored")
"""How a document writes a column: a packed float, int or boolean, the typed text column, or
the JSON text stored in ``doc_extra``."""
PCT_MISSING = 0xFFFF
"""Stored percentile code of a missing value (NaN score)."""
EXTRA_SEP = "\x1f"
"""Separates the stored JSON texts in ``doc_extra`` (a control character JSON text never holds
unescaped)."""


def with_document_forms(frame: pd.DataFrame, catalogue: list[ColumnInfo]) -> list[ColumnInfo]:
    """The catalogue with each column's document form (:data:`DOC_FORMS`) for ``frame``."""
    return [replace(c, doc=_doc_form(frame[c.name], c)) for c in catalogue]


def _doc_form(s: pd.Series, info: ColumnInfo) -> str:
    if info.sql is None or info.type == "json":
        return "stored"
    if pd.api.types.is_object_dtype(s) and info.type != "text":
        return "stored"  # json_values encodes these value by value (json.dumps)
    if info.type == "bool":
        return "bool"
    if info.type == "text":
        return "text"
    if info.type == "int" and not s.isna().any():
        return "int"
    return "float"


def percentile_columns(columns: Sequence[dict[str, Any]]) -> list[str]:
    """Names of the columns with percentile ranks, in catalogue order (as :func:`percentiles`)."""
    return [c["name"] for c in columns
            if c["type"] in ("int", "float") and c["name"] not in CATEGORICAL]


def percentile_blobs(pct: pd.DataFrame) -> pa.Array:
    """Each row's percentile ranks as little-endian uint16 hundredths (:data:`PCT_MISSING` for
    NaN), one binary value per row; null when the run has no percentile column.

    :func:`percentiles` rounds to two decimals (``rint(x * 100) / 100``), so ``code / 100``
    gives back the same float.
    """
    n, p = pct.shape
    if p == 0:
        return pa.nulls(n, pa.binary())
    vals = pct.to_numpy(dtype=np.float64, na_value=np.nan)
    codes = np.where(np.isnan(vals), PCT_MISSING, np.rint(vals * 100.0)).astype("<u2")
    offsets = (np.arange(n + 1, dtype=np.int32) * (2 * p)).astype(np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(np.ascontiguousarray(codes))])


def stored_fragments(frame: pd.DataFrame, catalogue: list[ColumnInfo]) -> pa.Array:
    """``doc_extra`` of each row: the JSON text of its "stored" columns joined by
    :data:`EXTRA_SEP` (null when the run has none).
    """
    names = [c["name"] for c in document_order([c.to_dict() for c in catalogue])
             if c.get("doc") == "stored"]
    if not names:
        return pa.nulls(len(frame), pa.large_string())
    kinds = {c.name: c.type for c in catalogue}
    parts: list[Any] = []
    for i, name in enumerate(names):
        if i:
            parts.append(EXTRA_SEP)
        parts.append(json_array(frame[name], kinds[name]))
    return _join(parts, len(frame))


def document_order(columns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Catalogue entries in the order a customer document writes them: top-level fields,
    scores, attributes (the percentiles come between scores and attributes).
    """
    rank = {"top": 0, "score": 1, "attribute": 2}
    return sorted(columns, key=lambda c: rank[c["role"]])


_NUM_CODES = {"float": "d", "int": "q", "bool": "b"}
_BOOLS = (False, True, None)  # stored bool codes 0, 1, -1 (missing)


def value_blobs(frame: pd.DataFrame, catalogue: list[ColumnInfo]) -> pa.Array:
    """Each row's numbers and booleans in document order, packed (little-endian float64 for
    "float" columns, NaN for missing; int64 for "int"; int8 0/1/-1 for "bool"): a point read
    decodes them with one ``struct.unpack`` instead of fetching one typed column each.
    """
    cols = [c for c in document_order([c.to_dict() for c in catalogue])
            if c.get("doc") in _NUM_CODES]
    n = len(frame)
    if not cols:
        return pa.nulls(n, pa.binary())
    dtype = np.dtype([(f"v{i}", "<" + {"d": "f8", "q": "i8", "b": "i1"}[_NUM_CODES[c["doc"]]])
                      for i, c in enumerate(cols)])
    packed = np.empty(n, dtype)
    for i, c in enumerate(cols):
        s = frame[c["name"]]
        if c["doc"] == "float":
            packed[f"v{i}"] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        elif c["doc"] == "int":
            packed[f"v{i}"] = s.to_numpy(dtype=np.int64)
        else:
            na = s.isna().to_numpy()
            flags = s.astype(object).where(~na, False).astype(bool).to_numpy()
            packed[f"v{i}"] = np.where(na, -1, flags.astype(np.int8))
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(dtype.itemsize)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(packed.tobytes())])


class DocumentBuilder:
    """Rebuilds customer documents from stored rows: select :attr:`fields`, pass each row to
    :meth:`build`. The text equals :func:`customer_documents`' for the same customer.

    A row gives the id, the text columns, the numbers and booleans packed in one blob
    (:func:`value_blobs`), the percentiles packed in another (:func:`percentile_blobs`) and
    the stored JSON texts (:func:`stored_fragments`). One ``orjson.dumps`` of the document as
    nested dicts (orjson writes floats, ints, booleans and strings as the publisher's
    encoders do; stored texts go in as ``orjson.Fragment``); where orjson would write a key
    differently from ``json.dumps`` (non-ASCII or escaped column names), one ``str.format``
    of a template made from the run's column catalogue, fed with the text of each value.
    """

    def __init__(self, columns: Sequence[dict[str, Any]]) -> None:
        ordered = document_order(columns)
        texts = [c for c in ordered if c.get("doc") == "text"]
        nums = [c for c in ordered if c.get("doc") in _NUM_CODES]
        stored = [c for c in ordered if (c.get("doc") or "stored") == "stored"]
        self.fields: list[str] = ["customer_id", *[c["sql"] for c in texts], "vals", "pct",
                                  "doc_extra"]
        self.pct_names = percentile_columns(columns)
        self._n_text, self._n_num, self._n_pct = len(texts), len(nums), len(self.pct_names)
        self._stored = len(stored)
        self._vals = struct.Struct("<" + "".join(_NUM_CODES[c["doc"]] for c in nums))
        self._bool_at = [1 + self._n_text + k for k, c in enumerate(nums) if c["doc"] == "bool"]
        self._pct = struct.Struct(f"<{self._n_pct}H")
        # the values list a build makes: id, texts, numbers, percentiles, stored texts
        first_num = 1 + self._n_text
        first_pct = first_num + self._n_num
        first_stored = first_pct + self._n_pct
        at: dict[str, int] = {}
        for k, c in enumerate(texts):
            at[c["name"]] = 1 + k
        for k, c in enumerate(nums):
            at[c["name"]] = first_num + k
        for k, c in enumerate(stored):
            at[c["name"]] = first_stored + k
        by_role: dict[str, list[dict[str, Any]]] = {"top": [], "score": [], "attribute": []}
        for c in ordered:
            by_role[c["role"]].append(c)
        sections = [([str(c["name"]) for c in by_role[r]], [at[c["name"]] for c in by_role[r]])
                    for r in ("top", "score", "attribute")]
        sections.insert(2, ([str(n) for n in self.pct_names],
                            list(range(first_pct, first_stored))))
        self._sections = [(keys, _getter(idx)) for keys, idx in sections]
        names = ["customer_id", *[c["name"] for c in columns], *self.pct_names]
        self._plain = all(orjson.dumps(str(k)).decode() == json.dumps(str(k)) for k in names)
        # the template path: every value's text, numbers in one orjson call cut at the commas
        self._first_num, self._first_pct = first_num, first_pct

        def obj(keys: list[str], idx: list[int]) -> str:
            return "{{" + ",".join(_key(k) + ":{" + str(i) + "}"
                                   for k, i in zip(keys, idx, strict=True)) + "}}"

        (tk, ti), (sk, si), (pk, pi), (ak, ai) = sections
        top = ",".join([_key("customer_id") + ":{0}",
                        *[_key(k) + ":{" + str(i) + "}" for k, i in zip(tk, ti, strict=True)]])
        self._template = ("{{" + top + ',"scores":' + obj(sk, si) + ',"percentiles":'
                          + obj(pk, pi) + ',"attributes":' + obj(ak, ai) + "}}")

    def _values(self, row: Sequence[Any]) -> list[Any]:
        """id, texts, numbers, percentiles, stored texts (as str) of one row."""
        values = list(row[:1 + self._n_text])
        vals, pct, extra = row[-3], row[-2], row[-1]
        if self._n_num:
            values += self._vals.unpack(vals)
            for i in self._bool_at:
                values[i] = _BOOLS[values[i]]
        if self._n_pct:
            values += (map(_pct_floats().__getitem__, self._pct.unpack(pct))
                       if pct is not None else [None] * self._n_pct)
        if self._stored:
            values += extra.split(EXTRA_SEP)
        return values

    def build(self, row: Sequence[Any]) -> str:
        """The document of one stored row (values in :attr:`fields` order)."""
        values = self._values(row)
        if self._plain:
            return self._build_dicts(values)
        return self._build_text(values)

    def _build_dicts(self, values: list[Any]) -> str:
        if self._stored:
            first = len(values) - self._stored
            values[first:] = map(orjson.Fragment, values[first:])
        (tk, tg), (sk, sg), (pk, pg), (ak, ag) = self._sections
        doc = {"customer_id": values[0], **dict(zip(tk, tg(values), strict=True)),
               "scores": dict(zip(sk, sg(values), strict=True)),
               "percentiles": dict(zip(pk, pg(values), strict=True)),
               "attributes": dict(zip(ak, ag(values), strict=True))}
        return orjson.dumps(doc).decode()

    def _build_text(self, values: list[Any]) -> str:
        dumps = orjson.dumps
        first_stored = self._first_pct + self._n_pct
        numbers = values[self._first_num:first_stored]
        args = [dumps(v).decode() for v in values[:self._first_num]]
        args += dumps(numbers)[1:-1].decode().split(",") if numbers else []
        args += values[first_stored:]
        return self._template.format(*args)


_PCT_TEXTS: list[str] = []
_PCT_FLOATS: list[float | None] = []


def _pct_floats() -> list[float | None]:
    """The percentile of every stored code (``code / 100``; None for missing)."""
    if not _PCT_FLOATS:
        values: list[float | None] = [None] * (PCT_MISSING + 1)
        values[:10_001] = (np.arange(10_001) / 100).tolist()
        _PCT_FLOATS.extend(values)
    return _PCT_FLOATS


def _getter(idx: list[int]) -> Any:
    """``values -> tuple of values[i] for i in idx`` (C-speed ``itemgetter``, any length)."""
    if not idx:
        return lambda values: ()
    if len(idx) == 1:
        i = idx[0]
        return lambda values: (values[i],)
    return operator.itemgetter(*idx)


def _pct_texts() -> list[str]:
    """JSON text of every stored percentile code (``code / 100``; ``null`` for missing): the
    rebuild maps codes to text without a float or an encoder call per value.
    """
    if not _PCT_TEXTS:
        texts = ["null"] * (PCT_MISSING + 1)
        codes = np.arange(10_001)
        texts[:10_001] = orjson.dumps((codes / 100).tolist())[1:-1].decode().split(",")
        _PCT_TEXTS.extend(texts)
    return _PCT_TEXTS


def _key(name: str) -> str:
    """A JSON object key as the publisher writes it (``json.dumps``), braces escaped for
    ``str.format``.
    """
    return json.dumps(str(name)).replace("{", "{{").replace("}", "}}")


# ---------------------------------------------------------------------------- ties
def pack_ties(targets: np.ndarray, weights: np.ndarray, counts: np.ndarray,
              channels: np.ndarray) -> bytes:
    """One customer's ties as bytes: n, int32 targets, float64 weights, uint32 counts,
    uint16 channel masks (little-endian).
    """
    return b"".join((
        _TIE_HEADER.pack(len(targets)),
        np.ascontiguousarray(targets, "<i4").tobytes(),
        np.ascontiguousarray(weights, "<f8").tobytes(),
        np.ascontiguousarray(counts, "<u4").tobytes(),
        np.ascontiguousarray(channels, "<u2").tobytes(),
    ))


def unpack_ties(blob: bytes | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_ties`."""
    if not blob:
        z = np.zeros(0)
        return z.astype("<i4"), z.astype("<f8"), z.astype("<u4"), z.astype("<u2")
    (n,) = _TIE_HEADER.unpack_from(blob)
    o = _TIE_HEADER.size
    t = np.frombuffer(blob, "<i4", n, o)
    o += 4 * n
    w = np.frombuffer(blob, "<f8", n, o)
    o += 8 * n
    c = np.frombuffer(blob, "<u4", n, o)
    o += 4 * n
    ch = np.frombuffer(blob, "<u2", n, o)
    return t, w, c, ch


@nb.njit(cache=True, nogil=True)
def _pack_rows_kernel(indptr: np.ndarray, targets: np.ndarray, weights: np.ndarray,
                      counts: np.ndarray, channels: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Every row's :func:`pack_ties` bytes, back to back (rows without ties take none), and
    the offsets of each row in them. The arrays are the CSR columns as little-endian bytes.
    """
    n = len(indptr) - 1
    offsets = np.zeros(n + 1, np.int64)
    for i in range(n):
        d = indptr[i + 1] - indptr[i]
        offsets[i + 1] = offsets[i] + (4 + 18 * d if d > 0 else 0)
    data = np.empty(offsets[n], np.uint8)
    for i in range(n):
        a = indptr[i]
        d = indptr[i + 1] - a
        if d == 0:
            continue
        o = offsets[i]
        data[o] = d & 0xFF
        data[o + 1] = (d >> 8) & 0xFF
        data[o + 2] = (d >> 16) & 0xFF
        data[o + 3] = (d >> 24) & 0xFF
        o += 4
        data[o:o + 4 * d] = targets[4 * a:4 * (a + d)]
        o += 4 * d
        data[o:o + 8 * d] = weights[8 * a:8 * (a + d)]
        o += 8 * d
        data[o:o + 4 * d] = counts[4 * a:4 * (a + d)]
        o += 4 * d
        data[o:o + 2 * d] = channels[2 * a:2 * (a + d)]
    return offsets, data


def _packed_rows(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray,
                 counts: np.ndarray, channels: np.ndarray) -> pa.Array:
    """:func:`pack_ties` of every CSR row as one Arrow binary array (null: no ties), packed
    by one compiled pass over the edge arrays instead of a Python loop per customer.
    """
    def raw(a: np.ndarray, dtype: str) -> np.ndarray:
        return np.ascontiguousarray(a, dtype).view(np.uint8)

    offsets, data = _pack_rows_kernel(np.asarray(indptr, np.int64), raw(indices, "<i4"),
                                      raw(weights, "<f8"), raw(counts, "<u4"),
                                      raw(channels, "<u2"))
    has = np.diff(indptr) > 0
    validity = None if has.all() else pa.py_buffer(np.packbits(has, bitorder="little"))
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(has), [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
        null_count=int(len(has) - has.sum()))


def tie_rows(graph: CustomerGraph) -> tuple[pa.Array, pa.Array | None]:
    """Packed out-ties and (directed graphs only) in-ties of every customer position, as Arrow
    binary arrays aligned to positions (null where a customer has no such ties).
    """
    out = _packed_rows(graph.indptr, graph.indices, graph.weights, graph.counts, graph.channels)
    if not graph.directed:
        return out, None
    tr = graph.transpose()
    inn = _packed_rows(tr.indptr, tr.indices, tr.weights, tr.counts, tr.channels)
    return out, inn


# ---------------------------------------------------------------------------- tables
BLOCK_ROWS = 1000
"""Extra-table records per stored row (see :meth:`carenet.store.publish.Publisher._load_rows`)."""


def join_blocks(docs: pa.Array, size: int, keys: pa.Array) -> pa.Array:
    """Consecutive runs of ``size`` JSON records joined by newlines (which JSON text never
    holds unescaped), one string per block, each after a first line ``keys[block]`` (the JSON
    list of its rows' keys, or ``null``).
    """
    docs = _flat(docs).cast(pa.large_string())
    n = len(docs)
    offsets = np.r_[np.arange(0, n, size, dtype=np.int64), n].astype(np.int64)
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), docs)
    body = pc.binary_join(lists, pa.scalar("\n", pa.large_string()))
    return _join([keys, "\n", body], len(body))


def split_block(block: str) -> tuple[list[str | None] | None, list[str]]:
    """The row keys (None: the table has no key column) and the records of one stored block
    (inverse of :func:`join_blocks`).
    """
    head, _, body = block.partition("\n")
    return orjson.loads(head), body.split("\n")


def table_records(frame: pd.DataFrame) -> pa.Array:
    """JSON records of an extra table's rows, in stored order (Arrow strings)."""
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    kinds = {c.name: c.type for c in column_catalogue(frame)}
    return json_object_array(frame, kinds)


def key_column(name: str, frame: pd.DataFrame) -> str | None:
    """The column that identifies a row of extra table ``name`` (for look-ups by key)."""
    candidates = {"communities": ("community", "community_id", "id"),
                  "care_plan": ("customer_id", "customer")}.get(name, ("id", "customer_id"))
    return next((c for c in candidates if c in frame.columns), None)


def community_documents(
    run_customers: pd.DataFrame, table: pd.DataFrame | None, graph: CustomerGraph,
    *, top: int = 10, links: int = 10,
) -> list[tuple[str, str]]:
    """(community id, JSON summary) of every community, largest first: the run's
    communities table row if it has one, plus size, top customers and the strongest links to
    other communities (total tie weight between them).
    """
    if "community" not in run_customers.columns:
        return []
    keys = run_customers["community"].astype("string")
    valid = keys.notna().to_numpy()
    codes, uniques = pd.factorize(keys.fillna("").to_numpy())
    codes = np.where(valid, codes, -1)
    k = len(uniques)
    sizes = np.bincount(codes[valid], minlength=k)
    sort_key = next((c for c in RANK_PREFERENCE if c in run_customers.columns), None)
    # top customers: one stable sort by (community, -score), then the first `top` of each
    score = (run_customers[sort_key].astype("float64").to_numpy() if sort_key
             else np.zeros(len(codes)))
    order = np.lexsort((-np.nan_to_num(score, nan=-np.inf), codes))
    order = order[codes[order] >= 0]
    starts = np.searchsorted(codes[order], np.arange(k))
    rank_in = np.arange(len(order)) - starts[codes[order]]
    chosen = order[rank_in < top]
    ids = run_customers["customer_id"].to_numpy()
    tops: dict[int, list[dict[str, Any]]] = {}
    for i in chosen.tolist():
        item: dict[str, Any] = {"customer_id": str(ids[i])}
        if sort_key:
            item[sort_key] = _num(score[i])
        tops.setdefault(int(codes[i]), []).append(item)
    # links: tie weight between communities, strongest first
    src = codes[graph.sources()]
    dst = codes[graph.indices]
    ok = (src != dst) & (src >= 0) & (dst >= 0)
    pair = src[ok].astype(np.int64) * k + dst[ok]
    upair, inv = np.unique(pair, return_inverse=True)
    wsum = np.bincount(inv, weights=graph.weights[ok], minlength=len(upair))
    cnt = np.bincount(inv, minlength=len(upair))
    a = upair // max(k, 1)
    lorder = np.lexsort((-wsum, a))
    lstarts = np.searchsorted(a[lorder], np.arange(k))
    lrank = np.arange(len(lorder)) - lstarts[a[lorder]]
    link_lists: dict[int, list[dict[str, Any]]] = {}
    for j in lorder[lrank < links].tolist():
        link_lists.setdefault(int(a[j]), []).append(
            {"community": str(uniques[int(upair[j] % k)]), "weight": float(wsum[j]),
             "ties": int(cnt[j])})
    base: dict[str, dict[str, Any]] = {}
    if table is not None and len(table):
        kc = key_column("communities", table)
        if kc is not None:
            for rec in _records(table):
                base[str(rec[kc])] = _native(rec)
    docs = []
    for code in np.argsort(-sizes, kind="stable").tolist():
        key = str(uniques[code])
        doc = {"community": key, **{f: v for f, v in base.get(key, {}).items()
                                    if f not in ("community", "community_id")}}
        doc.setdefault("size", int(sizes[code]))
        doc["top_customers"] = tops.get(code, [])
        doc["ranked_by"] = sort_key
        doc["links"] = link_lists.get(code, [])
        docs.append((key, json.dumps(doc, allow_nan=False, default=str)))
    return docs


def _num(v: Any) -> float | None:
    f = float(v)
    return f if np.isfinite(f) else None


def _native(rec: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in rec.items():
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not np.isfinite(v):
            v = None
        out[str(k)] = v
    return out
