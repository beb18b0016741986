"""Backtest on real logs: would scores computed before a cutoff have found who churned next.

For each cutoff ``T`` (with ``h`` the horizon and ``W`` the activity window, default ``h``):

1. **Read the log once** (:func:`read_log`), keeping every interaction's ids, time, channel
   and weight; a log without timestamps cannot be backtested.
2. **Labels** (:mod:`carenet.evaluation.stats`): the population is the customers with an
   interaction in ``[T - W, T)``; one of them *churned* if it is silent (sends and receives
   nothing) during ``[T, T + h)``, or, given an events table, has a churn event there (and
   none before ``T``).
3. **Scores from the past only**: :func:`carenet.pipeline.analyze` runs on the interactions
   before ``T`` with ``T`` as its reference time. Exposure needs customers who churned
   *before* ``T``: from the events table (events before ``T``) or, without one, **synthetic
   churn events**: the customers active in ``[T - h - W, T - h)`` and silent in ``[T - h, T)``
   (the same silence rule one horizon earlier), dated at their last interaction.
4. **Baselines**: degree (in + out) and PageRank of the pre-cutoff graph; recency-frequency
   of the customer's own activity; a classifier on own-activity features; the same
   classifier with network features added (degree, strength, PageRank, k-core, exposure,
   influence, churned neighbours and their share, community churn share, ...).
   The classifiers are trained **out of time**: features computed at ``T - h`` (a second
   analysis of the interactions before ``T - h``) and labels of ``[T - h, T)``, then applied to
   the features at ``T``. No label of the evaluation period is ever seen in training.
5. **Metrics** per score: AUC with DeLong interval, lift at the top 1%, 5% and 10%, churners
   captured by a budget of ``K`` contacts, and the lift curve; the network classifier is
   compared with the own-activity classifier by a paired DeLong test.
6. **Value a care team buys**: the share of churned value captured by the top 5% of
   priority, risk alone, value alone, degree and PageRank, with percentile bootstrap
   intervals on common resamples and each score's paired difference to the best other
   (value: the customers table's ``value``, else the customer's active days in the window).

Every cutoff is checked before any is computed: inside the log, horizon before its end, and
no *gap* (a period with no interaction at all, :func:`carenet.community.lapse.find_gaps`)
inside the windows it reads; the gaps are reported in backtest.json.

With a truth table from ``carenet generate`` (``truth=``), every metric is also computed for
the target ``cascade``: the churners infected through a tie (the generator's
``infected_by``), against the customers who did not churn (spontaneous churners left out).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from threadpoolctl import threadpool_limits

from carenet.community.lapse import Gap, find_gaps, overlapping
from carenet.config import AnalysisConfig, InputConfig, parse_time
from carenet.errors import InvalidInputError
from carenet.evaluation import stats as bt
from carenet.graphs.build import parse_duration
from carenet.graphs.ids import IdTable
from carenet.graphs.logs import ChannelRegistry, LogReader, LogSource, read_events
from carenet.graphs.tables import RejectLog
from carenet.pipeline import AnalysisRun, analyze, library_versions

DAY = bt.DAY
CLASSIFIERS = ("logistic", "hgb")
NETWORK_FEATURES = ("degree_in", "degree_out", "strength_in", "strength_out", "pagerank",
                    "eigenvector", "core", "exposure", "influence", "churned_neighbours",
                    "churned_neighbour_share", "churned_tie_share", "community_churn_share")
"""Network features added to the own-activity features (those the run computed)."""

VALUE_SCORES = ("priority", "risk", "value", "degree", "pagerank")
"""The scores whose value captured at 5% the backtest compares, with bootstrap intervals."""

Report = Callable[[str], None]


def _quiet(message: str) -> None:
    return None


# ---------------------------------------------------------------------------- the log
@dataclass(frozen=True, eq=False)
class InteractionLog:
    """A whole interaction log in memory, read once: node-coded ids and per-row arrays.

    ``ids`` (external ids by node position, an Arrow string array), ``src``/``dst`` (node
    positions), ``time`` (epoch seconds), ``channel`` (names or None), ``weight`` (or None).
    :meth:`before` cuts the log as a canonical Arrow table for :func:`analyze`.
    """

    label: str
    ids: pa.Array
    src: np.ndarray
    dst: np.ndarray
    time: np.ndarray
    channel: pa.Array | None
    weight: np.ndarray | None
    rejects: pd.DataFrame
    id_table: IdTable

    @property
    def n_customers(self) -> int:
        """Distinct customers in the log."""
        return len(self.ids)

    @property
    def start(self) -> float:
        """The first interaction's time (epoch seconds)."""
        return float(self.time.min())

    @property
    def end(self) -> float:
        """The last interaction's time (epoch seconds)."""
        return float(self.time.max())

    def before(self, at: float) -> pa.Table:
        """The interactions strictly before ``at``: source, target, timestamp[, channel,
        weight].
        """
        keep = np.flatnonzero(self.time < at)
        take = pa.array(keep)
        cols: dict[str, pa.Array] = {
            "source": self.ids.take(pa.array(self.src[keep])),
            "target": self.ids.take(pa.array(self.dst[keep])),
            "timestamp": pa.array(self.time[keep]),
        }
        if self.channel is not None:
            cols["channel"] = self.channel.take(take)
        if self.weight is not None:
            cols["weight"] = pa.array(self.weight[keep])
        return pa.table(cols)

    def input_config(self) -> InputConfig:
        """How :func:`analyze` reads the tables :meth:`before` returns."""
        return InputConfig(source_col="source", target_col="target", time_col="timestamp",
                           channel_col="channel" if self.channel is not None else "",
                           weight_col="weight" if self.weight is not None else "",
                           time_unit="s", format="auto")


