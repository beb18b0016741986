"""From interaction logs to a :class:`CustomerGraph`.

Edge weight = sum over the interactions u -> v of ``channel weight x interaction weight x
2 ** (-age / half_life)``, with age measured from the reference time (default: the newest
timestamp of all logs). Logs are streamed batch by batch and aggregated as they come, so a log
larger than memory needs memory only for its distinct ties.

Streaming with a reference time that is only known at the end works because decay factorises:
``2 ** (-(R - t) / h) = 2 ** (-(R - R_b) / h) * 2 ** (-(R_b - t) / h)``. Each batch is weighted
against the newest time seen so far (``R_b``), and rescaled once when the final ``R`` is known.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from carenet.errors import EmptyGraphError, InvalidInputError
from carenet.graphs import _kernels
from carenet.graphs.ids import IdTable, Pseudonymizer
from carenet.graphs.logs import (
    ChannelRegistry,
    FileReport,
    LogOptions,
    LogReader,
    LogSource,
    TableOptions,
    read_customers,
    read_events,
)
from carenet.graphs.model import CustomerGraph, NodeActivity
from carenet.graphs.tables import RejectLog

T = TypeVar("T")
Progress = Callable[[str, int], None]
"""Progress callback: (step name, rows done so far)."""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str | float | int | None) -> float | None:
    """Seconds in a duration such as ``"30d"``, ``"12h"``, ``"90m"``, ``3600``; ``None``/``"none"``
    mean no duration.

    >>> parse_duration("30d"), parse_duration("1.5h"), parse_duration(None)
    (2592000.0, 5400.0, None)
    """
    if text is None:
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = text.strip().lower()
        if s in ("", "none", "off", "0"):
            return None
        unit = _UNITS.get(s[-1])
        try:
            value = float(s[:-1]) * unit if unit is not None else float(s)
        except ValueError:
            raise InvalidInputError(
                f"cannot read duration {text!r}; use a number of seconds or e.g. 30d, 12h, 90m"
            ) from None
    if not np.isfinite(value) or value <= 0:
        raise InvalidInputError(f"a duration must be positive, not {text!r}")
    return value


def prefetch(iterable: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead.

    Reading and validating a batch (pyarrow, releases the GIL) then overlaps with encoding and
    aggregating the previous one (numba, ``nogil``): the two cores of a laptop both work.
    Exceptions raised while producing are re-raised in the consumer. The thread starts with
    the iteration (:class:`Ahead` starts it at once).
    """
    ahead = Ahead(iterable, depth)
    try:
        yield from ahead
    finally:
        ahead.close()


