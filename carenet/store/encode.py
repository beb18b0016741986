"""Column-wise encoders of the bulk load: what :mod:`carenet.store.publish` writes.

Values are encoded a column at a time, never a Python call per value where it can be avoided
(a 1M-customer run has ~56M values): ISO times by numpy, SQLite's bound values through
``ndarray.tolist``, PostgreSQL's binary ``COPY`` tuples assembled by one compiled pass, and
JSON text built column by column in Arrow (:func:`json_array`, :func:`json_object_array`),
with the row-by-row versions (:func:`json_values`, :func:`json_objects`) kept as their
reference. See benchmarks/README.md, "publish.py".
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numba as nb
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def iso_times(s: pd.Series) -> pa.Array:
    """``s.dt.strftime("%Y-%m-%dT%H:%M:%SZ")`` as Arrow strings (null for NaT) without a
    Python call per value: the wall time in the column's zone floored to the second by numpy
    and written by :func:`iso_digits` (pandas' strftime
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
    data = iso_digits(np.where(na, 0, secs.astype(np.int64)))
    out = pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(np.arange(n + 1, dtype=np.int64) * 20), pa.py_buffer(data))
    if na.any():
        out = pc.if_else(pa.array(na), pa.scalar(None, pa.large_string()), out)
    return out


@nb.njit(cache=True, nogil=True)
def iso_digits(secs: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DDTHH:MM:SSZ`` of each ``secs`` (int64 seconds since 1970, years
    1000-9999) as an ``(n, 20)`` uint8 matrix: the proleptic Gregorian date by H. Hinnant's
    ``civil_from_days``, digits written in one compiled pass (the same text as
    ``numpy.datetime_as_string``, which took 0.45 s per million values).
    """
    n = len(secs)
    out = np.empty((n, 20), np.uint8)
    for i in range(n):
        days = secs[i] // 86_400
        rem = secs[i] - days * 86_400
        z = days + 719_468
        era = z // 146_097
        doe = z - era * 146_097
        yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
        doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
        mp = (5 * doy + 2) // 153
        day = doy - (153 * mp + 2) // 5 + 1
        month = mp + 3 if mp < 10 else mp - 9
        year = yoe + era * 400 + (1 if month <= 2 else 0)
        hour = rem // 3_600
        minute = rem // 60 % 60
        second = rem % 60
        row = out[i]
        for k in range(4):
            row[3 - k] = 48 + year % 10
            year //= 10
        row[5], row[6] = 48 + month // 10, 48 + month % 10
        row[8], row[9] = 48 + day // 10, 48 + day % 10
        row[11], row[12] = 48 + hour // 10, 48 + hour % 10
        row[14], row[15] = 48 + minute // 10, 48 + minute % 10
        row[17], row[18] = 48 + second // 10, 48 + second % 10
        row[4], row[7], row[10], row[13], row[16], row[19] = 45, 45, 84, 58, 58, 90  # - - T : : Z
    return out


def python_values(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    """``col.to_pylist()`` (None for nulls), converted through numpy for numbers and booleans:
    Arrow builds a scalar per value first, several times the cost of ``ndarray.tolist()``
    (what SQLite's ``executemany`` binds is the same Python ints, floats and bools).
    """
    col = flat(col)
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
        arr = flat(col)
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
            offsets, whole = large_buffers(wide)
            first, last = int(offsets[0]), int(offsets[-1])
            data = whole[first:last]
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


def is_missing(v: Any) -> bool:
    """Whether a value is missing (None, NaN, NaT or NA): written as JSON ``null``."""
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
        return ["null" if is_missing(v) else ("true" if v else "false") for v in s.tolist()]
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
    if is_missing(v):
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
    values = flat(values).cast(pa.large_string())
    # which escapes the text can need, from one look at its bytes (ids and labels need none)
    has = _byte_classes(values)
    text = values
    if has["backslash"]:
        text = pc.replace_substring(text, "\\", "\\\\")
    if has["quote"]:
        text = pc.replace_substring(text, '"', '\\"')
    out = join_parts(['"', text, '"'], len(values))
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
    ends, data = large_buffers(values)
    raw = data[int(ends[0]):int(ends[-1])]
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
        return pc.fill_null(join_parts(['"', iso_times(s), '"'], n), "null")
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
        return text_array(s), None
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
    values = flat(strings[0]).cast(pa.large_string())
    if values.null_count == 0 and not any(_byte_classes(values).values()):
        return values, None
    return None, (values, strings[1])


def _only_strings(s: pd.Series) -> pa.Array | None:
    """The column as Arrow strings when every value is a string or missing, else None."""
    if pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s):
        return flat(pa.array(s, pa.large_string(), from_pandas=True))
    if not pd.api.types.is_object_dtype(s):
        return None
    present = s.dropna()
    if not all(isinstance(v, str) for v in present.tolist()):
        return None
    return flat(pa.array(s.where(s.notna(), None), pa.large_string(), from_pandas=True))


def text_array(s: pd.Series) -> pa.Array:
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


def object_parts(frame: pd.DataFrame, kinds: dict[str, str]) -> list[Any]:
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


def flat(values: Any) -> pa.Array:
    """One Arrow array (pandas' Arrow-backed columns convert to chunked arrays)."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def large_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (int64, ``len + 1``, into the data) and the whole data buffer (uint8) of a
    large string or binary array, as numpy views. A slice's offsets start inside its buffer,
    and ``np.frombuffer`` counts that start in bytes, not in offsets.
    """
    n = len(values)
    offsets, data = values.buffers()[1], values.buffers()[2]
    return (np.frombuffer(offsets, np.int64, n + 1, values.offset * 8)
            if n and offsets is not None else np.zeros(n + 1, np.int64),
            np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8))


def join_parts(parts: list[Any], n: int) -> pa.Array:
    """Element-wise concatenation of literals and columns into n strings."""
    merged: list[Any] = []
    for p in parts:  # adjacent literals as one piece
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p if isinstance(p, str) else flat(p))
    parts = merged
    if not any(isinstance(p, pa.Array) for p in parts):
        return pa.array(["".join(parts)] * n, pa.large_string())
    pieces = [pa.scalar(p, pa.large_string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*pieces, pa.scalar("", pa.large_string()))


def json_object_array(frame: pd.DataFrame, kinds: dict[str, str]) -> pa.Array:
    """:func:`json_objects` as an Arrow large-string array (same text)."""
    return join_parts(object_parts(frame, kinds), len(frame))


def clean_records(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The frame's rows as dicts of JSON-ready values (missing values as None)."""
    for row in frame.to_dict(orient="records"):
        yield {str(k): _clean(v) for k, v in row.items()}




# ---------------------------------------------------------------------------- Arrow blocks
_ZSTD = pa.ipc.IpcWriteOptions(compression="zstd")


def ipc_block(table: pa.Table) -> bytes:
    """``table`` as one zstd-compressed Arrow IPC stream: the stored form of the extra
    tables' blocks and of the customer column blocks (layout 3).
    """
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_ZSTD) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()  # type: ignore[no-any-return]


def read_ipc_block(data: bytes) -> pa.Table:
    """The table written by :func:`ipc_block`."""
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()
