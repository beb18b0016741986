"""A realistic synthetic customer community, with a known churn cascade: the ground truth.

The generator draws, in this order (every draw from one seeded ``numpy.random.Generator``):

1. **Communities** with log-normal sizes, and per-customer activity ``theta`` from a Pareto law
   (heavy-tailed degrees), as in a degree-corrected stochastic block model.
2. **Ties**: ``mean_degree * n / 2`` undirected pairs; one end drawn proportional to ``theta``,
   the other inside its community with probability ``1 - mixing`` (else anywhere), also
   proportional to ``theta``. Each tie gets a log-normal strength and a favourite channel.
3. **Churn cascade** (continuous-time Independent Cascade): a few customers churn spontaneously
   at random times; a churned customer ``u`` passes churn to a neighbour ``v`` with probability
   ``1 - exp(-transmission * strength)`` (strength has mean 1) after an exponential delay.
   Earliest churn times are shortest paths over the sampled live ties
   (``scipy.sparse.csgraph.dijkstra``), and each churner's infector is recorded. Churners
   complain first with probability ``complaint_before_churn``; others complain at a small
   background rate.
4. **Interactions** on each tie, their number proportional to its strength, spread uniformly in
   time until either customer churns (churned customers go silent), on the tie's favourite
   channel or another one, with call minutes as the weight of calls.

Outputs: the interaction log, a customers table (value, segment, tenure, a noisy CRM churn
score), an events table (churn, complaint), and the truth table (community, activity, churn time,
infector), so that tests can score community detection, exposure and care plans against it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import scipy.sparse as sp
from scipy.sparse import csgraph

from carenet.errors import InvalidInputError

DAY = 86400.0
DEFAULT_CHANNELS: dict[str, float] = {
    "sms": 0.40,
    "call": 0.25,
    "chat": 0.17,
    "email": 0.10,
    "forum": 0.05,
    "referral": 0.03,
}


@dataclass(frozen=True)
class GeneratorConfig:
    """Parameters of a synthetic community; defaults give the shipped sample's shape.

    ``mixing`` is the share of ties leaving their community (the planted-partition difficulty:
    0.1 is easy, 0.5 is hard). ``start`` is the first day of the observation ``period_days``.
    ``timestamps`` is ``iso`` (text, as CRM exports look) or ``epoch`` (seconds; faster to
    write and read for benchmark-size logs).
    """

    customers: int = 3000
    interactions: int = 60_000
    mean_degree: float = 8.0
    communities: int | None = None
    community_size: float = 120.0
    mixing: float = 0.15
    activity_shape: float = 2.1
    period_days: float = 180.0
    start: str = "2026-01-01T00:00:00Z"
    channels: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    spontaneous_churn: float = 0.01
    transmission: float = 0.08
    churn_delay_days: float = 12.0
    complaint_before_churn: float = 0.6
    background_complaints: float = 0.02
    timestamps: str = "iso"
    seed: int = 7

    def __post_init__(self) -> None:
        if self.customers < 2:
            raise InvalidInputError("a community needs at least 2 customers")
        if self.interactions < 1:
            raise InvalidInputError("at least one interaction is needed")
        if not 0.0 <= self.mixing <= 1.0:
            raise InvalidInputError(f"mixing must be in [0, 1], not {self.mixing}")
        if self.mean_degree <= 0 or self.period_days <= 0:
            raise InvalidInputError("mean_degree and period_days must be positive")
        if self.activity_shape <= 1:
            raise InvalidInputError("activity_shape must be > 1 (a finite mean activity)")
        if self.timestamps not in ("iso", "epoch"):
            raise InvalidInputError("timestamps must be 'iso' or 'epoch'")
        if not self.channels or any(v < 0 for v in self.channels.values()):
            raise InvalidInputError("channels need non-negative rates")


@dataclass(frozen=True, eq=False)
class SyntheticCommunity:
    """One generated data set: the four tables, and the config that made it."""

    interactions: pd.DataFrame
    customers: pd.DataFrame
    events: pd.DataFrame
    truth: pd.DataFrame
    config: GeneratorConfig

    def write(self, directory: str | Path, *, fmt: str = "csv") -> dict[str, Path]:
        """Write ``interactions``, ``customers``, ``events``, ``truth`` (CSV or Parquet) and
        ``generator.json``; returns the paths.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for name in ("interactions", "customers", "events", "truth"):
            frame: pd.DataFrame = getattr(self, name)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if fmt == "parquet":
                p = d / f"{name}.parquet"
                pq.write_table(table, p)
            elif fmt == "csv":
                p = d / f"{name}.csv"
                pcsv.write_csv(table, p)
            else:
                raise InvalidInputError(f"format must be csv or parquet, not {fmt!r}")
            paths[name] = p
        meta = d / "generator.json"
        meta.write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        paths["config"] = meta
        return paths


