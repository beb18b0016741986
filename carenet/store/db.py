"""Database engines for the run store: a SQLite file by default, PostgreSQL by URL.

Both go through SQLAlchemy Core with the same tables and queries; only the connection set-up
(SQLite pragmas) and the bulk loader (``executemany`` vs ``COPY``) differ per dialect.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from carenet.errors import InvalidInputError

DB_ENV = "CARENET_DB"
HOME_ENV = "CARENET_HOME"


def data_home() -> Path:
    """Where carenet keeps its default store and uploads: ``$CARENET_HOME``, else
    ``$XDG_DATA_HOME/carenet``, else ``~/.local/share/carenet``.
    """
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "carenet"


def default_db_url() -> str:
    """``$CARENET_DB`` when set, else a SQLite file under :func:`data_home`."""
    env = os.environ.get(DB_ENV)
    if env:
        return normalize_url(env)
    return f"sqlite:///{data_home() / 'carenet.db'}"


def normalize_url(url: str) -> str:
    """Accept a SQLAlchemy URL, a plain ``postgresql://`` URL or a file path.

    >>> normalize_url("postgresql://u@h/db")
    'postgresql+psycopg://u@h/db'
    >>> normalize_url("/tmp/x.db")
    'sqlite:////tmp/x.db'
    """
    text = url.strip()
    if not text:
        raise InvalidInputError("empty database URL")
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    for plain in ("postgresql://", "postgres://"):
        if text.startswith(plain):
            return "postgresql+psycopg://" + text[len(plain):]
    return text


def describe_url(url: str) -> str:
    """The URL with any password masked, for printing."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases or in-memory SQLite)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def make_engine(url: str, *, pool_size: int = 8, read_only: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get WAL mode so readers never wait for a writer.

    ``read_only``: a SQLite file is opened read-only and immutable (no -wal or -shm file is
    created), so that a store on a read-only directory or mount can still be read (``carenet
    keys list``); nothing may write to it meanwhile.
    """
    url = normalize_url(url)
    path = sqlite_path(url) if url.startswith("sqlite") else None
    if read_only and path is not None:
        engine = create_engine(f"sqlite:///file:{path}?mode=ro&immutable=1&uri=true",
                               connect_args={"check_same_thread": False}, poolclass=StaticPool)
        return engine
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInputError(f"not a database URL: {url!r} ({exc})") from None
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        path = sqlite_path(url)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 60}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
        else:  # in-memory: one shared connection, or each would see its own empty database
            kwargs["poolclass"] = StaticPool
    elif backend == "postgresql":
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
        kwargs["pool_pre_ping"] = False
    else:
        raise InvalidInputError(
            f"unsupported database {backend!r}; use a SQLite file or a PostgreSQL URL"
        )
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise InvalidInputError(f"cannot use database URL {describe_url(url)}: {exc}") from exc
    if backend == "sqlite":
        event.listen(engine, "connect", sqlite_pragmas)
    return engine


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Set the pragmas every SQLite connection of the store uses."""
    # WAL: readers see the last committed state while a run is being written; NORMAL sync is
    # durable at each checkpoint and fast; mmap makes point reads on a large store cheap.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA mmap_size=1073741824")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()
