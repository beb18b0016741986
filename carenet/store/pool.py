"""The store's database: engine, schema set-up and the fast path for single-row reads.

:class:`StoreBase` holds what every part of the store shares (the engine, the URL, the caches
of run views and of the latest run id, a lock) and a bounded pool of plain driver connections
for point reads (:meth:`StoreBase._fast_one`). The parts (:mod:`~carenet.store.runs`,
:mod:`~carenet.store.publish`, :mod:`~carenet.store.reads`, :mod:`~carenet.store.keys`,
:mod:`~carenet.store.uploads`) build on it; :class:`carenet.store.RunStore` combines them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from carenet.errors import InvalidInputError
from carenet.store.db import make_engine, normalize_url, sqlite_path, sqlite_pragmas
from carenet.store.health import probe_write, store_problem
from carenet.store.schema import metadata, runs
from carenet.store.types import RunView


def now_iso() -> str:
    """The current UTC time as ISO 8601 text (what the store keeps)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def owner_id() -> str:
    """``host:pid`` of this process: who runs or supervises a run."""
    return f"{socket.gethostname()}:{os.getpid()}"



class StoreBase:
    """Engine, caches and the fast read path shared by every part of the store.

    ``keep_runs``: how many published runs to keep (older ones are dropped after each
    publication unless marked kept). ``latest_ttl``: seconds for which the id of the latest
    published run is cached in this process (0: look it up on every read).
    """

    def __init__(self, url: str, *, keep_runs: int = 5, latest_ttl: float = 0.0,
                 pool_size: int = 8, create: bool = True, read_only: bool = False) -> None:
        if keep_runs < 1:
            raise InvalidInputError(f"keep_runs must be at least 1, not {keep_runs}")
        self.url = normalize_url(url)
        self.read_only = read_only
        self.engine = make_engine(self.url, pool_size=pool_size, read_only=read_only)
        self.backend = self.engine.dialect.name
        self.keep_runs = keep_runs
        self.latest_ttl = latest_ttl
        self._views: dict[str, RunView] = {}
        self._latest: tuple[float, str | None] = (0.0, None)
        self._lock = threading.Lock()
        self._fast_idle: list[Any] = []
        self._fast_open = 0
        self._fast_max = pool_size
        if create and not read_only:
            self.create_schema()
        elif read_only:
            self.ping()

    # ------------------------------------------------------------------ set-up
    def create_schema(self) -> None:
        """Create the fixed tables if they do not exist (idempotent); a store that cannot be
        opened is one :class:`~carenet.store.health.StoreUnavailableError` line.
        """
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except (OperationalError, ProgrammingError) as exc:
            # two processes creating the schema at once: the loser sees "already exists"
            if "already exists" not in str(exc):
                self._unavailable(exc)
        except (DBAPIError, OSError) as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: BaseException) -> None:
        """Re-raise a failure to open the store as its one-line error (or as it is)."""
        self.engine.dispose()
        problem = store_problem(exc, self.url)
        if problem is None:
            raise exc
        raise problem from None

    def check_writable(self) -> None:
        """Raise :class:`~carenet.store.health.StoreUnavailableError` unless a run could be
        published now (called before an analysis is computed for this store).
        """
        probe_write(self.engine, self.url)

    def close(self) -> None:
        """Release every pooled and fast-path connection."""
        with self._lock:
            for conn in self._fast_idle:
                with contextlib.suppress(Exception):  # closing a broken connection
                    conn.close()
            self._fast_idle.clear()
            self._fast_open = 0
        self.engine.dispose()

    # ------------------------------------------------------------------ fast path
    def _fast_take(self) -> Any:
        """An idle autocommit driver connection for a single-row read, a new one while fewer
        than ``pool_size`` are open, else None (the caller uses the SQLAlchemy pool).

        SQLAlchemy's pooled connection costs a transaction (BEGIN ... ROLLBACK) and ~150 us
        of Python per query; a point read over a plain driver connection costs ~15 us on
        SQLite and one round trip on PostgreSQL (measured in benchmarks/README.md). The
        number of such connections is bounded, so thread pools cannot exhaust the server's
        connection slots.
        """
        with self._lock:
            if self._fast_idle:
                return self._fast_idle.pop()
            if self._fast_open >= self._fast_max:
                return None
            self._fast_open += 1
        try:
            dialect = self.engine.dialect
            cargs, cparams = dialect.create_connect_args(self.engine.url)
            if self.backend == "sqlite" and sqlite_path(self.url) is None:
                return self.engine.raw_connection().driver_connection  # in-memory: shared
            if self.backend == "sqlite":
                conn = dialect.loaded_dbapi.connect(*cargs, **cparams, timeout=60,
                                                    isolation_level=None)
                sqlite_pragmas(conn, None)
                return conn
            return dialect.loaded_dbapi.connect(*cargs, **cparams, autocommit=True)
        except BaseException:
            with self._lock:
                self._fast_open -= 1
            raise

    def _fast_give(self, conn: Any, *, broken: bool = False) -> None:
        with self._lock:
            if broken:
                self._fast_open -= 1
            else:
                self._fast_idle.append(conn)
        if broken:
            with contextlib.suppress(Exception):
                conn.close()

    def _fast_one(self, sql: str, params: tuple[Any, ...]) -> Any:
        """First column of the first row of a query on the fast path (None if no row)."""
        row = self._fast_row(sql, params)
        return None if row is None else row[0]

    def _fast_row(self, sql: str, params: tuple[Any, ...]) -> Any:
        """The first row of a query on the fast path (None if no row)."""
        if self.backend == "postgresql":
            sql = sql.replace("?", "%s")
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        for attempt in (0, 1):
            conn = self._fast_take()
            try:
                if conn is None:  # every fast connection busy: the regular pool
                    with self.engine.connect() as sa_conn:
                        row = sa_conn.exec_driver_sql(sql, params).first()
                else:
                    cur = conn.execute(sql, params)
                    row = cur.fetchone()
                    cur.close()
                    self._fast_give(conn)
                return row
            except (dbapi_error, DBAPIError) as exc:
                msg = str(exc).lower()
                gone = is_disconnect(exc)
                if conn is not None:
                    self._fast_give(conn, broken=gone)
                if "no such table" in msg or "does not exist" in msg:
                    raise TableGoneError(str(exc)) from exc
                if attempt == 1 or not gone:
                    raise
        return None  # pragma: no cover - unreachable

    def ping(self) -> None:
        """Raise (one line) if the database cannot answer a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(func.count()).select_from(runs).where(runs.c.seq.is_(None)))
        except (DBAPIError, OSError) as exc:
            self._unavailable(exc)


class TableGoneError(Exception):
    """A run's table vanished (dropped by retention) under a fast-path read."""


def is_disconnect(exc: Exception) -> bool:
    """Whether a driver error means the connection is gone (worth one retry)."""
    msg = str(exc).lower()
    return any(w in msg for w in ("closed", "terminat", "connection", "server"))


def missing_table(exc: DBAPIError) -> bool:
    """Whether a database error says a table does not exist (dropped by retention)."""
    msg = str(exc.orig).lower()
    return "no such table" in msg or "does not exist" in msg
