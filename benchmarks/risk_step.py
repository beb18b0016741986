"""The risk step alone, before and after a change, alternated in fresh processes.

Runs the ``communities`` and ``risk`` steps of a default analysis of a generated log
directory (interactions, customers and events Parquet files, as ``carenet generate`` writes
them) and times the risk step with ``time.perf_counter()``. ``--before DIR`` names a
directory holding another checkout's ``carenet`` package (``git archive REV carenet | tar -x
-C DIR``); the two versions then alternate (after, before, after, ...) so the load drift of a
shared machine falls on both, and the table gives each pair's ratio and the medians.

    .venv/bin/python benchmarks/risk_step.py --data /work/prof/data100k --before /tmp/before
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, run_child, write_json

CHILD = """
import os
from pathlib import Path
import carenet.pipeline as pl
from carenet.config import AnalysisConfig
p = Path({data!r})
spent = {{}}
def timed(fn):
    def wrapped(ctx):
        t = time.perf_counter()
        fn(ctx)
        spent["risk"] = time.perf_counter() - t
    return wrapped
pl.STEPS = tuple((n, timed(f) if n == "risk" else f) for n, f in pl.STEPS)
t0 = time.perf_counter()
run = pl.analyze([p / "interactions.parquet"], customers=p / "customers.parquet",
                 events=p / "events.parquet", config=AnalysisConfig(),
                 steps=["communities", "risk"])
print(json.dumps({{"risk_s": spent["risk"], "total_s": time.perf_counter() - t0,
                   "package": pl.__file__, "load1": os.getloadavg()[0],
                   "peak_mb": _peak_mb()}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="generated log directory")
    ap.add_argument("--before", type=Path, help="directory holding the other carenet package")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--out", default="risk-step")
    args = ap.parse_args()
    code = CHILD.format(data=str(args.data.resolve()))
    versions: list[tuple[str, dict[str, str] | None]] = [("after", None)]
    if args.before:
        versions.append(("before", {"PYTHONSAFEPATH": "1",
                                    "PYTHONPATH": str(args.before.resolve())}))
    rows: list[dict[str, Any]] = []
    for i in range(args.pairs):
        for name, env in versions:
            r = run_child(code, env=env, timeout=7200)
            rows.append({"pair": i + 1, "version": name, **r})
            print(f"pair {i + 1} {name}: risk step {r['risk_s']:.2f} s (load {r['load1']:.1f})",
                  flush=True)
    print_table(rows, ["pair", "version", "risk_s", "total_s", "peak_mb", "load1"])
    summary: dict[str, Any] = {}
    for name, _ in versions:
        summary[name] = statistics.median(r["risk_s"] for r in rows if r["version"] == name)
    if args.before:
        ratios = [a["risk_s"] / b["risk_s"] for a, b in zip(
            [r for r in rows if r["version"] == "after"],
            [r for r in rows if r["version"] == "before"], strict=True)]
        summary["ratio_median"] = statistics.median(ratios)
        summary["ratios"] = ratios
    print(summary)
    write_json(args.out, {"machine": machine(), "data": str(args.data),
                          "cpus": os.cpu_count(), "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
