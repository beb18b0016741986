"""Churn risk from the logs alone on two real logs: ranking, priority and calibration.

CollegeMsg and the Copenhagen SMS log are cut at eight points of their time span (45% to
80%) and analysed up to the cutoff only, with no events and no customers table (the
``communities``, ``risk``, ``influence`` and ``care`` steps, light influence settings, no
care plan). The labels are computed here from the rest of the log with pandas: the
population is everyone with an interaction in the window before the cutoff; a churner has no
interaction in ``[cutoff, cutoff + horizon)`` (horizon and window: what the analysis chose
from the log before the cutoff).

Per cutoff: AUC of risk, recency, frequency and priority; lift at 5% of priority and risk;
calibration on the realised labels of the application window (deciles of predicted risk:
the largest gap, the mean gap, the deciles with at least 50 customers, and the mean
predicted against the observed rate). Per log, a **pooled reliability table** over its eight
cutoffs (deciles of the pooled predictions, ~240-290 customers each): the per-cutoff
populations (231-366) leave no decile with the issue's 50 customers, the pooled one does.
Each decile and each cutoff also gets the mean of the customers' interval bounds
(``lapse_risk_low``/``high``) and whether the observed rate lies between them.

A diagnostic that no analysis can reach: the same pooled table with each cutoff's risks
shifted on the logit scale so that their mean equals that cutoff's observed lapse rate (the
**level oracle**). Its gaps are what is left of the miscalibration once the level of the
coming horizon is known, i.e. the part due to the model's shape (``benchmarks/risk_level.py``
measures how well the level itself can be told from the past).

Each ``--variant`` is a set of ``[risk]`` settings (``key=value`` joined by ``,``; ``default``:
none), run on all 16 cutoffs; the rows record it, and the features that carried the model
(the run's largest standardised coefficients).

    .venv/bin/python benchmarks/risk_real.py      # writes benchmarks/results/risk-real.json
    .venv/bin/python benchmarks/risk_real.py --variant default --variant folds=1,drift=none,exposure=false
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_json

from carenet.config import AnalysisConfig
from carenet.pipeline import analyze

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SHARES = (0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80)


def auc(y: np.ndarray, s: np.ndarray) -> float:
    r = scipy.stats.rankdata(s)
    m, k = int(y.sum()), int((~y).sum())
    return float((r[y].sum() - m * (m + 1) / 2) / (m * k))


def lift5(y: np.ndarray, s: np.ndarray) -> float:
    k = max(1, round(0.05 * y.size))
    order = np.argsort(-s, kind="stable")
    cut = s[order[k - 1]]
    above, tied = s > cut, s == cut
    got = y[above].sum() + y[tied].sum() * (k - above.sum()) / tied.sum()
    return float(got / k / y.mean())


def load(name: str, root: Path) -> pd.DataFrame:
    if name == "collegemsg":
        df = pd.read_csv(root / "snap-collegemsg" / "CollegeMsg.txt", sep=" ", header=None,
                         names=["source", "target", "timestamp"])
    else:
        df = pd.read_csv(root / "copenhagen-networks-study" / "sms.csv")
        df = df.rename(columns={"from": "source", "to": "target"})
        df = df[df.source != df.target]
    return df.astype({"source": str, "target": str, "timestamp": float})


def parse_variant(text: str) -> dict[str, Any]:
    """``folds=1,drift=none`` -> ``{"folds": 1, "drift": "none"}`` (``default`` -> {})."""
    out: dict[str, Any] = {}
    for part in ([] if text == "default" else text.split(",")):
        key, _, raw = part.partition("=")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(raw)
                    break
                except ValueError:
                    pass
        out[key.strip()] = value
    return out


def pooled_reliability(y: np.ndarray, p: np.ndarray, low: np.ndarray,
                       high: np.ndarray) -> list[dict[str, Any]]:
    """Deciles of the pooled predictions: n, mean predicted, observed rate, gap, and the mean
    of the customers' interval bounds (``inside``: the observed rate lies between them).
    """
    order = np.argsort(p, kind="stable")
    out = []
    for i, part in enumerate(np.array_split(order, 10)):
        obs = float(y[part].mean())
        lo, hi = float(low[part].mean()), float(high[part].mean())
        out.append({"decile": i + 1, "n": int(part.size), "predicted": float(p[part].mean()),
                    "observed": obs, "gap": abs(float(p[part].mean()) - obs),
                    "low": lo, "high": hi, "inside": lo <= obs <= hi})
    return out


def level_oracle(risk: np.ndarray, observed: float) -> np.ndarray:
    """``risk`` shifted on the logit scale so that its mean is ``observed`` (a diagnostic:
    the level of the coming horizon is not known to an analysis).
    """
    eta = np.log(np.clip(risk, 1e-9, 1 - 1e-9) / np.clip(1 - risk, 1e-9, 1))
    lo, hi = -40.0, 40.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if float(np.mean(1 / (1 + np.exp(-(eta + mid))))) < observed:
            lo = mid
        else:
            hi = mid
    return np.asarray(1 / (1 + np.exp(-(eta + (lo + hi) / 2))))


def one(df: pd.DataFrame, share: float, risk: dict[str, Any]) -> dict[str, Any]:
    t0, t1 = df.timestamp.min(), df.timestamp.max()
    cutoff = t0 + share * (t1 - t0)
    past = df[df.timestamp < cutoff]
    cfg = AnalysisConfig.from_mapping({
        "influence": {"seed_set_size": 0, "exposure_runs": 300, "epsilon": 0.3},
        "care": {"budget": 0, "reasons_top": 20}, "risk": risk})
    start = time.perf_counter()
    run = analyze(past, config=cfg, steps=["communities", "risk", "influence", "care"])
    seconds = time.perf_counter() - start
    res = run.results["risk"]
    h = res["lapse"]["horizon_days"] * 86400
    w = res["lapse"]["window_days"] * 86400
    recent = past[past.timestamp >= cutoff - w]
    pop = pd.Index(pd.unique(pd.concat([recent.source, recent.target])))
    future = df[(df.timestamp >= cutoff) & (df.timestamp < cutoff + h)]
    y = ~pop.isin(pd.concat([future.source, future.target]))
    c = run.customers.set_index("customer_id").loc[pop]
    last = pd.concat([past[["source", "timestamp"]].set_axis(["id", "t"], axis=1),
                      past[["target", "timestamp"]].set_axis(["id", "t"], axis=1)]
                     ).groupby("id")["t"].max()
    rec = (cutoff - last.loc[pop]).to_numpy()
    freq = -pd.concat([recent.source, recent.target]).value_counts().reindex(pop) \
        .fillna(0).to_numpy()
    risk = c["lapse_risk"].to_numpy()
    low, high = c["lapse_risk_low"].to_numpy(), c["lapse_risk_high"].to_numpy()
    prio = c["priority"].to_numpy()
    order = np.argsort(risk, kind="stable")
    gaps, big = [], []
    for part in np.array_split(order, 10):
        g = abs(float(risk[part].mean() - y[part].mean()))
        gaps.append(g)
        if part.size >= 50:
            big.append(g)
    oot = res.get("out_of_time") or {}
    return {"share": share, "cutoff": float(cutoff), "horizon_days": h / 86400,
            "population": int(pop.size), "churn_rate": float(y.mean()),
            "auc_risk": auc(y, risk), "auc_recency": auc(y, rec), "auc_frequency": auc(y, freq),
            "auc_priority": auc(y, prio), "lift5_priority": lift5(y, prio),
            "lift5_risk": lift5(y, risk),
            "max_decile_gap": max(gaps), "mean_decile_gap": float(np.mean(gaps)),
            "deciles_50plus": len(big), "max_gap_50plus": max(big) if big else None,
            "mean_predicted": float(risk.mean()), "observed": float(y.mean()),
            "mean_low": float(low.mean()), "mean_high": float(high.mean()),
            "level_inside": bool(low.mean() <= y.mean() <= high.mean()),
            "oot_auc": oot.get("auc"), "oot_brier": oot.get("brier"),
            "folds": (res.get("training") or {}).get("folds"),
            "top_features": [f"{x['feature']} {x['coefficient']:+.2f}"
                             for x in (res.get("importance") or [])[:4]],
            "method": res["method"], "seconds": seconds, "y": y, "risk": risk, "low": low,
            "high": high}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--variant", action="append",
                        help="[risk] settings, e.g. folds=1,drift=none (repeatable; default: "
                        "the defaults)")
    parser.add_argument("--out", default="risk-real", help="results file name")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    pooled: list[dict[str, Any]] = []
    for variant in args.variant or ["default"]:
        for name in ("collegemsg", "sms"):
            df = load(name, args.datasets)
            got = []
            for share in SHARES:
                r = one(df, share, parse_variant(variant)) | {"log": name,
                                                               "variant": variant}
                got.append(r)
                print(f"{variant} {name} {share:.2f}: AUC risk {r['auc_risk']:.3f} rec "
                      f"{r['auc_recency']:.3f} freq {r['auc_frequency']:.3f}; lift5 priority "
                      f"{r['lift5_priority']:.2f}; max decile gap {r['max_decile_gap']:.3f}",
                      flush=True)
            table = pooled_reliability(*[np.concatenate([r[k] for r in got])
                                         for k in ("y", "risk", "low", "high")])
            pooled.append({"variant": variant, "log": name, "max_gap": max(
                x["gap"] for x in table), "deciles": table})
            shifted = np.concatenate([level_oracle(r["risk"], r["observed"]) for r in got])
            table = pooled_reliability(*[np.concatenate([r[k] for r in got])
                                         for k in ("y",)], shifted, shifted, shifted)
            pooled.append({"variant": f"{variant} (level oracle)", "log": name,
                           "max_gap": max(x["gap"] for x in table), "deciles": table})
            rows += [{k: v for k, v in r.items() if k not in ("y", "risk", "low", "high")}
                     for r in got]
    print_table(rows, ["variant", "log", "share", "population", "churn_rate", "auc_risk",
                       "auc_recency", "auc_frequency", "auc_priority", "lift5_priority",
                       "lift5_risk", "max_decile_gap", "mean_decile_gap", "mean_predicted",
                       "observed", "mean_low", "mean_high", "level_inside", "oot_auc",
                       "folds"])
    for p in pooled:
        print(f"\npooled reliability, {p['variant']}, {p['log']} (max gap {p['max_gap']:.3f})")
        oracle = "level oracle" in p["variant"]
        print_table(p["deciles"], ["decile", "n", "predicted", "observed", "gap"] + (
            [] if oracle else ["low", "high", "inside"]))
    write_json(args.out, {"machine": machine(), "rows": rows, "pooled": pooled})


if __name__ == "__main__":
    main()
