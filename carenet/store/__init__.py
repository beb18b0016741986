"""Persistence of analysis runs (SQLite embedded default, PostgreSQL by URL).

:class:`RunStore` keeps runs (status, parameters, timings, counts, versions, progress), their
per-customer and per-community results, the ties needed for neighbour queries, API keys and
uploaded logs. Publishing a run is atomic; readers always see the latest complete run.
"""

from carenet.store.db import data_home, default_db_url, describe_url, normalize_url
from carenet.store.errors import (
    MissingTableError,
    RunNotReadyError,
    RunStateError,
    UnknownFieldError,
)
from carenet.store.store import ROLES, KeyInfo, Page, RunStore, RunView

__all__ = [
    "ROLES",
    "KeyInfo",
    "MissingTableError",
    "Page",
    "RunNotReadyError",
    "RunStateError",
    "RunStore",
    "RunView",
    "UnknownFieldError",
    "data_home",
    "default_db_url",
    "describe_url",
    "normalize_url",
]
