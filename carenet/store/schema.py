"""Tables of the run store.

Fixed tables (created on first use): ``carenet_runs`` (one row per run: status, parameters,
timings, counts, versions, progress, the run's column catalogue), ``carenet_api_keys`` and
``carenet_uploads``.

Each published run owns three tables (four from layout 3, five from layout 4) named after
its ``table_key``:

``cn_<key>_customers``
    one row per customer: ``customer_id`` (primary key), ``pos`` (node position, unique), one
    typed column ``m_<name>`` per measure, so any numeric column can be sorted and filtered in
    SQL (the main sort keys are indexed), ``vals`` (the numbers and booleans packed, for point
    reads), ``pct`` (the percentile ranks packed as uint16 hundredths) and ``doc_extra`` (JSON
    text of the few values no typed column holds). The
    customer's JSON document is rebuilt from them at read time
    (:class:`carenet.store.records.DocumentBuilder`). Runs published before that layout
    (``runs.graph`` without ``"layout": 2``) have a ``record`` column with the document
    instead of ``pct`` and ``doc_extra``, and are read from it.
``cn_<key>_columns``
    (layout 3) every typed customer column as one compressed Arrow block, for ranked pages
    (sorted and filtered in numpy) and the views' whole frames; the customers table then holds
    only the typed columns a document reads as text.
``cn_<key>_points``
    (layout 4) the fields a customer's document is built from (id, texts, packed numbers and
    percentiles, stored JSON texts), 32 positions a compressed block (16 on PostgreSQL:
    :func:`carenet.store.points.block_size`); the customers table then holds only
    ``customer_id`` and ``pos``, the key look-up of a point read.
``cn_<key>_ties``
    one row per customer position with its out- and in-ties packed as binary arrays
    (neighbour ids, weights, counts, channel masks): a neighbour query reads one row.
``cn_<key>_rows``
    the run's extra tables (``communities``, ``care_plan``, ...): one JSON record per row, or
    blocks of records (see :meth:`carenet.store.publish.Publisher._load_rows`), as JSON text in
    ``record`` or as a compressed Arrow block in ``data`` (``record`` then holds the block's
    keys).

Per-run tables rather than shared tables keyed by run id: a run's columns are whatever its
analysis produced (they grow as capabilities land), its indexes are built once after the bulk
load (much faster than maintaining them row by row), and dropping an expired or failed run is
a ``DROP TABLE`` instead of deleting millions of rows (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

runs = Table(
    "carenet_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False, index=True),
    Column("seq", BigInteger, nullable=True, index=True),
    Column("table_key", String(40), nullable=False, unique=True),
    Column("kept", Boolean, nullable=False, default=False),
    Column("created", String(40), nullable=False),
    Column("started", String(40)),
    Column("finished", String(40)),
    Column("published", String(40)),
    Column("request", JSON),
    Column("parameters", JSON),
    Column("inputs", JSON),
    Column("timings", JSON),
    Column("counts", JSON),
    Column("versions", JSON),
    Column("summary", JSON),
    Column("results", JSON),
    Column("columns", JSON),
    Column("tables", JSON),
    Column("graph", JSON),
    Column("progress", JSON),
    Column("error", Text),
    Column("owner", String(200)),
    Column("heartbeat", Float),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("created_by", String(40)),
)

api_keys = Table(
    "carenet_api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("created", String(40), nullable=False),
    Column("revoked", String(40)),
)

uploads = Table(
    "carenet_uploads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("path", Text, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created", String(40), nullable=False),
    Column("created_by", String(40)),
)

sessions = Table(
    # Browser sessions of the served pages: the cookie holds a random token, the store only
    # its hash (who can read the store cannot log in with it), with a server-side expiry;
    # logging out ends the row at once.
    "carenet_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(32), nullable=False, index=True),
    Column("created", String(40), nullable=False),
    Column("expires", Float, nullable=False),
    Column("ended", String(40)),
)

_SAFE = re.compile(r"[^a-z0-9_]")


def table_key(run_id: str) -> str:
    """A SQL-safe, unique table-name stem for a run id (readable prefix + digest).

    >>> table_key("20260101T000000-abc123")
    'r20260101t000000_abc123_6caea8'
    """
    stem = _SAFE.sub("_", run_id.lower())[:24]
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:6]
    return f"r{stem}_{digest}"


def sql_column_names(names: list[str]) -> dict[str, str]:
    """A typed SQL column name (``m_...``) for each measure name, unique and SQL-safe.

    >>> sql_column_names(["PageRank", "page rank", "x" * 80])["page rank"]
    'm_page_rank'
    """
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = "m_" + _SAFE.sub("_", name.lower())[:48]
        candidate = base
        i = 1
        while candidate in used:
            candidate = f"{base}_{i}"
            i += 1
        used.add(candidate)
        out[name] = candidate
    return out


KEY_TEXT = Text().with_variant(Text(collation="C"), "postgresql")
"""Text compared byte by byte (code point order) on both stores: SQLite's default (BINARY);
PostgreSQL's ``"C"`` collation, whose sorts use abbreviated keys and ``memcmp`` (a database
collation such as ``en_US.UTF-8`` or ``C.UTF-8`` goes through ``strcoll``, which makes the
run's text index builds ~2x slower; see benchmarks/README.md, "publish.py") and which orders
ties of a ranked page as SQLite does."""
_SQL_TYPES: dict[str, Any] = {"float": Float, "int": BigInteger, "bool": Boolean,
                              "text": KEY_TEXT}
INDEXED = ("priority", "influence", "exposure", "pagerank")
"""Sort keys whose typed columns get an index (every numeric column can still be sorted)."""


LAYOUT = 4
"""``runs.graph["layout"]`` of the runs published now: 2, customer documents built at read
time from packed values; 3, also the typed columns kept as Arrow blocks in
``cn_<key>_columns`` (ranked pages in numpy: :mod:`carenet.store.ranking`), only the columns
a document reads as text in the customers table; 4, the document fields in blocks of 32
customers (``cn_<key>_points``), the customers table only ids and positions. Runs without a
layout store documents."""
PG_LAYOUT = 3
"""The layout PostgreSQL runs are published in: layout 4 published 1M customers no faster
there (10.4-10.7 against 10.3-11.0 s) and read slower (point reads 157-171 against 120-130
us, a page of 100 6.1 against 3.6-3.8 ms), PostgreSQL's COPY taking per-customer rows as
readily as blocks. SQLite's inserts do not (see benchmarks/README.md "publish.py, sixth
pass")."""


