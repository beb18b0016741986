"""Publishing a finished analysis run into the store, atomically.

A run's tables are written while its status is ``publishing`` (no reader resolves such a run),
then one transaction flips it to ``published`` with a new sequence number. The latest published
run is the one with the highest sequence number, so a reader sees either the previous run or the
new one, never a mix; a failure drops the half-written tables and leaves the published run in
place. :func:`analyze_and_publish` is the one analyse-then-publish flow behind ``carenet
analyze``/``demo`` and the API's worker.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable

from carenet.errors import InvalidInputError
from carenet.graphs.build import Ahead, prefetch
from carenet.store import encode as enc
from carenet.store import records as rec
from carenet.store.errors import RunStateError
from carenet.store.health import store_problem
from carenet.store.points import block_size, point_blocks
from carenet.store.pool import now_iso, owner_id
from carenet.store.ranking import column_block
from carenet.store.runs import RunQueue
from carenet.store.schema import (
    columns_table,
    customers_table,
    default_layout,
    points_table,
    rows_table,
    runs,
    table_key,
    ties_table,
)

if TYPE_CHECKING:  # pragma: no cover
    from carenet.config import AnalysisConfig
    from carenet.graphs.logs import LogSource
    from carenet.pipeline import AnalysisRun
    from carenet.steps.base import Progress

_CHUNK = 50_000
"""Rows encoded at a time (Arrow arrays of one chunk stay well under 2 GB)."""
TABLE_STEP_BLOCKS = 100
"""Blocks of an extra table encoded at a time (100,000 records)."""
_AHEAD = 2
"""Chunks built ahead of the database by the encoding thread (see :func:`_ahead`)."""
_POINTS_AHEAD = 8
"""Chunks of document blocks (50,000 customers, ~20 MB each) made ahead of the writer."""
_T = TypeVar("_T")
_INDEX_SESSIONS = 2
"""PostgreSQL sessions building a run's indexes at once (the machines we measure on have
2 cores; each session may sort 256 MB in memory)."""


class Publisher(RunQueue):
    """Writes a finished run's customers, ties and extra tables, then makes it the latest.

    ``publish_timings`` holds the seconds of the last :meth:`publish`'s parts (encoding,
    database, commit per table; each index build; ``ANALYZE``), for the benchmarks.
    """

    publish_timings: dict[str, float]
    layout: int | None = None
    """The layout runs are published in (None: the backend's,
    :func:`~carenet.store.schema.default_layout`; 2 writes every typed column in SQL with
    indexes, as before: the oracle of the later layouts' tests)."""

    def publish(self, run: AnalysisRun, *, run_id: str | None = None, kept: bool = False,
                progress: Callable[[str, float], None] | None = None) -> str:
        """Write ``run`` and make it the latest published run, atomically; returns its id.

        ``run_id`` names a run registered with :meth:`create_run` (the API's runs); by default
        the analysis' own id is used. ``progress(step, fraction)`` is called as tables fill.
        """
        rid = run_id or run.run_id
        self.publish_timings = {}
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
            catalogue = rec.with_document_forms(run.customers,
                                                rec.column_catalogue(run.customers))
            cols = [c.to_dict() for c in catalogue]
            meta = MetaData()
            layout = self._layout()
            ct = customers_table(key, cols, meta, layout=layout)
            tt = ties_table(key, meta)
            rt = rows_table(key, meta)
            kt = columns_table(key, meta) if layout >= 3 else None
            pt = points_table(key, meta) if layout >= 4 else None
            self._drop_run_tables(key)
            # keys are built after the load like the other indexes (one sorted build instead
            # of a B-tree maintained row by row); SQLite's ties key is its rowid: kept
            deferred = [ct, rt] + ([tt] if self.backend == "postgresql" else [])
            # on SQLite the customers' position is the table's rowid: rows are appended in
            # position order and no separate position index is built
            rowid = "pos" if self.backend == "sqlite" else None
            with self.engine.begin() as conn:
                for t in (ct, tt, rt, *[t for t in (kt, pt) if t is not None]):
                    conn.execute(CreateTable(
                        _without_key(t, rowid=rowid if t is ct else None) if t in deferred
                        else t))
                if self.backend == "postgresql":
                    _cheap_compression(conn, rt.name, "record")
                    # Arrow blocks come compressed, packed ties hardly compress: stored out
                    # of line as they are (pglz tried each 5 MB column block in vain, 3 s at
                    # 1M customers; each 54 KB block of ties, 6.6 s)
                    stored_as_is = [(rt.name, "data")]
                    if kt is not None:  # and the column blocks, and the blocks of ties
                        stored_as_is += [(kt.name, "data"), (tt.name, "out_ties"),
                                         (tt.name, "in_ties")]
                    if pt is not None:  # and the document fields' LZ4 blocks, kept in
                        # the row up to a page (a point read then fetches one heap page,
                        # not a block's TOAST chunks)
                        stored_as_is.append((pt.name, "data"))
                        conn.execute(text(f'ALTER TABLE "{pt.name}" '
                                          "SET (toast_tuple_target = 8160)"))
                    for name, column in stored_as_is:
                        conn.execute(text(f'ALTER TABLE "{name}" ALTER COLUMN "{column}" '
                                          "SET STORAGE EXTERNAL"))
            report("publish customers", 0.0)
            if self.backend == "postgresql":
                # two sessions: the customers' COPY beside the ties' and tables' (each
                # COPY's rows are inserted by its own server process, so both cores work)
                report("publish ties", 0.5)
                report("publish tables", 0.8)
                blocks = _together(lambda: self._load_customers(ct, kt, run, catalogue,
                                                                points=pt),
                                   lambda: self._load_ties_and_rows(tt, rt, run))[1]
            else:  # one writer, seldom waiting: one thread makes the percentiles (which the
                # document blocks wait for), then the ties and tables, in the order the
                # writer needs them (SQLite's inserts release the GIL); a second thread
                # for the ties and tables took the cores from the column blocks (1M: 10.8
                # against 9.2-9.7 s)
                with ThreadPoolExecutor(max_workers=1) as pool:
                    pct = pool.submit(self._percentiles, run, catalogue)
                    ties = pool.submit(lambda: list(self._tie_chunks(run)))
                    rows = pool.submit(self._eager_rows, run)
                    self._load_customers(ct, kt, run, catalogue, points=pt, pct=pct.result)
                    report("publish ties", 0.6)
                    self._load_ties(tt, run, ties.result())
                    report("publish tables", 0.8)
                    blocks = self._load_rows(rt, run, rows.result())
            report("publish indexes", 0.9)
            if self.backend == "postgresql":
                self._build_indexes_in_sessions(deferred, (ct, tt, rt))
            else:
                self._build_indexes(deferred, (ct, tt, rt), rowid)
            tables = sorted(run.tables)
            if "community" in run.customers.columns and "communities" not in tables:
                tables = sorted([*tables, "communities"])
            g = run.graph
            graph_meta = {"channel_names": list(g.channel_names), "directed": bool(g.directed),
                          "customers": int(g.n_customers), "ties": int(g.n_ties),
                          "layout": layout, "blocks": blocks,
                          **({"tie_block": rec.TIE_BLOCK} if layout >= 3 else {}),
                          **({"point_block": block_size(self.backend)}
                             if layout >= 4 else {})}
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

    def _layout(self) -> int:
        """The layout this publisher writes (:attr:`layout`, else the backend's)."""
        return self.layout if self.layout is not None else default_layout(self.backend)

    def _build_indexes(self, deferred: list[Table], tables: Sequence[Table],
                       rowid: str | None) -> None:
        """Keys, indexes and statistics of the loaded tables, one after the other in one
        transaction (SQLite: one writer at a time).
        """
        ct = tables[0]
        with self.engine.begin() as conn, self._index_settings(conn):
            for t in deferred:
                clock = time.perf_counter()
                conn.execute(text(self._key_ddl(t)))
                self._clock(f"index {t.name} key", time.perf_counter() - clock)
            for t in tables:
                for ix in t.indexes:
                    if not (rowid and t is ct and [c.name for c in ix.columns] == [rowid]):
                        clock = time.perf_counter()
                        ix.create(conn)
                        self._clock(f"index {ix.name}", time.perf_counter() - clock)
                clock = time.perf_counter()
                conn.execute(text(f'ANALYZE "{t.name}"'))
                self._clock(f"analyze {t.name}", time.perf_counter() - clock)

    def _build_indexes_in_sessions(self, deferred: list[Table], tables: Sequence[Table]
                                   ) -> None:
        """PostgreSQL: the same keys, indexes and statistics, built by
        :data:`_INDEX_SESSIONS` sessions at once (each statement is its own server process,
        so the builds share the cores; ``CREATE INDEX`` locks a table in SHARE mode, which
        other index builds of that table share). Three waves, by lock: the primary keys
        (ACCESS EXCLUSIVE, one per table), then every other index and the small tables'
        ``ANALYZE``, then the customers' ``ANALYZE`` (which waits for index builds anyway).
        The tables are invisible to readers until the run is published; a failure drops
        them (see :meth:`publish`).
        """
        dialect = self.engine.dialect
        keys = [(f"index {t.name} key", self._key_ddl(t)) for t in deferred]
        indexes = [(f"index {ix.name}", str(CreateIndex(ix).compile(dialect=dialect)))
                   for t in tables for ix in t.indexes]
        small = [(f"analyze {t.name}", f'ANALYZE "{t.name}"') for t in tables[1:]]
        last = [(f"analyze {tables[0].name}", f'ANALYZE "{tables[0].name}"')]
        for wave in (keys, indexes + small, last):
            self._in_sessions(wave)

    def _in_sessions(self, statements: list[tuple[str, str]]) -> None:
        """Run ``(label, sql)`` statements on up to :data:`_INDEX_SESSIONS` connections at
        once, each in its own transaction with room to sort in memory; their seconds go to
        :attr:`publish_timings` under their labels. The first failure is raised once every
        statement has ended.
        """
        def one(item: tuple[str, str]) -> tuple[str, float]:
            label, sql = item
            clock = time.perf_counter()
            with self.engine.begin() as conn, self._index_settings(conn):
                conn.execute(text(sql))
            return label, time.perf_counter() - clock

        with ThreadPoolExecutor(max_workers=_INDEX_SESSIONS) as pool:
            for label, seconds in pool.map(one, statements):
                self._clock(label, seconds)

    @contextlib.contextmanager
    def _index_settings(self, conn: Connection) -> Iterator[None]:
        """Session settings for building a run's indexes, restored after (SQLite's pooled
        connection keeps its pragmas): PostgreSQL sorts a 1M-row key in memory; SQLite takes
        its statistics from a sample.
        """
        if self.backend == "postgresql":
            # per transaction: the sort of a 1M-row key in memory, not in temporary files
            conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            yield
            return
        # statistics from a sample of each index (SQLite >= 3.32), as PostgreSQL's ANALYZE
        # does, instead of reading every row of the new tables once more. (A larger page
        # cache, an in-memory sorter and sorter threads were measured at 1M: no gain.)
        conn.execute(text("PRAGMA analysis_limit=1000"))
        try:
            yield
        finally:
            conn.execute(text("PRAGMA analysis_limit=0"))

    def _key_ddl(self, table: Table) -> str:
        """The statement that gives a bulk-loaded table its primary key (SQLite: a unique
        index, which is what SQLite builds for a non-integer primary key anyway).
        """
        cols = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
        if self.backend == "postgresql":
            return f'ALTER TABLE "{table.name}" ADD PRIMARY KEY ({cols})'
        return f'CREATE UNIQUE INDEX "{table.name}_pk" ON "{table.name}" ({cols})'

    def _load_customers(self, table: Table, columns: Table | None, run: AnalysisRun,
                        catalogue: list[rec.ColumnInfo], *, points: Table | None = None,
                        pct: Callable[[], pd.DataFrame] | None = None) -> None:
        """The customers' rows (what a point read needs: id, packed values and percentiles,
        the text a document shows) and, in ``columns``, every typed column as one Arrow
        block (what ranked pages and the views' frames read). With ``points`` (layout 4) the
        customers' rows hold only id and position, and the document fields go to ``points``,
        :func:`~carenet.store.points.block_size` customers a row.

        ``pct`` gives the percentiles (:meth:`_percentiles`, when made on a thread).
        """
        frame = run.customers.reset_index(drop=True)
        ids = frame["customer_id"].astype(str)
        if ids.duplicated().any():
            raise InvalidInputError("customer ids of the run are not unique")
        typed = [c for c in catalogue if c.sql and (columns is None or c.doc == "text")]
        # layout 3: the ids and the text columns in both tables, encoded once
        id_array = pa.array(ids.to_numpy(dtype=object), pa.large_string())
        whole = ({c.sql: rec.sql_array(frame, c) for c in typed if c.sql}
                 if columns is not None else {})
        ranked = pct or (lambda: self._percentiles(run, catalogue))
        # layout 4: the document blocks are made by a thread from now on (once the
        # percentiles are), while the column blocks and the ids are written
        early = (Ahead(self._point_chunks(frame, id_array, catalogue, ranked, whole),
                       _POINTS_AHEAD) if points is not None else None)
        try:
            if columns is not None:
                self._load_columns(columns, frame, id_array, catalogue, whole)
            if early is not None and points is not None:
                self._load_ids(table, id_array)
                self._bulk(points, ["block", "data"], early)
                return
        finally:
            if early is not None:
                early.close()
        # no JSON document: it is rebuilt at read time from these (records.DocumentBuilder)
        clock = time.perf_counter()
        ranks = ranked()
        self._clock("customers percentiles wait", time.perf_counter() - clock)
        names = ["customer_id", "pos", "vals", "pct", "doc_extra",
                 *[c.sql for c in typed if c.sql]]

        def chunks() -> Iterator[pa.Table]:
            for a in range(0, len(frame), _CHUNK):
                part = frame.iloc[a:a + _CHUNK]
                cols = [id_array.slice(a, _CHUNK),
                        pa.array(np.arange(a, a + len(part), dtype=np.int64)),
                        rec.value_blobs(part, catalogue),
                        rec.percentile_blobs(ranks.iloc[a:a + _CHUNK]),
                        rec.stored_fragments(part, catalogue),
                        *[whole[c.sql].slice(a, _CHUNK) if c.sql in whole
                          else rec.sql_array(part, c) for c in typed]]
                yield pa.Table.from_arrays(cols, names=names)

        self._bulk(table, names, chunks())

    def _load_ids(self, table: Table, ids: pa.Array) -> None:
        """Layout 4's customers table: each customer's id and position. SQLite parses the ids
        of a chunk from one JSON array (``json_each``: 0.3 s at 1M customers where binding
        each row took 0.7 s), unless an id holds a NUL character, which its JSON reader
        would cut, or the SQLite library is older than 3.38 (JSON functions optional).
        """
        def chunks() -> Iterator[pa.Table]:
            for a in range(0, len(ids), _CHUNK):
                part = ids.slice(a, _CHUNK)
                yield pa.Table.from_arrays(
                    [part, pa.array(np.arange(a, a + len(part), dtype=np.int64))],
                    names=["customer_id", "pos"])

        if (self.backend != "sqlite" or sqlite3.sqlite_version_info < (3, 38)  # JSON built in
                or pc.any(pc.match_substring(ids, "\x00")).as_py()):
            self._bulk(table, ["customer_id", "pos"], chunks())
            return
        clock = time.perf_counter()
        sql = (f'INSERT INTO "{table.name}" (pos, customer_id) '
               "SELECT ? + key, value FROM json_each(?)")
        with self.engine.begin() as conn:
            raw = conn.connection.driver_connection
            for a in range(0, len(ids), _CHUNK):
                some = orjson.dumps(ids.slice(a, _CHUNK).to_pylist()).decode()
                raw.execute(sql, (a, some))  # type: ignore[union-attr]
        self._clock("customers database", time.perf_counter() - clock)

    def _point_chunks(self, frame: pd.DataFrame, ids: pa.Array,
                      catalogue: list[rec.ColumnInfo], ranked: Callable[[], pd.DataFrame],
                      texts: dict[str, pa.Array]) -> Iterator[pa.Table]:
        """Layout 4's ``points`` rows: the document fields
        (:attr:`~carenet.store.records.DocumentBuilder.fields`, in that order) of
        :func:`~carenet.store.points.block_size` customers a row, as
        :func:`~carenet.store.points.point_blocks`; ``ranked()`` gives the percentiles,
        ``texts`` the text columns, encoded.
        """
        ranks = ranked()
        fields = rec.DocumentBuilder([c.to_dict() for c in catalogue]).fields
        size = block_size(self.backend)
        step = size * max(1, _CHUNK // size)
        for a in range(0, len(frame), step):
            clock = time.perf_counter()
            part = frame.iloc[a:a + step]
            made = {"customer_id": ids.slice(a, step),
                    "vals": rec.value_blobs(part, catalogue),
                    "pct": rec.percentile_blobs(ranks.iloc[a:a + step]),
                    "doc_extra": rec.stored_fragments(part, catalogue)}
            data = point_blocks([made[f] if f in made else texts[f].slice(a, step)
                                 for f in fields], size)
            first = a // size
            chunk = pa.Table.from_arrays(
                [pa.array(np.arange(first, first + len(data), dtype=np.int64)),
                 pa.array(data, pa.large_binary())], names=["block", "data"])
            self._clock("points blocks", time.perf_counter() - clock)
            yield chunk

    def _percentiles(self, run: AnalysisRun, catalogue: list[rec.ColumnInfo]) -> pd.DataFrame:
        """The customers' percentile ranks (:func:`~carenet.store.records.percentiles`)."""
        clock = time.perf_counter()
        ranks = rec.percentiles(run.customers.reset_index(drop=True), catalogue)
        self._clock("customers percentiles", time.perf_counter() - clock)
        return ranks

    def _load_columns(self, table: Table, frame: pd.DataFrame, ids: pa.Array,
                      catalogue: list[rec.ColumnInfo], ready: dict[str, pa.Array]) -> None:
        """Every typed column (and the ids) as one compressed Arrow block, in position order
        (:func:`~carenet.store.ranking.column_block`), under its SQL name; ``ready``: the
        columns already encoded, by SQL name.
        """
        def chunks() -> Iterator[pa.Table]:
            yield _named_block("customer_id", ids)
            for c in catalogue:
                if c.sql:
                    yield _named_block(c.sql, ready[c.sql] if c.sql in ready
                                       else rec.sql_array(frame, c))

        self._bulk(table, ["name", "data"], chunks())

    def _load_ties(self, table: Table, run: AnalysisRun,
                   chunks: Iterable[pa.Table] | None = None) -> None:
        """Write the packed ties (``chunks``: as :meth:`_tie_chunks` made them, if already)."""
        self._bulk(table, ["pos", "out_ties", "in_ties"],
                   chunks if chunks is not None else self._tie_chunks(run))

    def _tie_chunks(self, run: AnalysisRun) -> Iterator[pa.Table]:
        """The ties table's rows: packed ties per customer position, or (layout 3) per
        block of :data:`~carenet.store.records.TIE_BLOCK` positions.
        """
        clock = time.perf_counter()
        out_ties, in_ties = rec.tie_rows(run.graph)
        self._clock("ties packing", time.perf_counter() - clock)
        ins = in_ties if in_ties is not None else pa.nulls(len(out_ties), pa.large_binary())
        if self._layout() >= 3:  # TIE_BLOCK positions a row (see records.tie_blocks)
            clock = time.perf_counter()
            out_no, out_blocks = rec.tie_blocks(out_ties)
            in_no, in_blocks = rec.tie_blocks(ins)
            numbers = np.union1d(out_no, in_no)
            self._clock("ties packing", time.perf_counter() - clock)

            def aligned(no: np.ndarray, blocks: pa.Array) -> pa.Array:
                at = np.full(len(numbers), -1, np.int64)
                at[np.searchsorted(numbers, no)] = np.arange(len(no))
                return blocks.take(pa.array(at, pa.int64(), mask=at < 0))

            return iter([pa.Table.from_arrays(
                [pa.array(numbers, pa.int64()), aligned(out_no, out_blocks),
                 aligned(in_no, in_blocks)], names=["pos", "out_ties", "in_ties"])])
        has = out_ties.is_valid()
        if in_ties is not None:
            has = pc.or_(has, in_ties.is_valid())
        keep = pa.array(np.flatnonzero(has.to_numpy(zero_copy_only=False)), pa.int64())

        def chunks() -> Iterator[pa.Table]:
            for a in range(0, len(keep), _CHUNK):
                pos = keep[a:a + _CHUNK]
                yield pa.Table.from_arrays([pos, out_ties.take(pos), ins.take(pos)],
                                           names=["pos", "out_ties", "in_ties"])

        return chunks()

    def _load_ties_and_rows(self, ties: Table, rows: Table, run: AnalysisRun
                            ) -> dict[str, list[Any]]:
        """:meth:`_load_ties` then :meth:`_load_rows` (one session's share on PostgreSQL)."""
        self._load_ties(ties, run)
        return self._load_rows(rows, run)

    def _load_rows(self, table: Table, run: AnalysisRun,
                   prepared: tuple[Iterable[pa.Table], dict[str, list[Any]]] | None = None
                   ) -> dict[str, list[Any]]:
        """Write the run's extra tables (``prepared``: :meth:`_row_chunks`' result, if
        already made); returns their ``blocks`` (see :meth:`_row_chunks`).
        """
        chunks, blocks = prepared if prepared is not None else self._row_chunks(run)
        self._bulk(table, ["tbl", "row_no", "key", "record", "data"], chunks)
        return blocks

    def _eager_rows(self, run: AnalysisRun) -> tuple[Iterable[pa.Table], dict[str, list[Any]]]:
        """:meth:`_row_chunks`, made now when every blocked table is stored as Arrow blocks
        (small: 89 MB at 1M customers); JSON blocks are still made as they are written.
        """
        chunks, blocks = self._row_chunks(run)
        if all(rec.arrow_storable(f) for name, f in run.tables.items() if name != "communities"):
            return list(chunks), blocks
        return chunks, blocks

    def _row_chunks(self, run: AnalysisRun) -> tuple[Iterator[pa.Table], dict[str, list[Any]]]:
        """The rows of the run's extra tables (made as they are iterated) and ``{table:
        [block size, rows(, "arrow", kinds)]}`` of the tables stored in blocks, filled as the
        rows are made (every table but ``communities``, whose rows
        the API looks up by key one at a time): :data:`~carenet.store.records.BLOCK_ROWS`
        records a stored row. A table whose columns Arrow gives back unchanged
        (:func:`~carenet.store.records.arrow_storable`: numbers, booleans, times, strings) is
        stored as zstd-compressed Arrow blocks in ``data``, with the block's keys as a JSON
        list in ``record``; its JSON records are written at read time, with the whole table's
        column ``kinds``, as they would have been here. Any other table is stored as JSON
        records joined by newlines after a first line with the block's keys. (Keys are too
        long for a PostgreSQL index entry and only scanned by :meth:`RunReads.table_row`.) A
        default run at 1M customers has 2.9M ``exposure_sources`` rows: 662 MB as JSON
        blocks, 89 MB as Arrow blocks; one stored row (and two index entries) each would cost
        more than the records themselves; the views read such tables whole.
        """
        names = ["tbl", "row_no", "key", "record", "data"]
        blocks: dict[str, list[Any]] = {}
        size = rec.BLOCK_ROWS
        step = size * TABLE_STEP_BLOCKS

        def chunk(name: str, keys: list[str | None], docs: pa.Array, first: int = 0,
                  data: pa.Array | None = None) -> pa.Table:
            return pa.Table.from_arrays(
                [pa.array([name] * len(keys), pa.large_string()),
                 pa.array(np.arange(first, first + len(keys), dtype=np.int64)),
                 pa.array(keys, pa.large_string()), docs.cast(pa.large_string()),
                 data if data is not None else pa.nulls(len(keys), pa.large_binary())],
                names=names)

        def chunks() -> Iterator[pa.Table]:
            for name, frame in run.tables.items():
                if name == "communities" and "community" in run.customers.columns:
                    continue
                kc = rec.key_column(name, frame)
                if name == "communities":
                    keys: list[str | None] = ([*frame[kc].astype(str).tolist()] if kc
                                              else [None] * len(frame))
                    yield chunk(name, keys, rec.table_records(frame))
                    continue
                kinds = rec.table_kinds(frame)
                if rec.arrow_storable(frame):
                    # compressed Arrow blocks; the JSON records are written at read time
                    # with the kinds of the whole table (the same text as JSON blocks)
                    blocks[name] = [size, len(frame), rec.ARROW, kinds]
                    datas = rec.arrow_blocks(frame, size)
                    keys = [*frame[kc].astype(str).tolist()] if kc else []
                    heads = [orjson.dumps(keys[i:i + size] if kc else None).decode()
                             for i in range(0, len(frame), size)]
                    for a in range(0, len(datas), TABLE_STEP_BLOCKS):
                        some = heads[a:a + TABLE_STEP_BLOCKS]
                        yield chunk(name, [None] * len(some), pa.array(some, pa.large_string()),
                                    first=a, data=pa.array(datas[a:a + TABLE_STEP_BLOCKS],
                                                           pa.large_binary()))
                    continue
                blocks[name] = [size, len(frame)]
                # whole blocks at a time (the same blocks as the table's in one piece), with
                # the column kinds of the whole table: a 1M-customer run's 2.9M-row
                # exposure_sources held ~2 GiB of records and blocks at once
                for a in range(0, len(frame), step):
                    part = frame.iloc[a:a + step]
                    keys = [*part[kc].astype(str).tolist()] if kc else []
                    block_keys = pa.array(
                        [orjson.dumps(keys[i:i + size] if kc else None).decode()
                         for i in range(0, len(part), size)], pa.large_string())
                    yield chunk(name, [None] * len(block_keys),
                                rec.join_blocks(rec.table_records(part, kinds), size,
                                                block_keys), first=a // size)
            if "community" in run.customers.columns:
                # largest communities first: the order of GET /v1/communities
                docs = rec.community_documents(run.customers, run.tables.get("communities"),
                                               run.graph)
                yield chunk("communities", [k for k, _ in docs],
                            pa.array([d for _, d in docs], pa.large_string()))

        return chunks(), blocks

    def _bulk(self, table: Table, names: list[str], chunks: Iterable[pa.Table]) -> None:
        """Bulk load in one transaction: binary COPY on PostgreSQL (numbers as bytes, no
        text to format or parse: :func:`~carenet.store.encode.copy_binary`), large
        ``executemany`` batches on SQLite. The tables are new and not yet visible to readers
        (the run is not published), so a failure drops them (see :meth:`publish`).

        Adds ``"<table> encode"`` (building the chunks and their wire form), ``"<table>
        database"`` (the driver's and database's time) and ``"<table> commit"`` to
        :attr:`publish_timings` (``<table>``: customers, ties or rows).
        """
        phase = table.name.rsplit("_", 1)[-1]
        cols = ", ".join(f'"{n}"' for n in names)
        encode = database = 0.0
        with self.engine.connect() as conn:
            transaction = conn.begin()
            raw = conn.connection.driver_connection
            if self.backend == "postgresql":
                types = [_copy_type(table.c[n]) for n in names]
                with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
                        f'COPY "{table.name}" ({cols}) FROM STDIN WITH (FORMAT binary)') as cp:
                    cp.write(enc.COPY_SIGNATURE)
                    for data, seconds in _ahead(chunks, lambda p: enc.copy_binary(p, types)):
                        encode += seconds
                        t0 = time.perf_counter()
                        cp.write(data)
                        database += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    cp.write(enc.COPY_TRAILER)
            else:
                marks = ", ".join("?" * len(names))
                cur = raw.cursor()  # type: ignore[union-attr]
                sql = f'INSERT INTO "{table.name}" ({cols}) VALUES ({marks})'
                for values, seconds in _ahead(
                        chunks, lambda p: [enc.python_values(c) for c in p.columns]):
                    encode += seconds
                    t0 = time.perf_counter()
                    cur.executemany(sql, zip(*values, strict=True))
                    database += time.perf_counter() - t0
                cur.close()
                t0 = time.perf_counter()
            t1 = time.perf_counter()
            database += t1 - t0
            transaction.commit()
            self._clock(f"{phase} commit", time.perf_counter() - t1)
        self._clock(f"{phase} encode", encode)
        self._clock(f"{phase} database", database)

    def _clock(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to ``publish_timings[name]``."""
        self.publish_timings[name] = self.publish_timings.get(name, 0.0) + seconds


def _named_block(name: str, values: pa.Array) -> pa.Table:
    """One row of ``cn_<key>_columns``: a column's name and its Arrow block."""
    return pa.table({"name": pa.array([name], pa.large_string()),
                     "data": pa.array([column_block(values)], pa.large_binary())})


def _ahead(chunks: Iterable[pa.Table], encode: Callable[[pa.Table], _T]
           ) -> Iterator[tuple[_T, float]]:
    """``(encode(chunk), seconds)`` for each chunk, built and encoded by a thread that stays
    :data:`_AHEAD` chunks ahead (:func:`~carenet.graphs.build.prefetch`), so that building
    the next chunk (numpy, Arrow and numba, which release the GIL) overlaps with the database
    taking this one; ``seconds``: that thread's time for the chunk.
    """
    def encoded() -> Iterator[tuple[_T, float]]:
        clock = time.perf_counter()
        for part in chunks:
            data = encode(part)
            yield data, time.perf_counter() - clock
            clock = time.perf_counter()

    return prefetch(encoded(), depth=_AHEAD)


def _together(first: Callable[[], Any], second: Callable[[], _T]) -> tuple[Any, _T]:
    """Run ``first`` and ``second`` on two threads and return both results once both have
    ended; the first failure is raised then (never while the other still writes: the
    caller drops the run's tables on failure).
    """
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(first), pool.submit(second)]
        errors = [f.exception() for f in futures]
    for exc in errors:
        if exc is not None:
            raise exc
    return futures[0].result(), futures[1].result()


def _copy_type(column: Column[Any]) -> str:
    """The PostgreSQL type of a run table's column, as
    :func:`~carenet.store.encode.copy_binary` names it.
    """
    kind = column.type
    if isinstance(kind, BigInteger):
        return "int8"
    if isinstance(kind, Integer):
        return "int4"
    if isinstance(kind, Float):
        return "float8"
    if isinstance(kind, Boolean):
        return "bool"
    if isinstance(kind, LargeBinary):
        return "bytea"
    if isinstance(kind, String):  # Text, VARCHAR
        return "text"
    raise TypeError(f"no binary COPY encoder for column {column.name} ({kind})")


def _cheap_compression(conn: Connection, table: str, column: str) -> None:
    """Compress a PostgreSQL text column with lz4 rather than the default pglz, else not at
    all: the extra tables' blocks (1,000 JSON records, ~100 KB each) are TOASTed, and pglz
    costs the server several seconds of a 1M-customer publication. Either way the stored
    text reads back the same.
    """
    for setting in ("SET COMPRESSION lz4", "SET STORAGE EXTERNAL"):
        try:
            with conn.begin_nested():
                conn.execute(text(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" {setting}'))
            return
        except DBAPIError:  # a server built without lz4
            continue


def _without_key(table: Table, *, rowid: str | None = None) -> Table:
    """The same columns without the primary key (created before a bulk load); ``rowid``:
    an integer column made the primary key instead (SQLite: an alias of the rowid).
    """
    return Table(table.name, MetaData(),
                 *[Column(c.name, c.type, nullable=c.nullable, autoincrement=False,
                          primary_key=c.name == rowid)
                   for c in table.columns])


def analyze_and_publish(
    logs: LogSource | Sequence[LogSource],
    *,
    config: AnalysisConfig,
    store: Publisher | None,
    customers: LogSource | None = None,
    events: LogSource | None = None,
    previous: AnalysisRun | None = None,
    steps: Sequence[str] | None = None,
    progress: Progress | None = None,
    out: str | Path | None = None,
    run_id: str | None = None,
    kept: bool = False,
) -> AnalysisRun:
    """Analyse, save the run directory (when ``out`` is given) and publish the run to ``store``
    (when given): the one flow behind ``carenet analyze``, ``carenet demo`` and the API's worker.

    Parameters
    ----------
    logs, customers, events, config, previous, steps
        As for :func:`carenet.pipeline.analyze`.
    store
        Where to publish the run (None: do not publish).
    progress
        Receives ``(step, done, total)``; ``"save"`` and ``"publish"`` follow the analysis steps.
    out
        Run directory to write (None: write none).
    run_id, kept
        As for :meth:`Publisher.publish` (``run_id`` names a run queued through the API).

    Returns
    -------
    AnalysisRun
        The finished run, as computed (saved and published when asked).
    """
    from carenet.pipeline import analyze
    from carenet.steps.base import no_progress

    report = progress or no_progress
    if store is not None:
        store.check_writable()  # a store that cannot take the run fails now, not after it
    run = analyze(logs, customers=customers, events=events, config=config, previous=previous,
                  steps=steps, progress=report)
    if out is not None:
        report("save", None, None)
        run.save(out)
    if store is not None:
        report("publish", None, None)
        try:
            store.publish(run, run_id=run_id, kept=kept)
        except Exception as exc:  # a full disk or a lost server mid-publication: one line
            problem = store_problem(exc, store.url)
            if problem is None:
                raise
            raise problem from None
    return run
