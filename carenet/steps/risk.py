"""The ``risk`` analysis step: lapses and a churn-risk model from the log's own timing.

Runs before ``influence`` (its lapsed customers seed the exposure cascade) and ``care``
(which turns its probability into ``risk`` and ``priority``). Adds per-customer columns:

* ``lapsed`` (active in ``[T - h - W, T - h)``, silent in ``[T - h, T)``: the rule of
  :mod:`carenet.community.lapse`), ``silent`` (no interaction in ``[T - W, T)``: already
  gone, risk 1, nothing left to protect);
* ``lapse_risk``, ``lapse_risk_low``, ``lapse_risk_high``: the calibrated probability of
  lapsing within the horizon and its interval (:mod:`carenet.community.risk`);
* ``recent_value`` (the default value of a customer without a customers table,
  ``[risk] value``), ``activity_change``, ``lapsed_contacts`` and ``risk_window_days``
  (what the reasons quote: "activity fell 80% in the last 30 days, 2 contacts lapsed").

``results["risk"]`` (run.json) holds the horizon, window, gaps, the labelled periods the
model was stacked on (``training``: how many, when, their lapse rates, the drift
correction), its out-of-time AUC, Brier score, reliability table and feature importance, and
``messages``: what the
terminal should say (fallbacks). Without timestamps the step uses a CRM ``churn_score``
when there is one, and otherwise only says that risk needs timestamps or a churn score.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from carenet.community.lapse import DAY, check_clear, choose_windows, lapsed_at
from carenet.community.risk import fit_risk
from carenet.errors import InvalidInputError
from carenet.graphs.build import parse_duration
from carenet.steps.base import RunContext

NO_TIME = ("risk needs timestamps or a churn score: this log has no timestamp column and "
           "the customers table no churn_score, so risk comes only from the events given "
           "(name the time column with --time-col, or give --customers with churn_score)")


def _duration(text: str | None, key: str) -> float | None:
    if text is None:
        return None
    value = parse_duration(text)
    if value is None or not value > 0:
        raise InvalidInputError(f"{key} must be a positive duration such as 30d, not {text!r}")
    return value


def risk_step(ctx: RunContext) -> None:
    """Lapses, gaps and the out-of-time churn-risk model (see the module docstring)."""
    cfg, lcfg = ctx.config.risk, ctx.config.lapse
    if not (cfg.enabled or lcfg.enabled):
        return
    n = ctx.graph.n_customers
    inter = ctx.network.interactions
    results: dict[str, Any] = {"messages": []}
    churn = (ctx.customers["churn_score"].to_numpy(np.float64, na_value=np.nan)
             if "churn_score" in ctx.customers and ctx.customers["churn_score"].notna().any()
             else None)
    if inter is None or len(inter) == 0:
        if churn is not None and cfg.enabled:
            r = np.clip(np.nan_to_num(churn, nan=0.0), 0.0, 1.0)
            ctx.add_columns({"lapse_risk": r, "lapse_risk_low": r, "lapse_risk_high": r})
            results |= {"method": "churn_score",
                        "messages": ["risk: no timestamps, so risk is the customers table's "
                                     "churn_score (no lapse detection, no model)"]}
        else:
            results |= {"method": None, "messages": [NO_TIME]}
        ctx.results["risk"] = results
        return
    src = inter.src.astype(np.int64)
    dst = inter.dst.astype(np.int64)
    t = inter.time
    ref = ctx.graph.reference_time
    tmax = float(t.max())
    at = float(np.nextafter(tmax, np.inf)) if ref is None or ref >= tmax else float(ref)
    keep = t < at
    if not keep.all():
        src, dst, t = src[keep], dst[keep], t[keep]
    horizon = _duration(lcfg.horizon, "lapse.horizon")
    window = _duration(lcfg.window, "lapse.window")
    min_gap = _duration(lcfg.min_gap, "lapse.min_gap")
    ctx.progress("risk", 0, 2)
    win = choose_windows(src, dst, t, horizon=horizon, window=window, min_gap=min_gap,
                         quantile=lcfg.quantile)
    h, w = win.horizon, win.window
    results["lapse"] = win.to_dict() | {"reference_time": at}
    if win.gaps:
        results["messages"].append(
            f"the log has {len(win.gaps)} period(s) with no interactions at all, the longest "
            f"{max(g.days for g in win.gaps):.3g} days: "
            + "; ".join(g.describe() for g in win.gaps[:3]))
    if horizon is not None or window is not None:
        check_clear(win.gaps, at - h - w, at, "the lapse horizon and window before the "
                    "reference time")
    lap = lapsed_at(src, dst, t, n, at=at, horizon=h, window=w)
    results["lapse"] |= {"lapsed": lap.lapses, "active_before": lap.population}
    comm = ctx.customers["community"].to_numpy() if "community" in ctx.customers else None
    role = (ctx.customers["role"].to_numpy() if cfg.role and "role" in ctx.customers
            else None)
    chan: np.ndarray | None = inter.channel[keep]
    if chan is not None and not (chan >= 0).any():
        chan = None
    ctx.progress("risk", 1, 2)
    model = fit_risk(src, dst, t, n, at=at, horizon=h, window=w, gaps=win.gaps, channel=chan,
                     community=comm, role=role, churn_score=churn,
                     min_lapses=cfg.min_lapses, calibration=cfg.calibration, c=cfg.l2,
                     confidence=cfg.confidence, folds=cfg.folds, decay=cfg.fold_decay,
                     drift=cfg.drift, exposure=cfg.exposure)
    f = model.features
    value = {"active_days": f["active_days_window"].to_numpy(float),
             "log_active_days": np.log1p(f["active_days_window"].to_numpy(float)),
             "interactions": (f["sent_window"] + f["received_window"]).to_numpy(float),
             "unit": np.ones(n)}[cfg.value]
    cols: dict[str, Any] = {
        "lapsed": lap.lapsed, "silent": ~model.active,
        "recent_value": value,
        "activity_change": f["activity_change"].to_numpy(float),
        "lapsed_contacts": f["lapsed_contacts"].to_numpy(float),
        "risk_window_days": np.full(n, w / DAY),
    }
    if cfg.enabled:
        cols |= {"lapse_risk": model.risk, "lapse_risk_low": model.low,
                 "lapse_risk_high": model.high}
    ctx.add_columns(cols)
    results |= model.to_dict() if cfg.enabled else {"method": None}
    results["horizon_days"] = h / DAY
    results["value"] = cfg.value
    if model.fallback:
        results["messages"].append(f"risk: {model.fallback}")
    oot = results.get("out_of_time")
    if cfg.enabled and oot:
        results["messages"].append(
            f"risk: out-of-time AUC {oot['auc']:.3f}, Brier {oot['brier']:.4f} "
            f"({oot['lapses']:,} of {oot['population']:,} lapsed within {h / DAY:.3g} days; "
            f"model trained on {results['training'].get('folds', 1)} labelled period(s))")
    ctx.progress("risk", 2, 2)
    ctx.results["risk"] = results
