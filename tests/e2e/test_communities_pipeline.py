"""Centralities, communities, roles and the community table inside ``carenet analyze``: the
columns, the saved table, the config section and flags, and ids kept across runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from carenet.cli import app
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError
from carenet.pipeline import AnalysisRun, analyze

runner = CliRunner()
COLUMNS = ["degree_in", "degree_out", "strength_in", "strength_out", "pagerank", "eigenvector",
           "betweenness", "harmonic", "core", "community", "role", "within_z", "participation"]
FAST = AnalysisConfig().with_overrides({"measures.exact_max": 500, "measures.samples": 64})


@pytest.fixture(scope="module")
def run(sample_dir: Path) -> AnalysisRun:
    return analyze(sample_dir / "interactions.csv", customers=sample_dir / "customers.csv",
                   events=sample_dir / "events.csv", config=FAST)


def test_every_column_is_there_and_consistent(run: AnalysisRun) -> None:
    c = run.customers
    assert set(COLUMNS) <= set(c.columns)
    g = run.graph
    assert (c["degree_in"].to_numpy() == g.in_degree()).all()
    assert (c["degree_out"].to_numpy() == g.out_degree()).all()
    assert np.allclose(c["strength_in"], g.in_strength())
    assert np.allclose(c["strength_out"], g.out_strength())
    assert c["pagerank"].sum() == pytest.approx(1.0)
    assert c["eigenvector"].max() == pytest.approx(1.0)
    assert c["core"].dtype.kind == "i" and c["community"].dtype.kind == "i"
    assert set(c["role"]) <= {"community hub", "connector hub", "bridge", "member",
                              "peripheral"}
    assert c["participation"].between(0, 1).all()
    # 3,000 customers > exact_max = 500: sampled, with per-customer standard errors
    assert "betweenness_stderr" in c and (c["betweenness_stderr"] >= 0).all()
    desc = run.results["centrality"]["betweenness"]
    assert desc["exact"] is False and desc["samples"] == 64 and desc["error_bound"] > 0


def test_community_table(run: AnalysisRun) -> None:
    table = run.tables["communities"]
    c = run.customers
    sizes = c["community"].value_counts().sort_index()
    assert table["community"].tolist() == sizes.index.tolist()
    assert table["size"].tolist() == sizes.tolist()
    assert table["size"].is_monotonic_decreasing  # 0 = largest
    assert table["value_total"].sum() == pytest.approx(c["value"].sum())
    assert table["negative_customers"].sum() > 0
    top = table.loc[0, "top_customers"].split(";")
    members = c[c["community"] == 0].sort_values("pagerank", ascending=False)
    assert top == members["customer_id"].head(5).tolist()
    desc = run.results["communities"]
    assert desc["algorithm"] == "leiden" and desc["communities"] == len(table)
    assert sum(desc["roles"]["counts"].values()) == len(c)
    assert run.results["community_changes"] is None


def test_saved_and_reloaded(run: AnalysisRun, tmp_path: Path) -> None:
    out = run.save(tmp_path / "run")
    assert (out / "communities.parquet").exists() and (out / "communities.csv").exists()
    meta = json.loads((out / "run.json").read_text())
    assert "communities" in meta["tables"]
    assert meta["results"]["communities"]["modularity"] > 0.5
    assert meta["parameters"]["communities"]["algorithm"] == "leiden"
    back = AnalysisRun.load(out)
    pd.testing.assert_frame_equal(back.tables["communities"], run.tables["communities"])
    csv = pd.read_csv(out / "communities.csv")
    assert csv.shape == run.tables["communities"].shape


def test_same_seed_same_run_and_ids_kept(run: AnalysisRun, sample_dir: Path) -> None:
    again = analyze(sample_dir / "interactions.csv", customers=sample_dir / "customers.csv",
                    events=sample_dir / "events.csv", config=FAST, previous=run)
    for col in COLUMNS:
        assert np.array_equal(again.customers[col].to_numpy(), run.customers[col].to_numpy()), col
    changes = again.results["community_changes"]
    assert changes["counts"]["continued"] == run.results["communities"]["communities"]
    assert changes["splits"] == changes["merges"] == changes["births"] == []


def test_finer_resolution_reports_splits(run: AnalysisRun, sample_dir: Path) -> None:
    cfg = FAST.with_overrides({"communities.resolution": 3.0, "seed": 5})
    finer = analyze(sample_dir / "interactions.csv", customers=sample_dir / "customers.csv",
                    config=cfg, previous=run)
    changes = finer.results["community_changes"]
    assert changes["counts"]["splits"] > 0
    assert changes["next_id"] > finer.customers["community"].max()
    # continued communities keep ids: their biggest part still holds the old id
    old = run.customers.set_index("customer_id")["community"]
    new = finer.customers.set_index("customer_id")["community"]
    for split in changes["splits"]:
        assert split["previous"] in split["into"] or split["previous"] not in set(new)
    kept = set(new) & set(old)
    assert kept, "some ids carry over"


def test_config_section_and_validation(sample_dir: Path, tmp_path: Path) -> None:
    p = tmp_path / "a.toml"
    p.write_text('[measures]\nmeasures = ["pagerank", "core"]\n'
                 '[communities]\nalgorithm = "louvain"\nresolution = 0.5\n')
    cfg = AnalysisConfig.from_toml(p)
    r = analyze(sample_dir / "interactions.csv", config=cfg)
    assert "pagerank" in r.customers and "betweenness" not in r.customers
    assert r.results["communities"]["algorithm"] == "louvain"
    assert r.results["communities"]["parameters"]["resolution"] == 0.5
    assert AnalysisConfig.from_mapping(cfg.to_dict()) == cfg
    off = AnalysisConfig.from_mapping({"communities": {"enabled": False},
                                       "measures": {"enabled": False}})
    r = analyze(sample_dir / "interactions.csv", config=off)
    assert "community" not in r.customers and "communities" not in r.tables
    assert "degree_in" in r.customers and "pagerank" not in r.customers
    for bad, message in [({"communities": {"algorithm": "kmeans"}}, "communities.algorithm"),
                         ({"measures": {"samples": 0}}, "measures.samples"),
                         ({"measures": {"measures": ["closeness"]}}, "measures.measures"),
                         ({"communities": {"recent": "soon"}}, "communities.recent"),
                         ({"communities": {"min_jaccard": 2}}, "communities.min_jaccard")]:
        with pytest.raises(InvalidInputError, match=message):
            AnalysisConfig.from_mapping(bad)


def test_cli_flags_and_previous(sample_dir: Path, tmp_path: Path) -> None:
    log = str(sample_dir / "interactions.csv")
    first = tmp_path / "first"
    result = runner.invoke(app, ["analyze", log, "--out", str(first), "-q", "--no-publish",
                                 "--events", str(sample_dir / "events.csv"),
                                 "--communities", "louvain", "--samples", "32",
                                 "--exact-max", "100", "--recent", "90d"])
    assert result.exit_code == 0, result.output
    assert "communities" in result.output and "louvain" in result.output
    meta = json.loads((first / "run.json").read_text())
    assert meta["parameters"]["communities"]["algorithm"] == "louvain"
    assert meta["parameters"]["communities"]["recent"] == "90d"
    assert meta["results"]["centrality"]["betweenness"]["samples"] == 32
    second = tmp_path / "second"
    result = runner.invoke(app, ["analyze", log, "--out", str(second), "-q", "--no-publish",
                                 "--communities", "louvain", "--samples", "32",
                                 "--exact-max", "100", "--previous", str(first)])
    assert result.exit_code == 0, result.output
    assert "vs previous run" in result.output
    a = pd.read_parquet(first / "customers.parquet").set_index("customer_id")["community"]
    b = pd.read_parquet(second / "customers.parquet").set_index("customer_id")["community"]
    assert (a.reindex(b.index) == b).mean() > 0.95
    bad = runner.invoke(app, ["analyze", log, "--out", str(tmp_path / "x"), "-q", "--no-publish",
                              "--communities", "spectral"])
    assert bad.exit_code == 2 and "communities.algorithm" in bad.output
