"""Proactive care: priority formula, reasons checked number by number against the run's
tables and independent computations, the care plan against other strategies on the generator's
sample (known cascade), the `carenet plan` command and the API serving a real plan."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata
from typer.testing import CliRunner

import carenet
from carenet.cli import app
from carenet.community.care import ROLE_PHRASES, explain, priorities, reasons
from carenet.config import AnalysisConfig, CareConfig
from carenet.errors import InvalidInputError
from carenet.graphs.model import CustomerGraph

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"


@pytest.fixture(scope="module")
def run_and_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    run = carenet.analyze(SAMPLE / "interactions.csv", customers=SAMPLE / "customers.csv",
                          events=SAMPLE / "events.csv")
    path = run.save(tmp_path_factory.mktemp("care") / "run")
    return run, path


# ---------------------------------------------------------------------------- priority
def test_priority_formula_by_hand() -> None:
    c = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d"],
        "exposure": [0.5, 0.2, 0.0, 0.9], "exposure_low": [0.4, 0.1, 0.0, 0.8],
        "exposure_high": [0.6, 0.3, 0.0, 1.0],
        "influence": [3.0, 1.0, 0.0, 5.0],
        "value": [100.0, np.nan, 50.0, 10.0],
        "value_influence": [200.0, 10.0, 0.0, 40.0],
        "value_influence_low": [150.0, 5.0, 0.0, 30.0],
        "value_influence_high": [250.0, 15.0, 0.0, 50.0],
        "churn_score": [0.2, 1.7, np.nan, 0.1],
        "exposure_seed": [False, False, True, False],
    })
    p = priorities(c, retention=0.4, source_risk=0.5, lost=np.array([0, 0, 0, 1], bool),
                   missing_value=7.0)
    risk_a = 1 - 0.5 * 0.8
    assert p.risk[0] == pytest.approx(risk_a)
    assert p.risk[1] == pytest.approx(1.0)            # churn score clipped to 1
    assert p.risk[2] == pytest.approx(1 - 0.5 * 1.0)  # recent complaint: source_risk 0.5
    assert p.priority[0] == pytest.approx(0.4 * risk_a * (100 + 200))
    assert p.priority[1] == pytest.approx(0.4 * 1.0 * (7 + 10))  # missing value -> 7
    assert p.priority[3] == 0.0                        # already churned
    assert p.priority_low[0] == pytest.approx(0.4 * (1 - 0.6 * 0.8) * (100 + 150))
    assert p.priority_high[0] == pytest.approx(0.4 * (1 - 0.4 * 0.8) * (100 + 250))
    assert (p.priority_low <= p.priority).all() and (p.priority <= p.priority_high).all()
    assert p.rank.tolist() == [1, 3, 2, 4]
    # unit values: the carried value is the influence
    u = priorities(c, retention=0.4, use_values=False)
    assert u.unit_values and u.priority[0] == pytest.approx(0.4 * risk_a * (1 + 3.0))
    with pytest.raises(InvalidInputError):
        priorities(c, retention=0.0)


def test_rank_ties_break_by_id() -> None:
    c = pd.DataFrame({"customer_id": ["z", "a", "m"], "exposure": [0.5] * 3,
                      "influence": [1.0] * 3})
    assert priorities(c).rank.tolist() == [3, 1, 2]


def test_reasons_on_a_small_graph_by_hand() -> None:
    g = CustomerGraph.from_edges(["a", "b", "c", "d"], [0, 1, 0, 2, 3], [1, 0, 2, 0, 0],
                                 [3.0, 1.0, 2.0, 2.0, 2.0])
    c = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "exposure": [0.4, 0.1, 0.2, 0.0],
                      "influence": [2.0, 0.5, 0.1, 0.0], "churn_score": [0.1, 0.0, 0.0, 0.3],
                      "community": [1, 1, 2, 2], "role": ["connector hub", "member",
                                                          "bridge", "peripheral"],
                      "risk": [0.46, 0.1, 0.2, 0.3]})
    src = pd.DataFrame({"customer_id": ["a", "a"], "rank": [1, 2], "source_id": ["d", "b"],
                        "share": [0.5, 0.25]})
    recent = np.array(["", "complaint", "", "churn"], dtype=object)
    r = reasons(g, c, [0], exposure_sources=src, recent_event=recent, ties=2,
                lookback="30d").iloc[0]
    # a's ties: b 3 + 1 = 4, c 2 + 2 = 4, d 2: total 10; ties broken by position (b first)
    assert r["contacts"] == 3 and r["interaction_weight"] == pytest.approx(10.0)
    assert (r["tie_1_id"], r["tie_1_share"]) == ("b", pytest.approx(0.4))
    assert (r["tie_2_id"], r["tie_2_share"]) == ("c", pytest.approx(0.4))
    assert r["drivers"] == 2 and r["driver_ids"] == "d,b"
    assert r["driver_events"] == "churn,complaint" and r["driver_share"] == pytest.approx(0.75)
    assert r["influence_top"] == 1 and r["exposure_top"] == 1  # the largest of 4: top 1%
    assert r["community_size"] == 2
    assert r["reason"] == (
        "Risk 0.46 (exposure 0.40, churn score 0.10); contacts 3 customers in community 1, "
        "where they are a connector hub; strongest ties b (40%), c (40%) of their interaction "
        "weight; 2 customers with a recent complaint, churn or lapse (d churn, b complaint) account "
        "for 75% of their exposure; influence top 1%, exposure top 1%.")
    lost = reasons(g, c, [3], recent_event=recent, lost=np.array([0, 0, 0, 1], bool)).iloc[0]
    assert lost["reason"].startswith("Already churned")


# ---------------------------------------------------------------------------- the step
def test_step_columns_and_tables(run_and_dir: tuple[Any, Path]) -> None:
    run, _ = run_and_dir
    c = run.customers
    n = len(c)
    for col in ("risk", "priority", "priority_low", "priority_high", "priority_rank",
                "plan_rank", "reason"):
        assert col in c, col
    assert sorted(c["priority_rank"]) == list(range(1, n + 1))
    by_rank = c.sort_values("priority_rank")["priority"].to_numpy()
    assert (np.diff(by_rank) <= 1e-12).all()
    assert ((c.risk >= 0) & (c.risk <= 1)).all()
    assert ((c.priority_low <= c.priority + 1e-9) & (c.priority <= c.priority_high + 1e-9)).all()
    plan = run.tables["care_plan"]
    assert list(plan.columns[:10]) == ["customer_id", "rank", "priority", "gain", "protected",
                                       "protected_low", "protected_high", "reason",
                                       "community", "role"]
    assert len(plan) == CareConfig().budget and plan["rank"].tolist() == list(range(1, 201))
    in_plan = c[c.plan_rank > 0].sort_values("plan_rank")
    assert in_plan["customer_id"].tolist() == plan["customer_id"].tolist()
    assert (np.diff(plan["protected"]) >= -1e-9).all() and (plan["gain"] >= -1e-9).all()
    assert np.allclose(plan["gain"].cumsum(), plan["protected"])
    # churned customers are never in the plan and have priority 0
    churned = set(run.events.loc[run.events.event == "churn", "customer_id"])
    assert not churned & set(plan["customer_id"])
    assert (c[c.customer_id.isin(churned)]["priority"] == 0).all()
    # every plan member and the top customers by priority are explained
    assert (plan["reason"].str.len() > 20).all()
    assert (c[c.priority_rank <= 100]["reason"].str.len() > 20).all()
    assert len(run.tables["care_reasons"]) == run.results["care"]["explained"]
    comp = run.tables["care_comparison"]
    assert set(comp["strategy"]) == {"plan", "priority", "degree", "pagerank", "random"}
    assert run.results["care"]["plan"]["planned"] == 200


def _parse(sentence: str) -> dict[str, Any]:
    m = re.match(r"Risk (\d\.\d\d) \(exposure (\d\.\d\d), churn score (\d\.\d\d)\)", sentence)
    assert m, sentence
    out: dict[str, Any] = {"risk": m[1], "exposure": m[2], "churn": m[3]}
    m = re.search(r"contacts (\d+) customers? in community (\d+), where they are ([^;]+);",
                  sentence)
    assert m, sentence
    out |= {"contacts": int(m[1]), "community": int(m[2]), "role": m[3]}
    m = re.search(r"strongest ties (.+?) of their interaction weight", sentence)
    assert m, sentence
    out["ties"] = [(a, int(b)) for a, b in re.findall(r"(\S+) \((\d+)%\)", m[1])]
    m = re.search(r"(\d+) customers? with a recent complaint, churn or lapse \((.+?)\) account for "
                  r"(\d+)% of their exposure", sentence)
    out["drivers"] = None if m is None else (
        int(m[1]), [tuple(x.split(" ")) for x in m[2].split(", ")], int(m[3]))
    m = re.search(r"influence top (\d+)%, exposure top (\d+)%\.$", sentence)
    assert m, sentence
    out |= {"influence_top": int(m[1]), "exposure_top": int(m[2])}
    return out


def test_top_100_plan_reasons_match_the_tables(run_and_dir: tuple[Any, Path]) -> None:
    run, _ = run_and_dir
    c = run.customers.set_index("customer_id")
    n = len(c)
    g = run.graph
    nxg = g.to_networkx()
    strength = c["strength_in"] + c["strength_out"]
    infl_top = np.maximum(1, np.ceil(np.round(100 - rankdata(c["influence"]) / n * 100, 9)))
    expo_top = np.maximum(1, np.ceil(np.round(100 - rankdata(c["exposure"]) / n * 100, 9)))
    tops = dict(zip(c.index, zip(infl_top, expo_top, strict=True), strict=True))
    src = run.tables["exposure_sources"]
    ev = run.events
    ref = g.reference_time
    recent = ev[ev.event.isin(["churn", "complaint"]) & (ev.timestamp <= ref)
                & (ev.timestamp >= ref - 90 * 86400)].sort_values("timestamp")
    last_kind = recent.groupby("customer_id")["event"].last()
    structured = run.tables["care_reasons"].set_index("customer_id")
    with_drivers = 0
    for cid in run.tables["care_plan"]["customer_id"].head(100):
        row = c.loc[cid]
        u = int(g.index_of(np.array([cid]))[0])
        got = _parse(row["reason"])
        assert got["risk"] == f"{row['risk']:.2f}"
        assert got["exposure"] == f"{row['exposure']:.2f}"
        assert got["churn"] == f"{min(1, max(0, row['churn_score'])):.2f}"
        nbrs = set(nxg.successors(u)) | set(nxg.predecessors(u))
        assert got["contacts"] == len(nbrs) == structured.loc[cid, "contacts"]
        assert got["community"] == row["community"]
        assert got["role"] == ROLE_PHRASES[row["role"]]
        both = {str(g.ids[v]): (nxg[u][v]["weight"] if nxg.has_edge(u, v) else 0.0)
                + (nxg[v][u]["weight"] if nxg.has_edge(v, u) else 0.0) for v in nbrs}
        shown = [v for v, _ in got["ties"]]
        assert len(shown) == min(3, len(nbrs))
        for v, pct in got["ties"]:
            assert pct == round(both[v] / strength[cid] * 100) or \
                f"{both[v] / strength[cid]:.0%}" == f"{pct}%"
        weakest_shown = min(both[v] for v in shown)
        assert all(w <= weakest_shown + 1e-9 for v, w in both.items() if v not in shown)
        rows = src[src.customer_id == cid].sort_values("rank")
        if got["drivers"] is None:
            assert len(rows) == 0
        else:
            with_drivers += 1
            k, pairs, share = got["drivers"]
            assert k == len(rows) == structured.loc[cid, "drivers"]
            assert [p[0] for p in pairs] == rows["source_id"].tolist()
            # a source without a recent event is a customer who lapsed (the risk step)
            lapsed = set(c.index[c["lapsed"].astype(bool)])
            assert [p[1] for p in pairs] == [last_kind.get(s, "lapsed" if s in lapsed else "?")
                                             for s in rows["source_id"]]
            assert f"{share}%" == f"{rows['share'].sum():.0%}"
        assert (got["influence_top"], got["exposure_top"]) == tops[cid]
    assert with_drivers >= 50


@pytest.mark.slow
def test_plan_beats_priority_degree_and_pagerank(run_and_dir: tuple[Any, Path]) -> None:
    comp = run_and_dir[0].tables["care_comparison"].set_index(["strategy", "k"])
    for k in (10, 50, 200):
        plan = comp.loc[("plan", k)]
        for other in ("priority", "degree", "pagerank", "random"):
            o = comp.loc[(other, k)]
            assert plan["low"] > o["high"], (k, other, plan.to_dict(), o.to_dict())
            assert o["vs_plan_high"] < 0


def test_explain_any_customer_equals_its_reason(run_and_dir: tuple[Any, Path]) -> None:
    run, _ = run_and_dir
    c = run.customers
    explained = c[c.reason != ""].iloc[[0, 7, 42]]
    for cid, reason in zip(explained.customer_id, explained.reason, strict=True):
        d = explain(run.graph, c, cid, exposure_sources=run.tables["exposure_sources"],
                    events=run.events)
        assert d["reason"] == reason and d["customer_id"] == cid
    beyond = c.sort_values("priority_rank").customer_id.iloc[-1]
    assert explain(run.graph, c, beyond, events=run.events)["reason"]
    with pytest.raises(carenet.errors.RunNotFoundError):
        explain(run.graph, c, "nobody")


def test_cli_plan_writes_a_crm_file(run_and_dir: tuple[Any, Path], tmp_path: Path) -> None:
    run, path = run_and_dir
    cli = CliRunner()
    res = cli.invoke(app, ["plan", str(path), "--budget", "20", "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    got = pd.read_csv(tmp_path / "p.csv")
    assert list(got.columns[:6]) == ["customer_id", "rank", "priority", "reason", "community",
                                     "role"]
    want = run.tables["care_plan"].head(20)
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    assert "pagerank" in res.output and "the run's plan" in res.output
    # a larger budget than the run's plan is computed from the run's tables
    res = cli.invoke(app, ["plan", str(path), "--budget", "250", "--runs", "20",
                           "--evaluation-runs", "50", "--compare", "10,250",
                           "--out", str(tmp_path / "p.parquet")])
    assert res.exit_code == 0, res.output
    big = pd.read_parquet(tmp_path / "p.parquet")
    assert len(big) == 250 and (big["reason"].str.len() > 20).all()
    assert big["rank"].tolist() == list(range(1, 251))
    res = cli.invoke(app, ["plan", str(SAMPLE / "interactions.csv"), "--budget", "5"])
    assert res.exit_code == 2 and "not a run directory" in res.output
    res = cli.invoke(app, ["plan", str(path), "--out", str(tmp_path / "p.xlsx")])
    assert res.exit_code == 2 and ".csv or .parquet" in res.output


def test_care_config() -> None:
    cfg = AnalysisConfig.from_mapping({"care": {"retention": 0.5, "budget": 10,
                                                "churn_col": "none", "compare_k": "5,10"}})
    assert cfg.care.retention == 0.5 and cfg.care.churn_col is None
    assert cfg.care.compare_k == (5, 10)
    for bad in ({"retention": 0}, {"retention": 1.5}, {"budget": -1}, {"evaluation_runs": 1},
                {"source_risk": 2}, {"colour": 1}):
        with pytest.raises(InvalidInputError):
            AnalysisConfig.from_mapping({"care": bad})


def test_small_run_without_events_or_values() -> None:
    log = pd.DataFrame({"source": list("abcdeabc"), "target": list("bcdeacde")})
    run = carenet.analyze(log, config=AnalysisConfig.from_mapping(
        {"care": {"budget": 3, "plan_runs": 10, "evaluation_runs": 20}}))
    c = run.customers
    assert (c.priority >= 0).all() and math.isclose(c.risk.max(), 0.0)
    assert run.results["care"]["values"] == "unit"
    # nothing is at risk: nobody gains from a contact, so the plan is empty (and says so)
    plan = run.results["care"]["plan"]
    assert plan["planned"] == 0 and plan["value_at_risk"] == 0.0
    assert len(run.tables["care_plan"]) == 0 and (c.plan_rank == 0).all()


def test_api_serves_the_runs_care_plan(run_and_dir: tuple[Any, Path], tmp_path: Path) -> None:
    from servicekit import Server, fresh_db

    from carenet.store import RunStore

    run, _ = run_and_dir
    with fresh_db("sqlite", tmp_path) as url:
        store = RunStore(url)
        rid = store.publish(run)
        key = store.create_key("reader", "care test")[1]
        server = Server(url, tmp_path).start()
        try:
            with httpx.Client(base_url=server.url, timeout=30,
                              headers={"Authorization": f"Bearer {key}"}) as c:
                body = c.get("/v1/care-plan", params={"budget": 5}).json()
                assert body["run"] == rid and body["available"] == 200
                plan = run.tables["care_plan"].head(5)
                assert [i["customer_id"] for i in body["items"]] == plan["customer_id"].tolist()
                assert [i["reason"] for i in body["items"]] == plan["reason"].tolist()
                assert body["items"][0]["protected"] == pytest.approx(plan["protected"].iloc[0])
                first = plan["customer_id"].iloc[0]
                doc = c.get(f"/v1/customers/{first}").json()
                row = run.customers.set_index("customer_id").loc[first]
                assert doc["priority"] == pytest.approx(row["priority"])
                assert doc["reason"] == row["reason"]
                top = c.get("/v1/customers", params={"sort": "priority", "limit": 1}).json()
                assert top["items"][0]["customer_id"] == run.customers.sort_values(
                    "priority_rank").customer_id.iloc[0]
                assert c.get("/v1/care-plan", params={"budget": 201}).status_code == 422
        finally:
            server.stop()
            store.close()


def _random_plan_model() -> tuple[CustomerGraph, Any, np.random.Generator]:
    """An 80-customer random graph with its blocking model, and the generator that made them
    (the evaluation tests draw their priorities from it next)."""
    from carenet.community.care import blocking_model

    rng = np.random.default_rng(3)
    n = 80
    pairs = {(int(a), int(b)) for a, b in rng.integers(0, n, size=(320, 2)) if a != b}
    src, dst = map(list, zip(*sorted(pairs), strict=True))
    g = CustomerGraph.from_edges([f"c{i:02d}" for i in range(n)], src, dst,
                                 rng.uniform(0.5, 3.0, len(src)).tolist())
    seeds = rng.random(n) < 0.1
    model = blocking_model(g, values=rng.uniform(1, 5, n), churn=rng.uniform(0, 0.2, n),
                           seeds=seeds, lost=np.zeros(n, bool), retention=0.5)
    return g, model, rng


def test_evaluation_with_an_error_target_is_its_first_realisations() -> None:
    from carenet.community.care import care_plan

    g, model, rng = _random_plan_model()
    n = g.n_customers
    prio = rng.random(n)
    kw: dict[str, Any] = {"priority": prio, "runs": 60, "compare_k": (2, 5), "seed": 4}
    adaptive = care_plan(g, model, 8, evaluation_runs=20_000, evaluation_error=0.03,
                         evaluation_min_runs=50, **kw)
    ev = adaptive.parameters["evaluation"]
    assert ev["stopped"] == "error target met" and ev["error"] <= 0.03
    assert 50 <= ev["runs"] < 20_000 and adaptive.evaluation_runs == ev["runs"]
    fixed = care_plan(g, model, 8, evaluation_runs=ev["runs"], **kw)
    assert fixed.parameters["evaluation"]["stopped"] == "fixed runs"
    pd.testing.assert_frame_equal(adaptive.comparison, fixed.comparison)
    assert np.array_equal(adaptive.protected, fixed.protected)
    # the error reported is the largest half-width at the budget relative to the plan's value
    at_budget = adaptive.comparison[adaptive.comparison["k"] == 8].set_index("strategy")
    half = (at_budget["high"] - at_budget["low"]) / 2
    assert half.max() / at_budget.loc["plan", "protected"] == pytest.approx(ev["error"])
    # with a plan error target the greedy says how many realisations it used and why
    p = care_plan(g, model, 8, evaluation_runs=50, plan_error=0.05, plan_min_runs=20,
                  **(kw | {"runs": 5000}))
    assert p.parameters["plan"]["stopped"] == "error target met"
    assert p.parameters["plan"]["error"] <= 0.05 and 20 <= p.runs < 5000
    # one realisation has no interval: run.json says None rather than an infinity
    import json
    one = care_plan(g, model, 3, evaluation_runs=10, **(kw | {"runs": 1}))
    assert one.parameters["plan"]["error"] is None
    json.dumps(one.to_dict(), allow_nan=False)


def test_run_json_reports_every_error_target(run_and_dir: tuple[Any, Path]) -> None:
    run, _ = run_and_dir
    infl = run.results["influence"]
    parts = [infl["influence"]["estimate"], infl["influence"]["value_estimate"],
             infl["seed_set"], infl["seed_set_comparison_estimate"],
             run.results["care"]["plan"]["parameters"]["plan"],
             run.results["care"]["plan"]["parameters"]["evaluation"]]
    for part in parts:
        assert {"error_target", "error", "stopped"} <= set(part), part
        assert part["stopped"] in ("error target met", "max runs reached", "fixed runs",
                                   "max_rr_sets reached", "max_entries reached"), part
    comp = infl["seed_set_comparison_estimate"]
    assert comp["error_target"] == 0.01 and comp["runs"] <= 2000
    ev = run.results["care"]["plan"]["parameters"]["evaluation"]
    assert ev["error_target"] == CareConfig().evaluation_error and ev["runs"] <= 1000
    assert run.results["care"]["plan"]["evaluation_runs"] == ev["runs"]
    assert run.results["care"]["plan"]["parameters"]["plan"]["ties_shared_with_exposure"]
    assert infl["seed_set"]["shared_rr_sets"]


def test_evaluation_work_budget_stops_the_evaluation() -> None:
    from carenet.community.care import care_plan

    g, model, rng = _random_plan_model()
    n = g.n_customers
    kw: dict[str, Any] = {"priority": rng.random(n), "runs": 60, "compare_k": (2, 5),
                          "seed": 4, "evaluation_runs": 20_000, "evaluation_error": 0.03,
                          "evaluation_min_runs": 50}
    free = care_plan(g, model, 8, **kw)
    ev = free.parameters["evaluation"]
    assert ev["stopped"] == ev["stop_reason"] == "error target met" and ev["runs"] > 100
    # the work is customers reached x strategies: 5 strategies, at most n customers each
    assert 0 < ev["work"] <= ev["runs"] * 5 * n and ev["work_budget"] is None
    # a budget of about twice the first round's work binds: fewer realisations than the
    # error target needs, the error reached (above the target) is reported
    budget = int(ev["work"] / ev["runs"] * 50 * 2)
    tight = care_plan(g, model, 8, evaluation_work=budget, **kw)
    et = tight.parameters["evaluation"]
    assert et["stopped"] == et["stop_reason"] == "budget" and et["work_budget"] == budget
    assert 50 <= et["runs"] < ev["runs"] and et["error"] > et["error_target"] == 0.03
    assert tight.evaluation_runs == et["runs"]
    # they are the first realisations of the longer evaluation (same coins)
    fixed = care_plan(g, model, 8, **(kw | {"evaluation_runs": et["runs"],
                                            "evaluation_error": None}))
    pd.testing.assert_frame_equal(tight.comparison, fixed.comparison)
    # a budget that does not bind changes nothing
    loose = care_plan(g, model, 8, evaluation_work=10 * ev["work"], **kw)
    pd.testing.assert_frame_equal(loose.comparison, free.comparison)
    assert loose.parameters["evaluation"]["stopped"] == "error target met"
    with pytest.raises(InvalidInputError):
        care_plan(g, model, 8, evaluation_work=-1, **kw)


def test_cli_summary_says_when_a_work_budget_binds(tmp_path: Path) -> None:
    # tiny budgets in the config file: the summary names the budget and the missed target
    toml = tmp_path / "analysis.toml"
    toml.write_text("[influence]\nmax_rr_members = 50\n[care]\nevaluation_work = 10\n"
                    "evaluation_min_runs = 10\n")
    result = CliRunner().invoke(app, [
        "analyze", str(SAMPLE / "interactions.csv"), "--customers", str(SAMPLE / "customers.csv"),
        "--events", str(SAMPLE / "events.csv"), "--config", str(toml),
        "--out", str(tmp_path / "run")], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    # the summary is a table: a narrow terminal wraps a cell over lines, so read it without
    # the table's borders (the continuation lines' other cells are empty)
    text = " ".join(re.sub(r"[\u2500-\u257f]", " ", result.output).split())
    assert text.count("stopped by the work budget, target") >= 3, text  # RIS, IMM, evaluation
    ev = carenet.AnalysisRun.load(tmp_path / "run").results["care"]["plan"]["parameters"]["evaluation"]
    assert ev["stop_reason"] == "budget" and ev["work_budget"] == 10 and ev["runs"] == 10
    # with the defaults nothing binds on the sample (test_run_json_reports_every_error_target)
