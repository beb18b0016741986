"""Influence and exposure of every customer, seed-set selection and what-if simulation.

The numbers a care team acts on, each with its error bar:

* :func:`influence_scores` -- **influence(v)**: the expected number of *other* customers an
  Independent Cascade (or Linear Threshold) started at v activates, for all customers at once
  by reverse influence sampling (RIS), with a confidence interval per customer. With customer
  values, also the expected value carried along.
* :func:`exposure_scores` -- **exposure(v)**: the probability that v is activated when the
  customers with recent negative events are the seeds, with an interval, and which seeds and
  which ties bring it (:func:`seeds_from_events` picks the seeds).
* :func:`select_seeds` -- the k customers who together reach the most (IMM, with the
  ``1 - 1/e - epsilon`` guarantee), optionally value-weighted and with a per-customer cost
  within a budget; :func:`compare_seed_sets` sets it against top-k by degree and PageRank.
* :func:`simulate` -- what-if: the cascade from chosen customers when others are protected
  (never activate): expected size with its standard error, each customer's activation
  probability, the curve per step and the customers most likely reached.

Estimators
----------
An RR set is the set of customers that reach a uniformly random root r in a random live-edge
world; ``P(v in RR) = sigma(v) / n`` (Borgs et al. 2014), where sigma(v) counts v itself. v
always belongs to its own RR set when it is the root, so influence counts *other* customers by
counting only the sets that contain v **other than as their root**:
``influence(v) = n * #{RR sets containing v, root != v} / R``, whose expectation is
``sum_{u != v} P(v activates u) = sigma(v) - 1`` exactly (no subtraction, never negative).
With values, roots are drawn with probability ``value(r) / V`` and the same count gives
``value_influence(v) = V * count / R = sum_{u != v} value(u) P(v activates u)``.

The count is binomial(R, p), so every per-customer interval is a Wilson score interval at
``confidence``. R is chosen by a sequential stopping rule on **one** stream of RR sets, so
every set sampled counts (IMM's two phases, Tang, Shi & Xiao, SIGMOD 2015, throw the search's
sets away: reusing them under IMM's fixed-R argument is not valid, Chen, arXiv:1808.09363).
The rule looks only at the points ``R_1 < R_2 < ... <= max_rr_sets`` of a geometric grid
fixed before sampling (:data:`RIS_GRID_RATIO`); at each, ``LB`` = a Bernstein lower
confidence bound of the ``top``-th largest count (scaled, at least one customer's worth: 1,
or the mean value), and it stops at the first point where
``R >= (2 + 2 epsilon / 3) ln(4 n m / delta) n / (epsilon^2 LB)`` (m grid points). By
Bernstein's inequality and a union bound over customers, sides and the m points, with
probability at least 1 - delta, at *every* grid point at once, LB is at most the true
``top``-th largest influence ``sigma_top`` and every customer's estimate is within
``epsilon_R * max(influence(v), sigma_top)`` of the truth, ``epsilon_R`` the epsilon those
R sets reach for LB; so wherever the rule stops (a data-dependent point of the grid), the
``top`` most influential customers are within relative error ``epsilon_R <= epsilon``. The
price of the sequential look is ``ln m`` (about 4.4 for the default grid) added to
``ln(4 n / delta)`` (about 20 at a million customers). R is capped by ``max_rr_sets`` and by
the work budget ``max_rr_members`` (RR-set members sampled: what a set costs whatever the
graph; the rule stops at the last grid point the budget pays for); then the epsilon actually
reached is reported, with ``stop_reason``.

>>> from carenet.graphs.model import CustomerGraph
>>> g = CustomerGraph.from_edges(["a", "b", "c"], [0, 1], [1, 2], [1.0, 1.0])
>>> s = influence_scores(g, edge_model="constant", probability=0.4, epsilon=0.05, seed=1)
>>> s.influence.round(1).tolist()      # a reaches b (0.4) and c (0.16)
[0.6, 0.4, 0.0]
>>> r = simulate(g, ["a"], edge_model="constant", probability=0.4, runs=4000, seed=1)
>>> abs(r.expected_size - 1.56) < 4 * r.std_error        # 1 + 0.4 + 0.16
True
>>> r.to_dict()["most_likely_reached"][0]["customer_id"]
'b'
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numba as nb
import numpy as np
import pandas as pd

from carenet.errors import InvalidInputError
from carenet.graphs.centrality import pagerank as centrality_pagerank
from carenet.graphs.diffusion import (
    MODELS,
    RIS_MODELS,
    Attribution,
    DiffusionGraph,
    RRSets,
    as_nodes,
    greedy_max_cover,
    monte_carlo,
    monte_carlo_attribution,
    reverse_hits,
    rr_counts,
    sample_rr_sets,
)
from carenet.graphs.exposure import DEFAULT_BUDGET, WorldsFn, forward_exposure
from carenet.graphs.model import CustomerGraph
from carenet.graphs.rng import derive_seed

ProgressFn = Callable[[float, float], None]
RRCounter = Callable[..., tuple[np.ndarray, int]]
"""Samples RR sets of an index range as :func:`~carenet.graphs.diffusion.rr_counts` does
(``counter(dg, count, model=, seed=, first=, root_weights=)``)."""


# ---------------------------------------------------------------------------- small helpers
def z_score(confidence: float) -> float:
    """The two-sided normal quantile of a ``confidence`` level (1.96 at 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be in (0, 1), not {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(
    successes: np.ndarray | float, trials: int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion (vectorised).

    >>> lo, hi = wilson_interval(np.array([0, 50]), 100)
    >>> round(float(lo[0]), 3), round(float(hi[0]), 3), round(float(lo[1]), 3)
    (0.0, 0.037, 0.404)
    """
    z = z_score(confidence)
    k = np.asarray(successes, dtype=np.float64)
    if trials <= 0:
        return np.zeros_like(k), np.ones_like(k)
    p = k / trials
    z2 = z * z / trials
    centre = (p + z2 / 2) / (1 + z2)
    half = z * np.sqrt(p * (1 - p) / trials + z2 / (4 * trials)) / (1 + z2)
    # at 0 or all successes the bound is exactly 0 (or 1); say so despite rounding
    low = np.where(k <= 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(k >= trials, 1.0, np.clip(centre + half, 0.0, 1.0))
    return low, high


def _check_unit(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and 0.0 < float(value) < 1.0):
        raise InvalidInputError(f"{name} must be in (0, 1), not {value!r}")
    return float(value)


def _positions(graph: CustomerGraph, customers: Sequence[Any] | np.ndarray | None,
               name: str) -> np.ndarray:
    """Positions of customer ids (unknown ids raise :class:`RunNotFoundError`)."""
    if customers is None:
        return np.zeros(0, np.int64)
    if isinstance(customers, str):
        raise InvalidInputError(f"{name} must be a list of customer ids, not one string")
    arr = np.asarray(list(customers), dtype=object)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    return np.unique(graph.index_of(arr.astype(str)))


def customer_values(values: pd.Series | np.ndarray | Sequence[float] | None, n: int,
                    *, missing: float = 1.0) -> np.ndarray | None:
    """Customer values for value-weighted influence: NaN -> ``missing``; None when no value
    is known at all. Negative values are an error.
    """
    if values is None:
        return None
    v = np.asarray(pd.to_numeric(pd.Series(np.asarray(values)), errors="coerce"),
                   dtype=np.float64)
    if v.shape != (n,):
        raise InvalidInputError(f"values must have one entry per customer ({n})")
    if np.isnan(v).all():
        return None
    v = np.where(np.isnan(v), float(missing), v)
    if (v < 0).any() or not np.isfinite(v).all():
        raise InvalidInputError("values must be finite and non-negative")
    if v.sum() <= 0:
        return None
    return v


def _diffusion_graph(graph: CustomerGraph, edge_model: str, scale: float,
                     probability: float) -> DiffusionGraph:
    return DiffusionGraph.from_graph(graph, edge_model=edge_model, scale=scale,
                                     probability=probability)


def _ris_model(model: str) -> str:
    if model not in RIS_MODELS:
        raise InvalidInputError(
            f"model must be one of {', '.join(RIS_MODELS)} for RR sets, not {model!r}"
        )
    return model


# ---------------------------------------------------------------------------- influence
@dataclass(frozen=True, eq=False)
class RISEstimate:
    """One all-customer RIS estimate: ``scale * counts / rr_sets`` with its bookkeeping.

    ``rr_sets``: every set sampled (all count); ``search_rr_sets``: those sampled before the
    stopping rule's last look (a part of ``rr_sets``, not extra work); ``checks`` of
    ``grid_points``: the looks taken; ``members``: RR-set members sampled (the work).
    """

    counts: np.ndarray
    rr_sets: int
    scale: float
    lower_bound: float
    epsilon_achieved: float
    capped: bool
    search_rr_sets: int
    mean_rr_size: float
    seconds: float
    kept: RRSets | None = None
    members: int = 0
    stop_reason: str = "error target met"
    checks: int = 0
    grid_points: int = 0


def _rr_budget_sets(budget: int, used: int, mean_size: float) -> int | None:
    """The RR sets the rest of a member budget pays for at ``mean_size`` members a set
    (None without a budget).
    """
    if budget <= 0:
        return None
    return max(0, int((budget - used) / max(mean_size, 1.0)))


def _epsilon_for(r: int, c: float) -> float:
    """The epsilon that ``r = (2 + 2 eps / 3) c / eps^2`` sets achieve."""
    if r <= 0:
        return float("inf")
    # eps^2 r - (2/3) c eps - 2 c = 0
    return float(((2 / 3) * c + math.sqrt((4 / 9) * c * c + 8 * c * r)) / (2 * r))


# Ratio of the geometric grid of sample sizes at which the one-stream RIS estimate checks its
# stopping rule. The grid is fixed before sampling, so a union bound over its points (a
# ln(points) term in the sample size) makes the rule valid wherever it stops; a fine grid
# costs little there (ln 80 for 80 points) and stops close to where the target is met.
RIS_GRID_RATIO = 1.1


def _ris_grid(first: int, last: int, ratio: float = RIS_GRID_RATIO) -> list[int]:
    """Sample sizes ``first, ~first * ratio, ...`` up to ``last`` (always the last point):
    where the estimate looks at its stopping rule.

    >>> _ris_grid(10, 40, 2.0)
    [10, 20, 40]
    >>> _ris_grid(100, 100)
    [100]
    """
    first = max(1, min(int(first), int(last)))
    grid = []
    r = first
    while r < last:
        grid.append(r)
        r = max(r + 1, math.ceil(r * ratio))
    grid.append(int(last))
    return grid


def _count_lower_bound(x: float, a: float) -> float:
    """A lower confidence bound of a binomial mean from a count ``x``: the smallest mean
    ``mu`` under which Bernstein's inequality ``P(X - mu >= t) <= exp(-t^2 / (2 (mu + t / 3)))``
    still gives ``x`` a probability of at least ``exp(-a)``; so it exceeds the true mean with
    probability at most ``exp(-a)``. Non-decreasing in ``x``.

    >>> _count_lower_bound(0, 5.0)
    0.0
    >>> round(_count_lower_bound(10_000, 5.0))
    9687
    """
    return max(0.0, x + 2 * a / 3 - math.sqrt(4 * a * a / 9 + 2 * a * x))


def _ris_estimate(
    dg: DiffusionGraph, *, model: str, epsilon: float, delta: float, top: int, seed: int,
    root_weights: np.ndarray | None, max_rr_sets: int, progress: ProgressFn | None = None,
    keep_members: int = 0, max_rr_members: int = 0, counter: RRCounter | None = None,
) -> RISEstimate:
    """One stream of RR sets with a sequential stopping rule (module docstring). At each
    point of a grid of sample sizes fixed in advance, a lower bound LB of the ``top``-th
    largest influence is read off the counts so far; the estimate stops at the first point
    where those counts reach relative error ``epsilon`` for that LB, or at ``max_rr_sets``,
    or when the next point would exceed the work budget ``max_rr_members`` (RR-set members
    sampled; ``stop_reason = "budget"``). Every set sampled counts toward the estimate.
    With ``keep_members``, the first sets, up to about that many members, are also kept
    (``kept``) for IMM to reuse; the counts are the same either way (same streams).
    ``counter``: samples the sets instead of :func:`rr_counts` (same arguments and result).
    """
    count_sets = rr_counts if counter is None else counter
    t0 = time.perf_counter()
    n = dg.n_nodes
    total = float(root_weights.sum()) if root_weights is not None else float(n)
    floor = total / n
    k0 = max(1, min(int(top), n))
    # the grid starts where the target would be met if LB were the largest conceivable
    # (everyone's worth); any start fixed in advance is valid, this one wastes no points
    c0 = math.log(4 * n / delta)
    grid = _ris_grid(math.ceil((2 + 2 * epsilon / 3) * c0 / epsilon**2), max_rr_sets)
    # per customer, per grid point and per side: delta / (4 n points); the LB's one-sided
    # bounds take delta / 4 in all, the estimate's two-sided ones delta / 2
    a = math.log(4 * n * len(grid) / delta)
    f_seed = derive_seed(seed, 2)
    counts = np.zeros(n, np.int64)
    kept_parts: list[RRSets] = []
    kept_members = 0
    members = 0
    done = 0
    previous = 0
    lb = floor
    eps_reached = float("inf")
    stop_reason = "max_rr_sets reached"
    i = 0  # the grid point sampled up to next
    looks = 0
    while True:
        step = grid[i] - done
        if keep_members > kept_members:
            mean_size = members / done if done else 1.0
            n_keep = min(step, max(1, int((keep_members - kept_members) / max(mean_size, 1.0))))
            part = sample_rr_sets(dg, n_keep, model=model, seed=f_seed, first=done,
                                  root_weights=root_weights)
            counts += (np.bincount(part.members, minlength=n)
                       - np.bincount(part.roots, minlength=n))
            kept_parts.append(part)
            kept_members += int(part.members.size)
            members += int(part.members.size)
            done += n_keep
            step -= n_keep
        if step > 0:
            more, more_size = count_sets(dg, step, model=model, seed=f_seed, first=done,
                                         root_weights=root_weights)
            counts += more
            members += more_size
            done += step
        looks += 1
        x_k = float(np.partition(counts, n - k0)[n - k0])
        lb = max(floor, total * _count_lower_bound(x_k, a) / done)
        eps_reached = _epsilon_for(done, a * total / lb)
        if progress is not None:
            progress(float(i + 1), float(len(grid)))
        if eps_reached <= epsilon:
            stop_reason = "error target met"
            break
        if i + 1 == len(grid):
            break
        # Looking at fewer points of the fixed grid keeps the rule valid, and every look
        # costs a pass of the sampler: skip the points below 0.8x the sets the target would
        # need if LB were already the point estimate (LB stays below it)
        optimistic = max(floor, total * x_k / done)
        r_opt = 0.8 * (2 + 2 * epsilon / 3) * a * total / (epsilon**2 * optimistic)
        j = i + 1
        while j + 1 < len(grid) and grid[j + 1] <= r_opt:
            j += 1
        while j > i + 1 and 0 < max_rr_members < members * grid[j] / done:
            j -= 1
        if 0 < max_rr_members < members * grid[j] / done:
            stop_reason = "budget"
            break
        previous = done
        i = j
    kept: RRSets | None = None
    if kept_parts:
        kept = _join_parts(kept_parts)
    return RISEstimate(
        counts=counts, rr_sets=done, scale=total, lower_bound=lb,
        epsilon_achieved=eps_reached, capped=eps_reached > epsilon,
        search_rr_sets=previous, mean_rr_size=members / done,
        seconds=time.perf_counter() - t0, kept=kept, members=members,
        stop_reason=stop_reason, checks=looks, grid_points=len(grid),
    )


def _join_parts(parts: list[RRSets]) -> RRSets:
    """Consecutive RR-set parts (streams ``0 ..``) as one :class:`RRSets`, copied end to end;
    empties ``parts``, dropping each part once copied: a concatenation held the kept sets
    twice, with a few offset-sized temporaries (~0.5 GB at 1M customers).
    """
    n, model, seed = parts[0].n_nodes, parts[0].model, parts[0].seed
    offsets = np.empty(sum(p.count for p in parts) + 1, np.int64)
    members = np.empty(sum(p.members.size for p in parts), parts[0].members.dtype)
    offsets[0] = 0
    at = 0
    used = 0
    parts.reverse()
    while parts:
        part = parts.pop()
        c = part.count
        np.add(part.offsets[1:], used, out=offsets[at + 1: at + c + 1])
        members[used: used + part.members.size] = part.members
        at += c
        used += int(part.members.size)
        del part
    return RRSets(n, offsets, members, model, seed, 0)


@dataclass(frozen=True, eq=False)
class InfluenceScores:
    """Influence of every customer (aligned to node positions) with per-customer intervals.

    ``influence``: expected number of other customers activated by a cascade started at the
    customer; ``influence_low``/``influence_high``: its interval at ``confidence``.
    ``value_*``: the same for the expected value carried along (None without values).
    """

    ids: np.ndarray
    influence: np.ndarray
    influence_low: np.ndarray
    influence_high: np.ndarray
    model: str
    edge_model: str
    epsilon: float
    delta: float
    top: int
    confidence: float
    seed: int
    estimate: RISEstimate
    value_influence: np.ndarray | None = None
    value_low: np.ndarray | None = None
    value_high: np.ndarray | None = None
    value_estimate: RISEstimate | None = None
    seconds: float = 0.0
    max_rr_members: int = 0

    @property
    def shared_rr_sets(self) -> RRSets | None:
        """The final RR sets kept for :func:`select_seeds` (``keep_rr_members``), if any."""
        est = self.value_estimate if self.value_estimate is not None else self.estimate
        return est.kept

    def columns(self) -> dict[str, np.ndarray]:
        """Per-customer columns for the run table."""
        out = {"influence": self.influence, "influence_low": self.influence_low,
               "influence_high": self.influence_high}
        if self.value_influence is not None:
            assert self.value_low is not None
            assert self.value_high is not None
            out |= {"value_influence": self.value_influence,
                    "value_influence_low": self.value_low,
                    "value_influence_high": self.value_high}
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per customer: ``customer_id`` and the influence columns."""
        frame = pd.DataFrame({"customer_id": self.ids})
        for k, v in self.columns().items():
            frame[k] = v
        return frame

    def top_customers(self, k: int = 10, *, by: str = "influence") -> pd.DataFrame:
        """The k customers with the highest ``by`` (``influence`` or ``value_influence``)."""
        frame = self.to_frame()
        if by not in frame:
            raise InvalidInputError(f"by must be one of {', '.join(self.columns())}, not {by!r}")
        return frame.sort_values(by, ascending=False, kind="stable").head(k).reset_index(
            drop=True)

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """Parameters, sample sizes, timings and the top customers (native numbers only)."""
        def est(e: RISEstimate | None) -> dict[str, Any] | None:
            if e is None:
                return None
            return {"rr_sets": int(e.rr_sets), "search_rr_sets": int(e.search_rr_sets),
                    "lower_bound": float(e.lower_bound),
                    "epsilon_achieved": float(e.epsilon_achieved), "capped": bool(e.capped),
                    "mean_rr_size": float(e.mean_rr_size), "seconds": float(e.seconds),
                    "error_target": float(self.epsilon),
                    "error": float(e.epsilon_achieved),
                    "samples": int(e.rr_sets),
                    "checks": int(e.checks), "grid_points": int(e.grid_points),
                    "members": int(e.members),
                    "work_budget": int(self.max_rr_members) or None,
                    "stopped": e.stop_reason, "stop_reason": e.stop_reason}

        top_rows = self.top_customers(top)
        return {
            "model": self.model, "edge_model": self.edge_model, "epsilon": self.epsilon,
            "delta": self.delta, "guaranteed_top": int(self.top),
            "confidence": self.confidence, "seed": int(self.seed),
            "estimate": est(self.estimate), "value_estimate": est(self.value_estimate),
            "seconds": float(self.seconds),
            "top": [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
                    for r in top_rows.to_dict("records")],
        }


def influence_scores(
    graph: CustomerGraph,
    *,
    model: str = "ic",
    edge_model: str = "weighted_cascade",
    scale: float = 1.0,
    probability: float = 0.1,
    epsilon: float = 0.1,
    delta: float = 0.01,
    top: int = 50,
    confidence: float = 0.95,
    values: np.ndarray | pd.Series | None = None,
    missing_value: float = 1.0,
    seed: int = 0,
    max_rr_sets: int = 10_000_000,
    progress: ProgressFn | None = None,
    keep_rr_members: int = 0,
    max_rr_members: int = 0,
    rr_counter: RRCounter | None = None,
) -> InfluenceScores:
    """Influence of every customer by reverse influence sampling (see the module docstring).

    ``graph``: the customer graph, ties pointing from the customer who influences.
    ``model``: ``"ic"`` (Independent Cascade) or ``"lt"`` (Linear Threshold).
    ``edge_model``, ``scale``, ``probability``: tie activation probabilities
    (:func:`carenet.graphs.diffusion.edge_probabilities`). ``epsilon``, ``delta``: with
    probability ``1 - delta`` every estimate is within ``epsilon * max(influence, LB)``, LB a
    lower bound of the ``top``-th largest influence. ``confidence``: level of the
    per-customer intervals. ``values``: customer values (NaN -> ``missing_value``); adds the
    value-weighted influence. ``seed``: the same seed gives the same scores with any number of
    threads. ``max_rr_sets``: cap on the sets per estimate (the epsilon reached is then
    reported). ``progress``: called with (phase done, phases) during the search.
    ``keep_rr_members``: keep the first final RR sets (about that many members) of the
    estimate :func:`select_seeds` would sample with the same values (the value-weighted one
    with ``values``, else the plain one) in :attr:`InfluenceScores.shared_rr_sets`, for
    ``select_seeds(rr_sets=...)`` to reuse instead of sampling its own final sets.
    ``max_rr_members``: work budget of each estimate, in RR-set members sampled (search and
    final; 0: none); when it binds the estimate stops with ``stop_reason = "budget"`` and
    reports the epsilon it reached.
    ``rr_counter``: samples the RR sets of index ranges in place of
    :func:`~carenet.graphs.diffusion.rr_counts` (same arguments, same result), e.g. as Spark
    tasks (:mod:`carenet.spark.sampling`); the estimates are then the same, bit for bit.
    """
    t0 = time.perf_counter()
    model = _ris_model(model)
    if max_rr_members < 0:
        raise InvalidInputError(f"max_rr_members must be >= 0, not {max_rr_members}")
    epsilon = _check_unit("epsilon", epsilon)
    delta = _check_unit("delta", delta)
    z_score(confidence)
    if top < 1:
        raise InvalidInputError(f"top must be >= 1, not {top}")
    if max_rr_sets < 1:
        raise InvalidInputError(f"max_rr_sets must be >= 1, not {max_rr_sets}")
    n = graph.n_customers
    dg = _diffusion_graph(graph, edge_model, scale, probability)
    vals = customer_values(values, n, missing=missing_value)
    est = _ris_estimate(dg, model=model, epsilon=epsilon, delta=delta, top=top, seed=seed,
                        root_weights=None, max_rr_sets=max_rr_sets, progress=progress,
                        keep_members=0 if vals is not None else int(keep_rr_members),
                        max_rr_members=int(max_rr_members), counter=rr_counter)
    lo, hi = wilson_interval(est.counts, est.rr_sets, confidence)
    infl = est.scale * est.counts / est.rr_sets
    v_est = v_inf = v_lo = v_hi = None
    if vals is not None:
        v_est = _ris_estimate(dg, model=model, epsilon=epsilon, delta=delta, top=top,
                              seed=derive_seed(seed, 3), root_weights=vals,
                              max_rr_sets=max_rr_sets, keep_members=int(keep_rr_members),
                              max_rr_members=int(max_rr_members), counter=rr_counter)
        a, b = wilson_interval(v_est.counts, v_est.rr_sets, confidence)
        v_inf = v_est.scale * v_est.counts / v_est.rr_sets
        v_lo, v_hi = v_est.scale * a, v_est.scale * b
    return InfluenceScores(
        ids=graph.ids, influence=infl, influence_low=est.scale * lo,
        influence_high=est.scale * hi, model=model, edge_model=edge_model, epsilon=epsilon,
        delta=delta, top=int(top), confidence=confidence, seed=int(seed), estimate=est,
        value_influence=v_inf, value_low=v_lo, value_high=v_hi, value_estimate=v_est,
        seconds=time.perf_counter() - t0, max_rr_members=int(max_rr_members),
    )


# ---------------------------------------------------------------------------- exposure
def seeds_from_events(
    events: pd.DataFrame,
    *,
    reference_time: float | None,
    lookback: float | None = 90 * 86400.0,
    kinds: Sequence[str] = ("churn", "complaint"),
) -> np.ndarray:
    """Node positions of the customers with a recent negative event.

    An event counts when its kind is in ``kinds`` (case-insensitive) and it happened before
    ``reference_time`` (strictly) and not more than ``lookback`` seconds before it. Without a
    reference time (a log without timestamps) every event of those kinds counts; with one,
    events without a timestamp do not (their recency is unknown).
    """
    if lookback is not None and lookback <= 0:
        raise InvalidInputError(f"lookback must be > 0 seconds, not {lookback}")
    if len(events) == 0:
        return np.zeros(0, np.int64)
    for col in ("node", "event"):
        if col not in events:
            raise InvalidInputError(f"events table has no {col!r} column")
    wanted = {k.strip().lower() for k in kinds}
    keep = events["event"].astype(str).str.lower().isin(wanted).to_numpy().copy()
    if reference_time is not None:
        t = (pd.to_numeric(events["timestamp"], errors="coerce").to_numpy(np.float64)
             if "timestamp" in events else np.full(len(events), np.nan))
        with np.errstate(invalid="ignore"):
            keep &= t < reference_time
            if lookback is not None:
                keep &= t >= reference_time - lookback
    return np.unique(events["node"].to_numpy()[keep].astype(np.int64))


@dataclass(frozen=True, eq=False)
class ExposureScores:
    """Exposure of every customer to the seeds (customers with recent negative events).

    ``exposure[v]``: probability that v is activated when the seeds start a cascade. For a
    seed itself, exposure is *leave-one-out*: the probability that the **other** seeds
    activate it (``is_seed`` marks them), so a complainer surrounded by churners stands out.
    ``sources`` is the long attribution table (see :func:`exposure_scores`).
    """

    ids: np.ndarray
    exposure: np.ndarray
    exposure_low: np.ndarray
    exposure_high: np.ndarray
    is_seed: np.ndarray
    seeds: np.ndarray
    sources: pd.DataFrame
    model: str
    edge_model: str
    runs: int
    confidence: float
    seed: int
    seconds: float = 0.0
    method: str = "forward"
    estimate: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, np.ndarray]:
        """Per-customer columns for the run table."""
        return {"exposure": self.exposure, "exposure_low": self.exposure_low,
                "exposure_high": self.exposure_high, "exposure_seed": self.is_seed}

    def to_frame(self) -> pd.DataFrame:
        """One row per customer: ``customer_id`` and the exposure columns."""
        frame = pd.DataFrame({"customer_id": self.ids})
        for k, v in self.columns().items():
            frame[k] = v
        return frame

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """Parameters, counts and the most exposed non-seed customers (native numbers)."""
        order = np.argsort(-np.where(self.is_seed, -1.0, self.exposure), kind="stable")[:top]
        return {
            "model": self.model, "edge_model": self.edge_model, "runs": int(self.runs),
            "confidence": self.confidence, "seed": int(self.seed),
            "seeds": int(self.seeds.size),
            "exposed": int(np.count_nonzero((self.exposure > 0) & ~self.is_seed)),
            "mean_exposure": float(self.exposure[~self.is_seed].mean())
            if (~self.is_seed).any() else 0.0,
            "seconds": float(self.seconds), "method": self.method,
            "error": float(self.estimate.get("error", float("nan"))),
            "error_target": (None if "error_target" not in self.estimate
                             else float(self.estimate["error_target"])),
            "rounds": int(self.estimate.get("rounds", 1)),
            "attribution_runs": int(self.estimate.get("attribution_runs", self.runs)),
            "stop_reason": str(self.estimate.get("stop_reason", "runs")),
            "max_runs": int(self.estimate.get("max_runs", self.runs)),
            "budget": self.estimate.get("budget"),
            "budget_runs": self.estimate.get("budget_runs"),
            "most_exposed": [
                {"customer_id": str(self.ids[i]), "exposure": float(self.exposure[i]),
                 "low": float(self.exposure_low[i]), "high": float(self.exposure_high[i])}
                for i in order.tolist() if not self.is_seed[i] and self.exposure[i] > 0
            ],
        }


def _tie_weights(graph: CustomerGraph, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Weight of the ties src -> dst (NaN where there is none, e.g. src == -1)."""
    out = np.full(src.size, np.nan)
    ok = src >= 0
    if not ok.any() or graph.n_entries == 0:
        return out
    n = np.int64(graph.n_customers)
    keys = graph.sources().astype(np.int64) * n + graph.indices
    want = src[ok].astype(np.int64) * n + dst[ok]
    # look the wanted ties up in sorted order: a binary search per row in random order
    # missed the cache on every step (3 s for 3M rows at 1M customers)
    order = np.argsort(want)
    pos = np.empty(want.size, np.int64)
    pos[order] = np.searchsorted(keys, want[order])
    np.clip(pos, 0, keys.size - 1, out=pos)
    found = keys[pos] == want
    vals = np.full(want.size, np.nan)
    vals[found] = graph.weights[pos[found]]
    out[ok] = vals
    return out


@nb.njit(cache=True, nogil=True)
def _rows_sorted(node: np.ndarray, source: np.ndarray, via: np.ndarray) -> bool:
    """Are the rows in (node, source, via) order (ties allowed)? One pass, no temporaries."""
    for i in range(1, node.size):
        a, b = node[i - 1], node[i]
        if a != b:
            if a > b:
                return False
            continue
        a, b = source[i - 1], source[i]
        if a != b:
            if a > b:
                return False
            continue
        if via[i - 1] > via[i]:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _top_sources(node: np.ndarray, source: np.ndarray, via: np.ndarray, count: np.ndarray,
                 keep: int) -> tuple[np.ndarray, ...]:
    """The top ``keep`` (source, via) pairs of every node from rows sorted by (node, source,
    via), in one pass: per (node, source) pair its rows' counts summed (``n_src``) and the via
    of its first row holding the largest count; per node the pairs ranked by ``n_src``
    (descending), then source (ascending: the pairs arrive in source order, so a later pair
    displaces an earlier one only with a strictly larger ``n_src``). Returns (node, rank,
    source, n_src, via, via count) of the kept pairs, node by node and rank by rank. Memory:
    the output and ``keep`` slots, where whole-array numpy passes held a dozen temporaries
    the size of the rows (3 GB at 1M customers).
    """
    rows = node.size
    # pass 1: the output size (per node, min(keep, its pairs))
    out = 0
    i = 0
    while i < rows:
        v = node[i]
        pairs = 0
        while i < rows and node[i] == v:
            s = source[i]
            while i < rows and node[i] == v and source[i] == s:
                i += 1
            pairs += 1
        out += min(pairs, keep)
    o_node = np.empty(out, np.int64)
    o_rank = np.empty(out, np.int64)
    o_src = np.empty(out, np.int64)
    o_nsrc = np.empty(out, np.int64)
    o_via = np.empty(out, np.int64)
    o_cnt = np.empty(out, np.int64)
    b_nsrc = np.empty(max(keep, 1), np.int64)
    b_src = np.empty(max(keep, 1), np.int64)
    b_via = np.empty(max(keep, 1), np.int64)
    b_cnt = np.empty(max(keep, 1), np.int64)
    o = 0
    i = 0
    while i < rows:
        v = node[i]
        held = 0
        while i < rows and node[i] == v:
            s = source[i]
            total = np.int64(0)
            best_cnt = np.int64(-1)
            best_via = np.int64(-1)
            while i < rows and node[i] == v and source[i] == s:
                c = np.int64(count[i])
                total += c
                if c > best_cnt:
                    best_cnt = c
                    best_via = np.int64(via[i])
                i += 1
            # insert into the ranked slots: after every held pair with n_src >= total
            pos = held
            while pos > 0 and b_nsrc[pos - 1] < total:
                pos -= 1
            if pos >= keep:
                continue
            last = min(held, keep - 1)
            for q in range(last, pos, -1):
                b_nsrc[q] = b_nsrc[q - 1]
                b_src[q] = b_src[q - 1]
                b_via[q] = b_via[q - 1]
                b_cnt[q] = b_cnt[q - 1]
            b_nsrc[pos] = total
            b_src[pos] = np.int64(s)
            b_via[pos] = best_via
            b_cnt[pos] = best_cnt
            held = min(held + 1, keep)
        for q in range(held):
            o_node[o] = np.int64(v)
            o_rank[o] = q + 1
            o_src[o] = b_src[q]
            o_nsrc[o] = b_nsrc[q]
            o_via[o] = b_via[q]
            o_cnt[o] = b_cnt[q]
            o += 1
    return o_node, o_rank, o_src, o_nsrc, o_via, o_cnt


def _source_table(graph: CustomerGraph, node: np.ndarray, source: np.ndarray,
                  via: np.ndarray, count: np.ndarray, reached: np.ndarray, runs: int,
                  keep: int) -> pd.DataFrame:
    """Top ``keep`` sources per customer from (node, source node, via node, count) rows.

    Per (customer, source) pair: ``n_src`` = its rows' counts summed, the via of its row with
    the largest count (smallest via on ties); pairs ranked per customer by ``n_src``
    (descending), then source. The forward rows arrive sorted by (node, source, via), so one
    pass of :func:`_top_sources` over them builds the table (other rows get one lexsort
    first); at 1M customers there are tens of millions of rows, and the whole-array numpy
    version held about 3 GB of temporaries (the analysis' peak memory).
    """
    cols = ["customer_id", "rank", "source_id", "share", "probability", "via_id",
            "via_share", "tie_weight"]
    if node.size == 0:
        return pd.DataFrame({c: pd.Series(dtype=object if c.endswith("_id") else float)
                             for c in cols})
    node, source, via, count = (np.ascontiguousarray(x) for x in (node, source, via, count))
    if not _rows_sorted(node, source, via):
        order = np.lexsort((via, source, node))
        node, source, via, count = (x[order] for x in (node, source, via, count))
    nodes, rank, src, n_src, via_arr, v_count = _top_sources(node, source, via, count,
                                                             int(keep))
    n_sel = n_src.astype(np.float64)
    return pd.DataFrame({
        "customer_id": graph.ids[nodes],
        "rank": rank,
        "source_id": graph.ids[src],
        "share": n_sel / reached[nodes],
        "probability": n_sel / runs,
        "via_id": graph.ids[via_arr],
        "via_share": v_count.astype(np.float64) / n_sel,
        "tie_weight": _tie_weights(graph, via_arr, nodes),
    })


def exposure_scores(
    graph: CustomerGraph,
    seeds: Sequence[Any] | np.ndarray,
    *,
    model: str = "ic",
    edge_model: str = "weighted_cascade",
    scale: float = 1.0,
    probability: float = 0.1,
    runs: int = 2000,
    confidence: float = 0.95,
    sources: int = 3,
    seed: int = 0,
    seeds_are_positions: bool = False,
    recovery: float = 0.5,
    method: str = "forward",
    error: float = 0.025,
    attribution_runs: int = 512,
    budget: float | None = DEFAULT_BUDGET,
    worlds: WorldsFn | None = None,
) -> ExposureScores:
    """Exposure of every customer to the cascade started by ``seeds`` (customer ids; node
    positions with ``seeds_are_positions``), each with a Wilson interval.

    ``method="forward"`` (default, :mod:`carenet.graphs.exposure`): one set of forward
    live-edge worlds gives non-seeds their exposure and seeds their leave-one-out exposure
    (two source labels per customer), so the cost does not grow with the number of seeds.
    Worlds are added until every customer's interval half-width is at most ``error`` (at
    ``confidence``) or ``runs`` worlds were simulated, or the work ``budget`` (tie-worlds:
    worlds x directed ties, default 2e9; None: none) is spent, so a 1M-customer graph gets
    about 380 worlds instead of 2,000. The half-width reached, the target and why it stopped
    (``stop_reason``: ``error``, ``max_runs`` or ``budget``) are reported in ``to_dict()``.
    Attribution comes from the first ``attribution_runs`` worlds: for a non-seed the seed
    whose label reached it first and the neighbour it came through, for a seed another seed
    that reaches it.

    ``method="reverse"`` (the earlier estimator, kept as the oracle): exactly ``runs``
    forward simulations from all seeds for non-seeds, and ``runs`` reverse samples *per seed*
    for the seeds (leave-one-out, recording the nearest other seed). With ``model="sir"`` it
    uses IC reverse samples for the seeds (SIR has no RR-set form); ``forward`` is exact for
    SIR through its percolation form.

    ``sources`` rows per exposed customer go into the attribution table: ``customer_id``,
    ``rank``, ``source_id`` (a seed), ``share`` (of the customer's exposures that came first
    from that seed), ``probability`` (that the seed reaches the customer first), ``via_id``
    (the neighbour through which it most often arrives), ``via_share`` and ``tie_weight``
    (weight of the tie via -> customer).

    ``worlds`` (``method="forward"`` only): runs the forward worlds elsewhere, e.g. as Spark
    tasks (:data:`~carenet.graphs.exposure.WorldsFn`); the result is the same.
    """
    t0 = time.perf_counter()
    if method not in ("forward", "reverse"):
        raise InvalidInputError(f"method must be forward or reverse, not {method!r}")
    if model not in MODELS:
        raise InvalidInputError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    if runs < 1:
        raise InvalidInputError(f"runs must be >= 1, not {runs}")
    if sources < 1:
        raise InvalidInputError(f"sources must be >= 1, not {sources}")
    n = graph.n_customers
    if seeds_are_positions:
        s_nodes = as_nodes(np.asarray(seeds), n, "seeds")
    else:
        s_nodes = _positions(graph, seeds, "seeds")
    dg = _diffusion_graph(graph, edge_model, scale, probability)
    is_seed = np.zeros(n, bool)
    is_seed[s_nodes] = True
    if method == "forward":
        fx = forward_exposure(dg, s_nodes, model=model,
                              recovery=recovery if model == "sir" else 1.0, error=error,
                              confidence=confidence, max_runs=runs,
                              attribution_runs=attribution_runs, seed=derive_seed(seed, 13),
                              budget=budget, worlds=worlds)
        counts, done = fx.counts, fx.runs
        reached = np.bincount(fx.node, weights=fx.count, minlength=n)
        # seed positions in the rows' dtype (int32): one more column of tens of millions
        table = _source_table(graph, fx.node, s_nodes.astype(fx.source.dtype)[fx.source],
                              fx.via, fx.count, reached, max(1, fx.attribution_runs), sources)
        extra: dict[str, Any] = {"error": fx.error, "error_target": fx.error_target,
                                 "rounds": fx.rounds, "attribution_runs": fx.attribution_runs,
                                 "stop_reason": fx.stop_reason, "max_runs": int(runs),
                                 "budget": None if budget is None else float(budget),
                                 "budget_runs": fx.budget_runs}
    else:
        counts, table = _reverse_exposure(graph, dg, s_nodes, model=model, runs=runs,
                                          sources=sources, seed=seed, recovery=recovery)
        done = int(runs)
        extra = {"error": float(_half_width(counts, done, confidence).max()) if n else 0.0,
                 "stop_reason": "runs", "max_runs": int(runs)}
    lo, hi = wilson_interval(counts, done, confidence)
    return ExposureScores(
        ids=graph.ids, exposure=counts / done, exposure_low=lo, exposure_high=hi,
        is_seed=is_seed, seeds=s_nodes, sources=table, model=model, edge_model=edge_model,
        runs=int(done), confidence=confidence, seed=int(seed),
        seconds=time.perf_counter() - t0, method=method, estimate=extra,
    )


def _half_width(counts: np.ndarray, trials: int, confidence: float) -> np.ndarray:
    lo, hi = wilson_interval(counts, trials, confidence)
    return np.asarray((hi - lo) / 2)


def _reverse_exposure(graph: CustomerGraph, dg: DiffusionGraph, s_nodes: np.ndarray, *,
                      model: str, runs: int, sources: int, seed: int,
                      recovery: float) -> tuple[np.ndarray, pd.DataFrame]:
    """The earlier estimator: forward runs for non-seeds, per-seed reverse samples."""
    n = graph.n_customers
    counts = np.zeros(n, np.int64)
    rows: list[tuple[np.ndarray, ...]] = []
    if s_nodes.size:
        mc, att = monte_carlo_attribution(dg, s_nodes, model=model, runs=runs,
                                          seed=derive_seed(seed, 11),
                                          recovery=recovery if model == "sir" else 1.0)
        counts = mc.activation_counts.copy()
        a: Attribution = att
        rows.append((a.node, s_nodes[a.origin], a.parent, a.count))
        counts[s_nodes] = 0
        rr_model = model if model in RIS_MODELS else "ic"
        block = max(1, 4_000_000 // runs)
        for b in range(0, s_nodes.size, block):
            roots = s_nodes[b: b + block]
            hit, via = reverse_hits(dg, roots, s_nodes, model=rr_model, runs=runs,
                                    seed=derive_seed(seed, 12), first=b * runs)
            counts[roots] = (hit >= 0).sum(axis=1)
            k_idx, _ = np.nonzero(hit >= 0)
            ok = hit >= 0
            rows.append(_count_triples(roots[k_idx], hit[ok].astype(np.int64),
                                       via[ok].astype(np.int64)))
    if rows:
        node, src, via_n, cnt = (np.concatenate(x) for x in zip(*rows, strict=True))
    else:
        node = src = via_n = cnt = np.zeros(0, np.int64)
    table = _source_table(graph, node, src, via_n, cnt, counts.astype(np.float64), runs,
                          sources)
    return counts, table


def _count_triples(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
    if a.size == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, z
    frame = pd.DataFrame({"a": a, "b": b, "c": c})
    g = frame.groupby(["a", "b", "c"], sort=True).size().reset_index(name="n")
    return (g["a"].to_numpy(np.int64), g["b"].to_numpy(np.int64), g["c"].to_numpy(np.int64),
            g["n"].to_numpy(np.int64))


# ---------------------------------------------------------------------------- seed selection
@dataclass(frozen=True, eq=False)
class SeedSelection:
    """Seeds chosen by IMM, in pick order, with the RR-set estimate of their spread.

    ``gains[i]``: RR sets newly covered by the i-th pick (its marginal contribution);
    ``spread``: estimated expected number of activated customers (seeds included), or of
    value with ``value_weighted``, with a Wilson interval (optimistic: it is measured on the
    sets the seeds were chosen on; :func:`compare_seed_sets` evaluates by simulation).
    """

    ids: np.ndarray
    nodes: np.ndarray
    gains: np.ndarray
    spread: float
    spread_low: float
    spread_high: float
    rr_sets: int
    search_rr_sets: int
    lower_bound: float
    k: int
    budget: float | None
    cost_used: float | None
    value_weighted: bool
    model: str
    edge_model: str
    epsilon: float
    delta: float
    guarantee: str
    seed: int
    seconds: float
    rr_bytes: int = 0
    rr_sets_needed: int = 0
    shared_rr_sets: bool = False
    members: int = 0
    max_rr_members: int = 0
    budget_bound: bool = False

    @property
    def epsilon_achieved(self) -> float:
        """The epsilon of the guarantee with the final sets actually used (``epsilon`` unless
        ``max_rr_sets`` or the ``max_rr_members`` budget capped them: the needed count grows
        as ``1 / epsilon^2``).
        """
        if self.rr_sets >= self.rr_sets_needed:
            return float(self.epsilon)
        return float(self.epsilon * math.sqrt(self.rr_sets_needed / max(1, self.rr_sets)))

    def to_frame(self) -> pd.DataFrame:
        """One row per seed: rank, customer_id, marginal gain in customers (or value)."""
        scale = self.spread / max(1, int(self.gains.sum())) if self.gains.sum() else 0.0
        return pd.DataFrame({"rank": np.arange(1, self.nodes.size + 1),
                             "customer_id": self.ids,
                             "marginal_gain": self.gains * scale})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (native numbers only)."""
        return {
            "seeds": [str(x) for x in self.ids], "k": int(self.k),
            "budget": None if self.budget is None else float(self.budget),
            "cost_used": None if self.cost_used is None else float(self.cost_used),
            "spread": float(self.spread), "spread_low": float(self.spread_low),
            "spread_high": float(self.spread_high), "rr_sets": int(self.rr_sets),
            "search_rr_sets": int(self.search_rr_sets), "lower_bound": float(self.lower_bound),
            "value_weighted": bool(self.value_weighted), "model": self.model,
            "edge_model": self.edge_model, "epsilon": float(self.epsilon),
            "delta": float(self.delta), "guarantee": self.guarantee, "seed": int(self.seed),
            "seconds": float(self.seconds), "rr_bytes": int(self.rr_bytes),
            "error_target": float(self.epsilon), "error": self.epsilon_achieved,
            "samples": int(self.rr_sets + self.search_rr_sets),
            "shared_rr_sets": bool(self.shared_rr_sets),
            "members": int(self.members),
            "work_budget": int(self.max_rr_members) or None,
            "stopped": self.stop_reason, "stop_reason": self.stop_reason,
        }

    @property
    def stop_reason(self) -> str:
        """Why the final phase stopped: ``error target met``, ``max_rr_sets reached`` or
        ``budget`` (the ``max_rr_members`` work budget).
        """
        if self.rr_sets >= self.rr_sets_needed:
            return "error target met"
        return "budget" if self.budget_bound else "max_rr_sets reached"


def _log_comb(n: int, k: int) -> float:
    k = max(0, min(k, n))
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _pick(sets: RRSets, k: int, cost: np.ndarray | None,
          budget: float | None) -> tuple[np.ndarray, np.ndarray]:
    picks, gains = greedy_max_cover(sets, k, cost=cost, budget=budget)
    if cost is None:
        return picks, gains
    picks, gains = picks[:k], gains[:k]
    # Budgeted coverage: the better of the ratio-greedy set and the best affordable single
    # customer is within (1 - 1/e) / 2 of the optimum (Khuller, Moss & Naor 1999).
    assert budget is not None
    cover = sets.coverage()
    affordable = np.flatnonzero(cost <= budget + 1e-9)
    if affordable.size:
        best = affordable[np.argmax(cover[affordable])]
        if cover[best] > gains.sum():
            return np.array([best]), np.array([cover[best]])
    return picks, gains


def select_seeds(
    graph: CustomerGraph,
    k: int = 50,
    *,
    model: str = "ic",
    edge_model: str = "weighted_cascade",
    scale: float = 1.0,
    probability: float = 0.1,
    epsilon: float = 0.1,
    delta: float = 0.01,
    values: np.ndarray | pd.Series | None = None,
    missing_value: float = 1.0,
    cost: np.ndarray | pd.Series | Sequence[float] | None = None,
    budget: float | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    max_rr_sets: int = 10_000_000,
    rr_sets: RRSets | None = None,
    max_rr_members: int = 0,
) -> SeedSelection:
    """IMM seed selection (Tang, Shi & Xiao 2015): the k customers whose joint cascade reaches
    the most customers (or the most value, with ``values``).

    With probability ``1 - delta`` the spread of the result is at least
    ``(1 - 1/e - epsilon)`` times the best k-set's. Sampling phase as in IMM; the final
    greedy runs on fresh RR sets (Chen 2018's fix to IMM's martingale argument). With ``cost``
    (per customer, > 0) and ``budget``, customers are picked by coverage per cost within the
    budget (at most k of them), and the better of that set and the best affordable single
    customer is returned: a ``(1 - 1/e) / 2 - epsilon`` guarantee.

    ``rr_sets``: RR sets already sampled with the same model, tie probabilities and root
    weights (``values``), independent of this call's search, e.g.
    :attr:`InfluenceScores.shared_rr_sets`; the final greedy uses the first of them it needs
    and samples only the rest (continuing their random streams). Fresh for IMM's argument,
    since the search that sizes the final phase never sees them.

    ``max_rr_members`` (0: none): work budget in RR-set members (the search's and the final
    sets', shared ones included: the greedy walks them all). The search stops once it has
    spent it; the final phase takes only the sets the rest pays for at the search's mean set
    size, and then reports ``stop_reason = "budget"`` and the epsilon reached.
    """
    if max_rr_members < 0:
        raise InvalidInputError(f"max_rr_members must be >= 0, not {max_rr_members}")
    t0 = time.perf_counter()
    model = _ris_model(model)
    epsilon = _check_unit("epsilon", epsilon)
    delta = _check_unit("delta", delta)
    n = graph.n_customers
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, not {k!r}")
    k = min(int(k), n)
    cost_arr: np.ndarray | None = None
    if cost is not None:
        if budget is None or not budget > 0:
            raise InvalidInputError("budget: a positive budget is needed with a cost")
        cost_arr = np.asarray(pd.to_numeric(pd.Series(np.asarray(cost)), errors="coerce"),
                              dtype=np.float64)
        if cost_arr.shape != (n,) or not np.isfinite(cost_arr).all() or (cost_arr <= 0).any():
            raise InvalidInputError("cost must be one positive number per customer")
        fits = int(np.searchsorted(np.cumsum(np.sort(cost_arr)), budget * (1 + 1e-12),
                                   side="right"))
        k_max = min(k, fits)
        k_eff = max(1, k_max)
    elif budget is not None:
        raise InvalidInputError("budget: give a cost per customer with a budget")
    else:
        k_eff = k
    vals = customer_values(values, n, missing=missing_value)
    total = float(vals.sum()) if vals is not None else float(n)
    dg = _diffusion_graph(graph, edge_model, scale, probability)
    # IMM, Algorithm 2 (sampling) with l from delta: n^-l = delta
    log_cnk = _log_comb(n, k_eff)
    a = math.log(2 / delta)
    eps_p = math.sqrt(2) * epsilon
    log2n = math.log2(n) if n > 1 else 1.0
    lam_p = ((2 + 2 * eps_p / 3) * (log_cnk + a + math.log(max(log2n, 1.0))) * total
             / eps_p**2)
    lb = total / n
    s_seed = derive_seed(seed, 21)
    sets: RRSets | None = None
    for i in range(1, max(1, math.floor(log2n))):
        x = total / 2**i
        theta = min(math.ceil(lam_p / x), max_rr_sets)
        have = 0 if sets is None else sets.count
        if theta > have:
            more = sample_rr_sets(dg, theta - have, model=model, seed=s_seed, first=have,
                                  root_weights=vals)
            sets = more if sets is None else sets.extend(more)
        assert sets is not None
        _, gains = _pick(sets, k, cost_arr, budget)
        est = total * gains.sum() / sets.count
        if est >= (1 + eps_p) * x:
            lb = est / (1 + eps_p)
            break
        if theta >= max_rr_sets or 0 < max_rr_members <= sets.members.size:
            break
    search = 0 if sets is None else sets.count
    search_members = 0 if sets is None else int(sets.members.size)
    del sets
    e1 = 1 - 1 / math.e
    alpha = math.sqrt(a + math.log(2))
    beta = math.sqrt(e1 * (log_cnk + a + math.log(2)))
    lam_star = 2 * total * (e1 * alpha + beta) ** 2 / epsilon**2
    needed = max(1, math.ceil(lam_star / lb))
    r = min(needed, max_rr_sets)
    affordable = _rr_budget_sets(max_rr_members, search_members,
                                 search_members / search if search else 1.0)
    budget_bound = affordable is not None and affordable < r
    if affordable is not None and budget_bound:
        r = max(1, affordable)
    if rr_sets is not None and rr_sets.count > 0:
        if rr_sets.model != model or rr_sets.n_nodes != n:
            raise InvalidInputError("rr_sets: sampled with another model or graph")
        final = rr_sets.head(r)
        if final.count < r:
            final = final.extend(sample_rr_sets(
                dg, r - final.count, model=model, seed=rr_sets.seed,
                first=rr_sets.first + final.count, root_weights=vals))
    else:
        final = sample_rr_sets(dg, r, model=model, seed=derive_seed(seed, 22),
                               root_weights=vals)
    picks, gains = _pick(final, k, cost_arr, budget)
    covered = int(gains.sum())
    lo, hi = wilson_interval(np.array([covered]), r, confidence)
    guarantee = ("(1 - 1/e)/2 - epsilon (budgeted)" if cost_arr is not None
                 else "1 - 1/e - epsilon")
    return SeedSelection(
        ids=graph.ids[picks], nodes=picks, gains=gains, spread=total * covered / r,
        spread_low=float(total * lo[0]), spread_high=float(total * hi[0]), rr_sets=r,
        search_rr_sets=search, lower_bound=lb, k=k, budget=budget,
        cost_used=None if cost_arr is None else float(cost_arr[picks].sum()),
        value_weighted=vals is not None, model=model, edge_model=edge_model, epsilon=epsilon,
        delta=delta, guarantee=guarantee, seed=int(seed), seconds=time.perf_counter() - t0,
        rr_bytes=final.nbytes, rr_sets_needed=needed,
        shared_rr_sets=rr_sets is not None and rr_sets.count > 0,
        members=search_members + int(final.members.size), max_rr_members=int(max_rr_members),
        budget_bound=budget_bound,
    )


def pagerank(graph: CustomerGraph) -> np.ndarray:
    """Weighted PageRank (:func:`carenet.graphs.centrality.pagerank`, converged to 1e-10) for
    comparing seed sets when the run has no ``pagerank`` column. Sums to 1.
    """
    return centrality_pagerank(graph, tol=1e-10).values


def _top_k(score: np.ndarray, k: int) -> np.ndarray:
    order = np.lexsort((np.arange(score.size), -score))
    return order[:k]


def compare_seed_sets(
    graph: CustomerGraph,
    selection: SeedSelection,
    *,
    pagerank_scores: np.ndarray | None = None,
    runs: int = 2000,
    seed: int = 0,
    values: np.ndarray | pd.Series | None = None,
    missing_value: float = 1.0,
    confidence: float = 0.95,
    scale: float = 1.0,
    probability: float = 0.1,
    error: float | None = None,
    min_runs: int = 100,
) -> pd.DataFrame:
    """Simulated spread (Monte Carlo cascades, same streams for every strategy) of the IMM
    seeds against the top-k customers by degree and by PageRank.

    Without ``error``, exactly ``runs`` cascades per strategy. With ``error`` (a relative
    half-width at ``confidence``), cascades are added in rounds, starting with ``min_runs``
    (and at most ``runs``), until every strategy's spread interval is within ``error`` of its
    spread; run r always uses stream r, so stopping after R runs gives exactly the first R
    runs of a longer comparison. One row per strategy: ``strategy``, ``k``, ``spread``
    (expected activated customers, seeds included), ``std_error``, ``low``/``high`` (normal
    interval at ``confidence``), ``relative_error`` (half-width / spread), ``runs``, and with
    values ``value_spread``. ``DataFrame.attrs["estimate"]`` says the error target, the
    largest relative error reached, the runs and why it stopped.
    """
    t0 = time.perf_counter()
    k = selection.nodes.size
    dg = _diffusion_graph(graph, selection.edge_model, scale, probability)
    pr = pagerank(graph) if pagerank_scores is None else np.asarray(pagerank_scores, float)
    deg = graph.out_degree().astype(np.float64)
    strategies = {"imm": selection.nodes, "degree": _top_k(deg, k), "pagerank": _top_k(pr, k)}
    vals = customer_values(values, graph.n_customers, missing=missing_value)
    z = z_score(confidence)
    if error is not None:
        error = _check_unit("error", error)
    runs = int(runs)
    if runs < 2:
        raise InvalidInputError(f"runs must be >= 2, not {runs}")
    mc_seed = derive_seed(seed, 31)
    sizes: dict[str, list[np.ndarray]] = {name: [] for name in strategies}
    counts = {name: np.zeros(graph.n_customers, np.int64) for name in strategies}
    done = 0
    step = runs if error is None else max(2, min(int(min_runs), runs))
    reached = float("inf")
    while True:
        for name, nodes in strategies.items():
            mc = monte_carlo(dg, nodes, model=selection.model, runs=step, seed=mc_seed,
                             first_run=done)
            sizes[name].append(mc.sizes)
            counts[name] += mc.activation_counts
        done += step
        rel = []
        for name in strategies:
            x = np.concatenate(sizes[name])
            half = z * float(x.std(ddof=1)) / math.sqrt(done)
            rel.append(half / max(float(x.mean()), 1e-12))
        reached = max(rel)
        if error is None or reached <= error or done >= runs:
            break
        # the runs the worst strategy needs at its current variance, at most doubling
        need = math.ceil(done * (reached / error) ** 2 * 1.05)
        step = max(1, min(need - done, done, runs - done))
    rows = []
    for name, nodes in strategies.items():
        x = np.concatenate(sizes[name])
        mean = float(x.mean())
        se = float(x.std(ddof=1) / math.sqrt(done))
        row: dict[str, Any] = {"strategy": name, "k": len(nodes), "spread": mean,
                               "std_error": se, "low": mean - z * se, "high": mean + z * se,
                               "relative_error": z * se / max(mean, 1e-12), "runs": done,
                               "seeds": ",".join(map(str, graph.ids[nodes][:10]))}
        if vals is not None:
            row["value_spread"] = float(vals @ counts[name] / done)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["estimate"] = {
        "error_target": error, "error": reached, "runs": done, "max_runs": runs,
        "stopped": ("fixed runs" if error is None else
                    "error target met" if reached <= error else "max runs reached"),
        "seconds": time.perf_counter() - t0,
    }
    return frame


# ---------------------------------------------------------------------------- what-if
@dataclass(frozen=True, eq=False)
class SimulationResult:
    """A what-if cascade: seeds, protected customers and what ``runs`` simulations showed.

    ``expected_size``: expected activated customers, seeds included (``std_error``,
    ``low``/``high`` at ``confidence``); ``expected_reached``: the same without the seeds;
    ``activation_probability``: per customer (aligned with ``ids``; 1 for seeds, 0 for
    protected customers); ``curve``: expected cumulative activated customers after each step
    (step 0 = the seeds).
    """

    ids: np.ndarray
    seeds: np.ndarray
    protected: np.ndarray
    model: str
    edge_model: str
    runs: int
    seed: int
    recovery: float | None
    confidence: float
    expected_size: float
    std_error: float
    low: float
    high: float
    activation_probability: np.ndarray
    activation_low: np.ndarray
    activation_high: np.ndarray
    curve: np.ndarray
    seconds: float
    parameters: dict[str, float] = field(default_factory=dict)

    @property
    def expected_reached(self) -> float:
        """Expected activated customers other than the seeds."""
        return self.expected_size - float(self.seeds.size)

    def most_likely_reached(self, k: int = 20) -> pd.DataFrame:
        """The k non-seed customers most likely to be activated, with their intervals."""
        p = self.activation_probability.copy()
        p[self.seeds] = -1.0
        order = _top_k(p, k)
        order = order[p[order] > 0]
        return pd.DataFrame({"customer_id": self.ids[order],
                             "probability": self.activation_probability[order],
                             "low": self.activation_low[order],
                             "high": self.activation_high[order]})

    def to_frame(self) -> pd.DataFrame:
        """One row per customer: probability of activation with its interval, and flags."""
        is_seed = np.zeros(self.ids.size, bool)
        is_seed[self.seeds] = True
        prot = np.zeros(self.ids.size, bool)
        prot[self.protected] = True
        return pd.DataFrame({"customer_id": self.ids,
                             "activation_probability": self.activation_probability,
                             "low": self.activation_low, "high": self.activation_high,
                             "seed": is_seed, "protected": prot})

    def to_dict(self, top: int = 20) -> dict[str, Any]:
        """JSON-ready summary (native Python numbers only): the cascade, the curve and the
        ``top`` customers most likely reached.
        """
        reached = self.most_likely_reached(top)
        return {
            "model": self.model, "edge_model": self.edge_model, "runs": int(self.runs),
            "seed": int(self.seed),
            "recovery": None if self.recovery is None else float(self.recovery),
            "confidence": float(self.confidence),
            "seeds": [str(x) for x in self.ids[self.seeds]],
            "protected": [str(x) for x in self.ids[self.protected]],
            "expected_size": float(self.expected_size), "std_error": float(self.std_error),
            "low": float(self.low), "high": float(self.high),
            "expected_reached": float(self.expected_reached),
            "curve": [float(x) for x in self.curve],
            "most_likely_reached": [
                {"customer_id": str(c), "probability": float(p), "low": float(lo),
                 "high": float(hi)}
                for c, p, lo, hi in zip(reached["customer_id"], reached["probability"],
                                        reached["low"], reached["high"], strict=True)
            ],
            "parameters": {k: float(v) for k, v in self.parameters.items()},
            "seconds": float(self.seconds),
        }


def simulate(
    graph: CustomerGraph,
    seeds: Sequence[Any] | np.ndarray,
    *,
    protected: Sequence[Any] | np.ndarray | None = None,
    model: str = "ic",
    runs: int = 1000,
    seed: int = 0,
    edge_model: str = "weighted_cascade",
    scale: float = 1.0,
    probability: float = 0.1,
    recovery: float = 0.5,
    max_steps: int = 50,
    confidence: float = 0.95,
) -> SimulationResult:
    """What-if: simulate the cascade started by ``seeds`` (customer ids) while the
    ``protected`` customers (ids) never activate, e.g. because the care team contacted them.

    ``model``: ``"ic"``, ``"lt"`` or ``"sir"`` (``recovery``: per-step recovery probability
    of SIR; the tie probabilities are its per-step transmission rates). ``runs``
    simulations with streams ``(seed, 0..runs-1)``: the same seed gives the same result, and
    comparing protected against unprotected with the same seed compares the same random
    worlds (common random numbers). Unknown ids raise
    :class:`~carenet.errors.RunNotFoundError`; a seed that is also protected raises
    :class:`~carenet.errors.InvalidInputError`.
    """
    t0 = time.perf_counter()
    if model not in MODELS:
        raise InvalidInputError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    s_nodes = _positions(graph, seeds, "seeds")
    if s_nodes.size == 0:
        raise InvalidInputError("seeds: give at least one customer id")
    p_nodes = _positions(graph, protected, "protected")
    dg = _diffusion_graph(graph, edge_model, scale, probability)
    mc = monte_carlo(dg, s_nodes, model=model, runs=runs, seed=seed, protected=p_nodes,
                     recovery=recovery if model == "sir" else 1.0, max_steps=max_steps)
    z = z_score(confidence)
    se = mc.std_error if runs > 1 else 0.0
    lo, hi = wilson_interval(mc.activation_counts, runs, confidence)
    return SimulationResult(
        ids=graph.ids, seeds=s_nodes, protected=p_nodes, model=model, edge_model=edge_model,
        runs=int(runs), seed=int(seed), recovery=float(recovery) if model == "sir" else None,
        confidence=confidence, expected_size=mc.mean, std_error=se, low=mc.mean - z * se,
        high=mc.mean + z * se, activation_probability=mc.activation_probability,
        activation_low=lo, activation_high=hi, curve=mc.curve,
        seconds=time.perf_counter() - t0,
        parameters={"scale": float(scale), "probability": float(probability)},
    )
