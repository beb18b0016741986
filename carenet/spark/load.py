r"""Interaction logs -> validated rows -> weighted ties, in Spark SQL.

The same rules as the local loader (:mod:`carenet.graphs.logs`, :mod:`carenet.graphs.build`):

- **Column mapping**: a local file is sniffed by carenet's own reader (delimiter, header,
  comments, SNAP-style whitespace, synonyms such as ``from``/``caller``/``duration``, positions in
  a headerless file), so the mapping is the local one by construction. A URI only Spark can read
  (``hdfs://``, ``s3a://``, ...) is read as Parquet (``.parquet``), JSON Lines (``.jsonl``,
  ``.ndjson``, ``.json``) or CSV with a header, and its columns are mapped by the same synonyms.
- **Validation**: the same reason codes, the first that applies, in the local order
  (``malformed_row``/``invalid_json``, ``repeated_header``, ``missing_id``, ``bad_id``,
  ``self_interaction``, ``missing_timestamp``,
  ``bad_timestamp``, ``after_reference``, ``missing_weight``, ``bad_weight``,
  ``nonfinite_weight``, ``negative_weight``, ``missing_channel``, ``unknown_channel``), with the
  file's line number, the column and its value.
- **Time**: numbers in s/ms/us/ns (``auto`` decides by the median magnitude, as locally), ISO
  8601 text, or a strptime format; a Spark timestamp column as it is. The session runs in UTC.
- **Weights**: ``weight x channel weight x 2 ** (-(reference - t) / half_life)``, the reference
  being the newest accepted interaction of all logs unless stated; ties summed per (source,
  target) with their count and channel bit mask; subnormal and ``< min_weight`` ties dropped.
- **Ids**: node positions in order of first appearance, as the local loader gives them: by
  file, then by the local reader's batch (16 MB of text, 2**20 Parquet rows, 200,000 JSON
  objects; :func:`local_batch_starts`), then a batch's sources before its targets, then line.
  So positions match the local engine's for any file size.
- **JSON Lines**: one object per line; non-string values kept as their JSON text; a line that
  is not a JSON object is an ``invalid_json`` row, an id that is an object or list ``bad_id``.

Differences left (stated, not hidden): the local ``auto`` time unit is decided on a file's first
block, here on the whole file (the same unit for any real log); quoted CSV fields holding the
delimiter count as malformed rows here; the text of a nested JSON id in ``rejects`` is Spark's
compact JSON (``{"a":1}``) where the local reader writes ``{"a": 1}``; a file with bare ``\r``
line ends (no ``\n``) is split into batches by its ``\n`` only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carenet.errors import EmptyGraphError, InvalidInputError
from carenet.graphs import tables
from carenet.graphs.build import parse_duration
from carenet.graphs.logs import (
    BAD_ID_CHARS,
    LOG_ROLES,
    MAX_ID_LENGTH,
    ChannelRegistry,
    LogOptions,
    LogReader,
)
from carenet.graphs.tables import parsed_stream
from carenet.spark.session import to_pandas

TINY = float(np.finfo(np.float64).tiny)
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_STRPTIME = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss",
             "%y": "yy", "%b": "MMM", "%f": "SSSSSS", "%z": "XX", "%%": "%"}


@dataclass
class LogPlan:
    """How one log is read: its label, format, field names and the role -> field mapping."""

    source: str
    label: str
    format: str
    names: list[str]
    columns: dict[str, str]
    delimiter: str | None = None
    header: bool = False
    skip_rows: int = 0
    comment: str | None = None
    whitespace: bool = False
    constant_channel: int | None = None
    batch_starts: list[int] = field(default_factory=list)
    """First line of each of the local reader's batches after the first (see
    :func:`batch_starts`): ids are numbered batch by batch, so the order needs them."""


@dataclass
class SparkLoad:
    """What :func:`load_logs` produced: Spark DataFrames plus the report's numbers.

    ``ties``: ``src, dst`` (node positions), ``weight``, ``count``, ``channels``;
    ``nodes``: ``node, customer_id, first_seen, last_seen, sent, received``;
    ``rejects``: the columns of :class:`carenet.graphs.tables.RejectLog`.
    """

    ties: Any
    nodes: Any
    rejects: Any
    n_customers: int
    files: list[dict[str, Any]]
    rejected: dict[str, int]
    channels: list[str]
    reference_time: float | None
    half_life: float | None
    has_time: bool
    notes: list[str] = field(default_factory=list)
    timed: Any = None
    """Accepted rows with a time: ``_file, _line, s, d`` (positions), ``t``, ``code``
    (lazy; collected only when the driver takes the interactions)."""


def is_uri(source: str) -> bool:
    """True for a URI only Spark reads (``hdfs://``, ``s3a://``, ...; not ``file://``)."""
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source)) and not source.startswith(
        "file://"
    )


