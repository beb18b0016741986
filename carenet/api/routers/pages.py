"""Served pages: the dashboard and the interactive views, behind the API's keys.

A browser logs in once (``GET /login`` shows a form, ``POST /login`` checks a key and sets a
server-side session with a
cookie, see :mod:`carenet.api.sessions`); scripts may send the key in a header as
for the API. A page request without either is redirected to ``/login``; the ``/v1`` JSON
routes keep answering 401. Every error on a page path is an HTML page with the status the API
would answer (404 unknown run, community or customer; 422 bad parameter; never a 500 for bad
input): :func:`install` wraps the API's exception handlers in one place.

The views themselves are :mod:`carenet.viz.views`: this router only resolves the run, the ids
and the parameters, builds the run's :class:`~carenet.viz.data.ViewData` from the store
(cached per process, :mod:`carenet.api.viewdata`) and serves the self-contained HTML they
return. Rendering is CPU work, so these routes are plain ``def`` (FastAPI's thread pool).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from html import escape
from http import HTTPStatus
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from carenet.api.deps import client_address, token_from_headers
from carenet.api.errors import ApiError
from carenet.api.routers.customers import RunParam, find_customer
from carenet.api.sessions import (
    COOKIE,
    CSRF_COOKIE,
    SessionCache,
    csrf_ok,
    csrf_pair,
    load_secret,
)
from carenet.api.settings import SIMULATION_RUNS_MAX, Settings
from carenet.api.viewdata import LRU, PageLinks, view_data
from carenet.errors import CarenetError, InvalidInputError, RunNotFoundError
from carenet.store import ROLES, KeyInfo, RunStore, RunView

router = APIRouter(include_in_schema=False)
log = logging.getLogger("carenet.api.pages")

SECURITY_HEADERS = {
    # The pages and views are self-contained: nothing may be fetched from anywhere else.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PAGE_PREFIXES = ("/pages/", "/dashboard", "/login", "/logout")
MAX_SEEDS = 100
MAX_TOP = 500
MAX_COMMUNITIES = 200
"""Communities listed on the dashboard (the largest; the map and the API show them all)."""

_BIDI = re.compile("[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")


def visible(value: Any) -> Any:
    """Text with its bidirectional marks and overrides shown as ``<U+202E>`` instead of
    applied: a title or table cell shows what is stored, not text reordered by a hidden
    character (ids with them are rejected at load; other columns may still hold them).

    >>> visible("evil\u202egnp.exe"), visible(3)
    ('evil<U+202E>gnp.exe', 3)
    """
    if isinstance(value, str) and _BIDI.search(value):
        return _BIDI.sub(lambda m: f"<U+{ord(m.group()):04X}>", value)
    return value


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("carenet.api", "templates"),
    autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
    trim_blocks=True, lstrip_blocks=True, finalize=visible)


def _num(value: Any) -> str:
    """A score for a table cell: 4 significant digits, integers as they are."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e12):
        return f"{int(value):,}"
    return f"{value:.4g}"


_env.filters["num"] = _num


def is_page_path(path: str) -> bool:
    """Whether ``path`` is one of the HTML pages (errors there are HTML too)."""
    return path == "/" or path.startswith(PAGE_PREFIXES)


def render(template: str, *, status: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> HTMLResponse:
    """A template rendered as an HTML response with the pages' security headers."""
    body = _env.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status,
                        headers={**SECURITY_HEADERS, **(headers or {})})


def html(body: str) -> HTMLResponse:
    """A view's self-contained HTML with the pages' security headers."""
    return HTMLResponse(body, headers=SECURITY_HEADERS)


def with_pages_nav(page: str, links: PageLinks) -> str:
    """A view's page with a thin bar linking back to the dashboard and the community map.

    The views (:mod:`carenet.viz.views`) are written to stand alone (files of a report);
    served, they are part of the site, so the bar goes first in their ``<body>``.
    """
    start = page.find("<body")
    end = page.find(">", start) if start >= 0 else -1
    if end < 0:
        return page
    bar = ('<nav id="pages-nav" style="padding:5px 16px;background:#102a43;font-size:13px">'
           f'<a style="color:#fff;margin-right:16px" href="{escape(links.dashboard())}">'
           '&larr; Dashboard</a>'
           f'<a style="color:#fff" href="{escape(links.community_map())}">Community map</a>'
           '</nav>')
    return page[:end + 1] + bar + page[end + 1:]


