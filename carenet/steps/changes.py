"""The ``changes`` analysis step: what changed since the previous run.

Runs last, so every score of this run exists. Without a previous run it records nothing
(``results["changes"] = None``). With one (``carenet analyze --previous DIR``), it adds the
tables ``rising_customers`` (the customers whose influence, exposure or priority rose most,
:func:`~carenet.community.changes.rising_customers`) and ``community_events`` (splits, merges,
births, deaths and lost hubs, :func:`~carenet.community.changes.community_events`), and a
summary in ``results["changes"]``. Settings: :class:`~carenet.config.ChangesConfig`.
"""

from __future__ import annotations

from carenet.community.changes import community_events, rising_customers
from carenet.steps.base import RunContext


def changes_step(ctx: RunContext) -> None:
    """Rising customers and community events against ``ctx.previous``."""
    cfg = ctx.config.changes
    if not cfg.enabled:
        return
    prev = ctx.previous
    if prev is None:
        ctx.results["changes"] = None
        return
    ctx.progress("changes")
    risers = rising_customers(prev.customers, ctx.customers, metrics=cfg.metrics, top=cfg.top)
    events = community_events(prev.customers, ctx.customers,
                              ctx.results.get("community_changes"))
    ctx.tables["rising_customers"] = risers
    ctx.tables["community_events"] = events
    ctx.results["changes"] = {
        "previous_run": prev.run_id,
        "customers_compared": int(ctx.customers["customer_id"].astype(str)
                                  .isin(prev.customers["customer_id"].astype(str)).sum()),
        "new_customers": int((~ctx.customers["customer_id"].astype(str)
                              .isin(prev.customers["customer_id"].astype(str))).sum()),
        "rising": {
            metric: {
                "customers": int((risers["metric"] == metric).sum()),
                "significant": int(risers.loc[risers["metric"] == metric,
                                              "significant"].sum()),
                "top": risers.loc[risers["metric"] == metric, "customer_id"].head(5).tolist(),
            }
            for metric in cfg.metrics
        },
        "community_events": events["kind"].value_counts().sort_index().to_dict(),
        "lost_hubs": events.loc[events["kind"] == "lost_hub", "community"].astype(int).tolist(),
    }
