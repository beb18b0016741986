"""``carenet backtest``: how well the scores rank who churned next, on a real log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from carenet.cli.options import (
    BACKTEST,
    BACKTEST_KEYS,
    OUTPUT,
    TABLES,
    Channel,
    ChannelCol,
    Columns,
    ConfigFile,
    Delimiter,
    HalfLife,
    Header,
    Seed,
    SourceCol,
    TargetCol,
    TimeCol,
    TimeFormat,
    TimeUnit,
    WeightCol,
    config_overrides,
    load_config,
    split_list,
)
from carenet.cli.ui import console, err_console, friendly_errors


@friendly_errors
def backtest(
    log: Annotated[Path, typer.Argument(help="Interaction log with timestamps (CSV, Parquet, JSON Lines).", show_default=False)],
    cutoff: Annotated[list[str], typer.Option("--cutoff", help="Cutoff date(s): ISO 8601, epoch seconds or a share of the log's time span such as 60%; repeat or comma-separate for several.", rich_help_panel=BACKTEST, show_default=False)],
    horizon: Annotated[float, typer.Option("--horizon", help="Days after the cutoff in which churn is predicted.", rich_help_panel=BACKTEST, show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for backtest.json, metrics.csv, lift_curve.csv, value_capture.csv, scores.parquet, the plots (SVG/PNG) and backtest.html.", rich_help_panel=OUTPUT)] = Path("carenet-backtest"),
    events: Annotated[Path | None, typer.Option("--events", help="Events table (customer_id, event, timestamp): churn events label the horizon; earlier churn/complaint events seed exposure. Without it, churn = silence.", rich_help_panel=TABLES)] = None,
    customers: Annotated[Path | None, typer.Option("--customers", help="Customers table (value, churn_score, ...), as for analyze.", rich_help_panel=TABLES)] = None,
    truth: Annotated[Path | None, typer.Option("--truth", help="truth.csv from `carenet generate`: also score the true cascade churners.", rich_help_panel=TABLES)] = None,
    budget: Annotated[int | None, typer.Option("--budget", "-k", help="Contacts K for 'churn captured by K' (default: 5% of the active customers).", rich_help_panel=BACKTEST, show_default=False)] = None,
    lookback: Annotated[float | None, typer.Option("--lookback", help="Days before the cutoff in which a customer must be active to count (default: the horizon).", rich_help_panel=BACKTEST, show_default=False)] = None,
    classifier: Annotated[str, typer.Option("--classifier", help="logistic or hgb (gradient boosting) for the own-activity and network models.", rich_help_panel=BACKTEST)] = "logistic",
    churn_events: Annotated[str, typer.Option("--churn-events", help="Comma list of event kinds meaning churn in --events.", rich_help_panel=BACKTEST)] = "churn",
    config: ConfigFile = None,
    source_col: SourceCol = None,
    target_col: TargetCol = None,
    time_col: TimeCol = None,
    weight_col: WeightCol = None,
    channel_col: ChannelCol = None,
    columns: Columns = None,
    header: Header = None,
    delimiter: Delimiter = None,
    time_unit: TimeUnit = None,
    time_format: TimeFormat = None,
    channel: Channel = None,
    half_life: HalfLife = None,
    seed: Seed = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result table.")] = False,
) -> None:
    """Backtest the scores on a real log: how well do they rank who churned next.

    Scores come from the interactions before each cutoff only: exposure, influence, priority
    (with the care step) and the baselines.

    Churned = active in the window before the cutoff and silent during the horizon (or a churn
    event in --events). Baselines: degree, PageRank, recency-frequency, a classifier on
    own-activity features and the same classifier with network features, both trained out of
    time (one horizon earlier). Reports AUC (DeLong 95% interval), lift at the top 1/5/10%
    and the churners captured by K contacts.

    Example: carenet backtest CollegeMsg.txt --columns source,target,timestamp --cutoff 2004-05-15 --horizon 14 --out bt/college
    """
    from carenet.evaluation.backtest import BacktestOptions, run_backtest
    from carenet.viz.backtest_plot import (
        plot_lift_curves,
        plot_value_capture,
        plot_value_curves,
        write_backtest_page,
    )

    cfg = load_config(config, config_overrides(locals(), BACKTEST_KEYS))
    options = BacktestOptions(horizon_days=horizon, lookback_days=lookback, budget=budget,
                              classifier=classifier,
                              churn_events=tuple(split_list(churn_events) or ("churn",)))
    cutoffs = [c for text in cutoff for c in (split_list(text) or [])]

    def say(message: str) -> None:
        if not quiet:
            err_console.print(message, highlight=False)

    t0 = time.perf_counter()
    result = run_backtest(log, cutoffs=cutoffs, options=options, events=events,
                          customers=customers, truth=truth, config=cfg, report=say)
    path = result.save(out)
    svg, _ = plot_lift_curves(result.lift_curve, path)
    value_svg = curves_svg = None
    if len(result.value_capture):
        value_svg, _ = plot_value_capture(result.value_capture, path)
        curves_svg, _ = plot_value_curves(result.lift_curve, path)
    write_backtest_page(result.to_dict(), result.metrics, path, svg=svg, value_svg=value_svg,
                        curves_svg=curves_svg)
    for cut in result.cutoffs:
        lab = cut.labels
        console.print(f"[bold]cutoff {lab['cutoff']}[/]: {lab['population']:,} active, "
                      f"{lab['churners']:,} churned in {horizon:g} days "
                      f"({100 * (lab['churn_rate'] or 0):.1f}%), K = {lab['budget']:,}",
                      highlight=False)
        for target, part in cut.metrics.groupby("target", sort=False):
            table = Table(title=f"target: {target}", title_justify="left", box=box.SIMPLE,
                          pad_edge=False)
            for col in ("score", "AUC", "95% CI", "lift1%", "lift5%", "lift10%", "got@K"):
                table.add_column(col, justify="left" if col == "score" else "right",
                                 no_wrap=True)
            for r in part.to_dict("records"):
                table.add_row(r["score"], f"{r['auc']:.3f}",
                              f"{r['auc_low']:.2f}-{r['auc_high']:.2f}",
                              f"{r['lift_1']:.2f}", f"{r['lift_5']:.2f}", f"{r['lift_10']:.2f}",
                              f"{r['captured_at_k']:.1f}")
            console.print(table)
        cap = cut.comparison.get("value_capture_5")
        if cap:
            table = Table(title=f"churned value captured by the top 5% (value: "
                          f"{cap['value_from']})", title_justify="left", box=box.SIMPLE,
                          pad_edge=False)
            for col in ("score", "captured", "95% CI", "vs best other"):
                table.add_column(col, justify="left" if col == "score" else "right",
                                 no_wrap=True)
            for r in cap["scores"]:
                table.add_row(r["score"], _pct(r["value_captured"]),
                              f"{_pct(r['value_low'])}-{_pct(r['value_high'])}",
                              f"{_pct(r['diff_to_best_other_low'])} to "
                              f"{_pct(r['diff_to_best_other_high'])}")
            console.print(table)
        for name, comp in cut.comparison.items():
            if name == "value_capture_5":
                continue
            console.print(f"{name.replace('_', ' ')}: AUC difference {comp['difference']:+.3f} "
                          f"({comp['low']:+.3f} to {comp['high']:+.3f}), p = {comp['p_value']:.3g}",
                          highlight=False)
        for note in cut.notes:
            console.print(f"note: {note}", highlight=False, style="dim")
    console.print(f"written to {path} (backtest.html, metrics.csv, lift_curve.csv, "
                  f"value_capture.csv, scores.parquet, lift_curve.svg/.png, "
                  f"value_capture.svg/.png, value_curves.svg/.png) in {time.perf_counter() - t0:.1f} s",
                  highlight=False, soft_wrap=True)


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:.1f}%"
