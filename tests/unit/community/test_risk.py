"""The churn-risk model: features, out-of-time training, calibration, fallbacks, and what the
care step makes of it (priority formula, reasons), on small synthetic logs.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from carenet.community.care import carried_at_risk, priorities
from carenet.community.lapse import DAY, Gap, silence
from carenet.community.risk import (
    MODEL_FEATURES,
    Calibration,
    activity_features,
    auc,
    fit_risk,
    reliability,
)
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.graphs.model import CustomerGraph
from carenet.graphs.ties import TieModel
from carenet.pipeline import analyze


def fading_log(seed: int, n: int = 500, days: float = 140.0, leave_share: float = 0.5
               ) -> pd.DataFrame:
    """Customers message friends at their own rate; leavers slow down over 20 days, then stop
    (and nobody writes to them any more).
    """
    rng = np.random.default_rng(seed)
    rate = rng.gamma(2.0, 0.4, n)  # messages a day
    leave = np.where(rng.random(n) < leave_share, rng.uniform(20, days + 40, n), np.inf)
    friends = [rng.choice(n, 6, replace=False) for _ in range(n)]
    rows = []
    for i in range(n):
        k = rng.poisson(rate[i] * days)
        t = np.sort(rng.uniform(0, days, k))
        fade = np.clip((leave[i] - t) / 20.0, 0, 1)
        t = t[rng.random(t.size) < fade]
        for x in t:
            j = friends[i][rng.integers(6)]
            if j != i and x < leave[j]:  # nobody writes to a customer who left
                rows.append((str(i), str(j), x * DAY))
    frame = pd.DataFrame(rows, columns=["source", "target", "timestamp"])
    return frame.sort_values("timestamp", ignore_index=True)


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    ids = pd.Index(pd.unique(pd.concat([frame.source, frame.target])))
    return (ids.get_indexer(frame.source), ids.get_indexer(frame.target),
            frame.timestamp.to_numpy(float), len(ids))


def test_activity_features_by_hand() -> None:
    # customer 0: 4 interactions in the previous window, 1 in the window (10 days)
    src = np.array([0, 0, 1, 0, 0, 2])
    dst = np.array([1, 2, 0, 1, 2, 0])
    t = np.array([11, 12, 13, 14, 25, 28.0]) * DAY
    f = activity_features(src, dst, t, 3, at=30 * DAY, window=10 * DAY)
    assert f.loc[0, "sent_window"] == 1 and f.loc[0, "received_window"] == 1
    assert f.loc[0, "activity_change"] == pytest.approx(2 / 4 - 1)
    assert f.loc[0, "sent_share"] == pytest.approx(0.5)
    assert f.loc[0, "recency_days"] == pytest.approx(2.0)
    assert f.loc[1, "activity_change"] == pytest.approx(-1.0)  # 2 before, none now
    assert f.loc[0, "contacts_window"] == 1  # only 2 in the window


def test_model_ranks_the_customers_who_go_silent() -> None:
    frame = fading_log(1)
    src, dst, t, n = _arrays(frame)
    at, h = 120 * DAY, 10 * DAY
    past = t < at
    model = fit_risk(src[past], dst[past], t[past], n, at=at, horizon=h, window=h,
                     min_lapses=10)
    assert model.method == "logistic" and model.fallback is None
    oot = model.info["out_of_time"]
    assert 0.6 < oot["auc"] <= 1.0
    assert sum(r["n"] for r in oot["reliability"]) == oot["population"]
    assert len(oot["reliability"]) == 10
    assert {r["feature"] for r in model.info["importance"]} == set(MODEL_FEATURES)
    # realised labels of [at, at + h), computed from the whole log with a loop
    future = silence(src, dst, t, n, cutoff=at, horizon=h, window=h)
    pop = np.flatnonzero(future.active)
    assert (model.active == future.active).all()
    y = np.array([not ((t >= at) & (t < at + h) & ((src == c) | (dst == c))).any()
                  for c in pop])
    risk = model.risk[pop]
    rec = model.features["recency_days"].to_numpy()[pop]
    assert auc(y, risk) > 0.75
    assert auc(y, risk) >= auc(y, rec) - 0.02
    assert ((model.low <= model.risk + 1e-12) & (model.risk <= model.high + 1e-12)).all()
    assert (model.risk[~model.active] == 1.0).all()


def test_too_few_lapses_falls_back_to_recency_and_says_so() -> None:
    frame = fading_log(2, n=200, leave_share=0.0)
    src, dst, t, n = _arrays(frame)
    at, h = 100 * DAY, 10 * DAY
    past = t < at
    model = fit_risk(src[past], dst[past], t[past], n, at=at, horizon=h, window=h,
                     min_lapses=200)
    assert model.method == "recency"
    assert "too few lapses" in str(model.fallback)
    assert "not a calibrated probability" in str(model.fallback)
    act = model.active
    assert np.isfinite(model.risk).all() and 0 <= model.risk[act].min() <= model.risk.max() <= 1


def test_a_gap_in_the_training_period_falls_back() -> None:
    frame = fading_log(3, n=200)
    src, dst, t, n = _arrays(frame)
    at, h = 100 * DAY, 10 * DAY
    past = t < at
    model = fit_risk(src[past], dst[past], t[past], n, at=at, horizon=h, window=h,
                     gaps=[Gap(85 * DAY, 88 * DAY)], min_lapses=5)
    assert model.method == "recency" and "gap with no interactions" in str(model.fallback)


def test_reliability_table_by_hand() -> None:
    p = np.linspace(0.0, 0.99, 100)
    y = np.arange(100) % 2 == 0
    rows = reliability(y, p, bins=10)
    assert [r["n"] for r in rows] == [10] * 10
    for i, r in enumerate(rows):
        assert r["predicted"] == pytest.approx(p[10 * i: 10 * i + 10].mean(), abs=1e-4)
        assert r["observed"] == pytest.approx(0.5)
        assert r["gap"] == pytest.approx(abs(r["predicted"] - 0.5), abs=1e-4)


def test_platt_calibration_recovers_a_known_map() -> None:
    rng = np.random.default_rng(5)
    eta = rng.normal(0, 1.5, 20000)
    y = rng.random(eta.size) < 1 / (1 + np.exp(-(0.5 * eta - 1.0)))
    cal = Calibration.fit("platt", eta, y)
    assert cal.a == pytest.approx(0.5, abs=0.06) and cal.b == pytest.approx(-1.0, abs=0.06)
    iso = Calibration.fit("isotonic", eta, y)
    grid = np.linspace(-3, 3, 7)
    assert (np.diff(iso(grid)) >= 0).all()
    assert np.abs(iso(grid) - 1 / (1 + np.exp(-(0.5 * grid - 1.0)))).max() < 0.08


def test_priority_with_the_model_by_hand() -> None:
    g = CustomerGraph.from_edges(["a", "b", "c", "d"], [0, 0, 1], [1, 2, 2], [3.0, 1.0, 1.0])
    risk = np.array([0.2, 0.5, 0.9, 1.0])
    carried = carried_at_risk(g, np.where([0, 0, 0, 1], 0.0, risk), np.ones(4), TieModel())
    # weighted cascade: p(a->b) = 3/3, p(a->c) = 1/2, p(b->c) = 1/2
    assert carried.tolist() == pytest.approx([1.0 * 0.5 + 0.5 * 0.9, 0.5 * 0.9, 0.0, 0.0])
    c = pd.DataFrame({"customer_id": list("abcd"), "lapse_risk": risk,
                      "lapse_risk_low": risk - 0.1, "lapse_risk_high": risk + 0.05,
                      "silent": [False, False, False, True], "lapsed": [False] * 4,
                      "influence": [9.0, 9.0, 9.0, 9.0], "exposure": [0.7] * 4,
                      "recent_value": [1.0] * 4,
                      "exposure_seed": [False, True, False, False]})
    p = priorities(c, retention=0.5, source_risk=0.4, carried_risk=carried)
    assert p.risk[0] == pytest.approx(0.2)                  # the model, not the exposure
    assert p.risk[1] == pytest.approx(1 - 0.5 * 0.6)        # a recent complaint raises it
    assert p.priority[0] == pytest.approx(0.5 * 0.2 * (1 + carried[0]))
    assert p.priority[2] == pytest.approx(0.5 * 0.9 * 1.0)
    assert p.priority[3] == 0.0 and p.lost[3]                # silent: nothing to protect
    assert p.priority_low[0] == pytest.approx(0.5 * 0.1 * (1 + carried[0]))
    assert p.rank.tolist() == [3, 1, 2, 4]


def test_analysis_without_timestamps_says_risk_needs_them() -> None:
    log = pd.DataFrame({"source": ["a", "b", "c", "a"], "target": ["b", "c", "a", "c"]})
    run = analyze(log, steps=["risk"])
    msg = run.results["risk"]["messages"]
    assert any("risk needs timestamps or a churn score" in m for m in msg)
    assert "lapse_risk" not in run.customers


def test_configured_horizon_inside_a_gap_is_refused() -> None:
    frame = fading_log(4, n=150, days=60)
    late = frame.timestamp > 30 * DAY
    frame.loc[late, "timestamp"] += 100 * DAY  # 100 quiet days after day 30
    cfg = AnalysisConfig.from_mapping({"lapse": {"horizon": "20d"}})
    with pytest.raises(InvalidInputError, match="overlaps a period with no interactions"):
        analyze(frame[frame.timestamp < 140 * DAY], config=cfg, steps=["risk"])
    run = analyze(frame[frame.timestamp < 140 * DAY], steps=["risk"])
    res = run.results["risk"]
    assert len(res["lapse"]["gaps"]) >= 1 and res["lapse"]["gaps"][0]["days"] > 90
    assert any("no interactions at all" in m for m in res["messages"])


def test_reasons_name_the_risk_drivers_with_their_numbers() -> None:
    frame = fading_log(6, n=300)
    frame = frame[frame.timestamp < 110 * DAY]
    cfg = AnalysisConfig.from_mapping({
        "influence": {"seed_set_size": 0, "exposure_runs": 100, "epsilon": 0.5},
        "care": {"budget": 0, "reasons_top": 40}, "lapse": {"horizon": "10d"}})
    run = analyze(frame, config=cfg, steps=["communities", "risk", "influence", "care"])
    c = run.customers.set_index("customer_id")
    at = float(frame.timestamp.max())
    checked = 0
    for cid, reason in c.loc[c.reason != "", "reason"].items():
        m = re.search(r"risk drivers: (?:activity (fell|rose) (\d+)%|activity steady|no activity)"
                      r" in the last 10 days, (?:(\d+) contacts? lapsed|no contact lapsed)",
                      reason)
        assert m, reason
        mine = frame[(frame.source == cid) | (frame.target == cid)].timestamp
        now = ((mine > at - 10 * DAY) & (mine <= at)).sum()
        before = ((mine > at - 20 * DAY) & (mine <= at - 10 * DAY)).sum()
        if m[1] == "fell" and before:
            assert int(m[2]) == round((1 - now / before) * 100)
            checked += 1
        lapsed = int(m[3]) if m[3] else 0
        assert lapsed == c.loc[cid, "lapsed_contacts"]
    assert checked >= 3


def test_newton_fit_matches_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    from carenet.community.risk import Logistic, design

    rng = np.random.default_rng(8)
    frame = pd.DataFrame(rng.exponential(2.0, (3000, 4)), columns=list("abcd"))
    eta = 0.8 * np.log1p(frame["a"]) - 1.2 * np.log1p(frame["b"]) + 0.3
    y = rng.random(3000) < 1 / (1 + np.exp(-eta))
    for c in (0.05, 1.0):
        mine = Logistic.fit(frame, y, list("abcd"), c)
        x = design(frame, list("abcd"))
        ref = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(
            (x - mine.mean) / mine.scale, y)
        assert mine.coef == pytest.approx(ref.coef_[0], abs=1e-4)
        assert mine.intercept == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_weighted_newton_fit_matches_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    from carenet.community.risk import Logistic, design

    rng = np.random.default_rng(9)
    frame = pd.DataFrame(rng.exponential(2.0, (2000, 3)), columns=list("abc"))
    eta = 0.9 * np.log1p(frame["a"]) - 0.7 * np.log1p(frame["c"])
    y = rng.random(2000) < 1 / (1 + np.exp(-eta))
    weight = rng.choice([0.25, 0.5, 1.0], 2000)
    mine = Logistic.fit(frame, y, list("abc"), 0.5, weight=weight)
    x = design(frame, list("abc"))
    ref = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(
        (x - mine.mean) / mine.scale, y, sample_weight=weight)
    assert mine.coef == pytest.approx(ref.coef_[0], abs=1e-4)
    assert mine.intercept == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_lapsed_exposure_by_brute_force() -> None:
    from carenet.community.risk import lapsed_exposure

    rng = np.random.default_rng(4)
    n = 12
    src, dst = rng.integers(0, n, 200), rng.integers(0, n, 200)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    lapsed = rng.random(n) < 0.3
    got = lapsed_exposure(src, dst, lapsed, n)
    for v in range(n):
        into = dst == v
        keep_prob = 1.0
        for u in set(src[into].tolist()):
            p = np.sum(into & (src == u)) / into.sum()  # weighted cascade
            keep_prob *= 1 - p * lapsed[u]
        assert got[v] == pytest.approx(1 - keep_prob, abs=1e-12)


def _periods_by_hand(s: np.ndarray, d: np.ndarray, tt: np.ndarray, n: int, *, at: float,
                     h: float, k: int) -> tuple[list[pd.DataFrame], list[np.ndarray]]:
    """The labelled periods 1..k computed here: features at ``at - j h`` of the customers
    active in the window before it, labels "silent in ``[at - j h, at - (j - 1) h)``".
    """
    from carenet.community.risk import risk_features

    frames, ys = [], []
    for j in range(1, k + 1):
        lab = silence(s, d, tt, n, cutoff=at - j * h, horizon=h, window=h)
        f = risk_features(s, d, tt, n, at=at - j * h, horizon=h, window=h)
        frames.append(f[lab.active])
        ys.append(lab.lapsed[lab.active])
    return frames, ys


def test_stacked_folds_are_one_fit_on_the_labelled_periods() -> None:
    from carenet.community.risk import Logistic

    frame = fading_log(6)
    src, dst, t, n = _arrays(frame)
    at, h = 120 * DAY, 10 * DAY
    past = t < at
    s, d, tt = src[past], dst[past], t[past]
    model = fit_risk(s, d, tt, n, at=at, horizon=h, window=h, min_lapses=10, folds=3,
                     drift="none")
    tr = model.info["training"]
    assert tr["folds"] == 3 and len(tr["features_at_all"]) == 3
    # the same fit by hand: features at at - k h, labels of [at - k h, at - (k - 1) h)
    frames, ys = _periods_by_hand(s, d, tt, n, at=at, h=h, k=3)
    assert tr["rows"] == sum(len(f) for f in frames)
    assert tr["lapse_rates"] == [round(float(y.mean()), 4) for y in ys]
    by_hand = Logistic.fit(pd.concat(frames, ignore_index=True), np.concatenate(ys),
                           model.info["features"], 1.0)
    eta, _ = by_hand.eta(model.features[model.active])
    assert model.risk[model.active] == pytest.approx(1 / (1 + np.exp(-eta)), abs=1e-9)
    # the validation model is trained on the three periods before the latest
    assert model.info["out_of_time"]["folds"] == 3


def test_stacking_stops_at_a_gap_at_the_start_of_the_log_and_at_few_lapses() -> None:
    frame = fading_log(7)
    src, dst, t, n = _arrays(frame)
    h = 10 * DAY
    at = 100 * DAY
    past = t < at
    s, d, tt = src[past], dst[past], t[past]
    assert 0 < tt.min() < 0.01 * DAY
    many = fit_risk(s, d, tt, n, at=at, horizon=h, window=h, min_lapses=2, folds=50)
    # every window must start inside the log: at - k h - h >= t.min() -> k <= 8
    assert many.info["training"]["folds"] == 8
    gap = fit_risk(s, d, tt, n, at=at, horizon=h, window=h, min_lapses=2, folds=50,
                   gaps=[Gap(52 * DAY, 55 * DAY)])
    # period k covers [at - (k + 1) h, at - (k - 1) h): k = 4 is the first to reach the gap
    assert gap.info["training"]["folds"] == 3
    # too few lapses: the stack ends before the first period with fewer than min_lapses
    at = 120 * DAY
    past = t < at
    s, d, tt = src[past], dst[past], t[past]
    lapses = [silence(s, d, tt, n, cutoff=at - k * h, horizon=h, window=h).lapses
              for k in range(1, 12)]
    first_short = next(k for k, x in enumerate(lapses, 1) if x < 10)
    assert 2 < first_short < 11
    few = fit_risk(s, d, tt, n, at=at, horizon=h, window=h, min_lapses=10, folds=50)
    assert few.info["training"]["folds"] == first_short - 1


def test_level_drift_sets_the_mean_risk_to_the_periods_lapse_rate() -> None:
    frame = fading_log(8)
    src, dst, t, n = _arrays(frame)
    at, h = 110 * DAY, 10 * DAY
    past = t < at
    model = fit_risk(src[past], dst[past], t[past], n, at=at, horizon=h, window=h,
                     min_lapses=10, folds=4, drift="level")
    rates = model.info["training"]["lapse_rates"]
    assert model.risk[model.active].mean() == pytest.approx(np.mean(rates), abs=1e-4)  # rounded rates
    latest = fit_risk(src[past], dst[past], t[past], n, at=at, horizon=h, window=h,
                      min_lapses=10, folds=4, drift="latest")
    lab = silence(src[past], dst[past], t[past], n, cutoff=at - h, horizon=h, window=h)
    assert latest.risk[latest.active].mean() != pytest.approx(np.mean(rates), abs=1e-3)
    assert lab.lapses > 0


def test_interval_adds_the_spread_of_the_periods_lapse_rates() -> None:
    """The interval is the coefficients' delta method widened, on the logit scale, by the
    stacked periods' lapse-rate spread (sd * sqrt(1 + 1/k) over the mean p(1 - p)); with one
    period there is no spread to add.
    """
    from statistics import NormalDist

    from carenet.community.risk import Logistic

    frame = fading_log(8)
    src, dst, t, n = _arrays(frame)
    at, h = 110 * DAY, 10 * DAY
    past = t < at
    s, d, tt = src[past], dst[past], t[past]
    model = fit_risk(s, d, tt, n, at=at, horizon=h, window=h, min_lapses=10, folds=4,
                     drift="none", confidence=0.9)
    k = model.info["training"]["folds"]
    assert k >= 3
    frames, ys = _periods_by_hand(s, d, tt, n, at=at, h=h, k=k)
    rates = [float(y.mean()) for y in ys]
    by_hand = Logistic.fit(pd.concat(frames, ignore_index=True), np.concatenate(ys),
                           model.info["features"], 1.0)
    eta, se = by_hand.eta(model.features[model.active])
    p = 1 / (1 + np.exp(-eta))
    shift_sd = np.std(rates, ddof=1) * np.sqrt(1 + 1 / k) / np.mean(p * (1 - p))
    assert model.info["level"]["shift_sd"] == pytest.approx(shift_sd, rel=1e-3)  # rounded
    z = NormalDist().inv_cdf(0.95)
    wide = np.sqrt(se**2 + model.info["level"]["shift_sd"] ** 2)
    assert model.high[model.active] == pytest.approx(1 / (1 + np.exp(-(eta + z * wide))),
                                                     abs=1e-9)
    narrow = 1 / (1 + np.exp(-(eta + z * se))) - 1 / (1 + np.exp(-(eta - z * se)))
    assert shift_sd > 0.1
    assert (model.high[model.active] - model.low[model.active] > narrow).all()
    one = fit_risk(s, d, tt, n, at=at, horizon=h, window=h, min_lapses=10, folds=1)
    assert one.info["level"] == {"periods": 1, "rate_sd": None, "shift_sd": 0.0}


def test_role_and_exposure_features_enter_the_model() -> None:
    frame = fading_log(1, n=300)
    src, dst, t, n = _arrays(frame)
    at, h = 120 * DAY, 10 * DAY
    past = t < at
    role = np.where(np.arange(n) % 3 == 0, "hub", "member")
    model = fit_risk(src[past], dst[past], t[past], n, at=at, horizon=h, window=h,
                     min_lapses=10, role=role, exposure=True)
    names = {r["feature"] for r in model.info["importance"]}
    assert {"role_hub", "role_member", "lapsed_exposure"} <= names
    plain = fit_risk(src[past], dst[past], t[past], n, at=at, horizon=h, window=h,
                     min_lapses=10, exposure=False)
    assert {r["feature"] for r in plain.info["importance"]} == set(MODEL_FEATURES) - {
        "lapsed_exposure"}


@pytest.mark.parametrize("bad", [{"folds": 0}, {"fold_decay": 0.0}, {"fold_decay": 1.5},
                                 {"drift": "up"}, {"folds": 51}])
def test_stacking_settings_are_validated(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        AnalysisConfig.from_mapping({"risk": bad})


def test_the_step_records_the_stacked_periods_and_says_so() -> None:
    frame = fading_log(6)
    frame = frame[frame.timestamp < 110 * DAY]
    cfg = AnalysisConfig.from_mapping({"lapse": {"horizon": "10d"},
                                       "risk": {"folds": 4, "min_lapses": 5}})
    run = analyze(frame, config=cfg, steps=["communities", "risk"])
    res = run.results["risk"]
    tr = res["training"]
    assert tr["folds"] == 4 and tr["drift"] == "level"
    assert len(tr["features_at_all"]) == len(tr["lapse_rates"]) == 4
    assert res["out_of_time"]["folds"] == 4
    assert any("model trained on 4 labelled period(s)" in m for m in res["messages"])
    # level: the mean risk of the active customers is the mean lapse rate of the periods
    active = ~run.customers["silent"].to_numpy(bool)
    assert run.customers["lapse_risk"].to_numpy()[active].mean() == pytest.approx(
        np.mean(tr["lapse_rates"]), abs=1e-4)
