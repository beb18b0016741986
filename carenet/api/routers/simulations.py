"""``/v1/simulations``: what-if cascades from seed customers with some customers protected.

The simulation itself is the diffusion capability's ``carenet.community.influence.simulate``;
this router only resolves ids and calls it. In a build without that function the endpoint
answers 501 with a problem document saying so.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from carenet.api.deps import Analyst, SettingsDep, StoreDep
from carenet.api.errors import ApiError, responses
from carenet.api.routers.customers import RunParam, find_customer
from carenet.api.schemas import SimulationCreate

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
             response_model=dict[str, Any])
def create_simulation(body: SimulationCreate, request: Request, store: StoreDep,
                      settings: SettingsDep, key: Analyst, run: RunParam = None
                      ) -> dict[str, Any]:
    """Simulate a cascade on the run's graph (CPU work: runs in the thread pool)."""
    simulate = simulator()
    if simulate is None:
        raise ApiError(501, "not-implemented",
                       "what-if simulation needs carenet.community.influence.simulate (the "
                       "diffusion capability), which this build does not include yet")
    if body.runs > settings.max_simulation_runs:
        raise ApiError(422, "invalid-input",
                       f"runs must be at most {settings.max_simulation_runs} on this server")
    view = store.resolve(run)
    graph = store.load_graph(view)
    seeds = [find_customer(request, store, view, c)[0] for c in body.seeds]
    protected = [find_customer(request, store, view, c)[0] for c in body.protected]
    seed_pos = graph.index_of(seeds).tolist()
    prot_pos = graph.index_of(protected).tolist() if protected else None
    result = simulate(graph, seed_pos, protected=prot_pos, model=body.model, runs=body.runs,
                      seed=body.seed)
    out = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    return {"run": view.run_id, "seeds": seeds, "protected": protected, **out}
