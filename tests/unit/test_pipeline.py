"""The analysis run: config handling, the step registry, atomic save and load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import carenet
from carenet.config import AnalysisConfig, parse_time
from carenet.errors import InvalidInputError, RunNotFoundError
from carenet.pipeline import AnalysisRun, analyze


def test_config_toml_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "a.toml"
    p.write_text('seed = 7\n[graph]\nhalf_life = "12h"\nchannels = ["call", "sms"]\n'
                 'channel_weights = { call = 2 }\n[input]\nheader = true\n')
    cfg = AnalysisConfig.from_toml(p)
    assert cfg.seed == 7
    assert cfg.graph.half_life_seconds == 43200
    assert cfg.graph.channels == ("call", "sms")
    assert cfg.graph.channel_weights == {"call": 2.0}
    assert AnalysisConfig.from_mapping(cfg.to_dict()) == cfg
    json.dumps(cfg.to_dict())


@pytest.mark.parametrize(("data", "message"), [
    ({"graph": {"halflife": "1d"}}, "unknown setting 'graph.halflife'"),
    ({"seed": "many"}, "'seed' must be an integer"),
    ({"graph": {"symmetrize": "sometimes"}}, "true or false"),
    ({"graph": {"channel_weights": {"call": "heavy"}}}, "graph.channel_weights.call"),
    ({"graph": "yes"}, "must be a table"),
    ({"graph": {"half_life": "-3d"}}, "must be positive"),
])
def test_config_errors_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")):
        AnalysisConfig.from_mapping(data)


def test_overrides_skip_none_and_validate() -> None:
    cfg = AnalysisConfig().with_overrides({"graph.half_life": None, "graph.symmetrize": True})
    assert cfg.graph.half_life == "30d"
    assert cfg.graph.symmetrize


def test_parse_time() -> None:
    assert parse_time("1970-01-02T00:00:00Z") == 86400.0
    assert parse_time(5) == 5.0
    with pytest.raises(InvalidInputError):
        parse_time("not a time")


def test_run_save_load_round_trip(tmp_path: Path, sample_dir: Path) -> None:
    run = analyze(sample_dir / "interactions.csv", customers=sample_dir / "customers.csv",
                  events=sample_dir / "events.csv")
    out = run.save(tmp_path / "run")
    back = AnalysisRun.load(out)
    assert back.run_id == run.run_id
    pd.testing.assert_frame_equal(back.customers, run.customers, check_dtype=False)
    assert back.graph.n_ties == run.graph.n_ties
    assert np.array_equal(back.graph.weights, run.graph.weights)
    assert back.counts == json.loads(json.dumps(run.counts))
    assert len(back.events) == len(run.events)
    top = back.top("strength_in", 3)
    assert top["strength_in"].is_monotonic_decreasing
    with pytest.raises(InvalidInputError):
        back.top("no_such_column")


def test_save_is_atomic_and_replaces(tmp_path: Path) -> None:
    run = analyze(carenet.example_log())
    target = tmp_path / "run"
    run.save(target)
    (target / "stale.txt").write_text("from an older run")
    run.save(target)
    assert not (target / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary leftovers


def test_failed_save_leaves_previous_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = analyze(carenet.example_log())
    target = tmp_path / "run"
    run.save(target)
    before = (target / "run.json").read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(type(run.graph), "save", boom)
    with pytest.raises(OSError):
        run.save(target)
    assert (target / "run.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_load_missing_run(tmp_path: Path) -> None:
    with pytest.raises(RunNotFoundError):
        AnalysisRun.load(tmp_path)


def test_unknown_step_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="unknown step"):
        analyze(carenet.example_log(), steps=["astrology"])


def test_same_input_same_numbers(sample_dir: Path) -> None:
    a = analyze(sample_dir / "interactions.csv")
    b = analyze(sample_dir / "interactions.csv")
    pd.testing.assert_frame_equal(a.customers, b.customers)



def test_exposure_error_setting_reaches_the_estimate(tmp_path: Path) -> None:
    """influence.exposure_error is the stopping target of the run's exposure worlds: a looser
    target stops after fewer worlds, and run.json reports the target and the reached error."""
    from carenet.synthetic import GeneratorConfig, generate

    paths = generate(GeneratorConfig(customers=300, interactions=4000, community_size=50,
                                     seed=5)).write(tmp_path / "in")
    done = {}
    for error in (0.2, 0.05):
        cfg = AnalysisConfig().with_overrides({
            "influence.exposure_error": error, "influence.exposure_runs": 5000,
            "influence.seed_set_size": 0, "influence.epsilon": 0.3, "care.enabled": False,
            "measures.exact_max": 500})
        run = analyze(paths["interactions"], events=paths["events"], config=cfg)
        expo = run.results["influence"]["exposure"]
        assert expo["error_target"] == pytest.approx(error)
        assert expo["error"] <= error
        done[error] = expo["runs"]
    assert done[0.2] < done[0.05] <= 5000
    with pytest.raises(InvalidInputError, match="exposure_error"):
        AnalysisConfig().with_overrides({"influence.exposure_error": 0.0})


def test_exposure_budget_setting_bounds_the_worlds(tmp_path: Path) -> None:
    """influence.exposure_budget (tie-worlds) stops the exposure estimate before its error
    target on purpose: run.json then says ``stop_reason = "budget"`` with the half-width
    reached; 0 means no budget."""
    from carenet.synthetic import GeneratorConfig, generate

    paths = generate(GeneratorConfig(customers=300, interactions=4000, community_size=50,
                                     seed=5)).write(tmp_path / "in")
    base = {"influence.exposure_error": 0.01, "influence.exposure_runs": 5000,
            "influence.seed_set_size": 0, "influence.epsilon": 0.3, "care.enabled": False,
            "measures.exact_max": 500}
    out = {}
    for budget in (0.0, 50_000.0):
        run = analyze(paths["interactions"], events=paths["events"],
                      config=AnalysisConfig().with_overrides(
                          base | {"influence.exposure_budget": budget}))
        out[budget] = run.results["influence"]["exposure"]
    bound = out[50_000.0]
    assert bound["stop_reason"] == "budget"
    assert bound["budget"] == pytest.approx(50_000.0)
    assert bound["runs"] == bound["budget_runs"]  # the world cap the budget allows, not more
    assert bound["error"] > 0.01
    assert out[0.0]["stop_reason"] != "budget"
    assert out[0.0]["runs"] > bound["runs"]
    with pytest.raises(InvalidInputError, match="exposure_budget"):
        AnalysisConfig().with_overrides({"influence.exposure_budget": -1.0})
