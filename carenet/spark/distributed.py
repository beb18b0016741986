"""The distributed path: graph measures as Spark DataFrame iterations, for tie tables that do
not fit the driver.

Each algorithm keeps the tie table partitioned (``src, dst, weight``) and one small row per
customer; an iteration is a join of the ties with the current node values and a group-by on the
other end (one shuffle). Each step reads the previous step's values exactly once (a step that
read them twice would recompute the chain exponentially), so ``check_every`` steps chain lazily
and are then materialised with ``localCheckpoint``, where the stopping test runs.

- :func:`degrees`: in/out degree and strength (the local ``degree_*``/``strength_*`` columns).
- :func:`pagerank`: the local definition (weighted out-ties, dangling customers jump uniformly,
  damping 0.85) and stopping rule ``d / (1 - d) * ||x_t - x_{t-1}||_1 <= tol``.
- :func:`label_propagation`: synchronous label propagation over the undirected weighted graph;
  :func:`label_propagation_reference` is the same rule in numpy (the tests' oracle).
- :func:`components`: weakly connected components as minimum-label propagation.

Every result comes back sorted by node position (Spark's row order varies between runs).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carenet.config import AnalysisConfig
from carenet.graphs.build import customer_table
from carenet.graphs.ids import Pseudonymizer
from carenet.graphs.model import CustomerGraph, NodeActivity
from carenet.run import atomic_directory
from carenet.spark.load import SparkLoad
from carenet.spark.sampling import distributed_influence
from carenet.spark.session import to_pandas
from carenet.spark.side import SideTables

SKIPPED_DISTRIBUTED = {
    "betweenness": "shortest-path measures need the whole graph in one process",
    "harmonic": "shortest-path measures need the whole graph in one process",
    "eigenvector": "not implemented as DataFrame iterations (PageRank is)",
    "core": "k-core peeling has no DataFrame form here",
    "leiden": "Leiden moves nodes one at a time; label propagation is the distributed "
              "community method",
    "roles": "roles need the community table built on one machine",
    "risk": "the churn-risk model reads every timed interaction on one machine",
    "influence": "all-customer influence and exposure run as Spark tasks over a broadcast "
                 "graph only up to engine.broadcast_max_ties ties (or influence.enabled is "
                 "off)",
    "seed_set": "IMM seed selection keeps its RR sets in one process; not run on this path",
    "care": "the care plan's dominator trees need the whole graph in one process",
    "changes": "needs the steps above",
}


@dataclass
class DistributedRun:
    """What the distributed path produced: the per-customer table and ``run.json``'s content."""

    run_id: str
    customers: pd.DataFrame
    rejects: pd.DataFrame
    meta: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    events: pd.DataFrame | None = None
    load: Any = None
    """The Spark load (its tie table stays in Spark; publishing collects it)."""
    side: SideTables | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Extra tables (``exposure_sources`` when exposure ran as Spark tasks)."""
    collected_graph: CustomerGraph | None = None
    """The graph collected for the influence broadcast, if it was (publishing reuses it; not
    named ``graph``: the CLI tells this run from an ordinary one by that attribute)."""

    def save(self, directory: str | Path) -> Path:
        """Write ``customers.parquet``, ``customers.csv``, ``rejects.csv``, the extra tables
        (``<name>.parquet``) and ``run.json``.
        """
        with atomic_directory(Path(directory)) as tmp:
            self.customers.to_parquet(tmp / "customers.parquet", index=False)
            self.customers.to_csv(tmp / "customers.csv", index=False)
            self.rejects.to_csv(tmp / "rejects.csv", index=False)
            for name, table in self.tables.items():
                table.to_parquet(tmp / f"{name}.parquet", index=False)
            (tmp / "run.json").write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
        return Path(directory)


BROADCAST_MAX = 2_000_000
"""Per-customer tables up to this many rows are broadcast to the tie partitions."""


def _sorted(frame: Any, n: int, column: str, dtype: Any) -> np.ndarray:
    """One per-node column of a Spark DataFrame as a numpy array aligned to positions."""
    pdf = to_pandas(frame)
    out = np.zeros(n, dtype=dtype)
    out[pdf["node"].to_numpy(np.int64)] = pdf[column].to_numpy(dtype)
    return out


def degrees(ties: Any, n: int) -> dict[str, np.ndarray]:
    """In/out degree and strength per node (two group-bys, one collect each)."""
    from pyspark.sql import functions as sf

    out_ = ties.groupBy(sf.col("src").alias("node")).agg(
        sf.count("*").alias("degree_out"), sf.sum("weight").alias("strength_out"))
    in_ = ties.groupBy(sf.col("dst").alias("node")).agg(
        sf.count("*").alias("degree_in"), sf.sum("weight").alias("strength_in"))
    res: dict[str, np.ndarray] = {}
    for frame, cols in ((in_, ("degree_in", "strength_in")), (out_, ("degree_out",
                                                                     "strength_out"))):
        pdf = to_pandas(frame)
        nodes = pdf["node"].to_numpy(np.int64)
        for c in cols:
            arr = np.zeros(n, np.int64 if c.startswith("degree") else np.float64)
            arr[nodes] = pdf[c].to_numpy(arr.dtype)
            res[c] = arr
    return res


def _small(frame: Any, n: int, broadcast_max: int) -> Any:
    """``frame`` marked for broadcast when the per-customer table is small enough (the join
    with the tie table then needs no shuffle of the ties).
    """
    from pyspark.sql import functions as sf

    return sf.broadcast(frame) if n <= broadcast_max else frame


def pagerank(spark: Any, ties: Any, n: int, *, damping: float = 0.85, tol: float = 1e-6,
             max_iter: int = 500, check_every: int = 5,
             broadcast_max: int = BROADCAST_MAX) -> tuple[np.ndarray, int]:
    """Weighted PageRank by power iteration over the partitioned tie table.

    Iterates ``y <- d P^T y + (1 - d) / n`` (``P`` the row-normalised out-ties, zero rows for
    customers without out-ties) and normalises ``y`` to sum 1 at the end: with the uniform jump
    used both for teleporting and for dangling customers this is exactly the local PageRank,
    and each step reads the previous values once (so steps chain without re-computation).
    Stops when ``d / (1 - d) * ||y_t - y_{t-check_every}||_1 / sum(y) <= tol``, tested every
    ``check_every`` steps: the local stopping rule, applied conservatively.

    Returns
    -------
    (numpy.ndarray, int)
        PageRank per node position, and the iterations run.
    """
    from pyspark.sql import functions as sf

    out_w = ties.groupBy("src").agg(sf.sum("weight").alias("s"))
    trans = (ties.join(out_w, "src").select("src", "dst", (sf.col("weight") / sf.col("s"))
                                            .alias("p")).cache())
    nodes = spark.range(n).select(sf.col("id").cast("int").alias("node")).cache()
    base = (1.0 - damping) / n
    # y holds only customers with in-ties; every other customer's value is ``base``
    y = nodes.select("node", sf.lit(1.0 / n).alias("y")).localCheckpoint()
    done = 0
    total = 1.0
    while done < max_iter:
        prev = y
        for _ in range(min(check_every, max_iter - done)):
            ys = _small(y.withColumnRenamed("node", "src"), n, broadcast_max)
            y = (trans.join(ys, "src", "left")
                 .groupBy(sf.col("dst").alias("node"))
                 .agg((sf.lit(damping) * sf.sum(sf.col("p") * sf.coalesce("y", sf.lit(base)))
                       + sf.lit(base)).alias("y")))
            done += 1
        y = y.localCheckpoint()
        row = (y.join(prev.withColumnRenamed("y", "p"), "node", "full")
               .agg(sf.sum(sf.abs(sf.coalesce("y", sf.lit(base)) - sf.coalesce("p", sf.lit(base))))
                    .alias("d"), sf.sum("y").alias("t"), sf.count("y").alias("k")).first())
        total = float(row["t"] or 0.0) + (n - int(row["k"])) * base
        if damping / (1 - damping) * float(row["d"] or 0.0) / total <= tol:
            break
    values = np.full(n, base)
    pdf = to_pandas(y)
    values[pdf["node"].to_numpy(np.int64)] = pdf["y"].to_numpy(np.float64)
    return values / values.sum(), done


def _undirected(ties: Any) -> Any:
    from pyspark.sql import functions as sf

    both = ties.select("src", "dst", "weight").unionByName(
        ties.select(sf.col("dst").alias("src"), sf.col("src").alias("dst"), "weight"))
    return both.groupBy("src", "dst").agg(sf.sum("weight").alias("weight"))


def _changed(new: Any, old: Any, column: str) -> bool:
    from pyspark.sql import functions as sf

    return bool(new.join(old.withColumnRenamed(column, "_old"), "node")
                .where(sf.col(column) != sf.col("_old")).limit(1).count())


def label_propagation(spark: Any, ties: Any, n: int, *, max_iter: int = 20,
                      check_every: int = 5,
                      broadcast_max: int = BROADCAST_MAX) -> tuple[np.ndarray, int]:
    """Synchronous label propagation over the undirected weighted graph.

    Every customer starts with its position as label; at each step every customer takes the
    label carrying the largest summed tie weight among its neighbours (previous step's labels),
    the smallest label on a tie; customers without ties keep theirs. Stops when a
    ``check_every``-th step changed no label since the previous check, or after ``max_iter``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    und = _undirected(ties).cache()
    nodes = spark.range(n).select(sf.col("id").cast("int").alias("node")).cache()
    lab = nodes.select("node", sf.col("node").alias("label")).localCheckpoint()
    best = Window.partitionBy("node").orderBy(sf.col("score").desc(), sf.col("label").asc())
    done = 0
    while done < max_iter:
        prev = lab
        for _ in range(min(check_every, max_iter - done)):
            scores = (und.join(_small(lab.withColumnRenamed("node", "dst"), n, broadcast_max),
                               "dst")
                      .groupBy(sf.col("src").alias("node"), "label")
                      .agg(sf.sum("weight").alias("score")))
            top = (scores.withColumn("r", sf.row_number().over(best)).where(sf.col("r") == 1)
                   .select("node", sf.col("label").alias("new")))
            # a customer without ties never changes label: its own position
            lab = (nodes.join(top, "node", "left")
                   .select("node", sf.coalesce("new", "node").alias("label")))
            done += 1
        lab = lab.localCheckpoint()
        if not _changed(lab, prev, "label"):
            break
    return _sorted(lab, n, "label", np.int64), done


def label_propagation_reference(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n: int,
                                *, max_iter: int = 20,
                                check_every: int = 5) -> tuple[np.ndarray, int]:
    """The rule of :func:`label_propagation` in numpy, on one machine (the tests' oracle).

    Iterations are counted the same way: the stop test runs every ``check_every`` steps.

    >>> label_propagation_reference(np.array([0, 1, 3]), np.array([1, 2, 4]),
    ...                             np.array([1.0, 1.0, 1.0]), 6, max_iter=1)[0].tolist()
    [1, 0, 1, 4, 3, 5]
    """
    both_s = np.concatenate([src, dst]).astype(np.int64)
    both_t = np.concatenate([dst, src]).astype(np.int64)
    uniq, inv = np.unique(both_s * n + both_t, return_inverse=True)
    w = np.bincount(inv, weights=np.concatenate([weight, weight]).astype(np.float64))
    s, t = uniq // n, uniq % n
    labels = np.arange(n, dtype=np.int64)
    done = 0
    while done < max_iter:
        prev = labels.copy()
        for _ in range(min(check_every, max_iter - done)):
            pair = s * n + labels[t]
            pk, pinv = np.unique(pair, return_inverse=True)
            score = np.bincount(pinv, weights=w)
            node, lab = pk // n, pk % n
            order = np.lexsort((lab, -score, node))
            node, lab = node[order], lab[order]
            first = np.ones(len(node), bool)
            first[1:] = node[1:] != node[:-1]
            new = labels.copy()
            new[node[first]] = lab[first]
            labels = new
            done += 1
        if np.array_equal(labels, prev):
            break
    return labels, done


def components(spark: Any, ties: Any, n: int, *, max_iter: int = 1000,
               check_every: int = 5, broadcast_max: int = BROADCAST_MAX) -> np.ndarray:
    """Weakly connected components: each customer ends with its component's smallest position."""
    from pyspark.sql import functions as sf

    nodes = spark.range(n).select(sf.col("id").cast("int").alias("node")).cache()
    und = (_undirected(ties).select("src", "dst")
           .unionByName(nodes.select(sf.col("node").alias("src"), sf.col("node").alias("dst")))
           .cache())
    lab = nodes.select("node", sf.col("node").alias("label")).localCheckpoint()
    done = 0
    while done < max_iter:
        prev = lab
        for _ in range(check_every):
            # every customer is its own neighbour here: the minimum keeps or lowers its label
            lab = (und.join(_small(lab.withColumnRenamed("node", "dst"), n, broadcast_max), "dst")
                   .groupBy(sf.col("src").alias("node")).agg(sf.min("label").alias("label")))
            done += 1
        lab = lab.localCheckpoint()
        if not _changed(lab, prev, "label"):
            break
    return _sorted(lab, n, "label", np.int64)


def analyze_distributed(spark: Any, load: SparkLoad, config: AnalysisConfig,
                        info: dict[str, Any], *, logs: list[str],
                        versions: dict[str, str], side: SideTables,
                        graph_for_broadcast: Callable[[], CustomerGraph]) -> Any:
    """The distributed path of :func:`carenet.spark.engine.analyze_spark`.

    ``side`` holds the customers and events tables (read on the driver): customers found only
    there are isolated nodes after the logs' customers, as locally. With at most
    ``engine.broadcast_max_ties`` ties, ``graph_for_broadcast()`` collects the graph once
    and influence and exposure run as Spark tasks over its broadcast
    (:func:`carenet.spark.sampling.distributed_influence`). ``results.engine.distributed``
    lists the steps that ran distributed, ``skipped`` the others and why.

    Returns
    -------
    carenet.spark.engine.DistributedRun
        The per-customer table (degree, strength, PageRank, label-propagation community,
        component, the customers table's columns) and ``run.json``'s content, with the
        skipped steps and why.
    """
    created = datetime.now(UTC).isoformat(timespec="seconds")
    n = len(side.ids)
    ties = load.ties.select("src", "dst", "weight")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    nodes = to_pandas(load.nodes).sort_values("node").reset_index(drop=True)
    activity = node_activity(nodes, n)
    pseudo = Pseudonymizer.from_env() if config.graph.pseudonymize else None
    ids = pseudo.many(side.ids) if pseudo is not None else side.ids
    customers = customer_table(ids, activity, side.customers)
    for i, (name, values) in enumerate(degrees(ties, n).items()):
        customers.insert(1 + i, name, values)
    customers = customers[["customer_id", "degree_in", "degree_out", "strength_in",
                           "strength_out", *customers.columns[5:]]]
    customers["interactions_sent"] = activity.sent
    customers["interactions_received"] = activity.received
    customers["first_seen"] = pd.to_datetime(pd.Series(activity.first_seen), unit="s", utc=True)
    customers["last_seen"] = pd.to_datetime(pd.Series(activity.last_seen), unit="s", utc=True)
    timings["degrees"] = time.perf_counter() - t
    m = config.measures
    results: dict[str, Any] = {"engine": info}
    if "pagerank" in m.measures:
        t = time.perf_counter()
        pr, iters = pagerank(spark, ties, n, damping=m.pagerank_damping, tol=m.pagerank_tol)
        customers["pagerank"] = pr
        timings["pagerank"] = time.perf_counter() - t
        results["centrality"] = {"pagerank": {"iterations": iters, "tol": m.pagerank_tol,
                                              "damping": m.pagerank_damping}}
    t = time.perf_counter()
    labels, iters = label_propagation(spark, ties, n)
    customers["community"] = labels
    timings["label_propagation"] = time.perf_counter() - t
    t = time.perf_counter()
    customers["component"] = components(spark, ties, n)
    timings["components"] = time.perf_counter() - t
    results["communities"] = {"algorithm": "label_propagation", "iterations": iters,
                              "communities": len(np.unique(labels))}
    ran = ["degrees"] + (["pagerank"] if "pagerank" in m.measures else []) + [
        "label_propagation", "components"]
    tables: dict[str, pd.DataFrame] = {}
    graph: CustomerGraph | None = None
    inf = config.influence
    if inf.enabled and 0 < info["ties"] <= config.engine.broadcast_max_ties and n > 0:
        t = time.perf_counter()
        graph = graph_for_broadcast()
        timings["collect_for_broadcast"] = time.perf_counter() - t
        t = time.perf_counter()
        sampled = distributed_influence(spark, graph, config, customers, side.events)
        for name, values in sampled.columns.items():
            customers[name] = values
        tables = sampled.tables
        results["influence"] = sampled.results
        info["sampling"] = sampled.engine
        timings["influence"] = time.perf_counter() - t
        ran += ["influence", "exposure"]
    info["distributed"] = ran
    wanted = [x for x in m.measures if x != "pagerank"] + ["leiden", "roles", "risk"] + (
        [] if "influence" in ran else ["influence"]) + ["seed_set", "care", "changes"]
    info["skipped"] = {k: SKIPPED_DISTRIBUTED[k] for k in wanted if k in SKIPPED_DISTRIBUTED}
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    rejects = side.rejects.to_frame()
    files = load.files + [f.to_dict() for f in side.files]
    meta = {
        "format": "carenet-run-distributed",
        "run_id": run_id, "created": created,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": config.to_dict(), "inputs": {"logs": logs},
        "timings": {k: round(v, 6) for k, v in timings.items()},
        "counts": {"rows_read": sum(int(f["rows_read"]) for f in files),
                   "rows_loaded": sum(int(f["rows_loaded"]) for f in files),
                   "rows_rejected": sum(int(f["rows_rejected"]) for f in files),
                   "rejected": side.rejects.counts(), "customers": n, "ties": info["ties"],
                   "events": len(side.events)},
        "versions": versions,
        "load": {"files": files, "reference_time": load.reference_time,
                 "half_life": load.half_life, "channels": load.channels},
        "results": results,
    }
    return DistributedRun(run_id=run_id, customers=customers, rejects=rejects, meta=meta,
                          results=results, events=side.events, load=load, side=side,
                          tables=tables, collected_graph=graph)


def node_activity(nodes: pd.DataFrame, n: int) -> NodeActivity:
    """First/last interaction time and sent/received counts per position, from Spark's node
    table sorted by position; customers only in the customers table (positions past the logs')
    get NaN times and zero counts, as locally.
    """
    def pad(values: np.ndarray, fill: Any) -> np.ndarray:
        extra = np.full(n - len(values), fill, dtype=values.dtype)
        return np.concatenate([values, extra]) if len(extra) else values

    return NodeActivity(
        pad(nodes["first_seen"].to_numpy(np.float64, na_value=np.nan), np.nan),
        pad(nodes["last_seen"].to_numpy(np.float64, na_value=np.nan), np.nan),
        pad(nodes["sent"].to_numpy(np.int64), 0), pad(nodes["received"].to_numpy(np.int64), 0))