def _sample_within(
    rng: np.random.Generator,
    community: np.ndarray,
    theta: np.ndarray,
    targets_of: np.ndarray,
) -> np.ndarray:
    """For each entry of ``targets_of`` (a community id), a customer of that community drawn
    proportional to ``theta``, all at once via cumulative sums over customers sorted by
    community.
    """
    order = np.argsort(community, kind="stable")
    cum = np.cumsum(theta[order])
    k = int(community.max()) + 1
    starts = np.searchsorted(community[order], np.arange(k), side="left")
    ends = np.searchsorted(community[order], np.arange(k), side="right")
    lo = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
    hi = cum[ends - 1]
    u = lo[targets_of] + rng.random(len(targets_of)) * (hi[targets_of] - lo[targets_of])
    pos = np.searchsorted(cum, u, side="right")
    pos = np.clip(pos, starts[targets_of], ends[targets_of] - 1)
    return order[pos]


def _match_total(
    rng: np.random.Generator, counts: np.ndarray, total: int, rate: np.ndarray
) -> np.ndarray:
    """Adjust per-tie interaction counts (each >= 1) to sum to exactly ``total``: remove the
    excess one interaction at a time uniformly over the surplus above 1, or add the deficit
    in proportion to the ties' rates. With more ties than ``total``, every tie keeps one.
    """
    diff = int(counts.sum()) - total
    if diff > 0:
        surplus = counts - 1
        cum = np.cumsum(surplus)
        drop = min(diff, int(cum[-1]) if len(cum) else 0)
        if drop:
            units = rng.choice(int(cum[-1]), size=drop, replace=False)
            counts = counts - np.bincount(np.searchsorted(cum, units, side="right"),
                                          minlength=len(counts))
    elif diff < 0:
        p = rate / rate.sum() if rate.sum() > 0 else np.full(len(counts), 1 / len(counts))
        counts = counts + rng.multinomial(-diff, p)
    return counts


