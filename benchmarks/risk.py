"""What the risk step costs in a default analysis of a 100k-customer log.

A plain interaction log from ``carenet generate`` (100k customers, 1M interactions, epoch
timestamps; no events and no customers table: what most users have on day one) is analysed
with the default settings, in a fresh process per measurement. Reported per step from
``run.timings``: the risk step itself (lapses, features at three times, two logistic fits,
calibration) and the share it adds to the rest of the analysis; also the exposure seeds the
lapses bring (they make the influence and care steps do more work) and the same analysis with
the risk step switched off (``risk.enabled = lapse.enabled = false``) for the total cost.

    .venv/bin/python benchmarks/risk.py                 # writes benchmarks/results/risk.json
    .venv/bin/python benchmarks/risk.py --with-tables   # with events and customers tables
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median_of, print_table, run_child, write_json

DATA = Path(__file__).resolve().parent / "data"
CUSTOMERS, INTERACTIONS = 100_000, 1_000_000

ANALYZE = """
from carenet.config import AnalysisConfig
from carenet.pipeline import analyze
cfg = AnalysisConfig.from_mapping(json.loads({config!r}))
t0 = time.perf_counter()
run = analyze({log!r}, config=cfg, **json.loads({tables!r}))
total = time.perf_counter() - t0
risk = run.results.get("risk", {{}})
expo = run.results.get("influence", {{}}).get("exposure", {{}})
result = {{"total": total, "timings": run.timings,
          "lapsed_seeds": expo.get("lapsed_seeds"), "seeds": expo.get("seeds"),
          "risk_method": risk.get("method"),
          "oot_auc": (risk.get("out_of_time") or {{}}).get("auc"),
          "horizon_days": risk.get("horizon_days"), "peak_mb": _peak_mb()}}
print(json.dumps(result, default=float))
"""


def ensure_data() -> Path:
    d = DATA / "risk-100k"
    path = d / "interactions.parquet"
    if path.exists():
        return path
    print(f"generating {CUSTOMERS:,} customers, {INTERACTIONS:,} interactions ...", flush=True)
    from carenet.synthetic import GeneratorConfig, generate

    data = generate(GeneratorConfig(customers=CUSTOMERS, interactions=INTERACTIONS,
                                    timestamps="epoch", seed=1))
    data.write(d, fmt="parquet")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--with-tables", action="store_true",
                        help="also give the generator's events and customers tables (exposure "
                        "then has seeds without the lapses too: results/risk-tables*.json)")
    parser.add_argument("--only", default=None, help="run one configuration: default, "
                        "'without risk' or '1000 lapsed seeds' (results/risk-<name>.json)")
    args = parser.parse_args()
    log = str(ensure_data())
    tables = ({"events": str(Path(log).with_name("events.parquet")),
               "customers": str(Path(log).with_name("customers.parquet"))}
              if args.with_tables else {})
    configs = {"default": {}, "without risk": {"risk": {"enabled": False},
                                               "lapse": {"enabled": False}},
               "1000 lapsed seeds": {"lapse": {"max_seeds": 1000}}}
    if args.only is not None:
        configs = {args.only: configs[args.only]}
    else:
        configs.pop("1000 lapsed seeds")
    rows, out = [], {}
    for name, config in configs.items():
        runs = [run_child(ANALYZE.format(config=json.dumps(config), log=log,
                                         tables=json.dumps(tables)), timeout=7200)
                for _ in range(args.repeats)]
        ok = [r for r in runs if "total" in r]
        if not ok:
            print(name, runs[0].get("error"), flush=True)
            continue
        mid = median_of(ok, "total")
        res = min(ok, key=lambda r: abs(r["total"] - (mid or 0)))
        t = res["timings"]
        risk = float(t.get("risk", 0.0))
        rest = res["total"] - risk
        rows.append({"analysis": name, "total s": res["total"], "risk s": risk,
                     "risk / rest %": 100 * risk / rest if rest > 0 else None,
                     "influence s": float(t.get("influence", 0)),
                     "care s": float(t.get("care", 0)), "lapsed seeds": res.get("lapsed_seeds"),
                     "risk AUC (oot)": res.get("oot_auc"), "peak MB": res.get("peak_mb")})
        out[name] = res
    print_table(rows, ["analysis", "total s", "risk s", "risk / rest %", "influence s",
                       "care s", "lapsed seeds", "risk AUC (oot)", "peak MB"])
    name = "risk" if args.only is None else "risk-" + args.only.replace(" ", "-")
    if args.with_tables:
        name = name.replace("risk", "risk-tables", 1)
    write_json(name, {"machine": machine(), "customers": CUSTOMERS,
                        "interactions": INTERACTIONS, "repeats": args.repeats,
                        "tables": sorted(tables),
                        "results": out})


if __name__ == "__main__":
    main()
