"""Upper bounds of the numeric settings (issue 13): one table, enforced however a config is
built (TOML file, mapping from an API request, CLI flags)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carenet.cli import app
from carenet.config import UPPER_BOUNDS, AnalysisConfig
from carenet.errors import InvalidInputError


def numeric_settings(cls: type = AnalysisConfig, prefix: str = "") -> dict[str, Any]:
    """Every setting whose value is (or holds) a number, by dotted name, with its default."""
    found: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        name = prefix + f.name
        if dataclasses.is_dataclass(tp):
            found.update(numeric_settings(tp, name + "."))
            continue
        parts = {tp, *typing.get_args(tp)}
        for arg in typing.get_args(tp):
            parts.update(typing.get_args(arg))
        if parts & {int, float} and tp is not bool:
            found[name] = (f.default if f.default is not dataclasses.MISSING
                           else f.default_factory())  # type: ignore[misc]
    return found


def test_every_numeric_setting_has_an_upper_bound() -> None:
    numeric = numeric_settings()
    assert len(numeric) > 30
    missing = sorted(set(numeric) - set(UPPER_BOUNDS))
    assert not missing, f"settings without an upper bound in config.UPPER_BOUNDS: {missing}"
    assert not set(UPPER_BOUNDS) - set(numeric), "bounds of settings that do not exist"


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    *parents, leaf = dotted.split(".")
    out: dict[str, Any] = {leaf: value}
    for p in reversed(parents):
        out = {p: out}
    return out


def _above(dotted: str, default: Any) -> Any:
    bound = UPPER_BOUNDS[dotted]
    over = int(bound) + 1 if isinstance(default, int) or (
        isinstance(default, tuple) and default and isinstance(default[0], int)) else bound * 2
    if isinstance(default, tuple):
        return [over]
    if isinstance(default, dict):
        return {"call": over}
    return over


@pytest.mark.parametrize("dotted", sorted(UPPER_BOUNDS))
def test_a_value_above_the_bound_is_refused_naming_the_setting(dotted: str) -> None:
    default = numeric_settings()[dotted]
    mapping = _nested(dotted, _above(dotted, default))
    if dotted == "influence.seed_budget":
        mapping["influence"]["cost_col"] = "cost"  # the two go together
    with pytest.raises(InvalidInputError) as info:
        AnalysisConfig.from_mapping(mapping)
    # the bounds table, or the section's own check where it is stricter ("in [0, 1]")
    leaf = dotted.split(".")[-1]
    assert f"'{dotted}' must be a number at most" in str(info.value) or (
        f"{dotted} must be" in str(info.value) or f"{leaf} must be" in str(info.value)), (
        str(info.value))


def test_the_bound_itself_and_the_defaults_are_accepted() -> None:
    AnalysisConfig()
    for dotted in ("influence.exposure_runs", "care.plan_runs", "influence.max_rr_sets"):
        cfg = AnalysisConfig.from_mapping(_nested(dotted, int(UPPER_BOUNDS[dotted])))
        section, key = dotted.split(".")
        assert getattr(getattr(cfg, section), key) == UPPER_BOUNDS[dotted]


def test_config_file_and_flags_are_bounded(tmp_path: Path) -> None:
    toml = tmp_path / "analysis.toml"
    toml.write_text("[influence]\nexposure_runs = 1000000000\n")
    with pytest.raises(InvalidInputError) as info:
        AnalysisConfig.from_toml(toml)
    assert info.value.file == str(toml) and "influence.exposure_runs" in str(info.value)
    with pytest.raises(InvalidInputError, match="max_rr_sets"):
        AnalysisConfig().with_overrides({"influence.max_rr_sets": 10**12})
    log = tmp_path / "log.csv"
    log.write_text("source,target\nann,bob\nbob,cid\n")
    result = CliRunner().invoke(app, ["analyze", str(log), "--config", str(toml), "-q",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "exposure_runs" in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_the_bounds_are_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Operating carenet safely", 1)[1].split("\n## ", 1)[0]
    for dotted in ("influence.exposure_runs", "care.plan_runs", "influence.max_rr_sets"):
        assert dotted in section and f"{int(UPPER_BOUNDS[dotted]):,}" in section
    assert "UPPER_BOUNDS" in section

