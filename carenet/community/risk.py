"""Churn risk from the log alone: a calibrated probability of lapsing within the horizon.

Trained inside every analysis, **out of time** on the log itself (``T``: the run's reference
time, ``h``: the horizon, ``W``: the activity window; lapse rule in
:mod:`carenet.community.lapse`):

* **Labelled periods** (folds): period ``k`` has the features computed from the interactions
  before ``T - k h``, for the customers active in ``[T - k h - W, T - k h)``, and the label
  "silent during ``[T - k h, T - (k - 1) h)``". Period 1 (the latest, "fold B") is always
  used when it has enough lapses; earlier ones are added while their whole window lies
  inside the log (a truncated window biases every activity feature), no gap overlaps them and
  they have ``min_lapses`` lapses and non-lapses.
* **Stacked training** (``folds``, default 6): the final model (L2 logistic regression on
  standardised, sign-log features) is fitted on periods ``1..folds`` stacked (older periods
  optionally down-weighted by ``decay`` per horizon): more rows, and one horizon's lapse
  rate no longer sets the level alone. ``drift = "level"`` (the default) then shifts the
  intercept so that the mean risk of the customers active at ``T`` equals the mean lapse rate
  of those periods; ``"latest"`` matches the latest period's rate instead; ``"none"`` keeps
  the fit's own level. Measured on two real logs at 16 cutoffs (benchmarks/README.md):
  six periods + ``level`` against one period: AUC up at 10 of 16 cutoffs (risk now at least
  recency's and frequency's at all 16), mean decile gap 0.069/0.079 against 0.086/0.111.
* **Out of time**: the same recipe one horizon earlier (periods ``2..folds + 1``, the same
  drift correction) is scored on period 1: the **out-of-time** AUC, Brier score and
  reliability table (ten deciles of predicted risk) recorded in run.json. By default
  (``calibration = "none"``) the final model's probability is the risk. With ``"platt"``
  (``"isotonic"``), a map from the earlier model's scores to period 1's observed lapses is
  learned and applied to the final model; measured on two real logs it did not help.
  An earlier model that ranks period 1 no better than chance (AUC below
  :data:`MIN_CALIBRATION_AUC`) is not used for calibration.
* **Interval**: the delta method on the final model's linear predictor (Laplace covariance
  of the penalised fit) widened by the uncertainty of the level (the spread of the stacked
  periods' lapse rates, :func:`_level_sd`), mapped through the calibration.

Features (:func:`risk_features`): own activity (recency, tenure, sent/received in the window,
their balance, distinct contacts, active days, trend within the window, change against the
previous window, channel mix) and network (lapsed contacts, their share by count and by
interactions, the one-hop exposure to lapsed contacts by tie probability, the community's
lapse rate, change of distinct contacts; the communities step's role on request), plus any
CRM ``churn_score``. Customers with no interaction in ``[T - W, T)`` are already silent: risk 1,
not modelled.

Fallbacks, always said (``RiskModel.fallback``): fewer than ``min_lapses`` lapsed or
non-lapsed customers in fold B -> the **recency** score (the mean of the percentile ranks
of recency and of low activity; a ranking, not a calibrated probability).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.stats
from threadpoolctl import threadpool_limits

from carenet.community.lapse import DAY, Gap, Silence, lapsed_at, overlapping, silence

OWN_FEATURES = ("recency_days", "tenure_days", "sent_window", "received_window",
                "contacts_window", "active_days_window", "trend", "sent_total", "received_total")
"""Own-activity features of the backtest's classifiers (a subset of :func:`risk_features`)."""
MODEL_FEATURES = (*OWN_FEATURES, "sent_share", "activity_change", "contacts_change",
                                 "channels_window", "lapsed_contacts", "lapsed_contact_share",
                                 "lapsed_tie_share", "community_lapse_rate",
                                 "lapsed_exposure")
"""Every default feature of the risk model (``churn_score`` is added when the customers table
has one, the ``role_*`` columns on request; ``lapsed_exposure`` can be left out)."""
MIN_CALIBRATION_AUC = 0.55
"""An earlier model that ranks fold B worse than this is not used to calibrate."""


