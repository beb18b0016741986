"""Option definitions shared by commands, and the table mapping ``analyze``'s flags to config keys.

The input options (which column is which, header, delimiter, time unit, ...) are defined
once here and used by ``analyze`` and ``backtest``. A command's flags reach the
:class:`~carenet.config.AnalysisConfig` through a table (:data:`ANALYZE_KEYS`,
:data:`BACKTEST_KEYS`): flag name -> dotted config key, and how to read the flag's text.
A flag left unset (None) keeps the config file's or the default value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError

INPUT = "Input columns (found by name or position when not given)"
GRAPH = "Graph"
TABLES = "Side tables and config"
MEASURES = "Centralities and communities"
OUTPUT = "Output"
DIFFUSION = "Influence and exposure"
BACKTEST = "Backtest"
ENGINE = "Engine (local or Apache Spark)"
DB_HELP = "Store URL: a SQLite file or postgresql://user@host/db (default: $CARENET_DB or a SQLite file in ~/.local/share/carenet)."


def split_list(text: str | None) -> list[str] | None:
    """A comma list (``"a, b,,c"`` -> ``["a", "b", "c"]``); None stays None (flag not given)."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def channel_weights(text: str | None) -> dict[str, float] | None:
    """``call=2,sms=1`` -> ``{"call": 2.0, "sms": 1.0}``; a clear error for anything else."""
    if text is None:
        return None
    out: dict[str, float] = {}
    for part in split_list(text) or []:
        name, sep, value = part.partition("=")
        if not sep:
            raise InvalidInputError(f"--channel-weights wants name=weight pairs, not {part!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise InvalidInputError(f"--channel-weights: {value!r} is not a number") from None
    return out


def spark_settings(items: list[str] | None) -> dict[str, str] | None:
    """``--spark-conf k=v`` flags -> ``{"k": "v"}``; None (or none given) stays None."""
    if not items:
        return None
    from carenet.spark.session import parse_conf  # the one k=v parser (no pyspark import)

    try:
        return parse_conf(items)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--spark-conf: {exc}") from None


def load_config(config: Path | None, overrides: dict[str, Any]) -> AnalysisConfig:
    """The config file (or the defaults) with the flags' overrides applied."""
    base = AnalysisConfig.from_toml(config) if config is not None else AnalysisConfig()
    return base.with_overrides(overrides)


Convert = Callable[[Any], Any] | None
"""How a flag's value becomes a config value (None: as given)."""

# ------------------------------------------------------------------ shared input options
SourceCol = Annotated[str | None, typer.Option(help="Column of the customer who initiated (e.g. caller, from).", rich_help_panel=INPUT)]
TargetCol = Annotated[str | None, typer.Option(help="Column of the customer contacted (e.g. callee, to).", rich_help_panel=INPUT)]
TimeCol = Annotated[str | None, typer.Option(help="Timestamp column; '' for none.", rich_help_panel=INPUT)]
WeightCol = Annotated[str | None, typer.Option(help="Weight column (count, minutes, duration, ...); '' for none.", rich_help_panel=INPUT)]
ChannelCol = Annotated[str | None, typer.Option(help="Channel column (call, sms, chat, ...); '' for none.", rich_help_panel=INPUT)]
Columns = Annotated[str | None, typer.Option(help="Names for the fields of a headerless file, e.g. source,target,timestamp.", rich_help_panel=INPUT)]
Header = Annotated[bool | None, typer.Option("--header/--no-header", help="Whether the first line names the columns (default: detected).", rich_help_panel=INPUT, show_default=False)]
Delimiter = Annotated[str | None, typer.Option(help="Field delimiter (default: detected; 'whitespace' for runs of blanks).", rich_help_panel=INPUT)]
TimeUnit = Annotated[str | None, typer.Option(help="auto, s, ms, us, ns or iso.", rich_help_panel=INPUT)]
TimeFormat = Annotated[str | None, typer.Option(help="strptime format of text timestamps, e.g. '%d/%m/%Y %H:%M'.", rich_help_panel=INPUT)]
Channel = Annotated[str | None, typer.Option(help="Channel of every row of a log without a channel column (e.g. sms).", rich_help_panel=INPUT)]
HalfLife = Annotated[str | None, typer.Option(help="Decay half-life of interaction weight, e.g. 30d, 12h, none (default 30d).", rich_help_panel=GRAPH, show_default=False)]
Seed = Annotated[int | None, typer.Option(help="Random seed for every stochastic step (default 42).", show_default=False)]
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="analysis.toml with input, graph, ... sections; flags override it.", rich_help_panel=TABLES)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
Db = Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)]