def read_log(source: LogSource, config: AnalysisConfig = AnalysisConfig()) -> InteractionLog:
    """Read and validate a whole log (as ``analyze`` would) into an :class:`InteractionLog`.

    Raises :class:`InvalidInputError` when the log has no timestamp column or no valid row.
    """
    options = config.input.log_options()
    registry = ChannelRegistry(config.graph.channels, config.graph.channel_weights)
    rejects = RejectLog()
    reader = LogReader(source, options, channels=registry, rejects=rejects)
    if "timestamp" not in reader.columns:
        raise InvalidInputError(
            "a backtest needs a timestamp column, and none was found (columns: "
            f"{', '.join(reader.table.names)}); name it with --time-col", file=reader.table.label,
        )
    ids = IdTable()
    srcs, dsts, times, chans, weights = [], [], [], [], []
    for batch in reader:
        srcs.append(ids.encode(batch.source))
        dsts.append(ids.encode(batch.target))
        assert batch.time is not None
        times.append(batch.time)
        if batch.channel is not None:
            chans.append(batch.channel)
        if batch.weight is not None:
            weights.append(batch.weight)
    if not srcs:
        raise InvalidInputError(
            f"no valid interaction (rejected: {rejects.counts() or 'none'})",
            file=reader.table.label,
        )
    channel = None
    if chans:
        names = pa.array(list(registry.names), pa.string())
        channel = names.take(pa.array(np.concatenate(chans).astype(np.int64)))
    return InteractionLog(
        label=reader.table.label, ids=pa.array(ids.to_numpy().tolist(), pa.string()),
        src=np.concatenate(srcs).astype(np.int64), dst=np.concatenate(dsts).astype(np.int64),
        time=np.concatenate(times), channel=channel,
        weight=np.concatenate(weights) if weights else None,
        rejects=rejects.to_frame(), id_table=ids,
    )


# ---------------------------------------------------------------------------- options
@dataclass(frozen=True)
class BacktestOptions:
    """Settings of a backtest. ``horizon_days``: length of the period whose churn is
    predicted; ``lookback_days``: the activity window that defines the population (default:
    the horizon); ``budget``: contacts K for "churn captured by K" (default: 5% of the
    population); ``classifier``: ``logistic`` (scaled log features, L2) or ``hgb``
    (histogram gradient boosting); ``churn_events``: event kinds that mean churn in an
    events table; ``confidence``: level of the AUC and value-capture intervals;
    ``resamples``: bootstrap resamples of the value-capture intervals.
    """

    horizon_days: float
    lookback_days: float | None = None
    budget: int | None = None
    classifier: str = "logistic"
    churn_events: tuple[str, ...] = ("churn",)
    confidence: float = 0.95
    min_class: int = 5
    resamples: int = 200

    def __post_init__(self) -> None:
        if not self.horizon_days > 0:
            raise InvalidInputError(f"--horizon must be > 0 days, not {self.horizon_days:g}")
        if self.lookback_days is not None and not self.lookback_days > 0:
            raise InvalidInputError(f"--lookback must be > 0 days, not {self.lookback_days:g}")
        if self.budget is not None and self.budget < 1:
            raise InvalidInputError(f"--budget must be >= 1 contact, not {self.budget}")
        if self.classifier not in CLASSIFIERS:
            raise InvalidInputError(
                f"classifier must be one of {', '.join(CLASSIFIERS)}, not {self.classifier!r}"
            )
        if not 0 < self.confidence < 1:
            raise InvalidInputError(f"confidence must be in (0, 1), not {self.confidence}")

    @property
    def horizon(self) -> float:
        """The horizon in seconds."""
        return self.horizon_days * DAY

    @property
    def lookback(self) -> float:
        """The activity window in seconds."""
        return (self.lookback_days if self.lookback_days is not None else self.horizon_days) * DAY


