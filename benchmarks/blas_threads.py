"""The backtest's classifiers with the default thread pools and with one BLAS thread.

The risk model already fits under ``threadpool_limits(1, "blas")`` (OpenBLAS's threads cost
10-35x on the tall, thin products of two shared cores). This measures the same for the
backtest's two classifiers on synthetic data of the backtest's shape (1M rows, 15 features):
scikit-learn's logistic regression (lbfgs; BLAS products) and histogram gradient boosting
(OpenMP threads, not BLAS), each fitted and applied with the default pools, with one BLAS
thread, and with every pool at one thread, alternating, in one process. The predictions must be
identical across the three.

    .venv/bin/python benchmarks/blas_threads.py --rows 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_json


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, 15))
    y = (x @ rng.normal(size=15) + rng.logistic(size=args.rows) > 0).astype(int)

    def logistic() -> np.ndarray:
        m = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
        return np.asarray(m.fit(x, y).predict_proba(x)[:, 1])

    def boosting() -> np.ndarray:
        m = HistGradientBoostingClassifier(max_iter=50, learning_rate=0.05, max_leaf_nodes=15,
                                           min_samples_leaf=20, l2_regularization=1.0,
                                           early_stopping=False, random_state=1)
        return np.asarray(m.fit(x, y).predict_proba(x)[:, 1])

    pools: dict[str, dict[str, Any]] = {"default": {"limits": None},
                                        "one BLAS thread": {"limits": 1, "user_api": "blas"},
                                        "every pool one thread": {"limits": 1}}
    rows = []
    for name, fit in (("logistic (lbfgs)", logistic), ("gradient boosting", boosting)):
        times: dict[str, list[float]] = {p: [] for p in pools}
        first: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):
            for pool, kw in pools.items():
                with threadpool_limits(**kw):
                    t = time.perf_counter()
                    got = fit()
                    times[pool].append(time.perf_counter() - t)
                first.setdefault(pool, got)
        base = statistics.median(times["default"])
        for pool, ts in times.items():
            rows.append({"classifier": name, "pools": pool, "median_s": statistics.median(ts),
                         "ratio": statistics.median(ts) / base,
                         "max_prediction_diff": float(np.abs(first[pool] - first["default"]).max())})
    print_table(rows, ["classifier", "pools", "median_s", "ratio", "max_prediction_diff"])
    write_json("blas-threads", {"machine": machine(), "rows": args.rows,
                                "repeats": args.repeats, "results": rows})


if __name__ == "__main__":
    main()
