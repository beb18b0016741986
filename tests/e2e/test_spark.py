"""The Spark engine (carenet.spark) against the local engine, on real data, in local[2] mode.

One Spark session for the whole file; four full analyses (CollegeMsg local and Spark, a
generated 5k-customer log with bad rows plus customers and events tables through the CLI, the
same locally) and one forced-distributed analysis of CollegeMsg (influence and exposure as
Spark tasks, against the local influence step), both Spark runs published to one real store
and served by one server, each computed once in a module fixture and shared by the tests; plus
loads of CSV, Parquet, JSON Lines and SNAP-style files read in many small batches (node
positions). The 100k-customer
parity check is a script (benchmarks/spark_parity.py, benchmarks/spark.py --sizes 1M): too
slow for CI.

Oracles: the local loader and engine (ids, ties, weights, rejects, degree, PageRank), carenet's
local PageRank at a tight tolerance (L1 < 1e-6), a numpy synchronous label propagation with the
same tie rule, scipy's connected components, the local influence step (RIS and exposure with
the same seeds: bit for bit). Where pyspark or Java is missing these tests skip,
except with CARENET_REQUIRE_SPARK=1 (CI), where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from servicekit import PG_ENV, Server, fresh_db
from typer.testing import CliRunner

from carenet.cli import app
from carenet.config import AnalysisConfig
from carenet.graphs import centrality as cen
from carenet.graphs import tables
from carenet.graphs.build import load_network
from carenet.graphs.logs import LogOptions
from carenet.graphs.tables import ReadOptions
from carenet.pipeline import analyze
from carenet.run import AnalysisRun
from carenet.spark.distributed import label_propagation_reference
from carenet.spark.engine import analyze_and_publish_spark, analyze_spark
from carenet.spark.load import load_logs, rejects_frame
from carenet.spark.sampling import distributed_influence
from carenet.spark.session import to_pandas
from carenet.store import RunStore
from carenet.synthetic import GeneratorConfig, SyntheticCommunity, generate

COLLEGE_PATH = Path("snap-collegemsg") / "CollegeMsg.txt"  # under the shared datasets
# centralities only: the steps after them are the same local code on the same graph
STEPS = ["centrality"]
BASE = {"measures": {"measures": ["pagerank"]}}


def _spark_or_skip() -> None:
    missing = []
    if importlib.util.find_spec("pyspark") is None:
        missing.append("pyspark (pip install 'carenet[spark]')")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        missing.append("java (scripts/ensure-java.sh)")
    if missing:
        why = "the Spark tests need " + " and ".join(missing)
        if os.environ.get("CARENET_REQUIRE_SPARK") == "1":
            pytest.fail(why + " (CARENET_REQUIRE_SPARK=1: never skipped here)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    _spark_or_skip()
    from carenet.spark.session import get_session

    session = get_session("local[2]")
    yield session
    session.stop()


# ------------------------------------------------------------------ CollegeMsg, driver path
@dataclass
class Pair:
    local: AnalysisRun
    spark: AnalysisRun


@pytest.fixture(scope="module")
def college(spark: Any, datasets: Path) -> Pair:
    college_log = datasets / COLLEGE_PATH
    assert college_log.exists(), f"shared dataset missing: {college_log}"
    cfg = AnalysisConfig.from_mapping(BASE)
    local = analyze(college_log, config=cfg, steps=STEPS)
    run = analyze_spark([college_log], config=cfg, steps=STEPS, spark=spark)
    assert isinstance(run, AnalysisRun)
    return Pair(local, run)


def _assert_same_run(pair: Pair) -> None:
    a, b = pair.local, pair.spark
    ga, gb = a.graph, b.graph
    # the same ids at the same positions, the same ties in the same CSR order
    assert ga.ids.tolist() == gb.ids.tolist()
    np.testing.assert_array_equal(ga.indptr, gb.indptr)
    np.testing.assert_array_equal(ga.indices, gb.indices)
    np.testing.assert_array_equal(ga.counts, gb.counts)
    np.testing.assert_array_equal(ga.channels, gb.channels)
    assert ga.channel_names == gb.channel_names
    np.testing.assert_allclose(gb.weights, ga.weights, rtol=1e-9, atol=0)
    assert ga.reference_time == pytest.approx(gb.reference_time, abs=1e-6)
    assert ga.half_life == gb.half_life
    for col in ("degree_in", "degree_out", "interactions_sent", "interactions_received"):
        np.testing.assert_array_equal(a.customers[col].to_numpy(), b.customers[col].to_numpy())
    for col in ("strength_in", "strength_out"):
        np.testing.assert_allclose(b.customers[col], a.customers[col], rtol=1e-9, atol=1e-300)
    pa_, pb = a.customers["pagerank"].to_numpy(), b.customers["pagerank"].to_numpy()
    assert np.abs(pa_ - pb).sum() < 1e-6
    for k in ("rows_read", "rows_loaded", "rows_rejected", "rejected", "customers", "ties"):
        assert a.counts[k] == b.counts[k], k


def test_collegemsg_driver_path_matches_the_local_engine(college: Pair) -> None:
    assert college.local.counts["customers"] == 1899
    assert college.local.counts["ties"] == 20296
    _assert_same_run(college)
    eng = college.spark.results["engine"]
    assert eng["name"] == "spark" and eng["path"] == "driver"
    assert "collect_max_ties" in eng["reason"] and eng["ties"] == 20296
    first = college.local.customers["first_seen"].to_numpy()
    np.testing.assert_array_equal(first, college.spark.customers["first_seen"].to_numpy())


def test_the_spark_run_saves_and_loads_as_any_run(college: Pair, tmp_path: Path) -> None:
    college.spark.save(tmp_path / "run")
    back = AnalysisRun.load(tmp_path / "run")
    assert back.results["engine"]["path"] == "driver"
    assert back.parameters["engine"]["name"] == "local"  # engine chosen by the caller here
    np.testing.assert_array_equal(back.graph.indices, college.local.graph.indices)


# ------------------------------------------------------------------ generated log, through CLI
BAD_ROWS = [
    ",C000001,2026-02-01T00:00:00Z,call,1.0",          # missing_id (source)
    "C000002,C000002,2026-02-01T00:00:00Z,call,1.0",   # self_interaction
    "C000003,C000004,not-a-time,call,1.0",             # bad_timestamp
    "C000003,C000004,,call,1.0",                       # missing_timestamp
    "C000005,C000006,2026-02-01T00:00:00Z,call,-1",    # negative_weight
    "C000005,C000006,2026-02-01T00:00:00Z,call,abc",   # bad_weight
    "C000005,C000006,2026-02-01T00:00:00Z,call,",      # missing_weight
    "C000005,C000006,2026-02-01T00:00:00Z,call,nan",   # nonfinite_weight
    "C000007,C000008,2026-02-01T00:00:00Z,carrier-pigeon,1.0",  # unknown_channel
    "C000007,C000008,2026-02-01T00:00:00Z,,1.0",       # missing_channel
    "C000009,C000010,2026-02-01T00:00:00Z,call,1.0,extra",  # malformed_row
]
GEN_CONFIG = """
seed = 7
[graph]
half_life = "14d"
channels = ["call", "sms", "chat", "email", "forum", "referral"]
channel_weights = { call = 2.0, sms = 0.5 }
[measures]
measures = ["pagerank"]
[communities]
algorithm = "label_propagation"
[influence]
epsilon = 0.5
top = 10
seed_set_size = 0
exposure_runs = 200
[lapse]
seeds = false
[care]
enabled = false
"""
BAD_CUSTOMERS = [
    "C000001,10.0,consumer,5,0.1",      # duplicate_customer (C000001 is in the table)
    ",5.0,consumer,5,0.1",              # missing_id
    "FRESH1,-3,consumer,5,0.1",         # bad_value
    "FRESH2,3,consumer,5,1.5",          # bad_churn_score
    "NEWCOMER,7.5,enterprise,1,0.2",    # only in the customers table: an isolated customer
]
BAD_EVENTS = [
    "NOBODY,churn,2026-02-01T00:00:00Z",   # unknown_customer
    "C000001,,2026-02-01T00:00:00Z",       # missing_event
    "C000001,complaint,yesterday",         # bad_timestamp
    "NEWCOMER,complaint,2026-02-02T00:00:00Z",
]


@dataclass
class Generated:
    log: Path
    local: AnalysisRun
    spark: AnalysisRun
    out: Path
    db: str
    tmp: Path


def _backend() -> str:
    return "postgresql" if os.environ.get(PG_ENV) else "sqlite"


@pytest.fixture(scope="module")
def gen_data() -> SyntheticCommunity:
    return generate(GeneratorConfig(customers=5000, interactions=40_000, seed=3))


def _with_rows(path: Path, rows: list[str], every: int) -> Path:
    lines = path.read_text().splitlines()
    # bad rows spread through the file, so line numbers are checked away from the ends
    for i, row in enumerate(rows):
        lines.insert(min(len(lines), 100 + every * i), row)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def generated(spark: Any, gen_data: SyntheticCommunity,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    tmp = tmp_path_factory.mktemp("spark-gen")
    log = tmp / "interactions.csv"
    gen_data.interactions.to_csv(log, index=False)
    _with_rows(log, BAD_ROWS, 1000)
    customers = tmp / "customers.csv"
    gen_data.customers.to_csv(customers, index=False)
    _with_rows(customers, BAD_CUSTOMERS, 300)
    events = tmp / "events.csv"
    gen_data.events.to_csv(events, index=False)
    _with_rows(events, BAD_EVENTS, 20)
    conf = tmp / "analysis.toml"
    conf.write_text(GEN_CONFIG + '[engine]\nname = "spark"\n')
    local = analyze(log, customers=customers, events=events,
                    config=AnalysisConfig.from_toml(conf).with_overrides(
                        {"engine.name": "local"}))
    out = tmp / "run"
    # the store both Spark runs (this one and the forced-distributed one) are published to and
    # served from, by one server: PostgreSQL when the tests have one
    with fresh_db(_backend(), tmp) as url:
        res = CliRunner().invoke(app, ["analyze", str(log), "--config", str(conf), "--out",
                                       str(out), "--db", url, "--quiet",
                                       "--customers", str(customers), "--events", str(events),
                                       "--spark-conf", "spark.sql.shuffle.partitions=4"])
        assert res.exit_code == 0, res.output
        assert "published run" in res.output
        yield Generated(log, local, AnalysisRun.load(out), out, url, tmp)


def test_generated_log_with_bad_rows_matches_the_local_engine(generated: Generated) -> None:
    pair = Pair(generated.local, generated.spark)
    _assert_same_run(pair)
    assert generated.spark.results["engine"]["path"] == "driver"
    assert generated.spark.parameters["engine"]["name"] == "spark"
    assert generated.local.counts["rows_rejected"] >= len(BAD_ROWS)
    # the same communities: label propagation is deterministic given the same graph and seed
    np.testing.assert_array_equal(generated.local.customers["community"].to_numpy(),
                                  generated.spark.customers["community"].to_numpy())


def test_influence_of_the_spark_run_lies_within_the_local_intervals(
        generated: Generated) -> None:
    a, b = generated.local.customers, generated.spark.customers
    assert a["influence"].notna().all() and (a["influence_high"] > a["influence_low"]).any()
    inside = (b["influence"] >= a["influence_low"]) & (b["influence"] <= a["influence_high"])
    assert inside.all(), a.loc[~inside, ["customer_id", "influence_low", "influence_high"]]
    for col in ("exposure", "lapse_risk"):  # the same seeds, lapses and risk model
        if col in a:
            np.testing.assert_allclose(b[col].to_numpy(float), a[col].to_numpy(float),
                                       rtol=1e-9, atol=1e-12, err_msg=col)
    assert "collected" in generated.spark.results["engine"]["interactions"]


def test_influence_and_exposure_as_spark_tasks_equal_the_local_run(
        spark: Any, generated: Generated) -> None:
    """The distributed path's sampling (RR sets and exposure worlds as Spark tasks over a
    broadcast graph) on the generated log's graph, with its values and event seeds: the
    local run's columns and attribution table, bit for bit (the same streams)."""
    local = generated.local
    cfg = AnalysisConfig.from_toml(generated.tmp / "analysis.toml")
    sampled = distributed_influence(spark, local.graph, cfg, local.customers, local.events,
                                    tasks=3)
    assert {"influence", "value_influence", "exposure"} <= set(sampled.columns)
    for col, values in sampled.columns.items():
        np.testing.assert_array_equal(values, local.customers[col].to_numpy(), err_msg=col)
    assert local.customers["exposure_seed"].sum() > 0 and local.customers["exposure"].max() > 0
    pd.testing.assert_frame_equal(sampled.tables["exposure_sources"],
                                  local.tables["exposure_sources"])
    est = sampled.results["influence"]["estimate"]
    assert est["rr_sets"] == local.results["influence"]["influence"]["estimate"]["rr_sets"]
    ris, worlds = sampled.engine["influence"], sampled.engine["exposure"]
    assert ris["jobs"] >= 2 and ris["tasks"] == 3 * ris["jobs"] and worlds["jobs"] >= 1


