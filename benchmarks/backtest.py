"""Backtest time on generated logs of 100k and 1M customers.

`carenet backtest` runs two full analyses per cutoff (at the cutoff, and one horizon earlier
for the out-of-time classifiers), so its cost is dominated by the pipeline. Timed per phase,
in a fresh process per measurement: reading the log, labels, the analysis at the cutoff, the
analysis at the training cutoff, fitting both classifiers, metrics. Two configurations:
``default`` (every step with its default settings) and ``light`` (PageRank and k-core only, no
seed-set comparison, 200 exposure simulations instead of 2000: what a routine backtest needs).

Reference in the same run: the own-activity baseline alone (labels + features + logistic
regression, the published churn-model baseline) on the same log, without any graph work.

    .venv/bin/python benchmarks/backtest.py                 # 100k customers / 1M interactions
    .venv/bin/python benchmarks/backtest.py --big           # + 1M customers / 10M interactions
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median_of, print_table, run_child, write_json

DATA = Path(__file__).resolve().parent / "data"
SIZES = {"100k": (100_000, 1_000_000), "1M": (1_000_000, 10_000_000)}
HORIZON = 30.0
CUTOFF = "2026-05-15"  # generator period: 2026-01-01 + 180 days; training cutoff 2026-04-15

LIGHT = {"measures": {"measures": ["pagerank", "core"]},
         "influence": {"seed_set_size": 0, "exposure_runs": 200}}


def ensure_data(label: str) -> Path:
    customers, interactions = SIZES[label]
    d = DATA / f"backtest-{label}"
    if (d / "interactions.parquet").exists() and (d / "events.parquet").exists():
        return d
    print(f"generating {label}: {customers:,} customers, {interactions:,} interactions ...",
          flush=True)
    from carenet.synthetic import GeneratorConfig, generate

    data = generate(GeneratorConfig(customers=customers, interactions=interactions,
                                    timestamps="epoch", seed=1))
    data.write(d, fmt="parquet")
    return d


BACKTEST = """
from carenet.evaluation.backtest import BacktestOptions, read_log, run_backtest
from carenet.config import AnalysisConfig
cfg = AnalysisConfig.from_mapping(json.loads({config!r}))
t0 = time.perf_counter()
log = read_log({log!r}, cfg)
t_read = time.perf_counter() - t0
res = run_backtest(log, cutoffs=[{cutoff!r}], events={events!r}, config=cfg,
                   options=BacktestOptions(horizon_days={horizon}))
total = time.perf_counter() - t0
c = res.cutoffs[0]
net = c.metrics.set_index("score")
out = {{"seconds": total, "read": t_read, "peak_mb": _peak_mb(),
        "population": c.labels["population"], "churners": c.labels["churners"],
        "auc_network_model": float(net.loc["network_model", "auc"]),
        "auc_own_activity_model": float(net.loc["own_activity_model", "auc"])}}
out.update({{k: v for k, v in c.timings.items()}})
print(json.dumps(out))
"""

OWN_ONLY = """
import numpy as np
from carenet.evaluation.backtest import read_log, _read_events, _labels, BacktestOptions, _fit_predict
from carenet.evaluation import stats as bt
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
t0 = time.perf_counter()
log = read_log({log!r})
ev = _read_events({events!r}, log, AnalysisConfig())
opt = BacktestOptions(horizon_days={horizon})
from carenet.config import parse_time
T = parse_time({cutoff!r}); h = opt.horizon
lab = _labels(log, T, opt, ev); tlab = _labels(log, T - h, opt, ev)
f = bt.activity_features(log.src, log.dst, log.time, log.n_customers, at=T, window=opt.lookback)
tf = bt.activity_features(log.src, log.dst, log.time, log.n_customers, at=T - h,
                          window=opt.lookback)
pop, tpop = np.flatnonzero(lab.active), np.flatnonzero(tlab.active)
p = _fit_predict(tf.iloc[tpop], tlab.churned[tpop], f.iloc[pop], list(bt.OWN_FEATURES),
                 "logistic", 42)
auc = bt.auc_score(lab.churned[pop], p)
print(json.dumps({{"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb(), "auc": auc}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", action="store_true", help="also 1M customers / 10M interactions")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big-repeats", type=int, default=1)
    ap.add_argument("--configs", default="light")
    ap.add_argument("--big-configs", default="light", help="configs run at 1M")
    ap.add_argument("--sizes", default=None, help="comma list of 100k,1M (overrides --big)")
    ap.add_argument("--out", default="backtest")
    args = ap.parse_args()
    labels = ["100k", "1M"] if args.big else ["100k"]
    if args.sizes:
        labels = args.sizes.split(",")
    rows, raw = [], {}
    for label in labels:
        d = ensure_data(label)
        log, events = str(d / "interactions.parquet"), str(d / "events.parquet")
        repeats = args.repeats if label == "100k" else args.big_repeats
        runs = [run_child(OWN_ONLY.format(log=log, events=events, cutoff=CUTOFF,
                                          horizon=HORIZON)) for _ in range(repeats)]
        raw[f"{label}/own_activity_only"] = runs
        rows.append({"size": label, "what": "own-activity baseline only",
                     "seconds": median_of(runs, "seconds"), "peak_mb": median_of(runs, "peak_mb"),
                     "auc own": median_of(runs, "auc")})
        for name in (args.configs if label == "100k" else args.big_configs).split(","):
            cfg = LIGHT if name == "light" else {}
            runs = [run_child(BACKTEST.format(config=json.dumps(cfg), log=log, events=events,
                                              cutoff=CUTOFF, horizon=HORIZON))
                    for _ in range(repeats)]
            raw[f"{label}/{name}"] = runs
            bad = [r for r in runs if "error" in r]
            if bad:
                print(f"{label} {name}: {bad[0]['error']}", flush=True)
            rows.append({
                "size": label, "what": f"carenet backtest ({name})",
                "seconds": median_of(runs, "seconds"), "read": median_of(runs, "read"),
                "labels": median_of(runs, "labels"), "analyze": median_of(runs, "analyze"),
                "analyze train": median_of(runs, "analyze_train"), "fit": median_of(runs, "fit"),
                "metrics": median_of(runs, "metrics"), "peak_mb": median_of(runs, "peak_mb"),
                "population": median_of(runs, "population"),
                "churners": median_of(runs, "churners"),
                "auc own": median_of(runs, "auc_own_activity_model"),
                "auc network": median_of(runs, "auc_network_model"),
            })
            print_table(rows[-1:], list(rows[-1]))
        # written after every size, so a long 1M run never loses the 100k results
        write_json(args.out, {"machine": machine(), "horizon_days": HORIZON,
                              "cutoff": CUTOFF, "light": LIGHT, "rows": rows, "raw": raw})
    print()
    cols = ["size", "what", "seconds", "read", "labels", "analyze", "analyze train", "fit",
            "metrics", "peak_mb", "population", "churners", "auc own", "auc network"]
    print_table(rows, cols)
    path = write_json(args.out, {"machine": machine(), "horizon_days": HORIZON,
                                 "cutoff": CUTOFF, "light": LIGHT, "rows": rows, "raw": raw})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
