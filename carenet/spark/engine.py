"""The Spark engine's dispatcher: load in Spark, then the driver path or the distributed path.

- **Driver path** (ties <= ``engine.collect_max_ties``, the common case: billions of interaction
  rows aggregate to far fewer ties): the aggregated ties are collected, sorted, and become the
  same :class:`~carenet.graphs.model.CustomerGraph` the local loader builds; every analysis step
  then runs as in a local run. The result is an ordinary :class:`~carenet.run.AnalysisRun`, saved
  and published like any other.
- **Distributed path** (more ties than that): degree/strength, PageRank, label-propagation
  communities and connected components run as DataFrame iterations
  (:mod:`carenet.spark.distributed`); the steps with no distributed form are reported as
  skipped, with the reason. The per-customer table is written next to ``run.json``.

Either way ``results["engine"]`` (in ``run.json``) says ``spark``, the path taken and why.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.graphs.build import LoadedNetwork, LoadReport
from carenet.graphs.ids import Pseudonymizer
from carenet.graphs.logs import FileReport
from carenet.graphs.model import CustomerGraph, NodeActivity
from carenet.graphs.tables import RejectLog
from carenet.pipeline import analyze, library_versions
from carenet.run import AnalysisRun
from carenet.spark.distributed import DistributedRun, analyze_distributed
from carenet.spark.load import SparkLoad, load_logs, rejects_frame
from carenet.spark.session import get_session, to_pandas
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


def collect_network(load: SparkLoad, config: AnalysisConfig) -> LoadedNetwork:
    """The driver path: collect the aggregated ties and build the local engine's network.

    Spark returns rows in no fixed order, so ties are sorted by (source, target) position and
    customers by position before any array is built: the graph is the same on every run.
    """
    g = config.graph
    nodes = to_pandas(load.nodes).sort_values("node", kind="stable").reset_index(drop=True)
    n = len(nodes)
    if not np.array_equal(nodes["node"].to_numpy(), np.arange(n)):
        raise InvalidInputError("internal error: Spark node positions are not 0..n-1")
    ties = to_pandas(load.ties)
    src = ties["src"].to_numpy(np.int64)
    dst = ties["dst"].to_numpy(np.int64)
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    raw_ids = nodes["customer_id"].to_numpy(dtype=object)
    rejects = rejects_frame(load)
    if g.pseudonymize:
        pseudo = Pseudonymizer.from_env()
        ids = pseudo.many(raw_ids)
        if len(set(ids.tolist())) != len(ids):
            raise InvalidInputError("two customer ids share a pseudonym; use another salt")
        id_cols = {c for f in load.files for r, c in f["columns"].items()
                   if r in ("source", "target")}
        hit = rejects["column"].isin(id_cols)
        rejects.loc[hit, "value"] = pseudo.many(rejects.loc[hit, "value"].str.strip()).tolist()
        rejects["record"] = ""  # raw ids must not leave the run unhashed
    else:
        ids = raw_ids
    first = nodes["first_seen"].to_numpy(np.float64, na_value=np.nan)
    last = nodes["last_seen"].to_numpy(np.float64, na_value=np.nan)
    activity = NodeActivity(first, last, nodes["sent"].to_numpy(np.int64),
                            nodes["received"].to_numpy(np.int64))
    graph = CustomerGraph(
        ids, indptr, dst.astype(np.int32), ties["weight"].to_numpy(np.float64)[order],
        ties["count"].to_numpy(np.int64)[order].astype(np.uint32),
        ties["channels"].to_numpy(np.int64)[order].astype(np.uint16),
        tuple(load.channels), True, load.reference_time, load.half_life, activity,
    )
    if g.symmetrize:
        graph = graph.symmetrize()
    customers = pd.DataFrame({"customer_id": ids})
    customers["in_log"] = (activity.sent + activity.received) > 0
    customers["value"] = np.nan
    customers["churn_score"] = np.nan
    customers["segment"] = pd.Series([None] * n, dtype=object)
    events = pd.DataFrame({"node": pd.Series(dtype=np.int64),
                           "customer_id": pd.Series(dtype=object),
                           "event": pd.Series(dtype=object),
                           "timestamp": pd.Series(dtype=np.float64)})
    log = RejectLog()
    for (file, reason), part in rejects.groupby(["file", "reason"], sort=False):
        log.add(str(file), part["line"].to_numpy(), str(reason), column=str(part["column"].iloc[0]),
                values=part["value"].tolist(), records=part["record"].tolist(),
                detail=str(part["detail"].iloc[0]))
    report = LoadReport(files=_file_reports(load), rejected=dict(load.rejected),
                        reference_time=graph.reference_time, half_life=graph.half_life,
                        channels=list(graph.channel_names))
    return LoadedNetwork(graph, customers, events, report, log)


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
        Side tables: not read by the Spark engine yet (a clear error if given).
    previous, progress, steps
        As for :func:`carenet.pipeline.analyze` (driver path).
    spark
        A SparkSession to use (default: :func:`get_session` from ``config.engine``).

    Returns
    -------
    AnalysisRun or DistributedRun
        An ordinary run (driver path) or the distributed path's per-customer table.
    """
    if customers is not None or events is not None:
        raise InvalidInputError(
            "the Spark engine reads interaction logs only; run with --engine local to add "
            "--customers/--events tables"
        )
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
        network = collect_network(load, config)
        info["collect_seconds"] = round(time.perf_counter() - t0 - t_load, 3)
        run = analyze(list(logs), config=config, previous=previous, progress=progress,
                      steps=steps, network=network)
        run.timings["load"] = t_load + info["collect_seconds"]
        run.results["engine"] = info
        run.versions["pyspark"] = session.version
        return run
    info["path"] = "distributed"
    info["reason"] = (f"{n_ties:,} ties > collect_max_ties {limit:,}: the graph stays in "
                      "Spark; only the steps with a distributed form ran")
    return analyze_distributed(session, load, config, info, logs=[str(x) for x in logs],
                               versions=library_versions() | {"pyspark": session.version})


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

    A driver-path run is saved to ``out`` and published to ``store`` like any run; a
    distributed-path run is saved (its per-customer table and ``run.json``) but not published:
    the store and the views need a run's ties on one machine.
    """
    report = progress or no_progress
    run = analyze_spark(logs, config=config, customers=customers, events=events,
                        previous=previous, progress=report)
    if out is not None:
        report("save", None, None)
        run.save(out)
    if store is not None and isinstance(run, AnalysisRun):
        report("publish", None, None)
        store.publish(run)
    return run
