"""Computing queued runs in worker processes, so the API keeps answering reads.

:class:`RunSupervisor` (a thread in the API process) claims queued runs from the store and
starts one child process per run (``python -m carenet.api.worker RUN_ID``), which calls
:func:`carenet.store.publish.analyze_and_publish` (the flow ``carenet analyze`` uses too). The
supervisor refreshes heartbeats, stops a child whose run was cancelled, and marks failed any
run whose child died without publishing. On start it marks failed the runs of a previous
service that died (an interrupted run is never half-published: its tables were never made
visible and are dropped).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from carenet.store import RunStore
from carenet.store.pool import owner_id

log = logging.getLogger("carenet.worker")


@dataclass
class _Child:
    run_id: str
    proc: subprocess.Popen[bytes]
    started: float


class RunSupervisor:
    """Claims queued runs and runs each in its own process (at most ``max_concurrent``)."""

    def __init__(self, store: RunStore, *, db_url: str, max_concurrent: int = 1,
                 poll_seconds: float = 0.5, stale_after: float = 60.0,
                 keep_runs: int = 5) -> None:
        self.store = store
        self.db_url = db_url
        self.max_concurrent = max_concurrent
        self.poll = poll_seconds
        self.stale_after = stale_after
        self.keep_runs = keep_runs
        self.owner = owner_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.children: dict[str, _Child] = {}

    def start(self) -> None:
        """Recover runs of a dead service, then start polling for work."""
        self.store.recover(stale_after=self.stale_after)
        self._thread = threading.Thread(target=self._loop, name="carenet-runs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; runs still computing are stopped and marked failed (interrupted)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for child in list(self.children.values()):
            _terminate(child.proc)
            self.store.finish_unpublished(
                child.run_id, "failed", "interrupted: the service stopped while the run was "
                "computing; the previously published run is unchanged")
        self.children.clear()

    def _loop(self) -> None:
        last_recover = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
                if time.monotonic() - last_recover > self.stale_after / 2:
                    self.store.recover(stale_after=self.stale_after)
                    last_recover = time.monotonic()
            except Exception:
                log.exception("run supervisor: error while polling the store")
            self._stop.wait(self.poll)

    def tick(self) -> None:
        """One round: reap finished children, honour cancellations, start queued runs."""
        for rid, child in list(self.children.items()):
            code = child.proc.poll()
            if code is not None:
                del self.children[rid]
                if code != 0:
                    self.store.finish_unpublished(
                        rid, "failed", f"the worker process exited with code {code} "
                        "before publishing")
                continue
            row = self.store.get_run(rid)
            if row["cancel_requested"]:
                _terminate(child.proc)
                del self.children[rid]
                self.store.finish_unpublished(rid, "cancelled", "cancelled while running")
        self.store.beat(list(self.children))
        while len(self.children) < self.max_concurrent and not self._stop.is_set():
            claimed = self.store.claim_next(self.owner)
            if claimed is None:
                break
            self._spawn(claimed["id"])

    def _spawn(self, run_id: str) -> None:
        env = dict(os.environ)
        env["CARENET_DB"] = self.db_url  # in the environment, not argv: it may hold a password
        env["CARENET_KEEP_RUNS"] = str(self.keep_runs)
        env["CARENET_SUPERVISOR_PID"] = str(os.getpid())
        proc = subprocess.Popen(
            [sys.executable, "-m", "carenet.api.worker", run_id], env=env,
            stdin=subprocess.DEVNULL)
        self.children[run_id] = _Child(run_id, proc, time.monotonic())


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck native call
            proc.kill()
            proc.wait()


class _CancelledError(Exception):
    """Raised inside the analysis when the run was cancelled."""


def execute(run_id: str, db_url: str, *, keep_runs: int = 5) -> int:
    """Compute and publish one claimed run (the body of the worker process); exit status."""
    from carenet.config import AnalysisConfig
    from carenet.errors import CarenetError
    from carenet.pipeline import STEPS
    from carenet.store.publish import analyze_and_publish

    store = RunStore(db_url, keep_runs=keep_runs)
    _watch_parent()
    try:
        row = store.get_run(run_id)
        req: dict[str, Any] = row["request"] or {}
        files = req.get("files") or {}
        names = ["load", "build graph", *[n for n, _ in STEPS], "publish"]
        last_time = [0.0]
        last_step = [""]

        def progress(step: str, done: float | None = None, total: float | None = None) -> None:
            now = time.monotonic()
            if step == last_step[0] and now - last_time[0] < 0.5:
                return
            last_time[0], last_step[0] = now, step
            i = names.index(step) if step in names else max(0, len(names) - 2)
            part = (done / total) if done is not None and total else 0.0
            fraction = min(0.99, (i + min(part, 1.0)) / len(names))
            if store.report_progress(run_id, step, done, total, fraction):
                raise _CancelledError

        try:
            analyze_and_publish(files.get("logs") or [], customers=files.get("customers"),
                                events=files.get("events"),
                                config=AnalysisConfig.from_mapping(req.get("config") or {}),
                                steps=req.get("steps"), progress=progress, store=store,
                                run_id=run_id, kept=bool(row["kept"]))
        except _CancelledError:
            store.finish_unpublished(run_id, "cancelled", "cancelled while running")
        except CarenetError as exc:
            store.finish_unpublished(run_id, "failed", f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("run %s failed", run_id)
            store.finish_unpublished(run_id, "failed",
                                     f"unexpected error: {type(exc).__name__}: {exc}")
            return 1
        return 0
    finally:
        store.close()


def _watch_parent() -> None:
    """Exit when the supervising API process dies, so that no orphan publishes a run the
    restarted service has already marked failed (the store refuses that anyway).

    The supervisor's pid comes from ``$CARENET_SUPERVISOR_PID``: the parent may have died
    before this process got here.
    """
    expected = os.environ.get("CARENET_SUPERVISOR_PID")
    if not expected:
        return
    parent = int(expected)
    if os.getppid() != parent:
        os._exit(3)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="carenet-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """``python -m carenet.api.worker RUN_ID`` (the store URL comes from ``$CARENET_DB``)."""
    parser = argparse.ArgumentParser(description="Compute one queued carenet run.")
    parser.add_argument("run_id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    from carenet.store import default_db_url

    return execute(args.run_id, default_db_url(),
                   keep_runs=int(os.environ.get("CARENET_KEEP_RUNS", "5")))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
