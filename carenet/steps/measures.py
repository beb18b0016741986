"""Analysis steps for network position: centralities, then communities, roles and the
community table.

``centrality`` adds per-customer columns ``degree_in``, ``degree_out``, ``strength_in``,
``strength_out`` (recomputed by :mod:`carenet.graphs.centrality`, identical to the loader's),
``pagerank``, ``eigenvector``, ``betweenness``, ``harmonic``, ``core`` (and
``betweenness_stderr`` / ``harmonic_stderr`` when those are sampled), with how each was made
in ``results["centrality"]`` (for sampled ones: sources searched, error target and the error
reached, see :class:`carenet.config.MeasuresConfig`).

``communities`` adds ``community``, ``role``, ``within_z``, ``participation``; the table
``communities`` (one row per community, see :mod:`carenet.community.summary`); the partition's
description in ``results["communities"]``; and, when the previous run is given, community ids
carried over from it with ``results["community_changes"]`` (splits, merges, births, deaths).

Seeds are derived from the run seed and the step name, so adding a step elsewhere never
changes these results.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from carenet.community.detection import align, detect
from carenet.community.roles import RoleThresholds, roles
from carenet.community.summary import negative_customers, summarize
from carenet.graphs import centrality as cen
from carenet.graphs.rng import derive_seed
from carenet.steps.base import RunContext


def centrality_step(ctx: RunContext) -> None:
    """Degree, strength and the configured centralities as per-customer columns."""
    cfg = ctx.config.measures
    g = ctx.graph
    columns: dict[str, Any] = {
        "degree_in": cen.degree(g, direction="in").values,
        "degree_out": cen.degree(g, direction="out").values,
        "strength_in": cen.strength(g, direction="in").values,
        "strength_out": cen.strength(g, direction="out").values,
    }
    described: dict[str, Any] = {}
    if cfg.enabled:
        wanted = list(dict.fromkeys(cfg.measures))
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            ctx.progress("centrality", done, len(wanted))

        scores: list[cen.CentralityScores] = []
        if "pagerank" in wanted:
            scores.append(cen.pagerank(g, damping=cfg.pagerank_damping, tol=cfg.pagerank_tol,
                                       weighted=cfg.weighted, backend=cfg.backend))  # type: ignore[arg-type]
            tick()
        if "eigenvector" in wanted:
            scores.append(cen.eigenvector(
                g, weighted=cfg.weighted, direction=cfg.eigenvector_direction,  # type: ignore[arg-type]
                backend=cfg.backend,  # type: ignore[arg-type]
            ))
            tick()
        paths = [m for m in ("betweenness", "harmonic") if m in wanted]
        if paths:
            res = cen.shortest_path_measures(
                g, measures=paths, weighted=cfg.weighted, exact_max=cfg.exact_max,
                samples=cfg.samples, seed=derive_seed(ctx.seed, "centrality.paths", bits=31),
                confidence=cfg.confidence, backend=cfg.backend,  # type: ignore[arg-type]
                error=cfg.error or None, budget=cfg.budget,
            )
            scores.extend(res[m] for m in paths)
            for _ in paths:
                tick()
        if "core" in wanted:
            scores.append(cen.core(g, backend=cfg.backend))  # type: ignore[arg-type]
            tick()
        for s in scores:
            columns[s.measure] = s.values
            if s.stderr is not None:
                columns[f"{s.measure}_stderr"] = s.stderr
            described[s.measure] = s.to_dict(values=False)
    ctx.add_columns(columns)
    ctx.results["centrality"] = described


def communities_step(ctx: RunContext) -> None:
    """Communities (ids stable across runs), roles and the community table."""
    cfg = ctx.config.communities
    if not cfg.enabled:
        return
    g = ctx.graph
    options: dict[str, Any] = {"weighted": cfg.weighted}
    if cfg.algorithm == "leiden":
        options |= {"objective": cfg.objective, "resolution": cfg.resolution,
                    "theta": cfg.theta, "n_iterations": cfg.n_iterations}
    elif cfg.algorithm == "louvain":
        options |= {"resolution": cfg.resolution}
    partition = detect(g, algorithm=cfg.algorithm,  # type: ignore[arg-type]
                       seed=derive_seed(ctx.seed, "communities", bits=31),
                       backend=cfg.backend, **options)  # type: ignore[arg-type]
    changes = None
    previous = _previous_communities(ctx)
    if previous is not None:
        prev_labels, next_id = previous
        partition, changes = align(partition, prev_labels, min_jaccard=cfg.min_jaccard,
                                   next_id=next_id)
    thresholds = RoleThresholds(hub_z=cfg.hub_z, connector_p=cfg.connector_p,
                                bridge_p=cfg.bridge_p, peripheral_ties=cfg.peripheral_ties)
    rl = roles(g, partition.labels, weighted=cfg.weighted, thresholds=thresholds)
    ctx.add_columns({
        "community": partition.labels,
        "role": rl.role,
        "within_z": rl.within_z,
        "participation": rl.participation,
    })
    customers = ctx.customers
    pagerank = (customers["pagerank"].to_numpy(dtype=np.float64) if "pagerank" in customers
                else cen.pagerank(g, weighted=cfg.weighted).values)
    values = (pd.to_numeric(customers["value"], errors="coerce").to_numpy(dtype=np.float64)
              if "value" in customers else None)
    negative = None
    if _has_events(ctx):
        negative = negative_customers(
            ctx.network.events, g.n_customers, reference_time=g.reference_time,
            window=cfg.recent_seconds, kinds=cfg.negative_events,
        )
    ctx.tables["communities"] = summarize(
        g, partition.labels, pagerank=pagerank, values=values, negative=negative,
        roles=rl.role, top_k=cfg.top_k,
    )
    ctx.results["communities"] = partition.to_dict(values=False) | {
        "roles": rl.to_dict(values=False),
        "negative_events": list(cfg.negative_events) if negative is not None else None,
        "recent_seconds": cfg.recent_seconds,
    }
    ctx.results["community_changes"] = None if changes is None else changes.to_dict()


def _has_events(ctx: RunContext) -> bool:
    """Whether an events table was given (an empty one still means 'no negative events')."""
    return any(f.kind == "events" for f in ctx.network.report.files)


def _previous_communities(ctx: RunContext) -> tuple[pd.Series, int | None] | None:
    prev = ctx.previous
    if prev is None or "community" not in prev.customers or "customer_id" not in prev.customers:
        return None
    table = prev.customers[["customer_id", "community"]].dropna()
    labels = pd.Series(table["community"].to_numpy(dtype=np.int64),
                       index=table["customer_id"].astype(str).to_numpy())
    next_id = None
    changes = prev.results.get("community_changes") if prev.results else None
    if isinstance(changes, dict) and changes.get("next_id") is not None:
        next_id = int(changes["next_id"])
    return labels, next_id
