"""Interaction logs and their side tables: schema, column mapping, row-level validation.

An interaction log has one row per interaction: ``source`` and ``target`` customer ids (strings),
and optionally ``timestamp`` (ISO 8601, epoch seconds or epoch milliseconds; detected or stated),
``channel`` (call, sms, chat, email, ...) and ``weight`` (count, minutes, ...). Column names are
mapped from common synonyms (``from``/``to``, ``caller``/``callee``, ``duration`` ...) or given
explicitly. Side tables: **customers** (``customer_id``, ``value``, ``segment``, ``churn_score``,
any other attribute) and **events** (``customer_id``, ``event``, ``timestamp``).

Validation is vectorised per batch; each refused row goes to the :class:`RejectLog` with one of
these reason codes (the first that applies):

===================== =====================================================================
``malformed_row``     the row does not have the file's number of fields
``invalid_json``      a JSON Lines row that is not a JSON object
``repeated_header``   a CSV row repeating the header line (e.g. two exports concatenated)
``missing_id``        empty source or target (customers/events: empty customer id)
``bad_id``            an id the API and views could not address: longer than 256 characters,
                      holding ``/``, a control or a bidirectional-override character, or a
                      JSON object or list (JSON Lines)
``self_interaction``  source and target are the same customer
``missing_timestamp`` the timestamp column is mapped but the cell is empty
``bad_timestamp``     the timestamp cannot be parsed in the file's time unit or format
``after_reference``   later than the stated analysis reference time
``missing_weight``    the weight column is mapped but the cell is empty
``bad_weight``        a weight that is not a number
``nonfinite_weight``  a weight that is NaN or infinite
``negative_weight``   a weight below zero (e.g. a missed call logged with duration -1)
``missing_channel``   empty channel while an allowed channel list is given
``unknown_channel``   a channel outside the allowed list
``duplicate_customer`` a customers row repeating an earlier customer id (the first is kept)
``bad_value``         a customer value that is not a non-negative number
``bad_churn_score``   a churn score that is not a number in [0, 1]
``missing_event``     an events row with an empty event name
``unknown_customer``  an event for a customer neither in the log nor in the customers table
===================== =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from carenet.errors import InvalidInputError
from carenet.graphs.ids import Pseudonymizer
from carenet.graphs.tables import RawTable, ReadOptions, RejectLog, as_strings
from carenet.graphs.timecols import detect_time_column

LogSource: TypeAlias = str | Path | pd.DataFrame | pa.Table

MAX_CHANNELS = 16

LOG_ROLES: dict[str, tuple[str, ...]] = {
    "source": ("source", "src", "from", "caller", "sender", "source_id", "from_id",
               "customer_a", "user_a", "node1", "from_customer", "origin"),
    "target": ("target", "dst", "to", "callee", "receiver", "recipient", "target_id", "to_id",
               "customer_b", "user_b", "node2", "to_customer", "destination"),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date", "created_at", "event_time",
                  "unixts", "time_stamp", "start_time"),
    "channel": ("channel", "medium", "via", "interaction_type", "type", "kind"),
    "weight": ("weight", "w", "count", "duration", "minutes", "seconds", "amount", "volume"),
}
CUSTOMER_ROLES: dict[str, tuple[str, ...]] = {
    "customer_id": ("customer_id", "customer", "id", "client_id", "user_id", "user",
                    "account_id", "customerid"),
    "value": ("value", "clv", "ltv", "revenue", "customer_value", "arpu"),
    "segment": ("segment", "tier", "plan"),
    "churn_score": ("churn_score", "churn_probability", "churn_risk", "risk_score"),
}
EVENT_ROLES: dict[str, tuple[str, ...]] = {
    "customer_id": CUSTOMER_ROLES["customer_id"],
    "event": ("event", "event_type", "type", "kind", "outcome", "label"),
    "timestamp": LOG_ROLES["timestamp"],
}
_KNOWN = frozenset(
    n for roles in (LOG_ROLES, CUSTOMER_ROLES, EVENT_ROLES) for syn in roles.values() for n in syn
)

TIME_UNITS = ("auto", "s", "ms", "us", "ns", "iso")
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class LogOptions:
    """How to read an interaction log. Every ``*_col`` left at ``None`` is found by name
    (synonyms such as ``from``, ``caller``, ``duration``) or position (headerless files); an
    empty string means "this file has no such column, do not look for one".

    ``channel`` gives one channel to every row of a file without a channel column (e.g. the
    ``sms`` file of a study); ``time_unit`` is ``auto`` (numbers: magnitude tells s/ms/us/ns;
    strings: ISO 8601), one of ``s ms us ns``, or ``iso``; ``time_format`` is a strptime format.
    """

    source_col: str | None = None
    target_col: str | None = None
    time_col: str | None = None
    channel_col: str | None = None
    weight_col: str | None = None
    time_unit: str = "auto"
    time_format: str | None = None
    channel: str | None = None
    read: ReadOptions = field(default_factory=ReadOptions)

    def __post_init__(self) -> None:
        if self.time_unit not in TIME_UNITS:
            raise InvalidInputError(
                f"time unit must be one of {', '.join(TIME_UNITS)}, not {self.time_unit!r}"
            )


@dataclass
class FileReport:
    """What loading one file did: its format, the column mapping and row counts."""

    file: str
    kind: str
    format: str
    columns: dict[str, str]
    rows_read: int = 0
    rows_loaded: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    blank_lines: int = 0
    comment_lines: int = 0
    delimiter: str | None = None
    header: bool | None = None
    time_unit: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        """Rejected rows of this file, all reasons."""
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "file": self.file,
            "kind": self.kind,
            "format": self.format,
            "columns": dict(self.columns),
            "rows_read": int(self.rows_read),
            "rows_loaded": int(self.rows_loaded),
            "rows_rejected": int(self.rows_rejected),
            "rejected": {k: int(v) for k, v in self.rejected.items()},
            "blank_lines": int(self.blank_lines),
            "comment_lines": int(self.comment_lines),
            "delimiter": self.delimiter,
            "header": self.header,
            "time_unit": self.time_unit,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------- columns
def resolve_columns(
    table: RawTable,
    roles: Mapping[str, tuple[str, ...]],
    explicit: Mapping[str, str | None],
    required: Sequence[str],
) -> dict[str, str]:
    """Map roles (source, target, ...) to the file's column names.

    Explicit names must exist; others are matched by synonym (case-insensitive), and in a
    headerless file by position. Raises naming the file and the columns it does have.
    """
    names = list(table.names)
    lower = {n.lower().strip(): n for n in names}
    mapping: dict[str, str] = {}
    header_line = table.sniffed.skip_rows + 1 if table.sniffed.header else None
    for role, col in explicit.items():
        if col is None:
            continue
        if col == "":
            mapping[role] = ""
            continue
        if col in names:
            mapping[role] = col
        elif col.lower() in lower:
            mapping[role] = lower[col.lower()]
        else:
            hint = (
                f"the file has columns {', '.join(names)}"
                if table.sniffed.header or table.sniffed.format != "csv"
                else f"no header was detected, so the columns are {', '.join(names)}; pass "
                "--header if the first line names them"
            )
            raise InvalidInputError(
                f"{role} column {col!r} not found; {hint}", file=table.label,
                line=header_line, column=col,
            )
    used = {c for c in mapping.values() if c}
    for role, synonyms in roles.items():
        if role in mapping:
            continue
        for syn in synonyms:
            if syn in lower and lower[syn] not in used:
                mapping[role] = lower[syn]
                used.add(lower[syn])
                break
    if not table.sniffed.header and table.sniffed.format == "csv":
        _positional(table, roles, mapping, used)
    mapping = {r: c for r, c in mapping.items() if c}
    missing = [r for r in required if r not in mapping]
    if missing:
        raise InvalidInputError(
            f"required column(s) {', '.join(missing)} not found; the file has columns "
            f"{', '.join(names)} (name them with --{missing[0].replace('_', '-')}-col)",
            file=table.label,
            line=header_line,
        )
    return mapping


def _positional(
    table: RawTable, roles: Mapping[str, tuple[str, ...]], mapping: dict[str, str], used: set[str]
) -> None:
    """Headerless files: id columns first, then the remaining roles told apart by their values."""
    names = [n for n in table.names if n not in used]
    order = [r for r in roles if r not in mapping]
    rows = table.sniffed.first_rows
    id_roles = [r for r in order if r in ("source", "target", "customer_id")]
    for role in id_roles:
        if names:
            mapping[role] = names.pop(0)
    rest = [r for r in order if r not in id_roles]
    for name in names:
        i = list(table.names).index(name)
        vals = [r[i] for r in rows if i < len(r) and r[i]]
        kind = _value_kind(vals)
        for role in rest:
            if role in mapping:
                continue
            if (role == "timestamp" and kind == "time") or (
                role in ("weight", "value") and kind in ("number", "time")
            ) or (role in ("channel", "event", "segment") and kind == "text"):
                mapping[role] = name
                break


def _value_kind(vals: Sequence[str]) -> str:
    if not vals:
        return "empty"
    try:
        nums = [float(v) for v in vals]
    except ValueError:
        iso = pd.to_datetime(pd.Series(list(vals)), format="ISO8601", errors="coerce", utc=True)
        return "time" if iso.notna().all() else "text"
    return "time" if min(nums) > 1e8 and all(float(n).is_integer() for n in nums) else "number"


# ---------------------------------------------------------------------------- parsing
def _strings(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return pc.utf8_trim_whitespace(as_strings(arr))


def _empty(arr: pa.Array) -> np.ndarray:
    """True where a (string) cell is null or empty."""
    return np.asarray(
        pc.fill_null(pc.equal(pc.binary_length(arr), 0), True).to_numpy(zero_copy_only=False)
    )


def parse_numbers(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, missing, bad) for a column that should hold numbers.

    Fast path: one Arrow cast. A batch with any unparseable cell falls back to pandas' coercion
    so that only those cells are marked bad.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        vals = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        missing = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
        vals[missing] = np.nan
        return vals, missing, np.zeros(len(arr), bool)
    s = _strings(arr)
    missing = _empty(s)
    filled = pc.if_else(pa.array(missing), "nan", s)
    try:
        vals = pc.cast(filled, pa.float64()).to_numpy(zero_copy_only=False)
        return vals.astype(np.float64), missing, np.zeros(len(arr), bool)
    except pa.ArrowInvalid:
        pass
    coerced = pd.to_numeric(pd.Series(filled.to_numpy(zero_copy_only=False)), errors="coerce")
    vals = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    literal_nan = np.asarray(
        pc.match_substring_regex(pc.utf8_lower(filled), r"^[+-]?nan$").to_numpy(
            zero_copy_only=False
        )
    )
    bad = np.isnan(vals) & ~missing & ~literal_nan
    return vals, missing, bad


class TimeParser:
    """Parses one file's timestamps to float epoch seconds, deciding the unit once per file."""

    def __init__(self, unit: str = "auto", fmt: str | None = None, label: str = "") -> None:
        self.unit = unit
        self.fmt = fmt
        self.label = label
        self.decided: str | None = None if unit == "auto" else unit

    def parse(self, arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(seconds, missing, bad) for one batch of a timestamp column."""
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        t = arr.type
        if pa.types.is_boolean(t):
            return bool_times(arr)
        if pa.types.is_timestamp(t) or pa.types.is_date(t):
            ts = pc.cast(arr, pa.timestamp("us", tz=getattr(t, "tz", None)))
            missing = np.asarray(ts.is_null().to_numpy(zero_copy_only=False))
            vals = pc.cast(ts, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
            vals = np.where(missing, np.nan, vals * 1e-6)
            self.decided = self.decided or "timestamp"
            return vals, missing, np.zeros(len(arr), bool)
        if self.fmt is not None or self.decided == "iso":
            return self._parse_text(arr)
        vals, missing, bad = parse_numbers(arr)
        if self.decided is None:
            ok = vals[~missing & ~bad & np.isfinite(vals)]
            if ok.size == 0 or bad.mean() > 0.5:
                self.decided = "iso"
                return self._parse_text(arr)
            med = float(np.median(np.abs(ok)))
            self.decided = (
                "ns" if med > 1e17 else "us" if med > 1e14 else "ms" if med > 1e11 else "s"
            )
        bad = bad | (~missing & ~np.isfinite(vals))
        return vals * _UNIT_SECONDS[self.decided], missing, bad

    def _parse_text(self, arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = _strings(arr)
        missing = _empty(s)
        values = pd.Series(s.to_numpy(zero_copy_only=False), dtype=object)
        if self.fmt is not None:
            parsed = pd.to_datetime(values, format=self.fmt, errors="coerce", utc=True)
        else:
            parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)
        ns = parsed.to_numpy(dtype="datetime64[ns]")
        ok = ~np.isnat(ns)
        vals = np.full(len(values), np.nan)
        vals[ok] = ns[ok].astype(np.int64) * 1e-9
        return vals, missing, ~ok & ~missing


# ---------------------------------------------------------------------------- hostile cells
MAX_ID_LENGTH = 256
"""Longest customer id accepted (the API's and the views' limit for an id in a URL)."""
BAD_ID_CHARS = (r"[/\x00-\x1f\x7f\x{200e}\x{200f}\x{061c}\x{202a}-\x{202e}"
                 r"\x{2066}-\x{2069}]")
"""``/`` (a path separator in every URL), control characters and the bidirectional marks
and overrides that make a title or table show text other than what is stored."""


def bad_id_mask(ids: pa.Array) -> np.ndarray:
    """True where a (trimmed, string) id cannot be addressed in the API and the views: longer
    than :data:`MAX_ID_LENGTH` characters or holding a character of ``BAD_ID_CHARS``.

    >>> bad_id_mask(pa.array(["ann", "a/b", "x" * 300, "\u202egnp.exe", None])).tolist()
    [False, True, True, True, False]
    """
    if len(ids) == 0:
        return np.zeros(0, bool)
    found = pc.or_(pc.greater(pc.utf8_length(ids), MAX_ID_LENGTH),
                   pc.match_substring_regex(ids, BAD_ID_CHARS))
    return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False))


def nested_mask(table: RawTable, first: int, n: int, column: str) -> np.ndarray:
    """True for the rows ``first .. first + n`` of a JSON Lines table whose ``column`` held a
    JSON object or list (the reader keeps their text; as an id it would be a made-up one).
    """
    lines = table.nested_lines.get(column) if table.nested_lines else None
    if not lines or n == 0:
        return np.zeros(n, bool)
    return np.isin(table.lines(first + np.arange(n)), np.asarray(lines, dtype=np.int64))


def repeated_header_mask(table: RawTable, batch: pa.RecordBatch,
                         cols: Mapping[str, str]) -> np.ndarray:
    """True for the rows of a CSV file with a header whose mapped cells repeat the column
    names: a header line in the middle of the data (two exports concatenated).
    """
    n = batch.num_rows
    if table.sniffed.format != "csv" or not table.sniffed.header or n == 0:
        return np.zeros(n, bool)
    same = np.ones(n, bool)
    for name in dict.fromkeys(cols.values()):
        if not name or name not in batch.schema.names:
            continue
        cells = _strings(batch.column(name))
        same &= np.asarray(pc.fill_null(pc.equal(cells, name), False)
                           .to_numpy(zero_copy_only=False))
    return same


def bool_times(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seconds, missing, bad) of a boolean timestamp column: every value is bad (true/false
    is no time; read as a number it would be 1970).
    """
    missing = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
    return np.full(len(arr), np.nan), missing, ~missing


class ChannelRegistry:
    """Channel names seen across all files of a load, with their bit positions and weights."""

    def __init__(
        self,
        allowed: Sequence[str] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.allowed = None if allowed is None else tuple(_norm(c) for c in allowed)
        self.names: list[str] = list(self.allowed or [])
        self.weights = {_norm(k): float(v) for k, v in (weights or {}).items()}
        for name, w in self.weights.items():
            if not np.isfinite(w) or w < 0:
                raise InvalidInputError(f"channel weight for {name!r} must be >= 0, not {w}")
        if len(self.names) > MAX_CHANNELS:
            raise InvalidInputError(f"at most {MAX_CHANNELS} channels are supported")

    def code(self, name: str, *, file: str = "", line: int | None = None) -> int:
        """Bit position of a channel, registering a new one."""
        name = _norm(name)
        if name not in self.names:
            if len(self.names) >= MAX_CHANNELS:
                raise InvalidInputError(
                    f"more than {MAX_CHANNELS} distinct channels (new one: {name!r}); list the "
                    "channels to keep with --channels, the rest will be rejected",
                    file=file or None, line=line, column="channel",
                )
            self.names.append(name)
        return self.names.index(name)

    def weight_vector(self) -> np.ndarray:
        """Weight of each registered channel, by bit position (1.0 unless configured)."""
        return np.array([self.weights.get(n, 1.0) for n in self.names], dtype=np.float64)


def _norm(name: str) -> str:
    return name.strip().lower()


# ---------------------------------------------------------------------------- log reader
@dataclass
class InteractionBatch:
    """Validated interactions: ids as Arrow strings, the rest as numpy arrays."""

    source: pa.Array
    target: pa.Array
    time: np.ndarray | None
    channel: np.ndarray | None
    weight: np.ndarray | None

    def __len__(self) -> int:
        return len(self.source)


class _PendingRejects:
    """Rejects of one file held by row ordinal until line numbers are known (end of file)."""

    def __init__(self, table: RawTable, columns: Sequence[str], id_columns: Sequence[str],
                 pseudonymizer: Pseudonymizer | None) -> None:
        self.table = table
        self.columns = list(columns)
        self.id_columns = set(id_columns)
        self.pseudonymizer = pseudonymizer
        self.items: list[tuple[np.ndarray, str, str, list[str], list[str]]] = []

    def add(self, batch: pa.RecordBatch, first: int, mask: np.ndarray, reason: str,
            column: str = "") -> None:
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        take = pa.array(idx)
        fields = {}
        for c in self.columns:
            vals = as_strings(batch.column(c).take(take)).to_pylist()
            vals = ["" if v is None else v for v in vals]
            if self.pseudonymizer is not None and c in self.id_columns:
                vals = self.pseudonymizer.many(v.strip() for v in vals).tolist()
            fields[c] = vals
        records = [",".join(row) for row in zip(*fields.values(), strict=True)]
        values = fields.get(column, [""] * idx.size)
        self.items.append((first + idx, reason, column, values, records))

    def flush(self, rejects: RejectLog) -> None:
        for ordinals, reason, column, values, records in self.items:
            rejects.add(self.table.label, self.table.lines(ordinals), reason, column=column,
                        values=values, records=records)
        self.items.clear()


class LogReader:
    """Streams validated :class:`InteractionBatch` es out of one interaction log.

    Construction sniffs the file and maps its columns (so unusable files fail before any work);
    iteration validates each batch, sends refused rows to ``rejects`` and fills :attr:`report`.
    """

    def __init__(
        self,
        source: LogSource,
        options: LogOptions = LogOptions(),
        *,
        channels: ChannelRegistry | None = None,
        rejects: RejectLog | None = None,
        pseudonymizer: Pseudonymizer | None = None,
        reference_time: float | None = None,
        label: str | None = None,
    ) -> None:
        self.options = options
        self.channels = channels if channels is not None else ChannelRegistry()
        self.rejects = rejects if rejects is not None else RejectLog()
        self.pseudonymizer = pseudonymizer
        self.reference_time = reference_time
        self.table = RawTable(source, options.read, known_names=_KNOWN, label=label)
        explicit = {
            "source": options.source_col,
            "target": options.target_col,
            "timestamp": options.time_col,
            "channel": options.channel_col,
            "weight": options.weight_col,
        }
        if options.channel is not None and options.channel_col is None:
            explicit["channel"] = ""
        self.columns = resolve_columns(self.table, LOG_ROLES, explicit, ("source", "target"))
        self.time_note = detect_time_column(
            self.table, self.columns, weight_col=options.weight_col,
            time_col=options.time_col, named=bool(options.read.columns))
        if self.columns["source"] == self.columns["target"]:
            raise InvalidInputError(
                f"source and target are the same column {self.columns['source']!r}",
                file=self.table.label,
            )
        self.time = TimeParser(options.time_unit, options.time_format, self.table.label)
        sn = self.table.sniffed
        self.report = FileReport(
            file=self.table.label, kind="log", format=sn.format, columns=dict(self.columns),
            delimiter=sn.delimiter if sn.format == "csv" else None,
            header=sn.header if sn.format == "csv" else None,
        )
        if self.time_note:
            self.report.notes.append(self.time_note)
        self._constant_channel = (
            self.channels.code(options.channel) if options.channel is not None else None
        )

    def __iter__(self) -> Iterator[InteractionBatch]:
        cols = self.columns
        wanted = list(dict.fromkeys(cols.values()))
        pending = _PendingRejects(self.table, list(self.table.names)
                                  if self.table.sniffed.format == "csv" else wanted,
                                  [cols["source"], cols["target"]], self.pseudonymizer)
        loaded = 0
        for batch, first in self.table.batches():
            out = self._validate(batch, first, pending)
            if out is not None and len(out):
                loaded += len(out)
                yield out
        self._finish(pending, loaded)

    def _finish(self, pending: _PendingRejects, loaded: int) -> None:
        t = self.table
        label = t.label
        for line, text, detail in t.malformed:
            self.rejects.add(label, [line], "malformed_row", records=[text], detail=detail)
        for line, text, detail in getattr(t, "invalid_json", []):
            self.rejects.add(label, [line], "invalid_json", records=[text], detail=detail)
        pending.flush(self.rejects)
        r = self.report
        r.rejected = self.rejects.counts_for(label)
        r.rows_loaded = loaded
        r.rows_read = loaded + r.rows_rejected
        r.blank_lines = t.blank_lines
        r.comment_lines = t.comment_lines
        r.time_unit = self.time.decided if "timestamp" in self.columns else None
        if self.table.sniffed.normalise_whitespace:
            r.notes.append("columns separated by runs of spaces/tabs")

    def _validate(
        self, batch: pa.RecordBatch, first: int, pending: _PendingRejects
    ) -> InteractionBatch | None:
        cols = self.columns
        n = batch.num_rows
        bad = np.zeros(n, bool)

        def reject(mask: np.ndarray, reason: str, column: str = "") -> None:
            new = mask & ~bad
            if new.any():
                pending.add(batch, first, new, reason, column)
                bad[new] = True

        src = _strings(batch.column(cols["source"]))
        dst = _strings(batch.column(cols["target"]))
        reject(repeated_header_mask(self.table, batch, cols), "repeated_header", cols["source"])
        reject(_empty(src), "missing_id", cols["source"])
        reject(_empty(dst), "missing_id", cols["target"])
        for column, ids in ((cols["source"], src), (cols["target"], dst)):
            reject(bad_id_mask(ids) | nested_mask(self.table, first, n, column), "bad_id",
                   column)
        same = np.asarray(pc.fill_null(pc.equal(src, dst), False).to_numpy(zero_copy_only=False))
        reject(same, "self_interaction", cols["source"])
        t = None
        if "timestamp" in cols:
            t, missing, unparsed = self.time.parse(batch.column(cols["timestamp"]))
            reject(missing, "missing_timestamp", cols["timestamp"])
            reject(unparsed, "bad_timestamp", cols["timestamp"])
            if self.reference_time is not None:
                reject(t > self.reference_time, "after_reference", cols["timestamp"])
        w = None
        if "weight" in cols:
            w, missing, unparsed = parse_numbers(batch.column(cols["weight"]))
            reject(missing, "missing_weight", cols["weight"])
            reject(unparsed, "bad_weight", cols["weight"])
            reject(~np.isfinite(w) & ~missing & ~unparsed, "nonfinite_weight", cols["weight"])
            with np.errstate(invalid="ignore"):
                reject(w < 0, "negative_weight", cols["weight"])
        ch = None
        if "channel" in cols:
            ch = self._channels(batch, first, cols["channel"], reject)
        elif self._constant_channel is not None:
            ch = np.full(n, self._constant_channel, np.uint8)
        if bad.any():
            keep = ~bad
            mask = pa.array(keep)
            src, dst = src.filter(mask), dst.filter(mask)
            t = t[keep] if t is not None else None
            w = w[keep] if w is not None else None
            ch = ch[keep] if ch is not None else None
        return InteractionBatch(src, dst, t, ch, w)

    def _channels(self, batch: pa.RecordBatch, first: int, column: str, reject: Any) -> np.ndarray:
        # Encode first, normalise the (few) distinct values after: 10x cheaper than lower-casing
        # and trimming every row.
        enc = pc.dictionary_encode(as_strings(batch.column(column)))
        dictionary = enc.dictionary.to_pylist()
        indices = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
        allowed = self.channels.allowed
        codes = np.zeros(len(dictionary) + 1, np.int16)
        codes[-1] = -2  # null cells
        for i, raw in enumerate(dictionary):
            name = _norm(raw or "")
            if allowed is not None and name not in allowed:
                codes[i] = -2 if name == "" else -1
            else:
                where = first + int(np.argmax(indices == i))
                codes[i] = self.channels.code(
                    name or "unknown", file=self.table.label,
                    line=int(self.table.lines(np.array([where]))[0]),
                )
        if allowed is None:
            codes[-1] = self.channels.code("unknown") if (indices < 0).any() else 0
        per_row = codes[indices] if len(indices) else np.zeros(0, np.int16)
        reject(per_row == -2, "missing_channel", column)
        reject(per_row == -1, "unknown_channel", column)
        return np.clip(per_row, 0, None).astype(np.uint8)


# ---------------------------------------------------------------------------- side tables
@dataclass(frozen=True)
class TableOptions:
    """Column names for a customers or events table (``None``: found by synonym)."""

    id_col: str | None = None
    value_col: str | None = None
    segment_col: str | None = None
    churn_col: str | None = None
    event_col: str | None = None
    time_col: str | None = None
    time_unit: str = "auto"
    time_format: str | None = None
    read: ReadOptions = field(default_factory=ReadOptions)


def _read_all(table: RawTable) -> tuple[pa.Table, np.ndarray]:
    parts = []
    ordinals = []
    for batch, first in table.batches():
        parts.append(batch)
        ordinals.append(first + np.arange(batch.num_rows))
    if not parts:
        return pa.table({n: pa.array([], pa.string()) for n in table.names}), np.zeros(0, np.int64)
    return pa.Table.from_batches(parts), np.concatenate(ordinals)


def read_customers(
    source: LogSource,
    options: TableOptions = TableOptions(),
    *,
    rejects: RejectLog,
    pseudonymizer: Pseudonymizer | None = None,
    label: str | None = None,
) -> tuple[pd.DataFrame, FileReport]:
    """Read and validate a customers table.

    Returns a frame with ``customer_id`` (raw ids, pseudonymised later with the graph), ``value``
    and ``churn_score`` as floats (NaN when absent), ``segment``, and every other column (numeric
    where all its values are numbers).
    """
    table = RawTable(source, options.read, known_names=_KNOWN, label=label)
    cols = resolve_columns(
        table, CUSTOMER_ROLES,
        {"customer_id": options.id_col, "value": options.value_col,
         "segment": options.segment_col, "churn_score": options.churn_col},
        ("customer_id",),
    )
    data, ordinals = _read_all(table)
    report = FileReport(file=table.label, kind="customers", format=table.sniffed.format,
                        columns=dict(cols))
    bad = np.zeros(data.num_rows, bool)
    id_col = cols["customer_id"]
    fields = list(data.column_names)

    def reject(mask: np.ndarray, reason: str, column: str = "") -> None:
        new = mask & ~bad
        if new.any():
            _reject_rows(rejects, table, data, ordinals, new, reason, column, fields, {id_col},
                         pseudonymizer)
            bad[new] = True

    ids = _strings(data.column(id_col)) if data.num_rows else pa.array([], pa.string())
    reject(_empty(ids), "missing_id", id_col)
    reject(bad_id_mask(ids) | nested_mask(table, 0, data.num_rows, id_col), "bad_id", id_col)
    id_values = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
    dup = pd.Series(id_values).where(~bad).duplicated(keep="first").to_numpy() & ~bad
    reject(dup, "duplicate_customer", id_col)
    out: dict[str, Any] = {"customer_id": id_values}
    for role, reason in (("value", "bad_value"), ("churn_score", "bad_churn_score")):
        if role not in cols:
            out[role] = np.full(data.num_rows, np.nan)
            continue
        v, missing, unparsed = parse_numbers(data.column(cols[role]))
        with np.errstate(invalid="ignore"):
            wrong = unparsed | (~missing & ~np.isfinite(v)) | (v < 0)
            if role == "churn_score":
                wrong |= v > 1
        reject(wrong, reason, cols[role])
        out[role] = v
    out["segment"] = (
        np.asarray(_strings(data.column(cols["segment"])).to_numpy(zero_copy_only=False),
                   dtype=object)
        if "segment" in cols else np.full(data.num_rows, None, dtype=object)
    )
    for name in data.column_names:
        if name in cols.values() or name in out:
            continue
        v, missing, unparsed = parse_numbers(data.column(name))
        out[name] = v if not unparsed.any() else np.asarray(
            as_strings(data.column(name)).to_numpy(zero_copy_only=False), dtype=object)
    frame = pd.DataFrame(out)[~bad].reset_index(drop=True)
    for line, text, detail in table.malformed:
        rejects.add(table.label, [line], "malformed_row", records=[text], detail=detail)
    report.rejected = rejects.counts_for(table.label)
    report.rows_loaded = len(frame)
    report.rows_read = len(frame) + report.rows_rejected
    return frame, report


def read_events(
    source: LogSource,
    options: TableOptions = TableOptions(),
    *,
    rejects: RejectLog,
    lookup: Callable[[pa.Array], np.ndarray],
    pseudonymizer: Pseudonymizer | None = None,
    label: str | None = None,
) -> tuple[pd.DataFrame, FileReport]:
    """Read and validate an events table.

    Returns ``node`` (position from ``lookup``), ``customer_id`` (raw), ``event`` (lower-case)
    and ``timestamp`` (float epoch seconds, NaN if the table has no time column). Events of
    customers that ``lookup`` does not know (-1) are rejected as ``unknown_customer``.
    """
    table = RawTable(source, options.read, known_names=_KNOWN, label=label)
    cols = resolve_columns(
        table, EVENT_ROLES,
        {"customer_id": options.id_col, "event": options.event_col,
         "timestamp": options.time_col},
        ("customer_id", "event"),
    )
    data, ordinals = _read_all(table)
    report = FileReport(file=table.label, kind="events", format=table.sniffed.format,
                        columns=dict(cols))
    bad = np.zeros(data.num_rows, bool)
    fields = list(data.column_names)
    id_col = cols["customer_id"]

    def reject(mask: np.ndarray, reason: str, column: str = "") -> None:
        new = mask & ~bad
        if new.any():
            _reject_rows(rejects, table, data, ordinals, new, reason, column, fields, {id_col},
                         pseudonymizer)
            bad[new] = True

    ids = _strings(data.column(id_col))
    reject(_empty(ids), "missing_id", id_col)
    reject(bad_id_mask(ids) | nested_mask(table, 0, data.num_rows, id_col), "bad_id", id_col)
    events = pc.utf8_lower(_strings(data.column(cols["event"])))
    reject(_empty(events), "missing_event", cols["event"])
    if "timestamp" in cols:
        parser = TimeParser(options.time_unit, options.time_format, table.label)
        t, missing, unparsed = parser.parse(data.column(cols["timestamp"]))
        reject(missing, "missing_timestamp", cols["timestamp"])
        reject(unparsed, "bad_timestamp", cols["timestamp"])
        report.time_unit = parser.decided
    else:
        t = np.full(data.num_rows, np.nan)
    nodes = lookup(ids)
    reject(nodes < 0, "unknown_customer", id_col)
    keep = ~bad
    frame = pd.DataFrame({
        "node": nodes[keep].astype(np.int64),
        "customer_id": np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)[keep],
        "event": np.asarray(events.to_numpy(zero_copy_only=False), dtype=object)[keep],
        "timestamp": t[keep],
    })
    for line, text, detail in table.malformed:
        rejects.add(table.label, [line], "malformed_row", records=[text], detail=detail)
    report.rejected = rejects.counts_for(table.label)
    report.rows_loaded = len(frame)
    report.rows_read = len(frame) + report.rows_rejected
    return frame, report


def _reject_rows(
    rejects: RejectLog,
    table: RawTable,
    data: pa.Table,
    ordinals: np.ndarray,
    mask: np.ndarray,
    reason: str,
    column: str,
    fields: Sequence[str],
    id_columns: set[str],
    pseudonymizer: Pseudonymizer | None,
) -> None:
    idx = np.flatnonzero(mask)
    take = pa.array(idx)
    rows: dict[str, list[str]] = {}
    for c in fields:
        vals = ["" if v is None else v for v in as_strings(data.column(c).take(take)).to_pylist()]
        if pseudonymizer is not None and c in id_columns:
            vals = pseudonymizer.many(v.strip() for v in vals).tolist()
        rows[c] = vals
    records = [",".join(r) for r in zip(*rows.values(), strict=True)]
    rejects.add(table.label, table.lines(ordinals[idx]), reason, column=column,
                values=rows.get(column, [""] * idx.size), records=records)
