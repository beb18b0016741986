"""Dependencies shared by the routers: settings, the store, the caller's key and role."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from carenet.api.errors import ApiError
from carenet.api.settings import Settings
from carenet.store import ROLES, KeyInfo, RunStore


async def get_settings(request: Request) -> Settings:
    """The app's settings (set by ``create_app``; override this dependency in tests).

    ``async`` on purpose: FastAPI runs plain-``def`` dependencies in its thread pool, which
    costs more than the whole of a point read.
    """
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_store(request: Request) -> RunStore:
    """The app's run store."""
    return request.app.state.store  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[RunStore, Depends(get_store)]


class KeyCache:
    """Verified keys, trusted for ``ttl`` seconds so that a read costs no key query."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def verify(self, store: RunStore, token: str) -> KeyInfo | None:
        """The key of ``token`` (None if unknown or revoked)."""
        now = time.monotonic()
        hit = self._items.get(token)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        info = store.verify_key(token)
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[token] = (now, info)
        return info


class RateLimiter:
    """A token bucket per API key: ``rate`` requests/s sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str) -> None:
        """Take one token for ``key_id`` or raise a 429 problem."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                wait = (1.0 - tokens) / self.rate
                self._buckets[key_id] = (tokens, now)
                raise ApiError(429, "rate-limited",
                               f"rate limit of {self.rate:g} requests/s per key exceeded; "
                               f"retry in {wait:.2f} s",
                               headers={"Retry-After": str(max(1, round(wait + 0.5)))})
            self._buckets[key_id] = (tokens - 1.0, now)


def require(role: str) -> Callable[..., Awaitable[KeyInfo]]:
    """A dependency admitting keys of ``role`` or a more powerful one (401/403 otherwise)."""
    rank = ROLES.index(role)

    async def dependency(request: Request) -> KeyInfo:
        # Headers are read directly (the security schemes are declared on the OpenAPI
        # document by create_app): two fewer sub-dependencies on every request.
        token = _token(request)
        state = request.app.state
        address = client_address(request)
        state.auth_throttle.check(address)  # an address that keeps failing: not even a query
        if not token:
            state.auth_throttle.fail(address)
            raise ApiError(401, "unauthorized",
                           "an API key is required: send 'Authorization: Bearer KEY' or "
                           "'X-API-Key: KEY' (create one with `carenet keys create`)",
                           headers={"WWW-Authenticate": "Bearer"})
        info = state.keys.verify(state.store, token)
        if info is None:
            state.auth_throttle.fail(address)
            raise ApiError(401, "unauthorized", "unknown or revoked API key",
                           headers={"WWW-Authenticate": "Bearer"})
        if ROLES.index(info.role) < rank:
            raise ApiError(403, "forbidden",
                           f"this needs a {role} key; key {info.id} is a {info.role} key")
        state.limiter.check(info.id)
        request.state.key = info
        return info

    dependency.__name__ = f"require_{role}"
    return dependency


def client_address(request: Request) -> str:
    """The address a request came from (the throttle's key; ``-`` when unknown)."""
    return request.client.host if request.client is not None else "-"


def _token(request: Request) -> str | None:
    return token_from_headers(request.headers.get("authorization"),
                              request.headers.get("x-api-key"))


def token_from_headers(authorization: str | None, api_key: str | None) -> str | None:
    """The API key of a request: ``Authorization: Bearer KEY``, else ``X-API-Key: KEY``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return api_key.strip() if api_key and api_key.strip() else None


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "API key as a bearer token: Authorization: Bearer KEY"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "API key in the X-API-Key header"},
}


Reader = Annotated[KeyInfo, Depends(require("reader"))]
Analyst = Annotated[KeyInfo, Depends(require("analyst"))]
Admin = Annotated[KeyInfo, Depends(require("admin"))]
