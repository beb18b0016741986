"""``carenet generate`` (a synthetic community with a known churn cascade) and ``carenet
inspect`` (how a log file will be read).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from carenet.cli.options import (
    Channel,
    ChannelCol,
    Columns,
    Delimiter,
    Header,
    SourceCol,
    TargetCol,
    TimeCol,
    TimeFormat,
    TimeUnit,
    WeightCol,
)
from carenet.cli.ui import console, err_console, friendly_errors


@friendly_errors
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the data set to.")],
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 3000,
    interactions: Annotated[int, typer.Option(help="Number of interactions (log rows).")] = 60_000,
    mean_degree: Annotated[float, typer.Option(help="Average ties per customer.")] = 8.0,
    community_size: Annotated[float, typer.Option(help="Average community size.")] = 120.0,
    mixing: Annotated[float, typer.Option(help="Share of ties leaving their community (0-1).")] = 0.15,
    period_days: Annotated[float, typer.Option(help="Length of the observed period in days.")] = 180.0,
    transmission: Annotated[float, typer.Option(help="Churn contagion along a tie of mean strength.")] = 0.08,
    timestamps: Annotated[str, typer.Option(help="iso (text) or epoch (seconds).")] = "iso",
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 7,
) -> None:
    """Generate a synthetic customer community with a known churn cascade.

    Writes interactions, customers, events and truth tables (the truth holds each customer's
    planted community, churn time and who passed the churn on), plus generator.json.
    """
    from carenet.synthetic import GeneratorConfig, truth_summary
    from carenet.synthetic import generate as make

    cfg = GeneratorConfig(
        customers=customers, interactions=interactions, mean_degree=mean_degree,
        community_size=community_size, mixing=mixing, period_days=period_days,
        transmission=transmission, timestamps=timestamps, seed=seed,
    )
    t0 = time.perf_counter()
    with err_console.status("generating"):
        data = make(cfg)
        paths = data.write(out, fmt=fmt)
    summary = truth_summary(data)
    table = Table(title=f"generated in {time.perf_counter() - t0:.1f} s", show_header=False)
    for k, v in summary.items():
        table.add_row(k.replace("_", " "), f"{v:,}")
    for k, p in paths.items():
        table.add_row(f"{k} file", str(p))
    console.print(table)



@friendly_errors
def inspect(
    log: Annotated[Path, typer.Argument(help="A log file to look at.", show_default=False)],
    delimiter: Delimiter = None,
    header: Header = None,
    columns: Columns = None,
    source_col: SourceCol = None,
    target_col: TargetCol = None,
    time_col: TimeCol = None,
    weight_col: WeightCol = None,
    channel_col: ChannelCol = None,
    time_unit: TimeUnit = None,
    time_format: TimeFormat = None,
    channel: Channel = None,
) -> None:
    """Show how carenet reads a log: format, delimiter, header, which column plays which role.

    Reads only the first rows; run it before a long analysis to check the column mapping. It
    takes the same column options as analyze, so what it shows is what analyze will read.
    """
    from carenet.cli.options import INPUT_KEYS, config_overrides, load_config
    from carenet.graphs.logs import LogReader

    cfg = load_config(None, config_overrides(locals(), INPUT_KEYS))
    reader = LogReader(log, cfg.input.log_options())
    sn = reader.table.sniffed
    info = {
        "file": str(log),
        "format": sn.format + (f" ({sn.compression})" if sn.compression else ""),
        "delimiter": repr(sn.delimiter) if sn.format == "csv" else "-",
        "header": sn.header,
        "comment lines": sn.skip_rows,
        "columns": ", ".join(reader.table.names),
    }
    table = Table(title="how carenet reads this file", show_header=False, title_justify="left")
    for k, v in info.items():
        table.add_row(k, str(v))
    for role, col in reader.columns.items():
        table.add_row(f"  {role}", col)
    console.print(table)
    if reader.time_note:
        console.print(f"note: {reader.time_note}", highlight=False, soft_wrap=True)

