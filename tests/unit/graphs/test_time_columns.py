"""A headerless third column of times is not mistaken for a weight (inspect and analyze)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from carenet.cli import app
from carenet.graphs.logs import LogOptions, LogReader
from carenet.graphs.tables import ReadOptions
from carenet.graphs.timecols import time_likeness
from carenet.pipeline import analyze

runner = CliRunner()


def _write(path: Path, third: np.ndarray, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 30, third.size)
    dst = (src + rng.integers(1, 30, third.size)) % 30
    path.write_text("".join(f"{a} {b} {int(c)}\n" for a, b, c in zip(src, dst, third,
                                                                       strict=True)))
    return path


@pytest.mark.parametrize(("values", "kind"), [
    (["18", "37", "126", "126", "900", "1500", "2400"], "time"),
    (["1082040961", "1082155839", "1082414391"], "time"),
    (["1", "2", "2", "3", "5", "4", "6", "7", "9", "8"], "maybe"),
    (["3", "1", "2", "5", "1", "4", "2"], "no"),
    (["1.5", "2.5", "3.5"], "no"),
    (["a", "b", "c"], "no"),
])
def test_time_likeness(values: list[str], kind: str) -> None:
    assert time_likeness(values) == kind


def test_seconds_from_zero_are_read_as_time_and_the_note_says_how_to_undo(
        tmp_path: Path) -> None:
    t = np.sort(np.random.default_rng(1).integers(0, 40 * 86400, 400))
    log = _write(tmp_path / "log.txt", t)
    reader = LogReader(log)
    assert reader.columns["timestamp"] == "column_3" and "weight" not in reader.columns
    assert reader.time_note is not None
    assert "--columns source,target,weight" in reader.time_note
    # the other reading, exactly as the note says, gives the weight back
    other = LogReader(log, LogOptions(read=ReadOptions(columns=("source", "target",
                                                                 "weight"))))
    assert other.columns["weight"] == "weight" and "timestamp" not in other.columns
    # analyze reads times: the reference time is the last one, ties have unit weights
    run = analyze(log, steps=["risk"])
    assert run.graph.reference_time == pytest.approx(float(t.max()))
    assert run.results["risk"]["lapse"]["lapsed"] >= 0
    assert any("--columns" in n for f in run.loading["files"] for n in f["notes"])


def test_weights_stay_weights_and_unsure_columns_warn(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    weights = rng.integers(1, 60, 300)  # durations in minutes: no order
    reader = LogReader(_write(tmp_path / "w.txt", weights))
    assert reader.columns["weight"] == "column_3" and reader.time_note is None
    unsure = np.arange(300) // 10  # rising, but a range of 29: a time or a weight?
    reader = LogReader(_write(tmp_path / "u.txt", unsure))
    assert reader.columns["weight"] == "column_3"
    assert reader.time_note is not None
    assert "--columns source,target,timestamp" in reader.time_note


def test_inspect_takes_the_column_options_and_analyze_warns(tmp_path: Path) -> None:
    t = np.sort(np.random.default_rng(3).integers(0, 40 * 86400, 300))
    log = _write(tmp_path / "log.txt", t)
    res = runner.invoke(app, ["inspect", str(log)])
    assert res.exit_code == 0, res.output
    assert "timestamp" in res.output and "--columns source,target,weight" in res.output
    res = runner.invoke(app, ["inspect", str(log), "--columns", "a,b,c", "--source-col", "a",
                              "--target-col", "b", "--weight-col", "c"])
    assert res.exit_code == 0, res.output
    assert "weight" in res.output and "timestamp" not in res.output
    unsure = np.arange(300) // 10
    res = runner.invoke(app, ["analyze", str(_write(tmp_path / "u.txt", unsure)), "--out",
                              str(tmp_path / "run"), "--no-publish", "--quiet",
                              "--measures", "pagerank"])
    assert res.exit_code == 0, res.output
    assert "--columns source,target,timestamp" in res.output
    assert "risk needs timestamps or a churn score" in res.output
