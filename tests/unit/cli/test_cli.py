"""The CLI through typer's runner: help, analyze on real logs, generate, inspect, demo."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from carenet.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", [[], ["analyze"], ["generate"], ["inspect"], ["demo"], ["version"]])
def test_help_is_useful_on_its_own(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
    assert len(result.output.split()) > 20


@pytest.mark.slow  # a full analysis: runs in make test, not in make test-fast
def test_analyze_collegemsg_with_guessable_options(tmp_path: Path, datasets: Path) -> None:
    out = tmp_path / "college"
    result = runner.invoke(app, ["analyze", str(datasets / "snap-collegemsg" / "CollegeMsg.txt"),
                                 "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["counts"]["rows_read"] == 59_835
    assert meta["counts"]["customers"] == 1_899
    assert meta["counts"]["ties"] == 20_296
    assert meta["load"]["files"][0]["time_unit"] == "s"
    assert set(meta["timings"]) >= {"load", "total"}
    assert meta["versions"]["numpy"]
    customers = pd.read_parquet(out / "customers.parquet")
    assert len(customers) == 1_899
    assert list(customers.columns[:3]) == ["customer_id", "degree_in", "degree_out"]
    assert pd.read_csv(out / "customers.csv").shape == customers.shape
    rejects = pd.read_csv(out / "rejects.csv")
    assert len(rejects) == 0
    assert list(rejects.columns) == ["file", "line", "reason", "column", "value", "detail", "record"]
    sym = tmp_path / "college-sym"
    result = runner.invoke(app, ["analyze", str(datasets / "snap-collegemsg" / "CollegeMsg.txt"),
                                 "--symmetrize", "--out", str(sym), "-q"])
    assert result.exit_code == 0
    assert json.loads((sym / "run.json").read_text())["counts"]["ties"] < 20_296


def test_analyze_copenhagen_calls_rejects_missed_calls(tmp_path: Path, datasets: Path) -> None:
    out = tmp_path / "calls"
    result = runner.invoke(app, ["analyze", str(datasets / "copenhagen-networks-study" / "calls.csv"),
                                 "--weight-col", "duration", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "negative_weight 366" in result.output
    rejects = pd.read_csv(out / "rejects.csv")
    assert len(rejects) == 366
    assert set(rejects["reason"]) == {"negative_weight"}
    meta = json.loads((out / "run.json").read_text())
    assert meta["counts"]["rows_loaded"] == 3_600 - 366


def test_two_logs_with_a_channel_each(tmp_path: Path, datasets: Path) -> None:
    d = datasets / "copenhagen-networks-study"
    out = tmp_path / "both"
    # each log gets its channel from its own file? one --channel applies to every file here
    result = runner.invoke(app, ["analyze", str(d / "sms.csv"), str(d / "sms.csv"), "--channel", "sms",
                                 "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["counts"]["rows_loaded"] == 2 * 24_333
    assert meta["load"]["channels"] == ["sms"]


def test_generate_then_analyze(tmp_path: Path) -> None:
    data = tmp_path / "gen"
    result = runner.invoke(app, ["generate", "--out", str(data), "--customers", "400",
                                 "--interactions", "5000", "--format", "parquet", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert (data / "interactions.parquet").exists()
    out = tmp_path / "run"
    result = runner.invoke(app, ["analyze", str(data / "interactions.parquet"),
                                 "--customers", str(data / "customers.parquet"),
                                 "--events", str(data / "events.parquet"), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    customers = pd.read_parquet(out / "customers.parquet")
    assert len(customers) == 400
    assert customers["value"].notna().all()


def test_inspect_shows_mapping(datasets: Path) -> None:
    result = runner.invoke(app, ["inspect", str(datasets / "copenhagen-networks-study" / "calls.csv")])
    assert result.exit_code == 0
    assert "duration" in result.output
    assert "weight" in result.output


@pytest.mark.slow  # a full analysis: runs in make test, not in make test-fast
def test_demo_writes_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert (out / "customers.parquet").exists()
    meta = json.loads((out / "run.json").read_text())
    assert meta["counts"]["customers"] == 3000
    assert meta["counts"]["events"] > 0
    # the demo ends with the HTML report and says where it is
    assert (out / "report" / "index.html").exists()
    assert (out / "report" / "community-map.html").exists()
    assert "report: " in result.output and "index.html" in result.output


def test_version_prints_libraries() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert "numba" in result.output
