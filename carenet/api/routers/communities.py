"""``/v1/communities``: summaries, top customers and links to other communities."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from carenet.api.deps import Reader, StoreDep
from carenet.api.errors import responses
from carenet.api.routers.customers import RunParam
from carenet.api.schemas import CommunityDetail, CommunityPage
from carenet.errors import InvalidInputError, RunNotFoundError

router = APIRouter(prefix="/v1/communities", tags=["communities"],
                   responses=responses(400, 401, 403, 404, 409, 422, 429))


@router.get("", response_model=CommunityPage, summary="Communities, largest first")
def list_communities(store: StoreDep, key: Reader,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                     cursor: Annotated[str | None, Query(max_length=20, pattern=r"^\d+$",
                                                         description="Opaque")] = None,
                     run: RunParam = None) -> Response:
    """A page of community summaries (404 with the run's tables if it has no communities)."""
    view = store.resolve(run)
    offset = int(cursor) if cursor else 0
    if offset > 10**9:
        raise InvalidInputError("cursor out of range")
    rows, total = store.table_rows(view, "communities", limit=limit, offset=offset)
    nxt = str(offset + limit) if offset + limit < total else None
    body = (f'{{"run":{json.dumps(view.run_id)},"items":[{",".join(rows)}],'
            f'"total":{total},"next_cursor":{json.dumps(nxt)}}}')
    return Response(body, media_type="application/json")


@router.get("/{community_id}", response_model=CommunityDetail,
            summary="One community: summary, top customers, links to other communities")
def get_community(community_id: Annotated[str, Path(min_length=1, max_length=200)],
                  store: StoreDep, key: Reader, run: RunParam = None) -> Response:
    """One community's document."""
    view = store.resolve(run)
    doc = store.table_row(view, "communities", community_id)
    if doc is None:
        raise RunNotFoundError(f"no community {community_id!r} in run {view.run_id}")
    return Response(f'{{"run":{json.dumps(view.run_id)},{doc[1:]}', media_type="application/json")
