"""Backtest metrics and labels: how well a score ranks the customers who churned next.

Pure functions over numpy arrays (no files, no pipeline), used by
:mod:`carenet.evaluation.backtest`:

* **Ranking quality**: :func:`auc_score` (Mann-Whitney with mid-ranks for ties),
  :func:`delong_auc` (AUC with DeLong's standard error and a normal confidence interval),
  :func:`expected_captured` (churners among the top ``k``), :func:`lift_at` and
  :func:`lift_curve`. Ties at the cut are shared fairly: ``expected_captured`` is the
  *expected* number of churners in the top ``k`` when tied customers are ordered at random, so
  a score with many ties (degree) is neither flattered nor punished by an arbitrary order.
* **Labels** (:func:`silence_labels`, :func:`event_labels`): the population at a cutoff ``T`` is
  the customers with at least one interaction (sent or received) in the *window*
  ``[T - lookback, T)``; a customer of the population **churned** if it has no interaction in
  ``[T, T + horizon)`` (silence: the one rule of :func:`carenet.community.lapse.silence`,
  which every analysis also uses for its lapses), or, with an events table, a churn event in
  that interval.
* **Own-activity features** (:func:`activity_features`) and the recency-frequency score
  (:func:`recency_frequency_score`): what a churn model sees without the network (defined in
  :mod:`carenet.community.risk`, re-exported here).
* **Network neighbourhood of churn** (:func:`neighbour_churn_features`): how many of a
  customer's contacts already churned, by count, share and tie weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
import scipy.stats

from carenet.community.lapse import active_between, silence
from carenet.community.risk import OWN_FEATURES, activity_features, recency_frequency_score
from carenet.errors import InvalidInputError
from carenet.graphs.model import CustomerGraph

DAY = 86400.0
FRACTIONS = (0.01, 0.05, 0.10)
"""The top fractions whose lift every backtest reports (1%, 5% and 10%)."""


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise InvalidInputError(
            f"labels and scores must be 1-d arrays of one length, not {y.shape} and {s.shape}"
        )
    if np.isnan(s).any():
        raise InvalidInputError("scores contain NaN; fill missing scores before ranking")
    return y, s


# ---------------------------------------------------------------------------- AUC
def auc_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random churner scores above a random
    non-churner (ties count one half). NaN when one class is absent.

    >>> auc_score(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y, s = _check(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True)
class AucEstimate:
    """An AUC with DeLong's standard error and a normal-approximation interval (clipped to
    [0, 1]) at ``confidence``.
    """

    auc: float
    std_error: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready dict of native floats."""
        return {"auc": float(self.auc), "std_error": float(self.std_error),
                "low": float(self.low), "high": float(self.high),
                "confidence": float(self.confidence)}


def delong_auc(labels: np.ndarray, scores: np.ndarray, *,
               confidence: float = 0.95) -> AucEstimate:
    """AUC with its DeLong standard error (DeLong, DeLong & Clarke-Pearson 1988, in the
    mid-rank form of Sun & Xu 2014): ``O(n log n)``, exact for ties.

    >>> e = delong_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> round(e.auc, 2), e.low < e.auc < e.high
    (0.75, True)
    """
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be in (0, 1), not {confidence}")
    y, s = _check(labels, scores)
    pos, neg = s[y], s[~y]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        nan = float("nan")
        return AucEstimate(nan, nan, nan, nan, confidence)
    r_all = scipy.stats.rankdata(np.concatenate([pos, neg]))
    r_pos = scipy.stats.rankdata(pos)
    r_neg = scipy.stats.rankdata(neg)
    auc = float((r_all[:m].sum() - m * (m + 1) / 2) / (m * n))
    v10 = (r_all[:m] - r_pos) / n          # per churner: share of non-churners below it
    v01 = 1.0 - (r_all[m:] - r_neg) / m    # per non-churner: share of churners above it
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    se = float(np.sqrt(max(s10 / m + s01 / n, 0.0)))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return AucEstimate(auc, se, max(0.0, auc - z * se), min(1.0, auc + z * se), confidence)


