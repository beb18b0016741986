"""API keys: create (the secret is shown once and stored hashed), list, revoke, verify."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.store.errors import RunStateError
from carenet.store.pool import StoreBase, now_iso
from carenet.store.schema import api_keys, sessions

ROLES = ("reader", "analyst", "admin")
"""API key roles, each allowed what the previous one is plus more."""


@dataclass(frozen=True)
class KeyInfo:
    """A verified API key (never holds the secret)."""

    id: str
    name: str
    role: str



class KeyRing(StoreBase):
    """The API keys of the store."""

    def create_key(self, role: str, name: str = "") -> tuple[KeyInfo, str]:
        """A new API key; returns its info and the secret token (shown once, stored hashed)."""
        if role not in ROLES:
            raise InvalidInputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        kid = "k" + secrets.token_hex(5)
        token = f"cn_{kid}_{secrets.token_urlsafe(24)}"
        with self.engine.begin() as conn:
            conn.execute(insert(api_keys).values(
                id=kid, name=name or f"{role} key", role=role, hash=hash_token(token),
                created=now_iso(), revoked=None))
        return KeyInfo(kid, name or f"{role} key", role), token

    def list_keys(self) -> list[dict[str, Any]]:
        """Every key's id, name, role, creation and revocation time (never the secret)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys.c.id, api_keys.c.name, api_keys.c.role,
                                       api_keys.c.created, api_keys.c.revoked)
                                .order_by(api_keys.c.created)).mappings().all()
        return [dict(r) for r in rows]

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Revoke a key (it stops working at once in new processes, within the key cache TTL
        in running ones).
        """
        with self.engine.begin() as conn:
            res = conn.execute(update(api_keys).where(api_keys.c.id == key_id,
                                                      api_keys.c.revoked.is_(None))
                               .values(revoked=now_iso()))
            row = conn.execute(select(api_keys.c.id, api_keys.c.name, api_keys.c.role,
                                      api_keys.c.created, api_keys.c.revoked)
                               .where(api_keys.c.id == key_id)).mappings().first()
        if row is None:
            raise RunNotFoundError(f"no API key {key_id!r}")
        if res.rowcount == 0 and row["revoked"] is None:  # pragma: no cover - race
            raise RunStateError(f"key {key_id} could not be revoked")
        return dict(row)

    def verify_key(self, token: str) -> KeyInfo | None:
        """The key a token belongs to, if it is valid and not revoked."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "cn" or not parts[1]:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == parts[1])).first()
        if row is None or row.revoked is not None:
            return None
        if not hmac.compare_digest(row.hash, hash_token(token)):
            return None
        return KeyInfo(row.id, row.name, row.role)


class SessionRing(StoreBase):
    """Browser sessions: server-side rows keyed by the hash of a random token."""

    def create_session(self, key_id: str, lifetime: float) -> str:
        """A new session of key ``key_id`` lasting ``lifetime`` seconds; returns its token
        (the store keeps only its hash). Expired and ended sessions are pruned on the way.
        """
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.expires < now - 86_400))
            conn.execute(insert(sessions).values(id=hash_token(token), key_id=key_id,
                                                 created=now_iso(), expires=now + lifetime,
                                                 ended=None))
        return token

    def session_key(self, token: str) -> KeyInfo | None:
        """The key of a live session (None if unknown, expired, ended or its key revoked)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_keys.c.id, api_keys.c.name, api_keys.c.role)
                .select_from(sessions.join(api_keys, api_keys.c.id == sessions.c.key_id))
                .where(sessions.c.id == hash_token(token), sessions.c.ended.is_(None),
                       sessions.c.expires > time.time(), api_keys.c.revoked.is_(None))
            ).first()
        return None if row is None else KeyInfo(row.id, row.name, row.role)

    def end_session(self, token: str) -> bool:
        """End a session (logout); whether a live one was ended."""
        with self.engine.begin() as conn:
            res = conn.execute(update(sessions).where(sessions.c.id == hash_token(token),
                                                      sessions.c.ended.is_(None))
                               .values(ended=now_iso()))
        return bool(res.rowcount)


def hash_token(token: str) -> str:
    """The stored form of an API key's token."""
    # Tokens carry 192 random bits, so a fast hash is safe (no dictionary to attack) and keeps
    # verification cheap on every request.
    return hashlib.sha256(token.encode()).hexdigest()
