"""Store errors beyond carenet's core tree (the API maps each to one HTTP status)."""

from __future__ import annotations

from typing import Any

from carenet.errors import CarenetError, InvalidInputError


class RunNotReadyError(CarenetError):
    """The run exists but is not published (queued, running, failed or cancelled) -> 409."""

    def __init__(self, message: str, *, status: str) -> None:
        super().__init__(message)
        self.status = status


class RunStateError(CarenetError):
    """An operation that the run's current state forbids (e.g. cancelling a finished run)
    -> 409.
    """


class UnknownFieldError(InvalidInputError):
    """A sort key, filter or table the run does not have; lists what it does have -> 422."""

    def __init__(self, message: str, *, available: list[str], field: str) -> None:
        super().__init__(message)
        self.available = available
        self.field = field

    def extra(self) -> dict[str, Any]:
        """Members added to the problem document."""
        return {"field": self.field, "available": self.available}


class MissingTableError(CarenetError, LookupError):
    """The run has no such table (communities, care_plan) -> 404; lists what it has."""

    def __init__(self, message: str, *, available: list[str]) -> None:
        super().__init__(message)
        self.available = available


class BadCursorError(InvalidInputError):
    """A pagination cursor this API did not return (damaged or forged) -> 400."""
