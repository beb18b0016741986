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
from collections.abc import Sequence
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
from carenet.store.encode import (
    clean_records,
    flat,
    ipc_block,
    is_missing,
    iso_times,
    join_parts,
    json_array,
    json_object_array,
    large_buffers,
    object_parts,
    read_ipc_block,
    text_array,
)
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
            s = s.map(lambda v: None if is_missing(v) else str(v))
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
    return flat(_sql_array(frame[info.name], frame, info))


def _sql_array(s: pd.Series, frame: pd.DataFrame, info: ColumnInfo) -> pa.Array:
    if info.type == "text":
        if pd.api.types.is_datetime64_any_dtype(s):
            return iso_times(s)
        if not pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s):
            return text_array(s)
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
    parts = object_parts(top, kinds)[:-1]
    for label, part, part_kinds in (("scores", scores, kinds),
                                    ("percentiles", pct, dict.fromkeys(pct.columns, "float")),
                                    ("attributes", attrs, kinds)):
        parts.append(f',"{label}":')
        parts.extend(object_parts(part, part_kinds))
    parts.append("}")
    return join_parts(parts, len(frame))


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
    return join_parts(parts, len(frame))


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


TIE_BLOCK = 256
"""Customer positions whose packed ties share one stored row (layout 3)."""
_COUNT = struct.Struct("<I")


def tie_blocks(packed: pa.Array, size: int = TIE_BLOCK) -> tuple[np.ndarray, pa.Array]:
    """:func:`tie_rows`' packed ties ``size`` positions a row: block numbers (blocks with
    ties only) and their bytes, each ``count`` (uint32), ``count + 1`` offsets (uint32) into
    the data, then the positions' :func:`pack_ties` bytes back to back (a 1M-customer run
    stores 3,907 rows instead of 1M, the same bytes).
    """
    packed = flat(packed).cast(pa.large_binary())
    n = len(packed)
    offsets, data = large_buffers(packed)
    numbers, blobs = [], []
    for b, a in enumerate(range(0, n, size)):
        e = min(a + size, n)
        first, last = int(offsets[a]), int(offsets[e])
        if last == first:
            continue
        head = (offsets[a:e + 1] - first).astype("<u4")
        numbers.append(b)
        blobs.append(_COUNT.pack(e - a) + head.tobytes() + data[first:last].tobytes())
    return np.asarray(numbers, np.int64), pa.array(blobs, pa.large_binary())


def block_ties(block: bytes | None, i: int) -> bytes | None:
    """The :func:`pack_ties` bytes of the ``i``-th position of a :func:`tie_blocks` block."""
    if not block:
        return None
    (count,) = _COUNT.unpack_from(block)
    if i >= count:
        return None
    head = np.frombuffer(block, "<u4", count + 1, _COUNT.size)
    base = _COUNT.size + 4 * (count + 1)
    return bytes(block[base + int(head[i]):base + int(head[i + 1])])


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
    docs = flat(docs).cast(pa.large_string())
    n = len(docs)
    offsets = np.r_[np.arange(0, n, size, dtype=np.int64), n].astype(np.int64)
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), docs)
    body = pc.binary_join(lists, pa.scalar("\n", pa.large_string()))
    return join_parts([keys, "\n", body], len(body))


def split_block(block: str) -> tuple[list[str | None] | None, list[str]]:
    """The row keys (None: the table has no key column) and the records of one stored block
    (inverse of :func:`join_blocks`).
    """
    head, _, body = block.partition("\n")
    return orjson.loads(head), body.split("\n")


ARROW = "arrow"
"""Format marker of an extra table stored as Arrow blocks (``runs.graph["blocks"][name][2]``)."""


def arrow_storable(frame: pd.DataFrame) -> bool:
    """Whether an extra table's columns come back from Arrow as they went in (numbers,
    booleans, times and plain strings; not lists, dicts, mixed objects or pandas' nullable
    and categorical types), so that its JSON records can be written at read time from a
    stored Arrow block exactly as they would have been at publish time.
    """
    for _, s in frame.items():
        kind = s.dtype
        if isinstance(kind, np.dtype):
            if kind.kind in "biufM":
                continue
            if kind.kind == "O" and pd.api.types.infer_dtype(s, skipna=True) in ("string",
                                                                                    "empty"):
                continue
            return False
        if not isinstance(kind, (pd.StringDtype, pd.DatetimeTZDtype)):
            return False
    return True


def arrow_blocks(frame: pd.DataFrame, size: int) -> list[bytes]:
    """The table's rows ``size`` at a time, each as an Arrow IPC stream compressed with zstd
    (with pandas' metadata, so :func:`read_arrow_block` gives back the same dtypes): a 1M-
    customer run's 2.9M ``exposure_sources`` records are 89 MB so, 662 MB as JSON blocks.
    """
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return [ipc_block(table.slice(a, size)) for a in range(0, len(frame), size)]


def read_arrow_block(data: bytes) -> pd.DataFrame:
    """The rows of one block written by :func:`arrow_blocks`, as the frame they came from
    (what :func:`table_records` writes of it is the same).
    """
    # (a column of Python strings comes back as pandas' string dtype: same JSON)
    return read_ipc_block(data).to_pandas()  # type: ignore[no-any-return]


def table_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """The JSON kind of each column of an extra table (from its values: see
    :func:`column_catalogue`).
    """
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return {c.name: c.type for c in column_catalogue(frame)}


def table_records(frame: pd.DataFrame, kinds: dict[str, str] | None = None) -> pa.Array:
    """JSON records of an extra table's rows, in stored order (Arrow strings); ``kinds``:
    the columns' kinds (default: :func:`table_kinds` of ``frame``; a slice encoded on its own
    passes those of the whole table, so that it is written as the whole table would be).
    """
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return json_object_array(frame, kinds if kinds is not None else table_kinds(frame))


def key_column(name: str, frame: pd.DataFrame) -> str | None:
    """The column that identifies a row of extra table ``name`` (for look-ups by key)."""
    candidates = {"communities": ("community", "community_id", "id"),
                  "care_plan": ("customer_id", "customer")}.get(name, ("id", "customer_id"))
    return next((c for c in candidates if c in frame.columns), None)


DENSE_PAIRS = 1 << 24
"""Community pairs up to which :func:`community_documents` counts links in a dense array."""


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
    if k * k <= DENSE_PAIRS:  # counted in place (np.unique sorted 5M ties: 0.6 s at 1M)
        cnt = np.bincount(pair, minlength=k * k)
        upair = np.flatnonzero(cnt)
        wsum = np.bincount(pair, weights=graph.weights[ok], minlength=k * k)[upair]
        cnt = cnt[upair]
    else:
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
            for rec in clean_records(table):
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