def generate(config: GeneratorConfig = GeneratorConfig()) -> SyntheticCommunity:
    """Generate a synthetic community (see the module docstring for the process).

    >>> data = generate(GeneratorConfig(customers=200, interactions=2000, seed=1))
    >>> len(data.customers), data.interactions.columns.tolist()
    (200, ['source', 'target', 'timestamp', 'channel', 'weight'])
    """
    cfg = config
    rng = np.random.default_rng(cfg.seed)
    n = cfg.customers
    period = cfg.period_days * DAY

    # 1. communities and activity
    k = cfg.communities or max(1, round(n / cfg.community_size))
    sizes = rng.lognormal(mean=0.0, sigma=0.6, size=k)
    sizes = np.maximum(1, np.floor(sizes / sizes.sum() * n)).astype(np.int64)
    while sizes.sum() < n:
        sizes[rng.integers(k)] += 1
    while sizes.sum() > n:
        i = int(np.argmax(sizes))
        sizes[i] -= 1
    community = rng.permutation(np.repeat(np.arange(k), sizes))
    # relabel communities by size, largest first (0 = largest), for readable ground truth
    by_size = np.argsort(-np.bincount(community, minlength=k), kind="stable")
    rank = np.empty(k, np.int64)
    rank[by_size] = np.arange(k)
    community = rank[community]
    theta = rng.pareto(cfg.activity_shape, n) + 1.0

    # 2. ties
    n_ties = max(1, round(cfg.mean_degree * n / 2))
    draw = int(n_ties * 1.3) + 16
    p = theta / theta.sum()
    u = rng.choice(n, size=draw, p=p)
    inside = rng.random(draw) >= cfg.mixing
    v = np.empty(draw, np.int64)
    v[inside] = _sample_within(rng, community, theta, community[u[inside]])
    v[~inside] = rng.choice(n, size=int((~inside).sum()), p=p)
    a, b = np.minimum(u, v), np.maximum(u, v)
    ok = a != b
    pairs = np.unique(a[ok].astype(np.int64) * n + b[ok])
    pairs = rng.permutation(pairs)[:n_ties]
    tu, tv = (pairs // n).astype(np.int64), (pairs % n).astype(np.int64)
    m = len(tu)
    strength = rng.lognormal(mean=0.0, sigma=1.0, size=m) * np.sqrt(theta[tu] * theta[tv])
    strength /= strength.mean()
    names = list(cfg.channels)
    rates = np.array([cfg.channels[c] for c in names], dtype=np.float64)
    rates = rates / rates.sum()
    favourite = rng.choice(len(names), size=m, p=rates)

    # 3. churn cascade over live ties (both directions sampled independently)
    p_live = 1.0 - np.exp(-cfg.transmission * strength)
    src = np.concatenate([tu, tv])
    dst = np.concatenate([tv, tu])
    live = rng.random(2 * m) < np.concatenate([p_live, p_live])
    delay = rng.exponential(cfg.churn_delay_days * DAY, size=2 * m)
    spontaneous = rng.random(n) < cfg.spontaneous_churn
    if not spontaneous.any():
        spontaneous[rng.integers(n)] = True
    t0 = rng.uniform(0.05, 0.7, size=n) * period
    # a virtual root (node n) reaches each spontaneous churner at its own churn time
    roots = np.flatnonzero(spontaneous)
    rows = np.concatenate([src[live], np.full(len(roots), n)])
    cols = np.concatenate([dst[live], roots])
    vals = np.concatenate([delay[live], t0[roots]])
    vals = np.maximum(vals, 1.0)  # dijkstra treats explicit zeros as missing edges
    graph = sp.csr_array((vals, (rows, cols)), shape=(n + 1, n + 1))
    dist, pred = csgraph.dijkstra(graph, directed=True, indices=n, return_predecessors=True)
    churn_time = dist[:n]
    churned = np.isfinite(churn_time) & (churn_time <= period)
    infector = np.where(churned & ~spontaneous, pred[:n], -1)
    churn_time = np.where(churned, churn_time, np.nan)

    # 4. interactions on ties, until either end churns
    per_tie = strength / strength.sum() * max(cfg.interactions - m, 0)
    counts = 1 + rng.poisson(per_tie)
    counts = _match_total(rng, counts, cfg.interactions, per_tie)
    end_u = np.where(churned[tu], churn_time[tu], period)
    end_v = np.where(churned[tv], churn_time[tv], period)
    tie_end = np.minimum(end_u, end_v)
    e = np.repeat(np.arange(m), counts)
    t = rng.random(len(e)) * tie_end[e]
    forward = rng.random(len(e)) < rng.beta(2, 2, size=m)[e]
    s_col = np.where(forward, tu[e], tv[e])
    d_col = np.where(forward, tv[e], tu[e])
    other = rng.choice(len(names), size=len(e), p=rates)
    chan = np.where(rng.random(len(e)) < 0.7, favourite[e], other)
    minutes = np.round(rng.lognormal(mean=1.0, sigma=0.9, size=len(e)), 1)
    is_call = np.array([c == "call" for c in names])[chan]
    weight = np.where(is_call, np.maximum(minutes, 0.1), 1.0)
    order = np.argsort(t, kind="stable")

    width = max(6, len(str(n)))
    ids = np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), width)).astype(object)
    ids = ids[rng.permutation(n)]
    start = pd.Timestamp(cfg.start)
    if start.tzinfo is None:
        start = start.tz_localize("UTC")
    epoch0 = start.timestamp()

    def iso(seconds: np.ndarray) -> np.ndarray:
        if cfg.timestamps == "epoch":
            return (epoch0 + seconds).astype(np.int64)
        stamp = (np.datetime64(int(epoch0), "s") + seconds.astype("timedelta64[s]"))
        return np.char.add(np.datetime_as_string(stamp, unit="s"), "Z").astype(object)

    interactions = pd.DataFrame({
        "source": ids[s_col[order]],
        "target": ids[d_col[order]],
        "timestamp": iso(np.floor(t[order])),
        "channel": np.array(names, dtype=object)[chan[order]],
        "weight": weight[order],
    })

    # events: churn, complaints before churn, background complaints
    churners = np.flatnonzero(churned)
    complain = churners[rng.random(len(churners)) < cfg.complaint_before_churn]
    lead = rng.exponential(7 * DAY, len(complain))
    before = churn_time[complain]
    complaint_t = before - np.minimum(lead, rng.random(len(complain)) * before)
    others = np.flatnonzero(~churned & (rng.random(n) < cfg.background_complaints))
    other_t = rng.uniform(0, period, len(others))
    ev_nodes = np.concatenate([churners, complain, others])
    ev_kind = np.array(["churn"] * len(churners) + ["complaint"] * (len(complain) + len(others)),
                       dtype=object)
    ev_time = np.concatenate([churn_time[churners], complaint_t, other_t])
    ev_order = np.argsort(ev_time, kind="stable")
    events = pd.DataFrame({
        "customer_id": ids[ev_nodes[ev_order]],
        "event": ev_kind[ev_order],
        "timestamp": iso(np.floor(ev_time[ev_order])),
    })

    segment_names = np.array(["consumer", "small_business", "premium"], dtype=object)
    segment = rng.choice(3, size=n, p=[0.75, 0.17, 0.08])
    value = np.round(rng.lognormal(5.5, 0.8, size=n) * np.array([1.0, 2.5, 4.0])[segment], 2)
    # a CRM churn score: informative but noisy (it does not see the network)
    logit = -2.5 + 1.2 * churned + 0.3 * (theta < np.median(theta)) + rng.normal(0, 1.0, n)
    churn_score = np.round(1 / (1 + np.exp(-logit)), 4)
    customers = pd.DataFrame({
        "customer_id": ids,
        "value": value,
        "segment": segment_names[segment],
        "tenure_days": rng.integers(30, 3650, size=n),
        "churn_score": churn_score,
    })
    truth = pd.DataFrame({
        "customer_id": ids,
        "community": community,
        "activity": np.round(theta, 4),
        "churned": churned,
        "spontaneous_churn": spontaneous & churned,
        "churn_time": np.where(churned, epoch0 + np.nan_to_num(churn_time), np.nan),
        "infected_by": pd.Series(ids[np.maximum(infector, 0)]).where(infector >= 0, None),
    })
    return SyntheticCommunity(interactions, customers, events, truth, cfg)


def truth_summary(data: SyntheticCommunity) -> dict[str, Any]:
    """Headline numbers of a generated data set (for logs and the data README)."""
    tr = data.truth
    return {
        "customers": len(tr),
        "interactions": len(data.interactions),
        "communities": int(tr["community"].nunique()),
        "churned": int(tr["churned"].sum()),
        "spontaneous_churn": int(tr["spontaneous_churn"].sum()),
        "cascade_churn": int(tr["infected_by"].notna().sum()),
        "complaints": int((data.events["event"] == "complaint").sum()),
    }
