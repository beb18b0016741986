"""``/v1/customers``: one customer's results, ranked and filtered lists, strongest ties."""

from __future__ import annotations

import json
import math
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from carenet.api.deps import Reader, StoreDep
from carenet.api.errors import responses
from carenet.api.schemas import CustomerPage, CustomerPublic, NeighborList
from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.graphs.ids import Pseudonymizer
from carenet.store import RunStore, RunView

router = APIRouter(prefix="/v1/customers", tags=["customers"],
                   responses=responses(400, 401, 403, 404, 409, 422, 429))

RunParam = Annotated[str | None, Query(max_length=64, description="Run to read (default: the "
                                       "latest published run)")]
CustomerId = Annotated[str, Path(min_length=1, max_length=256,
                                 description="Customer id, raw or pseudonymised")]
_FIXED = ("min_priority", "min_influence", "min_exposure", "min_pagerank")


def find_customer(request: Request, store: RunStore, view: RunView,
                  customer_id: str) -> tuple[str, str]:
    """(stored id, JSON document) of a customer; a raw id of a pseudonymised run is hashed
    with the server's salt (``$CARENET_SALT``) first.
    """
    doc = store.customer(view, customer_id)
    if doc is not None:
        return customer_id, doc
    if view.pseudonymized:
        pseudo: Pseudonymizer | None = request.app.state.pseudonymizer
        if pseudo is None:
            raise RunNotFoundError(
                f"no customer {customer_id!r} in run {view.run_id}; the run pseudonymised its "
                "ids and this server has no salt (CARENET_SALT) to hash a raw id")
        pid = pseudo(customer_id)
        doc = store.customer(view, pid)
        if doc is not None:
            return pid, doc
    raise RunNotFoundError(f"no customer {customer_id!r} in run {view.run_id}")


def with_run(run_id: str, doc: str) -> str:
    """A stored customer document with its run id spliced in front."""
    return f'{{"run":{json.dumps(run_id)},{doc[1:]}'


@router.get("/{customer_id}", response_model=CustomerPublic,
            summary="One customer's scores, community, role, priority and percentile ranks")
async def get_customer(customer_id: CustomerId, store: StoreDep, key: Reader,
                       request: Request, run: RunParam = None) -> Response:
    """A single indexed read; the document is rebuilt from the stored row (store.customer).

    Runs on the event loop on purpose: it costs microseconds on SQLite and one round trip
    on PostgreSQL, less than a thread hand-off.
    """
    view = store.resolve(run)
    _, doc = find_customer(request, store, view, customer_id)
    return Response(with_run(view.run_id, doc), media_type="application/json")


@router.get("", response_model=CustomerPage, summary="Ranked, filtered, paginated customers")
def list_customers(
    request: Request, store: StoreDep, key: Reader,
    sort: Annotated[str | None, Query(max_length=100, description=(
        "Rank by priority, influence, exposure, pagerank or any numeric column of the run "
        "(default: the first of those the run has)"))] = None,
    order: Literal["asc", "desc"] = "desc",
    community: Annotated[str | None, Query(max_length=200)] = None,
    role: Annotated[str | None, Query(max_length=100)] = None,
    min_priority: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    min_influence: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    min_exposure: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    min_pagerank: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=4000)] = None,
    run: RunParam = None,
) -> Response:
    """Customers ranked by ``sort`` (customers without a value are left out), filtered by
    community, role and ``min_<column>`` / ``max_<column>`` bounds on any numeric column.
    Pages are cut by an opaque ``cursor`` that stays on the run it started on.
    """
    bounds: dict[str, tuple[float | None, float | None]] = {}
    for name, value in request.query_params.multi_items():
        if not name.startswith(("min_", "max_")) or name in _FIXED:
            continue
        try:
            number = float(value)
        except ValueError:
            raise InvalidInputError(f"{name} must be a number, not {value!r}") from None
        if not math.isfinite(number):
            raise InvalidInputError(f"{name} must be a finite number, not {value!r}")
        _set_bound(bounds, name[4:], name.startswith("min_"), number)
    for name, fixed in (("priority", min_priority), ("influence", min_influence),
                        ("exposure", min_exposure), ("pagerank", min_pagerank)):
        if fixed is not None:
            _set_bound(bounds, name, True, fixed)
    if cursor is not None and run is None:
        # a cursor stays on the run where the listing started, even if a newer one appeared
        from carenet.store.reads import decode_cursor

        run = str(decode_cursor(cursor).get("r"))
    view = store.resolve(run)
    page = store.customers_page(view, sort=sort, order=order, community=community,
                                role=role, bounds=bounds, limit=limit, cursor=cursor)
    items = ",".join(with_run(page.run_id, d) for d in page.items)
    body = (f'{{"run":{json.dumps(page.run_id)},"sort":{json.dumps(page.sort)},'
            f'"order":"{page.order}","items":[{items}],'
            f'"next_cursor":{json.dumps(page.next_cursor)}}}')
    return Response(body, media_type="application/json")


def _set_bound(bounds: dict[str, tuple[float | None, float | None]], name: str, low: bool,
               value: float) -> None:
    lo, hi = bounds.get(name, (None, None))
    bounds[name] = (value, hi) if low else (lo, value)


@router.get("/{customer_id}/neighbors", response_model=NeighborList,
            summary="A customer's strongest ties with weights and channels")
def get_neighbors(customer_id: CustomerId, store: StoreDep, key: Reader, request: Request,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 10,
                  run: RunParam = None) -> NeighborList:
    """Ties in both directions merged per neighbour, strongest first."""
    view = store.resolve(run)
    cid, _ = find_customer(request, store, view, customer_id)
    items = store.neighbors(view, cid, limit=limit)
    if items is None:  # pragma: no cover - the customer was found just above
        raise RunNotFoundError(f"no customer {customer_id!r} in run {view.run_id}")
    return NeighborList.model_validate({"run": view.run_id, "customer_id": cid,
                                        "items": items})