def test_customers_and_events_tables_match_the_local_engine(generated: Generated) -> None:
    a, b = generated.local, generated.spark
    assert a.counts["customers"] == b.counts["customers"] == a.graph.n_customers
    # customers only in the customers table come after the logs' customers, in table order
    pos = int(np.flatnonzero(a.customers["customer_id"].to_numpy() == "NEWCOMER")[0])
    assert pos >= int(a.customers["in_log"].sum())
    assert b.customers["customer_id"].iloc[pos] == "NEWCOMER"
    for col in ("value", "churn_score", "tenure_days"):
        np.testing.assert_array_equal(a.customers[col].to_numpy(float),
                                      b.customers[col].to_numpy(float), err_msg=col)
    for col in ("segment", "in_log"):
        assert a.customers[col].astype(str).tolist() == b.customers[col].astype(str).tolist()
    assert not b.customers["in_log"].iloc[pos] and b.customers["degree_in"].iloc[pos] == 0
    ev_a, ev_b = a.events.reset_index(drop=True), b.events.reset_index(drop=True)
    assert len(ev_a) == len(ev_b) > 0 and "NEWCOMER" in set(ev_b["customer_id"])
    assert ev_a["customer_id"].tolist() == ev_b["customer_id"].tolist()
    assert ev_a["event"].tolist() == ev_b["event"].tolist()
    np.testing.assert_array_equal(ev_a["timestamp"].to_numpy(float),
                                  ev_b["timestamp"].to_numpy(float))
    assert a.counts["events"] == b.counts["events"]
    files = [(f["file"], f["kind"], f["rows_read"], f["rows_loaded"])
             for f in a.loading["files"]]
    assert files == [(f["file"], f["kind"], f["rows_read"], f["rows_loaded"])
                     for f in b.loading["files"]]


