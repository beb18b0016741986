"""Browser sessions for the served pages: a signed cookie instead of a key in every request.

``POST /login`` checks an API key and answers with the cookie
``carenet_session=<key id>.<expiry>.<signature>``: the signature is an HMAC-SHA256 of the key id
and the expiry keyed by the key's *stored hash*, which never leaves the server. So the cookie
holds no secret a script could reuse against the API, any server process (``--workers``, a
restart) can check it without shared state, and revoking the key ends its sessions (within the
key cache's lifetime). The cookie is ``HttpOnly`` and ``SameSite=Strict`` (and ``Secure`` behind
HTTPS); the pages only read, so no cross-site form can act through it.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

from carenet.store import KeyInfo, RunStore

COOKIE = "carenet_session"
"""Name of the session cookie."""


def _signature(key_id: str, expires: int, key_hash: str) -> str:
    msg = f"carenet-session:{key_id}.{expires}".encode()
    return hmac.new(key_hash.encode(), msg, hashlib.sha256).hexdigest()


def sign(key_id: str, key_hash: str, expires: int) -> str:
    """The cookie value of a session of key ``key_id`` valid until ``expires`` (epoch s).

    >>> sign("k1", "h", 10).startswith("k1.10.")
    True
    """
    return f"{key_id}.{expires}.{_signature(key_id, expires, key_hash)}"


def parse(value: str) -> tuple[str, int, str] | None:
    """(key id, expiry, signature) of a cookie value, None if it is malformed.

    >>> parse("k1.10.ab"), parse("k1.x.ab"), parse("nonsense")
    (('k1', 10, 'ab'), None, None)
    """
    parts = value.split(".")
    if len(parts) != 3 or not parts[0] or len(parts[0]) > 32 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


class SessionCache:
    """Checks session cookies; a key's stored hash is looked up at most every ``ttl``
    seconds (the same revocation delay as :class:`carenet.api.deps.KeyCache`).
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, tuple[KeyInfo, str] | None]] = {}
        self._lock = threading.Lock()

    def secret(self, store: RunStore, key_id: str) -> tuple[KeyInfo, str] | None:
        """The key's info and stored hash (None if unknown or revoked), cached."""
        now = time.monotonic()
        hit = self._items.get(key_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        found = store.key_secret(key_id)
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key_id] = (now, found)
        return found

    def verify(self, store: RunStore, value: str, *, now: float | None = None
               ) -> KeyInfo | None:
        """The key of a valid, unexpired session cookie, else None."""
        parsed = parse(value)
        if parsed is None:
            return None
        key_id, expires, signature = parsed
        if expires < (time.time() if now is None else now):
            return None
        found = self.secret(store, key_id)
        if found is None:
            return None
        info, key_hash = found
        if not hmac.compare_digest(signature, _signature(key_id, expires, key_hash)):
            return None
        return info
