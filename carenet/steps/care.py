"""The ``care`` analysis step: priority and reasons for every customer, and the care plan.

Adds per-customer columns ``risk``, ``priority``, ``priority_low``, ``priority_high``,
``priority_rank`` (1 = contact first; ties by id), ``plan_rank`` (rank in the care plan, 0 when
not in it) and ``reason`` (one plain sentence; "" beyond the explained customers: every plan
member and the ``reasons_top`` first by priority). Tables: ``care_plan`` (plan order:
``customer_id, rank, priority, gain, protected, protected_low, protected_high, reason,
community, role``, plus ``greedy_gain``), ``care_reasons`` (the structured reasons) and
``care_comparison`` (plan against top-k by priority, degree, PageRank and at random on fresh
simulations). Settings: :class:`~carenet.config.CareConfig` (``[care]``); the formulas are in
:mod:`carenet.community.care`. Needs the influence step (``exposure`` and ``influence``).

:func:`compute_care` is the step without a run context: ``carenet plan`` calls it on a saved
run with another budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from carenet.community.care import (
    blocking_model,
    care_plan,
    carried_at_risk,
    churn_scores,
    last_events,
    priorities,
    reasons,
)
from carenet.community.influence import customer_values
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.graphs.model import CustomerGraph
from carenet.graphs.rng import derive_seed
from carenet.steps.base import Progress, RunContext, no_progress
from carenet.steps.influence import exposure_tie_seed


@dataclass
class CareOutput:
    """What the care computation adds to a run: columns, tables and the results entry."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


def _value_of(c: pd.DataFrame, use_values: bool, missing: float) -> np.ndarray:
    """Each customer's value: the ``value`` column, else the risk step's ``recent_value``."""
    if use_values and "value" in c and c["value"].notna().any():
        vals = customer_values(c["value"], len(c), missing=missing)
        if vals is not None:
            return vals
    if "recent_value" in c:
        return np.nan_to_num(c["recent_value"].to_numpy(np.float64)).clip(min=0)
    return np.ones(len(c))