# ---------------------------------------------------------------------------- features
def activity_features(src: np.ndarray, dst: np.ndarray, t: np.ndarray, n: int, *,
                      at: float, window: float,
                      channel: np.ndarray | None = None) -> pd.DataFrame:
    """Own-activity features of every customer from the interactions before ``at``.

    ``recency_days`` (days since the last interaction), ``tenure_days`` (since the first),
    ``sent_window``/``received_window`` (interactions in ``[at - window, at)``),
    ``contacts_window`` (distinct counterparts in the window), ``active_days_window`` (distinct
    days with activity in the window), ``trend`` (share of the window's interactions in its
    second half: 0.5 steady, lower = slowing down), ``sent_total``/``received_total``,
    ``sent_share`` (sent / all in the window), ``activity_change`` (interactions in the window
    against the window before it: -1 = stopped, 0 = same, +1 = doubled),
    ``contacts_change`` (same for distinct contacts) and ``channels_window`` (distinct
    channels used in the window; 0 without channels). Customers without any interaction
    before ``at`` get NaN recency and tenure.
    """
    before = t < at
    s, d, tt = src[before], dst[before], t[before]
    last = np.full(n, -np.inf)
    first = np.full(n, np.inf)
    np.maximum.at(last, s, tt)
    np.maximum.at(last, d, tt)
    np.minimum.at(first, s, tt)
    np.minimum.at(first, d, tt)
    with np.errstate(invalid="ignore"):
        recency = np.where(np.isfinite(last), (at - last) / DAY, np.nan)
        tenure = np.where(np.isfinite(first), (at - first) / DAY, np.nan)
    w = tt >= at - window
    ws, wd, wt = s[w], d[w], tt[w]
    sent_w = np.bincount(ws, minlength=n).astype(np.float64)
    recv_w = np.bincount(wd, minlength=n).astype(np.float64)
    late = wt >= at - window / 2
    late_count = (np.bincount(ws[late], minlength=n) + np.bincount(wd[late], minlength=n))
    total_w = sent_w + recv_w
    trend = np.divide(late_count, total_w, out=np.full(n, 0.0), where=total_w > 0)
    contacts = _distinct_contacts(ws, wd, n)
    day = np.floor(np.concatenate([wt, wt]) / DAY).astype(np.int64)
    a = np.concatenate([ws, wd]).astype(np.int64)
    if day.size:
        day -= day.min()  # small non-negative day numbers keep node * days + day in int64
    days = int(day.max(initial=0)) + 1
    node_days = _distinct(a * days + day)
    active_days = np.bincount(node_days // days, minlength=n).astype(np.float64)
    p = (tt >= at - 2 * window) & ~w
    ps, pd_ = s[p], d[p]
    prev = (np.bincount(ps, minlength=n) + np.bincount(pd_, minlength=n)).astype(np.float64)
    prev_contacts = _distinct_contacts(ps, pd_, n)
    chans = np.zeros(n)
    if channel is not None:
        ch = np.asarray(channel)[before][w].astype(np.int64)
        if ch.size and ch.max() >= 0:
            k = int(ch.max()) + 1
            ok = ch >= 0
            nc = _distinct(a[np.concatenate([ok, ok])] * k + np.concatenate([ch, ch])[
                np.concatenate([ok, ok])])
            chans = np.bincount(nc // k, minlength=n).astype(np.float64)
    return pd.DataFrame({
        "recency_days": recency, "tenure_days": tenure, "sent_window": sent_w,
        "received_window": recv_w, "contacts_window": contacts,
        "active_days_window": active_days, "trend": trend,
        "sent_total": np.bincount(s, minlength=n).astype(np.float64),
        "received_total": np.bincount(d, minlength=n).astype(np.float64),
        "sent_share": np.divide(sent_w, total_w, out=np.full(n, 0.5), where=total_w > 0),
        "activity_change": _change(total_w, prev),
        "contacts_change": _change(contacts, prev_contacts),
        "channels_window": chans,
    })


def _distinct(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array by sorting (numpy's hash-based
    ``np.unique`` measured ~10x slower on millions of int64 codes). The default sort, not a
    stable one: values alone come out the same, and numpy's vectorised quicksort sorted 8M
    int64 codes 5.4x faster than its stable (radix/tim) sort here.
    """
    if x.size == 0:
        return x
    y = np.sort(x)
    keep = np.empty(y.size, bool)
    keep[0] = True
    np.not_equal(y[1:], y[:-1], out=keep[1:])
    return y[keep]


def _distinct_contacts(s: np.ndarray, d: np.ndarray, n: int) -> np.ndarray:
    a = np.concatenate([s, d]).astype(np.int64)
    b = np.concatenate([d, s]).astype(np.int64)
    pairs = _distinct(a * n + b)
    return np.bincount(pairs // n, minlength=n).astype(np.float64)


def _change(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Relative change ``now / before - 1`` (0 when both are 0, +1 when only ``now``)."""
    out = np.zeros(now.size)
    has = before > 0
    out[has] = now[has] / before[has] - 1.0
    out[~has & (now > 0)] = 1.0
    return out


def lapse_neighbourhood(src: np.ndarray, dst: np.ndarray, t: np.ndarray, n: int, *,
                        at: float, horizon: float, window: float,
                        community: np.ndarray | None = None) -> pd.DataFrame:
    """How close each customer is to customers who lapsed by ``at``: over the ties of
    ``[at - horizon - window, at)``, ``lapsed_contacts`` (distinct contacts who lapsed),
    ``lapsed_contact_share`` (of all contacts), ``lapsed_tie_share`` (of the customer's
    interactions), ``lapsed_exposure`` (:func:`lapsed_exposure`) and, with ``community``
    labels, ``community_lapse_rate`` (lapsed share of the rest of its community).
    """
    lapsed = lapsed_at(src, dst, t, n, at=at, horizon=horizon, window=window).lapsed
    m = (t >= at - horizon - window) & (t < at)
    a = np.concatenate([src[m], dst[m]]).astype(np.int64)
    b = np.concatenate([dst[m], src[m]]).astype(np.int64)
    pairs = _distinct(a * n + b)
    pa_, pb = pairs // n, pairs % n
    degree = np.bincount(pa_, minlength=n).astype(np.float64)
    ch_n = np.bincount(pa_, weights=lapsed[pb].astype(np.float64), minlength=n)
    strength = np.bincount(a, minlength=n).astype(np.float64)
    ch_w = np.bincount(a, weights=lapsed[b].astype(np.float64), minlength=n)
    out = pd.DataFrame({
        "lapsed_exposure": lapsed_exposure(src[m], dst[m], lapsed, n),
        "lapsed_contacts": ch_n,
        "lapsed_contact_share": np.divide(ch_n, degree, out=np.zeros(n), where=degree > 0),
        "lapsed_tie_share": np.divide(ch_w, strength, out=np.zeros(n), where=strength > 0),
        "community_lapse_rate": np.zeros(n),
    })
    if community is not None:
        # hash-based codes (np.unique sorted 1M label strings in ~5 s per period here)
        inverse, codes = pd.factorize(np.asarray(community), use_na_sentinel=False)
        size = np.bincount(inverse, minlength=codes.size).astype(np.float64)
        num = np.bincount(inverse, weights=lapsed.astype(np.float64), minlength=codes.size)
        others = size[inverse] - 1
        out["community_lapse_rate"] = np.divide(num[inverse] - lapsed, others,
                                                out=np.zeros(n), where=others > 0)
    return out


def lapsed_exposure(src: np.ndarray, dst: np.ndarray, lapsed: np.ndarray,
                    n: int) -> np.ndarray:
    """One-hop exposure of each customer ``v`` to lapsed contacts through its in-ties:
    ``1 - prod_u (1 - p(u -> v) lapsed_u)``, with the weighted-cascade tie probability of
    the interactions given (``p(u -> v)`` = interactions ``u -> v`` / all interactions
    received by ``v``, the influence step's default tie model).

    >>> lapsed_exposure(np.array([0, 0, 1, 2]), np.array([2, 2, 2, 1]),
    ...                 np.array([True, False, False]), 3).round(3).tolist()
    [0.0, 0.0, 0.667]
    """
    if src.size == 0:
        return np.zeros(n)
    codes = np.sort(src.astype(np.int64) * n + dst.astype(np.int64))
    first = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    pairs = codes[first]
    count = np.diff(np.r_[first, codes.size]).astype(np.float64)
    u, v = pairs // n, pairs % n
    received = np.bincount(v, weights=count, minlength=n)
    p = count / received[v]
    with np.errstate(divide="ignore"):
        log_keep = np.log1p(-np.minimum(p * lapsed[u], 1.0))
    total = np.bincount(v, weights=log_keep, minlength=n)
    return np.asarray(1.0 - np.exp(total))


def risk_features(src: np.ndarray, dst: np.ndarray, t: np.ndarray, n: int, *, at: float,
                  horizon: float, window: float, channel: np.ndarray | None = None,
                  community: np.ndarray | None = None, role: np.ndarray | None = None,
                  churn_score: np.ndarray | None = None) -> pd.DataFrame:
    """Every model feature at ``at`` (:data:`MODEL_FEATURES`, + ``role_<name>`` one-hot
    columns with ``role``, + ``churn_score``).
    """
    own = activity_features(src, dst, t, n, at=at, window=window, channel=channel)
    net = lapse_neighbourhood(src, dst, t, n, at=at, horizon=horizon, window=window,
                              community=community)
    out = pd.concat([own, net], axis=1)
    if role is not None:
        names = pd.Series(np.asarray(role)).astype(str).to_numpy()
        for name in sorted(set(names.tolist())):
            out[f"role_{name}"] = (names == name).astype(np.float64)
    if churn_score is not None:
        out["churn_score"] = np.clip(np.nan_to_num(churn_score, nan=0.0), 0.0, 1.0)
    return out


def recency_frequency_score(features: pd.DataFrame) -> np.ndarray:
    """The classic untrained churn score: the mean of the percentile rank of recency (long
    silence = risk) and of the reversed percentile rank of the window's interactions (few =
    risk). In [0, 1], higher = more likely to churn.
    """
    rec = features["recency_days"].fillna(features["recency_days"].max()).to_numpy(float)
    freq = (features["sent_window"] + features["received_window"]).to_numpy(float)
    if rec.size == 0:
        return np.zeros(0)
    r = scipy.stats.rankdata(rec) / rec.size
    f = scipy.stats.rankdata(-freq) / freq.size
    return np.asarray((r + f) / 2.0)


# ---------------------------------------------------------------------------- the model
def design(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Sign-log transform of the feature columns (NaN -> 0): heavy tails tamed for a
    linear model.
    """
    x = frame[columns].to_numpy(np.float64, copy=True)
    np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    sign = np.signbit(x)
    np.abs(x, out=x)
    np.log1p(x, out=x)
    np.negative(x, out=x, where=sign)  # in place: one copy of the frame, not four
    return x


@dataclass
class Logistic:
    """An L2 logistic regression on standardised columns, with its Laplace covariance."""

    columns: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    cov: np.ndarray

    @classmethod
    def fit(cls, frame: pd.DataFrame, y: np.ndarray, columns: list[str],
            c: float = 1.0, weight: np.ndarray | None = None) -> Logistic:
        """Fit on ``frame[columns]`` and labels ``y`` (inverse regularisation ``c``: the
        loss is the log-loss sum plus ``|coef|^2 / (2c)``, the intercept unpenalised, as
        scikit-learn's ``LogisticRegression(C=c)``), by Newton's method: a few passes of
        ``n x p^2`` work, and the Hessian it ends with is the Laplace covariance's inverse.
        ``weight`` (per row, default 1) multiplies each row's log-loss (older stacked folds
        can count less).

        The dense algebra runs on one BLAS thread: its products are tall and thin (rows x
        ~20 columns), and OpenBLAS's threads on two shared cores cost 10-35x the single
        thread (benchmarks/README.md, "risk step: one BLAS thread").
        """
        return cls.fit_design(design(frame, columns), y, columns, c, weight)

    @classmethod
    def fit_design(cls, x: np.ndarray, y: np.ndarray, columns: list[str], c: float = 1.0,
                   weight: np.ndarray | None = None) -> Logistic:
        """:meth:`fit` on a design matrix already built by :func:`design` (the stacked
        periods build theirs once for both models that use them).
        """
        with threadpool_limits(limits=1, user_api="blas"):
            return cls._fit(x, y, columns, c, weight)

    @classmethod
    def _fit(cls, x: np.ndarray, y: np.ndarray, columns: list[str], c: float,
             weight: np.ndarray | None) -> Logistic:
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        # [1, (x - mean) / scale] written into one array: the same numbers as column_stack
        # of the standardised copy, without that copy (a stacked design is ~0.4 GB at 1M),
        # and its memory order (column_stack keeps x's; the products below round
        # differently, ~1e-15, on the other one)
        order: Literal["C", "F"] = "F" if x.ndim == 2 and x.strides[0] < x.strides[1] else "C"
        zz = np.empty((len(x), x.shape[1] + 1), order=order)
        zz[:, 0] = 1.0
        np.subtract(x, mean, out=zz[:, 1:])
        np.divide(zz[:, 1:], scale, out=zz[:, 1:])
        yy = np.asarray(y, np.float64)
        sw = np.ones(len(yy)) if weight is None else np.asarray(weight, np.float64)
        pen = np.full(zz.shape[1], 1.0 / c)
        pen[0] = 0.0
        w = np.zeros(zz.shape[1])

        def loss(v: np.ndarray) -> float:
            eta = zz @ v
            return float(np.sum(sw * (np.logaddexp(0.0, eta) - yy * eta))
                         + 0.5 * np.sum(pen * v * v))

        current = loss(w)
        h = np.eye(zz.shape[1])
        for _ in range(100):
            p = _sigmoid(zz @ w)
            grad = zz.T @ (sw * (p - yy)) + pen * w
            h = (zz * (sw * p * (1 - p))[:, None]).T @ zz + np.diag(pen)
            step = np.linalg.solve(h + 1e-10 * np.eye(h.shape[0]), grad)
            t = 1.0
            while t > 1e-6:  # halve the step until the loss goes down
                trial = w - t * step
                value = loss(trial)
                if value <= current + 1e-12:
                    break
                t /= 2
            w, gain, current = trial, current - value, value
            if np.max(np.abs(t * step)) < 1e-8 or gain < 1e-10:
                break
        cov = np.linalg.pinv(h)
        coef, b = w[1:].copy(), float(w[0])
        return cls(list(columns), mean, scale, coef, b, cov)

    def eta(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Linear predictor and its standard error for ``frame`` (one BLAS thread, as
        :meth:`fit`).
        """
        return self.eta_design(design(frame, self.columns))

    def eta_design(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`eta` on a design matrix built by :func:`design`."""
        with threadpool_limits(limits=1, user_api="blas"):
            z = (x - self.mean) / self.scale
            eta = z @ self.coef + self.intercept
            zz = np.column_stack([np.ones(len(z)), z])
            se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", zz, self.cov, zz), 0.0))
        return eta, se

    def importance(self) -> list[dict[str, Any]]:
        """Standardised coefficients, largest magnitude first (sign: + raises risk)."""
        order = np.argsort(-np.abs(self.coef), kind="stable")
        return [{"feature": self.columns[i], "coefficient": round(float(self.coef[i]), 4)}
                for i in order]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -40, 40))))


@dataclass
class Calibration:
    """A map from a model's linear predictor to a probability, learned out of time."""

    method: str
    a: float = 1.0
    b: float = 0.0
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def fit(cls, method: str, eta: np.ndarray, y: np.ndarray) -> Calibration:
        """Platt (a logistic on the linear predictor) or isotonic steps."""
        if method == "platt":
            from sklearn.linear_model import LogisticRegression

            m = LogisticRegression(C=1e6, max_iter=2000).fit(eta[:, None], y.astype(int))
            a = float(m.coef_[0, 0])
            if a <= 0:  # a map must keep the order; a useless score gets a constant rate
                return cls("platt", 0.0, float(np.log(y.mean() / (1 - y.mean()))))
            return cls("platt", a, float(m.intercept_[0]))
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            iso.fit(eta, y.astype(float))
            return cls("isotonic", x=np.asarray(iso.X_thresholds_),
                       y=np.asarray(iso.y_thresholds_))
        return cls("none")

    def __call__(self, eta: np.ndarray) -> np.ndarray:
        """The calibrated probability of each linear predictor."""
        if self.method == "isotonic":
            return np.asarray(np.interp(eta, self.x, self.y))
        return _sigmoid(self.a * eta + self.b)


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Reliability table: customers in ``bins`` equal-count bins of predicted risk, each with
    its mean prediction, observed lapse rate and their gap.
    """
    y = np.asarray(y, bool)
    p = np.asarray(p, np.float64)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    rows = []
    for i, part in enumerate(np.array_split(order, min(bins, p.size))):
        if part.size == 0:
            continue
        mp, obs = float(p[part].mean()), float(y[part].mean())
        rows.append({"bin": i + 1, "n": int(part.size), "predicted": round(mp, 4),
                     "observed": round(obs, 4), "gap": round(abs(mp - obs), 4)})
    return rows


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC with mid-ranks (NaN with one class)."""
    y = np.asarray(y, bool)
    m, k = int(y.sum()), int((~y).sum())
    if m == 0 or k == 0:
        return float("nan")
    r = scipy.stats.rankdata(s)
    return float((r[y].sum() - m * (m + 1) / 2) / (m * k))


@dataclass
class RiskModel:
    """The risk of every customer and how it was obtained (``to_dict`` -> run.json)."""

    risk: np.ndarray
    low: np.ndarray
    high: np.ndarray
    active: np.ndarray
    features: pd.DataFrame
    method: str
    fallback: str | None
    info: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"method": self.method, "fallback": self.fallback} | self.info


@dataclass(frozen=True)
class Fold:
    """One labelled period: features at ``at - k h`` for the customers active in the window
    before it, labels from the following horizon (``k = 1``: the latest).
    """

    k: int
    when: float
    rows: np.ndarray
    y: np.ndarray
    x: np.ndarray
    """The model's design matrix of the period's features at ``rows`` (built once per
    period; the feature frame itself is not kept: one per period for all n customers held
    about 1 GB at 1M customers while the models were fitted).
    """

    @property
    def rate(self) -> float:
        """Observed lapse rate of the fold."""
        return float(self.y.mean())


def _pack(folds: list[Fold]) -> tuple[list[Fold], np.ndarray, np.ndarray]:
    """The folds with their design matrices moved into one array, end to end in fold order
    (each fold's ``x`` a view of its rows), that array and the folds' row bounds in it: a
    run of consecutive folds is then stacked by slicing, ``packed[bounds[i]:bounds[j]]``.
    The final and the validation models train on overlapping runs of consecutive folds, and
    a stacked copy per model (~0.4 GB at 1M customers) was held next to the folds' own
    matrices while the model was fitted.
    """
    packed = np.concatenate([f.x for f in folds]) if len(folds) > 1 else folds[0].x
    bounds = np.cumsum([0] + [f.rows.size for f in folds])
    return ([replace(f, x=packed[bounds[i]: bounds[i + 1]]) for i, f in enumerate(folds)],
            packed, bounds)


def _fit_stack(folds: list[Fold], columns: list[str], c: float,
               decay: float, x: np.ndarray | None = None) -> Logistic:
    """One logistic model on the folds stacked; fold ``k`` weighs ``decay ** (k - k0)``
    relative to the latest of them (``decay = 1``: every row alike). ``x``: their design
    matrices already stacked (a slice of :func:`_pack`'s array), else they are concatenated.
    """
    k0 = folds[0].k
    if x is None:
        x = np.concatenate([f.x for f in folds]) if len(folds) > 1 else folds[0].x
    y = np.concatenate([f.y for f in folds])
    weight = np.concatenate([np.full(f.rows.size, decay ** (f.k - k0)) for f in folds])
    return Logistic.fit_design(x, y, columns, c, weight=None if decay == 1.0 else weight)


def _shift(eta: np.ndarray, target: float) -> float:
    """The intercept shift that makes the mean of ``sigmoid(eta + shift)`` equal ``target``."""
    target = min(max(target, 1e-6), 1 - 1e-6)
    lo, hi = -40.0, 40.0
    while hi - lo > 1e-10:  # bisection: the mean is increasing in the shift
        mid = (lo + hi) / 2
        if float(_sigmoid(eta + mid).mean()) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _level_sd(folds: list[Fold], p: np.ndarray) -> dict[str, Any]:
    """How uncertain the level of the next period's lapse rate is: the standard deviation of
    the stacked periods' lapse rates, as the spread of one more period
    (``sd * sqrt(1 + 1/k)``), and the same on the logit scale (``shift_sd``: divided by the
    mean ``p (1 - p)`` of the predictions, the slope of the mean risk in the intercept).

    The coefficient covariance alone leaves this out: on the two real logs the rate of one
    horizon moves 0.04-0.10 from the periods before it, more than any coefficient's
    uncertainty (benchmarks/README.md, "risk_real.py"), so the interval adds it. One
    period: no estimate (``shift_sd`` 0, said in run.json).
    """
    rates = np.array([f.rate for f in folds])
    slope = float(np.mean(p * (1 - p))) if p.size else 0.0
    if rates.size < 2 or slope <= 0:
        return {"periods": int(rates.size), "rate_sd": None, "shift_sd": 0.0}
    sd = float(np.std(rates, ddof=1)) * float(np.sqrt(1 + 1 / rates.size))
    return {"periods": int(rates.size), "rate_sd": round(sd, 5),
            "shift_sd": round(sd / slope, 5)}


def _drift(model: Logistic, drift: str, latest: Fold, eta_now: np.ndarray,
           folds: list[Fold]) -> float:
    """Intercept shift of the drift correction (``drift``: see :func:`fit_risk`);
    ``eta_now``: the model's linear predictor on the customers it is applied to.
    """
    if drift == "latest":
        eta, _ = model.eta_design(latest.x)
        return _shift(eta, latest.rate)
    if drift == "level":
        return _shift(eta_now, float(np.mean([f.rate for f in folds])))
    return 0.0


def fit_risk(src: np.ndarray, dst: np.ndarray, t: np.ndarray, n: int, *, at: float,
             horizon: float, window: float, gaps: list[Gap] | None = None,
             channel: np.ndarray | None = None, community: np.ndarray | None = None,
             role: np.ndarray | None = None,
             churn_score: np.ndarray | None = None, min_lapses: int = 20,
             calibration: str = "none", c: float = 1.0, confidence: float = 0.9,
             folds: int = 6, decay: float = 1.0, drift: str = "level",
             exposure: bool = True) -> RiskModel:
    """Train the out-of-time model and score every customer at ``at`` (module docstring).

    ``folds``: how many labelled periods (one horizon apart, latest first) the final model
    is trained on, stacked, as far as the log allows (window inside the log, no gap, at least
    ``min_lapses`` lapses and non-lapses); the validation model is trained on as many
    periods one horizon earlier. ``decay``: weight of each older period relative to the next.
    ``drift``: ``none``; ``latest`` (shift the intercept so that the mean prediction on the
    latest period equals its observed lapse rate); ``level`` (so that the mean prediction at
    ``at`` equals the mean observed rate of the periods trained on). ``exposure``: add
    ``lapsed_exposure`` to the features; ``role`` (labels): add their one-hot columns.
    """
    h, w = horizon, window
    gaps = gaps or []

    def feats(when: float) -> pd.DataFrame:
        return risk_features(src, dst, t, n, at=when, horizon=h, window=w, channel=channel,
                             community=community, role=role, churn_score=churn_score)

    now = feats(at)
    active_now = silence(src, dst, t, n, cutoff=at, horizon=h, window=w).active
    risk = np.ones(n)
    low, high = np.ones(n), np.ones(n)
    columns = [x for x in MODEL_FEATURES if exposure or x != "lapsed_exposure"] + [
        x for x in now.columns if x.startswith("role_")] + (
        ["churn_score"] if churn_score is not None else [])
    fold_b = silence(src, dst, t, n, cutoff=at - h, horizon=h, window=w)
    info: dict[str, Any] = {"features": columns,
                            "training": {"features_at": _iso(at - h), "population":
                                         fold_b.population, "lapses": fold_b.lapses}}
    few = min(fold_b.lapses, fold_b.population - fold_b.lapses) < min_lapses
    blocked = overlapping(gaps, at - h - w, at)
    if few or blocked:
        why = (f"the training period overlaps a gap with no interactions "
               f"({blocked[0].describe()})" if blocked else
               f"too few lapses to train on ({fold_b.lapses} lapsed of {fold_b.population} "
               f"active one horizon back; need {min_lapses} of each)")
        score = recency_frequency_score(now[active_now])
        risk[active_now] = score
        low[active_now] = score
        high[active_now] = score
        return RiskModel(risk, low, high, active_now, now, "recency",
                         f"{why}: risk is the recency-frequency score (a ranking, not a "
                         "calibrated probability)", info)
    # the labelled periods, latest first; every one but the latest needs its whole window
    # inside the log (a truncated window biases every activity feature) and no gap
    start = float(t.min()) if t.size else at

    def fold(k: int, when: float, s: Silence, features: pd.DataFrame) -> Fold:
        rows = np.flatnonzero(s.active)
        return Fold(k, when, rows, s.lapsed[s.active], design(features.iloc[rows], columns))

    stack = [fold(1, at - h, fold_b, feats(at - h))]
    for k in range(2, folds + 2):
        when = at - k * h
        s = silence(src, dst, t, n, cutoff=when, horizon=h, window=w)
        if (min(s.lapses, s.population - s.lapses) < min_lapses or when - w < start
                or overlapping(gaps, when - w, when + h)):
            break
        stack.append(fold(k, when, s, feats(when)))
    stack, packed, bounds = _pack(stack)
    train = stack[:folds]
    final = _fit_stack(train, columns, c, decay, x=packed[: bounds[len(train)]])
    info["importance"] = final.importance()
    info["training"] |= {"folds": len(train), "features_at_all": [_iso(f.when) for f in train],
                         "rows": int(sum(f.rows.size for f in train)),
                         "lapse_rates": [round(f.rate, 4) for f in train],
                         "decay": decay, "drift": drift}
    cal = Calibration("none")
    fold_b_ = stack[0]
    pop_b, yb = fold_b_.rows, fold_b_.y
    if len(stack) >= 2:
        earlier_folds = stack[1:folds + 1]
        earlier = _fit_stack(earlier_folds, columns, c, decay,
                             x=packed[bounds[1]: bounds[1 + len(earlier_folds)]])
        eta_b, _ = earlier.eta_design(fold_b_.x)
        eta_b = eta_b + _drift(earlier, drift, earlier_folds[0], eta_b, earlier_folds)
        raw = _sigmoid(eta_b)
        info["out_of_time"] = {
            "trained_at": _iso(earlier_folds[0].when), "folds": len(earlier_folds),
            "evaluated_at": _iso(at - h),
            "population": int(pop_b.size), "lapses": int(yb.sum()),
            "auc": round(auc(yb, raw), 4),
            "brier": round(float(np.mean((raw - yb) ** 2)), 5),
            "mean_predicted": round(float(raw.mean()), 4),
            "observed": round(float(yb.mean()), 4),
            "reliability": reliability(yb, raw),
        }
        if calibration != "none" and info["out_of_time"]["auc"] < MIN_CALIBRATION_AUC:
            info["note"] = (f"the earlier model ranked fold B no better than chance (AUC "
                            f"{info['out_of_time']['auc']:.3f}): its map is not used, the "
                            "risk is the uncalibrated model")
        elif calibration != "none":
            cal = Calibration.fit(calibration, eta_b, yb)
            # the calibrated map's own fit on fold B (in-sample for the map, shown as such)
            info["out_of_time"]["brier_calibrated_in_sample"] = round(
                float(np.mean((cal(eta_b) - yb) ** 2)), 5)
    else:
        info["out_of_time"] = None
        info["note"] = ("no earlier fold (too little history, too few lapses or a gap two "
                        "horizons back): out-of-time metrics and calibration unavailable; the "
                        "risk is the uncalibrated model")
    info["calibration"] = cal.method
    pos = np.flatnonzero(active_now)
    eta, se = final.eta(now.iloc[pos])
    eta = eta + _drift(final, drift, stack[0], eta, train)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    level = _level_sd(train, _sigmoid(eta))
    info["level"] = level
    if level["shift_sd"]:
        se = np.sqrt(se * se + level["shift_sd"] ** 2)
    if cal.method == "none":
        r, lo, hi = _sigmoid(eta), _sigmoid(eta - z * se), _sigmoid(eta + z * se)
    else:
        r, lo, hi = cal(eta), cal(eta - z * se), cal(eta + z * se)
    risk[pos], low[pos], high[pos] = r, np.minimum(lo, r), np.maximum(hi, r)
    info["confidence"] = confidence
    info["mean_risk_active"] = round(float(r.mean()), 4) if r.size else None
    return RiskModel(risk, low, high, active_now, now, "logistic", None, info)


def _iso(x: float) -> str:
    return pd.Timestamp(x, unit="s", tz="UTC").isoformat().replace("+00:00", "Z")


__all__ = ["MODEL_FEATURES", "OWN_FEATURES", "Calibration", "Logistic", "RiskModel", "auc",
           "activity_features", "design", "fit_risk", "lapse_neighbourhood",
           "recency_frequency_score", "reliability", "risk_features"]
