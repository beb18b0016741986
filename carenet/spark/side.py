"""The customers and events tables of a Spark run, read by the local readers on the driver.

A side table has one row per customer or per event: the same scale as the per-customer table
the driver holds on either path. Reading it with the local readers
(:func:`~carenet.graphs.logs.read_customers`, :func:`~carenet.graphs.logs.read_events`) gives
the local engine's validation, reject reasons and line numbers by construction; a URI only
Spark reads (HDFS, S3, ...) is read by Spark into pandas first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.graphs.ids import IdTable, Pseudonymizer
from carenet.graphs.logs import FileReport, read_customers, read_events
from carenet.graphs.tables import RejectLog
from carenet.spark.load import SparkLoad, is_uri, rejects_frame
from carenet.spark.session import to_pandas


@dataclass
class SideTables:
    """The customers and events tables read for a Spark run, aligned to its node positions.

    ``ids``: raw ids of every node (the logs' customers, then customers only in the customers
    table, as the local loader appends them); ``customers``: the validated customers frames
    with their ``node``; ``events``: the validated events with ``node``; ``files``: their
    file reports; ``rejects``: every rejected row of the run (logs' and tables').
    """

    ids: np.ndarray
    customers: list[pd.DataFrame]
    events: pd.DataFrame
    files: list[FileReport]
    rejects: RejectLog


def _table_source(spark: Any, source: Any) -> tuple[Any, str | None]:
    """A side table as the local readers take it: a local path or a DataFrame as it is; a URI
    read by Spark (Parquet, JSON Lines, CSV with a header) into pandas on the driver (a side
    table has one row per customer or event, like the per-customer table the driver holds).
    """
    text = str(source)
    if isinstance(source, pd.DataFrame) or not is_uri(text):
        return source, None
    lower = text.lower().rstrip("/")
    if lower.endswith(".parquet"):
        frame = spark.read.parquet(text)
    elif lower.endswith((".jsonl", ".ndjson", ".json")):
        frame = spark.read.json(text)
    else:
        frame = spark.read.option("header", True).csv(text)
    return to_pandas(frame), text


def read_side_tables(load: SparkLoad, config: AnalysisConfig, *, spark: Any = None,
                     customers: Any = None, events: Any = None) -> SideTables:
    """Read the customers and events tables with the local readers, against Spark's ids.

    The readers are the local engine's (:func:`~carenet.graphs.logs.read_customers`,
    :func:`~carenet.graphs.logs.read_events`), so validation, reject reasons and line numbers
    are the same by construction; new customers get positions after the logs' customers in
    table order, and events of unknown customers are rejected, as locally.
    """
    raw = to_pandas(load.nodes.select("node", "customer_id")).sort_values("node", kind="stable")
    if not np.array_equal(raw["node"].to_numpy(), np.arange(len(raw))):
        raise InvalidInputError("internal error: Spark node positions are not 0..n-1")
    table = IdTable(max(len(raw), 16))
    table.encode(pa.array(raw["customer_id"].astype(str).tolist(), pa.string()))
    rejects = RejectLog()
    frame = rejects_frame(load)
    pseudo = Pseudonymizer.from_env() if config.graph.pseudonymize else None
    if pseudo is not None:  # raw ids must not leave the run unhashed, as locally
        id_cols = {c for f in load.files for r, c in f["columns"].items()
                   if r in ("source", "target")}
        hit = frame["column"].isin(id_cols)
        frame.loc[hit, "value"] = pseudo.many(frame.loc[hit, "value"].str.strip()).tolist()
        frame["record"] = ""
    for (file, reason), part in frame.groupby(["file", "reason"], sort=False):
        rejects.add(str(file), part["line"].to_numpy(), str(reason),
                    column=str(part["column"].iloc[0]), values=part["value"].tolist(),
                    records=part["record"].tolist(), detail=str(part["detail"].iloc[0]))
    frames: list[pd.DataFrame] = []
    files: list[FileReport] = []
    if customers is not None:
        source, label = _table_source(spark, customers)
        cust, report = read_customers(source, config.tables.customer_options(),
                                      rejects=rejects, pseudonymizer=pseudo, label=label)
        cust["node"] = table.encode(pa.array(cust["customer_id"].tolist(), pa.string()))
        frames.append(cust)
        files.append(report)
    ev = pd.DataFrame({"node": pd.Series(dtype=np.int64),
                       "customer_id": pd.Series(dtype=object),
                       "event": pd.Series(dtype=object),
                       "timestamp": pd.Series(dtype=np.float64)})
    if events is not None:
        source, label = _table_source(spark, events)
        ev, report = read_events(source, config.tables.event_options(), rejects=rejects,
                                 lookup=table.lookup, pseudonymizer=pseudo, label=label)
        files.append(report)
    return SideTables(table.to_numpy(), frames, ev, files, rejects)
