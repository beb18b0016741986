"""Proactive care: whom to contact first, why, and a budgeted care plan that is shown to work.

Priority (:func:`priorities`)
-----------------------------
The expected value protected by contacting a customer::

    risk     = 1 - (1 - exposure) * (1 - churn_score)             (no recent negative event)
             = 1 - (1 - source_risk) * (1 - exposure) * (1 - churn_score)   (recent complaint)
    priority = retention * risk * (value + carried)

``exposure``: probability of being reached by the cascade of the customers with recent
negative events (the influence step); ``churn_score``: any score supplied in the customers
table (clipped to [0, 1]; missing counts as 0); ``source_risk``: the probability that a
customer with a recent complaint churns (1 matches the exposure model, which starts the
cascade from them); ``retention``: the share of contacted customers who stay; ``value``: the
customer's value (1 for everyone without values); ``carried``: the value the customer's own
cascade carries along (``value_influence``, or ``influence`` with unit values). Customers who
already churned (``lost_events``) have nothing left to protect: priority 0. The interval
``priority_low``/``priority_high`` combines the intervals of exposure and influence (both
monotone, so the bounds are the formula at the bounds).

Reasons (:func:`reasons`, :func:`explain`)
-------------------------------------------
One structured row and one plain sentence per explained customer: the risk and its parts, the
number of contacts, community and role, the strongest ties and their share of the customer's
interaction weight, the customers with recent negative events that bring the exposure (their
event and share), and percentile ranks of influence and exposure.

Care plan (:func:`care_plan`)
------------------------------
K customers chosen to maximise the expected value kept out of the churn cascade when every
contacted customer is retained with probability ``retention`` (and a retained customer
neither churns nor passes churn on): :func:`carenet.graphs.blocking.greedy_blocking` over
dominator trees of forward realisations of the cascade (Independent Cascade with the run's tie
probabilities; sources: customers with recent negative events, with ``source_risk``, and every
other customer spontaneously with its churn score). Every prefix of the plan, and top-K by
priority, degree, PageRank and at random, is then evaluated on fresh realisations with common
random numbers (:func:`carenet.graphs.blocking.protected_curves`), with intervals and paired
differences against the plan.

>>> import pandas as pd
>>> c = pd.DataFrame({"customer_id": ["a", "b"], "exposure": [0.5, 0.0],
...                   "influence": [2.0, 0.0], "churn_score": [0.2, None]})
>>> p = priorities(c, retention=0.5)
>>> p.risk.round(6).tolist(), p.priority.round(6).tolist()  # 1 - 0.5 * 0.8; 0.5 * 0.6 * 3
([0.6, 0.0], [0.9, 0.0])
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from carenet.community.influence import customer_values, pagerank, z_score
from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.graphs.blocking import BlockingModel, greedy_blocking, protected_curves
from carenet.graphs.diffusion import DiffusionGraph
from carenet.graphs.model import CustomerGraph
from carenet.graphs.rng import derive_seed
from carenet.graphs.ties import TieModel

STRATEGIES: tuple[str, ...] = ("plan", "priority", "degree", "pagerank", "random")
ROLE_PHRASES = {
    "connector hub": "a connector hub", "community hub": "a community hub",
    "bridge": "a bridge between communities", "peripheral": "on the edge",
    "member": "a member",
}
_EPS = 1e-12


# ---------------------------------------------------------------------------- inputs
def _column(customers: pd.DataFrame, name: str | None, default: float = np.nan) -> np.ndarray:
    if name is None or name not in customers:
        return np.full(len(customers), default)
    return pd.to_numeric(customers[name], errors="coerce").to_numpy(np.float64)


def churn_scores(customers: pd.DataFrame, column: str | None = "churn_score") -> np.ndarray:
    """The churn score of every customer, clipped to [0, 1]; missing (or no column) -> 0."""
    c = _column(customers, column)
    return np.clip(np.nan_to_num(c, nan=0.0), 0.0, 1.0)


def last_events(events: pd.DataFrame | None, n: int, *, kinds: Sequence[str],
                reference_time: float | None, lookback: float | None) -> np.ndarray:
    """The kind of each customer's most recent event among ``kinds`` at or before the
    reference time and within ``lookback`` seconds of it ("" when none): an object array.
    """
    out = np.full(n, "", dtype=object)
    if events is None or len(events) == 0 or "node" not in events or "event" not in events:
        return out
    kind = events["event"].astype(str).str.lower()
    keep = kind.isin({k.lower() for k in kinds}).to_numpy().copy()
    t = (pd.to_numeric(events["timestamp"], errors="coerce").to_numpy(np.float64)
         if "timestamp" in events else np.full(len(events), np.nan))
    if reference_time is not None:
        with np.errstate(invalid="ignore"):
            keep &= ~(t > reference_time)
            if lookback is not None:
                keep &= t >= reference_time - lookback
    if not keep.any():
        return out
    frame = pd.DataFrame({"node": events["node"].to_numpy()[keep], "kind": kind.to_numpy()[keep],
                          "t": np.nan_to_num(t[keep], nan=-np.inf)})
    frame = frame.sort_values(["node", "t"], kind="stable").drop_duplicates("node", keep="last")
    out[frame["node"].to_numpy(np.int64)] = frame["kind"].to_numpy()
    return out


# ---------------------------------------------------------------------------- priority
@dataclass(frozen=True, eq=False)
class Priorities:
    """Risk and priority of every customer (aligned to node positions) with intervals."""

    ids: np.ndarray
    risk: np.ndarray
    risk_low: np.ndarray
    risk_high: np.ndarray
    value: np.ndarray
    carried: np.ndarray
    priority: np.ndarray
    priority_low: np.ndarray
    priority_high: np.ndarray
    rank: np.ndarray
    lost: np.ndarray
    retention: float
    source_risk: float
    unit_values: bool

    def columns(self) -> dict[str, np.ndarray]:
        """Per-customer columns for the run table."""
        return {"risk": self.risk, "priority": self.priority,
                "priority_low": self.priority_low, "priority_high": self.priority_high,
                "priority_rank": self.rank}

    def order(self) -> np.ndarray:
        """Node positions by priority (highest first, ties by customer id)."""
        return np.argsort(self.rank, kind="stable")


def rank_by(score: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rank 1 = highest score; ties broken by id; NaN last."""
    s = np.nan_to_num(np.asarray(score, np.float64), nan=-np.inf)
    order = np.lexsort((np.asarray(ids).astype(str), -s))
    rank = np.empty(s.size, np.int64)
    rank[order] = np.arange(1, s.size + 1)
    return rank


