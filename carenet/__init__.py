"""carenet: find and care for the customers who carry a community.

Interaction logs -> a customer graph -> position, communities, influence and exposure ->
who to contact first, served over a CLI, a REST API and interactive views.

>>> import carenet
>>> run = carenet.analyze(carenet.example_log())
>>> run.counts["customers"]
4
"""

from __future__ import annotations

from importlib import metadata

import pandas as pd

from carenet.config import AnalysisConfig
from carenet.errors import (
    BackendUnavailableError,
    CarenetError,
    ConvergenceError,
    EmptyGraphError,
    InvalidInputError,
    RunNotFoundError,
)
from carenet.graphs.build import GraphBuilder, build_graph, load_network
from carenet.graphs.model import CustomerGraph
from carenet.pipeline import AnalysisRun, analyze

try:
    __version__ = metadata.version("carenet")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"


def example_log() -> pd.DataFrame:
    """A four-customer interaction log, for examples and quick checks."""
    return pd.DataFrame({
        "source": ["ann", "bob", "ann", "cid", "dee"],
        "target": ["bob", "ann", "cid", "dee", "ann"],
        "timestamp": ["2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z", "2026-01-03T09:00:00Z",
                      "2026-01-03T12:00:00Z", "2026-01-04T08:00:00Z"],
        "channel": ["call", "sms", "call", "chat", "sms"],
    })


__all__ = [
    "AnalysisConfig",
    "AnalysisRun",
    "BackendUnavailableError",
    "CarenetError",
    "ConvergenceError",
    "CustomerGraph",
    "EmptyGraphError",
    "GraphBuilder",
    "InvalidInputError",
    "RunNotFoundError",
    "__version__",
    "analyze",
    "build_graph",
    "example_log",
    "load_network",
]
