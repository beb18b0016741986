"""Analysis configuration: a TOML file and command-line flags -> one frozen ``AnalysisConfig``.

Each section of the TOML file is one dataclass here, so the file, the flags, ``run.json`` and
the API's run requests all speak the same names::

    seed = 42

    [input]                 # how to read the logs (all optional: sniffed by default)
    source_col = "caller"
    time_unit = "auto"

    [graph]                 # how interactions become ties
    half_life = "30d"
    symmetrize = false
    channel_weights = { call = 2.0, sms = 1.0 }

    [measures]              # centralities
    samples = 128           # source customers for betweenness / harmonic above exact_max

    [communities]           # communities, roles, the community table
    algorithm = "leiden"
    resolution = 1.0

    [influence]             # diffusion: influence, exposure, seed sets
    edge_model = "weighted_cascade"
    epsilon = 0.1
    negative_events = ["churn", "complaint"]
    lookback = "90d"

    [care]                  # priority, reasons, the budgeted care plan
    retention = 0.3
    budget = 200

    [engine]                # where it runs: local (default) or spark
    name = "spark"
    spark_master = "spark://head:7077"
    collect_max_ties = 200_000_000

Unknown keys and wrong types are errors naming the key (a typo must not silently fall back to
a default).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

import numpy as np
import pandas as pd

from carenet.errors import InvalidInputError
from carenet.graphs.build import parse_duration
from carenet.graphs.logs import LogOptions, TableOptions
from carenet.graphs.tables import ReadOptions
from carenet.graphs.ties import EDGE_MODELS, WEIGHTED_CASCADE, TieModel

C = TypeVar("C")


@dataclass(frozen=True)
class InputConfig:
    """How to read interaction logs (``None`` = sniffed). See :class:`LogOptions`."""

    source_col: str | None = None
    target_col: str | None = None
    time_col: str | None = None
    channel_col: str | None = None
    weight_col: str | None = None
    delimiter: str | None = None
    header: bool | None = None
    columns: tuple[str, ...] | None = None
    time_unit: str = "auto"
    time_format: str | None = None
    channel: str | None = None
    format: str = "auto"

    def log_options(self) -> LogOptions:
        """The loader options these settings stand for."""
        return LogOptions(
            source_col=self.source_col, target_col=self.target_col, time_col=self.time_col,
            channel_col=self.channel_col, weight_col=self.weight_col,
            time_unit=self.time_unit, time_format=self.time_format, channel=self.channel,
            read=ReadOptions(format=self.format, delimiter=self.delimiter, header=self.header,
                             columns=self.columns),
        )


@dataclass(frozen=True)
class TablesConfig:
    """Column names of the customers and events tables (``None`` = found by name)."""

    customer_id_col: str | None = None
    value_col: str | None = None
    segment_col: str | None = None
    churn_col: str | None = None
    event_col: str | None = None
    event_time_col: str | None = None

    def customer_options(self) -> TableOptions:
        """Reader options for the customers table."""
        return TableOptions(id_col=self.customer_id_col, value_col=self.value_col,
                            segment_col=self.segment_col, churn_col=self.churn_col)

    def event_options(self) -> TableOptions:
        """Reader options for the events table."""
        return TableOptions(id_col=self.customer_id_col, event_col=self.event_col,
                            time_col=self.event_time_col)


@dataclass(frozen=True)
class GraphConfig:
    """How interactions become weighted ties.

    ``half_life``: interactions lose half their weight per half-life of age (``"30d"``,
    ``"12h"``; ``"none"`` for no decay; ignored without timestamps). ``reference_time``: the
    "now" ages are measured from (ISO 8601 or epoch seconds; default: the newest interaction);
    later interactions are rejected. ``channels``: if given, the only channels accepted.
    ``min_weight``: ties lighter than this are dropped.
    """

    half_life: str | None = "30d"
    reference_time: str | None = None
    channels: tuple[str, ...] | None = None
    channel_weights: dict[str, float] = field(default_factory=dict)
    symmetrize: bool = False
    min_weight: float = 0.0
    pseudonymize: bool = False

    def __post_init__(self) -> None:
        parse_duration(self.half_life)
        if self.reference_time is not None:
            parse_time(self.reference_time)
        if self.min_weight < 0:
            raise InvalidInputError(f"graph.min_weight must be >= 0, not {self.min_weight}")

    @property
    def half_life_seconds(self) -> float | None:
        """The half-life in seconds (None: no decay)."""
        return parse_duration(self.half_life)

    @property
    def reference_seconds(self) -> float | None:
        """The reference time as epoch seconds (None: newest interaction)."""
        return None if self.reference_time is None else parse_time(self.reference_time)


@dataclass(frozen=True)
class MeasuresConfig:
    """Centralities (:mod:`carenet.graphs.centrality`): which to compute and how.

    ``measures``: any of pagerank, eigenvector, betweenness, harmonic, core (degree and
    strength are always there). ``backend``: auto, native, igraph or networkx.
    ``weighted``: use tie weights (path length ``1 / weight``) or hop counts.
    ``exact_max``: betweenness and harmonic closeness are exact up to this many customers,
    else estimated from sampled source customers with a stated error bound at
    ``confidence``. How many: with ``error`` > 0 (default 0.1) the sources are searched in
    doubling rounds from 16 until every customer's half-width (at ``confidence``) is at most
    ``error`` times the top score (0.1: +-10% of the highest score), at most ``samples``
    sources and at most ``budget / (customers + ties)`` of them, so the graph's size caps the
    cost (the default budget allows 20 sources at 1M customers / 5.2M ties and all
    ``samples`` at 100k / 0.5M ties); run.json states the error reached and whether the
    target was met.
    ``error = 0``: exactly ``samples`` sources. ``eigenvector_direction``: undirected
    (default) or in.
    """

    enabled: bool = True
    measures: tuple[str, ...] = ("pagerank", "eigenvector", "betweenness", "harmonic", "core")
    backend: str = "auto"
    weighted: bool = True
    pagerank_damping: float = 0.85
    pagerank_tol: float = 1e-6
    eigenvector_direction: str = "undirected"
    exact_max: int = 5000
    samples: int = 128
    confidence: float = 0.95
    error: float = 0.1
    budget: float = 1.25e8

    def __post_init__(self) -> None:
        known = ("pagerank", "eigenvector", "betweenness", "harmonic", "core")
        bad = [m for m in self.measures if m not in known]
        if bad:
            raise InvalidInputError(
                f"measures.measures: unknown measure(s) {bad}; known: {', '.join(known)}"
            )
        _one_of("measures.backend", self.backend, ("auto", "native", "igraph", "networkx"))
        _one_of("measures.eigenvector_direction", self.eigenvector_direction,
                ("undirected", "in"))
        if not 0.0 <= self.pagerank_damping < 1.0:
            raise InvalidInputError(
                f"measures.pagerank_damping must be in [0, 1), not {self.pagerank_damping}"
            )
        if not self.pagerank_tol > 0:
            raise InvalidInputError(f"measures.pagerank_tol must be > 0, not {self.pagerank_tol}")
        if self.exact_max < 0:
            raise InvalidInputError(f"measures.exact_max must be >= 0, not {self.exact_max}")
        if self.samples < 1:
            raise InvalidInputError(f"measures.samples must be >= 1, not {self.samples}")
        if not self.error >= 0:
            raise InvalidInputError(
                f"measures.error must be >= 0 (0: exactly `samples` sources), not {self.error}")
        if not self.budget > 0:
            raise InvalidInputError(f"measures.budget must be > 0, not {self.budget}")
        if not 0.0 < self.confidence < 1.0:
            raise InvalidInputError(
                f"measures.confidence must be in (0, 1), not {self.confidence}"
            )


@dataclass(frozen=True)
class CommunitiesConfig:
    """Communities, roles and the community table (:mod:`carenet.community.detection`,
    :mod:`carenet.community.roles`, :mod:`carenet.community.summary`).

    ``algorithm``: leiden, louvain, label_propagation or infomap; ``objective`` (Leiden):
    modularity or cpm; ``resolution``; ``theta`` (Leiden's randomness); ``n_iterations``
    (Leiden passes, negative = until stable). ``min_jaccard``: overlap for a community to
    keep its id from the previous run. Role thresholds: ``hub_z``, ``connector_p``,
    ``bridge_p`` (Guimerà and Amaral's defaults), ``peripheral_ties``. ``negative_events``
    within ``recent`` (a duration, ``"none"`` = any age) of the reference time count as
    recent negative events; ``top_k`` customers and links per community in the table.
    """

    enabled: bool = True
    algorithm: str = "leiden"
    objective: str = "modularity"
    resolution: float = 1.0
    theta: float = 0.01
    n_iterations: int = 2
    weighted: bool = True
    backend: str = "auto"
    min_jaccard: float = 0.3
    hub_z: float = 2.5
    connector_p: float = 0.30
    bridge_p: float = 0.62
    peripheral_ties: int = 1
    negative_events: tuple[str, ...] = ("churn", "complaint", "detractor")
    recent: str | None = "30d"
    top_k: int = 5

    def __post_init__(self) -> None:
        _one_of("communities.algorithm", self.algorithm,
                ("leiden", "louvain", "label_propagation", "infomap"))
        _one_of("communities.objective", self.objective, ("modularity", "cpm"))
        _one_of("communities.backend", self.backend, ("auto", "native", "igraph", "networkx"))
        if not self.resolution >= 0:
            raise InvalidInputError(
                f"communities.resolution must be >= 0, not {self.resolution}"
            )
        if not self.theta > 0:
            raise InvalidInputError(f"communities.theta must be > 0, not {self.theta}")
        if self.n_iterations == 0:
            raise InvalidInputError("communities.n_iterations must not be 0")
        if not 0.0 < self.min_jaccard <= 1.0:
            raise InvalidInputError(
                f"communities.min_jaccard must be in (0, 1], not {self.min_jaccard}"
            )
        for name in ("connector_p", "bridge_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"communities.{name} must be in [0, 1], not {value}")
        if self.peripheral_ties < 0:
            raise InvalidInputError(
                f"communities.peripheral_ties must be >= 0, not {self.peripheral_ties}"
            )
        if self.top_k < 0:
            raise InvalidInputError(f"communities.top_k must be >= 0, not {self.top_k}")
        try:
            parse_duration(self.recent)
        except InvalidInputError as exc:
            raise InvalidInputError(f"communities.recent: {exc}") from exc

    @property
    def recent_seconds(self) -> float | None:
        """The recent-event window in seconds (None: any age)."""
        return parse_duration(self.recent)


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidInputError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


@dataclass(frozen=True)
class InfluenceConfig:
    """Diffusion-based influence, exposure and seed selection (the ``influence`` step).

    ``model``: ``ic`` or ``lt`` for influence and seeds (RR sets); exposure also accepts
    ``sir``. ``edge_model``: ``weighted_cascade`` (default: ``p(u->v) = w(u,v) / sum_x
    w(x,v)``), ``exponential`` (``1 - exp(-w / edge_scale)``) or ``constant``
    (``edge_probability``). ``epsilon``/``delta``: with probability ``1 - delta`` the ``top``
    most influential customers are estimated within relative error ``epsilon``;
    ``confidence``: level of the per-customer intervals. ``max_rr_sets``: the most RR sets
    an influence estimate (one stream, every set counting) or each of IMM's two phases
    samples (the epsilon reached is then reported with ``stopped = "max_rr_sets
    reached"``). ``max_rr_members``: the work budget of each of those estimates, in RR-set
    members sampled (IMM: search and final, the shared sets it reuses included; 0: none):
    the default keeps each estimate near 45 s on a quiet 2-core machine at 1M customers
    (about 2.4M members a second there) and does not bind at 100k; when it binds the
    estimate stops with the epsilon it reached (``stopped = "budget"``). ``negative_events`` within
    ``lookback`` before the reference time make a customer an exposure seed. ``seed_set_size``:
    k of the IMM seed set compared with top-k by degree and PageRank (0: skip);
    ``cost_col`` (a customers column) with ``seed_budget`` selects within a budget.
    ``missing_value``: the value of a customer without one, for value-weighted influence.
    ``exposure_model``: the model of exposure (default: ``model``); ``sir_recovery``: its
    per-step recovery probability when it is ``sir``. ``exposure_error``: the exposure
    estimate stops adding cascade worlds once every customer's interval half-width (at
    ``confidence``) is at most this; ``exposure_runs`` is then only the most worlds it runs.
    ``exposure_budget``: work budget of the exposure estimate in tie-worlds (worlds x
    directed ties; 0: none): the default 2e9 leaves 100k customers their worlds and gives 1M
    customers about 380 (half-width near 0.05), reported as ``stop_reason = "budget"``.
    ``compare_error``: the seed-set comparison adds cascades until every strategy's spread
    interval is within this relative half-width (at ``confidence``); ``compare_runs`` is the
    most it runs (0: always ``compare_runs``).
    """

    enabled: bool = True
    model: str = "ic"
    edge_model: str = WEIGHTED_CASCADE
    edge_scale: float = 1.0
    edge_probability: float = 0.1
    epsilon: float = 0.1
    delta: float = 0.01
    top: int = 50
    confidence: float = 0.95
    max_rr_sets: int = 10_000_000
    max_rr_members: int = 100_000_000
    missing_value: float = 1.0
    negative_events: tuple[str, ...] = ("churn", "complaint")
    lookback: str | None = "90d"
    exposure_model: str | None = None
    sir_recovery: float = 0.5
    exposure_runs: int = 2000
    exposure_error: float = 0.025
    exposure_budget: float = 2e9
    exposure_sources: int = 3
    seed_set_size: int = 50
    seed_budget: float | None = None
    cost_col: str | None = None
    compare_runs: int = 2000
    compare_error: float = 0.01

    def __post_init__(self) -> None:
        def bad(key: str, want: str, got: Any) -> InvalidInputError:
            return InvalidInputError(f"influence.{key} must be {want}, not {got!r}")

        if not 0 <= self.compare_error < 1:
            raise bad("compare_error", "in [0, 1)", self.compare_error)

        if self.model not in ("ic", "lt"):
            raise bad("model", "ic or lt", self.model)
        if self.exposure_model not in (None, "ic", "lt", "sir"):
            raise bad("exposure_model", "ic, lt or sir", self.exposure_model)
        if self.edge_model not in EDGE_MODELS:
            raise bad("edge_model", ", ".join(EDGE_MODELS[:-1]) + f" or {EDGE_MODELS[-1]}",
                      self.edge_model)
        if not 0 < self.sir_recovery <= 1:
            raise bad("sir_recovery", "in (0, 1]", self.sir_recovery)
        if not self.edge_scale > 0:
            raise bad("edge_scale", "> 0", self.edge_scale)
        if not 0 <= self.edge_probability <= 1:
            raise bad("edge_probability", "in [0, 1]", self.edge_probability)
        for key in ("epsilon", "delta", "confidence"):
            if not 0 < getattr(self, key) < 1:
                raise bad(key, "in (0, 1)", getattr(self, key))
        for key in ("top", "max_rr_sets", "exposure_runs", "exposure_sources", "compare_runs"):
            if getattr(self, key) < 1:
                raise bad(key, ">= 1", getattr(self, key))
        if not self.exposure_budget >= 0:
            raise bad("exposure_budget", ">= 0 (0: no budget)", self.exposure_budget)
        if not 0 < self.exposure_error < 1:
            raise bad("exposure_error", "in (0, 1)", self.exposure_error)
        if self.seed_set_size < 0:
            raise bad("seed_set_size", ">= 0", self.seed_set_size)
        if self.max_rr_members < 0:
            raise bad("max_rr_members", ">= 0", self.max_rr_members)
        if self.missing_value < 0:
            raise bad("missing_value", ">= 0", self.missing_value)
        if self.seed_budget is not None and not self.seed_budget > 0:
            raise bad("seed_budget", "> 0", self.seed_budget)
        if (self.seed_budget is None) != (self.cost_col is None):
            raise InvalidInputError("influence.seed_budget and influence.cost_col go together")
        parse_duration(self.lookback)  # raises on a malformed duration

    @property
    def ties(self) -> TieModel:
        """The tie model of this section (``edge_model``, ``edge_scale``,
        ``edge_probability``).
        """
        return TieModel(self.edge_model, self.edge_scale, self.edge_probability)

    @property
    def lookback_seconds(self) -> float | None:
        """The lookback in seconds (None: every earlier event counts)."""
        return parse_duration(self.lookback)


# care.evaluation_work's default: customers reached x strategies summed over the
# evaluation's realisations. At 1M customers a realisation reaches ~0.5M customers (2.5M
# units with the 5 strategies) and took 1.6 s at load ~12 on 2 cores, ~9.6M units a second
# once divided by the load factor (load / cores = 6): 450M units is ~47 s quiet (~175
# realisations). At 100k the default run uses ~95M (benchmarks/README.md, issue 15).
EVALUATION_WORK = 450_000_000


@dataclass(frozen=True)
class CareConfig:
    """Proactive care (the ``care`` step; formulas in :mod:`carenet.community.care`).

    ``retention``: share of contacted customers who stay (contact success). ``churn_col``:
    the customers column with a churn score in [0, 1] (missing -> 0; ``none`` ignores it).
    ``use_values``: weigh customers by the ``value`` column (else every customer is worth 1).
    ``source_risk``: probability that a customer with a recent complaint churns and passes it
    on (1 = as in the exposure model). ``lost_events``: events that mean a customer already
    churned (priority 0, never in the plan). ``churn_spreads``: in the plan's cascade model,
    every other customer also churns spontaneously with its churn score. ``budget``: customers
    in the care plan (0: no plan); ``plan_runs``: the most cascade realisations the greedy
    optimises on (fewer when their dominator trees reach ``plan_max_entries`` entries, 24
    bytes each); ``plan_error``: realisations are added (at least ``plan_min_runs``) until
    the plan's protected value on them has at most this relative interval half-width (0:
    always ``plan_runs``);
    ``evaluation_runs``: the most fresh realisations that measure the plan and the other
    strategies at every ``compare_k``; ``evaluation_error``: realisations are added (at least
    ``evaluation_min_runs``) until every strategy's interval half-width at k = ``budget`` is
    at most this share of the plan's protected value (0: always ``evaluation_runs``);
    ``evaluation_work``: the evaluation's work budget in customers reached times strategies,
    summed over its realisations (0: none): it stops, with the error it reached
    (``stopped = "budget"``), when the next realisations would exceed it; the default keeps
    the evaluation near 45 s on a quiet 2-core machine at 1M customers and does not bind at
    100k; ``confidence``: level of the intervals.
    ``reasons_top``: customers explained beyond the plan, by priority; ``reason_ties``:
    strongest ties named in a reason.
    """

    enabled: bool = True
    retention: float = 0.3
    churn_col: str | None = "churn_score"
    use_values: bool = True
    source_risk: float = 1.0
    lost_events: tuple[str, ...] = ("churn",)
    churn_spreads: bool = True
    budget: int = 200
    plan_runs: int = 200
    plan_max_entries: int = 20_000_000
    plan_error: float = 0.0
    plan_min_runs: int = 50
    evaluation_runs: int = 1000
    evaluation_error: float = 0.02
    evaluation_min_runs: int = 100
    evaluation_work: int = EVALUATION_WORK
    compare_k: tuple[int, ...] = (10, 50, 200)
    confidence: float = 0.95
    reasons_top: int = 10_000
    reason_ties: int = 3

    def __post_init__(self) -> None:
        def bad(key: str, want: str, got: Any) -> InvalidInputError:
            return InvalidInputError(f"care.{key} must be {want}, not {got!r}")

        if not 0 < self.retention <= 1:
            raise bad("retention", "in (0, 1]", self.retention)
        if not 0 <= self.source_risk <= 1:
            raise bad("source_risk", "in [0, 1]", self.source_risk)
        if not 0 < self.confidence < 1:
            raise bad("confidence", "in (0, 1)", self.confidence)
        for key in ("budget", "reasons_top"):
            if getattr(self, key) < 0:
                raise bad(key, ">= 0", getattr(self, key))
        for key in ("plan_runs", "reason_ties", "plan_max_entries"):
            if getattr(self, key) < 1:
                raise bad(key, ">= 1", getattr(self, key))
        if self.evaluation_runs < 2:
            raise bad("evaluation_runs", ">= 2", self.evaluation_runs)
        if self.evaluation_min_runs < 2:
            raise bad("evaluation_min_runs", ">= 2", self.evaluation_min_runs)
        if self.plan_min_runs < 1:
            raise bad("plan_min_runs", ">= 1", self.plan_min_runs)
        if not 0 <= self.plan_error < 1:
            raise bad("plan_error", "in [0, 1)", self.plan_error)
        if not 0 <= self.evaluation_error < 1:
            raise bad("evaluation_error", "in [0, 1)", self.evaluation_error)
        if self.evaluation_work < 0:
            raise bad("evaluation_work", ">= 0", self.evaluation_work)
        if any(k < 1 for k in self.compare_k):
            raise bad("compare_k", "positive integers", list(self.compare_k))
        if self.churn_col is not None and self.churn_col.lower() in ("", "none"):
            object.__setattr__(self, "churn_col", None)


@dataclass(frozen=True)
class LapseConfig:
    """Who lapsed, from the log's own times (:mod:`carenet.community.lapse`).

    A customer *lapsed* at ``T`` if it had an interaction in the window
    ``[T - horizon - window, T - horizon)`` and none, sent or received, in
    ``[T - horizon, T)``. ``horizon``/``window``: durations (``"30d"``); ``None`` chooses
    them from the log: the horizon is the ``quantile`` of every customer's gaps between
    consecutive interactions, capped at a quarter of the log's span; the window defaults to
    the horizon. ``min_gap``: a period of at least this long with no interaction at all is a
    *gap in the data* (reported; a horizon or window that overlaps one is refused); ``None``:
    half the horizon. ``seeds``: lapsed customers seed the exposure cascade (with the
    negative events); ``max_seeds``: at most this many lapsed seeds (the most recently
    lapsed first; 0 = no cap) - more seeds make exposure and the care plan slower.
    """

    enabled: bool = True
    horizon: str | None = None
    window: str | None = None
    quantile: float = 0.99
    min_gap: str | None = None
    seeds: bool = True
    max_seeds: int = 0

    def __post_init__(self) -> None:
        if not 0.5 <= self.quantile < 1:
            raise InvalidInputError(f"lapse.quantile must be in [0.5, 1), not {self.quantile!r}")
        if self.max_seeds < 0:
            raise InvalidInputError(f"lapse.max_seeds must be >= 0, not {self.max_seeds!r}")
        for key in ("horizon", "window", "min_gap"):
            v = getattr(self, key)
            if v is not None and v.strip().lower() in ("", "none", "auto"):
                object.__setattr__(self, key, None)


@dataclass(frozen=True)
class RiskConfig:
    """The churn-risk model trained inside every analysis (the ``risk`` step,
    :mod:`carenet.community.risk`).

    ``min_lapses``: fewest lapsed (and fewest non-lapsed) customers in the training period
    for a model; fewer -> the recency fallback, said so on the terminal. ``calibration``:
    ``none`` (the default: the logistic model's own probability), ``platt`` (a logistic map
    of the model's score fitted on an earlier out-of-time fold, when the log has one) or
    ``isotonic`` (same, monotone steps); on two real logs at eight cutoffs each, the
    out-of-time maps were further from the realised lapse rates than the model itself
    (mean decile gap 0.12-0.13 against 0.09-0.11, benchmarks/README.md). ``value``: what a
    customer is worth without a ``value`` column in the customers table: ``unit`` (1 each,
    the default: measured on two real logs, activity-based values rank the engaged,
    rarely-lapsing customers first and pull priority's lift at 5% below 1), ``active_days``
    (distinct days with an interaction in the recent window), ``log_active_days`` (log of 1
    + those) or ``interactions`` (interactions in the window). ``l2``: inverse
    regularisation strength C of the logistic regression;
    ``confidence``: level of the risk interval. ``folds``: how many labelled periods, one
    horizon apart (features at ``T - h``, ``T - 2h``, ...), the model is trained on, stacked,
    as far back as the log allows without a gap (1: only the latest). ``fold_decay``: weight
    of each older period relative to the next (1: all alike). ``drift``: ``none`` (the stacked
    model's own level), ``latest`` (intercept shifted so that the mean prediction on the latest
    labelled period equals its lapse rate) or ``level`` (so that the mean risk now equals the
    mean lapse rate of the periods trained on). ``exposure``: the one-hop exposure to lapsed
    contacts (``1 - prod(1 - p(u->v) lapsed_u)`` over in-ties) as a feature; ``role``: the
    communities step's ``role`` column (one-hot) as a feature when present. Defaults measured
    on two real logs at eight cutoffs each (benchmarks/README.md, "risk_real.py"): six stacked
    periods and the ``level`` correction ranked and calibrated better than one period; with
    them, exposure left the AUC unchanged (+-0.001) and narrowed the calibration gaps a little
    (on), role lowered CollegeMsg's AUC by 0.005 (off).
    """

    enabled: bool = True
    min_lapses: int = 20
    calibration: str = "none"
    value: str = "unit"
    l2: float = 1.0
    confidence: float = 0.9
    folds: int = 6
    fold_decay: float = 1.0
    drift: str = "level"
    exposure: bool = True
    role: bool = False

    def __post_init__(self) -> None:
        if self.min_lapses < 2:
            raise InvalidInputError(f"risk.min_lapses must be >= 2, not {self.min_lapses!r}")
        if self.calibration not in ("platt", "isotonic", "none"):
            raise InvalidInputError("risk.calibration must be platt, isotonic or none, not "
                                    f"{self.calibration!r}")
        if self.value not in ("active_days", "log_active_days", "interactions", "unit"):
            raise InvalidInputError("risk.value must be unit, active_days, log_active_days "
                                    f"or interactions, not {self.value!r}")
        if not self.l2 > 0:
            raise InvalidInputError(f"risk.l2 must be > 0, not {self.l2!r}")
        if not 0 < self.confidence < 1:
            raise InvalidInputError(f"risk.confidence must be in (0, 1), not {self.confidence!r}")
        if self.folds < 1:
            raise InvalidInputError(f"risk.folds must be >= 1, not {self.folds!r}")
        if not 0 < self.fold_decay <= 1:
            raise InvalidInputError(f"risk.fold_decay must be in (0, 1], not {self.fold_decay!r}")
        if self.drift not in ("none", "latest", "level"):
            raise InvalidInputError(f"risk.drift must be none, latest or level, not {self.drift!r}")


@dataclass(frozen=True)
class ChangesConfig:
    """Run-to-run change against the previous run (the ``changes`` step,
    :mod:`carenet.community.changes`): the ``top`` customers whose ``metrics`` rose most, and
    the communities that split, merged, appeared, vanished or lost their hub.
    """

    enabled: bool = True
    metrics: tuple[str, ...] = ("influence", "exposure", "priority")
    top: int = 100

    def __post_init__(self) -> None:
        if self.top < 1:
            raise InvalidInputError(f"changes.top must be >= 1, not {self.top}")
        if not self.metrics:
            raise InvalidInputError("changes.metrics must name at least one column")


@dataclass(frozen=True)
class EngineConfig:
    """Where the analysis runs: ``local`` (this process) or ``spark`` (:mod:`carenet.spark`).

    ``spark_master`` is a Spark master URL (None: ``local[2]``, or the one ``spark-submit``
    gave); ``spark_conf`` extra Spark settings; ``collect_max_ties`` the most ties collected to
    the driver to run every local step (above it only the distributed steps run);
    ``broadcast_max_ties`` the most ties for which the distributed path still runs influence
    and exposure as Spark tasks: their sampling needs the graph's diffusion arrays (about 40
    bytes a directed tie) on every executor, broadcast from the driver; above it (or at 0)
    they are reported as skipped.
    """

    name: str = "local"
    spark_master: str | None = None
    spark_conf: dict[str, str] = field(default_factory=dict)
    collect_max_ties: int = 200_000_000
    broadcast_max_ties: int = 200_000_000

    def __post_init__(self) -> None:
        _one_of("engine.name", self.name, ("local", "spark"))
        for key in ("collect_max_ties", "broadcast_max_ties"):
            if getattr(self, key) < 0:
                raise InvalidInputError(
                    f"engine.{key} must be >= 0, not {getattr(self, key)}")


@dataclass(frozen=True)
class AnalysisConfig:
    """Every setting of one analysis run; ``to_dict()`` goes into ``run.json``."""

    seed: int = 42
    input: InputConfig = field(default_factory=InputConfig)
    tables: TablesConfig = field(default_factory=TablesConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    measures: MeasuresConfig = field(default_factory=MeasuresConfig)
    communities: CommunitiesConfig = field(default_factory=CommunitiesConfig)
    influence: InfluenceConfig = field(default_factory=InfluenceConfig)
    lapse: LapseConfig = field(default_factory=LapseConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    care: CareConfig = field(default_factory=CareConfig)
    changes: ChangesConfig = field(default_factory=ChangesConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        check_upper_bounds(self)  # every numeric setting, however the config was built

    @classmethod
    def from_toml(cls, path: str | Path) -> AnalysisConfig:
        """Read a TOML config file; errors name the file and the key."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInputError("no such config file", file=p) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"not valid TOML: {exc}", file=p) from exc
        try:
            return cls.from_mapping(data)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.reason, file=p) from exc

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> AnalysisConfig:
        """Build from nested dicts (TOML, JSON, an API request); unknown keys are errors."""
        return from_mapping(cls, data)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (tuples as lists), the inverse of :meth:`from_mapping`."""
        return _plain(dataclasses.asdict(self))  # type: ignore[no-any-return]

    def with_overrides(self, overrides: dict[str, Any]) -> AnalysisConfig:
        """A copy with dotted keys replaced, e.g. ``{"graph.half_life": "7d"}``; ``None``
        values are skipped (a flag that was not given).
        """
        data = self.to_dict()
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = list(value) if isinstance(value, tuple) else value
        return from_mapping(type(self), data)


# ---------------------------------------------------------------------------- upper bounds
UPPER_BOUNDS: dict[str, float] = {
    # Every numeric setting's largest accepted value: a config file, a flag or an API request
    # (POST /v1/runs: 422) beyond it is refused, so that no run can hold the only run slot
    # for days. README "Operating carenet safely" lists them; raise one here if a real
    # analysis needs more. A dict or list setting bounds each of its values.
    "seed": 2**63 - 1,
    "graph.channel_weights": 1e6,
    "graph.min_weight": 1e12,
    "measures.pagerank_damping": 1.0,
    "measures.pagerank_tol": 1.0,
    "measures.exact_max": 100_000,
    "measures.samples": 100_000,
    "measures.confidence": 1.0,
    "measures.error": 10.0,
    "measures.budget": 1e13,
    "communities.resolution": 1_000.0,
    "communities.theta": 10.0,
    "communities.n_iterations": 1_000,
    "communities.min_jaccard": 1.0,
    "communities.hub_z": 100.0,
    "communities.connector_p": 1.0,
    "communities.bridge_p": 1.0,
    "communities.peripheral_ties": 1_000_000,
    "communities.top_k": 1_000,
    "influence.edge_scale": 1e6,
    "influence.edge_probability": 1.0,
    "influence.epsilon": 1.0,
    "influence.delta": 1.0,
    "influence.top": 100_000,
    "influence.confidence": 1.0,
    "influence.max_rr_sets": 200_000_000,
    "influence.max_rr_members": 10_000_000_000,
    "influence.missing_value": 1e12,
    "influence.sir_recovery": 1.0,
    "influence.exposure_runs": 100_000,
    "influence.exposure_error": 1.0,
    "influence.exposure_budget": 1e13,
    "influence.exposure_sources": 1_000,
    "influence.seed_set_size": 100_000,
    "influence.seed_budget": 1e15,
    "influence.compare_runs": 100_000,
    "influence.compare_error": 1.0,
    "care.retention": 1.0,
    "care.source_risk": 1.0,
    "care.budget": 1_000_000,
    "care.plan_runs": 10_000,
    "care.plan_max_entries": 500_000_000,
    "care.evaluation_runs": 100_000,
    "care.evaluation_error": 1.0,
    "care.evaluation_work": 1_000_000_000_000,
    "care.plan_error": 1.0,
    "care.plan_min_runs": 10_000,
    "care.evaluation_min_runs": 100_000,
    "care.compare_k": 1_000_000,
    "care.confidence": 1.0,
    "care.reasons_top": 1_000_000,
    "care.reason_ties": 100,
    "changes.top": 100_000,
    "lapse.quantile": 1.0,
    "lapse.max_seeds": 100_000_000,
    "risk.confidence": 1.0,
    "risk.folds": 50,
    "risk.fold_decay": 1.0,
    "risk.l2": 1e6,
    "risk.min_lapses": 1_000_000,
    "engine.collect_max_ties": 10_000_000_000,
    "engine.broadcast_max_ties": 10_000_000_000,
}


def check_upper_bounds(config: Any) -> None:
    """Raise :class:`InvalidInputError` naming the first setting of ``config`` (an
    :class:`AnalysisConfig`) above its bound in :data:`UPPER_BOUNDS`.
    """
    for dotted, bound in UPPER_BOUNDS.items():
        node: Any = config
        for part in dotted.split("."):
            node = getattr(node, part, None)
        values = (node.values() if isinstance(node, dict) else
                  node if isinstance(node, (list, tuple)) else (node,))
        for value in values:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    value > bound or value != value):
                shown = f"{int(bound):,}" if float(bound).is_integer() else f"{bound:g}"
                raise InvalidInputError(
                    f"setting {dotted!r} must be a number at most {shown}, not {value!r} "
                    "(the upper bounds are in carenet.config.UPPER_BOUNDS)")


def parse_time(value: str | float | int) -> float:
    """Epoch seconds from ISO 8601 text or a number of seconds.

    >>> parse_time("2026-01-01T00:00:00Z"), parse_time("1767225600")
    (1767225600.0, 1767225600.0)
    """
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    stamp = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    if pd.isna(stamp):
        raise InvalidInputError(f"cannot read time {value!r}; use ISO 8601 or epoch seconds")
    return float(stamp.value) / 1e9


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def from_mapping(cls: type[C], data: dict[str, Any], where: str = "") -> C:
    """Instantiate dataclass ``cls`` from a mapping, checking keys and coercing types."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"setting {where or 'config'} must be a table, not {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise InvalidInputError(f"unknown setting {name!r}; known here: {known}")
        kwargs[key] = _coerce(hints[key], value, name)
    try:
        return cls(**kwargs)
    except InvalidInputError:
        raise
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"invalid setting in {where or 'config'}: {exc}") from exc


def _coerce(tp: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, name)
            except InvalidInputError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_mapping(tp, value, name)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise InvalidInputError(f"setting {name!r} must be a list, not {value!r}")
        return tuple(_coerce(args[0], v, name) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidInputError(f"setting {name!r} must be a table, not {value!r}")
        return {str(k): _coerce(args[1], v, f"{name}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise InvalidInputError(f"setting {name!r} must be one of {list(args)}, not {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise InvalidInputError(f"setting {name!r} must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise InvalidInputError(f"setting {name!r} must be an integer, not {value!r}")
        try:
            return int(value)
        except ValueError:
            raise InvalidInputError(f"setting {name!r} must be an integer, not {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise InvalidInputError(f"setting {name!r} must be a number, not {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"setting {name!r} must be a number, not {value!r}") from None
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise InvalidInputError(f"setting {name!r} must be text, not {value!r}")
        return value
    return value