def priorities(
    customers: pd.DataFrame,
    *,
    retention: float = 0.3,
    source_risk: float = 1.0,
    churn_col: str | None = "churn_score",
    use_values: bool = True,
    missing_value: float = 1.0,
    seeds: np.ndarray | None = None,
    lost: np.ndarray | None = None,
    carried_risk: np.ndarray | None = None,
) -> Priorities:
    """Priority of every customer (see the module docstring) from the run's customers table.

    Reads ``exposure`` (+ ``_low``/``_high``), ``influence`` or ``value_influence`` (+ their
    intervals), ``value`` (with ``use_values``) and ``churn_col``. ``seeds``: boolean, the
    customers with recent negative events (default: the ``exposure_seed`` column); ``lost``:
    boolean, customers who already churned (priority 0).

    With the risk step's ``lapse_risk`` column (a log with timestamps), risk is that
    calibrated probability (raised by ``source_risk`` for a customer with a recent negative
    event; exposure and the churn score are already among the model's features), customers
    ``silent`` over the whole window count as lost, the value without a ``value`` column is
    ``recent_value``, and ``carried_risk`` (per customer: the value at risk it carries
    along, :func:`carried_at_risk`) replaces ``influence`` as ``carried``.
    """
    if not 0.0 < retention <= 1.0:
        raise InvalidInputError(f"retention must be in (0, 1], not {retention}")
    if not 0.0 <= source_risk <= 1.0:
        raise InvalidInputError(f"source_risk must be in [0, 1], not {source_risk}")
    n = len(customers)
    if "customer_id" not in customers:
        raise InvalidInputError("the customers table has no customer_id column")
    ids = customers["customer_id"].astype(str).to_numpy()
    exp = np.clip(np.nan_to_num(_column(customers, "exposure", 0.0)), 0, 1)
    exp_lo = np.clip(np.nan_to_num(_column(customers, "exposure_low"), nan=0.0), 0, 1)
    exp_hi = np.clip(np.nan_to_num(_column(customers, "exposure_high"), nan=1.0), 0, 1)
    if "exposure_low" not in customers:
        exp_lo = exp.copy()
    if "exposure_high" not in customers:
        exp_hi = exp.copy()
    churn = churn_scores(customers, churn_col)
    model = "lapse_risk" in customers and customers["lapse_risk"].notna().any()
    has_values = use_values and "value" in customers and customers["value"].notna().any()
    vals = (customer_values(customers["value"], n, missing=missing_value)
            if has_values or (use_values and "value" in customers and not model) else None)
    if vals is None and model and "recent_value" in customers:
        vals = np.nan_to_num(_column(customers, "recent_value", 0.0)).clip(min=0)
    unit = vals is None
    if unit:
        value = np.ones(n)
        base = "influence"
    else:
        assert vals is not None
        value = vals
        base = "value_influence" if "value_influence" in customers else "influence"
    carried = np.nan_to_num(_column(customers, base, 0.0)).clip(min=0)
    c_lo = np.nan_to_num(_column(customers, f"{base}_low"), nan=np.nan)
    c_hi = np.nan_to_num(_column(customers, f"{base}_high"), nan=np.nan)
    c_lo = np.where(np.isnan(c_lo), carried, c_lo).clip(min=0)
    c_hi = np.where(np.isnan(c_hi), carried, c_hi).clip(min=0)
    if seeds is None:
        seeds = (customers["exposure_seed"].fillna(False).to_numpy(bool)
                 if "exposure_seed" in customers else np.zeros(n, bool))
    lost_arr = np.zeros(n, bool) if lost is None else np.asarray(lost, bool)
    if model:
        if "silent" in customers:
            lost_arr = lost_arr | customers["silent"].fillna(False).to_numpy(bool)
        if "lapsed" in customers:  # a lapsed seed's flag is its lapse, not an event
            seeds = seeds & ~customers["lapsed"].fillna(False).to_numpy(bool)
        stay = np.where(seeds, 1.0 - source_risk, 1.0)
        p = np.clip(np.nan_to_num(_column(customers, "lapse_risk", 0.0)), 0, 1)
        p_lo = np.clip(np.nan_to_num(_column(customers, "lapse_risk_low"), nan=0.0), 0, 1)
        p_hi = np.clip(np.nan_to_num(_column(customers, "lapse_risk_high"), nan=1.0), 0, 1)
        if "lapse_risk_low" not in customers:
            p_lo, p_hi = p.copy(), p.copy()
        exp, exp_lo, exp_hi = p, p_lo, p_hi
        if carried_risk is not None:
            carried = np.nan_to_num(np.asarray(carried_risk, np.float64)).clip(min=0)
            c_lo, c_hi = carried, carried
    else:
        stay = np.where(seeds, 1.0 - source_risk, 1.0) * (1.0 - churn)

    def risk_of(e: np.ndarray) -> np.ndarray:
        return np.where(lost_arr, 1.0, 1.0 - stay * (1.0 - e))

    risk, r_lo, r_hi = risk_of(exp), risk_of(exp_lo), risk_of(exp_hi)
    live = np.where(lost_arr, 0.0, retention)
    prio = live * risk * (value + carried)
    lo = live * r_lo * (value + c_lo)
    hi = live * r_hi * (value + c_hi)
    return Priorities(
        ids=ids, risk=risk, risk_low=r_lo, risk_high=r_hi, value=value, carried=carried,
        priority=prio, priority_low=np.minimum(lo, prio), priority_high=np.maximum(hi, prio),
        rank=rank_by(prio, ids), lost=lost_arr, retention=float(retention),
        source_risk=float(source_risk), unit_values=unit,
    )


