"""``/v1/runs``: start an analysis in a worker process, follow it, cancel it, keep it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from carenet.api.deps import Analyst, Reader, SettingsDep, StoreDep
from carenet.api.errors import MAX_DETAIL, ApiError, cap, redact_paths, responses
from carenet.api.schemas import RunCreate, RunList, RunPatch, RunPublic
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.store import RunStore

router = APIRouter(prefix="/v1/runs", tags=["runs"],
                   responses=responses(400, 401, 403, 404, 409, 422, 429))
RunPath = Annotated[str, Path(min_length=1, max_length=64)]


def public(row: dict[str, Any]) -> RunPublic:
    """The wire form of a store row."""
    data = dict(row)
    if isinstance(data.get("request"), dict):  # server-side file paths stay on the server
        data["request"] = {k: v for k, v in data["request"].items() if k != "files"}
    if data.get("error"):  # a failed run names its file, not where the server keeps it
        data["error"] = cap(redact_paths(str(data["error"])), MAX_DETAIL)
    data["columns"] = [c["name"] for c in row.get("columns") or []] or None
    data["kept"] = bool(row.get("kept"))
    data["cancel_requested"] = bool(row.get("cancel_requested"))
    return RunPublic.model_validate(data)


@router.post("", status_code=202, response_model=RunPublic,
             summary="Start an analysis of uploaded logs (202; follow GET /v1/runs/{id})")
def create_run(body: RunCreate, store: StoreDep, settings: SettingsDep, key: Analyst,
               response: Response) -> RunPublic:
    """Validate the request now (unknown uploads and bad settings are 422), queue the run;
    a worker process computes it while the API keeps answering reads.
    """
    try:
        config = AnalysisConfig.from_mapping(body.config)
    except InvalidInputError as exc:
        raise InvalidInputError(f"config: {exc}") from exc
    if body.steps is not None:
        from carenet.pipeline import STEPS

        known = [n for n, _ in STEPS]
        unknown = sorted(set(body.steps) - set(known))
        if unknown:
            raise InvalidInputError(f"unknown step(s) {', '.join(unknown)}; steps: "
                                    f"{', '.join(known)}")
    files: dict[str, Any] = {"logs": [_upload_path(store, u) for u in body.logs]}
    for name in ("customers", "events"):
        uid = getattr(body, name)
        files[name] = _upload_path(store, uid) if uid else None
    mine, total = store.queued_counts(key.id)
    if mine >= settings.max_queued_runs_per_key or total >= settings.max_queued_runs:
        who = (f"key {key.id} already has {mine} queued run(s) "
               f"(CARENET_MAX_QUEUED_RUNS_PER_KEY={settings.max_queued_runs_per_key})"
               if mine >= settings.max_queued_runs_per_key else
               f"{total} runs are queued on this server "
               f"(CARENET_MAX_QUEUED_RUNS={settings.max_queued_runs})")
        raise ApiError(429, "queue-full", f"{who}; wait for one to start or cancel one",
                       headers={"Retry-After": "30"})
    request = {"logs": body.logs, "customers": body.customers, "events": body.events,
               "config": config.to_dict(), "steps": body.steps, "files": files}
    row = store.create_run(request, created_by=key.id, kept=body.keep)
    response.headers["Location"] = f"/v1/runs/{row['id']}"
    return public(row)


def _upload_path(store: RunStore, upload_id: str) -> str:
    try:
        return str(store.get_upload(upload_id)["path"])
    except RunNotFoundError:
        raise InvalidInputError(
            f"no uploaded file {upload_id!r}; upload it first with POST /v1/logs") from None


@router.get("", response_model=RunList, summary="Runs, newest first")
def list_runs(store: StoreDep, key: Reader,
              status: Literal["queued", "running", "publishing", "published", "failed",
                              "cancelled"] | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> RunList:
    """Every run the store knows (published, active, failed, cancelled)."""
    return RunList(items=[public(r) for r in store.list_runs(limit=limit, status=status)])


@router.get("/{run_id}", response_model=RunPublic, summary="A run's status and progress")
def get_run(run_id: RunPath, store: StoreDep, key: Reader) -> RunPublic:
    """Status, progress, parameters, counts, timings, versions."""
    return public(store.get_run(run_id))


@router.delete("/{run_id}", status_code=202, response_model=RunPublic,
               summary="Cancel a queued or running run")
def cancel_run(run_id: RunPath, store: StoreDep, key: Analyst) -> RunPublic:
    """A queued run is cancelled at once; a running one is stopped by its worker within a
    poll interval (follow GET /v1/runs/{id}). A finished run is a 409.
    """
    return public(store.request_cancel(run_id))


@router.patch("/{run_id}", response_model=RunPublic, summary="Keep a run (or stop keeping it)")
def patch_run(run_id: RunPath, body: RunPatch, store: StoreDep, key: Analyst) -> RunPublic:
    """A kept run is never dropped by retention."""
    return public(store.set_kept(run_id, body.kept))
