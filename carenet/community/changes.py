"""Run-to-run change: who became more influential or more exposed, and what happened to the
communities (splits, merges, births, deaths, lost hubs) since the previous run.

A care team acts on change more than on levels: a customer whose exposure doubled since last
week is news, one who has always been exposed is not. Both functions compare two per-customer
tables (the previous run's and the current one's) joined on ``customer_id``; community ids are
comparable because the communities step aligns them with the previous run
(:func:`carenet.community.detection.align`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from carenet.errors import InvalidInputError

HUB_ROLES: tuple[str, ...] = ("community hub", "connector hub")
"""Roles that make a customer a hub of her community (:mod:`carenet.community.roles`)."""

RISER_COLUMNS: tuple[str, ...] = (
    "metric", "rank", "customer_id", "previous", "current", "change", "relative",
    "significant", "community", "role",
)
EVENT_COLUMNS: tuple[str, ...] = ("kind", "community", "previous", "customers", "detail")


def _check(frame: pd.DataFrame, which: str) -> None:
    if "customer_id" not in frame:
        raise InvalidInputError(f"the {which} customers table has no customer_id column")


def rising_customers(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("influence", "exposure", "priority"),
    top: int = 100,
) -> pd.DataFrame:
    """The ``top`` customers per metric whose score rose most since the previous run.

    Only customers present in both runs are compared (a new customer has no change). A rise
    is ``significant`` when the metric has intervals (``<metric>_low``/``_high`` columns in
    both runs) and the current lower bound exceeds the previous upper bound; without
    intervals it is False. ``relative`` is the change over the previous value (NaN when that
    is 0). Metrics missing from either run are skipped. Columns: :data:`RISER_COLUMNS`.

    >>> prev = pd.DataFrame({"customer_id": ["a", "b", "c"], "exposure": [0.1, 0.5, 0.2]})
    >>> cur = pd.DataFrame({"customer_id": ["a", "b", "d"], "exposure": [0.4, 0.3, 0.9]})
    >>> rising_customers(prev, cur, metrics=["exposure"])[["customer_id", "change"]].round(2)
      customer_id  change
    0           a     0.3
    """
    _check(previous, "previous")
    _check(current, "current")
    if top < 1:
        raise InvalidInputError(f"top must be >= 1, not {top}")
    prev = previous.assign(customer_id=previous["customer_id"].astype(str)).set_index(
        "customer_id")
    cur = current.assign(customer_id=current["customer_id"].astype(str)).set_index(
        "customer_id")
    common = cur.index.intersection(prev.index)
    parts: list[pd.DataFrame] = []
    for metric in metrics:
        if metric not in prev or metric not in cur:
            continue
        before = pd.to_numeric(prev.loc[common, metric], errors="coerce").to_numpy(np.float64)
        after = pd.to_numeric(cur.loc[common, metric], errors="coerce").to_numpy(np.float64)
        change = after - before
        keep = np.flatnonzero(np.isfinite(change) & (change > 0))
        if len(keep) == 0:
            continue
        # largest rise first; ties by customer id for a stable order
        ids = common.to_numpy()[keep].astype(str)
        order = np.lexsort((ids, -change[keep]))[:top]
        rows = keep[order]
        significant = np.zeros(len(rows), bool)
        low, high = f"{metric}_low", f"{metric}_high"
        if low in cur and high in prev:
            now_low = pd.to_numeric(cur.loc[common, low], errors="coerce").to_numpy(np.float64)
            was_high = pd.to_numeric(prev.loc[common, high],
                                     errors="coerce").to_numpy(np.float64)
            significant = now_low[rows] > was_high[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.where(before[rows] > 0, change[rows] / before[rows], np.nan)
        part = pd.DataFrame({
            "metric": metric,
            "rank": np.arange(1, len(rows) + 1, dtype=np.int64),
            "customer_id": common.to_numpy()[rows].astype(str),
            "previous": before[rows],
            "current": after[rows],
            "change": change[rows],
            "relative": relative,
            "significant": significant,
        })
        for column in ("community", "role"):
            part[column] = (cur.loc[part["customer_id"], column].to_numpy()
                            if column in cur else None)
        parts.append(part)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in RISER_COLUMNS})
    return pd.concat(parts, ignore_index=True)[list(RISER_COLUMNS)]


def _hubs(frame: pd.DataFrame) -> pd.DataFrame:
    """customer_id, community of the hubs in a customers table (empty without roles)."""
    if "role" not in frame or "community" not in frame:
        return pd.DataFrame({"customer_id": pd.Series(dtype=str),
                             "community": pd.Series(dtype=np.int64)})
    hubs = frame.loc[frame["role"].isin(HUB_ROLES), ["customer_id", "community"]]
    return hubs.assign(customer_id=hubs["customer_id"].astype(str),
                       community=hubs["community"].astype(np.int64))


def _ids(values: Sequence[Any]) -> str:
    return " ".join(str(v) for v in values)


def community_events(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    changes: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """One row per notable community change since the previous run.

    ``changes`` is the communities step's ``community_changes`` result (splits, merges,
    births and deaths from :func:`~carenet.community.detection.align`); this adds
    ``lost_hub``: a community that continues (same id in both runs) whose previous hubs are
    all no longer hubs of it (they left, lost the role or are gone from the log), the
    moment a care team loses its natural relay there. Columns: :data:`EVENT_COLUMNS`;
    ``previous`` and ``customers`` are space-separated ids (previous communities, hubs).
    """
    _check(previous, "previous")
    _check(current, "current")
    rows: list[dict[str, Any]] = []
    changes = changes or {}
    for split in changes.get("splits", []):
        into = split["into"]
        rows.append({"kind": "split", "community": int(into[0]),
                     "previous": str(split["previous"]), "customers": "",
                     "detail": f"community {split['previous']} split into "
                               f"{', '.join(map(str, into))}"})
    for merge in changes.get("merges", []):
        rows.append({"kind": "merge", "community": int(merge["community"]),
                     "previous": _ids(merge["from"]), "customers": "",
                     "detail": f"communities {', '.join(map(str, merge['from']))} merged "
                               f"into {merge['community']}"})
    for c in changes.get("births", []):
        rows.append({"kind": "birth", "community": int(c), "previous": "", "customers": "",
                     "detail": f"community {c} is new"})
    for c in changes.get("deaths", []):
        rows.append({"kind": "death", "community": int(c), "previous": str(c),
                     "customers": "", "detail": f"community {c} no longer exists"})

    was, now = _hubs(previous), _hubs(current)
    if len(was) and "community" in current:
        alive = set(current["community"].astype(np.int64).tolist())
        now_pairs = set(zip(now["customer_id"], now["community"], strict=True))
        ids_now = current["customer_id"].astype(str).tolist()
        community_of = dict(zip(ids_now, current["community"].astype(np.int64).tolist(),
                                strict=True))
        role_of = dict(zip(ids_now, current["role"].astype(str).tolist(), strict=True))
        for community, group in was.groupby("community", sort=True):
            c = int(str(community))
            if c not in alive:
                continue  # a death (or a split), reported above
            ids = sorted(group["customer_id"].tolist())
            if any((i, c) in now_pairs for i in ids):
                continue
            fates = []
            for i in ids:
                if i not in community_of:
                    fates.append(f"{i} is gone")
                elif community_of[i] != c:
                    fates.append(f"{i} moved to community {community_of[i]}")
                else:
                    fates.append(f"{i} is now {role_of[i]}")
            new_hubs = sorted(now.loc[now["community"] == c, "customer_id"].tolist())
            tail = (f"; its hubs now: {', '.join(new_hubs)}" if new_hubs
                    else "; it has no hub now")
            rows.append({"kind": "lost_hub", "community": c, "previous": str(c),
                         "customers": _ids(ids),
                         "detail": f"community {c} lost its hub{'s' if len(ids) > 1 else ''}: "
                                   f"{'; '.join(fates)}{tail}"})
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    order = {"lost_hub": 0, "split": 1, "merge": 2, "death": 3, "birth": 4}
    frame = pd.DataFrame(rows)[list(EVENT_COLUMNS)]
    frame["_o"] = frame["kind"].map(order)
    return (frame.sort_values(["_o", "community"], kind="stable")
            .drop(columns="_o").reset_index(drop=True))


__all__ = ["EVENT_COLUMNS", "HUB_ROLES", "RISER_COLUMNS", "community_events",
           "rising_customers"]