def carried_at_risk(graph: CustomerGraph, risk: np.ndarray, value: np.ndarray,
                    ties: TieModel = TieModel()) -> np.ndarray:
    """The value at risk a customer carries along: ``sum_j p_ij * risk_j * value_j`` over
    its out-ties, with ``p_ij`` the run's tie probability (the diffusion model's first step,
    :class:`~carenet.graphs.ties.TieModel`). One hop on purpose: measured on two real logs,
    the full cascade (``influence``) ranks central, rarely-lapsing customers first and pulls
    priority's lift below 1 (benchmarks/README.md, risk section).

    >>> g = CustomerGraph.from_edges(["a", "b", "c"], [0, 0], [1, 2], [3.0, 1.0])
    >>> carried_at_risk(g, np.array([0.0, 0.5, 1.0]), np.array([1.0, 2.0, 4.0])).tolist()
    [5.0, 0.0, 0.0]
    """
    n = graph.n_customers
    dg = DiffusionGraph.from_graph(graph, **ties.kwargs())
    src = np.repeat(np.arange(n, dtype=np.int64), np.diff(dg.indptr))
    dst = dg.indices.astype(np.int64)
    rv = np.nan_to_num(np.asarray(risk, np.float64) * np.asarray(value, np.float64))
    return np.asarray(np.bincount(src, weights=dg.prob * rv[dst], minlength=n))


# ---------------------------------------------------------------------------- reasons
def percentile_ranks(x: np.ndarray) -> np.ndarray:
    """Percentile rank 0-100 (ties averaged; the share of customers at or below, in %)."""
    return (pd.Series(np.asarray(x, np.float64)).rank(pct=True, method="average")
            .to_numpy() * 100.0)


def top_percent(pct: np.ndarray) -> np.ndarray:
    """The "top X%" a percentile rank falls in: ``max(1, ceil(100 - pct))``."""
    return np.maximum(1, np.ceil(np.round(100.0 - np.asarray(pct, np.float64), 9))).astype(
        np.int64)


