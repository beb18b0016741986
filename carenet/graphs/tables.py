"""Reading tabular input (CSV, Parquet, JSON Lines, DataFrame) as streams of record batches.

Format-level work lives here: sniffing the format, compression, encoding, delimiter and header;
streaming batches with their row ordinals; mapping ordinals back to line numbers; and the reject
log that keeps every row we refuse, with its reason. Schema-level validation (what an interaction,
a customer or an event row must contain) lives in :mod:`carenet.graphs.logs`.

A file that cannot be used at all raises :class:`~carenet.errors.InvalidInputError` naming the
file (and line, and column, where there is one). A row that cannot be used is rejected and kept.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import functools
import gzip
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from carenet.errors import InvalidInputError

SNIFF_BYTES = 256 * 1024
_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\x28\xb5\x2f\xfd": "zstd",
}
_DELIMITERS = (",", "\t", ";", "|")
_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class ReadOptions:
    """How to read one input file; every field left at ``None``/``"auto"`` is sniffed.

    ``columns`` names the fields of a file without a header, in order (e.g.
    ``("source", "target", "timestamp")``); ``block_size`` is the streaming unit in bytes.
    """

    format: str = "auto"
    delimiter: str | None = None
    header: bool | None = None
    columns: tuple[str, ...] | None = None
    block_size: int = 16 << 20


# ---------------------------------------------------------------------------- reject log
class RejectLog:
    """Every row refused anywhere in a load, with file, line, reason and the raw record.

    ``line`` is the 1-based line in a text file (header and comments counted), or the 1-based row
    number in a Parquet file or DataFrame. Rows are never dropped silently: the count per reason is
    part of every load report, and :meth:`write_csv` writes them all.
    """

    COLUMNS = ("file", "line", "reason", "column", "value", "detail", "record")

    def __init__(self) -> None:
        self._parts: list[pa.Table] = []
        self._counts: Counter[str] = Counter()

    def add(
        self,
        file: str,
        lines: np.ndarray | Sequence[int],
        reason: str,
        *,
        column: str = "",
        values: Sequence[str] | pa.Array | None = None,
        records: Sequence[str] | pa.Array | None = None,
        detail: str = "",
    ) -> None:
        """Record rejected rows (all with the same reason)."""
        n = len(lines)
        if n == 0:
            return

        def col(x: Sequence[str] | pa.Array | None) -> pa.Array:
            if x is None:
                return pa.array([""] * n, pa.string())
            if isinstance(x, pa.ChunkedArray):
                x = x.combine_chunks()
            arr = x if isinstance(x, pa.Array) else pa.array(list(x), pa.string())
            if not pa.types.is_string(arr.type):
                arr = pc.cast(arr, pa.string())
            return pc.fill_null(arr, "")

        self._parts.append(
            pa.table(
                {
                    "file": pa.array([file] * n, pa.string()),
                    "line": pa.array(np.asarray(lines, dtype=np.int64)),
                    "reason": pa.array([reason] * n, pa.string()),
                    "column": pa.array([column] * n, pa.string()),
                    "value": col(values),
                    "detail": pa.array([detail] * n, pa.string()),
                    "record": col(records),
                }
            )
        )
        self._counts[reason] += n

    def __len__(self) -> int:
        return sum(self._counts.values())

    def counts(self) -> dict[str, int]:
        """Rejected rows per reason code, most frequent first."""
        return dict(self._counts.most_common())

    def counts_for(self, file: str) -> dict[str, int]:
        """Rejected rows per reason for one file."""
        c: Counter[str] = Counter()
        for part in self._parts:
            if part.num_rows and part["file"][0].as_py() == file:
                c[part["reason"][0].as_py()] += part.num_rows
        return dict(c.most_common())

    def to_arrow(self) -> pa.Table:
        """All rejected rows as one Arrow table, in the order they were found."""
        if not self._parts:
            return pa.table({c: pa.array([], pa.int64() if c == "line" else pa.string())
                             for c in self.COLUMNS})
        return pa.concat_tables(self._parts)

    def to_frame(self) -> pd.DataFrame:
        """All rejected rows as a DataFrame."""
        return self.to_arrow().to_pandas()

    def write_csv(self, path: str | Path) -> Path:
        """Write ``rejects.csv`` (header even when there is no row)."""
        p = Path(path)
        pcsv.write_csv(self.to_arrow(), p)
        return p


# ---------------------------------------------------------------------------- sniffing
@dataclass
class Sniffed:
    """What sniffing found out about a text or Parquet file."""

    format: str
    compression: str | None = None
    delimiter: str | None = None
    header: bool = False
    skip_rows: int = 0
    comment: str | None = None
    names: tuple[str, ...] = ()
    normalise_whitespace: bool = False
    first_rows: tuple[tuple[str, ...], ...] = ()


def _open_bytes(path: Path, compression: str | None) -> IO[bytes]:
    if compression == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if compression == "bz2":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if compression == "zstd":
        return pa.input_stream(str(path), compression="zstd")  # type: ignore[return-value]
    return open(path, "rb")


STREAM_ERRORS = (OSError, EOFError, zlib.error)
"""What reading a damaged compressed stream raises (gzip.BadGzipFile is an OSError; corrupt
deflate data is a zlib.error; a cut-off file is an EOFError)."""


def stream_error(exc: BaseException, compression: str | None, label: str) -> InvalidInputError:
    """The one-line error of a file whose (compressed) bytes cannot be read."""
    what = f"{compression}-compressed data" if compression else "the file"
    return InvalidInputError(f"cannot read {what}: {exc}", file=label)


def _head(path: Path, compression: str | None, label: str) -> bytes:
    try:
        with _open_bytes(path, compression) as f:
            return f.read(SNIFF_BYTES)
    except zlib.error as exc:
        raise stream_error(exc, compression, label) from exc
    except (OSError, EOFError, pa.ArrowException) as exc:
        raise InvalidInputError(
            f"cannot read {compression}-compressed data: {exc}", file=label
        ) from exc


def _bad_utf8(data: bytes, label: str, offset_line: int = 0) -> InvalidInputError | None:
    """An error naming line and column of the first invalid UTF-8 byte, or None if valid."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return None  # a character cut by the sniff window, not an encoding error
        line = data.count(b"\n", 0, exc.start) + 1 + offset_line
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return InvalidInputError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at character {col}); "
            "re-save the file as UTF-8",
            file=label,
            line=line,
        )