def resolve_cutoff(text: str | float, log: InteractionLog) -> float:
    """A cutoff as epoch seconds: ISO 8601, epoch seconds, or ``"60%"`` of the way through
    the log's time span.
    """
    if isinstance(text, str) and text.strip().endswith("%"):
        try:
            share = float(text.strip()[:-1]) / 100.0
        except ValueError:
            raise InvalidInputError(f"cutoff {text!r}: not a percentage") from None
        return log.start + share * (log.end - log.start)
    return parse_time(text)


def _iso(t: float) -> str:
    return pd.Timestamp(t, unit="s", tz="UTC").isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class CutoffResult:
    """The backtest at one cutoff: labels, training summary, metrics, curve and scores."""

    cutoff: float
    labels: dict[str, Any]
    training: dict[str, Any]
    metrics: pd.DataFrame
    curve: pd.DataFrame
    scores: pd.DataFrame
    comparison: dict[str, Any]
    cascade: dict[str, Any]
    notes: list[str]
    timings: dict[str, float]
    capture: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary of this cutoff."""
        return {
            "cutoff": _iso(self.cutoff), "cutoff_epoch": float(self.cutoff),
            "labels": self.labels, "training": self.training,
            "metrics": _records(self.metrics), "comparison": self.comparison,
            "cascade": self.cascade, "notes": list(self.notes),
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
        }


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """A backtest over one or more cutoffs; :meth:`save` writes the contract's files."""

    log: str
    options: BacktestOptions
    parameters: dict[str, Any]
    cutoffs: list[CutoffResult]
    log_span: tuple[float, float]
    rows: dict[str, int]
    versions: dict[str, str] = field(default_factory=library_versions)
    gaps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def value_capture(self) -> pd.DataFrame:
        """Per cutoff and score: the share of churned value captured by the top 5%, with its
        bootstrap interval and the paired difference to the best other score.
        """
        parts = [c.capture for c in self.cutoffs if len(c.capture)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per (cutoff, target, score)."""
        return pd.concat([c.metrics for c in self.cutoffs], ignore_index=True)

    @property
    def lift_curve(self) -> pd.DataFrame:
        """``score, fraction, lift, captured, value_captured`` (+ ``k``, ``target``,
        ``cutoff``): lift, share of churners and share of churned value in the top fraction.
        """
        return pd.concat([c.curve for c in self.cutoffs], ignore_index=True)

    @property
    def scores(self) -> pd.DataFrame:
        """Every customer of every population with its label(s) and scores."""
        return pd.concat([c.scores for c in self.cutoffs], ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        """What ``backtest.json`` holds."""
        return {
            "log": self.log,
            "log_span": [_iso(self.log_span[0]), _iso(self.log_span[1])],
            "rows": self.rows,
            "options": dataclasses.asdict(self.options) | {
                "lookback_days": self.options.lookback / DAY},
            "parameters": self.parameters,
            "cutoffs": [c.to_dict() for c in self.cutoffs],
            "gaps": self.gaps,
            "versions": self.versions,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``backtest.json``, ``metrics.csv``, ``lift_curve.csv``, ``value_capture.csv``
        and ``scores.parquet``
        (the plots and the HTML page are drawn by :mod:`carenet.viz.backtest_plot`).
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "backtest.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        self.metrics.to_csv(d / "metrics.csv", index=False)
        self.lift_curve.to_csv(d / "lift_curve.csv", index=False)
        self.value_capture.to_csv(d / "value_capture.csv", index=False)
        self.scores.to_parquet(d / "scores.parquet", index=False)
        return d


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in frame.to_dict("records"):
        out.append({str(k): (v.item() if isinstance(v, np.generic) else v)
                    for k, v in row.items()})
    for rec in out:
        for k, v in rec.items():
            if isinstance(v, float) and not np.isfinite(v):
                rec[k] = None
    return out


# ---------------------------------------------------------------------------- side tables
@dataclass(frozen=True)
class _Events:
    nodes: np.ndarray
    kinds: np.ndarray
    times: np.ndarray


def _read_events(source: LogSource, log: InteractionLog, config: AnalysisConfig) -> _Events:
    rejects = RejectLog()
    frame, report = read_events(source, config.tables.event_options(), rejects=rejects,
                                lookup=log.id_table.lookup)
    if "timestamp" not in report.columns:
        raise InvalidInputError(
            "a backtest needs the time of each event, and the events table has no timestamp "
            "column", file=report.file,
        )
    return _Events(frame["node"].to_numpy(np.int64), frame["event"].to_numpy(object),
                   frame["timestamp"].to_numpy(np.float64))


def _read_truth(source: str | Path | pd.DataFrame, log: InteractionLog) -> pd.DataFrame:
    """The generator's truth table: node, churn_time (NaN: did not churn), cascade flag."""
    if isinstance(source, pd.DataFrame):
        frame, label = source, "<truth table>"
    else:
        label = str(source)
        try:
            frame = (pd.read_parquet(source) if str(source).endswith(".parquet")
                     else pd.read_csv(source, dtype={"customer_id": str, "infected_by": str}))
        except FileNotFoundError:
            raise InvalidInputError("no such truth file", file=label) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"cannot read the truth table: {exc}", file=label) from exc
    need = ("customer_id", "churn_time", "infected_by")
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"a truth table (from carenet generate) needs columns {', '.join(need)}; missing "
            f"{', '.join(missing)}", file=label, column=missing[0],
        )
    nodes = log.id_table.lookup(pa.array(frame["customer_id"].astype(str).tolist(), pa.string()))
    keep = nodes >= 0
    return pd.DataFrame({
        "node": nodes[keep],
        "churn_time": pd.to_numeric(frame["churn_time"], errors="coerce").to_numpy()[keep],
        "cascade": frame["infected_by"].notna().to_numpy()[keep],
    })