INPUT_KEYS: dict[str, tuple[str, Convert]] = {
    "seed": ("seed", None),
    "source_col": ("input.source_col", None),
    "target_col": ("input.target_col", None),
    "time_col": ("input.time_col", None),
    "weight_col": ("input.weight_col", None),
    "channel_col": ("input.channel_col", None),
    "columns": ("input.columns", split_list),
    "header": ("input.header", None),
    "delimiter": ("input.delimiter", None),
    "time_unit": ("input.time_unit", None),
    "time_format": ("input.time_format", None),
    "channel": ("input.channel", None),
    "half_life": ("graph.half_life", None),
}
"""The flags ``analyze`` and ``backtest`` share: flag -> (config key, conversion)."""

ANALYZE_KEYS: dict[str, tuple[str, Convert]] = {
    **INPUT_KEYS,
    "reference_time": ("graph.reference_time", None),
    "channels": ("graph.channels", split_list),
    "channel_weights": ("graph.channel_weights", channel_weights),
    "symmetrize": ("graph.symmetrize", None),
    "min_weight": ("graph.min_weight", None),
    "pseudonymize": ("graph.pseudonymize", None),
    "measures": ("measures.measures", split_list),
    "exact_max": ("measures.exact_max", None),
    "samples": ("measures.samples", None),
    "backend": ("measures.backend", None),
    "community_algorithm": ("communities.algorithm", None),
    "objective": ("communities.objective", None),
    "resolution": ("communities.resolution", None),
    "recent": ("communities.recent", None),
    "influence": ("influence.enabled", None),
    "diffusion_model": ("influence.model", None),
    "edge_model": ("influence.edge_model", None),
    "edge_scale": ("influence.edge_scale", None),
    "edge_probability": ("influence.edge_probability", None),
    "epsilon": ("influence.epsilon", None),
    "delta": ("influence.delta", None),
    "negative_events": ("influence.negative_events", split_list),
    "lookback": ("influence.lookback", None),
    "exposure_runs": ("influence.exposure_runs", None),
    "seed_set_size": ("influence.seed_set_size", None),
}
"""``carenet analyze``'s flags that set config keys: flag -> (config key, conversion)."""

ENGINE_KEYS: dict[str, tuple[str, Convert]] = {
    "engine": ("engine.name", None),
    "spark_master": ("engine.spark_master", None),
    "spark_conf": ("engine.spark_conf", spark_settings),
    "collect_max_ties": ("engine.collect_max_ties", None),
}
"""``carenet analyze``'s engine flags: flag -> (config key, conversion)."""
EngineName = Annotated[str | None, typer.Option("--engine", help="Where the analysis runs: local (default) or spark (pip install 'carenet[spark]').", rich_help_panel=ENGINE, show_default=False)]
SparkMaster = Annotated[str | None, typer.Option("--spark-master", help="Spark master URL, e.g. spark://head:7077, yarn, local[4] (default local[2], or spark-submit's).", rich_help_panel=ENGINE, show_default=False)]
SparkConf = Annotated[list[str] | None, typer.Option("--spark-conf", help="A Spark setting key=value (repeatable), e.g. spark.executor.memory=8g.", rich_help_panel=ENGINE, show_default=False)]
CollectMaxTies = Annotated[int | None, typer.Option("--collect-max-ties", help="Most ties collected to the driver to run every step locally; above it only the distributed steps run (default 200,000,000).", rich_help_panel=ENGINE, show_default=False)]

BACKTEST_KEYS: dict[str, tuple[str, Convert]] = INPUT_KEYS
"""``carenet backtest``'s flags that set config keys (the pre-cutoff analyses' input)."""


def config_overrides(
    values: Mapping[str, Any], table: Mapping[str, tuple[str, Convert]]
) -> dict[str, Any]:
    """Dotted config overrides from a command's flag values, through ``table``.

    Parameters
    ----------
    values
        The command's parameters by name (flags not in ``table`` are ignored).
    table
        Flag name -> (dotted config key, conversion of the flag's value or None).

    Returns
    -------
    dict
        Dotted key -> value; a None value means "flag not given" and is left to the config.

    Examples
    --------
    >>> config_overrides({"columns": "a,b", "seed": 3, "out": "x"}, INPUT_KEYS)["input.columns"]
    ['a', 'b']
    """
    out: dict[str, Any] = {}
    for flag, (key, convert) in table.items():
        value = values.get(flag)
        out[key] = convert(value) if convert is not None and value is not None else value
    return out