# ---------------------------------------------------------------------------- auth
class LoginRequiredError(Exception):
    """A page was asked for without a key or valid session: the browser goes to /login."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


async def page_key(request: Request) -> KeyInfo:
    """The key of a page request: a key in the headers (as for the API), else the session
    cookie; neither -> redirect to the login form. Every role may read pages.
    """
    state = request.app.state
    token = token_from_headers(request.headers.get("authorization"),
                               request.headers.get("x-api-key"))
    info: KeyInfo | None
    if token:
        address = client_address(request)
        state.auth_throttle.check(address)
        info = state.keys.verify(state.store, token)
        if info is None:
            state.auth_throttle.fail(address)
            raise ApiError(401, "unauthorized", "unknown or revoked API key",
                           headers={"WWW-Authenticate": "Bearer"})
    else:
        cookie = request.cookies.get(COOKIE)
        info = state.sessions.verify(state.store, cookie) if cookie else None
        if info is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequiredError(target)
    state.limiter.check(info.id)
    request.state.key = info
    return info


PageKey = Annotated[KeyInfo, Depends(page_key)]


def _safe_next(target: str | None) -> str:
    """A post-login destination on this server only (no scheme, no host, no ``//``)."""
    if (not target or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(ch) < 32 for ch in target) or len(target) > 2000):
        return "/dashboard"
    return target


FAVICON = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAYAAABzenr0AAAAzUlEQVR42mNgGAUjHTCSq/FqHMN/dDHtRaSbx0Qty/"
    "GJU9UBhCwh1RFM1LScHEcwDXQiHHXA0HIAsfmclPKA5BAgZDiphRHJDpi/+cT/U6EnsMqdCj3BMH/zCZLKAUZSLYex"
    "E30tGEmVp1oixGU4sZYiAxZcEvL5r7EE5V2iDcam/+FEUUaiogC75bgNoUQ/EymaaSHPRIpmQurI0c9CbgmGLbs17B"
    "mCRTHZIYAtyxEbBYO3MiImi+FTR45+JlINobY8E619SI7+UTCyAAA4+GSPNZvFdAAAAABJRU5ErkJggg==")
"""A 32 px icon (three tied customers), so that browsers asking for one get no 404."""


