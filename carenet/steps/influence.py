"""The ``influence`` analysis step: influence, exposure and seed sets for every run.

Adds per-customer columns ``influence``, ``influence_low``, ``influence_high`` (expected other
customers activated by a cascade from the customer, with its interval), the value-weighted
``value_influence*`` when the customers table has values, ``exposure``, ``exposure_low``,
``exposure_high``, ``exposure_seed`` (probability of being reached from the customers with
recent negative events and, with timestamps, from the customers who lapsed (the risk
step's ``lapsed`` column, :func:`lapsed_seeds`); leave-one-out for those customers
themselves) and ``seed_rank`` (rank in the IMM seed set, 0 when not in it). Tables:
``exposure_sources`` (which seeds and ties bring each exposed customer's exposure),
``seed_sets`` (IMM, degree and PageRank picks) and ``seed_set_comparison`` (their
simulated spread). Settings: :class:`~carenet.config.InfluenceConfig` (``[influence]`` in
the config file).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from carenet.community.influence import (
    compare_seed_sets,
    customer_values,
    exposure_scores,
    influence_scores,
    seeds_from_events,
    select_seeds,
)
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.graphs.rng import derive_seed
from carenet.steps.base import RunContext


def _values(ctx: RunContext) -> np.ndarray | None:
    if "value" not in ctx.customers:
        return None
    return customer_values(ctx.customers["value"], len(ctx.customers),
                           missing=ctx.config.influence.missing_value)


def lapsed_seeds(ctx: RunContext) -> np.ndarray:
    """Node positions of the lapsed customers that seed exposure (the risk step's
    ``lapsed`` column; none when ``lapse.seeds`` is off), the most recently active first and
    at most ``lapse.max_seeds`` of them (0: all).
    """
    lcfg = ctx.config.lapse
    if not lcfg.seeds or "lapsed" not in ctx.customers:
        return np.zeros(0, np.int64)
    nodes = np.flatnonzero(ctx.customers["lapsed"].to_numpy(bool))
    if lcfg.max_seeds and nodes.size > lcfg.max_seeds:
        act = ctx.graph.activity
        last = (act.last_seen[nodes] if act is not None else np.zeros(nodes.size))
        order = np.argsort(-np.nan_to_num(last, nan=-np.inf), kind="stable")
        nodes = np.sort(nodes[order[: lcfg.max_seeds]])
    return nodes.astype(np.int64)


# Members of the final RR sets kept from the influence estimate for the IMM seed selection
# to reuse (4 bytes each: 256 MB at most, about what IMM's own final sets take at 1M
# customers); beyond them IMM samples the rest itself.
SHARED_RR_MEMBERS = 64_000_000


EXPOSURE_PHASE = 102  # derive_seed(run seed, EXPOSURE_PHASE) seeds exposure_scores


def exposure_tie_seed(config: AnalysisConfig) -> int | None:
    """The seed of the tie coins of the exposure step's forward worlds, when they are
    Independent Cascade worlds (else None): the care plan's realisations take their live ties
    from it, so the plan's realisation r and exposure's world r are the same live-edge world
    (common random numbers). ``exposure_scores`` derives its forward seed as
    ``derive_seed(seed, 13)``; a test checks the two worlds agree.
    """
    cfg = config.influence
    if (cfg.exposure_model or cfg.model) != "ic":
        return None
    return derive_seed(derive_seed(config.seed, EXPOSURE_PHASE), 13)


def influence_step(ctx: RunContext) -> None:
    """Influence (RIS), IMM seeds (reusing the influence estimate's final RR sets) and their
    comparison, then exposure (forward worlds from recent negative events and lapses).

    Every part builds its tie probabilities with
    :meth:`~carenet.graphs.diffusion.DiffusionGraph.from_graph`, which caches them on the
    graph: one set of diffusion probabilities per run (the care step reuses it too).
    """
    cfg = ctx.config.influence
    if not cfg.enabled:
        return
    graph = ctx.graph
    n = graph.n_customers
    edge: dict[str, Any] = cfg.ties.kwargs()
    values = _values(ctx)
    ctx.progress("influence", 0, 3)
    share = cfg.seed_set_size > 0 and n > 0
    scores = influence_scores(
        graph, model=cfg.model, epsilon=cfg.epsilon, delta=cfg.delta, top=cfg.top,
        confidence=cfg.confidence, values=values, missing_value=cfg.missing_value,
        seed=derive_seed(ctx.seed, 101), max_rr_sets=cfg.max_rr_sets,
        keep_rr_members=SHARED_RR_MEMBERS if share else 0,
        max_rr_members=cfg.max_rr_members, **edge,
    )
    ctx.add_columns(scores.columns())  # type: ignore[arg-type]
    results: dict[str, object] = {"influence": scores.to_dict(top=10)}
    shared = scores.shared_rr_sets
    del scores

    ctx.progress("influence", 1, 3)
    rank = np.zeros(n, np.int64)
    if cfg.seed_set_size > 0 and n > 0:
        cost = None
        if cfg.cost_col is not None:
            if cfg.cost_col not in ctx.customers:
                raise InvalidInputError(
                    f"influence.cost_col: the customers table has no column {cfg.cost_col!r}")
            cost = pd.to_numeric(ctx.customers[cfg.cost_col], errors="coerce").to_numpy(float)
        selection = select_seeds(
            graph, cfg.seed_set_size, model=cfg.model, epsilon=cfg.epsilon, delta=cfg.delta,
            values=values, missing_value=cfg.missing_value, cost=cost, budget=cfg.seed_budget,
            confidence=cfg.confidence, seed=derive_seed(ctx.seed, 103),
            max_rr_sets=cfg.max_rr_sets, rr_sets=shared, max_rr_members=cfg.max_rr_members,
            **edge,
        )
        del shared
        rank[selection.nodes] = np.arange(1, selection.nodes.size + 1)
        pr = (ctx.customers["pagerank"].to_numpy(float) if "pagerank" in ctx.customers
              else None)
        comparison = compare_seed_sets(
            graph, selection, pagerank_scores=pr, runs=cfg.compare_runs,
            seed=derive_seed(ctx.seed, 104), values=values, missing_value=cfg.missing_value,
            confidence=cfg.confidence, scale=cfg.edge_scale, probability=cfg.edge_probability,
            error=cfg.compare_error or None,
        )
        ctx.tables["seed_set_comparison"] = comparison
        ctx.tables["seed_sets"] = selection.to_frame()
        results["seed_set"] = selection.to_dict()
        results["seed_set_comparison"] = comparison.drop(columns=["seeds"]).to_dict("records")
        results["seed_set_comparison_estimate"] = dict(comparison.attrs["estimate"])
    ctx.add_columns({"seed_rank": rank})

    ctx.progress("influence", 2, 3)
    seeds = seeds_from_events(ctx.network.events, reference_time=graph.reference_time,
                              lookback=cfg.lookback_seconds, kinds=cfg.negative_events)
    event_seeds = int(seeds.size)
    lapsed = lapsed_seeds(ctx)
    seeds = np.union1d(seeds, lapsed)
    exposure = exposure_scores(
        graph, seeds, model=cfg.exposure_model or cfg.model, runs=cfg.exposure_runs,
        error=cfg.exposure_error, budget=cfg.exposure_budget or None,
        confidence=cfg.confidence, sources=cfg.exposure_sources,
        seed=derive_seed(ctx.seed, EXPOSURE_PHASE),
        seeds_are_positions=True, recovery=cfg.sir_recovery, **edge,
    )
    ctx.add_columns(exposure.columns())  # type: ignore[arg-type]
    ctx.tables["exposure_sources"] = exposure.sources
    results["exposure"] = exposure.to_dict(top=10) | {
        "negative_events": list(cfg.negative_events), "lookback": cfg.lookback,
        "reference_time": graph.reference_time, "event_seeds": event_seeds,
        "lapsed_seeds": int(lapsed.size),
    }
    ctx.progress("influence", 3, 3)
    ctx.results["influence"] = {k: results[k] for k in
                                ("influence", "exposure", "seed_set", "seed_set_comparison",
                                 "seed_set_comparison_estimate") if k in results}