def _ties(graph: CustomerGraph, nodes: np.ndarray, keep: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each node: distinct contacts, total tie weight, and its ``keep`` strongest ties
    (neighbour position, weight both ways, share of the total), -1 / NaN padded.
    """
    n = graph.n_customers
    k = nodes.size
    where = np.full(n, -1, np.int64)
    where[nodes] = np.arange(k)
    src = graph.sources().astype(np.int64)
    dst = graph.indices.astype(np.int64)
    w = graph.weights.astype(np.float64)
    out_m = where[src] >= 0
    rows = [where[src[out_m]]]
    nbrs = [dst[out_m]]
    ws = [w[out_m]]
    if graph.directed:
        in_m = where[dst] >= 0
        rows.append(where[dst[in_m]])
        nbrs.append(src[in_m])
        ws.append(w[in_m])
    row = np.concatenate(rows)
    nbr = np.concatenate(nbrs)
    wt = np.concatenate(ws)
    key = row * n + nbr
    uniq, inv = np.unique(key, return_inverse=True)
    tie_w = np.bincount(inv, weights=wt, minlength=uniq.size)
    u_row = uniq // n
    u_nbr = uniq % n
    contacts = np.bincount(u_row, minlength=k).astype(np.int64)
    total = np.bincount(u_row, weights=tie_w, minlength=k)
    order = np.lexsort((u_nbr, -tie_w, u_row))
    u_row, u_nbr, tie_w = u_row[order], u_nbr[order], tie_w[order]
    first = np.searchsorted(u_row, np.arange(k))
    pos = np.arange(u_row.size) - first[u_row]
    top_nbr = np.full((k, keep), -1, np.int64)
    top_w = np.full((k, keep), np.nan)
    sel = pos < keep
    top_nbr[u_row[sel], pos[sel]] = u_nbr[sel]
    top_w[u_row[sel], pos[sel]] = tie_w[sel]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = top_w / total[:, None]
    return contacts, total, top_nbr, top_w, share


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _plural(k: int, one: str, many: str) -> str:
    return f"{k} {one if k == 1 else many}"


def reasons(
    graph: CustomerGraph,
    customers: pd.DataFrame,
    nodes: Sequence[int] | np.ndarray,
    *,
    exposure_sources: pd.DataFrame | None = None,
    recent_event: np.ndarray | None = None,
    lost: np.ndarray | None = None,
    churn_col: str | None = "churn_score",
    ties: int = 3,
    lookback: str | None = "90d",
) -> pd.DataFrame:
    """The structured reasons (one row per node in ``nodes``, in that order) and the sentence
    in column ``reason``. ``customers`` is the run's table (with the care columns when they
    exist); ``exposure_sources`` the influence step's table; ``recent_event``: per customer,
    the kind of its most recent negative event ("" when none); ``lost``: churned customers.
    Vectorised: the cost grows with the explained customers' ties, not with the run's size.
    """
    n = graph.n_customers
    if len(customers) != n:
        raise InvalidInputError("customers table and graph disagree on the number of customers")
    nodes = np.asarray(nodes, np.int64)
    k = nodes.size
    ids = customers["customer_id"].astype(str).to_numpy()
    recent = np.full(n, "", dtype=object) if recent_event is None else recent_event
    lost_arr = np.zeros(n, bool) if lost is None else np.asarray(lost, bool)
    contacts, total, top_nbr, top_w, share = _ties(graph, nodes, max(1, ties))
    frame = pd.DataFrame({"customer_id": ids[nodes]})
    for col in ("priority_rank", "plan_rank", "priority", "risk"):
        if col in customers:
            frame[col] = customers[col].to_numpy()[nodes]
    exposure = np.nan_to_num(_column(customers, "exposure", 0.0))
    churn = churn_scores(customers, churn_col)
    frame["exposure"] = exposure[nodes]
    frame["churn_score"] = churn[nodes]
    frame["own_event"] = recent[nodes]
    frame["lost"] = lost_arr[nodes]
    frame["contacts"] = contacts
    frame["interaction_weight"] = total
    if "lapse_risk" in customers and customers["lapse_risk"].notna().any():
        for col in ("activity_change", "lapsed_contacts", "risk_window_days"):
            if col in customers:
                frame[col] = customers[col].to_numpy()[nodes]
        if "lapsed" in customers:
            flagged = customers["lapsed"].fillna(False).to_numpy(bool)
            recent = np.where((recent == "") & flagged, "lapsed", recent)
    has_comm = "community" in customers
    if has_comm:
        comm = customers["community"].to_numpy()
        frame["community"] = comm[nodes]
        sizes = pd.Series(comm).value_counts()
        frame["community_size"] = sizes.reindex(comm[nodes]).to_numpy()
    if "role" in customers:
        frame["role"] = customers["role"].astype(str).to_numpy()[nodes]
    for j in range(max(1, ties)):
        nb_ = top_nbr[:, j]
        tie_ids = ids[np.maximum(nb_, 0)].astype(object)
        tie_ids[nb_ < 0] = None
        frame[f"tie_{j + 1}_id"] = tie_ids
        frame[f"tie_{j + 1}_weight"] = top_w[:, j]
        frame[f"tie_{j + 1}_share"] = share[:, j]
    # exposure drivers
    d_ids = [""] * k
    d_events = [""] * k
    d_count = np.zeros(k, np.int64)
    d_share = np.zeros(k)
    if exposure_sources is not None and len(exposure_sources):
        pos = pd.Series(np.arange(k), index=pd.Index(ids[nodes]))
        src = exposure_sources[exposure_sources["customer_id"].astype(str).isin(pos.index)]
        if len(src):
            src = src.sort_values(["customer_id", "rank"], kind="stable")
            src_node = graph.index_of(src["source_id"].astype(str).to_numpy())
            kinds = np.where(recent[src_node] == "", "event", recent[src_node])
            tmp = pd.DataFrame({"row": pos.reindex(src["customer_id"].astype(str)).to_numpy(),
                                "sid": src["source_id"].astype(str).to_numpy(),
                                "kind": kinds, "share": src["share"].to_numpy(float)})
            agg = tmp.groupby("row", sort=False).agg(
                sid=("sid", ",".join), kind=("kind", ",".join), count=("sid", "size"),
                share=("share", "sum"))
            at = agg.index.to_numpy(np.int64)
            for i, a, b in zip(at.tolist(), agg["sid"].tolist(), agg["kind"].tolist(),
                               strict=True):
                d_ids[i] = a
                d_events[i] = b
            d_count[at] = agg["count"].to_numpy(np.int64)
            d_share[at] = agg["share"].to_numpy(np.float64)
    frame["drivers"] = d_count
    frame["driver_ids"] = d_ids
    frame["driver_events"] = d_events
    frame["driver_share"] = d_share
    if "influence" in customers:
        ipct = percentile_ranks(_column(customers, "influence", 0.0))
        frame["influence_pct"] = ipct[nodes]
        frame["influence_top"] = top_percent(ipct[nodes])
    epct = percentile_ranks(exposure)
    frame["exposure_pct"] = epct[nodes]
    frame["exposure_top"] = top_percent(epct[nodes])
    frame["reason"] = [_sentence({str(k): v for k, v in row.items()}, ties, lookback)
                       for row in frame.to_dict("records")]
    return frame


def _sentence(r: dict[str, Any], ties: int, lookback: str | None) -> str:
    """One plain sentence from a structured reason row."""
    window = f"in the last {lookback}".replace("d", " days") if lookback else "recently"
    if r["lost"]:
        head = "Already churned; nothing left to protect"
    else:
        head = (f"Risk {r.get('risk', float('nan')):.2f} (exposure {r['exposure']:.2f}, "
                f"churn score {r['churn_score']:.2f})")
        if r["own_event"] and r["own_event"] != "lapsed":
            head += f", own {r['own_event']} {window}"
    parts = [head]
    if not r["lost"] and "activity_change" in r:
        parts.append(_drivers(r))
    where = f"contacts {_plural(int(r['contacts']), 'customer', 'customers')}"
    if "community" in r and r["community"] is not None and not pd.isna(r["community"]):
        where += f" in community {r['community']}"
        role = r.get("role")
        if role:
            where += f", where they are {ROLE_PHRASES.get(str(role), str(role))}"
    parts.append(where)
    shown = []
    for j in range(1, ties + 1):
        tid = r.get(f"tie_{j}_id")
        if tid is None or (isinstance(tid, float) and math.isnan(tid)):
            break
        shown.append(f"{tid} ({_pct(r[f'tie_{j}_share'])})")
    if shown:
        parts.append("strongest ties " + ", ".join(shown) + " of their interaction weight")
    if r["drivers"]:
        pairs = ", ".join(f"{i} {e}" for i, e in zip(r["driver_ids"].split(","),
                                                       r["driver_events"].split(","),
                                                       strict=True))
        parts.append(f"{_plural(int(r['drivers']), 'customer', 'customers')} with a recent "
                     f"complaint, churn or lapse ({pairs}) account for "
                     f"{_pct(r['driver_share'])} of their exposure")
    elif not r["lost"]:
        parts.append("no exposure to recent complaints or churn" if r["exposure"] <= 0
                     else "exposure from several distant customers")
    ranks = []
    if "influence_top" in r:
        ranks.append(f"influence top {int(r['influence_top'])}%")
    ranks.append(f"exposure top {int(r['exposure_top'])}%")
    parts.append(", ".join(ranks))
    return "; ".join(parts) + "."


def _drivers(r: dict[str, Any]) -> str:
    """The risk drivers in words: the change of activity and the contacts who lapsed."""
    days = r.get("risk_window_days")
    last = (f"in the last {float(days):.3g} days" if days is not None and not pd.isna(days)
            else "in the last window")
    change = float(r.get("activity_change") or 0.0)
    if change <= -0.995:
        act = f"no activity {last}"
    elif change <= -0.2:
        act = f"activity fell {round(-change * 100)}% {last}"
    elif change >= 0.2:
        act = f"activity rose {round(change * 100)}% {last}"
    else:
        act = f"activity steady {last}"
    k = int(r.get("lapsed_contacts") or 0)
    lapsed = (f"{_plural(k, 'contact', 'contacts')} lapsed" if k
              else "no contact lapsed")
    return f"risk drivers: {act}, {lapsed}"


def explain(
    graph: CustomerGraph,
    customers: pd.DataFrame,
    customer_id: str,
    *,
    exposure_sources: pd.DataFrame | None = None,
    events: pd.DataFrame | None = None,
    negative_events: Sequence[str] = ("churn", "complaint"),
    lost_events: Sequence[str] = ("churn",),
    lookback: float | None = 90 * 86400.0,
    lookback_text: str | None = "90d",
    churn_col: str | None = "churn_score",
    ties: int = 3,
) -> dict[str, Any]:
    """The reasons of one customer on demand (any customer of a run, explained or not):
    the structured fields and ``reason``, with native Python values.
    """
    node = graph.index_of(np.array([str(customer_id)]))
    if node.size != 1 or node[0] < 0:
        raise RunNotFoundError(f"no customer {customer_id!r} in this run")
    n = graph.n_customers
    ref = graph.reference_time
    recent = last_events(events, n, kinds=negative_events, reference_time=ref,
                         lookback=lookback)
    lost = last_events(events, n, kinds=lost_events, reference_time=ref, lookback=None) != ""
    if ("silent" in customers and "lapse_risk" in customers
            and customers["lapse_risk"].notna().any()):
        lost = lost | customers["silent"].fillna(False).to_numpy(bool)
    frame = reasons(graph, customers, node.astype(np.int64), exposure_sources=exposure_sources,
                    recent_event=recent, lost=lost, churn_col=churn_col, ties=ties,
                    lookback=lookback_text)
    row = frame.iloc[0].to_dict()
    return {str(k): (v.item() if isinstance(v, np.generic) else
                (None if isinstance(v, float) and math.isnan(v) else v))
            for k, v in row.items()}


# ---------------------------------------------------------------------------- care plan
def blocking_model(
    graph: CustomerGraph,
    *,
    values: np.ndarray,
    churn: np.ndarray,
    seeds: np.ndarray,
    lost: np.ndarray,
    retention: float,
    source_risk: float = 1.0,
    churn_spreads: bool = True,
    ties: TieModel = TieModel(),
) -> BlockingModel:
    """The churn cascade a care plan blocks: sources are the customers with recent negative
    events (churned ones surely, the others with ``source_risk``) and, with
    ``churn_spreads``, every other customer with its churn score; churned customers cannot be
    protected and count for no value.
    """
    dg = DiffusionGraph.from_graph(graph, **ties.kwargs())
    seeds = np.asarray(seeds, bool)
    lost = np.asarray(lost, bool)
    sp = np.where(seeds, np.where(lost, 1.0, source_risk),
                  np.where(lost, 0.0, churn if churn_spreads else 0.0))
    return BlockingModel(dg, np.clip(sp, 0, 1), ~lost, np.where(lost, 0.0, values),
                         float(retention))


@dataclass(frozen=True, eq=False)
class CarePlan:
    """A budgeted care plan: customers in pick order and what fresh simulations say they
    protect (``protected[k - 1]``: expected value kept out of the cascade by the first k,
    with its interval), plus the comparison with other strategies.
    """

    ids: np.ndarray
    nodes: np.ndarray
    greedy_gain: np.ndarray
    gain: np.ndarray
    protected: np.ndarray
    protected_low: np.ndarray
    protected_high: np.ndarray
    at_risk: float
    budget: int
    retention: float
    runs: int
    evaluation_runs: int
    confidence: float
    seed: int
    comparison: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """``customer_id, rank, priority?, gain, protected, protected_low, protected_high``."""
        return pd.DataFrame({
            "customer_id": self.ids, "rank": np.arange(1, self.ids.size + 1),
            "gain": self.gain, "protected": self.protected,
            "protected_low": self.protected_low, "protected_high": self.protected_high,
        })

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (native numbers only)."""
        return {
            "budget": int(self.budget), "planned": int(self.ids.size),
            "retention": float(self.retention), "runs": int(self.runs),
            "evaluation_runs": int(self.evaluation_runs),
            "confidence": float(self.confidence), "seed": int(self.seed),
            "value_at_risk": float(self.at_risk),
            "protected": float(self.protected[-1]) if self.protected.size else 0.0,
            "protected_low": float(self.protected_low[-1]) if self.protected.size else 0.0,
            "protected_high": float(self.protected_high[-1]) if self.protected.size else 0.0,
            "first": [str(x) for x in self.ids[:10]],
            "comparison": [{k: (v.item() if isinstance(v, np.generic) else v)
                            for k, v in row.items()}
                           for row in self.comparison.to_dict("records")],
            "timings": {k: float(v) for k, v in self.timings.items()},
            "parameters": self.parameters,
        }