def plan_log(source: str | Path, options: LogOptions, channels: ChannelRegistry) -> LogPlan:
    """Map one log's columns as the local loader would (sniffing a local file).

    Parameters
    ----------
    source
        A local path, or a URI Spark reads.
    options
        The run's :class:`LogOptions` (explicit columns, time unit, constant channel).
    channels
        The load's channel registry (a constant channel is registered here, as locally).

    Returns
    -------
    LogPlan
        What :func:`load_logs` needs to read the file in Spark.
    """
    text = str(source)
    if not is_uri(text):
        path = Path(text.removeprefix("file://"))
        reader = LogReader(path, options, channels=channels)
        sn = reader.table.sniffed
        plan = LogPlan(
            source=str(path.resolve()), label=reader.table.label, format=sn.format,
            names=list(sn.names), columns=dict(reader.columns), delimiter=sn.delimiter,
            header=bool(sn.header), skip_rows=sn.skip_rows, comment=sn.comment,
            whitespace=sn.normalise_whitespace,
            constant_channel=(channels.code(options.channel) if options.channel is not None
                              else None),
        )
        plan.batch_starts = local_batch_starts(path, reader, options.read.block_size)
        return plan
    lower = text.lower().rstrip("/")
    fmt = ("parquet" if lower.endswith(".parquet") else
           "jsonl" if lower.endswith((".jsonl", ".ndjson", ".json")) else "csv")
    constant = channels.code(options.channel) if options.channel is not None else None
    return LogPlan(source=text, label=text, format=fmt, names=[], columns={},
                   delimiter=options.read.delimiter or ",", header=True,
                   constant_channel=constant)