def _tidy_rejects(frame: pd.DataFrame) -> pd.DataFrame:  # a loaded run's rejects come from CSV
    cols = ["file", "line", "reason", "column", "value"]
    frame = frame[cols].copy()
    frame["line"] = frame["line"].astype(np.int64)
    for c in ("file", "value", "column"):
        frame[c] = frame[c].fillna("").astype(str)
    return frame.sort_values(["file", "line", "reason"], ignore_index=True)


def test_rejects_have_the_same_lines_reasons_columns_and_values(generated: Generated) -> None:
    local, spark = _tidy_rejects(generated.local.rejects), _tidy_rejects(generated.spark.rejects)
    pd.testing.assert_frame_equal(local, spark, check_dtype=False)
    reasons = set(local["reason"])
    assert {"missing_id", "self_interaction", "bad_timestamp", "missing_timestamp",
            "negative_weight", "bad_weight", "missing_weight", "nonfinite_weight",
            "unknown_channel", "missing_channel", "malformed_row", "duplicate_customer",
            "bad_value", "bad_churn_score", "unknown_customer", "missing_event"} <= reasons
    assert (generated.out / "rejects.csv").exists()


def test_positions_match_the_local_loader_for_files_read_in_many_batches(
        spark: Any, gen_data: SyntheticCommunity, tmp_path: Path, datasets: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids are numbered batch by batch locally; small batches here stand for big files."""
    monkeypatch.setattr(tables, "JSONL_BATCH_ROWS", 3_000)
    monkeypatch.setattr(tables, "BATCH_ROWS", 2_500)
    frame = gen_data.interactions.head(12_000)
    raw = tmp_path / "log.csv"
    frame.to_csv(raw, index=False)
    # an empty channel ("unknown") before a new channel name only seen in a rejected row:
    # channel codes follow first appearance, rejected rows included, as locally
    _with_rows(raw, ["C000001,C000002,2026-02-01T00:00:00Z,,1",
                     "source,target,timestamp,channel,weight",  # repeated_header
                     "a/b,C000001,2026-02-01T00:00:00Z,call,1",  # bad_id
                     "C000003,C000004,2026-02-01T00:00:00Z,fax,1,extra"], 3000)  # malformed
    parquet = tmp_path / "log.parquet"
    frame.to_parquet(parquet, index=False, row_group_size=1_000)
    jsonl = tmp_path / "log.jsonl"
    records = frame.to_dict("records")
    with jsonl.open("w") as f:
        for i, rec in enumerate(records):
            if i in (50, 4_000):
                f.write("not json\n\n")
            if i == 90:
                f.write(json.dumps({**rec, "source": {"nested": 1}}) + "\n")
            f.write(json.dumps(rec) + "\n")
    # (gzip and blank-line handling of the batch boundaries: tests/unit/spark/test_load_order)
    small = LogOptions(read=ReadOptions(block_size=32 << 10))
    cases = [(raw, small), (parquet, LogOptions()), (jsonl, LogOptions()),
             (datasets / COLLEGE_PATH, LogOptions(read=ReadOptions(block_size=48 << 10)))]
    for path, options in cases:
        local = load_network(path, log_options=options)
        got = load_logs(spark, [path], options=options)
        ids = to_pandas(got.nodes).sort_values("node")["customer_id"].tolist()
        assert ids == local.graph.ids.tolist(), path.name
        assert got.channels == list(local.graph.channel_names), path.name
        want = _tidy_rejects(local.rejects.to_frame())
        have = _tidy_rejects(rejects_frame(got))
        if path.suffix == ".jsonl":  # a nested id's text: json.dumps spacing vs Spark's
            want, have = want.drop(columns="value"), have.drop(columns="value")
        pd.testing.assert_frame_equal(want, have, check_dtype=False, obj=path.name)
        reasons = set(want["reason"])
        if path == raw:
            assert {"repeated_header", "bad_id", "malformed_row"} <= reasons
            assert got.channels[-2:] == ["unknown", "channel"]
        if path == jsonl:
            assert {"invalid_json", "bad_id"} <= reasons


# ------------------------------------------------------------------ forced distributed path
@dataclass
class Distributed:
    run: AnalysisRun
    out: Path
    db: str
    tmp: Path
    local: AnalysisRun
    """The local influence step on the same log, events and settings (the oracle)."""


# influence and exposure with their default error targets except a looser epsilon (fewer RR
# sets, the same code path); no IMM seed set (it does not run on the distributed path)
DIST_INFLUENCE = {"epsilon": 0.3, "seed_set_size": 0, "exposure_runs": 1000}


def _college_events(log: Path, path: Path) -> Path:
    """Complaints two days before the log's end by its eight busiest senders: exposure seeds
    (CollegeMsg has no events of its own)."""
    frame = pd.read_csv(log, sep=" ", header=None, names=["s", "d", "t"])
    busiest = frame["s"].value_counts().index[:8]
    when = pd.to_datetime(frame["t"].max() - 2 * 86_400, unit="s", utc=True)
    pd.DataFrame({"customer_id": busiest.astype(str), "event": "complaint",
                  "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ")}).to_csv(path, index=False)
    return path


DAMPING = 0.3


@pytest.fixture(scope="module")
def distributed(spark: Any, college: Pair, generated: Generated,
                tmp_path_factory: pytest.TempPathFactory, datasets: Path) -> Distributed:
    # the default PageRank tolerance (1e-6); damping 0.3 instead of 0.85 for the CI budget:
    # each DataFrame iteration costs ~2-6 s on a loaded 2-core machine, and 0.3 converges in
    # 15 iterations instead of ~90 (the same code path; the benchmark runs the default).
    # Published, as `carenet analyze` does it, to the generated run's store (PostgreSQL when
    # the tests have one), so one server serves both Spark runs.
    cfg = AnalysisConfig.from_mapping(BASE | {"influence": DIST_INFLUENCE}).with_overrides(
        {"engine.collect_max_ties": 0, "measures.pagerank_damping": DAMPING})
    tmp = tmp_path_factory.mktemp("spark-dist")
    log = datasets / COLLEGE_PATH
    events = _college_events(log, tmp / "events.csv")
    local = analyze(log, config=cfg, steps=["influence"], events=events)
    store = RunStore(generated.db)
    try:
        run = analyze_and_publish_spark([log], config=cfg, store=store, events=events,
                                        out=tmp / "run")
    finally:
        store.close()
    assert isinstance(run, AnalysisRun)
    return Distributed(run, tmp / "run", generated.db, tmp, local)


def test_distributed_degree_and_pagerank_match_the_local_engine(distributed: Distributed,
                                                                college: Pair) -> None:
    local = college.local
    d = distributed.run.customers
    assert d["customer_id"].tolist() == local.customers["customer_id"].tolist()
    for col in ("degree_in", "degree_out", "interactions_sent", "interactions_received"):
        np.testing.assert_array_equal(d[col].to_numpy(), local.customers[col].to_numpy())
    for col in ("strength_in", "strength_out"):
        np.testing.assert_allclose(d[col], local.customers[col], rtol=1e-9, atol=1e-300)
    exact = cen.pagerank(local.graph, damping=DAMPING, tol=1e-10).values
    assert np.abs(d["pagerank"].to_numpy() - exact).sum() < 1e-6
    eng = distributed.run.results["engine"]
    assert eng["path"] == "distributed" and "collect_max_ties 0" in eng["reason"]
    assert {"leiden", "seed_set", "care", "risk"} <= set(eng["skipped"])
    assert "influence" not in eng["skipped"]
    assert "collected to the driver after the distributed steps" in eng["published"]


def test_distributed_influence_and_exposure_equal_the_local_kernels(
        distributed: Distributed) -> None:
    """Forced distributed (limit 0): RIS and exposure ran as Spark tasks and gave the local
    influence step's values, intervals and attribution bit for bit (the same random streams
    cut into blocks), so also within the local run's intervals; run.json says so."""
    d, local = distributed.run, distributed.local
    for col in ("influence", "influence_low", "influence_high", "exposure", "exposure_low",
                "exposure_high", "exposure_seed"):
        np.testing.assert_array_equal(d.customers[col].to_numpy(),
                                      local.customers[col].to_numpy(), err_msg=col)
    inside = ((d.customers["influence"] >= local.customers["influence_low"])
              & (d.customers["influence"] <= local.customers["influence_high"]))
    assert inside.all()
    assert d.customers["exposure_seed"].sum() == 8
    assert (d.customers["exposure"][~d.customers["exposure_seed"]] > 0).sum() > 100
    pd.testing.assert_frame_equal(d.tables["exposure_sources"],
                                  local.tables["exposure_sources"])
    a, b = d.results["influence"], local.results["influence"]
    assert a["influence"]["estimate"]["rr_sets"] == b["influence"]["estimate"]["rr_sets"]
    assert a["exposure"]["runs"] == b["exposure"]["runs"] and a["exposure"]["event_seeds"] == 8
    eng = d.results["engine"]
    assert eng["distributed"] == ["degrees", "pagerank", "label_propagation", "components",
                                  "influence", "exposure"]
    sampling = eng["sampling"]
    assert sampling["influence"]["jobs"] >= 2 and sampling["exposure"]["jobs"] >= 1
    assert sampling["influence"]["tasks"] > sampling["influence"]["jobs"]
    saved = AnalysisRun.load(distributed.out)  # the attribution table is saved with the run
    pd.testing.assert_frame_equal(saved.tables["exposure_sources"].reset_index(drop=True),
                                  local.tables["exposure_sources"], check_dtype=False)


