"""The run store: runs, their per-customer and per-community results, ties, API keys, uploads.

:class:`RunStore`, over SQLAlchemy Core, combines the store's parts (one module each): the
connection pool and fast read path (:mod:`~carenet.store.pool`), runs as a job queue
(:mod:`~carenet.store.runs`), publication (:mod:`~carenet.store.publish`), the read paths
(:mod:`~carenet.store.reads`), API keys (:mod:`~carenet.store.keys`) and uploads
(:mod:`~carenet.store.uploads`). The same code serves a SQLite file and a PostgreSQL
database. See :mod:`carenet.store.schema` for the tables and why each published run
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

from carenet.store.keys import ROLES, KeyInfo, KeyRing, SessionRing
from carenet.store.pool import now_iso, owner_id
from carenet.store.publish import Publisher
from carenet.store.reads import RunReads, decode_cursor, encode_cursor
from carenet.store.runs import ACTIVE, FINAL
from carenet.store.types import Page, RunView
from carenet.store.uploads import UploadRegistry


class RunStore(Publisher, RunReads, KeyRing, SessionRing, UploadRegistry):
    """Runs and their results in a SQL database (SQLite file or PostgreSQL).

    ``keep_runs``: how many published runs to keep (older ones are dropped after each
    publication unless marked kept). ``latest_ttl``: seconds for which the id of the latest
    published run is cached in this process (0: look it up on every read). ``pool_size``
    bounds both the SQLAlchemy pool and the fast-path connections; ``create`` creates the
    fixed tables when missing.
    """


__all__ = [
    "ACTIVE",
    "FINAL",
    "ROLES",
    "KeyInfo",
    "Page",
    "RunStore",
    "RunView",
    "decode_cursor",
    "encode_cursor",
    "now_iso",
    "owner_id",
]
