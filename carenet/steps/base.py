"""The contract between :func:`carenet.pipeline.analyze` and its analysis steps.

A step is a function ``step(ctx: RunContext) -> None`` registered with :func:`register_step`;
it reads the graph, the side tables, the config and the seed from the context and adds
per-customer columns (``ctx.add_columns``), tables (``ctx.tables``) and JSON-ready results
(``ctx.results``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from carenet.config import AnalysisConfig
from carenet.graphs.build import LoadedNetwork
from carenet.graphs.model import CustomerGraph

if TYPE_CHECKING:  # pragma: no cover
    from carenet.pipeline import AnalysisRun


class Progress(Protocol):
    """Receives progress: ``(step, done, total)``; ``done``/``total`` may be None (unknown)."""

    def __call__(self, step: str, done: float | None = None, total: float | None = None) -> None:
        """Report that ``step`` started (done is None) or advanced."""


def no_progress(step: str, done: float | None = None, total: float | None = None) -> None:
    """A progress receiver that ignores everything."""
    return None


@dataclass
class RunContext:
    """What steps read and write while a run computes."""

    config: AnalysisConfig
    network: LoadedNetwork
    previous: AnalysisRun | None
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
STEPS: list[tuple[str, Step]] = []
"""Analysis steps in run order: (name, function). Later capabilities register here."""


def register_step(name: str, *, after: str | None = None) -> Callable[[Step], Step]:
    """Decorator registering an analysis step (optionally right after another one)."""

    def wrap(fn: Step) -> Step:
        names = [n for n, _ in STEPS]
        if name in names:
            STEPS[names.index(name)] = (name, fn)
        elif after is not None and after in names:
            STEPS.insert(names.index(after) + 1, (name, fn))
        else:
            STEPS.append((name, fn))
        return fn

    return wrap
