"""A fast path for the hottest call, ``GET /v1/customers/{id}``, below the framework.

CRM systems call it at every contact. FastAPI's routing, parameter validation and
dependency resolution cost more than the read itself (an indexed fetch of a document
rebuilt from one row by the store), so this ASGI middleware answers the *ordinary* case directly:
a valid key, a known customer, at most a ``run=`` parameter. It runs the same key check,
role check and rate limiter as the routed endpoint, and anything else (no or bad key, an
unknown customer, a raw id of a pseudonymised run, extra parameters, any error) falls through
to the routed endpoint, which answers it with the usual problem documents. Both produce the
same bytes for the same request (the API tests run through this path).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote

from carenet.api.errors import ApiError
from carenet.errors import CarenetError

_PREFIX = "/v1/customers/"
_HEADERS = [(b"content-type", b"application/json")]


class CustomerFastPath:
    """ASGI middleware: answer plain single-customer reads without routing."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer an ordinary single-customer read, or pass the request on."""
        if (scope["type"] == "http" and scope["method"] == "GET"
                and scope["path"].startswith(_PREFIX)):
            body = self._answer(scope)
            if body is not None:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*_HEADERS,
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: dict[str, Any]) -> bytes | None:
        from carenet.api.deps import token_from_headers
        from carenet.api.routers.customers import with_run

        raw_id = scope["path"][len(_PREFIX):]
        if not raw_id or "/" in raw_id:
            return None
        customer_id = unquote(raw_id)
        if len(customer_id) > 256:
            return None
        run = None
        qs = scope.get("query_string", b"")
        if qs:
            params = parse_qsl(qs.decode("latin-1"), keep_blank_values=True)
            if len(params) != 1 or params[0][0] != "run" or not 0 < len(params[0][1]) <= 64:
                return None
            run = params[0][1]
        headers = dict(scope["headers"])
        token = token_from_headers(headers.get(b"authorization", b"").decode("latin-1"),
                                   headers.get(b"x-api-key", b"").decode("latin-1"))
        state = self.state or scope["app"].state
        self.state = state
        if not token:
            return None
        client = scope.get("client")
        if state.auth_throttle.blocked(client[0] if client else "-") > 0:
            return None  # an address that keeps failing: the routed endpoint answers 429
        try:
            info = state.keys.verify(state.store, token)
            if info is None:
                return None
            view = state.store.resolve(run)
            doc = state.store.customer(view, customer_id)
            if doc is None:
                return None
            state.limiter.check(info.id)
        except (CarenetError, ApiError):
            return None  # the routed endpoint answers with the right problem document
        return with_run(view.run_id, doc).encode()