def compute_care(
    config: AnalysisConfig,
    graph: CustomerGraph,
    customers: pd.DataFrame,
    events: pd.DataFrame | None,
    exposure_sources: pd.DataFrame | None,
    *,
    progress: Progress = no_progress,
) -> CareOutput:
    """Priority, reasons and the care plan of ``config.care`` for one run's tables."""
    cfg = config.care
    inf = config.influence
    c = customers.copy()
    out = CareOutput()
    if "exposure" not in c or "influence" not in c:
        out.results = {"skipped": "the care step needs the influence step (columns exposure "
                                  "and influence)"}
        return out
    if cfg.churn_col is not None and cfg.churn_col not in c and cfg.churn_col != "churn_score":
        raise InvalidInputError(f"care.churn_col: the customers table has no column "
                                f"{cfg.churn_col!r}")
    n = graph.n_customers
    ref = graph.reference_time
    progress("care", 0, 3)
    recent = last_events(events, n, kinds=inf.negative_events, reference_time=ref,
                         lookback=inf.lookback_seconds)
    lost = last_events(events, n, kinds=cfg.lost_events, reference_time=ref,
                       lookback=None) != ""
    seeds = (c["exposure_seed"].fillna(False).to_numpy(bool) if "exposure_seed" in c
             else recent != "")
    use_model = bool("lapse_risk" in c and c["lapse_risk"].notna().any())
    carried = None
    if use_model:
        live_risk = np.nan_to_num(c["lapse_risk"].to_numpy(np.float64))
        if "silent" in c:
            live_risk = np.where(c["silent"].fillna(False).to_numpy(bool), 0.0, live_risk)
        carried = carried_at_risk(graph, live_risk,
                                  _value_of(c, cfg.use_values, inf.missing_value), inf.ties)
    pr = priorities(c, retention=cfg.retention, source_risk=cfg.source_risk,
                    churn_col=cfg.churn_col, use_values=cfg.use_values,
                    missing_value=inf.missing_value, seeds=seeds, lost=lost,
                    carried_risk=carried)
    lost = pr.lost
    for name, values in pr.columns().items():
        c[name] = values
    plan_rank = np.zeros(n, np.int64)
    formula = ("priority = retention * risk * (value + carried); risk = 1 - (1 - "
               "exposure) * (1 - churn_score) [* (1 - source_risk) with a recent "
               "negative event]; carried = "
               + ("influence (unit values)" if pr.unit_values else "value_influence"))
    if use_model:
        formula = ("priority = retention * risk * (value + carried); risk = the risk "
                   "model's calibrated probability of lapsing within the horizon [1 - (1 - "
                   "risk) * (1 - source_risk) with a recent negative event]; value = "
                   + ("the value column" if cfg.use_values and "value" in c
                      and c["value"].notna().any()
                      else "recent_value")
                   + "; carried = the value at risk one carries along, sum of tie "
                   "probability * risk * value over one's ties; "
                   "customers silent over the whole window: lost, priority 0")
    results: dict[str, Any] = {
        "formula": formula, "risk_from": "model" if use_model else "exposure",
        "retention": cfg.retention, "source_risk": cfg.source_risk,
        "churn_col": cfg.churn_col if cfg.churn_col in c else None,
        "values": "unit" if pr.unit_values else "value",
        "lost_customers": int(lost.sum()), "risk_sources": int(seeds.sum()),
        "mean_risk": float(pr.risk[~lost].mean()) if (~lost).any() else 0.0,
    }
    progress("care", 1, 3)
    plan = None
    budget = min(cfg.budget, int((~lost).sum()))
    if budget > 0:
        model = blocking_model(
            graph, values=pr.value,
            churn=(np.where(lost, 0.0, pr.risk) if use_model
                   else churn_scores(c, cfg.churn_col)),
            seeds=seeds,
            lost=lost, retention=cfg.retention, source_risk=cfg.source_risk,
            churn_spreads=cfg.churn_spreads, ties=inf.ties,
        )
        plan = care_plan(
            graph, model, budget, priority=pr.priority,
            pagerank_scores=c["pagerank"].to_numpy(float) if "pagerank" in c else None,
            runs=cfg.plan_runs, max_entries=cfg.plan_max_entries,
            evaluation_runs=cfg.evaluation_runs, compare_k=cfg.compare_k,
            confidence=cfg.confidence, seed=derive_seed(config.seed, "care.plan", bits=31),
            evaluation_error=cfg.evaluation_error or None,
            evaluation_min_runs=cfg.evaluation_min_runs, evaluation_work=cfg.evaluation_work,
            plan_error=cfg.plan_error or None, plan_min_runs=cfg.plan_min_runs,
            tie_seed=exposure_tie_seed(config),
        )
        plan_rank[plan.nodes] = np.arange(1, plan.nodes.size + 1)
    c["plan_rank"] = plan_rank
    progress("care", 2, 3)
    top = np.flatnonzero(pr.rank <= cfg.reasons_top)
    explained = np.union1d(top, plan.nodes if plan is not None else np.zeros(0, np.int64))
    explained = explained[np.argsort(pr.rank[explained], kind="stable")]
    why = reasons(graph, c, explained, exposure_sources=exposure_sources,
                  recent_event=recent, lost=lost, churn_col=cfg.churn_col,
                  ties=cfg.reason_ties, lookback=inf.lookback)
    sentence = np.full(n, "", dtype=object)
    sentence[explained] = why["reason"].to_numpy()
    out.columns = pr.columns() | {"plan_rank": plan_rank, "reason": sentence}
    out.tables["care_reasons"] = why
    if plan is not None:
        frame = plan.to_frame()
        frame.insert(2, "priority", pr.priority[plan.nodes])
        frame["reason"] = sentence[plan.nodes]
        frame["community"] = (c["community"].to_numpy()[plan.nodes] if "community" in c
                              else pd.NA)
        frame["role"] = c["role"].to_numpy()[plan.nodes] if "role" in c else pd.NA
        frame["greedy_gain"] = plan.greedy_gain
        out.tables["care_plan"] = frame
        out.tables["care_comparison"] = plan.comparison
        results["plan"] = plan.to_dict()
    results["explained"] = int(explained.size)
    progress("care", 3, 3)
    out.results = results
    return out


def care_step(ctx: RunContext) -> None:
    """Priority, reasons and the budgeted care plan."""
    if not ctx.config.care.enabled:
        return
    out = compute_care(ctx.config, ctx.graph, ctx.customers, ctx.network.events,
                       ctx.tables.get("exposure_sources"), progress=ctx.progress)
    ctx.add_columns(out.columns)  # type: ignore[arg-type]
    ctx.tables.update(out.tables)
    ctx.results["care"] = out.results
