"""``/v1/simulations``: what-if cascades from seed customers with some customers protected.

The simulation itself is the diffusion capability's ``carenet.community.influence.simulate``;
this router only resolves ids (raw ids of pseudonymised runs included), rebuilds the run's
graph from the store and calls it with the run's influence settings. In a build without that
function the endpoint answers 501 with a problem document saying so.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from carenet.api.deps import Analyst, SettingsDep, StoreDep
from carenet.api.errors import ApiError, responses
from carenet.api.routers.customers import RunParam, find_customer
from carenet.api.schemas import SimulationCreate, SimulationPublic

router = APIRouter(prefix="/v1/simulations", tags=["simulations"],
                   responses=responses(400, 401, 403, 404, 409, 422, 429, 501))


def simulator() -> Callable[..., Any] | None:
    """``carenet.community.influence.simulate`` if this build has it."""
    try:
        module = importlib.import_module("carenet.community.influence")
    except ImportError:
        return None
    fn = getattr(module, "simulate", None)
    return fn if callable(fn) else None


@router.post("", summary="What-if cascade from seed customers, with protected customers",
             response_model=SimulationPublic)
def create_simulation(body: SimulationCreate, request: Request, store: StoreDep,
                      settings: SettingsDep, key: Analyst, run: RunParam = None
                      ) -> SimulationPublic:
    """Simulate ``runs`` cascades on the run's graph with the run's tie probabilities (CPU
    work: runs in the thread pool, capped by ``max_simulation_runs``).
    """
    simulate = simulator()
    if simulate is None:
        raise ApiError(501, "not-implemented",
                       "what-if simulation needs carenet.community.influence.simulate (the "
                       "diffusion capability), which this build does not include")
    if body.runs > settings.max_simulation_runs:
        raise ApiError(422, "invalid-input",
                       f"runs must be at most {settings.max_simulation_runs} on this server")
    view = store.resolve(run)
    seeds = [find_customer(request, store, view, c)[0] for c in body.seeds]
    protected = [find_customer(request, store, view, c)[0] for c in body.protected]
    params = (store.get_run(view.run_id).get("parameters") or {}).get("influence") or {}
    result = simulate(
        store.load_graph(view), seeds, protected=protected or None, model=body.model,
        runs=body.runs, seed=body.seed,
        edge_model=params.get("edge_model", "weighted_cascade"),
        scale=float(params.get("edge_scale", 1.0)),
        probability=float(params.get("edge_probability", 0.1)),
        recovery=body.recovery if body.recovery is not None else float(
            params.get("sir_recovery", 0.5)),
        confidence=float(params.get("confidence", 0.95)))
    return SimulationPublic.model_validate({"run": view.run_id, **result.to_dict(top=body.top)})
