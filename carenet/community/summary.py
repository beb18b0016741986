"""One row per community: what a care strategist reads before opening a community.

Columns of :func:`summarize` (ties and weights on the undirected view, each tie once):

``community``, ``size``; ``internal_ties`` and ``density`` (internal ties over possible pairs,
``size * (size - 1) / 2``); ``internal_weight`` and ``external_weight`` (tie weight inside and
leaving); ``conductance`` (``external / (2 internal + external)``: the share of the members'
tie volume that leaves, 0 for a closed group); ``value_total``, ``value_mean`` and
``value_known`` (over members with a known ``value``; NaN without values);
``negative_customers`` and ``negative_share`` (members with a negative event, by default churn,
complaint or detractor, in the ``window`` before the reference time; NaN without events);
``hubs``, ``connector_hubs``, ``bridges`` (role counts, when roles are given);
``top_customers`` (the ``top_k`` members by PageRank, ``;``-separated ids) and
``strongest_links`` (the ``top_k`` other communities by tie weight to this one, as
``community:weight`` pairs, ``;``-separated). Rows are ordered by community id.

>>> import numpy as np
>>> from carenet.graphs.model import CustomerGraph
>>> g = CustomerGraph.from_edges(list("abcd"), [0, 1, 2], [1, 2, 3], directed=False)
>>> t = summarize(g, np.array([0, 0, 1, 1]), pagerank=np.array([.1, .4, .4, .1]))
>>> t[["community", "size", "internal_ties", "external_weight", "strongest_links"]]
   community  size  internal_ties  external_weight strongest_links
0          0     2              1              1.0             1:1
1          1     2              1              1.0             0:1
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from carenet.errors import InvalidInputError
from carenet.graphs.model import CustomerGraph

NEGATIVE_EVENTS: tuple[str, ...] = ("churn", "complaint", "detractor")
"""Event types counted as negative by default."""


def negative_customers(
    events: pd.DataFrame | None,
    n_customers: int,
    *,
    reference_time: float | None,
    window: float | None,
    kinds: Collection[str] = NEGATIVE_EVENTS,
) -> np.ndarray | None:
    """Boolean per customer: a negative event in ``(reference_time - window, reference_time]``.

    ``events`` has ``node`` (position) and ``event`` columns and, when ``window`` is given,
    ``timestamp`` (epoch seconds). Without a reference time the newest event's time is used;
    ``window=None`` counts negative events of any age up to the reference time. Returns
    None when there is no events table.
    """
    if events is None or "node" not in events or "event" not in events:
        return None
    frame = events[events["event"].astype(str).str.lower().isin({k.lower() for k in kinds})]
    if "timestamp" in frame and len(frame):
        t = pd.to_numeric(frame["timestamp"], errors="coerce").to_numpy(dtype=np.float64)
        ref = reference_time
        if ref is None:
            ref = float(np.nanmax(t)) if np.isfinite(t).any() else None
        if ref is not None:
            keep = ~(t > ref)  # events after the reference time are not "recent"
            if window is not None:
                keep &= t > ref - window
            frame = frame[keep]
    out = np.zeros(n_customers, dtype=bool)
    nodes = frame["node"].to_numpy(dtype=np.int64)
    out[nodes[(nodes >= 0) & (nodes < n_customers)]] = True
    return out


def summarize(
    graph: CustomerGraph,
    labels: np.ndarray,
    *,
    pagerank: np.ndarray | None = None,
    values: np.ndarray | None = None,
    negative: np.ndarray | None = None,
    roles: np.ndarray | None = None,
    top_k: int = 5,
) -> pd.DataFrame:
    """The community table (see the module docstring for the columns).

    ``labels``, ``pagerank``, ``values`` (e.g. customer lifetime value, NaN = unknown),
    ``negative`` (see :func:`negative_customers`) and ``roles`` are aligned to node positions.
    """
    n = graph.n_customers
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu" or (n and labels.min() < 0):
        raise InvalidInputError(
            f"labels must hold one non-negative integer community per customer ({n})"
        )
    if top_k < 0:
        raise InvalidInputError(f"top_k must be >= 0, not {top_k}")
    for name, arr in (("pagerank", pagerank), ("values", values), ("negative", negative),
                      ("roles", roles)):
        if arr is not None and len(arr) != n:
            raise InvalidInputError(f"{name} must have one entry per customer ({n})")
    ids, dense = np.unique(labels, return_inverse=True) if n else (np.zeros(0, np.int64),
                                                                   labels)
    k = len(ids)
    size = np.bincount(dense, minlength=k)
    view = graph.undirected_view()
    s = view.sources()
    t = view.indices
    w = view.weights
    keep = s < t  # each undirected tie once; self-loops are not ties between customers
    cs, ct, w1 = dense[s[keep]], dense[t[keep]], w[keep]
    inside = cs == ct
    internal_ties = np.bincount(cs[inside], minlength=k)
    internal_weight = np.bincount(cs[inside], weights=w1[inside], minlength=k)
    out_a, out_b, out_w = cs[~inside], ct[~inside], w1[~inside]
    external_weight = (np.bincount(out_a, weights=out_w, minlength=k)
                       + np.bincount(out_b, weights=out_w, minlength=k))
    pairs = size.astype(np.float64) * (size - 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(pairs > 0, internal_ties / np.where(pairs > 0, pairs, 1), 0.0)
        volume = 2 * internal_weight + external_weight
        conductance = np.where(volume > 0, external_weight / np.where(volume > 0, volume, 1),
                               0.0)
    table = pd.DataFrame({
        "community": ids.astype(np.int64),
        "size": size.astype(np.int64),
        "internal_ties": internal_ties.astype(np.int64),
        "density": density,
        "internal_weight": internal_weight,
        "external_weight": external_weight,
        "conductance": conductance,
    })
    if values is not None:
        v = np.asarray(values, dtype=np.float64)
        known = np.isfinite(v)
        total = np.bincount(dense[known], weights=v[known], minlength=k)
        count = np.bincount(dense[known], minlength=k)
        table["value_total"] = np.where(count > 0, total, np.nan)
        table["value_mean"] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        table["value_known"] = count.astype(np.int64)
    else:
        table["value_total"] = np.nan
        table["value_mean"] = np.nan
        table["value_known"] = 0
    if negative is not None:
        neg = np.bincount(dense[np.asarray(negative, dtype=bool)], minlength=k)
        table["negative_customers"] = neg.astype(np.int64)
        table["negative_share"] = neg / np.maximum(size, 1)
    else:
        table["negative_customers"] = pd.array([pd.NA] * k, dtype="Int64")
        table["negative_share"] = np.nan
    if roles is not None:
        r = np.asarray(roles, dtype=object)
        for column, role in (("hubs", "community hub"), ("connector_hubs", "connector hub"),
                             ("bridges", "bridge")):
            table[column] = np.bincount(dense[r == role], minlength=k).astype(np.int64)
    table["top_customers"] = _top_members(graph.ids, dense, pagerank, k, top_k)
    table["strongest_links"] = _strongest_links(out_a, out_b, out_w, ids, k, top_k)
    return table


def _top_members(
    ids: np.ndarray, dense: np.ndarray, score: np.ndarray | None, k: int, top_k: int,
) -> list[str]:
    if score is None or top_k == 0 or len(dense) == 0:
        return [""] * k
    score = np.asarray(score, dtype=np.float64)
    # by community, then score descending, then position (deterministic ties)
    order = np.lexsort((np.arange(len(dense)), -score, dense))
    grouped = dense[order]
    starts = np.searchsorted(grouped, np.arange(k), side="left")
    ends = np.minimum(np.searchsorted(grouped, np.arange(k), side="right"), starts + top_k)
    names = ids[order].astype(str)
    return [";".join(names[a:b].tolist()) for a, b in zip(starts, ends, strict=True)]


def _strongest_links(
    a: np.ndarray, b: np.ndarray, w: np.ndarray, ids: np.ndarray, k: int, top_k: int,
) -> list[str]:
    if top_k == 0 or len(w) == 0:
        return [""] * k
    frame = pd.DataFrame({"c": np.concatenate([a, b]), "d": np.concatenate([b, a]),
                          "w": np.concatenate([w, w])})
    links = frame.groupby(["c", "d"], sort=True)["w"].sum().reset_index()
    links = links.sort_values(["c", "w", "d"], ascending=[True, False, True], kind="stable")
    links = links.groupby("c", sort=True).head(top_k)
    parts: list[list[str]] = [[] for _ in range(k)]
    for c, d, x in zip(links["c"].tolist(), links["d"].tolist(), links["w"].tolist(),
                       strict=True):
        parts[c].append(f"{int(ids[d])}:{x:.6g}")
    text = [";".join(p) for p in parts]
    return text


__all__ = ["NEGATIVE_EVENTS", "negative_customers", "summarize"]