class Ahead(Iterator[T]):
    """``iterable`` made by a thread started now, up to ``depth`` items ahead of the
    consumer; exceptions raised while producing are re-raised in the consumer. :meth:`close`
    (also after an exception of the consumer's) stops the thread.
    """

    def __init__(self, iterable: Iterable[T], depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._worker = threading.Thread(target=self._produce, args=(iterable,),
                                        name="carenet-prefetch", daemon=True)
        self._worker.start()

    def _produce(self, iterable: Iterable[T]) -> None:
        try:
            for item in iterable:
                if not self._put((True, item)):
                    return
            self._put((False, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put((False, exc))

    def _put(self, entry: tuple[bool, Any]) -> bool:
        """Queue ``entry`` unless the consumer closed first (False then)."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        ok, item = self._queue.get()
        if not ok:
            self._done = True
            if item is not None:
                raise item
            raise StopIteration
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the producing thread (the items it has not handed over are dropped)."""
        self._done = True
        self._stop.set()
        self._worker.join(timeout=5)


@dataclass
class LoadReport:
    """Counts and decisions of one load, over all its files; ``to_dict()`` is JSON-ready."""

    files: list[FileReport] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    reference_time: float | None = None
    half_life: float | None = None
    channels: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        """Interaction rows read over all logs."""
        return sum(f.rows_read for f in self.files if f.kind == "log")

    @property
    def rows_loaded(self) -> int:
        """Interaction rows accepted over all logs."""
        return sum(f.rows_loaded for f in self.files if f.kind == "log")

    @property
    def rows_rejected(self) -> int:
        """Interaction rows rejected over all logs."""
        return sum(f.rows_rejected for f in self.files if f.kind == "log")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "rejected": {k: int(v) for k, v in self.rejected.items()},
            "reference_time": self.reference_time,
            "half_life": self.half_life,
            "channels": list(self.channels),
            "files": [f.to_dict() for f in self.files],
        }


@dataclass(frozen=True, eq=False)
class Interactions:
    """Every loaded interaction with a time, in load order: node positions ``src``/``dst``,
    epoch seconds ``time`` and the channel code (-1: none). Kept so that steps which need
    the log's timing (lapses, the churn-risk model) do not read the log twice.
    """

    src: np.ndarray
    dst: np.ndarray
    time: np.ndarray
    channel: np.ndarray

    def __len__(self) -> int:
        return int(self.time.size)


@dataclass(frozen=True, eq=False)
class LoadedNetwork:
    """Everything one load produced: the graph, the side tables aligned to it, the report and
    the rejected rows.

    ``customers`` has one row per graph node (position = row), with ``customer_id``, ``value``,
    ``segment``, ``churn_score``, ``in_log`` and any extra attributes; ``events`` has ``node``,
    ``customer_id``, ``event``, ``timestamp``.
    """

    graph: CustomerGraph
    customers: pd.DataFrame
    events: pd.DataFrame
    report: LoadReport
    rejects: RejectLog
    interactions: Interactions | None = None
    """The timed interactions (None when the logs have no timestamps)."""


_Part = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]


class _EdgeAccumulator:
    """Aggregates interaction contributions into ties as batches stream in."""

    def __init__(self, half_life: float | None, reference_time: float | None,
                 compact_rows: int) -> None:
        self.half_life = half_life
        self.fixed_ref = reference_time
        self.ref = reference_time if reference_time is not None else -np.inf
        self.compact_rows = compact_rows
        # parts: (src, dst, weight, count, channels, reference time they are weighted against)
        self.parts: list[_Part] = []
        self.rows = 0
        # base: the compacted ties as CSR (indptr, indices, weight, count, channels, reference)
        self.base: _Part | None = None
        self.has_time = False
        self.span = _Span()

    def add(self, src: np.ndarray, dst: np.ndarray, t: np.ndarray | None,
            w: np.ndarray, ch: np.ndarray) -> None:
        if t is not None and len(t):
            self.has_time = True
            if self.fixed_ref is None:
                self.ref = max(self.ref, float(t.max()))
            if self.half_life is not None:
                w = w * np.exp2((t - self.ref) / self.half_life)
        self.span.update(src, dst, t)
        self.parts.append((src, dst, w, np.ones(len(src), np.uint32), ch, self.ref))
        self.rows += len(src)
        if self.rows >= self.compact_rows:
            self._compact(int(max(src.max(initial=0), dst.max(initial=0))) + 1)

    def _rescaled(self, w: np.ndarray, ref: float) -> np.ndarray:
        if self.half_life is None or ref == self.ref or not np.isfinite(ref):
            return w
        return w * np.exp2((ref - self.ref) / self.half_life)

    def _compact(self, n: int) -> None:
        parts = list(self.parts)
        if self.base is not None:
            indptr, idx, wt, cnt, chm, ref = self.base
            rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int32), np.diff(indptr))
            parts.insert(0, (rows, idx, wt, cnt, chm, ref))
        n = max([n] + [int(p[0].max(initial=-1)) + 1 for p in parts]
                + [int(p[1].max(initial=-1)) + 1 for p in parts])
        if len(parts) == 1:
            src, dst, w, c, ch, ref = parts[0]
            w = self._rescaled(w, ref)
        else:
            src = np.concatenate([p[0] for p in parts])
            dst = np.concatenate([p[1] for p in parts])
            w = np.concatenate([self._rescaled(p[2], p[5]) for p in parts])
            c = np.concatenate([p[3] for p in parts])
            ch = np.concatenate([p[4] for p in parts])
        self.parts.clear()
        self.rows = 0
        del parts
        self.base = (*_kernels.reduce_edges(n, src, dst, w, c, ch), self.ref)

    def finish(self, n: int) -> tuple[np.ndarray, ...]:
        if self.parts or self.base is None or len(self.base[0]) != n + 1:
            self._compact(n)
        assert self.base is not None
        return self.base[:5]