def default_layout(backend: str) -> int:
    """The layout runs are published in on ``backend`` (``sqlite``, ``postgresql``)."""
    return PG_LAYOUT if backend == "postgresql" else LAYOUT


def customers_table(key: str, columns: list[dict[str, Any]], meta: MetaData, *,
                    stored_documents: bool = False, layout: int = LAYOUT) -> Table:
    """The per-run customers table for a column catalogue (``runs.columns``);
    ``stored_documents``: the first layout (a ``record`` column per customer); ``layout``:
    the run's (below 3: every typed column in SQL, the main sort keys indexed).
    """
    cols: list[Any] = [
        Column("customer_id", KEY_TEXT, primary_key=True),
        Column("pos", Integer, nullable=False),
    ]
    in_sql: list[dict[str, Any]] = []
    if layout < 4:  # (layout 4: the document fields are in cn_<key>_points)
        if stored_documents:
            cols.append(Column("record", Text, nullable=False))
        else:
            cols += [Column("vals", LargeBinary), Column("pct", LargeBinary),
                     Column("doc_extra", Text)]
        in_sql = [c for c in columns
                  if c.get("sql") and (layout < 3 or c.get("doc") == "text")]
    for c in in_sql:
        cols.append(Column(c["sql"], _SQL_TYPES[c["type"]]))
    table = Table(f"cn_{key}_customers", meta, *cols)
    Index(f"cn_{key}_pos", table.c.pos, unique=True)
    if layout >= 3:  # sorted and filtered in numpy (carenet.store.ranking)
        return table
    for c in in_sql:
        if c.get("indexed"):
            Index(f"cn_{key}_ix_{c['sql']}", table.c[c["sql"]], table.c.customer_id)
        if c.get("name") in ("community", "role") and c.get("sql"):
            Index(f"cn_{key}_ix_{c['sql']}", table.c[c["sql"]])
    return table


def columns_table(key: str, meta: MetaData) -> Table:
    """The per-run typed customer columns (layout 3): one compressed Arrow block per column,
    named by its SQL name (and ``customer_id``), customers in position order.
    """
    return Table(
        f"cn_{key}_columns",
        meta,
        Column("name", KEY_TEXT, primary_key=True),
        Column("data", LargeBinary, nullable=False),
    )


def points_table(key: str, meta: MetaData) -> Table:
    """The per-run document fields of layout 4: block ``b`` holds positions ``size * b``
    to ``size * b + size - 1``, ``size`` being ``runs.graph["point_block"]``
    (:func:`carenet.store.points.point_blocks`).
    """
    return Table(
        f"cn_{key}_points",
        meta,
        Column("block", Integer, primary_key=True, autoincrement=False),
        Column("data", LargeBinary, nullable=False),
    )


def ties_table(key: str, meta: MetaData) -> Table:
    """The per-run packed-ties table (one row per customer position)."""
    return Table(
        f"cn_{key}_ties",
        meta,
        Column("pos", Integer, primary_key=True, autoincrement=False),
        Column("out_ties", LargeBinary),
        Column("in_ties", LargeBinary),
    )


def rows_table(key: str, meta: MetaData) -> Table:
    """The per-run extra-tables table (communities, care plan, ...)."""
    table = Table(
        f"cn_{key}_rows",
        meta,
        Column("tbl", String(64), primary_key=True),
        Column("row_no", Integer, primary_key=True, autoincrement=False),
        Column("key", KEY_TEXT),
        Column("record", Text, nullable=False),
        Column("data", LargeBinary),
    )
    Index(f"cn_{key}_rows_key", table.c.tbl, table.c.key)
    return table