def _looks_numeric(token: str) -> bool:
    return bool(_NUMERIC.match(token.strip()))


def _modal_fields(lines: Sequence[str], split: Callable[[str], list[str]]) -> tuple[float, int]:
    """(share of lines, field count) of the most common field count."""
    counts = Counter(len(split(ln)) for ln in lines)
    k, c = counts.most_common(1)[0]
    return c / len(lines), k


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter))


def sniff_text(
    head: bytes,
    label: str,
    options: ReadOptions,
    known_names: frozenset[str],
) -> Sniffed:
    """Delimiter, header, leading comment lines and column names from the first bytes."""
    if b"\x00" in head[:8192]:
        raise InvalidInputError(
            "binary data (NUL bytes), not a text log; expected CSV, Parquet or JSON Lines",
            file=label,
        )
    err = _bad_utf8(head, label)
    if err is not None:
        raise err
    text = head.decode("utf-8", errors="ignore")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    if len(head) == SNIFF_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut by the window
    skip = 0
    comment = None
    while skip < len(lines) and lines[skip][:1] in ("#", "%"):
        comment = lines[skip][0]
        skip += 1
    body = [ln for ln in lines[skip:] if ln.strip()][:200]
    if not body:
        raise InvalidInputError(
            "no rows: the file is empty or holds only comments", file=label
        )
    # delimiter: a character giving the same field count (>= 2) on every sampled line
    delimiter = options.delimiter
    normalise = False
    if delimiter is None:
        # the delimiter giving the same field count (>= 2) on most sampled lines; a few
        # malformed lines must not hide it (they become malformed_row rejects later)
        sample = body[:50]
        best: tuple[float, int, str] | None = None
        for cand in _DELIMITERS:
            if not any(cand in ln for ln in sample):
                continue
            try:
                share, k = _modal_fields(sample, functools.partial(_split, delimiter=cand))
            except csv.Error:
                continue
            if k >= 2 and share >= 0.8 and (best is None or (share, k) > best[:2]):
                best = (share, k, cand)
        if best is not None:
            delimiter = best[2]
        else:
            share, k = _modal_fields(sample, str.split)
            if k == 1 and share >= 0.8 and options.columns is None:
                raise InvalidInputError(
                    "only one column found (no delimiter on most lines); a log needs at least "
                    "a source and a target column",
                    file=label,
                    line=skip + 1,
                )
            if k >= 2 and share >= 0.8:
                single = all(ln.split(" ") == ln.split() for ln in sample)
                delimiter = " " if single else None
                normalise = not single
            else:
                first = body[0]
                raise InvalidInputError(
                    "cannot tell the columns apart: no delimiter (, tab ; | or spaces) gives "
                    f"the same number of fields on most lines (first line: {first[:80]!r}); "
                    "pass the delimiter explicitly",
                    file=label,
                    line=skip + 1,
                )
    elif delimiter in ("whitespace", r"\s+"):
        delimiter, normalise = None, True
    rows = [tuple(f.strip() for f in _split(ln, delimiter)) for ln in body[:50]]
    if len(rows[0]) < 2 and options.columns is None:
        raise InvalidInputError(
            f"only one column found with delimiter {delimiter!r}; a log needs at least a "
            "source and a target column",
            file=label,
            line=skip + 1,
        )
    header = options.header
    if header is None:
        first_row = [t.lower() for t in rows[0]]
        if any(t in known_names for t in first_row):
            header = True
        elif not any(_looks_numeric(t) for t in first_row) and len(rows) > 1:
            header = any(
                _looks_numeric(b) and not _looks_numeric(a)
                for a, b in zip(rows[0], rows[1], strict=False)
            )
        else:
            header = False
    if header:
        names = tuple(t if t else f"column_{i + 1}" for i, t in enumerate(rows[0]))
        dupes = [n for n, c in Counter(names).items() if c > 1]
        if dupes:
            raise InvalidInputError(
                f"the header repeats column name(s) {', '.join(dupes)}", file=label,
                line=skip + 1,
            )
    elif options.columns is not None:
        names = tuple(options.columns)
    else:
        names = tuple(f"column_{i + 1}" for i in range(len(rows[0])))
    data_rows = rows[1:] if header else rows
    if not data_rows and len(head) < SNIFF_BYTES:
        raise InvalidInputError("no data rows: the file holds only a header line", file=label)
    return Sniffed(
        format="csv",
        delimiter=delimiter if delimiter is not None else " ",
        header=bool(header),
        skip_rows=skip,
        comment=comment,
        names=names,
        normalise_whitespace=normalise,
        first_rows=tuple(data_rows[:50]),
    )


