"""Every failure as an RFC 9457 problem document, mapped from carenet's exception tree in
this one place.

``application/problem+json`` bodies carry ``type``, ``title``, ``status``, ``detail`` and, where
useful, ``available`` (the columns, sort keys or tables the run does have) or ``errors`` (each
invalid parameter). Bad input never becomes a 500.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from carenet.errors import (
    BackendUnavailableError,
    CarenetError,
    ConvergenceError,
    EmptyGraphError,
    InvalidInputError,
    RunNotFoundError,
)
from carenet.store.errors import (
    BadCursorError,
    MissingTableError,
    RunNotReadyError,
    RunStateError,
    UnknownFieldError,
)
from carenet.store.health import StoreUnavailableError, classify, public_message

log = logging.getLogger("carenet.api")
PROBLEM = "application/problem+json"
TYPE_BASE = "https://carenet.dev/problems/"


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class ApiError(Exception):
    """An error raised by the API layer itself (auth, limits, states) with its status."""

    def __init__(self, status: int, slug: str, detail: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem(request: Request | None, status: int, slug: str, detail: str, *,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """A problem-document response."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": cap(detail, MAX_DETAIL),
    }
    if request is not None:
        body["instance"] = cap(request.url.path, MAX_INSTANCE)
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


MAX_DETAIL = 1000
"""Characters of a problem's ``detail`` sent at most: a message never echoes a huge id back."""
MAX_INSTANCE = 200
"""Characters of a problem's ``instance`` (the request path) sent at most."""
_PATH = re.compile(r"(?<![\w/:.\\])(?:[A-Za-z]:)?[\\/]"
                   r"(?:[^\s'\"\\/:,;()]+[\\/])+(?=[^\s'\"\\/:,;()])")


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (with a note saying how long it was).

    >>> cap("abc", 10), cap("x" * 30, 20)
    ('abc', 'xxxxxx... (30 chars)')
    """
    if len(text) <= limit:
        return text
    note = f"... ({len(text):,} chars)"
    return text[:max(0, limit - len(note))] + note


def redact_paths(text: str) -> str:
    r"""``text`` with every server file path shortened to its file name: a failed run's error
    names the file (and row, column) without showing where the server keeps uploads.

    >>> redact_paths("InvalidInputError: /srv/data/uploads/u1f/calls.csv, line 3: bad time")
    'InvalidInputError: calls.csv, line 3: bad time'
    >>> redact_paths("C:\\data\\up\\x.csv: empty")
    'x.csv: empty'
    """
    return _PATH.sub("", text)


# carenet's exception tree -> (status, problem type); the most specific class wins
_MAP: list[tuple[type[BaseException], int, str]] = [
    (BadCursorError, 400, "bad-cursor"),
    (UnknownFieldError, 422, "unknown-field"),
    (MissingTableError, 404, "missing-table"),
    (RunNotReadyError, 409, "run-not-ready"),
    (RunStateError, 409, "run-state"),
    (RunNotFoundError, 404, "not-found"),
    (EmptyGraphError, 422, "empty-graph"),
    (InvalidInputError, 422, "invalid-input"),
    (BackendUnavailableError, 501, "backend-unavailable"),
    (ConvergenceError, 500, "not-converged"),
    (CarenetError, 500, "analysis-error"),
]


def status_of(exc: BaseException) -> tuple[int, str]:
    """HTTP status and problem slug of a carenet exception."""
    for cls, status, slug in _MAP:
        if isinstance(exc, cls):
            return status, slug
    return 500, "internal"


def _store_down(request: Request, kind: str, exc: BaseException) -> JSONResponse:
    """503 (507 for a full disk) for a store that cannot serve this request; the detail
    names no server path or URL (the log has the driver's message).
    """
    log.error("store unavailable (%s) on %s: %s", kind, request.url.path, exc)
    status = 507 if kind == "full" else 503
    return problem(request, status, "store-unavailable", public_message(kind),
                   headers={"Retry-After": "30"})


async def _carenet_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, StoreUnavailableError):
        return _store_down(request, exc.kind, exc)
    status, slug = status_of(exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, UnknownFieldError):
        extra = exc.extra()
    elif isinstance(exc, MissingTableError):
        extra = {"available": exc.available}
    elif isinstance(exc, RunNotReadyError):
        extra = {"run_status": exc.status}
    if status >= 500:
        log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
    return problem(request, status, slug, str(exc), **extra)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem(request, exc.status, exc.slug, exc.detail, headers=exc.headers, **exc.extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        errors.append({"where": ".".join(loc), "message": str(e.get("msg", ""))})
    detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors) or "invalid request"
    return problem(request, 422, "invalid-request", detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    slug = {404: "not-found", 405: "method-not-allowed"}.get(status, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 404 and detail == "Not Found":
        detail = f"no endpoint {request.url.path}; see /docs for the API"
    if status == 405:
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: " + (
            ", ".join(allowed))
    return problem(request, status, slug, detail, headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts on this path (one route per method in FastAPI)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    for route in request.app.router.routes:
        for m in list(getattr(route, "methods", None) or ()):
            match, _ = route.matches({**request.scope, "method": m})
            if match == Match.FULL:
                methods.add(m)
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    kind = classify(exc)
    if kind is not None:  # the store broke under this request: say so, not "unexpected"
        return _store_down(request, kind, exc)
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return problem(request, 500, "internal",
                   "an unexpected error occurred; it has been logged")


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(CarenetError, _carenet_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the problem documents an endpoint can answer."""
    text = {400: "Bad request", 401: "No or unknown API key", 403: "The key's role may not "
            "do this", 404: "Unknown run, customer, community or table", 409: "The run is "
            "not in a state that allows this", 413: "Body or upload too large", 415: "Unsupported "
            "media type", 422: "Invalid parameters", 429: "Rate limit or queue limit exceeded",
            501: "Not available in this build", 503: "Not ready, or too busy (see Retry-After)",
            507: "No room on the server's disk"}
    return {s: {"model": Problem, "description": text.get(s, HTTPStatus(s).phrase),
                "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for s in statuses}
