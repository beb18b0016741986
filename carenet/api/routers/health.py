"""``/healthz`` (the process answers) and ``/readyz`` (the store answers too)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from carenet.api.deps import StoreDep
from carenet.api.errors import problem, responses
from carenet.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness (no key needed)")
async def healthz() -> Health:
    """Always 200 while the process serves requests."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=responses(503),
            summary="Readiness: the store answers (no key needed)")
def readyz(request: Request, store: StoreDep) -> Health | JSONResponse:
    """200 with the latest published run when the store answers, 503 otherwise."""
    try:
        store.ping()
        latest = store.latest_id(fresh=True)
    except Exception as exc:  # noqa: BLE001 - any store failure means not ready
        return problem(request, 503, "not-ready", f"the store does not answer: "
                       f"{type(exc).__name__}")
    return Health(status="ready", database=store.backend, latest_run=latest)
