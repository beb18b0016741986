"""Backtest: metrics against sklearn and brute force, labels on hand-made logs, no leakage
from after the cutoff, the generator's truth, and the CLI end to end on real files.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from carenet.cli import app
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.evaluation import stats as bt
from carenet.evaluation.backtest import BacktestOptions, backtest_cutoff, read_log, run_backtest
from carenet.graphs.build import load_network
from carenet.synthetic import GeneratorConfig, generate

DAY = 86400.0
runner = CliRunner()
# Light analyses keep the end-to-end tests fast: no betweenness/harmonic, no seed-set step.
FAST = AnalysisConfig.from_mapping({
    "measures": {"measures": ["pagerank", "core"]},
    "influence": {"seed_set_size": 0, "exposure_runs": 300, "epsilon": 0.3},
})
FAST_TOML = """
[measures]
measures = ["pagerank", "core"]
[influence]
seed_set_size = 0
exposure_runs = 300
epsilon = 0.3
"""


# ---------------------------------------------------------------------------- metrics
@pytest.mark.parametrize("seed", range(6))
def test_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = rng.random(n) < rng.uniform(0.05, 0.6)
    y[:2] = [True, False]
    s = np.round(rng.normal(size=n) + y * rng.uniform(0, 2), int(rng.integers(0, 3)))
    assert bt.auc_score(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert bt.delong_auc(y, s).auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def _delong_brute(y: np.ndarray, s: np.ndarray) -> float:
    """DeLong's structural components from the O(m n) kernel psi(x, y)."""
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(np.sqrt(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size))


