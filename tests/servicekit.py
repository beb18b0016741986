"""Helpers for the store and API tests: fresh databases, a real uvicorn server, runs.

A database is a SQLite file in a temporary directory, or (when CARENET_TEST_POSTGRES_URL is
set) a fresh PostgreSQL schema dropped afterwards, so parallel test processes never meet.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pytest

PG_ENV = "CARENET_TEST_POSTGRES_URL"
BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=[
        pytest.mark.postgres,
        pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} not set"),
    ]),
]
ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def fresh_db(backend: str, tmp: Path) -> Iterator[str]:
    """A database URL nobody else uses, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'store.db'}"
        return
    from sqlalchemy import create_engine, text

    base = os.environ[PG_ENV]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``uvicorn --factory carenet.api.app:create_app`` in a subprocess, on loopback."""

    def __init__(self, db: str, tmp: Path, **settings: Any) -> None:
        self.db = db
        self.tmp = tmp
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update({"CARENET_DB": db, "CARENET_DATA_DIR": str(tmp / "data"),
                         "CARENET_RATE_LIMIT": "0", "CARENET_AUTH_FAILURE_RATE": "0",
                         "CARENET_LATEST_TTL": "0",
                         "CARENET_KEY_CACHE_SECONDS": "0", "CARENET_POLL_SECONDS": "0.2"})
        self.env.update({f"CARENET_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / f"server-{self.port}.log"
        self.preexec_fn: Any = None  # e.g. resource limits of the server process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "carenet.api.app:create_app",
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + 180  # a loaded 2-core machine starts uvicorn slowly
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def stop(self, *, hard: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> Server:
        self.stop()
        return self.start()


_BASE: dict[str, Any] = {}


def base_run() -> Any:
    """The shipped sample analysed once per test process, without the centrality, community
    and care steps (no pagerank, community, role or priority: a "foundation" run that the
    variants below fill with synthetic values)."""
    if "run" not in _BASE:
        import carenet

        d = ROOT / "data" / "sample"
        cfg = carenet.AnalysisConfig.from_mapping({"measures": {"enabled": False},
                                                   "communities": {"enabled": False},
                                                   "care": {"enabled": False}})
        _BASE["run"] = carenet.analyze(d / "interactions.csv", customers=d / "customers.csv",
                                       events=d / "events.csv", config=cfg)
    return _BASE["run"]


def variant(marker: float, *, run_id: str | None = None, care_plan: bool = True) -> Any:
    """The sample run with the measures later issues add (synthetic values) and a ``marker``
    column whose value tells which run a document came from."""
    run = base_run()
    n = len(run.customers)
    rng = np.random.default_rng(int(marker * 1000) % 2**32)
    c = run.customers.copy()
    c["pagerank"] = rng.random(n) / n
    c["influence"] = rng.gamma(2.0, 3.0, n)
    c["exposure"] = rng.random(n)
    c["priority"] = c["influence"] * c["exposure"]
    c["community"] = (np.arange(n) % 9).astype(np.int64)
    c["role"] = np.where(np.arange(n) % 10 == 0, "hub",
                         np.where(np.arange(n) % 10 == 1, "bridge", "peripheral"))
    c["reason"] = [f"ties to {i % 7} exposed customers" for i in range(n)]
    c["marker"] = float(marker)
    c.loc[c.index[:5], "influence"] = np.nan  # customers without a value are not ranked
    tables = dict(run.tables)
    if care_plan:
        top = c.sort_values("priority", ascending=False).head(100)
        tables["care_plan"] = pd.DataFrame({"rank": np.arange(1, 101),
                                            "customer_id": top["customer_id"].to_numpy(),
                                            "protected_value": top["priority"].to_numpy()})
    return dataclasses.replace(run, customers=c, tables=tables,
                               run_id=run_id or f"run-{uuid.uuid4().hex[:10]}")
