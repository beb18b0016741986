"""The Spark engine's dispatcher: load in Spark, then the driver path or the distributed path.

- **Driver path** (ties <= ``engine.collect_max_ties``, the common case: billions of interaction
  rows aggregate to far fewer ties): the aggregated ties are collected, sorted, and become the
  same :class:`~carenet.graphs.model.CustomerGraph` the local loader builds; every analysis step
  then runs as in a local run. The result is an ordinary :class:`~carenet.run.AnalysisRun`, saved
  and published like any other.
- **Distributed path** (more ties than that): degree/strength, PageRank, label-propagation
  communities and connected components run as DataFrame iterations
  (:mod:`carenet.spark.distributed`); all-customer influence and exposure as Spark tasks over
  a broadcast graph (:mod:`carenet.spark.sampling`; up to ``engine.broadcast_max_ties``); the
  steps with no distributed form are reported as skipped, with the reason. Published
  (:func:`publishable_run`: the ties are collected once, for the store) and saved as an
  ordinary run; without a store, the per-customer table is written next to ``run.json``.

Either path reads the customers and events tables with the local readers
(:mod:`carenet.spark.side`).

Either way ``results["engine"]`` (in ``run.json``) says ``spark``, the path taken and why.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.graphs.build import Interactions, LoadedNetwork, LoadReport, customer_table
from carenet.graphs.ids import Pseudonymizer
from carenet.graphs.logs import FileReport
from carenet.graphs.model import CustomerGraph
from carenet.pipeline import analyze, library_versions
from carenet.run import AnalysisRun
from carenet.spark.distributed import DistributedRun, analyze_distributed, node_activity
from carenet.spark.load import SparkLoad, load_logs
from carenet.spark.session import get_session, to_pandas
from carenet.spark.side import SideTables, read_side_tables
from carenet.steps.base import Progress, no_progress


def _file_reports(load: SparkLoad) -> list[FileReport]:
    out = []
    for f in load.files:
        rep = FileReport(file=f["file"], kind="log", format=f["format"], columns=f["columns"],
                         rows_read=f["rows_read"], rows_loaded=f["rows_loaded"],
                         rejected=f["rejected"], delimiter=f["delimiter"], header=f["header"],
                         time_unit=f["time_unit"], notes=list(load.notes))
        out.append(rep)
    return out


def collect_interactions(load: SparkLoad, limit: int) -> tuple[Interactions | None, str]:
    """The timed interactions (node positions, time, channel) in load order, on the driver,
    when there are at most ``limit`` of them: the risk step's input, as the local loader keeps
    it. Returns (None, why) otherwise.
    """
    if not load.has_time:
        return None, "the logs have no timestamps"
    rows = sum(f["rows_loaded"] for f in load.files)
    if rows > limit:
        return None, (f"{rows:,} interaction rows > collect_max_ties {limit:,}: not collected, "
                      "so the risk step runs as for a log without timestamps")
    pdf = to_pandas(load.timed)
    pdf = pdf.sort_values(["_file", "_line"], kind="stable")
    code = pdf["code"].to_numpy(np.float64, na_value=-1.0).astype(np.int16)
    return Interactions(pdf["s"].to_numpy(np.int32), pdf["d"].to_numpy(np.int32),
                        pdf["t"].to_numpy(np.float64), code), f"{rows:,} interactions collected"


def collect_graph(load: SparkLoad, side: SideTables, config: AnalysisConfig) -> CustomerGraph:
    """The aggregated ties collected into the local engine's graph (ids as ``side`` gives).

    Spark returns rows in no fixed order, so ties are sorted by (source, target) position and
    customers by position before any array is built: the graph is the same on every run.
    """
    g = config.graph
    nodes = to_pandas(load.nodes).sort_values("node", kind="stable").reset_index(drop=True)
    n = len(side.ids)
    ties = to_pandas(load.ties)
    src = ties["src"].to_numpy(np.int64)
    dst = ties["dst"].to_numpy(np.int64)
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    pseudo = Pseudonymizer.from_env() if g.pseudonymize else None
    ids = side.ids
    if pseudo is not None:
        ids = pseudo.many(side.ids)
        if len(set(ids.tolist())) != len(ids):
            raise InvalidInputError("two customer ids share a pseudonym; use another salt")
    graph = CustomerGraph(
        ids, indptr, dst.astype(np.int32), ties["weight"].to_numpy(np.float64)[order],
        ties["count"].to_numpy(np.int64)[order].astype(np.uint32),
        ties["channels"].to_numpy(np.int64)[order].astype(np.uint16),
        tuple(load.channels), True, load.reference_time, load.half_life,
        node_activity(nodes, n),
    )
    return graph.symmetrize() if g.symmetrize else graph


def collect_network(load: SparkLoad, config: AnalysisConfig, *, spark: Any = None,
                    customers: Any = None, events: Any = None,
                    info: dict[str, Any] | None = None) -> LoadedNetwork:
    """The driver path: collect the aggregated ties and build the local engine's network.

    The customers and events tables are read by the local readers
    (:func:`carenet.spark.side.read_side_tables`); the timed interactions are collected for
    the risk step when there are at most ``engine.collect_max_ties`` of them.
    """
    side = read_side_tables(load, config, spark=spark, customers=customers, events=events)
    graph = collect_graph(load, side, config)
    table = customer_table(graph.ids, graph.activity, side.customers)
    events_frame = side.events
    if len(events_frame):
        events_frame["customer_id"] = graph.ids[events_frame["node"].to_numpy()]
    interactions, why = collect_interactions(load, config.engine.collect_max_ties)
    if info is not None:
        info["interactions"] = why
    report = LoadReport(files=_file_reports(load) + side.files,
                        rejected=side.rejects.counts(),
                        reference_time=graph.reference_time, half_life=graph.half_life,
                        channels=list(graph.channel_names))
    return LoadedNetwork(graph, table, events_frame, report, side.rejects, interactions)


def analyze_spark(
    logs: Sequence[str | Path],
    *,
    config: AnalysisConfig = AnalysisConfig(),
    customers: Any = None,
    events: Any = None,
    previous: AnalysisRun | None = None,
    progress: Progress = no_progress,
    steps: Sequence[str] | None = None,
    spark: Any = None,
) -> AnalysisRun | DistributedRun:
    """Analyse logs with Spark: the driver path when the ties fit, else the distributed path.

    Parameters
    ----------
    logs
        Local paths or URIs Spark reads.
    config
        The run's configuration; ``config.engine`` gives the master, settings and the limit.
    customers, events
        Side tables (local paths, DataFrames or URIs): read with the local readers on the
        driver against Spark's ids (:func:`read_side_tables`).
    previous, progress, steps
        As for :func:`carenet.pipeline.analyze` (driver path).
    spark
        A SparkSession to use (default: :func:`get_session` from ``config.engine``).

    Returns
    -------
    AnalysisRun or DistributedRun
        An ordinary run (driver path) or the distributed path's per-customer table.
    """
    eng = config.engine
    t0 = time.perf_counter()
    progress("spark", None, None)
    session = spark if spark is not None else get_session(eng.spark_master, eng.spark_conf)
    g = config.graph
    load = load_logs(
        session, [str(x) for x in logs], options=config.input.log_options(),
        half_life=g.half_life_seconds, reference_time=g.reference_seconds,
        channels=g.channels, channel_weights=g.channel_weights, min_weight=g.min_weight,
    )
    n_ties = int(load.ties.count())
    t_load = time.perf_counter() - t0
    limit = eng.collect_max_ties
    info: dict[str, Any] = {
        "name": "spark",
        "master": session.sparkContext.master,
        "spark_version": session.version,
        "ties": n_ties,
        "collect_max_ties": limit,
        "spark_load_seconds": round(t_load, 3),
    }
    if n_ties <= limit:
        info["path"] = "driver"
        info["reason"] = (f"{n_ties:,} ties <= collect_max_ties {limit:,}: collected to the "
                          "driver, every step run by the local kernels")
        network = collect_network(load, config, spark=session, customers=customers,
                                  events=events, info=info)
        info["collect_seconds"] = round(time.perf_counter() - t0 - t_load, 3)
        run = analyze(list(logs), config=config, previous=previous, progress=progress,
                      steps=steps, network=network, customers=customers, events=events)
        run.timings["load"] = t_load + info["collect_seconds"]
        run.results["engine"] = info
        run.versions["pyspark"] = session.version
        return run
    info["path"] = "distributed"
    info["reason"] = (f"{n_ties:,} ties > collect_max_ties {limit:,}: the graph stays in "
                      "Spark; only the steps with a distributed form ran")
    side = read_side_tables(load, config, spark=session, customers=customers, events=events)
    return analyze_distributed(session, load, config, info, logs=[str(x) for x in logs],
                               versions=library_versions() | {"pyspark": session.version},
                               side=side,
                               graph_for_broadcast=lambda: collect_graph(load, side, config))


def publishable_run(drun: DistributedRun, config: AnalysisConfig) -> AnalysisRun:
    """A distributed-path run as an ordinary :class:`~carenet.run.AnalysisRun`, to publish.

    The store keeps every tie of a run in one database (the views draw ego networks from
    them), so publishing collects the tie table to the driver once, after the distributed
    steps ran: the per-customer results are the distributed path's, unchanged, and
    ``results.engine.published`` says what was collected. The run directory it saves is the
    ordinary format (``carenet serve``, ``report`` and ``AnalysisRun.load`` read it).
    """
    if drun.load is None or drun.side is None:
        raise InvalidInputError("this distributed run has no Spark load to publish from")
    t = time.perf_counter()
    # collected once: the influence broadcast's graph when that ran
    graph = drun.collected_graph
    if graph is None:
        graph = collect_graph(drun.load, drun.side, config)
    meta = drun.meta
    results = dict(drun.results)
    engine = dict(results.get("engine", {}))
    engine["published"] = (f"{graph.n_ties:,} ties collected to the driver after the "
                           "distributed steps, for the store (it keeps every tie)")
    results["engine"] = engine
    loading = LoadReport(files=_file_reports(drun.load) + drun.side.files,
                         rejected=drun.side.rejects.counts(),
                         reference_time=graph.reference_time, half_life=graph.half_life,
                         channels=list(graph.channel_names)).to_dict()
    events = drun.events if drun.events is not None else drun.side.events
    if len(events):
        events = events.assign(customer_id=graph.ids[events["node"].to_numpy()])
    timings = dict(meta["timings"]) | {"collect_for_store": time.perf_counter() - t}
    return AnalysisRun(
        run_id=drun.run_id, created=meta["created"], finished=meta["finished"],
        parameters=meta["parameters"], inputs=meta["inputs"], timings=timings,
        counts=dict(meta["counts"]) | {"graph_bytes": graph.nbytes},
        versions=meta["versions"], summary=graph.summary().to_dict(), loading=loading,
        customers=drun.customers, tables=dict(drun.tables), graph=graph, events=events,
        rejects=drun.rejects, results=results,
    )


def analyze_and_publish_spark(
    logs: Sequence[str | Path],
    *,
    config: AnalysisConfig,
    store: Any,
    customers: Any = None,
    events: Any = None,
    previous: AnalysisRun | None = None,
    progress: Progress | None = None,
    out: str | Path | None = None,
) -> AnalysisRun | DistributedRun:
    """:func:`carenet.store.publish.analyze_and_publish` with the Spark engine.

    A driver-path run is saved to ``out`` and published to ``store`` like any run. A
    distributed-path run is published too (:func:`publishable_run`: the store needs the ties on
    one machine) and then saved in the ordinary format; without a store it is saved as the
    distributed path's per-customer table and ``run.json``.
    """
    report = progress or no_progress
    run: AnalysisRun | DistributedRun = analyze_spark(
        logs, config=config, customers=customers, events=events, previous=previous,
        progress=report)
    if store is not None and isinstance(run, DistributedRun):
        report("collect for the store", None, None)
        run = publishable_run(run, config)
    if out is not None:
        report("save", None, None)
        run.save(out)
    if store is not None and isinstance(run, AnalysisRun):
        report("publish", None, None)
        store.publish(run)
    return run
