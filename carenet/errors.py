"""The carenet exception tree.

Every error carenet raises on purpose derives from :class:`CarenetError`, so callers can catch
one class; the API maps each subclass to one HTTP status in one place (``api/errors.py``)::

    CarenetError
    ├── InvalidInputError      (also ValueError) bad file, row, column or parameter -> 422 / exit 2
    ├── EmptyGraphError        nothing left to analyse after loading and filtering  -> 422
    ├── BackendUnavailableError  a requested backend or optional package is missing -> 501
    ├── ConvergenceError       an iterative method did not converge                 -> 500
    └── RunNotFoundError       (also LookupError) no run, customer or community with that id -> 404
"""

from __future__ import annotations

from pathlib import Path


class CarenetError(Exception):
    """Base class of every error carenet raises on purpose."""


class InvalidInputError(CarenetError, ValueError):
    """Input that cannot be used: a file, a row, a column or a parameter.

    The message names the file and, where there is one, the line and the column, so that the
    user can open the file at the right place without reading a traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.reason = message
        where = []
        if self.file is not None:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class EmptyGraphError(CarenetError):
    """The graph has no customers or no ties left after loading and filtering."""


class BackendUnavailableError(CarenetError):
    """An explicitly requested backend or optional dependency is not installed or cannot run."""


class ConvergenceError(CarenetError):
    """An iterative method (PageRank, eigenvector, ...) did not reach its tolerance."""


class RunNotFoundError(CarenetError, LookupError):
    """No analysis run (or customer, or community) with the requested id."""


__all__ = [
    "BackendUnavailableError",
    "CarenetError",
    "ConvergenceError",
    "EmptyGraphError",
    "InvalidInputError",
    "RunNotFoundError",
]
