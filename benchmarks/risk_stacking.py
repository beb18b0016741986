"""What stacked training costs: the risk step at 100k customers, one period against the default.

The risk step trains on up to ``risk.folds`` labelled periods (features at ``T - h``,
``T - 2h``, ...), so it computes features at more times than the one-period model did (three
times: ``T``, ``T - h``, ``T - 2h``). This times the step alone (``run.timings["risk"]``) in
an analysis with the ``communities`` and ``risk`` steps of a plain 100k-customer log (no
events, no customers table), alternating the two configurations in fresh processes so that
the machine's load hits both alike, and reports the median of each and their ratio.

    .venv/bin/python benchmarks/risk_stacking.py                 # writes results/risk-stacking.json
    .venv/bin/python benchmarks/risk_stacking.py --log /work/prof/data100k/interactions.parquet
    .venv/bin/python benchmarks/risk_stacking.py --full --repeat 1   # inside a default analysis

With ``--full`` every default step runs (results/risk-stacking-full.json), so the table also
gives the step's share of the rest of the analysis.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, run_child, write_json
from risk import ensure_data

VARIANTS = {
    "one period (before)": {"folds": 1, "drift": "none", "exposure": False},
    "default (6 periods, level, exposure)": {},
}

STEP = """
from carenet.config import AnalysisConfig
from carenet.pipeline import analyze
cfg = AnalysisConfig.from_mapping({{"risk": json.loads({risk!r})}})
t0 = time.perf_counter()
run = analyze({log!r}, config=cfg, steps={steps})
total = time.perf_counter() - t0
res = run.results["risk"]
print(json.dumps({{"risk_s": run.timings["risk"], "communities_s": run.timings["communities"],
                  "total_s": total,
                  "folds": (res.get("training") or {{}}).get("folds"),
                  "oot_auc": (res.get("out_of_time") or {{}}).get("auc"),
                  "peak_mb": _peak_mb()}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=None,
                        help="interactions file (default: the generated 100k log of risk.py)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full", action="store_true",
                        help="every default step, not only communities and risk")
    args = parser.parse_args()
    log = str(args.log or ensure_data())
    load_start = os.getloadavg()
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for i in range(args.repeat):
        for name, risk in VARIANTS.items():
            steps = "None" if args.full else '["communities", "risk"]'
            r = run_child(STEP.format(risk=json.dumps(risk), log=log, steps=steps),
                          timeout=7200)
            print(f"{i + 1}/{args.repeat} {name}: {r}", flush=True)
            got[name].append(r)
    rows = []
    for name, runs in got.items():
        ok = [r for r in runs if "risk_s" in r]
        rows.append({"variant": name,
                     "risk_s_median": sorted(r["risk_s"] for r in ok)[len(ok) // 2] if ok
                     else None,
                     "risk_s_all": [round(r["risk_s"], 2) for r in ok],
                     "total_s": [round(r["total_s"], 1) for r in ok],
                     "risk_share_of_rest_pct": [round(100 * r["risk_s"] / (r["total_s"]
                                                                        - r["risk_s"]), 2)
                                                for r in ok],
                     "folds": ok[0]["folds"] if ok else None,
                     "oot_auc": ok[0]["oot_auc"] if ok else None,
                     "peak_mb": max(r["peak_mb"] for r in ok) if ok else None})
    base = rows[0]["risk_s_median"]
    for r in rows:
        r["ratio_to_before"] = (r["risk_s_median"] / base if base and r["risk_s_median"]
                                else None)
    print_table(rows, ["variant", "risk_s_median", "risk_s_all", "ratio_to_before", "total_s",
                       "risk_share_of_rest_pct", "folds", "oot_auc", "peak_mb"])
    load_end = os.getloadavg()
    print(f"load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end")
    write_json("risk-stacking-full" if args.full else "risk-stacking", {"machine": machine(), "log": log, "rows": rows,
                                 "load_start": load_start, "load_end": load_end})


if __name__ == "__main__":
    main()
