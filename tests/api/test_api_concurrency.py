"""A run published while readers hammer the API: no error, no mix of runs, and the data
survives a restart (SQLite and, with CARENET_TEST_POSTGRES_URL, PostgreSQL)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from servicekit import BACKENDS, Server, fresh_db, variant

from carenet.store import RunStore


@pytest.mark.parametrize("backend", BACKENDS)
def test_publish_under_read_load_then_restart(backend: str, tmp_path: Path) -> None:
    with fresh_db(backend, tmp_path) as url:
        store = RunStore(url, keep_runs=5)
        first = variant(10.0, run_id="run-a")
        store.publish(first)
        key = store.create_key("reader")[1]
        server = Server(url, tmp_path, worker="false").start()
        ids = first.customers.customer_id.iloc[::300].tolist()
        markers = {"run-a": 10.0, "run-b": 20.0}
        stop = threading.Event()
        seen: list[list[tuple[str, str]]] = [[] for _ in range(4)]
        problems: list[str] = []

        def reader(slot: int) -> None:
            with httpx.Client(base_url=server.url, headers={"X-API-Key": key},
                              timeout=30) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    if slot == 3 and i % 2:  # one reader also pages through ranked lists
                        r = c.get("/v1/customers", params={"limit": 50, "sort": "influence"})
                        if r.status_code != 200:
                            problems.append(f"list {r.status_code} {r.text[:200]}")
                            continue
                        page = r.json()
                        runs = {item["run"] for item in page["items"]} | {page["run"]}
                        bad = [it for it in page["items"]
                               if it["scores"]["marker"] != markers[page["run"]]]
                        if len(runs) != 1 or bad:
                            problems.append(f"mixed page {runs}")
                        seen[slot].append(("list", page["run"]))
                        continue
                    cid = ids[i % len(ids)]
                    r = c.get(f"/v1/customers/{cid}")
                    if r.status_code != 200:
                        problems.append(f"{cid}: {r.status_code} {r.text[:200]}")
                        continue
                    d = r.json()
                    if d["scores"]["marker"] != markers[d["run"]] or d["customer_id"] != cid:
                        problems.append(f"{cid}: run {d['run']} with marker "
                                        f"{d['scores']['marker']}")
                    seen[slot].append((cid, d["run"]))

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
        try:
            for t in threads:
                t.start()
            # the readers are hammering before the publication starts (its length no
            # longer decides how many reads the test sees: it got faster)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (sum(len(s) for s in seen) < 100
                                                   or not all(seen)):
                time.sleep(0.05)
            store.publish(variant(20.0, run_id="run-b"))  # another process publishes
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not all(
                    s and s[-1][1] == "run-b" for s in seen):
                time.sleep(0.05)
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert problems == []
        for s in seen:
            runs = [r for _, r in s]
            assert runs[0] == "run-a" and runs[-1] == "run-b"
            flip = runs.index("run-b")
            assert set(runs[flip:]) == {"run-b"}  # once a reader saw the new run, only it
        assert sum(len(s) for s in seen) > 100

        server.restart()
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}) as c:
            d = c.get(f"/v1/customers/{ids[0]}").json()
            assert d["run"] == "run-b" and d["scores"]["marker"] == 20.0
            old = c.get(f"/v1/customers/{ids[0]}", params={"run": "run-a"}).json()
            assert old["scores"]["marker"] == 10.0
            assert {r["id"] for r in c.get("/v1/runs").json()["items"]} == {"run-a", "run-b"}
        server.stop()
        store.close()