class _WhitespaceNormaliser(io.RawIOBase):
    """A byte stream that collapses runs of spaces and tabs into one space and strips each
    line's leading and trailing blanks, so that pyarrow can parse ragged whitespace files.
    """

    _runs = re.compile(rb"[ \t]+")
    _edges = re.compile(rb"(?m)^ | (?=\r?$)")

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._pending = b""
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self._out) < len(buffer):
            chunk = self._raw.read(1 << 20)
            if not chunk:
                if self._pending:
                    self._out += self._clean(self._pending)
                    self._pending = b""
                break
            data = self._pending + chunk
            cut = data.rfind(b"\n") + 1
            self._pending = data[cut:]
            self._out += self._clean(data[:cut])
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _clean(self, data: bytes) -> bytes:
        return self._edges.sub(b"", self._runs.sub(b" ", data))

    def close(self) -> None:
        self._raw.close()
        super().close()


def parsed_stream(path: Path, sniffed: Sniffed) -> IO[bytes]:
    """The byte stream the CSV reader parses: decompressed and, for SNAP-style files, with
    runs of blanks normalised. The Spark engine reads it too, to find where the reader's
    batches start (:func:`carenet.spark.load.local_batch_starts`).
    """
    raw = _open_bytes(path, sniffed.compression)
    if sniffed.normalise_whitespace:
        return _WhitespaceNormaliser(raw)  # type: ignore[return-value]  # a RawIOBase
    return raw


