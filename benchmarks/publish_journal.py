"""What publishing outside SQLite's WAL would save: the 1M run of ``publish.py`` published into
a fresh SQLite file with the store's pragmas (WAL, ``synchronous=NORMAL``) and with no journal
and no sync (``journal_mode=OFF``, ``synchronous=OFF``: what a per-run database file that no
reader sees until it is complete could use), each in a fresh process, one after the other.

An experiment for the per-run-file layout, not a mode of the store: the store keeps WAL.

    .venv/bin/python benchmarks/publish_journal.py            # after publish.py built the run

Writes ``benchmarks/results/publish-journal.json``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, run_child, write_json

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "data" / "publish-run-1M"

CHILD = """
import carenet.store.db as db
from carenet.run import AnalysisRun
if {mode!r} == "off":
    def pragmas(conn, _record):
        cur = conn.cursor()
        for p in ("journal_mode=OFF", "synchronous=OFF", "mmap_size=1073741824",
                  "cache_size=-65536"):
            cur.execute("PRAGMA " + p)
        cur.close()
    db.sqlite_pragmas = pragmas
from carenet.store import RunStore
run = AnalysisRun.load({run!r})
store = RunStore({url!r})
t0 = time.perf_counter()
c0 = time.process_time()
store.publish(run)
parts = store.publish_timings
print(json.dumps({{"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "parts": {{k: round(v, 3) for k, v in parts.items()
                            if not k.startswith(("index", "analyze"))}},
                  "indexes": sum(v for k, v in parts.items()
                                 if k.startswith(("index", "analyze")))}}))
"""


def main() -> None:
    if not (RUN / "run.json").exists():
        raise SystemExit("run benchmarks/publish.py --sizes 1M first (it builds the 1M run)")
    rows = []
    with tempfile.TemporaryDirectory(dir=RUN.parent) as tmp:
        for mode in ("wal", "off"):
            load = os.getloadavg()[0]
            url = f"sqlite:///{Path(tmp) / (mode + '.db')}"
            res = run_child(CHILD.format(mode=mode, run=str(RUN), url=url))
            row = {"mode": mode, "load": round(load, 1), **res}
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_json("publish-journal", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