# ---------------------------------------------------------------------------- one analysis
def _analysis(log: InteractionLog, at: float, *, config: AnalysisConfig,
              events: _Events | None, options: BacktestOptions,
              customers: LogSource | None) -> tuple[AnalysisRun, np.ndarray]:
    """Analyse the interactions before ``at`` (reference time ``at``, exposure seeded by the
    churn events before it); returns the run and, for each row of its customers table, the
    customer's node position in the log (-1 for a customer only in the customers table).
    """
    h, w = options.horizon, options.lookback
    id_col = config.tables.customer_id_col or "customer_id"
    if events is None:
        # synthetic churn: active in [at - h - w, at - h) and silent in [at - h, at)
        earlier = bt.silence_labels(log.src, log.dst, log.time, log.n_customers,
                                    cutoff=at - h, horizon=h, lookback=w)
        nodes = np.flatnonzero(earlier.churned)
        before = log.time < at
        last = np.full(log.n_customers, -np.inf)
        np.maximum.at(last, log.src[before], log.time[before])
        np.maximum.at(last, log.dst[before], log.time[before])
        ev = pd.DataFrame({id_col: log.ids.take(pa.array(nodes)).to_pylist(),
                           "event": "churn", "timestamp": last[nodes]})
        lookback: str | None = f"{(h + w) / DAY:.9g}d"
    else:
        keep = events.times < at
        seen = np.zeros(log.n_customers, bool)
        seen[log.src[log.time < at]] = True
        seen[log.dst[log.time < at]] = True
        keep &= seen[events.nodes]
        ev = pd.DataFrame({id_col: log.ids.take(pa.array(events.nodes[keep])).to_pylist(),
                           "event": events.kinds[keep], "timestamp": events.times[keep]})
        lookback = config.influence.lookback
    cfg = dataclasses.replace(
        config,
        input=log.input_config(),
        graph=dataclasses.replace(config.graph, reference_time=f"{at:.6f}", pseudonymize=False),
        tables=dataclasses.replace(config.tables, event_col="event",
                                   event_time_col="timestamp"),
        influence=dataclasses.replace(config.influence, lookback=lookback),
        lapse=dataclasses.replace(config.lapse, horizon=f"{h:.6f}", window=f"{w:.6f}"),
    )
    if hasattr(cfg, "care"):
        # priority and risk are per-customer formulas; the plan and its sentences are not
        # scored here, so skip their simulations
        cfg = dataclasses.replace(cfg, care=dataclasses.replace(cfg.care, budget=0,
                                                                 reasons_top=0))
    run = analyze(log.before(at), customers=customers, events=ev if len(ev) else None,
                  config=cfg)
    node_of_row = log.id_table.lookup(pa.array(run.customers["customer_id"].tolist(),
                                               pa.string()))
    return run, node_of_row