def detect_format(path: Path, options: ReadOptions) -> tuple[str, str | None]:
    """(format, compression) of a file from its first bytes and its name."""
    with open(path, "rb") as f:
        magic = f.read(8)
    if not magic:
        raise InvalidInputError("the file is empty (0 bytes)", file=path)
    fmt = options.format
    if fmt != "auto":
        return fmt, next((c for m, c in _MAGIC.items() if magic.startswith(m)), None)
    if magic.startswith(b"PAR1"):
        return "parquet", None
    if magic.startswith(b"PK\x03\x04"):
        raise InvalidInputError(
            "a ZIP archive (or an Excel workbook); unpack it or export the sheet as CSV",
            file=path,
        )
    if magic.startswith((b"ARROW1", b"\x89HDF", b"%PDF")):
        raise InvalidInputError(
            "binary file of an unsupported kind; expected CSV, Parquet or JSON Lines", file=path
        )
    compression = next((c for m, c in _MAGIC.items() if magic.startswith(m)), None)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst"):
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext == ".parquet" or ext == ".pq":
        raise InvalidInputError("named .parquet but is not a Parquet file", file=path)
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl", compression
    return "csv", compression


# ---------------------------------------------------------------------------- raw tables
BATCH_ROWS = 1 << 20
"""Rows per batch when reading Parquet files and DataFrames."""
JSONL_BATCH_ROWS = 200_000
"""Rows (JSON objects) per batch when reading JSON Lines."""


