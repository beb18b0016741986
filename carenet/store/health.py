"""A broken store explained in one line: read-only, full disk, damaged file, server down.

The database drivers report these as long chains of driver and SQLAlchemy exceptions (a
100-500 line traceback on the terminal). :func:`store_problem` turns one into a sentence saying
what is wrong with which store and what to do; :class:`StoreUnavailableError` carries it (the
CLI prints it as one line, the API answers 503, or 507 for a full disk). :func:`probe_write`
is what ``analyze`` runs *before* computing, so that a store that cannot take the run fails in
a second, not after the analysis.
"""

from __future__ import annotations

import errno
import shutil
from typing import Any

from carenet.errors import CarenetError
from carenet.store.db import describe_url, sqlite_path

MIN_FREE_BYTES = 16 * 1024 * 1024
"""Free space a SQLite store's disk must have before a run is computed for it."""


class StoreUnavailableError(CarenetError):
    """The store cannot be opened, read or written; the message says why in one line.

    ``kind``: ``read-only``, ``full``, ``damaged``, ``unreachable`` or ``error``.
    """

    def __init__(self, message: str, *, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("read-only", ("readonly", "read-only", "read only", "permission denied",
                   "unable to open database file", "access denied")),
    ("full", ("database or disk is full", "disk i/o error", "no space left", "file too large",
              "disk full", "could not extend file", "quota")),
    ("damaged", ("file is not a database", "malformed", "file is encrypted",
                 "not a database")),
    ("unreachable", ("connection refused", "could not connect", "connection failed",
                     "timeout expired", "timed out", "server closed the connection",
                     "name or service not known", "could not translate host name",
                     "no route to host", "the database system is starting up",
                     "terminating connection", "connection is bad")),
)
_ADVICE = {
    "read-only": "the store's file or directory is read-only for this user: fix the "
                 "permissions or point --db / CARENET_DB at a writable store",
    "full": "the store's disk is full (or a size limit was reached): free space, then retry",
    "damaged": "the store file is damaged (not a SQLite database): restore it from a backup "
               "(see README, 'Operating carenet safely')",
    "unreachable": "the database server does not answer: check that it runs and the URL's "
                   "host and port",
}
_ERRNOS = {errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EFBIG: "full",
           errno.EROFS: "read-only", errno.EACCES: "read-only", errno.EPERM: "read-only"}


def classify(exc: BaseException) -> str | None:
    """What kind of store failure ``exc`` (a driver, SQLAlchemy or OS error) reports; None if
    it is not a database or file-system error at all.

    >>> import sqlite3
    >>> classify(sqlite3.OperationalError("attempt to write a readonly database"))
    'read-only'
    >>> classify(sqlite3.DatabaseError("file is not a database")), classify(ValueError("x"))
    ('damaged', None)
    """
    if isinstance(exc, OSError) and exc.errno in _ERRNOS:
        return _ERRNOS[exc.errno]
    if not _is_db_error(exc):
        return None
    text = " ".join(str(e).lower() for e in _chain(exc))
    for kind, needles in _KINDS:
        if any(n in text for n in needles):
            return kind
    return "error"


def store_problem(exc: BaseException, url: str) -> StoreUnavailableError | None:
    """The one-line error for a broken store ``url`` from ``exc``, None when ``exc`` is not a
    database or file-system failure (a bug, which keeps its traceback).
    """
    kind = classify(exc)
    if kind is None:
        return None
    first = _first_line(exc)
    advice = _ADVICE.get(kind, "see the database's own message")
    return StoreUnavailableError(f"store {describe_url(url)}: {advice} ({first})", kind=kind)


def public_message(kind: str) -> str:
    """What an API client is told about a broken store (no URL, path or driver text).

    >>> public_message("damaged").startswith("the store is unavailable: the store file is")
    True
    """
    return "the store is unavailable: " + _ADVICE.get(kind, "see the server's log")


def probe_write(engine: Any, url: str) -> None:
    """Raise :class:`StoreUnavailableError` unless the store can take a write now.

    SQLite: a real (no-op) write transaction, which a read-only file, directory or mount
    refuses, and at least :data:`MIN_FREE_BYTES` free on its disk. PostgreSQL: a round trip
    and a writable (not read-only replica) session.
    """
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            if engine.dialect.name == "sqlite":
                cur.execute("PRAGMA user_version")
                version = int(cur.fetchone()[0])
                cur.execute(f"PRAGMA user_version = {version}")  # a write, value unchanged
                raw.commit()
            else:
                cur.execute("SHOW transaction_read_only")
                if str(cur.fetchone()[0]).lower() == "on":
                    raise StoreUnavailableError(
                        f"store {describe_url(url)}: the database is read-only (a replica or "
                        "default_transaction_read_only): use the primary", kind="read-only")
                raw.rollback()
            cur.close()
        finally:
            raw.close()
    except StoreUnavailableError:
        raise
    except Exception as exc:
        problem = store_problem(exc, url)
        if problem is None:
            raise
        raise problem from None
    path = sqlite_path(url)
    if path is not None:
        free = shutil.disk_usage(path.parent).free
        if free < MIN_FREE_BYTES:
            raise StoreUnavailableError(
                f"store {describe_url(url)}: {_ADVICE['full']} ({free:,} bytes free)",
                kind="full")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = getattr(cur, "orig", None) or cur.__cause__ or cur.__context__
    return seen


def _is_db_error(exc: BaseException) -> bool:
    for e in _chain(exc):
        module = type(e).__module__ or ""
        if module.startswith(("sqlalchemy", "sqlite3", "psycopg")) or isinstance(e, OSError):
            return True
    return False


def _first_line(exc: BaseException) -> str:
    """The driver's own message, first line, without SQLAlchemy's decoration."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
    return text[:300]
