"""Reading published runs: resolve a run, one customer, ranked pages, neighbours, extra tables,
whole frames for the views, id search, and the run's graph rebuilt for what-if simulations.

Every read goes through :class:`Reading` (or the fast path): a run whose tables were dropped by
retention between resolving and reading reads as not found, never as a server error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, MetaData, and_, bindparam, func, select, tuple_
from sqlalchemy.exc import OperationalError, ProgrammingError

from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.graphs.model import CustomerGraph
from carenet.store import records as rec
from carenet.store.errors import (
    BadCursorError,
    MissingTableError,
    RunNotReadyError,
    UnknownFieldError,
)
from carenet.store.points import point_row, point_rows
from carenet.store.pool import TableGoneError, missing_table
from carenet.store.ranking import ColumnCache, IdOrder, SortedKey, numbers, read_column_block
from carenet.store.runs import RunQueue
from carenet.store.schema import (
    columns_table,
    customers_table,
    points_table,
    rows_table,
    ties_table,
)
from carenet.store.types import Page, RunView


class RunReads(RunQueue):
    """The read paths over published runs (the API's, the views' and the what-if's)."""

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
        graph = row["graph"] or {}
        layout = int(graph.get("layout") or 1)
        stored = layout < 2  # published before documents were built at read time
        view = RunView(run_id=rid, key=key, columns=row["columns"] or [],
                       tables=row["tables"] or [], graph=graph,
                       customers=customers_table(key, row["columns"] or [], meta,
                                                 stored_documents=stored, layout=layout),
                       typed=columns_table(key, meta) if layout >= 3 else None,
                       points=points_table(key, meta) if layout >= 4 else None,
                       documents=None if stored else rec.DocumentBuilder(row["columns"] or []),
                       ties=ties_table(key, meta), rows=rows_table(key, meta),
                       pseudonymized=bool(((row["parameters"] or {}).get("graph") or {})
                                          .get("pseudonymize", False)))
        with self._lock:
            if len(self._views) > 32:
                self._views.clear()
            self._views[rid] = view
        return view


    # ------------------------------------------------------------------ customers
    def customer(self, view: RunView, customer_id: str) -> str | None:
        """The JSON document of one customer (without the run id), or None: one indexed row
        fetch (layout 4: the id's position joined to its block of document fields), the
        document rebuilt from the row (or read as stored, for older runs).
        """
        builder = view.documents
        sql = view.stmts.get("customer")
        if sql is None:
            fields = ('"record"' if builder is None
                      else ", ".join(f'"{f}"' for f in builder.fields))
            sql = view.stmts["customer"] = (
                f'SELECT {fields} FROM "{view.customers.name}" WHERE customer_id = ?'
                if view.points is None else
                f'SELECT c.pos, p.data FROM "{view.customers.name}" c JOIN '
                f'"{view.points.name}" p ON p.block = c.pos / {self._point_block(view)} '
                "WHERE c.customer_id = ?")
        try:
            row = self._fast_row(sql, (customer_id,))
            if row is None:
                return None
            if view.points is not None:
                row = point_row(row[1], row[0] % self._point_block(view))
            return row[0] if builder is None else builder.build(row)  # type: ignore[no-any-return]
        except TableGoneError as exc:
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
        labels: list[tuple[str, str]] = []  # (SQL name, value) of the label filters
        for name, value in (("community", community), ("role", role)):
            if value is None:
                continue
            info = view.column(name)
            if info is None or not info["sql"]:
                raise UnknownFieldError(
                    f"run {view.run_id} has no {name} column (its analysis did not compute "
                    f"{name}s); columns: {', '.join(c['name'] for c in view.columns)}",
                    available=[c["name"] for c in view.columns], field=name)
            labels.append((info["sql"], str(value)))
        for name in bounds or {}:
            if name not in numeric:
                raise UnknownFieldError(
                    f"run {view.run_id} has no numeric column {name!r} to filter on; "
                    f"numeric columns: {', '.join(numeric) or 'none'}",
                    available=numeric, field=f"min_{name}")
        fingerprint = hashlib.sha1(json.dumps(
            [key, order, community, role, sorted((bounds or {}).items())],
            default=str).encode()).hexdigest()[:10]
        cur = None
        if cursor is not None:
            cur = decode_cursor(cursor)
            if cur.get("r") != view.run_id or cur.get("f") != fingerprint:
                raise InvalidInputError(
                    "this cursor belongs to another query or run; repeat the query that "
                    "returned it (same run, sort, order and filters)")
        if view.typed is not None:
            return self._page_from_columns(view, key, order, labels, bounds or {}, limit, cur,
                                           fingerprint)
        col = t.c[view.column(key)["sql"]]  # type: ignore[index]
        conds: list[Any] = [col.is_not(None)]
        for sql_name, value in labels:
            conds.append(t.c[sql_name] == value)
        for name, (lo, hi) in (bounds or {}).items():
            c = t.c[view.column(name)["sql"]]  # type: ignore[index]
            if lo is not None:
                conds.append(c >= lo)
            if hi is not None:
                conds.append(c <= hi)
        if cur is not None:
            last = tuple_(col, t.c.customer_id)
            after = tuple_(bindparam("cv", cur["v"]), bindparam("ci", cur["id"]))
            conds.append(last < after if order == "desc" else last > after)
        ordering = ([col.desc(), t.c.customer_id.desc()] if order == "desc"
                    else [col.asc(), t.c.customer_id.asc()])
        builder = view.documents
        fields = [t.c.record] if builder is None else [t.c[f] for f in builder.fields]
        q = (select(col, t.c.customer_id, *fields).where(and_(*conds))
             .order_by(*ordering).limit(limit + 1))
        with self._reading(view) as conn:
            rows = conn.execute(q).all()
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = None
        if more and rows:
            v, cid = rows[-1][0], rows[-1][1]
            nxt = encode_cursor({"r": view.run_id, "f": fingerprint, "v": v, "id": cid})
        items = ([r[2] for r in rows] if builder is None
                 else [builder.build(r[2:]) for r in rows])
        return Page(run_id=view.run_id, sort=key, order=order, items=items, next_cursor=nxt)

    def _page_from_columns(self, view: RunView, key: str, order: str,
                           labels: list[tuple[str, str]],
                           bounds: dict[str, tuple[float | None, float | None]], limit: int,
                           cur: dict[str, Any] | None, fingerprint: str) -> Page:
        """:meth:`customers_page` of a layout-3 run: the page chosen in numpy over the run's
        column blocks (:meth:`~carenet.store.ranking.SortedKey.page`), then its customers'
        rows fetched by position; the same order, filters and cursors as the SQL path.
        """
        ids = self._id_order(view)
        sorted_key = self._sorted_key(view, view.column(key)["sql"])  # type: ignore[index]
        mask: np.ndarray | None = None
        for sql_name, value in labels:
            labelled = pc.equal(self._typed_column(view, sql_name).cast(pa.large_string()),
                                value).fill_null(False).to_numpy(zero_copy_only=False)
            mask = labelled if mask is None else mask & labelled
        for name, (lo, hi) in bounds.items():
            x, ok = self._numbers(view, view.column(name)["sql"])  # type: ignore[index]
            inside = ok.copy()
            if lo is not None:
                inside &= x >= lo
            if hi is not None:
                inside &= x <= hi
            mask = inside if mask is None else mask & inside
        after = None if cur is None else (cur.get("v"), str(cur.get("id")))
        picked = sorted_key.page(mask, ids, descending=order == "desc", after=after,
                                 limit=limit + 1)
        values = self._numbers(view, view.column(key)["sql"])[0]  # type: ignore[index]
        more = len(picked) > limit
        picked = picked[:limit]
        builder = view.documents
        assert builder is not None  # layout 3 builds documents at read time
        rows = self._document_rows(view, [int(p) for p in picked])
        items = [builder.build(rows[int(p)]) for p in picked]
        nxt = None
        if more and len(picked):
            last = int(picked[-1])
            nxt = encode_cursor({"r": view.run_id, "f": fingerprint, "v": values[last].item(),
                                 "id": rows[last][0]})
        return Page(run_id=view.run_id, sort=key, order=order, items=items, next_cursor=nxt)

    def _document_rows(self, view: RunView, positions: list[int]) -> dict[int, Any]:
        """The document fields (:attr:`~carenet.store.records.DocumentBuilder.fields`) of
        the customers at ``positions`` (layout 3 or later), by position: one query either way
        (layout 4: their blocks, each decompressed once).
        """
        builder = view.documents
        assert builder is not None  # layout 3 builds documents at read time
        rows: dict[int, Any] = {}
        if not positions:
            return rows
        with self._reading(view) as conn:
            if view.points is None:
                t = view.customers
                for r in conn.execute(select(t.c.pos, *[t.c[f] for f in builder.fields])
                                      .where(t.c.pos.in_(positions))):
                    rows[r[0]] = r[1:]
                return rows
            size = self._point_block(view)
            wanted: dict[int, list[int]] = {}
            for p in positions:
                wanted.setdefault(p // size, []).append(p)
            p_t = view.points
            for block, data in conn.execute(select(p_t.c.block, p_t.c.data)
                                            .where(p_t.c.block.in_(list(wanted)))):
                inside = wanted[block]
                rows.update(zip(inside, point_rows(data, [p % size for p in inside]),
                                strict=True))
        return rows

    @staticmethod
    def _point_block(view: RunView) -> int:
        """Positions a stored block of document fields holds (layout 4)."""
        return int(view.graph["point_block"])

    def _typed_column(self, view: RunView, name: str) -> pa.Array:
        """One typed column of a layout-3 run (its Arrow block), cached by this process."""
        def load() -> pa.Array:
            t = view.typed
            assert t is not None
            with self._reading(view) as conn:
                data = conn.execute(select(t.c.data).where(t.c.name == name)).scalar()
            if data is None:
                raise UnknownFieldError(f"run {view.run_id} has no stored column {name!r}",
                                        available=[], field=name)
            return read_column_block(bytes(data))

        return self._column_cache().get((view.key, name), load,  # type: ignore[return-value]
                                        lambda a: a.nbytes)  # type: ignore[attr-defined]

    def _numbers(self, view: RunView, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A numeric typed column as (values, valid mask), cached."""
        return self._column_cache().get(  # type: ignore[return-value]
            (view.key, name + " numbers"), lambda: numbers(self._typed_column(view, name)),
            lambda p: p[0].nbytes + p[1].nbytes)  # type: ignore[index]

    def _sorted_key(self, view: RunView, name: str) -> SortedKey:
        """A sort key's customers in ``(value, id)`` order, cached."""
        def build() -> SortedKey:
            values, valid = self._numbers(view, name)
            return SortedKey.of(values, valid, self._id_order(view))

        return self._column_cache().get(  # type: ignore[return-value]
            (view.key, name + " sorted"), build, lambda k: k.nbytes)  # type: ignore[attr-defined]

    def _id_order(self, view: RunView) -> IdOrder:
        """The run's customer ids in code point order (cursor tie-breaks), cached."""
        return self._column_cache().get(  # type: ignore[return-value]
            (view.key, " id order"), lambda: IdOrder.of(self._typed_column(view, "customer_id")),
            lambda o: o.order.nbytes + o.rank.nbytes)  # type: ignore[attr-defined]

    def _tables_dropped(self, key: str) -> None:
        """A run's tables were dropped: its cached columns go too."""
        cache = getattr(self, "_columns", None)
        if cache is not None:
            cache.drop(key)

    def _column_cache(self) -> ColumnCache:
        cache = getattr(self, "_columns", None)
        if cache is None:
            with self._lock:
                cache = getattr(self, "_columns", None)
                if cache is None:
                    cache = self._columns = ColumnCache()
        return cache

    def neighbors(self, view: RunView, customer_id: str, *, limit: int = 10
                  ) -> list[dict[str, Any]] | None:
        """The strongest ties of a customer, both directions merged (None: unknown id)."""
        t = view.customers
        with self._reading(view) as conn:
            pos = conn.execute(select(t.c.pos).where(t.c.customer_id == customer_id)).scalar()
            if pos is None:
                return None
            block = view.graph.get("tie_block")
            tie = conn.execute(select(view.ties.c.out_ties, view.ties.c.in_ties)
                               .where(view.ties.c.pos == (pos // block if block else pos))
                               ).first()
            blobs = ((None, None) if tie is None else
                     (rec.block_ties(tie[0], pos % block), rec.block_ties(tie[1], pos % block))
                     if block else (tie[0], tie[1]))
            out = rec.unpack_ties(blobs[0])
            inn = rec.unpack_ties(blobs[1])
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
        block = view.graph.get("tie_block")
        blobs: list[tuple[int, bytes | None]] = (
            [(b * block + i, rec.block_ties(data, i))  # TIE_BLOCK positions a row
             for b, data in rows for i in range(block) if b * block + i < n] if block
            else [(pos, blob) for pos, blob in rows])
        for pos, blob in blobs:
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
        self._check_table(view, name)
        r = view.rows
        block = view.blocks.get(name)
        if block is not None:  # stored BLOCK_ROWS records a row: read the blocks that hold them
            size, total = block[:2]
            if limit <= 0 or offset >= total:
                return [], total
            first, last = offset // size, (min(offset + limit, total) - 1) // size
            if block[2:3] == [rec.ARROW]:  # Arrow blocks: their records written now
                frame = self._arrow_blocks(view, name, first, last)
                skip = offset - first * size
                return (rec.table_records(frame.iloc[skip:skip + limit], block[3]).to_pylist(),
                        total)
            with self._reading(view) as conn:
                blocks = conn.execute(select(r.c.record).where(
                    r.c.tbl == name, r.c.row_no >= first, r.c.row_no <= last)
                    .order_by(r.c.row_no)).scalars().all()
            records = [d for b in blocks for d in rec.split_block(b)[1]]
            skip = offset - first * size
            return records[skip:skip + limit], total
        with self._reading(view) as conn:
            count = conn.execute(select(func.count()).select_from(r)
                                 .where(r.c.tbl == name)).scalar() or 0
            rows = conn.execute(select(r.c.record).where(r.c.tbl == name,
                                                         r.c.row_no >= offset)
                                .order_by(r.c.row_no).limit(limit)).scalars().all()
        return list(rows), int(count)

    def table_row(self, view: RunView, name: str, key: str) -> str | None:
        """The row of extra table ``name`` whose key is ``key`` (JSON), or None."""
        self._check_table(view, name)
        r = view.rows
        block = view.blocks.get(name)
        if block is not None and block[2:3] == [rec.ARROW]:  # keys in record, rows in data
            with self._reading(view) as conn:
                for row_no, head in conn.execute(select(r.c.row_no, r.c.record).where(
                        r.c.tbl == name).order_by(r.c.row_no)):
                    keys = orjson.loads(head) or []
                    if key in keys:
                        frame = self._arrow_blocks(view, name, row_no, row_no)
                        i = keys.index(key)
                        return rec.table_records(  # type: ignore[no-any-return]
                            frame.iloc[i:i + 1], block[3])[0].as_py()
            return None
        if block is not None:  # blocks list their keys: the first row with that key
            with self._reading(view) as conn:
                for block in conn.execute(select(r.c.record).where(
                        r.c.tbl == name).order_by(r.c.row_no)).scalars():
                    keys, records = rec.split_block(block)
                    found = [i for i, k in enumerate(keys or []) if k == key]
                    if found:
                        return records[found[0]]
            return None
        with self._reading(view) as conn:
            return conn.execute(select(r.c.record).where(  # type: ignore[no-any-return]
                r.c.tbl == name, r.c.key == key)).scalar()

    def _arrow_blocks(self, view: RunView, name: str, first: int, last: int
                      ) -> pd.DataFrame:
        """Rows of Arrow blocks ``first..last`` of extra table ``name``, as one frame."""
        r = view.rows
        with self._reading(view) as conn:
            datas = conn.execute(select(r.c.data).where(
                r.c.tbl == name, r.c.row_no >= first, r.c.row_no <= last)
                .order_by(r.c.row_no)).scalars().all()
        frames = [rec.read_arrow_block(bytes(d)) for d in datas]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _check_table(self, view: RunView, name: str) -> None:
        if name not in view.tables:
            raise MissingTableError(
                f"run {view.run_id} has no {name} table; its tables: "
                f"{', '.join(view.tables) or 'none'}", available=view.tables)

    # ------------------------------------------------------------------ whole frames (views)
    def customers_frame(self, view: RunView) -> pd.DataFrame:
        """The run's per-customer table rebuilt from its typed columns, in graph position
        order (``customer_id`` first; columns kept only as JSON documents are left out).

        The served views need the whole table at once; the API's reads never do.
        """
        t = view.customers
        typed = [c for c in view.columns if c["sql"]]
        names = ["customer_id", *[c["name"] for c in typed]]
        if view.typed is not None:  # layout 3: the columns' blocks, not one SQL row each
            columns: list[Any] = [self._typed_column(view, n).to_pylist()
                                  for n in ["customer_id", *[c["sql"] for c in typed]]]
        else:
            q = select(t.c.customer_id, *[t.c[c["sql"]] for c in typed]).order_by(t.c.pos)
            with self._reading(view) as conn:
                rows = conn.execute(q).all()
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

    def _reading(self, view: RunView) -> Reading:
        return Reading(self, view)


class Reading:
    """A connection for reading one run's tables; a run whose tables vanished underneath
    (dropped by retention between resolving and reading) reads as not found.
    """

    def __init__(self, store: RunReads, view: RunView) -> None:
        self.store = store
        self.view = view
        self.ctx = store.engine.connect()

    def __enter__(self) -> Connection:
        return self.ctx.__enter__()

    def __exit__(self, et: Any, exc: BaseException | None, tb: Any) -> None:
        self.ctx.__exit__(et, exc, tb)
        if isinstance(exc, (OperationalError, ProgrammingError)) and missing_table(exc):
            self.store.forget(self.view.run_id)
            raise RunNotFoundError(
                f"run {self.view.run_id} was removed by retention while being read; "
                "repeat the request") from exc


def _all_iso_times(s: pd.Series) -> bool:
    """Whether every value of a text column is a time as the store writes it."""
    values = s.dropna()
    return bool(len(values)) and bool(
        values.astype(str).str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all())


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
        raise BadCursorError("the cursor is not one this API returned; start again without "
                             "cursor=") from None
    if not isinstance(data, dict) or not {"r", "f", "v", "id"} <= set(data):
        raise BadCursorError("the cursor is not one this API returned; start again without "
                             "cursor=")
    if not _cursor_fields_ok(data):  # forged: the query must never see such values
        raise BadCursorError("the cursor is not one this API returned; start again without "
                             "cursor=")
    return data


def _cursor_fields_ok(data: dict[str, Any]) -> bool:
    """Whether a decoded cursor holds what :meth:`RunReads.customers_page` writes: text run
    id, fingerprint and customer id, and a finite number (within 64-bit integers) as the
    sort value.
    """
    v = data["v"]
    number = (isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63) or (
        isinstance(v, float) and math.isfinite(v))
    texts = all(isinstance(data[k], str) and 0 < len(data[k]) <= 256 and "\x00" not in data[k]
                for k in ("r", "f", "id"))
    return number and texts