class _Span:
    """First and last interaction time per node, grown as ids appear."""

    def __init__(self) -> None:
        self.span = np.empty((0, 2))

    def update(self, src: np.ndarray, dst: np.ndarray, t: np.ndarray | None) -> None:
        if t is None or not len(src):
            return
        n = int(max(src.max(), dst.max())) + 1
        if n > len(self.span):
            grown = np.empty((max(n, 2 * len(self.span), 1024), 2))
            grown[:, 0] = np.inf
            grown[:, 1] = -np.inf
            grown[: len(self.span)] = self.span
            self.span = grown
        _kernels.update_span(src, dst, t, self.span)

    def result(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        out = np.full((n, 2), np.nan)
        k = min(n, len(self.span))
        out[:k] = self.span[:k]
        out[~np.isfinite(out)] = np.nan
        return out[:, 0].copy(), out[:, 1].copy()


class GraphBuilder:
    """Loads logs and side tables into one id table, then builds the graph.

    >>> import pandas as pd
    >>> b = GraphBuilder()
    >>> _ = b.add_log(pd.DataFrame({"source": ["a", "a", "b"], "target": ["b", "b", "c"]}))
    >>> net = b.build()
    >>> net.graph.n_customers, net.graph.n_ties, net.graph.weights.tolist()
    (3, 2, [2.0, 1.0])
    """

    def __init__(
        self,
        *,
        half_life: float | str | None = None,
        reference_time: float | None = None,
        channels: Sequence[str] | None = None,
        channel_weights: Mapping[str, float] | None = None,
        pseudonymize: bool | Pseudonymizer = False,
        compact_rows: int = 32_000_000,
        progress: Progress | None = None,
    ) -> None:
        self.half_life = parse_duration(half_life)
        self.reference_time = reference_time
        self.channels = ChannelRegistry(channels, channel_weights)
        self.rejects = RejectLog()
        if isinstance(pseudonymize, Pseudonymizer):
            self.pseudonymizer: Pseudonymizer | None = pseudonymize
        else:
            self.pseudonymizer = Pseudonymizer.from_env() if pseudonymize else None
        self.ids = IdTable()
        self._acc = _EdgeAccumulator(self.half_life, reference_time, compact_rows)
        self.report = LoadReport(half_life=self.half_life)
        self._customers: list[pd.DataFrame] = []
        self._events: list[pd.DataFrame] = []
        self._event_sources: list[tuple[LogSource, TableOptions, str | None]] = []
        self._progress = progress
        self._timer: dict[str, float] = {}
        self._timed: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def _tick(self, step: str, t0: float) -> None:
        self.report.timings[step] = self.report.timings.get(step, 0.0) + time.perf_counter() - t0

    def add_log(self, source: LogSource, options: LogOptions = LogOptions(), *,
                label: str | None = None) -> FileReport:
        """Stream one interaction log into the graph; returns its file report."""
        t0 = time.perf_counter()
        reader = LogReader(
            source, options, channels=self.channels, rejects=self.rejects,
            pseudonymizer=self.pseudonymizer, reference_time=self.reference_time, label=label,
        )
        weights_by_channel = None
        done = 0
        for batch in prefetch(reader):
            src = self.ids.encode(batch.source)
            dst = self.ids.encode(batch.target)
            w = batch.weight if batch.weight is not None else np.ones(len(batch), np.float64)
            if batch.channel is not None:
                weights_by_channel = self.channels.weight_vector()
                w = w * weights_by_channel[batch.channel]
                ch = (np.uint16(1) << batch.channel.astype(np.uint16)).astype(np.uint16)
            else:
                ch = np.zeros(len(batch), np.uint16)
            self._acc.add(src, dst, batch.time, w, ch)
            if batch.time is not None:
                code = (batch.channel.astype(np.int16) if batch.channel is not None
                        else np.full(len(batch), -1, np.int16))
                self._timed.append((src.astype(np.int32), dst.astype(np.int32),
                                    np.asarray(batch.time, np.float64), code))
            done += len(batch)
            if self._progress is not None:
                self._progress("load", done)
        self.report.files.append(reader.report)
        self._tick("load_logs", t0)
        return reader.report

    def add_customers(self, source: LogSource, options: TableOptions = TableOptions(), *,
                      label: str | None = None) -> FileReport:
        """Read a customers table; customers not in any log become isolated nodes."""
        t0 = time.perf_counter()
        frame, report = read_customers(source, options, rejects=self.rejects,
                                       pseudonymizer=self.pseudonymizer, label=label)
        frame["node"] = self.ids.encode(pa.array(frame["customer_id"].tolist(), pa.string()))
        self._customers.append(frame)
        self.report.files.append(report)
        self._tick("load_customers", t0)
        return report

    def add_events(self, source: LogSource, options: TableOptions = TableOptions(), *,
                   label: str | None = None) -> None:
        """Queue an events table; it is read at :meth:`build`, once every customer is known."""
        self._event_sources.append((source, options, label))

    def build(self, *, symmetrize: bool = False, min_weight: float = 0.0) -> LoadedNetwork:
        """Finish aggregation and return the graph with its aligned side tables.

        Ties with weight ``<= 0`` or below ``min_weight`` are dropped (customers stay, maybe
        isolated). ``symmetrize`` merges u -> v and v -> u into one undirected tie.
        """
        t0 = time.perf_counter()
        for source, options, label in self._event_sources:
            frame, report = read_events(
                source, options, rejects=self.rejects, lookup=self.ids.lookup,
                pseudonymizer=self.pseudonymizer, label=label,
            )
            self._events.append(frame)
            self.report.files.append(report)
        self._event_sources.clear()
        self._tick("load_events", t0)
        t0 = time.perf_counter()
        n = len(self.ids)
        if n == 0:
            raise EmptyGraphError(
                "no customers: every interaction row was rejected or the inputs are empty "
                f"(rejected: {self.rejects.counts() or 'none'})"
            )
        indptr, idx, wt, cnt, chm = self._acc.finish(n)
        raw_ids = self.ids.to_numpy()
        ids = self.pseudonymizer.many(raw_ids) if self.pseudonymizer is not None else raw_ids
        if self.pseudonymizer is not None and len(set(ids.tolist())) != len(ids):
            raise InvalidInputError("two customer ids share a pseudonym; use another salt")
        ref = self._acc.ref if np.isfinite(self._acc.ref) else None
        if not self._acc.has_time:
            ref = self.reference_time
        first_seen, last_seen = self._acc.span.result(n)
        sources = np.repeat(np.arange(n, dtype=np.int32), np.diff(indptr))
        activity = NodeActivity(
            first_seen, last_seen,
            np.bincount(sources, weights=cnt, minlength=n).astype(np.int64),
            np.bincount(idx, weights=cnt, minlength=n).astype(np.int64),
        )
        graph = CustomerGraph(
            ids, indptr, idx, wt, cnt, chm, tuple(self.channels.names), True,
            ref, self.half_life if self._acc.has_time else None, activity,
        )
        graph.derived("sources", lambda: sources)
        # Subnormal weights (< 2.2e-308, e.g. a tie decayed over thousands of half-lives) count
        # as zero: their value depends on the order of floating-point rescaling, so keeping
        # them would make the tie set depend on how the log was streamed.
        keep = graph.weights >= np.finfo(np.float64).tiny
        if min_weight > 0:
            keep &= graph.weights >= min_weight
        if not keep.all():
            graph = graph.filter_ties(keep)
        if symmetrize:
            graph = graph.symmetrize()
        self._tick("build_graph", t0)
        customers = self._customer_table(graph, ids)
        events = (
            pd.concat(self._events, ignore_index=True)
            if self._events
            else pd.DataFrame({"node": pd.Series(dtype=np.int64),
                               "customer_id": pd.Series(dtype=object),
                               "event": pd.Series(dtype=object),
                               "timestamp": pd.Series(dtype=np.float64)})
        )
        if len(events):
            events["customer_id"] = ids[events["node"].to_numpy()]
        self.report.reference_time = graph.reference_time
        self.report.half_life = graph.half_life
        self.report.channels = list(graph.channel_names)
        self.report.rejected = self.rejects.counts()
        if self.half_life is not None and not self._acc.has_time:
            for f in self.report.files:
                if f.kind == "log":
                    f.notes.append("half-life ignored: the log has no timestamp column")
        timed = None
        if self._timed:
            timed = Interactions(*(np.concatenate([p[i] for p in self._timed])
                                   for i in range(4)))
            self._timed.clear()
        return LoadedNetwork(graph, customers, events, self.report, self.rejects, timed)

    def _customer_table(self, graph: CustomerGraph, ids: np.ndarray) -> pd.DataFrame:
        return customer_table(ids, graph.activity, self._customers)


def customer_table(ids: np.ndarray, activity: NodeActivity | None,
                   frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The per-customer side columns (``in_log``, ``value``, ``churn_score``, ``segment`` and
    every other customers-table column) from the customers tables' rows (``node`` positions);
    one function for the local loader and the Spark engine, so both build the same table.
    """
    n = len(ids)
    base = pd.DataFrame({"customer_id": ids})
    base["in_log"] = (activity.sent + activity.received > 0) if activity is not None else True
    base["value"] = np.nan
    base["churn_score"] = np.nan
    base["segment"] = pd.Series([None] * n, dtype=object)
    for frame in frames:
        nodes = frame["node"].to_numpy()
        for col in frame.columns:
            if col in ("node", "customer_id"):
                continue
            if col not in base:
                base[col] = pd.Series(
                    np.full(n, np.nan) if frame[col].dtype.kind == "f" else [None] * n)
            values = base[col].to_numpy(copy=True)
            if values.dtype.kind == "f" and frame[col].dtype.kind != "f":
                values = values.astype(object)
            values[nodes] = frame[col].to_numpy()
            base[col] = values
    return base


def load_network(
    logs: LogSource | Sequence[LogSource],
    *,
    customers: LogSource | None = None,
    events: LogSource | None = None,
    log_options: LogOptions = LogOptions(),
    customer_options: TableOptions = TableOptions(),
    event_options: TableOptions = TableOptions(),
    half_life: float | str | None = None,
    reference_time: float | None = None,
    channels: Sequence[str] | None = None,
    channel_weights: Mapping[str, float] | None = None,
    pseudonymize: bool = False,
    symmetrize: bool = False,
    min_weight: float = 0.0,
    progress: Progress | None = None,
) -> LoadedNetwork:
    """Load one or more logs (plus optional customers and events tables) into a graph.

    >>> import pandas as pd
    >>> log = pd.DataFrame({"from": ["a", "b", "a"], "to": ["b", "a", "a"]})
    >>> net = load_network(log)
    >>> net.graph.n_ties, net.report.rejected
    (2, {'self_interaction': 1})
    """
    builder = GraphBuilder(
        half_life=half_life, reference_time=reference_time, channels=channels,
        channel_weights=channel_weights, pseudonymize=pseudonymize, progress=progress,
    )
    many = logs if isinstance(logs, (list, tuple)) else [logs]
    for log in many:
        builder.add_log(log, log_options)
    if customers is not None:
        builder.add_customers(customers, customer_options)
    if events is not None:
        builder.add_events(events, event_options)
    return builder.build(symmetrize=symmetrize, min_weight=min_weight)


def build_graph(log: LogSource | Sequence[LogSource], **kwargs: Any) -> CustomerGraph:
    """Just the graph of a log (see :func:`load_network` for the options)."""
    return load_network(log, **kwargs).graph
