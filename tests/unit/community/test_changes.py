"""Run-to-run change: risers checked against a brute-force join, community events on
hand-made runs, and the ``changes`` step inside ``carenet analyze --previous``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from carenet.cli import app
from carenet.community.changes import EVENT_COLUMNS, community_events, rising_customers
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.pipeline import AnalysisRun, analyze

FAST = AnalysisConfig().with_overrides({
    "measures.exact_max": 500, "measures.samples": 64, "influence.epsilon": 0.3,
    "influence.exposure_runs": 300, "influence.compare_runs": 200,
})


def brute_risers(prev: pd.DataFrame, cur: pd.DataFrame, metric: str, top: int) -> pd.DataFrame:
    """The oracle: a plain merge, sorted by change then id."""
    m = prev[["customer_id", metric]].merge(cur[["customer_id", metric]], on="customer_id",
                                            suffixes=("_p", "_c"))
    m["change"] = m[f"{metric}_c"] - m[f"{metric}_p"]
    m = m[m["change"] > 0].sort_values(["change", "customer_id"], ascending=[False, True])
    return m.head(top)


def test_risers_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    ids = [f"c{i:03d}" for i in range(300)]
    prev = pd.DataFrame({"customer_id": ids[:250], "exposure": rng.random(250),
                         "influence": rng.exponential(2, 250)})
    cur = pd.DataFrame({"customer_id": ids[50:], "exposure": rng.random(250),
                        "influence": rng.exponential(2, 250)})
    cur.loc[cur.index[:10], "exposure"] = prev.set_index("customer_id").loc[
        cur["customer_id"].head(10), "exposure"].to_numpy()  # unchanged: never a riser
    out = rising_customers(prev, cur, metrics=["exposure", "influence", "priority"], top=20)
    assert set(out["metric"]) == {"exposure", "influence"}  # priority in neither run: skipped
    for metric in ("exposure", "influence"):
        got = out[out["metric"] == metric]
        want = brute_risers(prev, cur, metric, 20)
        assert got["customer_id"].tolist() == want["customer_id"].tolist()
        assert np.allclose(got["change"], want["change"])
        assert got["rank"].tolist() == list(range(1, len(got) + 1))
        assert (got["current"] - got["previous"]).round(12).tolist() == \
            got["change"].round(12).tolist()
    assert not out["customer_id"].isin(ids[:50]).any()  # gone customers are not compared
    assert not out["customer_id"].isin(ids[250:]).any()  # new customers neither


def test_significance_uses_intervals() -> None:
    prev = pd.DataFrame({"customer_id": ["a", "b"], "influence": [1.0, 1.0],
                         "influence_low": [0.9, 0.9], "influence_high": [1.1, 1.1]})
    cur = pd.DataFrame({"customer_id": ["a", "b"], "influence": [2.0, 1.2],
                        "influence_low": [1.8, 1.05], "influence_high": [2.2, 1.3]})
    out = rising_customers(prev, cur, metrics=["influence"])
    assert out.set_index("customer_id")["significant"].to_dict() == {"a": True, "b": False}
    assert out["relative"].round(3).tolist() == [1.0, 0.2]
    with pytest.raises(InvalidInputError, match="top"):
        rising_customers(prev, cur, top=0)
    with pytest.raises(InvalidInputError, match="customer_id"):
        rising_customers(prev.drop(columns="customer_id"), cur)


def _table(rows: list[tuple[str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "community", "role"])


def test_lost_hub_and_structural_events() -> None:
    prev = _table([("h1", 1, "community hub"), ("a", 1, "member"), ("h2", 2, "connector hub"),
                   ("b", 2, "member"), ("h3", 3, "community hub"), ("c", 3, "member"),
                   ("h4", 4, "community hub"), ("d", 4, "member")])
    cur = _table([("a", 1, "member"),                      # h1 gone from the log
                  ("h2", 5, "member"), ("b", 2, "community hub"),  # h2 moved; b new hub
                  ("h3", 3, "member"), ("c", 3, "member"),  # h3 lost the role
                  ("h4", 4, "community hub"), ("d", 4, "member"),  # unchanged
                  ("e", 5, "member")])
    changes = {"splits": [{"previous": 2, "into": [2, 5]}], "merges": [], "births": [],
               "deaths": []}
    events = community_events(prev, cur, changes)
    assert list(events.columns) == list(EVENT_COLUMNS)
    lost = events[events["kind"] == "lost_hub"].set_index("community")
    assert sorted(lost.index) == [1, 2, 3]  # 4 kept its hub
    assert "h1 is gone" in lost.at[1, "detail"] and "no hub now" in lost.at[1, "detail"]
    assert "h2 moved to community 5" in lost.at[2, "detail"] and "b" in lost.at[2, "detail"]
    assert "h3 is now member" in lost.at[3, "detail"]
    assert events[events["kind"] == "split"]["previous"].tolist() == ["2"]
    # no hubs known (no roles column): only the structural events
    plain = community_events(prev.drop(columns="role"), cur.drop(columns="role"), changes)
    assert plain["kind"].tolist() == ["split"]


@pytest.fixture(scope="module")
def two_runs(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[AnalysisRun, AnalysisRun]:
    """A run on the first four months of the sample, then one on all of it."""
    log = pd.read_csv(sample_dir / "interactions.csv")
    stamp = pd.to_datetime(log["timestamp"], utc=True, format="ISO8601")
    early = tmp_path_factory.mktemp("early") / "interactions.csv"
    log[stamp < stamp.min() + pd.Timedelta(days=120)].to_csv(early, index=False)
    first = analyze(early, customers=sample_dir / "customers.csv",
                    events=sample_dir / "events.csv", config=FAST)
    second = analyze(sample_dir / "interactions.csv", customers=sample_dir / "customers.csv",
                     events=sample_dir / "events.csv", config=FAST, previous=first)
    return first, second


def test_step_adds_tables_consistent_with_both_runs(two_runs: tuple[AnalysisRun, AnalysisRun]
                                                    ) -> None:
    first, second = two_runs
    assert first.results["changes"] is None and "rising_customers" not in first.tables
    risers = second.tables["rising_customers"]
    for metric in ("influence", "exposure"):
        got = risers[risers["metric"] == metric]
        want = brute_risers(first.customers, second.customers, metric, 100)
        assert got["customer_id"].tolist() == want["customer_id"].tolist()
        assert len(got) == 100  # four more months of contact: many rise
    summary = second.results["changes"]
    assert summary["previous_run"] == first.run_id
    both = second.customers["customer_id"].isin(first.customers["customer_id"])
    assert summary["customers_compared"] == int(both.sum())
    assert summary["new_customers"] == int((~both).sum())
    events = second.tables["community_events"]
    kinds = second.results["community_changes"]["counts"]
    for kind in ("split", "merge", "birth", "death"):
        assert (events["kind"] == kind).sum() == kinds[f"{kind}s"]
    assert summary["lost_hubs"] == events.loc[events["kind"] == "lost_hub",
                                              "community"].tolist()


def test_cli_prints_and_saves_changes(two_runs: tuple[AnalysisRun, AnalysisRun],
                                      sample_dir: Path, tmp_path: Path) -> None:
    first, _ = two_runs
    prev_dir = first.save(tmp_path / "first")
    out = tmp_path / "second"
    result = CliRunner().invoke(app, [
        "analyze", str(sample_dir / "interactions.csv"), "--customers",
        str(sample_dir / "customers.csv"), "--events", str(sample_dir / "events.csv"),
        "--out", str(out), "--previous", str(prev_dir), "--exact-max", "500",
        "--no-publish"])
    assert result.exit_code == 0, result.output
    assert "rose since previous" in result.output
    saved = pd.read_csv(out / "rising_customers.csv")
    assert set(saved["metric"]) >= {"influence", "exposure"}
    assert (out / "community_events.parquet").exists()
