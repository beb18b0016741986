"""``/v1/simulations``: what-if cascades from seed customers with some customers protected.

The simulation itself is :func:`carenet.run.what_if` (the one what-if of the CLI, the API and
the views); this router only resolves ids (raw ids of pseudonymised runs included), rebuilds
the run's graph from the store and calls it with the run's stored parameters.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from carenet.api.deps import Analyst, SettingsDep, StoreDep
from carenet.api.errors import ApiError, responses
from carenet.api.routers.customers import RunParam, find_customer
from carenet.api.schemas import SimulationCreate, SimulationPublic

router = APIRouter(prefix="/v1/simulations", tags=["simulations"],
                   responses=responses(400, 401, 403, 404, 409, 413, 422, 429, 503))


@router.post("", summary="What-if cascade from seed customers, with protected customers",
             response_model=SimulationPublic)
def create_simulation(body: SimulationCreate, request: Request, store: StoreDep,
                      settings: SettingsDep, key: Analyst, run: RunParam = None
                      ) -> SimulationPublic:
    """Simulate ``runs`` cascades on the run's graph with the run's tie probabilities (CPU
    work: runs in the thread pool, capped by ``max_simulation_runs``).
    """
    if body.runs > settings.max_simulation_runs:
        raise ApiError(422, "invalid-input",
                       f"runs must be at most {settings.max_simulation_runs} on this server")
    view = store.resolve(run)
    seeds = [find_customer(request, store, view, c)[0] for c in body.seeds]
    protected = [find_customer(request, store, view, c)[0] for c in body.protected]
    from carenet.run import what_if  # the analysis core: imported on first use, not at start

    parameters = store.get_run(view.run_id).get("parameters") or {}
    with request.app.state.simulations.take():  # bounded CPU work per server process
        result = what_if(store.load_graph(view), parameters, seeds, protected=protected,
                         model=body.model, runs=body.runs, seed=body.seed,
                         recovery=body.recovery)
    return SimulationPublic.model_validate({"run": view.run_id, **result.to_dict(top=body.top)})