class RawTable:
    """One input (file or DataFrame) as a stream of record batches with row ordinals.

    Text formats yield all-string columns (typing happens in validation, where a bad value is a
    rejected row, not a failed file); Parquet and DataFrames keep their column types. After
    :meth:`batches` is exhausted, :meth:`lines` maps batch-row ordinals to file line numbers, and
    ``malformed`` holds the rows the CSV parser could not split into the right number of fields.
    """

    def __init__(
        self,
        source: str | Path | pd.DataFrame | pa.Table,
        options: ReadOptions = ReadOptions(),
        *,
        known_names: frozenset[str] = frozenset(),
        label: str | None = None,
    ) -> None:
        self.options = options
        self._frame: pa.Table | None = None
        self.blank_lines = 0
        self.comment_lines = 0
        self.malformed: list[tuple[int, str, str]] = []
        self._handler_rows: list[int] = []
        self._blank_out: list[np.ndarray] = []
        self._parser_out_rows = 0
        self.rows_read = 0
        self.nested_lines: dict[str, list[int]] = {}
        """JSON Lines: per column, the lines whose value was a JSON object or list."""
        if isinstance(source, (pd.DataFrame, pa.Table)):
            self.label = label or "<DataFrame>"
            self.path = None
            table = source if isinstance(source, pa.Table) else _frame_to_arrow(source)
            self._frame = table
            self.sniffed = Sniffed(format="frame", names=tuple(table.column_names), header=True)
            return
        path = Path(source)
        self.label = label or str(source)
        self.path = path
        if not path.exists():
            raise InvalidInputError("no such file", file=self.label)
        if path.is_dir():
            raise InvalidInputError("is a directory, not a file", file=self.label)
        fmt, compression = detect_format(path, options)
        if fmt == "parquet":
            try:
                pf = pq.ParquetFile(path)
            except (pa.ArrowException, OSError) as exc:
                raise InvalidInputError(f"unreadable Parquet file: {exc}", file=self.label) from exc
            self._parquet = pf
            check_parquet_columns(pf.schema_arrow, self.label)
            names = tuple(pf.schema_arrow.names)
            self.sniffed = Sniffed(format="parquet", names=names, header=True)
            if pf.metadata.num_rows == 0:
                raise InvalidInputError("no rows: the Parquet file is empty", file=self.label)
            return
        head = _head(path, compression, self.label)
        if not head.strip():
            raise InvalidInputError("no rows: the file holds only blank lines", file=self.label)
        if fmt == "jsonl":
            self.sniffed = self._sniff_jsonl(head, compression)
            return
        self.sniffed = sniff_text(head, self.label, options, known_names)
        self.sniffed.compression = compression
        self.comment_lines = self.sniffed.skip_rows

    # -- JSON Lines ---------------------------------------------------------------
    def _sniff_jsonl(self, head: bytes, compression: str | None) -> Sniffed:
        if b"\x00" in head[:8192]:
            raise InvalidInputError("binary data (NUL bytes), not JSON Lines", file=self.label)
        err = _bad_utf8(head, self.label)
        if err is not None:
            raise err
        names: dict[str, None] = {}
        for i, line in enumerate(head.decode("utf-8", errors="ignore").splitlines()[:200]):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                if i == 0:
                    raise InvalidInputError(
                        "not JSON Lines: the first line is not a JSON object", file=self.label,
                        line=1,
                    ) from None
                continue
            if not isinstance(obj, dict):
                if i == 0:
                    raise InvalidInputError(
                        "not JSON Lines: each line must be a JSON object", file=self.label,
                        line=1,
                    )
                continue  # a bad row later on is rejected as invalid_json, not fatal
            names.update(dict.fromkeys(obj))
        return Sniffed(format="jsonl", compression=compression, names=tuple(names), header=True)

    # -- streaming ----------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Column names, from the header, the schema, or given for a headerless file."""
        return self.sniffed.names

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[tuple[pa.RecordBatch, int]]:
        """Yield ``(batch, first_ordinal)``; ordinals count yielded rows from 0."""
        fmt = self.sniffed.format
        if fmt == "frame":
            assert self._frame is not None
            table = self._frame.select(list(columns)) if columns else self._frame
            yield from self._count(table.to_batches(max_chunksize=BATCH_ROWS))
        elif fmt == "parquet":
            try:
                yield from self._count(
                    parquet_text(b, self.label)
                    for b in self._parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)
                )
            except (pa.ArrowException, OSError) as exc:
                raise InvalidInputError(f"unreadable Parquet data: {exc}", file=self.label) from exc
        elif fmt == "jsonl":
            yield from self._count(self._jsonl_batches())
        else:
            yield from self._count(self._csv_batches(columns))

    def _count(self, it: Iterator[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, int]]:
        start = 0
        for batch in it:
            if batch.num_rows == 0:
                continue
            yield batch, start
            start += batch.num_rows
            self.rows_read = start

    def _csv_batches(self, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        sn = self.sniffed
        assert self.path is not None
        names = list(sn.names)

        def on_invalid(row: Any) -> str:
            text = row.text or ""
            if sn.comment and text.startswith(sn.comment):
                self.comment_lines += 1
            elif not text.strip():
                self.blank_lines += 1
            else:
                self.malformed.append(
                    (int(row.number or 0), text,
                     f"expected {row.expected_columns} fields, found {row.actual_columns}")
                )
            self._handler_rows.append(int(row.number or 0))
            return "skip"

        stream: Any = parsed_stream(self.path, sn)
        try:
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(
                    use_threads=False,  # keeps the parser's row numbers exact
                    block_size=self.options.block_size,
                    skip_rows=sn.skip_rows + (1 if sn.header else 0),
                    column_names=names,
                ),
                parse_options=pcsv.ParseOptions(
                    delimiter=sn.delimiter or ",",
                    ignore_empty_lines=False,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    include_columns=list(columns) if columns else None,
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                yield self._drop_blank(batch)
        except pa.ArrowInvalid as exc:
            raise self._translate(exc) from exc
        except STREAM_ERRORS as exc:  # e.g. a gzip header followed by corrupt data
            raise stream_error(exc, sn.compression, self.label) from exc
        finally:
            with contextlib.suppress(*STREAM_ERRORS):
                stream.close()

    def _drop_blank(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        # A blank line parses as a row of empty strings: drop it and remember its position in
        # the parser's output, so that lines() can still number the rows after it exactly.
        before = self._parser_out_rows
        self._parser_out_rows += batch.num_rows
        if batch.num_columns == 0:
            return batch
        blank = pc.equal(pc.binary_length(batch.column(0)), 0)
        for i in range(1, batch.num_columns):
            blank = pc.and_(blank, pc.equal(pc.binary_length(batch.column(i)), 0))
        n_blank = pc.sum(blank).as_py() or 0
        if not n_blank:
            return batch
        self.blank_lines += n_blank
        idx = np.flatnonzero(blank.to_numpy(zero_copy_only=False))
        self._blank_out.append(before + idx)
        return batch.filter(pc.invert(blank))

    def _translate(self, exc: pa.ArrowInvalid) -> InvalidInputError:
        msg = str(exc)
        if "UTF8" in msg or "utf8" in msg.lower():
            assert self.path is not None
            found = _scan_utf8(self.path, self.sniffed.compression, self.label)
            if found is not None:
                return found
            return InvalidInputError("not valid UTF-8", file=self.label)
        return InvalidInputError(f"cannot parse as CSV: {msg}", file=self.label)

    def lines(self, ordinals: np.ndarray) -> np.ndarray:
        """1-based file lines (text) or row numbers (Parquet, DataFrame) of batch rows."""
        ordinals = np.asarray(ordinals, dtype=np.int64)
        fmt = self.sniffed.format
        if fmt != "csv":
            return ordinals + 1 if fmt != "jsonl" else self._jsonl_lines(ordinals)
        # The parser numbers rows by file line (skipped rows and header counted); rows its
        # invalid-row handler skipped never reach a batch, and blank rows were dropped from the
        # batches. Undo both, in the reverse order they were applied.
        base = self.sniffed.skip_rows + (1 if self.sniffed.header else 0)
        handler = np.sort(np.asarray(self._handler_rows, dtype=np.int64) - base - 1)
        blanks = np.sort(np.concatenate(self._blank_out or [np.zeros(0, np.int64)]))
        out_pos = ordinals + np.searchsorted(blanks - np.arange(len(blanks)), ordinals, "right")
        parser_row = out_pos + np.searchsorted(
            handler - np.arange(len(handler)), out_pos, "right"
        )
        return parser_row + base + 1

    def malformed_rejects(self) -> list[tuple[int, str, str]]:
        """(line, text, detail) of the rows the parser could not split."""
        return [(n, text, detail) for n, text, detail in self.malformed]

    def _jsonl_batches(self) -> Iterator[pa.RecordBatch]:
        # Python line parser: exact line numbers and one bad line rejects one row, not the file.
        assert self.path is not None
        self._json_lines: list[np.ndarray] = []
        self.invalid_json: list[tuple[int, str, str]] = []
        names = list(self.sniffed.names)
        rows: dict[str, list[str | None]] = {n: [] for n in names}
        line_nos: list[int] = []
        try:
            yield from self._jsonl_rows(rows, names, line_nos)
        except STREAM_ERRORS as exc:  # e.g. a gzip header followed by corrupt data
            raise stream_error(exc, self.sniffed.compression, self.label) from exc

    def _jsonl_rows(self, rows: dict[str, list[str | None]], names: list[str],
                    line_nos: list[int]) -> Iterator[pa.RecordBatch]:
        assert self.path is not None
        with _open_bytes(self.path, self.sniffed.compression) as f:
            for line_no, raw_line in enumerate(f, start=1):
                try:
                    text = raw_line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInputError(
                        f"not valid UTF-8 (byte 0x{raw_line[exc.start]:02x} at character "
                        f"{exc.start + 1})",
                        file=self.label,
                        line=line_no,
                    ) from exc
                if not text.strip():
                    self.blank_lines += 1
                    continue
                try:
                    obj = json.loads(text)
                    if not isinstance(obj, dict):
                        raise ValueError("not an object")
                except ValueError as exc:
                    self.invalid_json.append((line_no, text.rstrip("\n"), str(exc)))
                    continue
                for k in obj:
                    if k not in rows:
                        rows[k] = [None] * len(line_nos)
                        names.append(k)
                for k in names:
                    v = obj.get(k)
                    if v is not None and not isinstance(v, str):
                        if isinstance(v, (dict, list)):  # kept as text; an id refuses it
                            self.nested_lines.setdefault(k, []).append(line_no)
                        v = json.dumps(v)
                    rows[k].append(v)
                line_nos.append(line_no)
                if len(line_nos) >= JSONL_BATCH_ROWS:
                    yield self._json_batch(rows, names, line_nos)
                    rows = {n: [] for n in names}
                    line_nos = []
        if line_nos:
            yield self._json_batch(rows, names, line_nos)
        self.sniffed.names = tuple(names)

    def _json_batch(
        self, rows: dict[str, list[str | None]], names: list[str], line_nos: list[int]
    ) -> pa.RecordBatch:
        self._json_lines.append(np.asarray(line_nos, dtype=np.int64))
        return pa.RecordBatch.from_pydict(
            {n: pa.array(rows[n], pa.string()) for n in names}
        )

    def _jsonl_lines(self, ordinals: np.ndarray) -> np.ndarray:
        allv = np.concatenate(self._json_lines) if self._json_lines else np.zeros(0, np.int64)
        return allv[ordinals]


def _scan_utf8(path: Path, compression: str | None, label: str) -> InvalidInputError | None:
    """Find the first invalid UTF-8 byte in a file (error path only, so a slow scan is fine)."""
    with _open_bytes(path, compression) as f:
        for line_no, raw_line in enumerate(f, start=1):
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return InvalidInputError(
                    f"not valid UTF-8 (byte 0x{raw_line[exc.start]:02x} at character "
                    f"{exc.start + 1}); re-save the file as UTF-8",
                    file=label,
                    line=line_no,
                )
    return None


def check_parquet_columns(schema: pa.Schema, label: str) -> None:
    """Refuse a Parquet file with a column carenet cannot read as text, numbers or times (a
    list, struct, map or union): one error naming the file and the column, not a traceback
    from deep in a cast.
    """
    for f in schema:
        t = f.type
        if (pa.types.is_nested(t) or pa.types.is_union(t)
                or (pa.types.is_dictionary(t) and pa.types.is_nested(t.value_type))):
            raise InvalidInputError(
                f"holds {t} values; carenet reads text, number and time columns: flatten or "
                "drop this column before loading", file=label, column=f.name)


def parquet_text(batch: pa.RecordBatch, label: str) -> pa.RecordBatch:
    """A Parquet batch with its binary columns as UTF-8 text; binary data that is not text is
    an error naming the file and the column.
    """
    binary = [i for i, f in enumerate(batch.schema)
              if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
              or pa.types.is_fixed_size_binary(f.type)]
    if not binary:
        return batch
    arrays = list(batch.columns)
    for i in binary:
        try:
            arrays[i] = pc.cast(pc.cast(arrays[i], pa.binary()), pa.string())
        except pa.ArrowInvalid:
            raise InvalidInputError("holds binary data that is not UTF-8 text; store ids, "
                                    "channels and times as text or numbers", file=label,
                                    column=batch.schema.names[i]) from None
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _frame_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A DataFrame as an Arrow table; object columns of mixed types become strings."""
    cols = {}
    for name in frame.columns:
        s = frame[name]
        if s.dtype == object:
            s = s.map(lambda v: v if v is None or isinstance(v, str) else str(v)).astype("string")
        cols[str(name)] = s
    try:
        return pa.Table.from_pandas(pd.DataFrame(cols), preserve_index=False)
    except (pa.ArrowException, ValueError) as exc:
        raise InvalidInputError(f"cannot read the DataFrame: {exc}", file="<DataFrame>") from exc


def as_strings(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """An array as Arrow strings (nulls kept); numbers formatted without a trailing '.0'."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    if pa.types.is_floating(arr.type):
        vals = arr.to_numpy(zero_copy_only=False)
        whole = np.isfinite(vals) & (np.floor(vals) == vals)
        if whole.all():
            return pc.cast(pc.cast(arr, pa.int64()), pa.string())
    if pa.types.is_dictionary(arr.type):
        return pc.cast(arr.dictionary_decode(), pa.string())
    return pc.cast(arr, pa.string())