def _network_table(run: AnalysisRun, node_of_row: np.ndarray, n: int,
                   seeds: np.ndarray) -> pd.DataFrame:
    """Per log node (NaN where the run does not know it): the run's columns plus neighbour
    churn features, ``degree`` = in + out.
    """
    cust = run.customers
    churned = np.zeros(len(cust), bool)
    inside = node_of_row >= 0
    flags = np.zeros(n, bool)
    flags[seeds] = True
    churned[inside] = flags[node_of_row[inside]]
    comm = cust["community"].to_numpy() if "community" in cust else None
    extra = bt.neighbour_churn_features(run.graph, churned, comm)
    table = pd.concat([cust.reset_index(drop=True), extra], axis=1)
    table["degree"] = table["degree_in"] + table["degree_out"]
    table = table[inside]
    table.index = node_of_row[inside]
    return table.reindex(np.arange(n))


def _seed_nodes(log: InteractionLog, at: float, options: BacktestOptions,
                events: _Events | None) -> np.ndarray:
    """Customers counted as churned before ``at`` (the exposure seeds)."""
    if events is None:
        return np.flatnonzero(bt.silence_labels(
            log.src, log.dst, log.time, log.n_customers, cutoff=at - options.horizon,
            horizon=options.horizon, lookback=options.lookback).churned)
    kinds = {k.lower() for k in options.churn_events}
    mask = (events.times < at) & np.isin(events.kinds.astype(str), list(kinds))
    return np.unique(events.nodes[mask])


def _labels(log: InteractionLog, at: float, options: BacktestOptions,
            events: _Events | None) -> bt.ChurnLabels:
    if events is None:
        return bt.silence_labels(log.src, log.dst, log.time, log.n_customers, cutoff=at,
                                 horizon=options.horizon, lookback=options.lookback)
    kinds = {k.lower() for k in options.churn_events}
    mask = np.isin(events.kinds.astype(str), list(kinds))
    return bt.event_labels(log.src, log.dst, log.time, log.n_customers,
                           event_nodes=events.nodes[mask], event_times=events.times[mask],
                           cutoff=at, horizon=options.horizon, lookback=options.lookback)


# ---------------------------------------------------------------------------- classifiers
def _design(frame: pd.DataFrame, columns: Sequence[str], kind: str) -> np.ndarray:
    x = frame[list(columns)].to_numpy(np.float64, copy=True)
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    if kind == "logistic":
        if "pagerank" in columns:
            j = list(columns).index("pagerank")
            x[:, j] = x[:, j] * len(frame)
        x = np.sign(x) * np.log1p(np.abs(x))
    return x