def local_batch_starts(path: Path, reader: LogReader, block_size: int) -> list[int]:
    """The first line (row) of each batch of the local reader after the first, for one file.

    The local loader numbers customers batch by batch (a batch's sources, then its targets),
    so the Spark engine needs the batch boundaries to give every customer the same position:

    - Parquet: batches of :data:`carenet.graphs.tables.BATCH_ROWS` rows (across row groups);
    - CSV/text: pyarrow's streaming reader reads the byte stream in ``block_size`` pieces and a
      batch holds the lines whose newline falls in its piece. The same stream (decompressed,
      whitespace-normalised for SNAP-style files) is read here once and only its newlines are
      counted: one pass over the bytes on the driver, no parsing;
    - JSON Lines: every :data:`carenet.graphs.tables.JSONL_BATCH_ROWS` objects; found in Spark
      (:func:`_jsonl_batch_starts`), so empty here.
    """
    fmt = reader.table.sniffed.format
    if fmt == "parquet":
        import pyarrow.parquet as pq

        rows, size = int(pq.ParquetFile(path).metadata.num_rows), tables.BATCH_ROWS
        return [k * size + 1 for k in range(1, -(-rows // size))]
    if fmt != "csv":
        return []
    stream = parsed_stream(path, reader.table.sniffed)  # the bytes the local reader parses
    ends: list[int] = []
    lines = 0
    try:
        while True:
            chunk = stream.read(block_size)
            if not chunk:
                break
            lines += chunk.count(b"\n")
            ends.append(lines)
    finally:
        stream.close()
    return [e + 1 for e in ends[:-1]]


def batch_of(line: Any, starts: Sequence[int]) -> Any:
    """A Column: how many of the sorted ``starts`` are <= ``line`` (the batch index).

    A balanced CASE tree: ``log2(len(starts))`` comparisons per value, code-generated.
    """
    from pyspark.sql import functions as sf

    def tree(lo: int, hi: int) -> Any:
        if lo == hi:
            return sf.lit(lo)
        mid = (lo + hi + 1) // 2  # the answer is >= mid exactly when line >= starts[mid - 1]
        return sf.when(line >= sf.lit(int(starts[mid - 1])), tree(mid, hi)).otherwise(
            tree(lo, mid - 1))

    return tree(0, len(starts))


def map_columns(names: Sequence[str], options: LogOptions, label: str) -> dict[str, str]:
    """Role -> column for a table whose column names are known (a URI's header or schema)."""
    lower = {n.lower().strip(): n for n in names}
    explicit = {"source": options.source_col, "target": options.target_col,
                "timestamp": options.time_col, "channel": options.channel_col,
                "weight": options.weight_col}
    if options.channel is not None and options.channel_col is None:
        explicit["channel"] = ""
    mapping: dict[str, str] = {}
    for role, col in explicit.items():
        if col is None:
            continue
        if col and col.lower() not in lower:
            raise InvalidInputError(
                f"{role} column {col!r} not found; the file has columns {', '.join(names)}",
                file=label, column=col,
            )
        mapping[role] = lower[col.lower()] if col else ""
    used = {c for c in mapping.values() if c}
    for role, synonyms in LOG_ROLES.items():
        if role in mapping:
            continue
        for syn in synonyms:
            if syn in lower and lower[syn] not in used:
                mapping[role] = lower[syn]
                used.add(lower[syn])
                break
    mapping = {r: c for r, c in mapping.items() if c}
    missing = [r for r in ("source", "target") if r not in mapping]
    if missing:
        raise InvalidInputError(
            f"required column(s) {', '.join(missing)} not found; the file has columns "
            f"{', '.join(names)}", file=label,
        )
    return mapping


def _line_numbers(spark: Any, frame: Any, offset: int, name: str = "_line") -> Any:
    """``frame`` with ``name``: 1-based row number in read order, plus ``offset``.

    Spark's ``monotonically_increasing_id`` is (partition << 33) + row in partition; one small
    count per partition turns it into consecutive numbers without a Python UDF or a sort.
    """
    from pyspark.sql import functions as sf

    tagged = frame.withColumn("_pid", sf.spark_partition_id()).withColumn(
        "_mid", sf.monotonically_increasing_id()
    )
    counts = sorted(
        (r["_pid"], r["n"]) for r in tagged.groupBy("_pid").agg(sf.count("*").alias("n")).collect()
    )
    starts: dict[int, int] = {}
    total = 0
    for pid, n in counts:
        starts[pid] = total
        total += n
    base = sf.lit(offset)
    if starts:
        mapping = sf.create_map(*[x for pid, s in starts.items() for x in (sf.lit(pid), sf.lit(s))])
        base = base + mapping[sf.col("_pid")]
    line = base + (sf.col("_mid") - sf.shiftleft(sf.col("_pid").cast("long"), 33)) + 1
    return tagged.withColumn(name, line.cast("long")).drop("_pid", "_mid")


def _trim(col: Any) -> Any:
    from pyspark.sql import functions as sf

    return sf.regexp_replace(col.cast("string"), r"^\s+|\s+$", "")


def _read_rows(spark: Any, plan: LogPlan, options: LogOptions) -> tuple[Any, dict[str, str]]:
    """Raw rows of one log: ``_line``, ``_record``, ``_malformed`` and one string column per
    mapped role (``r_source``, ...); typed numeric/timestamp columns stay typed.
    """
    from pyspark.sql import functions as sf

    if plan.format == "parquet":
        frame = spark.read.parquet(plan.source)
        if not plan.columns:
            plan.columns = map_columns(frame.columns, options, plan.label)
        wanted = list(dict.fromkeys(plan.columns.values()))
        frame = _line_numbers(spark, frame.select(*wanted), 0)
        record = sf.concat_ws(",", *[sf.coalesce(sf.col(c).cast("string"), sf.lit(""))
                                     for c in wanted])
        out = frame.select(
            "_line", record.alias("_record"), sf.lit(None).cast("string").alias("_malformed"),
            *[sf.col(c).alias(f"r_{role}") for role, c in plan.columns.items()],
        )
        return out, plan.columns
    if plan.format == "jsonl":
        return _read_jsonl(spark, plan, options)
    if plan.format != "csv":
        raise InvalidInputError(f"the Spark engine cannot read {plan.format} logs",
                                file=plan.label)
    text = _line_numbers(spark, spark.read.text(plan.source), 0)
    value = sf.col("value")
    body = text.where(sf.col("_line") > plan.skip_rows + (1 if plan.header else 0))
    body = body.where(sf.regexp_replace(value, r"\s", "") != "")
    if plan.comment:
        body = body.where(~value.startswith(plan.comment))
    if plan.whitespace:
        fields = sf.split(sf.regexp_replace(value, r"^\s+|\s+$", ""), r"[ \t]+")
    else:
        fields = sf.split(value, re.escape(plan.delimiter or ","), -1)
    if not plan.columns:
        head = [r["value"] for r in text.where(sf.col("_line") == 1).collect()]
        plan.names = [n.strip().strip('"') for n in re.split(re.escape(plan.delimiter or ","),
                                                              head[0] if head else "")]
        plan.columns = map_columns(plan.names, options, plan.label)
    n = len(plan.names)
    body = body.withColumn("_fields", fields)

    def field_at(name: str) -> Any:
        i = plan.names.index(name)
        return sf.regexp_replace(sf.col("_fields")[i], r'^"(.*)"$', "$1")

    malformed = sf.when(sf.size("_fields") != n, sf.format_string(
        f"expected {n} fields, found %d", sf.size("_fields")))
    record = sf.when(sf.size("_fields") != n, value).otherwise(sf.array_join(
        sf.transform("_fields", lambda x: sf.regexp_replace(x, r'^"(.*)"$', "$1")), ","))
    out = body.select(
        "_line", record.alias("_record"), malformed.alias("_malformed"),
        *[field_at(c).alias(f"r_{role}") for role, c in plan.columns.items()],
    )
    return out, plan.columns


def _read_jsonl(spark: Any, plan: LogPlan, options: LogOptions) -> tuple[Any, dict[str, str]]:
    """Raw rows of a JSON Lines log, as the local reader sees them.

    Blank lines are skipped; a line that is not a JSON object is an ``invalid_json`` row; a
    value that is not a string is kept as its JSON text (a number, ``true``), and an id that
    is a JSON object or list is flagged (``_nested_source``/``_nested_target``: ``bad_id``).
    The batch boundaries (every ``JSONL_BATCH_ROWS`` objects) go to ``plan.batch_starts``.
    """
    from pyspark.sql import functions as sf

    text = _line_numbers(spark, spark.read.text(plan.source), 0)
    value = sf.col("value")
    body = text.where(sf.regexp_replace(value, r"\s", "") != "").withColumn(
        "_obj", sf.from_json(value, "map<string,string>"))
    valid = body.where(sf.col("_obj").isNotNull())
    if not plan.columns:  # a URI: the keys of the first 200 objects, as the local sniffer
        keys = [r[0] for r in valid.select(sf.map_keys("_obj")).limit(200).collect()]
        plan.names = list(dict.fromkeys(k for ks in keys for k in ks))
        plan.columns = map_columns(plan.names, options, plan.label)
    ordinals = _line_numbers(spark, valid.select("_line"), 0, "_ord")
    plan.batch_starts = sorted(
        int(r["_line"]) for r in ordinals.where(
            (sf.col("_ord") > 1) & ((sf.col("_ord") - 1) % tables.JSONL_BATCH_ROWS == 0)
        ).collect())
    wanted = list(dict.fromkeys(plan.columns.values()))
    record = sf.concat_ws(",", *[sf.coalesce(sf.col("_obj")[c], sf.lit("")) for c in wanted])
    parsed = sf.try_parse_json(value)

    def nested(col: str) -> Any:
        if "'" in col or "\\" in col:
            return sf.lit(False)
        kind = sf.schema_of_variant(sf.variant_get(parsed, f"$['{col}']", "variant"))
        return sf.coalesce(kind.rlike("^(OBJECT|ARRAY)"), sf.lit(False))

    bad = sf.col("_obj").isNull()
    out = body.select(
        "_line", sf.when(bad, value).otherwise(record).alias("_record"),
        sf.when(bad, sf.lit("not a JSON object")).alias("_malformed"),
        *[sf.col("_obj")[c].alias(f"r_{role}") for role, c in plan.columns.items()],
        *[sf.when(bad, sf.lit(False)).otherwise(nested(plan.columns[r])).alias(f"_nested_{r}")
          for r in ("source", "target")],
    )
    return out, plan.columns


def _numbers(col: Any, dtype: str) -> tuple[Any, Any, Any]:
    """(value, missing, unparseable) Columns for a column meant to hold numbers."""
    from pyspark.sql import functions as sf

    if dtype in ("double", "float", "int", "bigint", "smallint", "tinyint", "boolean") or (
        dtype.startswith("decimal")
    ):
        return col.cast("double"), col.isNull(), sf.lit(False)
    s = _trim(col)
    missing = s.isNull() | (s == "")
    num = s.cast("double")  # null when unparseable (the session runs with ANSI casts off)
    literal_nan = sf.lower(s).rlike(r"^[+-]?nan$")
    bad = num.isNull() & ~missing & ~literal_nan
    num = sf.when(literal_nan, sf.lit(float("nan"))).otherwise(num)
    return num, missing, bad


def _java_pattern(fmt: str) -> str:
    out = []
    i = 0
    while i < len(fmt):
        code = fmt[i : i + 2]
        if code in _STRPTIME:
            out.append(_STRPTIME[code])
            i += 2
        elif fmt[i] == "%":
            raise InvalidInputError(f"the Spark engine does not read time format code {code!r}")
        else:
            ch = fmt[i]
            out.append(f"'{ch}'" if ch.isalpha() else ch)
            i += 1
    return "".join(out)


def _times(frame: Any, col: str, options: LogOptions, label: str) -> tuple[Any, Any, Any, str]:
    """(seconds, missing, bad, decided unit) Columns for the timestamp role."""
    from pyspark.sql import functions as sf

    dtype = dict(frame.dtypes)[col]
    c = sf.col(col)
    micros = sf.unix_micros
    if dtype.startswith("timestamp") or dtype == "date":
        ts = c.cast("timestamp")
        return micros(ts).cast("double") * 1e-6, c.isNull(), sf.lit(False), "timestamp"
    s = _trim(c)
    missing = s.isNull() | (s == "")
    unit = options.time_unit
    if options.time_format is not None or unit == "iso":
        return _iso(s, missing, options.time_format)
    num, _missing, unparsed = _numbers(c, dtype)
    if unit == "auto":
        stats = frame.select(
            sf.sum((~missing).cast("long")).alias("present"),
            sf.sum(unparsed.cast("long")).alias("bad"),
            sf.count("*").alias("rows"),
            sf.percentile_approx(sf.when(~missing & ~unparsed & ~sf.isnan(num)
                                       & (sf.abs(num) != float("inf")), sf.abs(num)),
                                0.5, 100000).alias("median"),
        ).first()
        rows = int(stats["rows"] or 0)
        bad_share = (int(stats["bad"] or 0) / rows) if rows else 0.0
        if stats["median"] is None or bad_share > 0.5:
            sec, miss, bad, _ = _iso(s, missing, None)
            return sec, miss, bad, "iso"
        med = float(stats["median"])
        unit = "ns" if med > 1e17 else "us" if med > 1e14 else "ms" if med > 1e11 else "s"
    bad = unparsed | (~missing & (sf.isnan(num) | (sf.abs(num) == float("inf"))))
    return num * sf.lit(_UNIT_SECONDS[unit]), missing, bad, unit


def _iso(s: Any, missing: Any, fmt: str | None) -> tuple[Any, Any, Any, str]:
    from pyspark.sql import functions as sf

    ts = sf.to_timestamp(s, _java_pattern(fmt)) if fmt is not None else s.cast("timestamp")
    sec = sf.unix_micros(ts).cast("double") * 1e-6
    return sec, missing, ts.isNull() & ~missing, "iso"


def load_logs(
    spark: Any,
    logs: Sequence[str | Path],
    *,
    options: LogOptions = LogOptions(),
    half_life: float | str | None = None,
    reference_time: float | None = None,
    channels: Sequence[str] | None = None,
    channel_weights: Mapping[str, float] | None = None,
    min_weight: float = 0.0,
) -> SparkLoad:
    """Read, validate and aggregate interaction logs in Spark.

    Parameters
    ----------
    spark
        A SparkSession (:func:`carenet.spark.session.get_session`).
    logs
        Local paths or URIs Spark reads.
    options, half_life, reference_time, channels, channel_weights, min_weight
        As for :func:`carenet.graphs.build.load_network`.

    Returns
    -------
    SparkLoad
        Ties and nodes as cached Spark DataFrames, the rejected rows, and the report's numbers.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    h = parse_duration(half_life)
    registry = ChannelRegistry(channels, channel_weights)
    plans = [plan_log(x, options, registry) for x in logs]
    if not plans:
        raise InvalidInputError("no interaction log given")
    judged_parts = []
    files: list[dict[str, Any]] = []
    has_time = False
    for fi, plan in enumerate(plans):
        rows, cols = _read_rows(spark, plan, options)
        rows = rows.withColumn("_file", sf.lit(fi))
        src = _trim(sf.col("r_source"))
        dst = _trim(sf.col("r_target"))
        checks: list[tuple[Any, str, str]] = [
            (sf.col("_malformed").isNotNull(),
             "invalid_json" if plan.format == "jsonl" else "malformed_row", ""),
        ]
        if plan.format == "csv" and plan.header:  # a header line repeated inside the data
            same = sf.lit(True)
            for header_name in dict.fromkeys(cols.values()):
                role = next(r for r, c in cols.items() if c == header_name)
                same = same & (_trim(sf.col(f"r_{role}")) == sf.lit(header_name))
            checks.append((same, "repeated_header", cols["source"]))
        checks += [
            (src.isNull() | (src == ""), "missing_id", cols["source"]),
            (dst.isNull() | (dst == ""), "missing_id", cols["target"]),
        ]
        for role, ident in (("source", src), ("target", dst)):
            hostile = (sf.char_length(ident) > MAX_ID_LENGTH) | ident.rlike(BAD_ID_CHARS)
            if plan.format == "jsonl":
                hostile = hostile | sf.col(f"_nested_{role}")
            checks.append((hostile, "bad_id", cols[role]))
        checks.append((src == dst, "self_interaction", cols["source"]))
        t = sf.lit(None).cast("double")
        unit = None
        if "timestamp" in cols:
            t, missing, bad, unit = _times(rows, "r_timestamp", options, plan.label)
            checks += [(missing, "missing_timestamp", cols["timestamp"]),
                       (bad, "bad_timestamp", cols["timestamp"])]
            if reference_time is not None:
                checks.append((t > sf.lit(reference_time), "after_reference", cols["timestamp"]))
            has_time = True
        w = sf.lit(1.0)
        if "weight" in cols:
            dtype = dict(rows.dtypes)["r_weight"]
            w, missing, bad = _numbers(sf.col("r_weight"), dtype)
            nonfinite = ~missing & ~bad & (sf.isnan(w) | (sf.abs(w) == float("inf")))
            checks += [(missing, "missing_weight", cols["weight"]),
                       (bad, "bad_weight", cols["weight"]),
                       (nonfinite, "nonfinite_weight", cols["weight"]),
                       (w < 0, "negative_weight", cols["weight"])]
        code = sf.lit(None).cast("int")
        if "channel" in cols:
            name = sf.lower(_trim(sf.col("r_channel")))
            empty = name.isNull() | (name == "")
            rows = rows.withColumn("_chname", sf.when(empty, sf.lit(None)).otherwise(name))
            # codes in order of first appearance, as the local reader registers them (it sees
            # every parsed row, rejected or not; an empty cell is the channel "unknown" when
            # any channel is accepted); malformed rows never reach the local reader
            key = sf.col("_chname")
            if registry.allowed is None:
                key = sf.coalesce(key, sf.lit("unknown"))
            seen = (rows.where(sf.col("_malformed").isNull()).select(key.alias("_k"), "_line")
                    .where(sf.col("_k").isNotNull())
                    .groupBy("_k").agg(sf.min("_line").alias("first"))
                    .orderBy("first").collect())
            if registry.allowed is not None:
                checks += [(empty, "missing_channel", cols["channel"]),
                           (~sf.coalesce(sf.col("_chname").isin(list(registry.allowed)),
                                        sf.lit(False)), "unknown_channel", cols["channel"])]
            for r in seen:
                if registry.allowed is None or r["_k"] in registry.allowed:
                    registry.code(r["_k"], file=plan.label, line=int(r["first"]))
            lookup = sf.create_map(*[x for i, n in enumerate(registry.names)
                                    for x in (sf.lit(n), sf.lit(i))])
            code = sf.coalesce(lookup[sf.coalesce(sf.col("_chname"), sf.lit("unknown"))],
                              sf.lit(0))
        elif plan.constant_channel is not None:
            code = sf.lit(plan.constant_channel)
        reason = sf.lit(None).cast("string")
        column = sf.lit(None).cast("string")
        for cond, why, colname in reversed(checks):
            hit = sf.coalesce(cond, sf.lit(False))
            reason = sf.when(hit, sf.lit(why)).otherwise(reason)
            column = sf.when(hit, sf.lit(colname)).otherwise(column)
        role_of = {c: r for r, c in cols.items()}
        value = sf.lit("")
        for colname, role in role_of.items():
            value = sf.when(column == colname, sf.coalesce(sf.col(f"r_{role}").cast("string"),
                                                         sf.lit(""))).otherwise(value)
        judged = rows.select(
            "_file", sf.lit(plan.label).alias("_label"), "_line", "_record", "_malformed",
            src.alias("src"), dst.alias("dst"), t.alias("t"), w.alias("w"),
            code.alias("code"), reason.alias("reason"), column.alias("column"),
            value.alias("value"),
        )
        judged_parts.append(judged)
        files.append({"file": plan.label, "kind": "log", "format": plan.format,
                      "columns": dict(cols), "time_unit": unit,
                      "delimiter": plan.delimiter if plan.format == "csv" else None,
                      "header": plan.header if plan.format == "csv" else None})
    judged_all = judged_parts[0]
    for part in judged_parts[1:]:
        judged_all = judged_all.unionByName(part)
    judged_all = judged_all.cache()
    accepted = judged_all.where(sf.col("reason").isNull()).select(
        "_file", "_line", "src", "dst", "t", "w", "code")
    rejects = judged_all.where(sf.col("reason").isNotNull()).select(
        sf.col("_label").alias("file"), sf.col("_line").alias("line"), "reason",
        sf.coalesce("column", sf.lit("")).alias("column"),
        sf.when(sf.col("reason") == "malformed_row", sf.lit("")).otherwise(sf.col("value"))
        .alias("value"),
        sf.coalesce("_malformed", sf.lit("")).alias("detail"),
        sf.col("_record").alias("record"),
    )
    # one job for every count of the report: (file, reason) over accepted and rejected rows
    tally = [(int(r["_file"]), r["reason"], int(r["n"])) for r in
             judged_all.groupBy("_file", "reason").agg(sf.count("*").alias("n")).collect()]
    per_reason: dict[str, int] = {}
    for _fi, why, cnt in tally:
        if why is not None:
            per_reason[why] = per_reason.get(why, 0) + cnt
    for fi, f in enumerate(files):
        rej = {why: cnt for i, why, cnt in tally if i == fi and why is not None}
        f["rejected"] = dict(sorted(rej.items(), key=lambda kv: -kv[1]))
        f["rows_loaded"] = sum(cnt for i, why, cnt in tally if i == fi and why is None)
        f["rows_rejected"] = sum(rej.values())
        f["rows_read"] = f["rows_loaded"] + f["rows_rejected"]
    ref = reference_time
    if has_time and ref is None:
        newest = accepted.agg(sf.max("t")).first()
        ref = float(newest[0]) if newest is not None and newest[0] is not None else None
    weights = registry.weight_vector()
    wt = sf.col("w")
    if len(weights) and (weights != 1.0).any():
        wmap = sf.create_map(*[x for i, v in enumerate(weights) for x in (sf.lit(i),
                                                                          sf.lit(float(v)))])
        wt = wt * sf.coalesce(wmap[sf.col("code")], sf.lit(1.0))
    decay = h is not None and has_time and ref is not None
    if decay:
        wt = sf.when(sf.col("t").isNull(), wt).otherwise(
            wt * sf.pow(sf.lit(2.0), (sf.col("t") - sf.lit(ref)) / sf.lit(h)))
    bit = sf.when(sf.col("code").isNull(), sf.lit(0)).otherwise(sf.expr("shiftleft(1, code)"))
    rows = accepted.select("_file", "_line", "src", "dst", "t", wt.alias("wd"), bit.alias("bit"))
    ends = rows.select(sf.col("src").alias("customer_id"), "_file", "_line",
                       sf.lit(0).alias("role"), "t", sf.lit(1).alias("s"), sf.lit(0).alias("r")
                       ).unionByName(
        rows.select(sf.col("dst").alias("customer_id"), "_file", "_line",
                    sf.lit(1).alias("role"), "t", sf.lit(0).alias("s"), sf.lit(1).alias("r")))
    stats = ends.groupBy("customer_id").agg(
        sf.min("t").alias("first_seen"), sf.max("t").alias("last_seen"),
        sf.sum("s").cast("long").alias("sent"), sf.sum("r").cast("long").alias("received"),
    )
    # positions as the local loader gives them: by file, then the reader's batch, then a
    # batch's sources before its targets, then line. The batch is only needed for each
    # customer's first line per (file, role), so it is computed on those rows only.
    firsts = ends.groupBy("customer_id", "_file", "role").agg(sf.min("_line").alias("_line"))
    batch: Any = sf.lit(0)
    for fi, plan in enumerate(plans):
        if plan.batch_starts:
            batch = sf.when(sf.col("_file") == fi, batch_of(sf.col("_line"), plan.batch_starts)
                            ).otherwise(batch)
    first = firsts.select("customer_id", sf.struct(
        "_file", batch.alias("_batch"), "role", "_line").alias("k")).groupBy(
        "customer_id").agg(sf.min("k").alias("first"))
    nodes = stats.join(first, "customer_id")
    order = Window.orderBy(sf.col("first._file"), sf.col("first._batch"), sf.col("first.role"),
                           sf.col("first._line"))
    nodes = nodes.withColumn("node", (sf.row_number().over(order) - 1).cast("int")).select(
        "node", "customer_id", "first_seen", "last_seen", "sent", "received").cache()
    n = nodes.count()
    if n == 0:
        raise EmptyGraphError(
            "no customers: every interaction row was rejected or the inputs are empty "
            f"(rejected: {per_reason or 'none'})"
        )
    pos = nodes.select("customer_id", "node")
    ties = (rows.groupBy("src", "dst")
            .agg(sf.sum("wd").alias("weight"), sf.count("*").cast("long").alias("count"),
                 sf.bit_or("bit").alias("channels"))
            .join(pos.withColumnRenamed("customer_id", "src").withColumnRenamed("node", "s"),
                  "src")
            .join(pos.withColumnRenamed("customer_id", "dst").withColumnRenamed("node", "d"),
                  "dst")
            .where(sf.col("weight") >= sf.lit(max(TINY, float(min_weight))))
            .select(sf.col("s").alias("src"), sf.col("d").alias("dst"), "weight", "count",
                    "channels")
            .cache())
    timed = (accepted.where(sf.col("t").isNotNull())
             .join(pos.withColumnRenamed("customer_id", "src").withColumnRenamed("node", "s"),
                   "src")
             .join(pos.withColumnRenamed("customer_id", "dst").withColumnRenamed("node", "d"),
                   "dst")
             .select("_file", "_line", "s", "d", "t", "code"))
    notes = []
    if h is not None and not has_time:
        notes.append("half-life ignored: the log has no timestamp column")
    return SparkLoad(
        ties=ties, nodes=nodes, rejects=rejects, n_customers=int(n), files=files,
        rejected=dict(sorted(per_reason.items(), key=lambda kv: -kv[1])),
        channels=list(registry.names), reference_time=ref if has_time else reference_time,
        half_life=h if has_time else None, has_time=has_time, notes=notes, timed=timed,
    )


def rejects_frame(load: SparkLoad) -> pd.DataFrame:
    """The rejected rows on the driver, in file and line order (the run's ``rejects`` table)."""
    frame = to_pandas(load.rejects)
    cols = ["file", "line", "reason", "column", "value", "detail", "record"]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=np.int64 if c == "line" else object)
                             for c in cols})
    order = {f["file"]: i for i, f in enumerate(load.files)}
    frame["_f"] = frame["file"].map(order)
    frame = frame.sort_values(["_f", "line"], kind="stable").drop(columns="_f")
    frame["line"] = frame["line"].astype(np.int64)
    return frame[cols].reset_index(drop=True)
