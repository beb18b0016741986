"""How well the past tells the coming horizon's lapse rate: the level behind risk calibration.

The risk model's ranking comes from customer features; its **level** (the mean risk) is set
by ``drift = "level"`` to the mean lapse rate of the stacked labelled periods. On the two real
logs of ``risk_real.py`` (cut at 45% to 80% of their span, horizon and window chosen by the
analysis from the log before the cutoff), this script compares the observed lapse rate of
the horizon after each cutoff with what the log before the cutoff offers as its estimate:

* ``stack``: the mean rate of the labelled periods one horizon apart (what the model uses;
  up to 6, window inside the log);
* ``latest``: the latest period alone (``drift = "latest"``);
* ``sliding``: the mean rate over every start time, every eighth of a horizon;
* ``week``: the periods at the same time of the week, 1-3 weeks back;
* ``week1``: the same time of the week, one week back.

Per estimator: mean error (bias) and mean absolute error over the eight cutoffs. Then the
**weekly profile** of each log: the lapse rate of a fixed horizon (SMS 3.5 days, CollegeMsg
10 days) at start times every 12 hours, and its range by day of the week, which shows what
moves the level.

    .venv/bin/python benchmarks/risk_level.py   # writes benchmarks/results/risk-level.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_json
from risk_real import DATASETS, SHARES, load

from carenet.community.lapse import DAY, choose_windows, silence

WEEK = 7 * DAY
PROFILE_HORIZON = {"sms": 3.5 * DAY, "collegemsg": 10 * DAY}


def encode(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Node positions of the sources and targets, the times and the number of customers."""
    ids = pd.Index(pd.unique(pd.concat([df.source, df.target])))
    return (ids.get_indexer(df.source), ids.get_indexer(df.target),
            df.timestamp.to_numpy(np.float64), len(ids))


def rate(src: np.ndarray, dst: np.ndarray, t: np.ndarray, n: int, cutoff: float,
         h: float, w: float) -> float:
    """Lapse rate of the customers active in ``[cutoff - w, cutoff)`` over the next ``h``."""
    s = silence(src, dst, t, n, cutoff=cutoff, horizon=h, window=w)
    return s.lapses / s.population if s.population else float("nan")


def estimates(src: np.ndarray, dst: np.ndarray, t: np.ndarray, n: int, cutoff: float,
              h: float, w: float) -> dict[str, float]:
    """Every estimator's value from the interactions before ``cutoff`` only."""
    m = t < cutoff
    s, d, tt = src[m], dst[m], t[m]
    start = float(tt.min())

    def r(c: float) -> float:
        return rate(s, d, tt, n, c, h, w)

    stack = [r(cutoff - k * h) for k in range(1, 7) if k == 1 or cutoff - k * h - w >= start]
    grid = np.arange(start + w, cutoff - h + 1, h / 8)
    week = [r(cutoff - j * WEEK) for j in (1, 2, 3)
            if cutoff - j * WEEK - w >= start and cutoff - j * WEEK + h <= cutoff]
    return {"stack": float(np.mean(stack)), "latest": stack[0],
            "sliding": float(np.mean([r(c) for c in grid])),
            "week": float(np.mean(week)) if week else float("nan"),
            "week1": week[0] if week else float("nan"), "periods": len(stack)}


def profile(src: np.ndarray, dst: np.ndarray, t: np.ndarray, n: int,
            h: float) -> list[dict[str, Any]]:
    """Lapse rate of a fixed horizon (window = horizon) at start times every 12 hours."""
    t0, t1 = float(t.min()), float(t.max())
    rows = []
    for c in np.arange(t0 + h, t1 - h, DAY / 2):
        stamp = pd.Timestamp(c, unit="s")
        rows.append({"share": round((c - t0) / (t1 - t0), 3), "weekday": stamp.day_name()[:3],
                     "week": int((c - t0) // WEEK), "rate": rate(src, dst, t, n, c, h, h)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--out", default="risk-level", help="results file name")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    profiles: dict[str, list[dict[str, Any]]] = {}
    by_day: list[dict[str, Any]] = []
    for name in ("collegemsg", "sms"):
        src, dst, t, n = encode(load(name, args.datasets))
        t0, t1 = float(t.min()), float(t.max())
        got = []
        for share in SHARES:
            cutoff = t0 + share * (t1 - t0)
            m = t < cutoff
            win = choose_windows(src[m], dst[m], t[m])
            h, w = win.horizon, win.window
            row = {"log": name, "share": share, "horizon_days": h / DAY,
                   "observed": rate(src, dst, t, n, cutoff, h, w)}
            row |= estimates(src, dst, t, n, cutoff, h, w)
            got.append(row)
        rows += got
        for key in ("stack", "latest", "sliding", "week", "week1"):
            err = np.array([r[key] - r["observed"] for r in got])
            ok = ~np.isnan(err)
            summary.append({"log": name, "estimator": key, "cutoffs": int(ok.sum()),
                            "bias": float(err[ok].mean()),
                            "mae": float(np.abs(err[ok]).mean())})
        prof = profile(src, dst, t, n, PROFILE_HORIZON[name])
        profiles[name] = prof
        frame = pd.DataFrame(prof)
        for day, part in frame.groupby("weekday", sort=False):
            by_day.append({"log": name, "weekday": day, "starts": len(part),
                           "mean": float(part.rate.mean()), "min": float(part.rate.min()),
                           "max": float(part.rate.max())})
    print_table(rows, ["log", "share", "horizon_days", "periods", "observed", "stack",
                       "latest", "sliding", "week", "week1"])
    print()
    print_table(summary, ["log", "estimator", "cutoffs", "bias", "mae"])
    print()
    print_table(by_day, ["log", "weekday", "starts", "mean", "min", "max"])
    write_json(args.out, {"machine": machine(), "cutoffs": rows, "estimators": summary,
                          "weekday": by_day, "profiles": profiles})


if __name__ == "__main__":
    main()
