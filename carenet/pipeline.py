"""One analysis run: config -> load -> graph -> every analysis step -> :class:`AnalysisRun`.

:func:`analyze` is the single entry point behind the CLI, the API's job runner and notebooks.
Steps are plain functions listed in run order in :data:`STEPS`; each reads the
:class:`RunContext` (graph, side tables, config, seed) and adds per-customer columns and tables
to it. Adding a capability means adding a step to that tuple, not a new code path.

The finished run, its directory format and what one does with it (what-if, care plan,
explanations) are in :mod:`carenet.run`; ``AnalysisRun`` and ``atomic_directory`` are
re-exported here for existing callers.
"""

from __future__ import annotations

import platform
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.graphs.build import GraphBuilder, LoadedNetwork, LoadReport
from carenet.graphs.logs import LogSource
from carenet.run import RUN_FORMAT, AnalysisRun, atomic_directory
from carenet.steps.base import Progress, RunContext, Step, no_progress
from carenet.steps.care import care_step
from carenet.steps.changes import changes_step
from carenet.steps.influence import influence_step
from carenet.steps.measures import centrality_step, communities_step
from carenet.steps.risk import risk_step

STEPS: tuple[tuple[str, Step], ...] = (
    ("centrality", centrality_step),
    ("communities", communities_step),
    ("risk", risk_step),
    ("influence", influence_step),
    ("care", care_step),
    ("changes", changes_step),
)
"""The analysis steps in run order, ``(name, function)``: a step reads what earlier ones wrote."""
_VERSIONED = ("carenet", "numpy", "scipy", "pandas", "pyarrow", "numba", "igraph", "networkx")


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_inputs(
    logs: LogSource | Sequence[LogSource],
    *,
    customers: LogSource | None = None,
    events: LogSource | None = None,
    config: AnalysisConfig = AnalysisConfig(),
    progress: Progress = no_progress,
) -> LoadedNetwork:
    """Load logs and side tables as the config says (the first step of :func:`analyze`)."""
    g = config.graph
    builder = GraphBuilder(
        half_life=g.half_life_seconds, reference_time=g.reference_seconds, channels=g.channels,
        channel_weights=g.channel_weights, pseudonymize=g.pseudonymize,
        progress=lambda step, done: progress("load", done, None),
    )
    many = list(logs) if isinstance(logs, (list, tuple)) else [logs]
    if not many:
        raise InvalidInputError("no interaction log given")
    options = config.input.log_options()
    for log in many:
        progress("load", 0, None)
        builder.add_log(log, options)
    if customers is not None:
        builder.add_customers(customers, config.tables.customer_options())
    if events is not None:
        builder.add_events(events, config.tables.event_options())
    progress("build graph", None, None)
    return builder.build(symmetrize=g.symmetrize, min_weight=g.min_weight)


def _describe(source: LogSource | None) -> str | None:
    if source is None:
        return None
    if isinstance(source, (str, Path)):
        return str(Path(source))
    return f"<{type(source).__name__} with {len(source)} rows>"


def analyze(
    logs: LogSource | Sequence[LogSource],
    *,
    customers: LogSource | None = None,
    events: LogSource | None = None,
    config: AnalysisConfig = AnalysisConfig(),
    previous: AnalysisRun | None = None,
    progress: Progress = no_progress,
    steps: Sequence[str] | None = None,
    network: LoadedNetwork | None = None,
) -> AnalysisRun:
    """Run a full analysis and return the :class:`AnalysisRun` (``save()`` it to a directory).

    ``steps`` limits the analysis steps run (default: all of :data:`STEPS`);
    ``previous`` is the last run, for run-to-run comparisons; ``network`` is an already loaded
    network (the Spark engine's, :mod:`carenet.spark`) used instead of loading ``logs``.

    >>> import pandas as pd
    >>> run = analyze(pd.DataFrame({"source": ["a", "b"], "target": ["b", "c"]}))
    >>> run.counts["customers"], run.counts["ties"], list(run.customers.columns)[:1]
    (3, 2, ['customer_id'])
    """
    created = _now()
    t0 = time.perf_counter()
    if network is None:
        network = load_inputs(logs, customers=customers, events=events, config=config,
                              progress=progress)
    timings = {"load": time.perf_counter() - t0}
    timings.update({f"load.{k}": v for k, v in network.report.timings.items()})
    graph = network.graph
    table = network.customers.copy()
    table.insert(1, "degree_in", graph.in_degree())
    table.insert(2, "degree_out", graph.out_degree())
    table.insert(3, "strength_in", graph.in_strength())
    table.insert(4, "strength_out", graph.out_strength())
    if graph.activity is not None:
        table["interactions_sent"] = graph.activity.sent
        table["interactions_received"] = graph.activity.received
        table["first_seen"] = _as_time(graph.activity.first_seen)
        table["last_seen"] = _as_time(graph.activity.last_seen)
    ctx = RunContext(config=config, network=network, previous=previous, progress=progress,
                     customers=table)
    wanted = None if steps is None else set(steps)
    unknown = (wanted or set()) - {n for n, _ in STEPS}
    if unknown:
        raise InvalidInputError(
            f"unknown step(s) {', '.join(sorted(unknown))}; steps: "
            f"{', '.join(n for n, _ in STEPS)}"
        )
    for name, fn in STEPS:
        if wanted is not None and name not in wanted:
            continue
        progress(name, None, None)
        t1 = time.perf_counter()
        fn(ctx)
        ctx.timings[name] = time.perf_counter() - t1
    timings.update(ctx.timings)
    timings["total"] = time.perf_counter() - t0
    report: LoadReport = network.report
    summary = graph.summary().to_dict()
    counts = {
        "rows_read": report.rows_read,
        "rows_loaded": report.rows_loaded,
        "rows_rejected": report.rows_rejected,
        "rejected": dict(report.rejected),
        "customers": graph.n_customers,
        "ties": graph.n_ties,
        "events": len(network.events),
        "graph_bytes": graph.nbytes,
    }
    return AnalysisRun(
        run_id=f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        created=created,
        finished=_now(),
        parameters=config.to_dict(),
        inputs={"logs": [_describe(x) for x in (logs if isinstance(logs, (list, tuple))
                                                 else [logs])],
                "customers": _describe(customers), "events": _describe(events)},
        timings=timings,
        counts=counts,
        versions=library_versions(),
        summary=summary,
        loading=report.to_dict(),
        customers=ctx.customers,
        tables=ctx.tables,
        graph=graph,
        events=network.events,
        rejects=network.rejects.to_frame(),
        results=ctx.results,
    )


def _as_time(seconds: np.ndarray) -> pd.Series:
    return pd.to_datetime(pd.Series(seconds), unit="s", utc=True)



__all__ = ["RUN_FORMAT", "STEPS", "AnalysisRun", "analyze", "atomic_directory",
           "library_versions", "load_inputs"]