@router.get("/favicon.ico")
async def favicon() -> Response:
    """The site icon (public)."""
    return Response(FAVICON, media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/")
async def root() -> RedirectResponse:
    """The dashboard."""
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/login")
async def login_form(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
                     ) -> HTMLResponse:
    """The login form: paste an API key (any role). Sets the form's CSRF cookie."""
    return _login_page(request, _safe_next(next), None, 200)


def _login_page(request: Request, target: str, message: str | None, status: int
                ) -> HTMLResponse:
    nonce, token = csrf_pair(request.app.state.sessions.secret)
    response = render("login.html", status=status, title="Log in", next=target,
                      message=message, key=None, csrf=token)
    response.set_cookie(CSRF_COOKIE, nonce, max_age=3600, path="/login", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/login")
async def login(request: Request, key: Annotated[str, Form(max_length=500)] = "",
                next: Annotated[str, Form(max_length=2000)] = "/dashboard",
                csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Check the CSRF token and the key, then start a server-side session (an HttpOnly,
    SameSite=Strict cookie). Failed logins are throttled per client address.
    """
    state = request.app.state
    settings: Settings = state.settings
    address = client_address(request)
    state.auth_throttle.check(address)
    if not csrf_ok(state.sessions.secret, request.cookies.get(CSRF_COOKIE), csrf):
        state.auth_throttle.fail(address)
        return _login_page(request, _safe_next(next), "The login form expired or did not "
                           "come from this site: log in again.", 403)
    token = key.strip()
    info = state.keys.verify(state.store, token) if token else None
    if info is None:
        state.auth_throttle.fail(address)
        message = ("Paste an API key." if not token else
                   "Unknown or revoked API key: create one with "
                   "`carenet keys create --role reader`.")
        return _login_page(request, _safe_next(next), message, 401)
    lifetime = int(settings.session_hours * 3600)
    value = state.sessions.start(state.store, info, lifetime)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, value, max_age=lifetime, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    response.delete_cookie(CSRF_COOKIE, path="/login", httponly=True, samesite="strict")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the browser session (on the server too: the cookie stops working everywhere)."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        state = request.app.state
        state.sessions.end(state.store, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


# ---------------------------------------------------------------------------- dashboard
def _store(request: Request) -> RunStore:
    return request.app.state.store  # type: ignore[no-any-return]


def _rank_key(view: RunView) -> str | None:
    """What the dashboard ranks by: priority when the run has it, else influence, else the
    API's default sort key.
    """
    numeric = view.numeric
    return next((k for k in ("priority", "influence") if k in numeric), view.default_sort)


@router.get("/dashboard")
def dashboard(request: Request, key: PageKey, run: RunParam = None,
              q: Annotated[str | None, Query(max_length=256)] = None,
              top: Annotated[int, Query(ge=1, le=MAX_TOP)] = 25) -> Response:
    """Top customers, search by id, communities, links to every view."""
    store = _store(request)
    view = store.resolve(run)
    links = PageLinks(run)
    matches: list[str] | None = None
    if q is not None and q.strip():
        q = q.strip()
        try:
            cid, _ = find_customer(request, store, view, q)
        except RunNotFoundError:
            matches = store.search_customers(view, q, limit=20)
        else:
            return RedirectResponse(links.customer(cid), status_code=303)
    row = store.get_run(view.run_id)
    sort = _rank_key(view)
    customers: list[dict[str, Any]] = []
    if sort is not None:
        page = store.customers_page(view, sort=sort, limit=top)
        customers = [json.loads(d) for d in page.items]
    score_cols = [c for c in ("priority", "influence", "exposure", "pagerank")
                  if c in view.numeric]
    rows = []
    for doc in customers:
        scores = {**doc.get("scores", {}),
                  **{k: doc.get(k) for k in ("priority",) if k in doc}}
        rows.append({"id": doc["customer_id"], "link": links.customer(doc["customer_id"]),
                     "scores": [scores.get(c) for c in score_cols],
                     "community": doc.get("community"), "role": doc.get("role"),
                     "reason": doc.get("reason"),
                     "community_link": (links.community(doc["community"])
                                        if doc.get("community") is not None else None)})
    communities: list[dict[str, Any]] = []
    n_communities = 0
    if "communities" in view.tables:
        docs, n_communities = store.table_rows(view, "communities", limit=MAX_COMMUNITIES)
        communities = [json.loads(d) for d in docs]
    comm_cols = [c for c in ("size", "density", "conductance", "negative_share",
                             "value_total", "hubs", "bridges")
                 if any(c in d for d in communities)]
    comm_rows = [{"id": d["community"], "link": links.community(d["community"]),
                  "cells": [d.get(c) for c in comm_cols],
                  "top": [(t["customer_id"], links.customer(t["customer_id"]))
                          for t in d.get("top_customers", [])[:3]]}
                 for d in communities]
    seeds = _default_seeds(store, view)
    published = store.list_runs(limit=20, status="published")
    _warm(request, view)
    return render(
        "dashboard.html", title="Dashboard", run=row, run_param=run, links=links,
        sort=sort, score_cols=score_cols, customers=rows, comm_cols=comm_cols,
        communities=comm_rows, n_communities=n_communities, q=q, matches=matches,
        seeds=",".join(seeds), columns={c["name"] for c in view.columns},
        cascade_link=links.cascade(seeds) if seeds else None,
        runs=[r["id"] for r in published], key=key,
        has_communities="community" in {c["name"] for c in view.columns})


def _default_seeds(store: RunStore, view: RunView, k: int = 3) -> list[str]:
    """Seeds suggested for the cascade view: the most influential customers."""
    sort = "influence" if "influence" in view.numeric else view.default_sort
    if sort is None:
        return []
    page = store.customers_page(view, sort=sort, limit=k)
    return [json.loads(d)["customer_id"] for d in page.items]


@router.get("/pages/search")
def search(request: Request, key: PageKey,
           q: Annotated[str, Query(min_length=1, max_length=256)],
           run: RunParam = None,
           limit: Annotated[int, Query(ge=1, le=50)] = 10) -> JSONResponse:
    """Customer ids starting with ``q`` (the dashboard's search suggestions)."""
    store = _store(request)
    view = store.resolve(run)
    return JSONResponse({"run": view.run_id,
                         "items": store.search_customers(view, q.strip(), limit=limit)},
                        headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------------------- views
MaxNodes = Annotated[int | None, Query(ge=1, le=5000, description="Nodes drawn at most")]


def _data(request: Request, view: RunView) -> Any:
    cache: LRU[Any] = request.app.state.view_data
    store = _store(request)
    return cache.get(view.run_id, lambda: view_data(store, view))


def _warm(request: Request, view: RunView) -> None:
    """Build the run's view data in the background (a dashboard visit usually precedes a
    view: the first view of a large run then need not wait for it).
    """
    cache: LRU[Any] = request.app.state.view_data
    if view.run_id in cache:
        return

    def build() -> None:
        try:
            _data(request, view)
        except CarenetError as exc:  # e.g. the run was dropped meanwhile: a view will say so
            log.info("view data of run %s not prepared: %s", view.run_id, exc)

    threading.Thread(target=build, name=f"warm-{view.run_id}", daemon=True).start()


def _page(request: Request, run: str | None, key: tuple[Any, ...], build: Callable[[], str]
          ) -> HTMLResponse:
    """A rendered view (cached per process under ``key``) with the site's bar."""
    cache: LRU[str] = request.app.state.view_pages
    return html(cache.get((*key, run), lambda: with_pages_nav(build(), PageLinks(run))))


def _opt(**kwargs: Any) -> dict[str, Any]:
    """Keyword arguments that were given (the views keep their own defaults otherwise)."""
    return {k: v for k, v in kwargs.items() if v is not None}


@router.get("/pages/community-map")
def community_map_page(request: Request, key: PageKey, run: RunParam = None,
                       score: Annotated[str | None, Query(max_length=100)] = None
                       ) -> HTMLResponse:
    """Communities as nodes, sized by members and coloured by ``score``; click opens one."""
    from carenet.viz import views

    view = _store(request).resolve(run)
    data = _data(request, view)
    opts = _opt(score=score)
    return _page(request, run, ("map", view.run_id, score),
                 lambda: views.community_map(data, links=PageLinks(run), **opts))


@router.get("/pages/communities/{community}")
def community_page(request: Request, key: PageKey,
                   community: Annotated[str, Path(min_length=1, max_length=200)],
                   run: RunParam = None, max_nodes: MaxNodes = None) -> HTMLResponse:
    """One community's members and ties; hover shows a member's scores and reason."""
    from carenet.viz import views

    view = _store(request).resolve(run)
    data = _data(request, view)
    label = _community_label(data, view, community)
    opts = _opt(max_nodes=max_nodes)
    return _page(request, run, ("community", view.run_id, label, max_nodes),
                 lambda: views.community_view(data, label, links=PageLinks(run), **opts))


def _community_label(data: Any, view: RunView, community: str) -> Any:
    """The run's label for ``community`` (a path segment is text; labels may be integers)."""
    if "community" not in data.customers.columns:
        raise RunNotFoundError(f"run {view.run_id} has no communities (its analysis did not "
                               "detect any)")
    for label in data.customers["community"].dropna().unique():
        if str(label) == community:
            return label.item() if hasattr(label, "item") else label
    raise RunNotFoundError(f"no community {community!r} in run {view.run_id}")


@router.get("/pages/customers/{customer_id}")
def customer_page(request: Request, key: PageKey,
                  customer_id: Annotated[str, Path(min_length=1, max_length=256)],
                  run: RunParam = None,
                  hops: Annotated[int | None, Query(ge=1, le=3)] = None,
                  max_nodes: MaxNodes = None) -> HTMLResponse:
    """A customer's ego network: its ties and its neighbours' ties."""
    from carenet.viz import views

    store = _store(request)
    view = store.resolve(run)
    cid, _ = find_customer(request, store, view, customer_id)
    data = _data(request, view)
    opts = _opt(hops=hops, max_nodes=max_nodes)
    return _page(request, run, ("customer", view.run_id, cid, hops, max_nodes),
                 lambda: views.customer_view(data, cid, links=PageLinks(run), **opts))


@router.get("/pages/cascade")
def cascade_page(request: Request, key: PageKey,
                 seeds: Annotated[str, Query(max_length=20_000,
                                             description="Comma-separated customer ids")],
                 run: RunParam = None,
                 model: Literal["ic", "lt", "sir"] | None = None,
                 runs: Annotated[int | None, Query(ge=1, le=SIMULATION_RUNS_MAX)] = None,
                 seed: Annotated[int | None, Query(ge=0, le=2**32 - 1)] = None,
                 max_nodes: MaxNodes = None) -> HTMLResponse:
    """A what-if cascade from ``seeds``, step by step (slider and play control)."""
    from carenet.viz import views

    settings: Settings = request.app.state.settings
    ids = [s.strip() for s in seeds.split(",") if s.strip()]
    if not ids:
        raise InvalidInputError("seeds: give at least one customer id (comma-separated)")
    if len(ids) > MAX_SEEDS:
        raise InvalidInputError(f"seeds: at most {MAX_SEEDS} customers, not {len(ids)}")
    if runs is not None and runs > settings.max_simulation_runs:
        raise InvalidInputError(
            f"runs must be at most {settings.max_simulation_runs} on this server")
    store = _store(request)
    view = store.resolve(run)
    resolved = list(dict.fromkeys(find_customer(request, store, view, s)[0] for s in ids))
    page_key = ("cascade", view.run_id, tuple(resolved), model, runs, seed, max_nodes, run)
    custom = any(v is not None and v != cascade_defaults()[k]
                 for k, v in (("model", model), ("runs", runs), ("seed", seed)))
    if custom and ROLES.index(key.role) < ROLES.index("analyst") and (
            page_key not in request.app.state.view_pages):
        # a new simulation with chosen parameters is analyst work, as on /v1/simulations;
        # readers see the default cascade and the ones already computed
        raise ApiError(403, "forbidden",
                       "choosing model, runs or seed for a cascade needs an analyst key; key "
                       f"{key.id} is a {key.role} key (leave them out for the default cascade)")
    data = _data(request, view)
    opts = _opt(model=model, runs=runs, seed=seed, max_nodes=max_nodes)

    def build() -> str:
        with request.app.state.simulations.take():  # bounded CPU work per server process
            return views.cascade_view(data, resolved, links=PageLinks(run), **opts)

    return _page(request, run, page_key[:-1], build)


@functools.cache
def cascade_defaults() -> dict[str, Any]:
    """The cascade view's own defaults of the parameters a reader may not choose (read on
    first use: the views are imported on first use too).
    """
    import inspect

    from carenet.viz.views import cascade_view

    params = inspect.signature(cascade_view).parameters
    return {k: params[k].default for k in ("model", "runs", "seed")}


# ---------------------------------------------------------------------------- errors
Handler = Callable[[Request, Exception], Awaitable[Response]]


def _html_errors(handler: Handler) -> Handler:
    """``handler`` (one of the API's problem-document handlers) answering an HTML error
    page, with the same status and headers, on page paths.
    """

    async def wrapped(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        if not is_page_path(request.url.path):
            return response
        try:
            problem = json.loads(bytes(response.body))
        except ValueError:  # pragma: no cover - every API handler answers JSON
            problem = {}
        status = response.status_code
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() in ("retry-after", "allow")}
        return render("error.html", status=status, headers=headers,
                      title=HTTPStatus(status).phrase, code=status,
                      detail=problem.get("detail", HTTPStatus(status).phrase),
                      errors=problem.get("errors") or [], back=PageLinks(
                          request.query_params.get("run")).dashboard())

    return wrapped


async def _login_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequiredError)
    return RedirectResponse("/login?" + urlencode({"next": exc.target}), status_code=303,
                            headers={"Cache-Control": "no-store"})


def install(app: FastAPI) -> None:
    """Add the pages to ``app``: routes, caches, and HTML error pages on page paths (after
    :func:`carenet.api.errors.install`, whose handlers it wraps).
    """
    settings: Settings = app.state.settings
    secret = load_secret(settings.session_secret, settings.secret_file())
    app.state.sessions = SessionCache(secret, settings.key_cache_seconds)
    app.state.view_data = LRU(settings.view_cache_runs)
    app.state.view_pages = LRU(settings.view_cache_pages)
    for exc_class, handler in list(app.exception_handlers.items()):
        app.add_exception_handler(exc_class, _html_errors(handler))  # type: ignore[arg-type]
    app.add_exception_handler(LoginRequiredError, _login_redirect)
    app.include_router(router)


__all__ = ["LoginRequiredError", "install", "is_page_path", "page_key", "router"]
