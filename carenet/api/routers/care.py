"""``/v1/care-plan``: the run's budgeted care plan (from the care issue's ``care_plan`` table)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from carenet.api.deps import Reader, StoreDep
from carenet.api.errors import responses
from carenet.api.routers.customers import RunParam
from carenet.api.schemas import CarePlan
from carenet.errors import InvalidInputError

router = APIRouter(prefix="/v1/care-plan", tags=["care plan"],
                   responses=responses(400, 401, 403, 404, 409, 422, 429))


@router.get("", response_model=CarePlan, summary="Whom to contact first, for a budget of K")
def get_care_plan(store: StoreDep, key: Reader,
                  budget: Annotated[int, Query(ge=1, le=1_000_000)] = 10,
                  run: RunParam = None) -> Response:
    """The first ``budget`` customers of the plan. The plan is chosen greedily, so its first K
    rows are the plan for budget K; a budget beyond the computed plan is a 422.
    """
    view = store.resolve(run)
    rows, total = store.table_rows(view, "care_plan", limit=budget)
    if budget > total:
        raise InvalidInputError(
            f"the care plan of run {view.run_id} covers {total} customers; ask for a budget "
            f"of at most {total} or start a run with a larger budget")
    body = (f'{{"run":{json.dumps(view.run_id)},"budget":{budget},"available":{total},'
            f'"items":[{",".join(rows)}]}}')
    return Response(body, media_type="application/json")
