"""The run store: runs, their per-customer and per-community results, ties, API keys, uploads.

One class, :class:`RunStore`, over SQLAlchemy Core; the same code serves a SQLite file and a
PostgreSQL database. See :mod:`carenet.store.schema` for the tables and why each published run
owns its own tables.

Publication is atomic: a run's tables are written while its status is ``publishing`` (no reader
resolves such a run), then one transaction flips it to ``published`` with a new sequence number.
The latest published run is the one with the highest sequence number, so a reader sees either
the previous run or the new one, never a mix; a failure drops the half-written tables and leaves
the published run in place.

>>> import carenet, tempfile, os
>>> store = RunStore(f"sqlite:///{tempfile.mkdtemp()}/s.db")
>>> run_id = store.publish(carenet.analyze(carenet.example_log()))
>>> view = store.resolve(None)
>>> view.run_id == run_id, store.customer(view, "ann") is not None
(True, True)
>>> store.close()
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import (
    Connection,
    MetaData,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.schema import CreateTable

from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.graphs.model import CustomerGraph
from carenet.store import records as rec
from carenet.store.db import _sqlite_pragmas, make_engine, normalize_url, sqlite_path
from carenet.store.errors import (
    MissingTableError,
    RunNotReadyError,
    RunStateError,
    UnknownFieldError,
)
from carenet.store.schema import (
    api_keys,
    customers_table,
    metadata,
    rows_table,
    runs,
    table_key,
    ties_table,
    uploads,
)

if TYPE_CHECKING:  # pragma: no cover
    from carenet.pipeline import AnalysisRun

ROLES = ("reader", "analyst", "admin")
"""API key roles, each allowed what the previous one is plus more."""
ACTIVE = ("queued", "running", "publishing")
FINAL = ("published", "failed", "cancelled")
_CHUNK = 20_000


def now_iso() -> str:
    """The current UTC time as ISO 8601 text (what the store keeps)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def owner_id() -> str:
    """``host:pid`` of this process: who runs or supervises a run."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class KeyInfo:
    """A verified API key (never holds the secret)."""

    id: str
    name: str
    role: str


@dataclass
class RunView:
    """A published run as the read paths see it: its tables and its column catalogue."""

    run_id: str
    key: str
    columns: list[dict[str, Any]]
    tables: list[str]
    graph: dict[str, Any]
    customers: Table
    ties: Table
    rows: Table
    pseudonymized: bool = False
    stmts: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> dict[str, Any] | None:
        """The catalogue entry of customer column ``name`` (None if the run lacks it)."""
        return next((c for c in self.columns if c["name"] == name), None)

    @property
    def numeric(self) -> list[str]:
        """Names of the numeric (sortable, filterable) customer columns."""
        return [c["name"] for c in self.columns
                if c["type"] in ("int", "float") and c["sql"] and c["role"] != "attribute"]

    @property
    def default_sort(self) -> str | None:
        """The sort key used when none is given: the first of priority, influence, ..."""
        num = set(self.numeric)
        return next((c for c in rec.RANK_PREFERENCE if c in num), None)


@dataclass(frozen=True)
class Page:
    """One page of a ranked customer list."""

    run_id: str
    sort: str
    order: str
    items: list[str]
    next_cursor: str | None


class RunStore:
    """Runs and their results in a SQL database (SQLite file or PostgreSQL).

    ``keep_runs``: how many published runs to keep (older ones are dropped after each
    publication unless marked kept). ``latest_ttl``: seconds for which the id of the latest
    published run is cached in this process (0: look it up on every read).
    """

    def __init__(self, url: str, *, keep_runs: int = 5, latest_ttl: float = 0.0,
                 pool_size: int = 8, create: bool = True) -> None:
        if keep_runs < 1:
            raise InvalidInputError(f"keep_runs must be at least 1, not {keep_runs}")
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, pool_size=pool_size)
        self.backend = self.engine.dialect.name
        self.keep_runs = keep_runs
        self.latest_ttl = latest_ttl
        self._views: dict[str, RunView] = {}
        self._latest: tuple[float, str | None] = (0.0, None)
        self._lock = threading.Lock()
        self._fast_idle: list[Any] = []
        self._fast_open = 0
        self._fast_max = pool_size
        if create:
            self.create_schema()

    # ------------------------------------------------------------------ set-up
    def create_schema(self) -> None:
        """Create the fixed tables if they do not exist (idempotent)."""
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except (OperationalError, ProgrammingError) as exc:
            # two processes creating the schema at once: the loser sees "already exists"
            if "already exists" not in str(exc):
                raise

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
                _sqlite_pragmas(conn, None)
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
                return None if row is None else row[0]
            except (dbapi_error, DBAPIError) as exc:
                msg = str(exc).lower()
                gone = _is_disconnect(exc)
                if conn is not None:
                    self._fast_give(conn, broken=gone)
                if "no such table" in msg or "does not exist" in msg:
                    raise _TableGoneError(str(exc)) from exc
                if attempt == 1 or not gone:
                    raise
        return None  # pragma: no cover - unreachable

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as conn:
            conn.execute(select(func.count()).select_from(runs).where(runs.c.seq.is_(None)))

    # ------------------------------------------------------------------ runs: lifecycle
    def create_run(self, request: dict[str, Any], *, created_by: str | None = None,
                   kept: bool = False, run_id: str | None = None) -> dict[str, Any]:
        """Register a queued run (the worker will claim it); returns its row."""
        rid = run_id or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        row = {"id": rid, "status": "queued", "table_key": table_key(rid), "kept": kept,
               "created": now_iso(), "request": request, "created_by": created_by,
               "cancel_requested": False,
               "progress": {"step": "queued", "done": None, "total": None, "fraction": 0.0}}
        with self.engine.begin() as conn:
            conn.execute(insert(runs).values(**row))
        # as inserted (a worker may claim it before a re-read could return it as queued)
        return {**{c.name: None for c in runs.columns}, **row, "latest": False}

    def claim_next(self, owner: str) -> dict[str, Any] | None:
        """Atomically take the oldest queued run for ``owner`` (None if there is none)."""
        with self.engine.begin() as conn:
            ids = conn.execute(select(runs.c.id).where(runs.c.status == "queued")
                               .order_by(runs.c.created).limit(5)).scalars().all()
            for rid in ids:
                res = conn.execute(
                    update(runs).where(runs.c.id == rid, runs.c.status == "queued")
                    .values(status="running", owner=owner, started=now_iso(),
                            heartbeat=time.time(),
                            progress={"step": "starting", "done": None, "total": None,
                                      "fraction": 0.0}))
                if res.rowcount == 1:
                    break
            else:
                return None
        return self.get_run(rid)

    def report_progress(self, run_id: str, step: str, done: float | None,
                        total: float | None, fraction: float) -> bool:
        """Record progress and a heartbeat; returns whether cancellation was requested."""
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                progress={"step": step, "done": done, "total": total,
                          "fraction": round(fraction, 4)},
                heartbeat=time.time()))
            flag = conn.execute(select(runs.c.cancel_requested)
                                .where(runs.c.id == run_id)).scalar()
        return bool(flag)

    def beat(self, run_ids: Sequence[str]) -> None:
        """Refresh the heartbeat of runs this process supervises."""
        if not run_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id.in_(list(run_ids)))
                         .values(heartbeat=time.time()))

    def request_cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a queued run now, or ask the worker to stop a running one."""
        row = self.get_run(run_id)
        if row["status"] in FINAL:
            raise RunStateError(
                f"run {run_id} is already {row['status']}; only queued or running runs can "
                "be cancelled")
        with self.engine.begin() as conn:
            res = conn.execute(update(runs).where(runs.c.id == run_id,
                                                  runs.c.status == "queued")
                               .values(status="cancelled", finished=now_iso(),
                                       error="cancelled before it started"))
            if res.rowcount == 0:
                conn.execute(update(runs).where(runs.c.id == run_id,
                                                runs.c.status.in_(ACTIVE))
                             .values(cancel_requested=True))
        return self.get_run(run_id)

    def finish_unpublished(self, run_id: str, status: str, error: str) -> None:
        """Mark an unpublished run failed or cancelled and drop whatever it had written."""
        row = self._run_row(run_id)
        if row is None or row["status"] not in ACTIVE:
            return
        with self.engine.begin() as conn:
            res = conn.execute(update(runs).where(runs.c.id == run_id,
                                                  runs.c.status.in_(ACTIVE))
                               .values(status=status, error=error, finished=now_iso()))
        if res.rowcount == 1:
            self._drop_run_tables(row["table_key"])

    def recover(self, *, stale_after: float = 60.0,
                alive: Callable[[str], bool] | None = None) -> list[str]:
        """Mark failed the runs whose worker died: its process is gone from this host, or it
        sent no heartbeat for ``stale_after`` seconds. Their partial tables are dropped, the
        published run stays. Returns the ids marked failed.
        """
        alive = alive or _owner_alive
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs.c.id, runs.c.owner, runs.c.heartbeat, runs.c.status)
                                .where(runs.c.status.in_(("running", "publishing")))).all()
        failed = []
        cutoff = time.time() - stale_after
        for rid, owner, beat, _status in rows:
            if (owner and not alive(owner)) or (beat or 0) < cutoff:
                self.finish_unpublished(
                    rid, "failed", "interrupted: the service or its worker stopped while the "
                    "run was computing; the previously published run is unchanged")
                failed.append(rid)
        return failed

    def set_kept(self, run_id: str, kept: bool) -> dict[str, Any]:
        """Mark a run kept (never dropped by retention) or not."""
        self.get_run(run_id)
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(kept=kept))
        return self.get_run(run_id)

    # ------------------------------------------------------------------ runs: publication
    def publish(self, run: AnalysisRun, *, run_id: str | None = None, kept: bool = False,
                progress: Callable[[str, float], None] | None = None) -> str:
        """Write ``run`` and make it the latest published run, atomically; returns its id.

        ``run_id`` names a run registered with :meth:`create_run` (the API's runs); by default
        the analysis' own id is used. ``progress(step, fraction)`` is called as tables fill.
        """
        rid = run_id or run.run_id
        row = self._run_row(rid)
        if row is not None and row["status"] == "published":
            raise RunStateError(f"run {rid} is already published")
        key = table_key(rid)
        if row is None:
            with self.engine.begin() as conn:
                conn.execute(insert(runs).values(
                    id=rid, status="publishing", table_key=key, kept=kept,
                    created=run.created, started=run.created, owner=owner_id(),
                    heartbeat=time.time(), cancel_requested=False, request=None,
                    progress={"step": "publish", "done": None, "total": None,
                              "fraction": 0.9}))
        else:
            key = row["table_key"]
            with self.engine.begin() as conn:
                res = conn.execute(update(runs).where(runs.c.id == rid,
                                                      runs.c.status.in_(("running", "queued")))
                                   .values(status="publishing", heartbeat=time.time()))
            if res.rowcount != 1:
                raise RunStateError(
                    f"run {rid} is {row['status']} (failed, cancelled or interrupted while it "
                    "computed); it is not published")
        report = progress or (lambda step, fraction: None)
        try:
            catalogue = rec.column_catalogue(run.customers)
            cols = [c.to_dict() for c in catalogue]
            meta = MetaData()
            ct = customers_table(key, cols, meta)
            tt = ties_table(key, meta)
            rt = rows_table(key, meta)
            self._drop_run_tables(key)
            with self.engine.begin() as conn:
                for t in (ct, tt, rt):
                    conn.execute(CreateTable(t))
            report("publish customers", 0.0)
            self._load_customers(ct, run, catalogue)
            report("publish ties", 0.5)
            out_ties, in_ties = rec.tie_rows(run.graph)
            ins = in_ties if in_ties is not None else [None] * len(out_ties)
            self._bulk(tt, ["pos", "out_ties", "in_ties"],
                       ((i, o, n) for i, (o, n) in enumerate(zip(out_ties, ins, strict=True))
                        if o is not None or n is not None))
            del out_ties, in_ties, ins
            report("publish tables", 0.8)
            self._load_rows(rt, run)
            report("publish indexes", 0.9)
            with self.engine.begin() as conn:
                for t in (ct, tt, rt):
                    for ix in t.indexes:
                        ix.create(conn)
                    conn.execute(text(f'ANALYZE "{t.name}"'))
            tables = sorted(run.tables)
            if "community" in run.customers.columns and "communities" not in tables:
                tables = sorted([*tables, "communities"])
            g = run.graph
            graph_meta = {"channel_names": list(g.channel_names), "directed": bool(g.directed),
                          "customers": int(g.n_customers), "ties": int(g.n_ties)}
            info = run.to_dict()
            with self.engine.begin() as conn:
                flipped = conn.execute(update(runs).where(
                    runs.c.id == rid, runs.c.status == "publishing").values(
                    status="published", seq=time.time_ns() // 1000, published=now_iso(),
                    finished=run.finished, parameters=info["parameters"],
                    inputs=info["inputs"], timings=info["timings"], counts=info["counts"],
                    versions=info["versions"], summary=info["summary"],
                    results=info["results"], columns=cols, tables=tables, graph=graph_meta,
                    error=None, heartbeat=time.time(),
                    progress={"step": "published", "done": None, "total": None,
                              "fraction": 1.0}))
                if flipped.rowcount != 1:
                    raise RunStateError(
                        f"run {rid} was marked failed or cancelled while it was being "
                        "published; it is not published")
        except BaseException as exc:
            self._drop_run_tables(key)
            with self.engine.begin() as conn:
                conn.execute(update(runs).where(runs.c.id == rid,
                                                runs.c.status != "published").values(
                    status="failed", finished=now_iso(),
                    error=f"publication failed: {type(exc).__name__}: {exc}"))
            raise
        self._latest = (0.0, None)
        self.apply_retention()
        return rid

    def _load_customers(self, table: Table, run: AnalysisRun,
                        catalogue: list[rec.ColumnInfo]) -> None:
        frame = run.customers.reset_index(drop=True)
        ids = frame["customer_id"].astype(str)
        if ids.duplicated().any():
            raise InvalidInputError("customer ids of the run are not unique")
        pct = rec.percentiles(frame, catalogue)
        typed = [c for c in catalogue if c.sql]
        names = ["customer_id", "pos", "record", *[c.sql for c in typed if c.sql]]

        def rows() -> Iterator[tuple[Any, ...]]:
            for a in range(0, len(frame), _CHUNK):
                part = frame.iloc[a:a + _CHUNK]
                docs = rec.customer_documents(part, catalogue, pct.iloc[a:a + _CHUNK])
                cols = [rec.sql_values(part, c) for c in typed]
                yield from zip(ids.iloc[a:a + _CHUNK].tolist(), range(a, a + len(part)), docs,
                               *cols, strict=True)

        self._bulk(table, names, rows())

    def _load_rows(self, table: Table, run: AnalysisRun) -> None:
        rows: list[tuple[Any, ...]] = []
        for name, frame in run.tables.items():
            if name == "communities" and "community" in run.customers.columns:
                continue
            kc = rec.key_column(name, frame)
            keys = (frame[kc].astype(str).tolist() if kc else [None] * len(frame))
            for i, (k, doc) in enumerate(zip(keys, rec.table_records(frame), strict=True)):
                rows.append((name, i, k, doc))
        if "community" in run.customers.columns:
            # largest communities first: the order of GET /v1/communities
            docs = rec.community_documents(run.customers, run.tables.get("communities"),
                                           run.graph)
            rows.extend(("communities", i, k, d) for i, (k, d) in enumerate(docs))
        self._bulk(table, ["tbl", "row_no", "key", "record"], rows)

    def _bulk(self, table: Table, names: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
        """Fast bulk insert through the driver: executemany on SQLite, COPY on PostgreSQL."""
        cols = ", ".join(f'"{n}"' for n in names)
        it = iter(rows)
        while True:
            chunk = [r for _, r in zip(range(_CHUNK), it, strict=False)]
            if not chunk:
                break
            with self.engine.begin() as conn:
                raw = conn.connection.driver_connection
                if self.backend == "postgresql":
                    with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
                            f'COPY "{table.name}" ({cols}) FROM STDIN') as cp:
                        for r in chunk:
                            cp.write_row(r)
                else:
                    marks = ", ".join("?" * len(names))
                    cur = raw.cursor()  # type: ignore[union-attr]
                    cur.executemany(f'INSERT INTO "{table.name}" ({cols}) VALUES ({marks})',
                                    chunk)
                    cur.close()

    def _drop_run_tables(self, key: str) -> None:
        with self.engine.begin() as conn:
            for suffix in ("customers", "ties", "rows"):
                conn.execute(text(f'DROP TABLE IF EXISTS "cn_{key}_{suffix}"'))

    def apply_retention(self) -> list[str]:
        """Drop published runs beyond the newest ``keep_runs`` (kept runs never count)."""
        with self.engine.connect() as conn:
            published = conn.execute(
                select(runs.c.id, runs.c.table_key, runs.c.kept)
                .where(runs.c.status == "published").order_by(runs.c.seq.desc())).all()
        dropped = []
        unkept = [r for r in published if not r.kept]
        for r in unkept[self.keep_runs:]:
            with self.engine.begin() as conn:
                conn.execute(delete(runs).where(runs.c.id == r.id))
            self._drop_run_tables(r.table_key)
            self._views.pop(r.id, None)
            dropped.append(r.id)
        return dropped

    # ------------------------------------------------------------------ runs: reading
    def _run_row(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
        return dict(row) if row is not None else None

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run's row; unknown ids raise :class:`RunNotFoundError`."""
        row = self._run_row(run_id)
        if row is None:
            raise RunNotFoundError(f"no run {run_id!r}")
        row["latest"] = row["id"] == self.latest_id(fresh=True)
        return row

    def list_runs(self, *, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        """Runs, newest first."""
        q = select(runs).order_by(runs.c.created.desc(), runs.c.id.desc()).limit(limit)
        if status is not None:
            q = q.where(runs.c.status == status)
        latest = self.latest_id(fresh=True)
        with self.engine.connect() as conn:
            out = [dict(r) for r in conn.execute(q).mappings().all()]
        for r in out:
            r["latest"] = r["id"] == latest
        return out

    def latest_id(self, *, fresh: bool = False) -> str | None:
        """Id of the latest published run (cached for ``latest_ttl`` seconds)."""
        stamp, rid = self._latest
        if not fresh and self.latest_ttl > 0 and time.monotonic() - stamp < self.latest_ttl:
            return rid
        rid = self._fast_one(
            "SELECT id FROM carenet_runs WHERE status = 'published' "
            "ORDER BY seq DESC LIMIT 1", ())
        self._latest = (time.monotonic(), rid)
        return rid

    def resolve(self, run_id: str | None) -> RunView:
        """The published run to read: ``run_id``, or the latest when None."""
        rid = run_id if run_id is not None else self.latest_id()
        if rid is None:
            raise RunNotFoundError(
                "no published run yet: publish one with `carenet analyze LOGS --db URL` or "
                "POST /v1/runs")
        view = self._views.get(rid)
        if view is not None:
            return view
        row = self._run_row(rid)
        if row is None:
            raise RunNotFoundError(f"no run {rid!r}")
        if row["status"] != "published":
            raise RunNotReadyError(
                f"run {rid} is {row['status']}, not published; its results cannot be read"
                + (f" ({row['error']})" if row.get("error") else ""), status=row["status"])
        meta = MetaData()
        key = row["table_key"]
        view = RunView(run_id=rid, key=key, columns=row["columns"] or [],
                       tables=row["tables"] or [], graph=row["graph"] or {},
                       customers=customers_table(key, row["columns"] or [], meta),
                       ties=ties_table(key, meta), rows=rows_table(key, meta),
                       pseudonymized=bool(((row["parameters"] or {}).get("graph") or {})
                                          .get("pseudonymize", False)))
        with self._lock:
            if len(self._views) > 32:
                self._views.clear()
            self._views[rid] = view
        return view

    def forget(self, run_id: str) -> None:
        """Drop cached knowledge of a run (after its tables vanished)."""
        self._views.pop(run_id, None)
        self._latest = (0.0, None)

    # ------------------------------------------------------------------ customers
    def customer(self, view: RunView, customer_id: str) -> str | None:
        """The stored JSON document of one customer (without the run id), or None."""
        sql = f'SELECT record FROM "{view.customers.name}" WHERE customer_id = ?'
        try:
            return self._fast_one(sql, (customer_id,))  # type: ignore[no-any-return]
        except _TableGoneError as exc:
            self.forget(view.run_id)
            raise RunNotFoundError(
                f"run {view.run_id} was removed by retention while being read; "
                "repeat the request") from exc

    def customers_page(
        self, view: RunView, *, sort: str | None = None, order: str = "desc",
        community: str | None = None, role: str | None = None,
        bounds: dict[str, tuple[float | None, float | None]] | None = None,
        limit: int = 50, cursor: str | None = None,
    ) -> Page:
        """A ranked, filtered page of customers (keyset pagination on (sort key, id))."""
        if order not in ("asc", "desc"):
            raise InvalidInputError(f"order must be asc or desc, not {order!r}")
        numeric = view.numeric
        key = sort or view.default_sort
        if key is None:
            raise UnknownFieldError(
                f"run {view.run_id} has no numeric column to rank by", available=numeric,
                field="sort")
        if key not in numeric:
            raise UnknownFieldError(
                f"run {view.run_id} cannot be sorted by {key!r}; sortable columns: "
                f"{', '.join(numeric) or 'none'}", available=numeric, field="sort")
        t = view.customers
        col = t.c[view.column(key)["sql"]]  # type: ignore[index]
        conds: list[Any] = [col.is_not(None)]
        for name, value in (("community", community), ("role", role)):
            if value is None:
                continue
            info = view.column(name)
            if info is None or not info["sql"]:
                raise UnknownFieldError(
                    f"run {view.run_id} has no {name} column (its analysis did not compute "
                    f"{name}s); columns: {', '.join(c['name'] for c in view.columns)}",
                    available=[c["name"] for c in view.columns], field=name)
            conds.append(t.c[info["sql"]] == str(value))
        for name, (lo, hi) in (bounds or {}).items():
            if name not in numeric:
                raise UnknownFieldError(
                    f"run {view.run_id} has no numeric column {name!r} to filter on; "
                    f"numeric columns: {', '.join(numeric) or 'none'}",
                    available=numeric, field=f"min_{name}")
            c = t.c[view.column(name)["sql"]]  # type: ignore[index]
            if lo is not None:
                conds.append(c >= lo)
            if hi is not None:
                conds.append(c <= hi)
        fingerprint = hashlib.sha1(json.dumps(
            [key, order, community, role, sorted((bounds or {}).items())],
            default=str).encode()).hexdigest()[:10]
        if cursor is not None:
            cur = decode_cursor(cursor)
            if cur.get("r") != view.run_id or cur.get("f") != fingerprint:
                raise InvalidInputError(
                    "this cursor belongs to another query or run; repeat the query that "
                    "returned it (same run, sort, order and filters)")
            last = tuple_(col, t.c.customer_id)
            after = tuple_(bindparam("cv", cur["v"]), bindparam("ci", cur["id"]))
            conds.append(last < after if order == "desc" else last > after)
        ordering = ([col.desc(), t.c.customer_id.desc()] if order == "desc"
                    else [col.asc(), t.c.customer_id.asc()])
        q = (select(t.c.record, col, t.c.customer_id).where(and_(*conds))
             .order_by(*ordering).limit(limit + 1))
        with self._reading(view) as conn:
            rows = conn.execute(q).all()
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = None
        if more and rows:
            v, cid = rows[-1][1], rows[-1][2]
            nxt = encode_cursor({"r": view.run_id, "f": fingerprint, "v": v, "id": cid})
        return Page(run_id=view.run_id, sort=key, order=order, items=[r[0] for r in rows],
                    next_cursor=nxt)

    def neighbors(self, view: RunView, customer_id: str, *, limit: int = 10
                  ) -> list[dict[str, Any]] | None:
        """The strongest ties of a customer, both directions merged (None: unknown id)."""
        t = view.customers
        with self._reading(view) as conn:
            pos = conn.execute(select(t.c.pos).where(t.c.customer_id == customer_id)).scalar()
            if pos is None:
                return None
            tie = conn.execute(select(view.ties.c.out_ties, view.ties.c.in_ties)
                               .where(view.ties.c.pos == pos)).first()
            out = rec.unpack_ties(tie[0] if tie else None)
            inn = rec.unpack_ties(tie[1] if tie else None)
            directed = bool(view.graph.get("directed", True))
            n_out = len(out[0])
            nbr = np.concatenate([out[0], inn[0]])
            if len(nbr) == 0:
                return []
            uniq, inv = np.unique(nbr, return_inverse=True)
            is_out = np.arange(len(nbr)) < n_out
            w_out = np.bincount(inv, weights=np.where(is_out, np.concatenate([out[1], inn[1]]),
                                                     0.0), minlength=len(uniq))
            w_in = np.bincount(inv, weights=np.where(~is_out, np.concatenate([out[1], inn[1]]),
                                                    0.0), minlength=len(uniq))
            cnt = np.bincount(inv, weights=np.concatenate([out[2], inn[2]]).astype(float),
                              minlength=len(uniq))
            masks = np.zeros(len(uniq), np.int64)
            np.bitwise_or.at(masks, inv, np.concatenate([out[3], inn[3]]).astype(np.int64))
            total = w_out + w_in
            order = np.lexsort((uniq, -total))[:limit]
            chosen = uniq[order].tolist()
            ids = dict(conn.execute(select(t.c.pos, t.c.customer_id)
                                    .where(t.c.pos.in_(chosen))).all())
        names = view.graph.get("channel_names", [])
        result = []
        for j in order.tolist():
            item: dict[str, Any] = {
                "customer_id": ids.get(int(uniq[j]), str(uniq[j])),
                "weight": float(total[j]),
                "interactions": int(cnt[j]),
                "channels": [nm for b, nm in enumerate(names) if int(masks[j]) >> b & 1],
            }
            if directed:
                item["weight_out"] = float(w_out[j])
                item["weight_in"] = float(w_in[j])
                item["direction"] = ("both" if w_out[j] > 0 and w_in[j] > 0 else
                                     "out" if w_out[j] > 0 else "in")
            else:
                item["direction"] = "both"
            result.append(item)
        return result

    def load_graph(self, view: RunView) -> CustomerGraph:
        """The run's :class:`CustomerGraph` rebuilt from its packed out-ties (for what-if
        simulations); the last one is cached.
        """
        cached = view.stmts.get("graph")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        t = view.customers
        with self._reading(view) as conn:
            ids = conn.execute(select(t.c.customer_id).order_by(t.c.pos)).scalars().all()
            rows = conn.execute(select(view.ties.c.pos, view.ties.c.out_ties)
                                .order_by(view.ties.c.pos)).all()
        n = len(ids)
        deg = np.zeros(n, np.int64)
        parts = []
        for pos, blob in rows:
            if blob:
                arrs = rec.unpack_ties(blob)
                deg[pos] = len(arrs[0])
                parts.append(arrs)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(deg, out=indptr[1:])

        def cat(i: int, dtype: str) -> np.ndarray:
            return (np.concatenate([p[i] for p in parts]).astype(dtype) if parts
                    else np.zeros(0, dtype))

        g = view.graph
        graph = CustomerGraph(np.asarray(ids, dtype=object), indptr, cat(0, "int32"),
                              cat(1, "float64"), cat(2, "uint32"), cat(3, "uint16"),
                              tuple(g.get("channel_names", ())), bool(g.get("directed", True)))
        view.stmts["graph"] = graph
        return graph

    # ------------------------------------------------------------------ extra tables
    def table_rows(self, view: RunView, name: str, *, limit: int, offset: int = 0
                   ) -> tuple[list[str], int]:
        """Rows ``offset..offset+limit`` of extra table ``name`` (JSON), and the row count."""
        if name not in view.tables:
            raise MissingTableError(
                f"run {view.run_id} has no {name} table; its tables: "
                f"{', '.join(view.tables) or 'none'}", available=view.tables)
        r = view.rows
        with self._reading(view) as conn:
            total = conn.execute(select(func.count()).select_from(r)
                                 .where(r.c.tbl == name)).scalar() or 0
            rows = conn.execute(select(r.c.record).where(r.c.tbl == name,
                                                         r.c.row_no >= offset)
                                .order_by(r.c.row_no).limit(limit)).scalars().all()
        return list(rows), int(total)

    def table_row(self, view: RunView, name: str, key: str) -> str | None:
        """The row of extra table ``name`` whose key is ``key`` (JSON), or None."""
        if name not in view.tables:
            raise MissingTableError(
                f"run {view.run_id} has no {name} table; its tables: "
                f"{', '.join(view.tables) or 'none'}", available=view.tables)
        r = view.rows
        with self._reading(view) as conn:
            return conn.execute(select(r.c.record).where(  # type: ignore[no-any-return]
                r.c.tbl == name, r.c.key == key)).scalar()

    # ------------------------------------------------------------------ whole frames (views)
    def customers_frame(self, view: RunView) -> pd.DataFrame:
        """The run's per-customer table rebuilt from its typed columns, in graph position
        order (``customer_id`` first; columns kept only as JSON documents are left out).

        The served views need the whole table at once; the API's reads never do.
        """
        t = view.customers
        typed = [c for c in view.columns if c["sql"]]
        q = select(t.c.customer_id, *[t.c[c["sql"]] for c in typed]).order_by(t.c.pos)
        with self._reading(view) as conn:
            rows = conn.execute(q).all()
        names = ["customer_id", *[c["name"] for c in typed]]
        # by columns: pandas reads SQLAlchemy rows one attribute at a time otherwise
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        frame = pd.DataFrame({n: pd.Series(col, dtype=object)
                              for n, col in zip(names, columns, strict=True)})
        for c in typed:
            s = frame[c["name"]]
            if c["type"] == "float":
                frame[c["name"]] = pd.to_numeric(s, errors="coerce").astype("float64")
            elif c["type"] == "int":
                frame[c["name"]] = (s.astype("int64") if s.notna().all()
                                    else pd.to_numeric(s).astype("Int64"))
            elif c["type"] == "bool":
                frame[c["name"]] = s.astype("boolean") if s.isna().any() else s.astype(bool)
            elif c["type"] == "text" and _all_iso_times(s):
                # times are stored as ISO 8601 text (UTC, whole seconds): give them back as times
                frame[c["name"]] = pd.to_datetime(s, utc=True, format="%Y-%m-%dT%H:%M:%SZ")
            else:
                frame[c["name"]] = s.astype(object)
        return frame

    def table_frame(self, view: RunView, name: str) -> pd.DataFrame:
        """Extra table ``name`` of the run as a DataFrame, rows in stored order (raises
        :class:`MissingTableError` listing the run's tables when it has none of that name).
        """
        rows, _ = self.table_rows(view, name, limit=2**31 - 1)
        records = orjson.loads("[" + ",".join(rows) + "]")  # one parse, not one per row
        keys = list(dict.fromkeys(k for r in records for k in r))
        return pd.DataFrame({k: [r.get(k) for r in records] for k in keys})

    def search_customers(self, view: RunView, text: str, *, limit: int = 20) -> list[str]:
        """Ids of customers whose id starts with ``text`` (case-sensitive; an exact match
        first), at most ``limit``.
        """
        t = view.customers
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = (select(t.c.customer_id).where(t.c.customer_id.like(f"{escaped}%", escape="\\"))
             .order_by(t.c.customer_id).limit(limit))
        with self._reading(view) as conn:
            exact = conn.execute(select(t.c.customer_id)
                                 .where(t.c.customer_id == text)).scalars().all()
            found = conn.execute(q).scalars().all()
        return [*exact, *[c for c in found if c != text]][:limit]

    def _reading(self, view: RunView) -> _Reading:
        return _Reading(self, view)

    # ------------------------------------------------------------------ API keys
    def create_key(self, role: str, name: str = "") -> tuple[KeyInfo, str]:
        """A new API key; returns its info and the secret token (shown once, stored hashed)."""
        if role not in ROLES:
            raise InvalidInputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        kid = "k" + secrets.token_hex(5)
        token = f"cn_{kid}_{secrets.token_urlsafe(24)}"
        with self.engine.begin() as conn:
            conn.execute(insert(api_keys).values(
                id=kid, name=name or f"{role} key", role=role, hash=_hash_token(token),
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
        if not hmac.compare_digest(row.hash, _hash_token(token)):
            return None
        return KeyInfo(row.id, row.name, row.role)

    def key_secret(self, key_id: str) -> tuple[KeyInfo, str] | None:
        """A live key's info and stored hash, for signing and checking browser sessions
        (None if unknown or revoked). The hash never leaves the server.
        """
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None or row.revoked is not None:
            return None
        return KeyInfo(row.id, row.name, row.role), str(row.hash)

    # ------------------------------------------------------------------ uploads
    def add_upload(self, *, upload_id: str, name: str, path: str, size: int, sha256: str,
                   created_by: str | None) -> dict[str, Any]:
        """Register a stored upload."""
        row = {"id": upload_id, "name": name, "path": path, "bytes": size, "sha256": sha256,
               "created": now_iso(), "created_by": created_by}
        with self.engine.begin() as conn:
            conn.execute(insert(uploads).values(**row))
        return row

    def get_upload(self, upload_id: str) -> dict[str, Any]:
        """One upload's row; unknown ids raise :class:`RunNotFoundError`."""
        with self.engine.connect() as conn:
            row = conn.execute(select(uploads).where(uploads.c.id == upload_id)
                               ).mappings().first()
        if row is None:
            raise RunNotFoundError(f"no uploaded log {upload_id!r}")
        return dict(row)

    def delete_upload(self, upload_id: str) -> dict[str, Any]:
        """Forget an upload (the caller removes its file); returns its row."""
        row = self.get_upload(upload_id)
        with self.engine.begin() as conn:
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        return row

    def list_uploads(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Uploads, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(uploads).order_by(uploads.c.created.desc())
                                .limit(limit)).mappings().all()
        return [dict(r) for r in rows]


class _Reading:
    """A connection for reading one run's tables; a run whose tables vanished underneath
    (dropped by retention between resolving and reading) reads as not found.
    """

    def __init__(self, store: RunStore, view: RunView) -> None:
        self.store = store
        self.view = view
        self.ctx = store.engine.connect()

    def __enter__(self) -> Connection:
        return self.ctx.__enter__()

    def __exit__(self, et: Any, exc: BaseException | None, tb: Any) -> None:
        self.ctx.__exit__(et, exc, tb)
        if isinstance(exc, (OperationalError, ProgrammingError)) and _missing_table(exc):
            self.store.forget(self.view.run_id)
            raise RunNotFoundError(
                f"run {self.view.run_id} was removed by retention while being read; "
                "repeat the request") from exc


class _TableGoneError(Exception):
    """A run's table vanished (dropped by retention) under a fast-path read."""


def _is_disconnect(exc: Exception) -> bool:
    msg = str(exc).lower()
    return any(w in msg for w in ("closed", "terminat", "connection", "server"))


def _missing_table(exc: DBAPIError) -> bool:
    msg = str(exc.orig).lower()
    return "no such table" in msg or "does not exist" in msg


def _all_iso_times(s: pd.Series) -> bool:
    """Whether every value of a text column is a time as the store writes it."""
    values = s.dropna()
    return bool(len(values)) and bool(
        values.astype(str).str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all())


def _hash_token(token: str) -> str:
    # Tokens carry 192 random bits, so a fast hash is safe (no dictionary to attack) and keeps
    # verification cheap on every request.
    return hashlib.sha256(token.encode()).hexdigest()


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine: rely on the heartbeat
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


def encode_cursor(data: dict[str, Any]) -> str:
    """An opaque pagination cursor."""
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()
                                    ).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """Inverse of :func:`encode_cursor`; a damaged cursor is an input error."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInputError("the cursor is not one this API returned") from None
    if not isinstance(data, dict) or not {"r", "f", "v", "id"} <= set(data):
        raise InvalidInputError("the cursor is not one this API returned")
    return data