@pytest.mark.parametrize("seed", range(2))
def test_delong_standard_error_matches_brute_force_and_bootstrap(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.3
    s = np.round(rng.normal(size=300) + 0.8 * y, 1)
    est = bt.delong_auc(y, s)
    assert est.std_error == pytest.approx(_delong_brute(y, s), rel=1e-9)
    boots = []
    for _ in range(400):
        i = rng.integers(0, 300, 300)
        if 0 < y[i].sum() < 300:
            boots.append(bt.auc_score(y[i], s[i]))  # equal to sklearn's: tested above
    assert est.std_error == pytest.approx(float(np.std(boots)), rel=0.2)
    assert est.low < est.auc < est.high


def _captured_brute(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Average over every order of the customers (ties broken by the order) of the churners
    in the top k, for every k from 0 to n."""
    total, count = np.zeros(len(y) + 1), 0
    for perm in itertools.permutations(range(len(y))):
        p = np.array(perm)
        order = p[np.argsort(-s[p], kind="stable")]
        total += np.r_[0, np.cumsum(y[order])]
        count += 1
    return total / count


@pytest.mark.parametrize("seed", range(5))
def test_expected_captured_is_the_average_over_random_tie_orders(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(7) < 0.4
    s = rng.integers(0, 3, 7).astype(float)
    ks = np.arange(0, 8)
    got = bt.expected_captured(y, s, ks)
    want = _captured_brute(y, s)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_lift_and_curve_against_direct_counts() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(1000) < 0.1
    s = rng.permutation(1000).astype(float) + 400 * y * rng.random(1000)  # no ties
    order = np.argsort(-s)
    for f in (0.01, 0.05, 0.1):
        k = round(f * 1000)
        direct = (y[order[:k]].mean()) / y.mean()
        assert bt.lift_at(y, s, f) == pytest.approx(direct)
    curve = bt.lift_curve(y, s)
    assert list(curve.columns) == ["fraction", "k", "lift", "captured"]
    assert curve["captured"].iloc[-1] == pytest.approx(1.0)
    assert curve["lift"].iloc[-1] == pytest.approx(1.0)
    assert (np.diff(curve["captured"]) >= -1e-12).all()
    m = bt.score_metrics(y, s, budget=50)
    assert m["captured_at_k"] == y[order[:50]].sum()
    assert m["precision_at_k"] == pytest.approx(y[order[:50]].mean())
    # a constant score is random: lift 1 everywhere under fair tie sharing
    flat = bt.score_metrics(y, np.zeros(1000), budget=50)
    assert flat["auc"] == 0.5
    assert flat["lift_1"] == pytest.approx(1.0) and flat["lift_10"] == pytest.approx(1.0)


def test_paired_delong_comparison() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(500) < 0.3
    good = rng.normal(size=500) + 1.5 * y
    weak = rng.normal(size=500) + 0.3 * y
    same = bt.delong_compare(y, good, good)
    assert same.difference == 0 and same.p_value == 1.0
    comp = bt.delong_compare(y, good, weak)
    assert comp.auc_a == pytest.approx(roc_auc_score(y, good))
    assert comp.auc_b == pytest.approx(roc_auc_score(y, weak))
    assert comp.low > 0 and comp.p_value < 1e-6


def test_metric_errors() -> None:
    with pytest.raises(InvalidInputError, match="NaN"):
        bt.auc_score(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(InvalidInputError, match="k must be"):
        bt.expected_captured(np.array([0, 1]), np.array([0.1, 0.2]), 3)
    assert np.isnan(bt.auc_score(np.array([1, 1]), np.array([0.1, 0.2])))


# ---------------------------------------------------------------------------- labels
def _log(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["source", "target", "timestamp"]).assign(
        timestamp=lambda d: (d["timestamp"] * DAY).astype(int))


HAND = _log([
    ("a", "b", 1), ("b", "c", 2), ("c", "d", 3), ("d", "a", 4),   # window [0, 10) before T=10
    ("e", "a", 0.5),                                              # e: active only at day 0.5
    ("a", "b", 11), ("c", "a", 12),                               # after T: a, b, c active
    ("f", "a", 25),                                               # f appears after the horizon
])


def test_silence_labels_on_a_hand_made_log() -> None:
    log = read_log(HAND)
    ids = log.ids.to_pylist()
    lab = bt.silence_labels(log.src, log.dst, log.time, log.n_customers, cutoff=10 * DAY,
                            horizon=10 * DAY)
    active = {ids[i] for i in np.flatnonzero(lab.active)}
    churned = {ids[i] for i in np.flatnonzero(lab.churned)}
    assert active == {"a", "b", "c", "d", "e"}
    assert churned == {"d", "e"}           # silent in [10, 20); f is not in the population
    short = bt.silence_labels(log.src, log.dst, log.time, log.n_customers, cutoff=10 * DAY,
                              horizon=10 * DAY, lookback=8 * DAY)
    assert {ids[i] for i in np.flatnonzero(short.active)} == {"a", "b", "c", "d"}
    ev = bt.event_labels(log.src, log.dst, log.time, log.n_customers,
                         event_nodes=np.array([ids.index("b"), ids.index("d")]),
                         event_times=np.array([12 * DAY, 5 * DAY]), cutoff=10 * DAY,
                         horizon=10 * DAY)
    assert {ids[i] for i in np.flatnonzero(ev.active)} == {"a", "b", "c", "e"}  # d churned before
    assert {ids[i] for i in np.flatnonzero(ev.churned)} == {"b"}


def test_activity_features_on_a_hand_made_log() -> None:
    log = read_log(HAND)
    ids = log.ids.to_pylist()
    f = bt.activity_features(log.src, log.dst, log.time, log.n_customers, at=10 * DAY,
                             window=7.5 * DAY)            # window [2.5, 10): c->d@3, d->a@4
    a = f.iloc[ids.index("a")]
    assert a["recency_days"] == pytest.approx(6.0)        # last: d -> a at day 4
    assert a["tenure_days"] == pytest.approx(9.5)         # first: e -> a at day 0.5
    assert (a["sent_window"], a["received_window"]) == (0, 1)
    assert a["sent_total"] == 1 and a["received_total"] == 2
    assert a["contacts_window"] == 1 and a["active_days_window"] == 1
    d = f.iloc[ids.index("d")]
    assert (d["sent_window"], d["received_window"], d["contacts_window"]) == (1, 1, 2)
    assert d["active_days_window"] == 2 and d["trend"] == 0.0   # nothing in [6.25, 10)
    assert f.iloc[ids.index("b")]["contacts_window"] == 0
    assert f.iloc[ids.index("f")][["recency_days", "tenure_days"]].isna().all()
    late = bt.activity_features(log.src, log.dst, log.time, log.n_customers, at=13 * DAY,
                                window=4 * DAY)           # [9, 13): a->b@11, c->a@12
    assert late.iloc[ids.index("a")]["trend"] == 1.0      # both in the second half [11, 13)


def test_neighbour_churn_features_against_direct_counts() -> None:
    rng = np.random.default_rng(2)
    edges = pd.DataFrame({"source": rng.integers(0, 40, 200).astype(str),
                          "target": rng.integers(0, 40, 200).astype(str),
                          "weight": rng.uniform(0.5, 3, 200)})
    g = load_network(edges).graph
    churned = rng.random(g.n_customers) < 0.3
    community = rng.integers(0, 3, g.n_customers)
    f = bt.neighbour_churn_features(g, churned, community)
    nx_g = g.to_networkx()
    und = nx_g.to_undirected()
    for v in range(g.n_customers):
        nbrs = set(und.neighbors(v))
        assert f["churned_neighbours"][v] == sum(churned[u] for u in nbrs)
        w_all = sum(d["weight"] for _, _, d in nx_g.in_edges(v, data=True)) + sum(
            d["weight"] for _, _, d in nx_g.out_edges(v, data=True))
        w_ch = sum(d["weight"] for u, _, d in nx_g.in_edges(v, data=True) if churned[u]) + sum(
            d["weight"] for _, u, d in nx_g.out_edges(v, data=True) if churned[u])
        assert f["churned_tie_share"][v] == pytest.approx(w_ch / w_all if w_all else 0.0)
        same = (community == community[v])
        same[v] = False
        want = churned[same].mean() if same.any() else 0.0
        assert f["community_churn_share"][v] == pytest.approx(want)


# ---------------------------------------------------------------------------- orchestration
@pytest.fixture(scope="module")
def synthetic() -> dict[str, pd.DataFrame]:
    data = generate(GeneratorConfig(customers=500, interactions=9000, transmission=0.5,
                                    timestamps="epoch", seed=11))
    return {"interactions": data.interactions, "events": data.events, "truth": data.truth,
            "customers": data.customers}


def test_scores_do_not_see_the_future(synthetic: dict[str, pd.DataFrame]) -> None:
    """Rewriting every interaction after the cutoff changes the labels, never a score."""
    log = synthetic["interactions"]
    t = log["timestamp"].to_numpy()
    cutoff = float(np.quantile(t, 0.6))
    later = t >= cutoff
    rng = np.random.default_rng(0)
    other = log.copy()
    other.loc[later, "source"] = rng.permutation(log.loc[later, "source"].to_numpy())
    other = other[other["source"] != other["target"]]
    opts = BacktestOptions(horizon_days=20)
    a = backtest_cutoff(read_log(log), cutoff, opts, config=FAST)
    b = backtest_cutoff(read_log(other), cutoff, opts, config=FAST)
    sa = a.scores.set_index("customer_id").sort_index()
    sb = b.scores.set_index("customer_id").sort_index()
    assert sa.index.equals(sb.index)
    assert not sa["churned"].equals(sb["churned"])
    for col in ("exposure", "influence", "priority", "risk", "degree", "pagerank",
                "recency_frequency", "own_activity_model", "network_model"):
        np.testing.assert_allclose(sa[col], sb[col], err_msg=col)


def test_truth_cascade_target(synthetic: dict[str, pd.DataFrame]) -> None:
    log, truth = synthetic["interactions"], synthetic["truth"]
    t = log["timestamp"].to_numpy()
    cutoff = float(np.quantile(t, 0.55))
    res = run_backtest(log, cutoffs=[cutoff], events=synthetic["events"], truth=truth,
                       customers=synthetic["customers"],
                       options=BacktestOptions(horizon_days=25, min_class=3), config=FAST)
    cut = res.cutoffs[0]
    # the population and the cascade churners, recomputed with pandas
    lo, hi = cutoff - 25 * DAY, cutoff + 25 * DAY
    recent = log[(log["timestamp"] >= lo) & (log["timestamp"] < cutoff)]
    active = set(recent["source"]) | set(recent["target"])
    tr = truth.set_index("customer_id")
    churned_before = set(tr.index[tr["churn_time"] < cutoff])
    pop = active - churned_before
    in_h = tr.index[(tr["churn_time"] >= cutoff) & (tr["churn_time"] < hi)]
    cascade = {c for c in in_h if c in pop and pd.notna(tr.loc[c, "infected_by"])}
    assert cut.labels["population"] == len(pop)
    assert cut.cascade["cascade_churners"] == len(cascade)
    scores = cut.scores.set_index("customer_id")
    assert set(scores.index[scores["cascade_churned"]]) == cascade
    rows = cut.metrics[cut.metrics["target"] == "cascade"]
    assert set(rows["score"]) >= {"exposure", "degree", "own_activity_model", "network_model"}
    assert (rows["churners"] == len(cascade)).all()
    # with a customers table: value captured by K; with timestamps, risk is the analysis's
    # lapse model (a probability, not the exposure formula)
    assert cut.metrics["value_captured_share_at_k"].between(0, 1).all()
    assert scores["risk"].between(0, 1).all()
    assert (scores["risk"] < scores["exposure"]).any()


# ---------------------------------------------------------------------------- CLI
def test_cli_backtest_writes_every_output(tmp_path: Path, datasets: Path) -> None:
    # a real log: the first 40,000 messages of CollegeMsg (about six weeks)
    lines = (datasets / "snap-collegemsg" / "CollegeMsg.txt").read_text().splitlines()[:40000]
    small = tmp_path / "college-head.txt"
    small.write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST_TOML)
    out = tmp_path / "bt"
    result = runner.invoke(app, ["backtest", str(small), "--columns", "source,target,timestamp",
                                 "--cutoff", "2004-05-08,2004-05-15", "--horizon", "7",
                                 "--budget", "25", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "network_model" in result.output and "AUC" in result.output
    for name in ("backtest.json", "metrics.csv", "lift_curve.csv", "scores.parquet",
                 "lift_curve.svg", "lift_curve.png", "backtest.html", "value_capture.csv",
                 "value_capture.svg", "value_capture.png", "value_curves.svg",
                 "value_curves.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["cutoff"]) == {"2004-05-08T00:00:00Z", "2004-05-15T00:00:00Z"}
    assert {"exposure", "influence", "priority", "risk", "degree", "pagerank",
            "recency_frequency", "own_activity_model", "network_model"} <= set(metrics["score"])
    assert {"auc", "auc_low", "auc_high", "lift_1", "lift_5", "lift_10",
            "captured_at_k"} <= set(metrics.columns)
    assert (metrics["budget"] == 25).all()
    assert metrics["auc"].between(0, 1).all()
    curve = pd.read_csv(out / "lift_curve.csv")
    assert list(curve.columns[:4]) == ["score", "fraction", "lift", "captured"]
    scores = pd.read_parquet(out / "scores.parquet")
    meta = json.loads((out / "backtest.json").read_text())
    first = meta["cutoffs"][0]
    assert len(scores[scores["cutoff"] == first["cutoff"]]) == first["labels"]["population"]
    assert first["training"]["cutoff"] == "2004-05-01T00:00:00Z"
    assert first["training"]["trained"] is True
    capture = pd.read_csv(out / "value_capture.csv")
    assert set(capture["score"]) == {"priority", "risk", "value", "degree", "pagerank"}
    assert ((capture["value_low"] <= capture["value_captured"] + 1e-12)
            & (capture["value_captured"] <= capture["value_high"] + 1e-12)).all()
    assert "churned value captured by the top 5%" in result.output
    page = (out / "backtest.html").read_text()
    assert "<svg" in page and "network_model" in page
    assert "Value captured by the top 5%" in page
    assert "Lift and churned value captured by the top K%" in page
    curves = (out / "value_curves.svg").read_text()
    assert curves[curves.find("<svg"):] in page
    for name in ("priority", "risk", "value", "degree", "pagerank"):
        assert f"<!-- {name} -->" in curves, name
    assert curve["value_captured"].between(0, 1).all()
    # nothing fetched from the network: no external src/href, no scripts or stylesheets
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "<script" not in page and "<link" not in page


@pytest.mark.parametrize(("args", "message"), [
    (["--cutoff", "2030-01-01", "--horizon", "7"], "outside the log's time range"),
    (["--cutoff", "2019-12-01", "--horizon", "7"], "outside the log's time range"),
    (["--cutoff", "2020-01-05", "--horizon", "0"], "--horizon must be > 0"),
    (["--cutoff", "2020-01-05", "--horizon", "-3"], "--horizon must be > 0"),
    (["--cutoff", "2020-01-05", "--horizon", "30"], "after the log's last interaction"),
    (["--cutoff", "tomorrow", "--horizon", "7"], "cannot read time"),
    (["--cutoff", "2020-01-05", "--horizon", "2", "--budget", "0"], "--budget must be >= 1"),
])
def test_cli_backtest_bad_inputs(args: list[str], message: str, tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("source,target,timestamp\n" + "".join(
        f"c{i % 7},c{(i * 3 + 1) % 7},2020-01-{1 + i % 10:02d}T10:00:00Z\n" for i in range(60)))
    result = runner.invoke(app, ["backtest", str(log), *args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_backtest_needs_timestamps(tmp_path: Path) -> None:
    log = tmp_path / "no-time.csv"
    log.write_text("source,target\na,b\nb,c\n")
    result = runner.invoke(app, ["backtest", str(log), "--cutoff", "2020-01-01",
                                 "--horizon", "7", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "no-time.csv" in result.output and "timestamp column" in result.output


def test_cli_backtest_help_is_useful_on_its_own() -> None:
    result = runner.invoke(app, ["backtest", "--help"])
    assert result.exit_code == 0
    for word in ("--cutoff", "--horizon", "--events", "--budget", "--truth", "silent"):
        assert word in result.output


def test_value_capture_by_hand_and_its_bootstrap() -> None:
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0] * 4, bool)
    v = np.arange(40, dtype=float) + 1
    good = np.where(y, v, -v)  # churners first, the most valuable first
    bad = -good
    out = bt.value_capture_interval(y, {"good": good, "bad": bad}, v, fraction=0.05,
                                    resamples=300, seed=1).set_index("score")
    k = bt.top_k(40, 0.05)  # 2 contacts
    churned_v = np.sort(v[y])[::-1]
    assert out.loc["good", "value_captured"] == pytest.approx(churned_v[:k].sum()
                                                              / churned_v.sum())
    assert out.loc["bad", "value_captured"] == 0.0
    assert out.loc["good", "value_low"] <= out.loc["good", "value_captured"] \
        <= out.loc["good", "value_high"]
    assert out.loc["good", "diff_to_best_other_low"] > 0  # good beats bad on every resample
    assert out.loc["bad", "diff_to_best_other_high"] < 0


@pytest.mark.parametrize("seed", range(4))
def test_value_captured_curve_is_the_average_over_random_tie_orders(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(7) < 0.5
    y[0] = True
    s = rng.integers(0, 3, 7).astype(float)
    v = rng.exponential(2.0, 7)
    total, count = np.zeros(8), 0
    for perm in itertools.permutations(range(7)):  # every order of the tied customers
        p = np.array(perm)
        order = p[np.argsort(-s[p], kind="stable")]
        total += np.r_[0, np.cumsum((v * y)[order])]
        count += 1
    want = total / count / (v * y).sum()
    curve = bt.lift_curve(y, s, fractions=np.arange(1, 8) / 7, values=v)
    np.testing.assert_allclose(curve["value_captured"], want[curve["k"]], atol=1e-12)
    # at 5% it is value_capture_interval's point estimate
    big_y = rng.random(400) < 0.3
    big_s, big_v = rng.integers(0, 20, 400).astype(float), rng.exponential(1.0, 400)
    at5 = bt.lift_curve(big_y, big_s, fractions=[0.05], values=big_v)["value_captured"][0]
    point = bt.value_capture_interval(big_y, {"s": big_s}, big_v, resamples=10)
    assert at5 == pytest.approx(point["value_captured"][0], abs=1e-12)


def test_cutoffs_are_checked_up_front_and_gaps_reported(tmp_path: Path) -> None:
    rows = [f"c{i % 9},c{(i * 4 + 1) % 9},{int(t)}\n"
            for i, t in enumerate(np.linspace(0, 30 * DAY, 400))]
    rows += [f"c{i % 9},c{(i * 4 + 1) % 9},{int(t)}\n"
             for i, t in enumerate(np.linspace(90 * DAY, 130 * DAY, 400))]
    log = tmp_path / "gap.csv"
    log.write_text("source,target,timestamp\n" + "".join(rows))
    out = tmp_path / "bt"
    # the first cutoff is fine; the second reads the 60 quiet days: nothing is computed
    result = runner.invoke(app, ["backtest", str(log), "--cutoff", "1970-05-01,1970-03-01",
                                 "--horizon", "5", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "overlap a period with no interactions at all" in result.output
    assert "1970-01-31" in result.output  # the gap starts at the last interaction before it
    assert not out.exists()
