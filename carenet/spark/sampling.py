"""Influence and exposure on the distributed path: the local sampling kernels as Spark tasks.

Why this split gives the local answer
-------------------------------------
All-customer influence (reverse influence sampling) and exposure (forward live-edge worlds)
draw from *counter-based* random streams: RR set ``i`` draws only from the stream
``(seed, i)``, world ``r`` only from ``(seed, r)`` (:mod:`carenet.graphs.rng`). A range of
sets or worlds cut into blocks therefore gives, block by block, counts that add up exactly to
what one process computes for the whole range, whatever the number of blocks or executors.

How
---
The estimators stay where they are and keep their stopping rules, intervals and attribution
(:func:`carenet.community.influence.influence_scores` with ``rr_counter=``,
:func:`~carenet.community.influence.exposure_scores` with ``worlds=``). Each time one of them
asks for a range ``[first, first + count)``, :class:`SparkSampler` runs one Spark job: one task
per block of the range, each calling the local kernel
(:func:`~carenet.graphs.diffusion.rr_counts`, :func:`~carenet.graphs.exposure.exposure_worlds`)
on the diffusion graph, which is broadcast once per run. A task returns sparse rows (customer,
count; for the worlds that record attribution, the counted (customer, source, via) keys) and
Spark sums them with one group-by; only the sums reach the driver.

The graph itself passes through the driver once, as the broadcast (about 40 bytes a directed
tie): ``engine.broadcast_max_ties`` bounds that; above it these steps are reported as skipped.
IMM seed selection keeps its RR sets in one process and is not run on this path.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np
import pandas as pd

from carenet.community.influence import (
    customer_values,
    exposure_scores,
    influence_scores,
    seeds_from_events,
)
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.graphs.diffusion import DiffusionGraph, rr_counts
from carenet.graphs.exposure import exposure_worlds
from carenet.graphs.model import CustomerGraph
from carenet.graphs.rng import derive_seed
from carenet.spark.session import to_pandas
from carenet.steps.influence import EXPOSURE_PHASE

SCHEMA = "kind int, key long, count long"
"""Rows a task returns: kind 0 = per-customer count (key = position), kind 1 = attribution key
(exposure) or the sets' total size (RIS, key 0)."""


def _task_threads() -> None:
    """One numba thread per CPU the task was given (Spark runs tasks side by side; numba's
    default of every core in each of them would oversubscribe the executor).
    """
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        cpus = int(ctx.cpus()) if ctx is not None else 1
    except (ImportError, AttributeError):  # pragma: no cover - older pyspark
        cpus = 1
    nb.set_num_threads(max(1, min(cpus, int(getattr(nb.config, "NUMBA_NUM_THREADS", 1)))))


