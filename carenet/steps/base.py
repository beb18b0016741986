"""The contract between :func:`carenet.pipeline.analyze` and its analysis steps.

A step is a function ``step(ctx: RunContext) -> None``; :data:`carenet.pipeline.STEPS` lists
them in run order. A step reads the graph, the side tables, the config and the seed from the
context and adds per-customer columns (``ctx.add_columns``), tables (``ctx.tables``) and
JSON-ready results (``ctx.results``).

Steps know the previous run only through :class:`PreviousRun` (what they read of it), so this
package never imports the pipeline or the run module, not even for type checking.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from carenet.config import AnalysisConfig
from carenet.graphs.build import LoadedNetwork
from carenet.graphs.model import CustomerGraph


class Progress(Protocol):
    """Receives progress: ``(step, done, total)``; ``done``/``total`` may be None (unknown)."""

    def __call__(self, step: str, done: float | None = None, total: float | None = None) -> None:
        """Report that ``step`` started (done is None) or advanced."""


class PreviousRun(Protocol):
    """What a step reads of the previous run (an :class:`carenet.pipeline.AnalysisRun`)."""

    @property
    def run_id(self) -> str:
        """The previous run's id."""

    @property
    def customers(self) -> pd.DataFrame:
        """The previous run's per-customer table."""

    @property
    def results(self) -> Mapping[str, Any]:
        """The previous run's JSON-ready results."""


def no_progress(step: str, done: float | None = None, total: float | None = None) -> None:
    """A progress receiver that ignores everything."""
    return None


@dataclass
class RunContext:
    """What steps read and write while a run computes."""

    config: AnalysisConfig
    network: LoadedNetwork
    previous: PreviousRun | None
    progress: Progress
    customers: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def graph(self) -> CustomerGraph:
        """The customer graph of this run."""
        return self.network.graph

    @property
    def seed(self) -> int:
        """The run's random seed; steps derive their own seeds from it."""
        return self.config.seed

    def add_columns(self, columns: dict[str, np.ndarray | pd.Series | Sequence[Any]]) -> None:
        """Add per-customer columns (aligned to node positions)."""
        n = len(self.customers)
        for name, values in columns.items():
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} values for {n} customers")
            if isinstance(values, pd.Series):
                values = values.to_numpy()
            self.customers[name] = np.asarray(values)


Step = Callable[[RunContext], None]
"""An analysis step: reads the context, adds columns, tables and results to it."""