def _fit_predict(train: pd.DataFrame, y: np.ndarray, test: pd.DataFrame,
                 columns: Sequence[str], kind: str, seed: int) -> np.ndarray:
    """Fit on (train, y) and return churn probabilities for ``test``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, xte = _design(train, columns, kind), _design(test, columns, kind)
    if kind == "logistic":
        model: Any = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
        # tall, thin products: OpenBLAS's threads only contend (1M x 15 rows: 1.7-2.0x slower
        # with them on two shared cores, same result; benchmarks/README.md, risk step)
        with threadpool_limits(limits=1, user_api="blas"):
            model.fit(xtr, y.astype(int))
            return np.asarray(model.predict_proba(xte)[:, 1], dtype=np.float64)
    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
        l2_regularization=1.0, early_stopping=False, random_state=seed,
    )
    model.fit(xtr, y.astype(int))
    return np.asarray(model.predict_proba(xte)[:, 1], dtype=np.float64)


# ---------------------------------------------------------------------------- one cutoff
def _features(log: InteractionLog, at: float, options: BacktestOptions, *,
              config: AnalysisConfig, events: _Events | None,
              customers: LogSource | None) -> tuple[pd.DataFrame, AnalysisRun]:
    own = bt.activity_features(log.src, log.dst, log.time, log.n_customers, at=at,
                               window=options.lookback)
    run, node_of_row = _analysis(log, at, config=config, events=events, options=options,
                                 customers=customers)
    seeds = _seed_nodes(log, at, options, events)
    net = _network_table(run, node_of_row, log.n_customers, seeds)
    net = net.drop(columns=[c for c in own.columns if c in net.columns])
    return pd.concat([own, net], axis=1), run


def log_gaps(log: InteractionLog, options: BacktestOptions,
             config: AnalysisConfig = AnalysisConfig()) -> list[Gap]:
    """Periods with no interaction at all in the log (at least ``lapse.min_gap`` long;
    default: half the horizon).
    """
    min_gap = parse_duration(config.lapse.min_gap) if config.lapse.min_gap else None
    return find_gaps(log.time, min_gap or options.horizon / 2)


def check_cutoff(log: InteractionLog, cutoff: float, options: BacktestOptions,
                 gaps: Sequence[Gap] = ()) -> str | None:
    """Why ``cutoff`` cannot be backtested (None when it can): outside the log, a horizon
    past its end, or a gap with no interactions inside the windows the cutoff reads
    (``[cutoff - 2h - W, cutoff + h)``: the analyses at the cutoff and one horizon earlier
    train their risk models one horizon further back, then population and horizon).
    """
    h, w = options.horizon, options.lookback
    if not log.start < cutoff <= log.end:
        return (f"cutoff {_iso(cutoff)} is outside the log's time range ({_iso(log.start)} to "
                f"{_iso(log.end)}); choose a cutoff inside it")
    if cutoff + h > log.end + 1.0:
        return (f"the horizon ends at {_iso(cutoff + h)}, after the log's last interaction "
                f"({_iso(log.end)}): silence after the end of the data is not churn; choose "
                "an earlier cutoff or a shorter horizon")
    hit = overlapping(list(gaps), cutoff - 2 * h - w, cutoff + h)
    if hit:
        return (f"cutoff {_iso(cutoff)}: its windows ({_iso(cutoff - 2 * h - w)} to "
                f"{_iso(cutoff + h)}) overlap a period with no interactions at all "
                f"({hit[0].describe()}), where silence says nothing about customers; choose "
                "another cutoff or a shorter horizon")
    return None


def backtest_cutoff(log: InteractionLog, cutoff: float, options: BacktestOptions, *,
                    config: AnalysisConfig = AnalysisConfig(),
                    events: _Events | None = None,
                    customers: LogSource | None = None,
                    truth: pd.DataFrame | None = None,
                    gaps: Sequence[Gap] = (),
                    report: Report = _quiet) -> CutoffResult:
    """The backtest at one cutoff (see the module docstring)."""
    h = options.horizon
    notes: list[str] = []
    timings: dict[str, float] = {}
    problem = check_cutoff(log, cutoff, options, gaps)
    if problem is not None:
        raise InvalidInputError(problem, file=log.label)
    t0 = time.perf_counter()
    labels = _labels(log, cutoff, options, events)
    timings["labels"] = time.perf_counter() - t0
    if labels.population == 0:
        raise InvalidInputError(
            f"no customer is active in the {options.lookback / DAY:g} days before the cutoff "
            f"{_iso(cutoff)}", file=log.label,
        )
    report(f"cutoff {_iso(cutoff)}: {labels.population:,} active customers, "
           f"{labels.churners:,} churned in the next {h / DAY:g} days")
    t1 = time.perf_counter()
    feats, run = _features(log, cutoff, options, config=config, events=events,
                           customers=customers)
    timings["analyze"] = time.perf_counter() - t1
    pop = np.flatnonzero(labels.active)
    y = labels.churned[pop]
    table = feats.iloc[pop].reset_index(drop=True)
    scores: dict[str, np.ndarray] = {}
    for name, col in (("exposure", "exposure"), ("influence", "influence"),
                      ("priority", "priority"), ("risk", "risk"),
                      ("degree", "degree"), ("pagerank", "pagerank")):
        if col in table and table[col].notna().any():
            scores[name] = table[col].fillna(0.0).to_numpy(np.float64)
        elif name in ("priority", "risk"):
            notes.append(f"{name}: not scored (the run has no {col!r} column; the care step "
                         "adds it)")
        else:
            notes.append(f"{name}: not scored (the run has no {col!r} column)")
    scores["recency_frequency"] = bt.recency_frequency_score(table)

    # out-of-time classifiers: features at cutoff - h, labels of [cutoff - h, cutoff)
    train_at = cutoff - h
    training: dict[str, Any] = {"cutoff": _iso(train_at), "classifier": options.classifier}
    t1 = time.perf_counter()
    train_labels = _labels(log, train_at, options, events) if train_at > log.start else None
    if train_labels is None or min(train_labels.churners,
                                   train_labels.population - train_labels.churners) \
            < options.min_class:
        notes.append(
            f"classifiers: not trained (fewer than {options.min_class} churners or "
            f"non-churners at the training cutoff {_iso(train_at)})")
        training["trained"] = False
    else:
        tfeats, _ = _features(log, train_at, options, config=config, events=events,
                              customers=customers)
        timings["analyze_train"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        tpop = np.flatnonzero(train_labels.active)
        ty = train_labels.churned[tpop]
        ttable = tfeats.iloc[tpop].reset_index(drop=True)
        own_cols = list(bt.OWN_FEATURES)
        net_cols = [c for c in NETWORK_FEATURES if c in table and c in ttable
                    and table[c].notna().any()]
        scores["own_activity_model"] = _fit_predict(ttable, ty, table, own_cols,
                                                    options.classifier, config.seed)
        scores["network_model"] = _fit_predict(ttable, ty, table, own_cols + net_cols,
                                               options.classifier, config.seed)
        training |= {"trained": True, "population": int(tpop.size), "churners": int(ty.sum()),
                     "own_features": own_cols, "network_features": net_cols}
        timings["fit"] = time.perf_counter() - t2
    t3 = time.perf_counter()

    budget = options.budget or bt.top_k(len(pop), 0.05)
    values = table["value"].to_numpy(np.float64) if "value" in table else None
    value_from = "the customers table's value"
    if values is None or not np.isfinite(values).any():
        # without values: what a customer brought recently, its active days in the window
        values = table["active_days_window"].to_numpy(np.float64)
        value_from = "active days in the window before the cutoff"
    scores["value"] = np.nan_to_num(values, nan=0.0)
    targets: list[tuple[str, np.ndarray, np.ndarray]] = [("churn", y, np.ones(len(y), bool))]
    cascade_info: dict[str, Any] = {}
    if truth is not None:
        ct = np.full(log.n_customers, np.nan)
        casc = np.zeros(log.n_customers, bool)
        ct[truth["node"].to_numpy()] = truth["churn_time"].to_numpy()
        casc[truth["node"].to_numpy()] = truth["cascade"].to_numpy()
        ctp = ct[pop]
        in_h = (ctp >= cutoff) & (ctp < cutoff + h)
        pos = in_h & casc[pop]
        neg = ~in_h & ~(ctp < cutoff)
        keep = pos | neg
        targets.append(("cascade", pos, keep))
        cascade_info = {"cascade_churners": int(pos.sum()),
                        "spontaneous_churners": int((in_h & ~casc[pop]).sum()),
                        "non_churners": int(neg.sum())}
    rows, curves = [], []
    for target, yy, keep in targets:
        for name, s in scores.items():
            m = bt.score_metrics(yy[keep], s[keep], budget=min(budget, int(keep.sum())),
                                 confidence=options.confidence,
                                 values=None if values is None else values[keep])
            rows.append({"cutoff": _iso(cutoff), "target": target, "score": name} | m)
            curve = bt.lift_curve(yy[keep], s[keep],
                                  values=None if values is None else values[keep])
            curve.insert(0, "score", name)
            curve["target"] = target
            curve["cutoff"] = _iso(cutoff)
            curves.append(curve[["score", "fraction", "lift", "captured", "value_captured",
                                 "k", "target", "cutoff"]])
    comparison: dict[str, Any] = {}
    capture = bt.value_capture_interval(
        y, {k: scores[k] for k in VALUE_SCORES if k in scores}, values, fraction=0.05,
        resamples=options.resamples, confidence=options.confidence, seed=config.seed)
    capture.insert(0, "cutoff", _iso(cutoff))
    comparison["value_capture_5"] = {"value_from": value_from,
                                     "scores": _records(capture.drop(columns="cutoff"))}
    if "network_model" in scores:
        for other in ("own_activity_model", "recency_frequency"):
            comparison[f"network_model_vs_{other}"] = bt.delong_compare(
                y, scores["network_model"], scores[other],
                confidence=options.confidence).to_dict()
    out = pd.DataFrame({"cutoff": _iso(cutoff),
                        "customer_id": log.ids.take(pa.array(pop)).to_pylist(),
                        "churned": y})
    if truth is not None:
        out["cascade_churned"] = targets[1][1]
    for name, s in scores.items():
        out[name] = s
    timings["metrics"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    return CutoffResult(
        cutoff=cutoff, labels=labels.to_dict() | {"cutoff": _iso(cutoff), "budget": budget,
                                                  "exposure_seeds": int(
                                                      run.results.get("influence", {})
                                                      .get("exposure", {}).get("seeds", 0))},
        training=training, metrics=pd.DataFrame(rows), curve=pd.concat(curves),
        scores=out, comparison=comparison, cascade=cascade_info, notes=notes,
        timings=timings, capture=capture,
    )


def run_backtest(
    log: LogSource | InteractionLog,
    *,
    cutoffs: Sequence[str | float],
    options: BacktestOptions,
    events: LogSource | None = None,
    customers: LogSource | None = None,
    truth: str | Path | pd.DataFrame | None = None,
    config: AnalysisConfig = AnalysisConfig(),
    report: Report = _quiet,
) -> BacktestResult:
    """Backtest the scores at each cutoff (ISO 8601, epoch seconds or ``"60%"`` of the log's
    span); see the module docstring for labels, scores and baselines.

    >>> from carenet.synthetic import GeneratorConfig, generate
    >>> data = generate(GeneratorConfig(customers=300, interactions=6000, seed=3))
    >>> light = AnalysisConfig.from_mapping({"measures": {"measures": ["pagerank"]},
    ...     "influence": {"seed_set_size": 0, "exposure_runs": 200, "epsilon": 0.3}})
    >>> res = run_backtest(data.interactions, cutoffs=["70%"], config=light,
    ...                    options=BacktestOptions(horizon_days=20))
    >>> sorted(res.metrics["score"].unique())[:3]
    ['degree', 'exposure', 'influence']
    """
    if config.graph.pseudonymize:
        raise InvalidInputError("a backtest works on raw customer ids; pseudonymise the log "
                                "before, not during, the backtest")
    if not cutoffs:
        raise InvalidInputError("give at least one cutoff")
    data = log if isinstance(log, InteractionLog) else read_log(log, config)
    gaps = log_gaps(data, options, config)
    for g in gaps:
        report(f"gap: no interactions at all from {g.describe()}")
    times = [resolve_cutoff(c, data) for c in cutoffs]
    problems = [p for p in (check_cutoff(data, t, options, gaps) for t in times) if p]
    if problems:  # checked up front: nothing is computed for a half-valid list
        raise InvalidInputError("; ".join(problems), file=data.label)
    ev = _read_events(events, data, config) if events is not None else None
    tr = _read_truth(truth, data) if truth is not None else None
    results = [backtest_cutoff(data, t, options, config=config, events=ev,
                               customers=customers, truth=tr, gaps=gaps, report=report)
               for t in times]
    return BacktestResult(
        log=data.label, options=options,
        parameters={"config": config.to_dict(),
                    "events": None if events is None else str(events),
                    "customers": None if customers is None else str(customers),
                    "truth": None if truth is None or isinstance(truth, pd.DataFrame)
                    else str(truth)},
        cutoffs=results, log_span=(data.start, data.end),
        rows={"loaded": len(data.time), "rejected": len(data.rejects),
              "customers": data.n_customers},
        gaps=[g.to_dict() for g in gaps],
    )
