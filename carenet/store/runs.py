"""The runs table as a job queue: queued -> running -> publishing -> published (or failed,
cancelled), with heartbeats, cancellation, recovery of dead workers and retention.

The API registers a queued run (:meth:`RunQueue.create_run`); a worker claims it
(:meth:`RunQueue.claim_next`), reports progress (which also answers "was it cancelled?") and
publishes it (:mod:`carenet.store.publish`). Runs whose worker died are marked failed by
:meth:`RunQueue.recover`; their partial tables are dropped and the published run stays.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update

from carenet.errors import RunNotFoundError
from carenet.store.errors import RunStateError
from carenet.store.pool import StoreBase, now_iso
from carenet.store.schema import runs, table_key

ACTIVE = ("queued", "running", "publishing")
FINAL = ("published", "failed", "cancelled")


class RunQueue(StoreBase):
    """Runs: their lifecycle as a job queue, their rows, the latest published one, retention."""

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

    def queued_counts(self, created_by: str | None) -> tuple[int, int]:
        """(runs queued by key ``created_by``, runs queued in all): what the API's queue
        caps compare with before registering another run.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs.c.created_by, func.count())
                                .where(runs.c.status == "queued")
                                .group_by(runs.c.created_by)).all()
        mine = sum(int(n) for who, n in rows if who == created_by)
        return mine, sum(int(n) for _, n in rows)

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
        alive = alive or owner_alive
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
    def _drop_run_tables(self, key: str) -> None:
        with self.engine.begin() as conn:
            for suffix in ("customers", "ties", "rows", "columns", "points"):
                conn.execute(text(f'DROP TABLE IF EXISTS "cn_{key}_{suffix}"'))
        self._tables_dropped(key)

    def _tables_dropped(self, key: str) -> None:
        """Hook: the tables of run ``key`` were dropped (the reads forget what they cached)."""

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

    def forget(self, run_id: str) -> None:
        """Drop cached knowledge of a run (after its tables vanished)."""
        self._views.pop(run_id, None)
        self._latest = (0.0, None)


def owner_alive(owner: str) -> bool:
    """Whether the ``host:pid`` owner of a run may still be alive (another host: assume so)."""
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
