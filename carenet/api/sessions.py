"""Browser sessions for the served pages: a session cookie instead of a key in every request.

``POST /login`` checks an API key and a CSRF token and starts a **server-side session**: a row
of the store's ``sessions`` table keyed by the hash of a random token, with its expiry. The
cookie ``carenet_session=<token>.<signature>`` carries the token and an HMAC-SHA256 of it keyed
by the **server secret**, which is kept apart from the store:

- ``CARENET_SESSION_SECRET`` when set (every server process of a deployment shares it), else
- a file ``session.secret`` generated once with mode 0600 next to the store (the data
  directory; see :meth:`carenet.api.settings.Settings.secret_file`).

So reading the store (a backup, a 0644 SQLite file) gives nothing to log in with: it holds
only token hashes. A cookie whose signature does not match costs no query; a genuine one is
looked up (cached for ``key_cache_seconds``, the key cache's revocation delay). Logging out
ends the row at once, expiry is the row's, and revoking the key ends its sessions. The cookie
is ``HttpOnly`` and ``SameSite=Strict`` (``Secure`` behind HTTPS); the login form carries a
CSRF token bound to a cookie of its own (double submit, signed with the server secret).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
import time
from pathlib import Path

from carenet.store import KeyInfo, RunStore

COOKIE = "carenet_session"
"""Name of the session cookie."""
CSRF_COOKIE = "carenet_csrf"
"""Name of the login form's CSRF cookie (its nonce; the form holds the nonce's signature)."""
SECRET_FILE = "session.secret"
log = logging.getLogger("carenet.api.sessions")


def load_secret(configured: str | None, path: Path) -> bytes:
    """The server secret: ``configured`` (from the environment) if given, else the file at
    ``path``, created with 32 random bytes (hex) and mode 0600 on first use.

    A file readable by others is tightened to 0600 (and the fix is logged).
    """
    if configured:
        if len(configured) < 16:
            raise ValueError("CARENET_SESSION_SECRET must be at least 16 characters")
        return configured.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("session secret %s had mode %o; set to 0600", path, mode)
            path.chmod(0o600)
        text = path.read_text().strip()
        if len(text) >= 32:
            return text.encode()
        raise ValueError(f"session secret file {path} is damaged (too short): delete it to "
                         "generate a new one (every session ends)") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()


def _mac(secret: bytes, purpose: str, value: str) -> str:
    return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def cookie_value(secret: bytes, token: str) -> str:
    """The cookie of a session token: the token and its signature.

    >>> v = cookie_value(b"s" * 32, "tok")
    >>> token_of(b"s" * 32, v), token_of(b"x" * 32, v), token_of(b"s" * 32, "tok.00")
    ('tok', None, None)
    """
    return f"{token}.{_mac(secret, 'session', token)}"


def token_of(secret: bytes, value: str) -> str | None:
    """The session token of a cookie whose signature is right (None otherwise)."""
    token, _, signature = value.rpartition(".")
    if not token or len(value) > 200:
        return None
    if not hmac.compare_digest(signature, _mac(secret, "session", token)):
        return None
    return token


def csrf_pair(secret: bytes) -> tuple[str, str]:
    """(cookie nonce, form token) of a new login form."""
    nonce = secrets.token_urlsafe(16)
    return nonce, _mac(secret, "csrf", nonce)


def csrf_ok(secret: bytes, nonce: str | None, token: str | None) -> bool:
    """Whether the login form's token matches the nonce of its cookie.

    >>> n, t = csrf_pair(b"k" * 32)
    >>> csrf_ok(b"k" * 32, n, t), csrf_ok(b"k" * 32, n, "0" * 64), csrf_ok(b"k" * 32, None, t)
    (True, False, False)
    """
    if not nonce or not token:
        return False
    return hmac.compare_digest(token, _mac(secret, "csrf", nonce))


class SessionCache:
    """Checks session cookies against the server secret, then the store (a live session's
    key is cached for ``ttl`` seconds, the same revocation delay as the key cache).
    """

    def __init__(self, secret: bytes, ttl: float) -> None:
        self.secret = secret
        self.ttl = ttl
        self._items: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def start(self, store: RunStore, key: KeyInfo, lifetime: float) -> str:
        """A new session of ``key``: the cookie value to set."""
        return cookie_value(self.secret, store.create_session(key.id, lifetime))

    def verify(self, store: RunStore, value: str) -> KeyInfo | None:
        """The key of a live session cookie, else None (a bad signature costs no query)."""
        token = token_of(self.secret, value)
        if token is None:
            return None
        now = time.monotonic()
        hit = self._items.get(token)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        info = store.session_key(token)
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[token] = (now, info)
        return info

    def end(self, store: RunStore, value: str) -> None:
        """Log out: end the session in the store and forget it here."""
        token = token_of(self.secret, value)
        if token is None:
            return
        store.end_session(token)
        with self._lock:
            self._items.pop(token, None)
