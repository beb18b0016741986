"""The FastAPI application factory.

``create_app(settings)`` builds an app bound to one store; ``carenet serve`` runs it with
uvicorn (``uvicorn --factory carenet.api.app:create_app`` works too, reading ``CARENET_*``
environment variables).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from carenet import __version__
from carenet.api import errors
from carenet.api.deps import SECURITY_SCHEMES, KeyCache, RateLimiter
from carenet.api.fastpath import CustomerFastPath
from carenet.api.guard import RequestGuard
from carenet.api.limits import AddressThrottle, SimulationSlots
from carenet.api.routers import (
    care,
    communities,
    customers,
    health,
    keys,
    logs,
    pages,
    runs,
    simulations,
)
from carenet.api.settings import Settings
from carenet.api.worker import RunSupervisor
from carenet.errors import InvalidInputError
from carenet.graphs.ids import SALT_ENV, Pseudonymizer
from carenet.store import RunStore

DESCRIPTION = """\
Customer influence, exposure, communities and care priorities for CRM systems.

Every `/v1` endpoint needs an API key (`Authorization: Bearer KEY` or `X-API-Key: KEY`;
create one with `carenet keys create --role reader`). Reads use the latest published run
unless `run=` names another one. Errors are RFC 9457 problem documents
(`application/problem+json`).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A carenet API app for ``settings`` (default: from ``CARENET_*`` variables)."""
    settings = settings or Settings()
    store = RunStore(settings.db, keep_runs=settings.keep_runs, latest_ttl=settings.latest_ttl)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        supervisor = None
        if settings.worker:
            supervisor = RunSupervisor(
                store, db_url=store.url, max_concurrent=settings.max_concurrent_runs,
                poll_seconds=settings.poll_seconds, stale_after=settings.stale_after,
                keep_runs=settings.keep_runs)
            supervisor.start()
        app.state.supervisor = supervisor
        try:
            yield
        finally:
            if supervisor is not None:
                supervisor.stop()
            store.close()

    app = FastAPI(title="carenet", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.store = store
    app.state.keys = KeyCache(settings.key_cache_seconds)
    app.state.limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
    app.state.pseudonymizer = _pseudonymizer()
    app.state.simulations = SimulationSlots(settings.max_concurrent_simulations,
                                            wait=settings.simulation_wait_seconds)
    app.state.auth_throttle = AddressThrottle(settings.auth_failure_rate,
                                              settings.auth_failure_burst)
    errors.install(app)
    app.add_middleware(CustomerFastPath)
    # outermost: oversize bodies and NUL characters are refused before anything else runs
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    for module in (health, customers, communities, care, simulations, logs, runs, keys):
        app.include_router(module.router)
    pages.install(app)  # the dashboard and views; wraps the handlers above for HTML pages
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the API-key security schemes on every /v1 operation."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        spec = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
        spec.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        for path, ops in spec.get("paths", {}).items():
            if path.startswith("/v1"):
                for op in ops.values():
                    op["security"] = [{"bearer": []}, {"apiKey": []}]
        app.openapi_schema = spec
    return app.openapi_schema


def _pseudonymizer() -> Pseudonymizer | None:
    if not os.environ.get(SALT_ENV):
        return None
    try:
        return Pseudonymizer.from_env()
    except InvalidInputError:  # pragma: no cover - checked just above
        return None