# ---------------------------------------------------------------------------- lift
def _sorted_groups(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (customers, churners) at the end of each group of equal scores, highest
    score first.
    """
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True]) + 1
    cum_pos = np.cumsum(y_sorted)
    return ends, cum_pos[ends - 1].astype(np.float64)


def expected_captured(labels: np.ndarray, scores: np.ndarray, k: int | np.ndarray) -> np.ndarray:
    """Expected churners among the ``k`` highest-scored customers, ties at the cut ordered at
    random (the customers strictly above the cut count fully; the tied group at the cut
    contributes its churn rate times the places left). Vectorised over ``k``.

    >>> expected_captured(np.array([1, 0, 1, 0]), np.array([3, 2, 2, 1]), np.array([1, 2, 3]))
    array([1. , 1.5, 2. ])
    """
    y, s = _check(labels, scores)
    ks = np.atleast_1d(np.asarray(k, dtype=np.int64))
    if (ks < 0).any() or (ks > y.size).any():
        raise InvalidInputError(f"k must be between 0 and {y.size}, not {ks.tolist()}")
    if y.size == 0:
        return np.zeros(ks.shape)
    ends, cum_pos = _sorted_groups(y, s)
    g = np.searchsorted(ends, ks, side="left")  # the group holding position k (1-based)
    g = np.minimum(g, ends.size - 1)
    start = np.where(g > 0, ends[np.maximum(g - 1, 0)], 0)
    before = np.where(g > 0, cum_pos[np.maximum(g - 1, 0)], 0.0)
    size = ends[g] - start
    rate = (cum_pos[g] - before) / size
    out = before + (ks - start) * rate
    return np.where(ks == 0, 0.0, out)


def top_k(n: int, fraction: float) -> int:
    """The number of customers in the top ``fraction`` of ``n`` (at least one)."""
    if not 0.0 < fraction <= 1.0:
        raise InvalidInputError(f"fraction must be in (0, 1], not {fraction}")
    return max(1, min(n, round(fraction * n)))


def lift_at(labels: np.ndarray, scores: np.ndarray, fraction: float) -> float:
    """Churn rate among the top ``fraction`` divided by the overall churn rate (1 = no better
    than random; NaN without churners).

    >>> lift_at(np.array([1, 0, 0, 0]), np.array([4, 3, 2, 1]), 0.25)
    4.0
    """
    y, s = _check(labels, scores)
    if y.size == 0 or not y.any():
        return float("nan")
    k = top_k(y.size, fraction)
    got = float(expected_captured(y, s, k)[0])
    return float((got / k) / (y.sum() / y.size))


def lift_curve(labels: np.ndarray, scores: np.ndarray,
               fractions: Sequence[float] | np.ndarray | None = None,
               values: np.ndarray | None = None) -> pd.DataFrame:
    """Lift and captured share of churners at each top fraction (default: 1%, 2%, ... 100%).

    Columns ``fraction``, ``k``, ``lift``, ``captured`` (share of all churners in the top k)
    and, with ``values``, ``value_captured``: the share of the churned value in the top k
    (ties at the cut shared as in :func:`value_capture_interval`, whose point estimate at
    5% it equals).
    """
    y, s = _check(labels, scores)
    fr = (np.arange(1, 101) / 100.0 if fractions is None
          else np.asarray(fractions, dtype=np.float64))
    n = y.size
    ks = np.array([top_k(n, float(f)) for f in fr], dtype=np.int64) if n else np.zeros(0, int)
    total = float(y.sum())
    if n == 0 or total == 0:
        nan = np.full(fr.size, np.nan)
        out = pd.DataFrame({"fraction": fr, "k": ks if n else np.zeros(fr.size, int),
                            "lift": nan, "captured": nan})
        if values is not None:
            out["value_captured"] = nan
        return out
    got = expected_captured(y, s, ks)
    out = pd.DataFrame({"fraction": fr, "k": ks, "lift": (got / ks) / (total / n),
                        "captured": got / total})
    if values is not None:
        v = np.nan_to_num(np.asarray(values, np.float64), nan=0.0).clip(min=0)
        churned = float(v[y].sum())
        out["value_captured"] = (_expected_value_top(y, s, v, ks) / churned
                                 if churned > 0 else np.nan)
    return out


def score_metrics(labels: np.ndarray, scores: np.ndarray, *, budget: int,
                  fractions: Sequence[float] = FRACTIONS, confidence: float = 0.95,
                  values: np.ndarray | None = None) -> dict[str, float]:
    """Every headline number for one score: AUC with interval, lift at each fraction, and the
    churners captured by ``budget`` contacts (count, share of churners, precision). With
    ``values``, also the share of churned value those contacts cover.
    """
    y, s = _check(labels, scores)
    est = delong_auc(y, s, confidence=confidence)
    out: dict[str, float] = {
        "n": int(y.size), "churners": int(y.sum()),
        "base_rate": float(y.mean()) if y.size else float("nan"),
        "auc": est.auc, "auc_low": est.low, "auc_high": est.high, "auc_se": est.std_error,
    }
    for f in fractions:
        out[f"lift_{round(f * 100):g}"] = lift_at(y, s, f)
    k = min(max(budget, 0), y.size)
    got = float(expected_captured(y, s, k)[0]) if y.size else 0.0
    out["budget"] = int(k)
    out["captured_at_k"] = got
    out["captured_share_at_k"] = got / y.sum() if y.any() else float("nan")
    out["precision_at_k"] = got / k if k else float("nan")
    if values is not None:
        v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
        churned_value = float(v[y].sum())
        got_v = _value_captured(y, s, v, k)
        out["value_captured_share_at_k"] = (got_v / churned_value if churned_value > 0
                                            else float("nan"))
    return out


def value_capture_interval(labels: np.ndarray, scores: dict[str, np.ndarray],
                           values: np.ndarray, *, fraction: float = 0.05,
                           resamples: int = 200, confidence: float = 0.95,
                           seed: int = 0) -> pd.DataFrame:
    """The share of churned value captured by the top ``fraction`` of every score, with a
    percentile bootstrap interval (customers resampled with replacement, the same resamples
    for every score, so that the scores are compared on the same draws), and each score's
    paired difference to the best other score.

    Returns ``score, value_captured, value_low, value_high, diff_to_best_other_low,
    diff_to_best_other_high`` (one row per score).
    """
    y = np.asarray(labels, bool)
    v = np.nan_to_num(np.asarray(values, np.float64), nan=0.0).clip(min=0)
    n = y.size
    names = list(scores)
    k = top_k(n, fraction)

    def share(idx: np.ndarray) -> np.ndarray:
        yy, vv = y[idx], v[idx]
        total = float(vv[yy].sum())
        out = np.full(len(names), np.nan)
        if total <= 0:
            return out
        for j, name in enumerate(names):
            out[j] = _value_captured(yy, np.asarray(scores[name], np.float64)[idx], vv, k) \
                / total
        return out

    point = share(np.arange(n))
    rng = np.random.default_rng(seed)
    draws = np.array([share(rng.integers(0, n, n)) for _ in range(resamples)]) \
        if n else np.zeros((0, len(names)))
    a = (1 - confidence) / 2
    rows = []
    for j, name in enumerate(names):
        col = draws[:, j] if draws.size else np.zeros(0)
        others = [i for i in range(len(names)) if i != j]
        diff_lo = diff_hi = float("nan")
        if others and draws.size:
            best = others[int(np.nanargmax(point[others]))] if np.isfinite(
                point[others]).any() else others[0]
            d = draws[:, j] - draws[:, best]
            d = d[np.isfinite(d)]
            if d.size:
                diff_lo, diff_hi = (float(np.quantile(d, a)), float(np.quantile(d, 1 - a)))
        ok = col[np.isfinite(col)] if col.size else col
        rows.append({"score": name, "value_captured": float(point[j]),
                     "value_low": float(np.quantile(ok, a)) if ok.size else float("nan"),
                     "value_high": float(np.quantile(ok, 1 - a)) if ok.size else float("nan"),
                     "diff_to_best_other_low": diff_lo, "diff_to_best_other_high": diff_hi})
    return pd.DataFrame(rows)


def _expected_value_top(y: np.ndarray, s: np.ndarray, v: np.ndarray,
                        ks: np.ndarray) -> np.ndarray:
    """:func:`_value_captured` for many ``k`` at once (one sort): the churned value of the
    groups of equal scores above the cut, plus the tied group's value times the share of it
    that fits.
    """
    order = np.argsort(-s, kind="stable")
    ss = s[order]
    ends = np.flatnonzero(np.r_[ss[1:] != ss[:-1], True]) + 1
    cum = np.cumsum((v * y)[order])[ends - 1]
    g = np.minimum(np.searchsorted(ends, ks, side="left"), ends.size - 1)
    start = np.where(g > 0, ends[np.maximum(g - 1, 0)], 0)
    before = np.where(g > 0, cum[np.maximum(g - 1, 0)], 0.0)
    out = before + (cum[g] - before) * (ks - start) / (ends[g] - start)
    return np.asarray(np.where(ks == 0, 0.0, out))


def _value_captured(y: np.ndarray, s: np.ndarray, v: np.ndarray, k: int) -> float:
    """Expected churned value among the top ``k`` (ties at the cut shared at random)."""
    if k == 0 or y.size == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    ss = s[order]
    cut = ss[k - 1]
    above = ss > cut
    tied = ss == cut
    churned_v = (v * y)[order]
    places = k - int(above.sum())
    return float(churned_v[above].sum() + churned_v[tied].sum() * places / tied.sum())


# ---------------------------------------------------------------------------- labels
@dataclass(frozen=True)
class ChurnLabels:
    """Who is in the population at ``cutoff`` and who of them churned in the horizon.

    ``active`` and ``churned`` are boolean arrays over all customers (node positions);
    ``churned`` is False outside the population.
    """

    cutoff: float
    horizon: float
    lookback: float
    active: np.ndarray
    churned: np.ndarray
    source: str

    @property
    def population(self) -> int:
        """Customers in the population."""
        return int(self.active.sum())

    @property
    def churners(self) -> int:
        """Churners in the population."""
        return int(self.churned.sum())

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (counts, no arrays)."""
        pop = self.population
        return {"cutoff": float(self.cutoff), "horizon_days": self.horizon / DAY,
                "lookback_days": self.lookback / DAY, "population": pop,
                "churners": self.churners,
                "churn_rate": self.churners / pop if pop else float("nan"),
                "labels_from": self.source}


def _check_window(horizon: float, lookback: float | None) -> float:
    if not horizon > 0:
        raise InvalidInputError(f"the horizon must be > 0 days, not {horizon / DAY:g}")
    lb = horizon if lookback is None else lookback
    if not lb > 0:
        raise InvalidInputError(f"the lookback must be > 0 days, not {lb / DAY:g}")
    return lb


def silence_labels(src: np.ndarray, dst: np.ndarray, t: np.ndarray, n: int, *,
                   cutoff: float, horizon: float, lookback: float | None = None) -> ChurnLabels:
    """Churn as silence: active in ``[cutoff - lookback, cutoff)`` (default lookback: the
    horizon) and no interaction, sent or received, in ``[cutoff, cutoff + horizon)``.

    >>> s, d = np.array([0, 1, 0]), np.array([1, 2, 2])
    >>> lab = silence_labels(s, d, np.array([1.0, 2.0, 12.0]), 3, cutoff=10.0, horizon=9.0)
    >>> lab.active.tolist(), lab.churned.tolist()
    ([True, True, True], [False, True, False])
    """
    lb = _check_window(horizon, lookback)
    s = silence(src, dst, t, n, cutoff=cutoff, horizon=horizon, window=lb)
    return ChurnLabels(cutoff, horizon, lb, s.active, s.lapsed, "silence")


def event_labels(src: np.ndarray, dst: np.ndarray, t: np.ndarray, n: int, *,
                 event_nodes: np.ndarray, event_times: np.ndarray, cutoff: float,
                 horizon: float, lookback: float | None = None) -> ChurnLabels:
    """Churn from events: active in ``[cutoff - lookback, cutoff)``, no churn event before the
    cutoff, and a churn event in ``[cutoff, cutoff + horizon)``. ``event_nodes`` and
    ``event_times`` are the churn events only (other kinds filtered out by the caller).
    """
    lb = _check_window(horizon, lookback)
    active = active_between(src, dst, t, n, cutoff - lb, cutoff)
    nodes = np.asarray(event_nodes, dtype=np.int64)
    times = np.asarray(event_times, dtype=np.float64)
    earlier = np.zeros(n, bool)
    earlier[nodes[times < cutoff]] = True
    active &= ~earlier
    churn = np.zeros(n, bool)
    churn[nodes[(times >= cutoff) & (times < cutoff + horizon)]] = True
    return ChurnLabels(cutoff, horizon, lb, active, active & churn, "events")


def neighbour_churn_features(graph: CustomerGraph, churned: np.ndarray,
                             community: np.ndarray | None = None) -> pd.DataFrame:
    """How close each customer is to customers who already churned (``churned``: a boolean
    array over the graph's nodes): ``churned_neighbours`` (distinct contacts, either
    direction), ``churned_neighbour_share`` (of all contacts), ``churned_tie_share`` (of the
    customer's tie weight, both directions) and, with ``community`` labels,
    ``community_churn_share`` (churned share of the rest of its community).
    """
    n = graph.n_customers
    c = np.asarray(churned, bool)
    if c.shape != (n,):
        raise InvalidInputError(f"churned must have one flag per customer ({n}), not {c.shape}")
    src = graph.sources()
    dst = graph.indices.astype(np.int64)
    w = graph.weights.astype(np.float64)
    a = np.concatenate([src, dst]).astype(np.int64)
    b = np.concatenate([dst, src]).astype(np.int64)
    ww = np.concatenate([w, w])
    pairs = np.unique(a * n + b)
    pa_, pb = pairs // n, pairs % n
    degree = np.bincount(pa_, minlength=n).astype(np.float64)
    ch_n = np.bincount(pa_, weights=c[pb].astype(np.float64), minlength=n)
    strength = np.bincount(a, weights=ww, minlength=n)
    ch_w = np.bincount(a, weights=ww * c[b], minlength=n)
    out = pd.DataFrame({
        "churned_neighbours": ch_n,
        "churned_neighbour_share": np.divide(ch_n, degree, out=np.zeros(n), where=degree > 0),
        "churned_tie_share": np.divide(ch_w, strength, out=np.zeros(n), where=strength > 0),
    })
    if community is not None:
        comm = np.asarray(community)
        codes, inverse = np.unique(comm, return_inverse=True)
        size = np.bincount(inverse, minlength=codes.size).astype(np.float64)
        churned_in = np.bincount(inverse, weights=c.astype(np.float64), minlength=codes.size)
        others = size[inverse] - 1
        num = churned_in[inverse] - c
        out["community_churn_share"] = np.divide(num, others, out=np.zeros(n), where=others > 0)
    return out


@dataclass(frozen=True)
class AucComparison:
    """Paired DeLong comparison of two scores on the same customers: ``difference`` is
    ``auc_a - auc_b`` with its standard error, interval and two-sided p-value.
    """

    auc_a: float
    auc_b: float
    difference: float
    std_error: float
    low: float
    high: float
    p_value: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready dict of native floats."""
        return {k: float(v) for k, v in self.__dict__.items()}


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    m, n = pos.size, neg.size
    r_all = scipy.stats.rankdata(np.concatenate([pos, neg]))
    v10 = (r_all[:m] - scipy.stats.rankdata(pos)) / n
    v01 = 1.0 - (r_all[m:] - scipy.stats.rankdata(neg)) / m
    auc = float((r_all[:m].sum() - m * (m + 1) / 2) / (m * n))
    return auc, v10, v01


def delong_compare(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, *,
                   confidence: float = 0.95) -> AucComparison:
    """Paired DeLong test of ``AUC(a) - AUC(b)`` (both scores on the same customers), with the
    covariance of the two AUCs, so that a small but consistent gain is not lost in two wide
    separate intervals.
    """
    y, a = _check(labels, scores_a)
    _, b = _check(labels, scores_b)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        nan = float("nan")
        return AucComparison(nan, nan, nan, nan, nan, nan, nan)
    auc_a, v10a, v01a = _placements(a[y], a[~y])
    auc_b, v10b, v01b = _placements(b[y], b[~y])
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    cov = s10 / m + s01 / n
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = auc_a - auc_b
    se = float(np.sqrt(max(var, 0.0)))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    if se > 0:
        p = float(2 * (1 - NormalDist().cdf(abs(diff) / se)))
    else:
        p = 1.0 if diff == 0 else 0.0
    return AucComparison(auc_a, auc_b, diff, se, diff - z * se, diff + z * se, p)


__all__ = ["DAY", "FRACTIONS", "OWN_FEATURES", "AucComparison", "AucEstimate", "ChurnLabels",
           "active_between", "activity_features", "auc_score", "delong_auc", "delong_compare",
           "event_labels", "expected_captured", "lift_at", "lift_curve",
           "neighbour_churn_features", "recency_frequency_score", "score_metrics",
           "silence_labels", "top_k", "value_capture_interval"]