def test_distributed_label_propagation_and_components_match_local_oracles(
        distributed: Distributed, college: Pair) -> None:
    g = college.local.graph
    src = np.repeat(np.arange(g.n_customers), np.diff(g.indptr))
    labels, _ = label_propagation_reference(src, g.indices, g.weights, g.n_customers)
    got = distributed.run.customers["community"].to_numpy()
    np.testing.assert_array_equal(got, labels)
    assert 1 < len(np.unique(got)) < g.n_customers
    adj = csr_matrix((np.ones(len(src)), (src, g.indices)), shape=(g.n_customers,) * 2)
    _, comp = connected_components(adj, directed=True, connection="weak")
    smallest = pd.Series(np.arange(g.n_customers)).groupby(comp).transform("min").to_numpy()
    np.testing.assert_array_equal(distributed.run.customers["component"].to_numpy(), smallest)


def test_the_driver_and_distributed_runs_are_published_saved_and_served(
        generated: Generated, distributed: Distributed, college: Pair) -> None:
    """Both Spark runs (the generated log's through the CLI, driver path; CollegeMsg's forced
    distributed) are in one store and served by one server like any run."""
    back = AnalysisRun.load(distributed.out)  # the ordinary run format
    assert back.run_id == distributed.run.run_id
    assert back.results["engine"]["path"] == "distributed"
    np.testing.assert_array_equal(back.graph.indices, college.local.graph.indices)
    store = RunStore(generated.db)
    try:
        key = store.create_key("analyst", "spark test")[1]
    finally:
        store.close()
    server = Server(generated.db, generated.tmp).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60,
                          headers={"Authorization": f"Bearer {key}"}) as c:
            runs = c.get("/v1/runs")
            assert runs.status_code == 200, runs.text
            for run in (generated.spark, distributed.run):
                assert run.run_id in runs.text
                top = run.top("pagerank", 1)["customer_id"].item()
                r = c.get(f"/v1/customers/{top}", params={"run": run.run_id})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["run"] == run.run_id
                want = run.customers.set_index("customer_id").loc[top, "pagerank"]
                assert body["scores"]["pagerank"] == pytest.approx(want, rel=1e-9)
            comm = c.get("/v1/communities", params={"run": distributed.run.run_id})
            assert comm.status_code == 200, comm.text
    finally:
        server.stop()