def _blocks(first: int, count: int, tasks: int) -> list[tuple[int, int]]:
    """``[first, first + count)`` cut into at most ``tasks`` contiguous (first, count) blocks.

    >>> _blocks(10, 7, 3)
    [(10, 2), (12, 2), (14, 3)]
    """
    parts = max(1, min(int(tasks), int(count)))
    edges = [first + count * i // parts for i in range(parts + 1)]
    return [(a, b - a) for a, b in itertools.pairwise(edges) if b > a]


def _rr_task(graph: Any, weights: Any, model: str,
             seed: int) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The task of one RR-set block: the local ``rr_counts`` on the broadcast graph."""
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        _task_threads()
        dg = graph.value
        rw = None if weights is None else weights.value
        for pdf in batches:
            for first, count in zip(pdf["first"].tolist(), pdf["count"].tolist(), strict=True):
                counts, size = rr_counts(dg, int(count), model=model, seed=seed,
                                         first=int(first), root_weights=rw)
                nz = np.flatnonzero(counts)
                yield pd.DataFrame({"kind": np.zeros(nz.size, np.int32), "key": nz,
                                    "count": counts[nz]})
                yield pd.DataFrame({"kind": np.ones(1, np.int32), "key": np.zeros(1, np.int64),
                                    "count": np.array([size], np.int64)})
    return run


def _world_task(graph: Any, seeds: np.ndarray, model: str, recovery: float, seed: int,
                record: bool) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The task of one block of exposure worlds: the local ``exposure_worlds``."""
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        _task_threads()
        dg = graph.value
        for pdf in batches:
            for first, count in zip(pdf["first"].tolist(), pdf["count"].tolist(), strict=True):
                hits, keys = exposure_worlds(dg, seeds, model=model, recovery=recovery,
                                             seed=seed, first=int(first), count=int(count),
                                             record=record)
                nz = np.flatnonzero(hits)
                yield pd.DataFrame({"kind": np.zeros(nz.size, np.int32), "key": nz,
                                    "count": hits[nz]})
                yield pd.DataFrame({"kind": np.ones(keys.shape[1], np.int32), "key": keys[0],
                                    "count": keys[1]})
    return run


@dataclass
class SparkSampler:
    """Runs RR-set and exposure-world ranges as Spark tasks over a broadcast diffusion graph.

    Pass :meth:`rr_counts` as ``rr_counter`` and :meth:`worlds` as ``worlds`` to the local
    estimators. ``tasks``: blocks per range (default: the session's default parallelism);
    ``jobs``, ``task_runs`` and ``seconds`` count what ran, for ``run.json``.
    """

    spark: Any
    dg: DiffusionGraph
    tasks: int = 0
    jobs: int = 0
    task_runs: int = 0
    seconds: float = 0.0
    _graph: Any = None
    _weights: list[tuple[np.ndarray, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.tasks <= 0:
            self.tasks = int(self.spark.sparkContext.defaultParallelism)

    def _check(self, dg: DiffusionGraph) -> Any:
        # the estimator must mean the broadcast graph, or the tasks would answer another one
        if dg is not self.dg:
            raise InvalidInputError("SparkSampler: the estimator's diffusion graph is not the "
                                    "one broadcast to the tasks")
        if self._graph is None:
            self._graph = self.spark.sparkContext.broadcast(self.dg)
        return self._graph

    def _weights_of(self, root_weights: np.ndarray | None) -> Any:
        if root_weights is None:
            return None
        for arr, bc in self._weights:
            if arr is root_weights:
                return bc
        bc = self.spark.sparkContext.broadcast(np.asarray(root_weights, np.float64))
        self._weights.append((root_weights, bc))
        return bc

    def _run(self, first: int, count: int,
             task: Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]) -> pd.DataFrame:
        from pyspark.sql import functions as sf

        t = time.perf_counter()
        blocks = _blocks(first, count, self.tasks)
        sc = self.spark.sparkContext
        ranges = self.spark.createDataFrame(sc.parallelize(blocks, len(blocks)),
                                            "first long, count long")
        with warnings.catch_warnings():
            # pyspark 4.x warns about pandas >= 3 when a pandas function is declared (see
            # carenet.spark.session.to_pandas): the tasks exchange plain int columns only
            warnings.simplefilter("ignore", FutureWarning)
            mapped = ranges.mapInPandas(task, SCHEMA)
        summed = mapped.groupBy("kind", "key").agg(sf.sum("count").alias("count"))
        out = to_pandas(summed)
        self.jobs += 1
        self.task_runs += len(blocks)
        self.seconds += time.perf_counter() - t
        return out

    def rr_counts(self, dg: DiffusionGraph, count: int, *, model: str = "ic", seed: int = 0,
                  first: int = 0,
                  root_weights: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """:func:`carenet.graphs.diffusion.rr_counts` for sets ``first .. first + count - 1``,
        sampled by Spark tasks; the same counts and total size.
        """
        n = dg.n_nodes
        counts = np.zeros(n, np.int64)
        if count <= 0:
            return counts, 0
        bc = self._check(dg)
        out = self._run(int(first), int(count),
                        _rr_task(bc, self._weights_of(root_weights), model, int(seed)))
        per = out[out["kind"] == 0]
        counts[per["key"].to_numpy(np.int64)] = per["count"].to_numpy(np.int64)
        return counts, int(out.loc[out["kind"] == 1, "count"].sum())

    def worlds(self, dg: DiffusionGraph, seeds: np.ndarray, *, model: str = "ic",
               recovery: float = 1.0, seed: int = 0, first: int = 0, count: int = 1,
               record: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """:func:`carenet.graphs.exposure.exposure_worlds` for worlds ``first .. first +
        count - 1``, simulated by Spark tasks; the same hits and attribution counts.
        """
        n = dg.n_nodes
        hits = np.zeros(n, np.int64)
        if count <= 0:
            return hits, np.zeros((2, 0), np.int64)
        bc = self._check(dg)
        out = self._run(int(first), int(count),
                        _world_task(bc, np.asarray(seeds, np.int64), model, float(recovery),
                                    int(seed), bool(record)))
        per = out[out["kind"] == 0]
        hits[per["key"].to_numpy(np.int64)] = per["count"].to_numpy(np.int64)
        att = out[out["kind"] == 1].sort_values("key", kind="stable")
        return hits, np.stack([att["key"].to_numpy(np.int64), att["count"].to_numpy(np.int64)])

    def release(self) -> None:
        """Drop the broadcasts from the executors and the driver."""
        for bc in [self._graph, *(b for _, b in self._weights)]:
            if bc is not None:
                bc.destroy()
        self._graph = None
        self._weights = []


@dataclass
class SampledInfluence:
    """What the distributed influence step produced: per-customer columns, ``run.json``'s
    ``results.influence``, the ``exposure_sources`` table and the sampler's counts.
    """

    columns: dict[str, np.ndarray]
    results: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    engine: dict[str, Any]


def distributed_influence(spark: Any, graph: CustomerGraph, config: AnalysisConfig,
                          customers: pd.DataFrame, events: pd.DataFrame, *,
                          tasks: int = 0) -> SampledInfluence:
    """All-customer influence (RIS) and exposure as Spark tasks, with the local step's
    settings and seeds (:func:`carenet.steps.influence.influence_step`): the same RR sets and
    worlds, so the same values, intervals and attribution as a local run of the same graph.

    Exposure's seeds are the customers with recent negative events; lapsed customers (the
    risk step's) are not, since risk does not run on this path (``results`` says so). IMM
    seed selection does not run either (no ``seed_rank``).
    """
    cfg = config.influence
    edge: dict[str, Any] = cfg.ties.kwargs()
    dg = DiffusionGraph.from_graph(graph, edge_model=edge["edge_model"], scale=edge["scale"],
                                   probability=edge["probability"])
    sampler = SparkSampler(spark, dg, tasks=tasks)
    values = None
    if "value" in customers:
        values = customer_values(customers["value"], len(customers),
                                 missing=cfg.missing_value)
    try:
        scores = influence_scores(
            graph, model=cfg.model, epsilon=cfg.epsilon, delta=cfg.delta, top=cfg.top,
            confidence=cfg.confidence, values=values, missing_value=cfg.missing_value,
            seed=derive_seed(config.seed, 101), max_rr_sets=cfg.max_rr_sets,
            max_rr_members=cfg.max_rr_members, rr_counter=sampler.rr_counts, **edge)
        ris = {"jobs": sampler.jobs, "tasks": sampler.task_runs,
               "seconds": round(sampler.seconds, 3)}
        seeds = seeds_from_events(events, reference_time=graph.reference_time,
                                  lookback=cfg.lookback_seconds, kinds=cfg.negative_events)
        exposure = exposure_scores(
            graph, seeds, model=cfg.exposure_model or cfg.model, runs=cfg.exposure_runs,
            error=cfg.exposure_error, budget=cfg.exposure_budget or None,
            confidence=cfg.confidence, sources=cfg.exposure_sources,
            seed=derive_seed(config.seed, EXPOSURE_PHASE), seeds_are_positions=True,
            recovery=cfg.sir_recovery, worlds=sampler.worlds, **edge)
    finally:
        sampler.release()
    results = {
        "influence": scores.to_dict(top=10),
        "exposure": exposure.to_dict(top=10) | {
            "negative_events": list(cfg.negative_events), "lookback": cfg.lookback,
            "reference_time": graph.reference_time, "event_seeds": int(seeds.size),
            "lapsed_seeds": 0,
            "lapsed_seeds_note": "risk does not run on the distributed path: no lapse seeds"},
    }
    engine = {
        "influence": ris,
        "exposure": {"jobs": sampler.jobs - ris["jobs"],
                     "tasks": sampler.task_runs - ris["tasks"],
                     "seconds": round(sampler.seconds - ris["seconds"], 3)},
        "tasks_per_job": sampler.tasks,
        "broadcast_bytes": int(dg.nbytes),
    }
    return SampledInfluence(columns=scores.columns() | exposure.columns(), results=results,
                            tables={"exposure_sources": exposure.sources}, engine=engine)
