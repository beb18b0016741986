r"""The request guard: what every request must satisfy before routing, authentication or
parsing look at it.

:class:`RequestGuard` is a pure ASGI middleware, the outermost layer of the app, so that a
hostile request costs the server as little as possible:

- **Body size.** A body larger than ``max_body_bytes`` (``CARENET_MAX_BODY_BYTES``, 1 MiB by
  default) is refused with 413: at once when ``Content-Length`` says so, else as soon as the
  streamed body passes the limit. Nothing beyond the limit is ever buffered. Uploads
  (``POST /v1/logs``) are streamed to disk by their route and have their own, larger limit
  (``max_upload_bytes``).
- **NUL characters.** A NUL (``\x00``) in the path, the query string, a form field or a JSON
  string is refused with 400: no store keeps it (PostgreSQL refuses NUL in text), no id
  contains it, and catching it here means no route has to.

Both answers are problem documents (``application/problem+json``) like every other error.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

_UPLOAD = ("POST", "/v1/logs")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PROBLEMS = "https://carenet.dev/problems/"


class BodyTooLargeError(Exception):
    """The streamed body passed the limit (raised from the wrapped ``receive``)."""


def has_nul(value: Any) -> bool:
    r"""Whether a decoded JSON value holds a NUL character in any string or key.

    >>> has_nul({"a": ["x", "y\x00"]}), has_nul({"a": [1, 2.5, None, "ok"]})
    (True, False)
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def body_has_nul(body: bytes, content_type: str) -> bool:
    r"""Whether a request body carries a NUL character in a value a route would read.

    Raw NUL bytes count in any body; a JSON body counts when a decoded string holds
    ``\u0000``; a form body when a decoded field holds ``%00``.

    >>> body_has_nul(b'{"seeds": ["a\\u0000"]}', "application/json")
    True
    >>> body_has_nul(b'{"seeds": ["a\\\\u0000"]}', "application/json")
    False
    >>> body_has_nul(b"key=ab%00c", "application/x-www-form-urlencoded")
    True
    """
    if b"\x00" in body:
        return True
    ctype = content_type.lower()
    if b"\\u0000" in body.lower():
        try:
            return has_nul(json.loads(body))
        except (ValueError, RecursionError):
            return False  # not JSON: the route answers its own parse error
    if "form-urlencoded" in ctype and b"%00" in body:
        text = body.decode("latin-1")
        return any("\x00" in k or "\x00" in v
                   for k, v in parse_qsl(text, keep_blank_values=True))
    return False


def problem_response(status: int, slug: str, title: str, detail: str, path: str
                     ) -> tuple[dict[str, Any], bytes]:
    """The ``http.response.start`` message and body of a problem document."""
    body = json.dumps({"type": _PROBLEMS + slug, "title": title, "status": status,
                       "detail": detail, "instance": path[:200]}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/problem+json"),
                         (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]}
    return start, body


def routed(scope: dict[str, Any]) -> bool:
    """Whether a route of the app takes this method on this path (a request no route takes
    is left to the app's own 404 or 405, as for any other request).
    """
    from starlette.routing import Match

    routes = getattr(getattr(scope.get("app"), "router", None), "routes", None)
    if routes is None:
        return True
    return any(route.matches(scope)[0] == Match.FULL for route in routes)


class RequestGuard:
    """ASGI middleware: refuse oversize bodies (413) and NUL characters (400) up front.

    ``max_body_bytes``: the largest body any route but the upload accepts.
    """

    def __init__(self, app: Any, max_body_bytes: int = 1024 * 1024) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Check the request, then pass it on (with its body replayed) or refuse it."""
        if scope["type"] != "http" or scope["method"] not in _METHODS:
            await self.app(scope, receive, send)  # TRACE, CONNECT, ...: the app's 405
            return
        path: str = scope.get("path", "")
        query: bytes = scope.get("query_string", b"")
        if ("\x00" in path or (b"%00" in query and b"\x00" in unquote_to_bytes(query)) or (
                b"\x00" in query)) and routed(scope):
            await self._refuse(send, 400, "nul-character", "Bad Request",
                               "a NUL character is not allowed in a path or parameter", path)
            return
        if (scope["method"], path.rstrip("/")) == _UPLOAD:
            await self.app(scope, receive, send)  # streamed to disk, limited by the route
            return
        headers = dict(scope.get("headers") or ())
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._refuse(send, 413, "too-large", "Content Too Large",
                               f"the request body is {int(declared):,} bytes; the limit is "
                               f"{self.max_body:,} (CARENET_MAX_BODY_BYTES)", path)
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS") and declared is None and (
                b"chunked" not in headers.get(b"transfer-encoding", b"")):
            await self.app(scope, receive, send)  # no body to read
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._refuse(send, 413, "too-large", "Content Too Large",
                                   f"the request body exceeds the limit of {self.max_body:,} "
                                   "bytes (CARENET_MAX_BODY_BYTES)", path)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        if body and body_has_nul(body, ctype) and routed(scope):
            await self._refuse(send, 400, "nul-character", "Bad Request",
                               "a NUL character is not allowed in a request field", path)
            return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # type: ignore[no-any-return]

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send: Any, status: int, slug: str, title: str, detail: str,
                      path: str) -> None:
        start, body = problem_response(status, slug, title, detail, path)
        await send(start)
        await send({"type": "http.response.body", "body": body})