def strategy_orders(
    graph: CustomerGraph,
    priority: np.ndarray,
    blockable: np.ndarray,
    k: int,
    *,
    pagerank_scores: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Top-k node positions (protectable customers only) by priority, total degree,
    PageRank and at random; ties by customer id.
    """
    ids = graph.ids
    pr = pagerank(graph) if pagerank_scores is None else np.asarray(pagerank_scores, float)
    deg = (graph.out_degree() + (graph.in_degree() if graph.directed else 0)).astype(float)
    out = {}
    for name, score in (("priority", priority), ("degree", deg), ("pagerank", pr)):
        s = np.where(blockable, np.nan_to_num(np.asarray(score, float), nan=-np.inf), -np.inf)
        order = np.lexsort((ids.astype(str), -s))
        out[name] = order[: min(k, int(blockable.sum()))]
    rng = np.random.default_rng(seed)
    cand = np.flatnonzero(blockable)
    out["random"] = rng.permutation(cand)[:k]
    return out


def care_plan(
    graph: CustomerGraph,
    model: BlockingModel,
    budget: int,
    *,
    priority: np.ndarray,
    pagerank_scores: np.ndarray | None = None,
    runs: int = 200,
    max_entries: int | None = 20_000_000,
    evaluation_runs: int = 1000,
    compare_k: Sequence[int] = (10, 50, 200),
    confidence: float = 0.95,
    seed: int = 0,
    evaluation_error: float | None = None,
    evaluation_min_runs: int = 100,
    plan_error: float | None = None,
    plan_min_runs: int = 50,
    tie_seed: int | None = None,
    evaluation_work: int = 0,
) -> CarePlan:
    """The care plan for ``budget`` contacts (greedy over ``runs`` realisations, fewer when
    their dominator trees reach ``max_entries``), evaluated with every comparison strategy on
    ``evaluation_runs`` fresh realisations.

    The comparison table has one row per (strategy, k) for k in ``compare_k`` (those within
    the budget, and the budget): ``protected`` (expected value kept out of the cascade),
    ``std_error``, ``low``/``high`` (normal interval at ``confidence``), ``vs_plan`` (the
    paired difference strategy - plan, same realisations) with ``vs_plan_low``/``_high``.

    With ``plan_error`` (relative), the greedy's realisations are drawn in rounds (first
    ``plan_min_runs``, at most ``runs``) until the plan's protected value on them is known
    within that relative half-width (:func:`~carenet.graphs.blocking.greedy_blocking`).
    ``tie_seed``: the greedy's realisations use exposure's tie coins (its forward seed), so
    realisation r has the live ties of exposure's world r (common random numbers); the
    evaluation keeps its own fresh coins.
    With ``evaluation_error`` (relative), the evaluation adds realisations in rounds (first
    ``evaluation_min_runs``, at most ``evaluation_runs``) until every strategy's interval
    half-width at k = ``budget`` is at most ``evaluation_error`` times the plan's protected
    value (the smaller k are reported with the intervals those realisations give: the plan's
    first 10 picks protect ~10x less, so their relative error is ~3x larger); realisation r
    always has the same coins, so stopping after R gives exactly the first R realisations of
    a longer evaluation. ``evaluation_work``: a work budget for the evaluation (0: none), in
    customers reached times strategies summed over the realisations (what a realisation
    costs, whatever the graph): a round is shortened to the realisations the rest of the
    budget pays for at the mean work per realisation so far, and when it is spent the
    evaluation stops with the error it reached (``stopped = "budget"``; the first round,
    ``evaluation_min_runs``, always runs). ``parameters["evaluation"]``
    says the target, the error reached, the realisations, the work and why it stopped.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise InvalidInputError(f"budget must be a positive integer, not {budget!r}")
    if runs < 1 or evaluation_runs < 2:
        raise InvalidInputError("runs must be >= 1 and evaluation_runs >= 2")
    z = z_score(confidence)
    timings: dict[str, float] = {}
    plan = greedy_blocking(model, int(budget), runs=int(runs), seed=derive_seed(seed, 7000 + 1),
                           max_entries=max_entries, error=plan_error,
                           min_runs=int(plan_min_runs), confidence=confidence,
                           tie_seed=tie_seed)
    timings["realise"] = plan.realise_seconds
    timings["greedy"] = plan.greedy_seconds
    t0 = time.perf_counter()
    k_eval = max(int(budget), 1)
    orders = strategy_orders(graph, priority, model.blockable, k_eval,
                             pagerank_scores=pagerank_scores, seed=derive_seed(seed, 7000 + 3))
    names = ["plan", *orders]
    ks = sorted({int(k) for k in compare_k if 0 < int(k) <= budget} | {int(budget)})
    if evaluation_error is not None and not 0.0 < evaluation_error < 1.0:
        raise InvalidInputError(f"evaluation_error must be in (0, 1), not {evaluation_error}")
    max_runs = int(evaluation_runs)
    step = max_runs if evaluation_error is None else max(2, min(int(evaluation_min_runs),
                                                                max_runs))
    if evaluation_work < 0:
        raise InvalidInputError(f"evaluation_work must be >= 0, not {evaluation_work}")
    parts: list[np.ndarray] = []
    lost_parts: list[np.ndarray] = []
    done = 0
    work = 0
    reached = float("inf")
    stopped = "fixed runs" if evaluation_error is None else "max runs reached"
    e_seed = derive_seed(seed, 7000 + 2)
    while True:
        size = np.zeros(step, np.int64)
        c_part, l_part = protected_curves(model, [plan.nodes, *orders.values()], k_eval,
                                          runs=step, seed=e_seed, first=done, reached=size)
        parts.append(c_part)
        lost_parts.append(l_part)
        done += step
        work += int(size.sum()) * len(names)
        curves = parts[0] if len(parts) == 1 else np.concatenate(parts)
        reached = _evaluation_error(curves, int(budget), z)
        if evaluation_error is not None and reached <= evaluation_error:
            stopped = "error target met"
            break
        if evaluation_error is None or done >= max_runs:
            break
        need = math.ceil(done * (reached / evaluation_error) ** 2 * 1.05)
        step = max(1, min(need - done, done, max_runs - done))
        if evaluation_work:
            per_run = max(work / done, 1.0)
            step = min(step, int((evaluation_work - work) / per_run))
            if step < 1:
                stopped = "budget"
                break
    lost = np.concatenate(lost_parts)
    timings["evaluate"] = time.perf_counter() - t0
    r = curves.shape[0]
    plan_curve = curves[:, 0, 1: plan.nodes.size + 1]
    mean = plan_curve.mean(axis=0)
    se = plan_curve.std(axis=0, ddof=1) / math.sqrt(r)
    gain = np.diff(np.concatenate([[0.0], mean]))
    rows = []
    for s, name in enumerate(names):
        for k in ks:
            x = curves[:, s, k]
            d = x - curves[:, 0, k]
            x_se = float(x.std(ddof=1) / math.sqrt(r))
            d_se = float(d.std(ddof=1) / math.sqrt(r))
            rows.append({"strategy": name, "k": k, "protected": float(x.mean()),
                         "std_error": x_se, "low": float(x.mean() - z * x_se),
                         "high": float(x.mean() + z * x_se), "vs_plan": float(d.mean()),
                         "vs_plan_low": float(d.mean() - z * d_se),
                         "vs_plan_high": float(d.mean() + z * d_se)})
    return CarePlan(
        ids=graph.ids[plan.nodes], nodes=plan.nodes, greedy_gain=plan.gains, gain=gain,
        protected=mean, protected_low=mean - z * se, protected_high=mean + z * se,
        at_risk=float(lost.mean()), budget=int(budget), retention=float(model.retention),
        runs=int(plan.runs), evaluation_runs=int(r),
        confidence=float(confidence),
        seed=int(seed), comparison=pd.DataFrame(rows), timings=timings,
        parameters={"dominator_tree_entries": plan.entries,
                    "greedy_value_at_risk": plan.lost_value,
                    "plan": {"error_target": plan_error, "error": _finite(plan.error),
                             "runs": int(plan.runs), "max_runs": int(runs),
                             "stopped": plan.stopped,
                             "ties_shared_with_exposure": tie_seed is not None},
                    "evaluation": {
                        "error_target": evaluation_error, "error": _finite(reached),
                        "runs": int(r), "max_runs": max_runs,
                        "work": int(work), "work_budget": int(evaluation_work) or None,
                        "stopped": stopped, "stop_reason": stopped}},
    )


def _finite(x: float) -> float | None:
    """``x`` for run.json (None when it is not finite: JSON has no infinity)."""
    return float(x) if math.isfinite(x) else None


def _evaluation_error(curves: np.ndarray, k: int, z: float) -> float:
    """The largest interval half-width (at normal quantile z) of any strategy's protected
    value at k, relative to the plan's protected value at k (0 when nothing is protected
    and nothing varies; infinite with fewer than two realisations).
    """
    r = curves.shape[0]
    if r < 2:
        return float("inf")
    x = curves[:, :, k]
    half = float((z * x.std(axis=0, ddof=1) / math.sqrt(r)).max())
    ref = float(x[:, 0].mean())
    if ref > 0:
        return half / ref
    return 0.0 if half == 0 else float("inf")

