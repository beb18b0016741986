"""``carenet report``: the HTML report of a run and its interactive views."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from carenet.cli.ui import console, friendly_errors, progress_bar


def write_html_report(run_dir: Path, out: Path | None = None, *, backtest: Path | None = None,
                      quiet: bool = False) -> Path:
    """Write the HTML report of a run (and its views) and print where it is."""
    from carenet.viz.report import write_report

    t0 = time.perf_counter()
    with progress_bar(not quiet) as report:
        path = write_report(run_dir, out, backtest=backtest,
                            progress=lambda msg: report("report", None, None))
    console.print(f"report: {path} ({len(list(path.parent.glob('*.html'))) - 1} interactive "
                  f"views next to it; {time.perf_counter() - t0:.1f} s)", highlight=False,
                  soft_wrap=True)
    return path


@friendly_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `carenet analyze` or `carenet demo`.", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Report directory (default: RUN_DIR/report).", show_default=False)] = None,
    backtest: Annotated[Path | None, typer.Option("--backtest", help="A `carenet backtest` output directory (or its lift_curve.csv): adds the lift curve, the value-capture curves and the 5% table.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Write one HTML report of a run: summary figures, plots, the customers to look at
    first with their reasons, the community table, and links to interactive views (community
    map, the largest communities, the top customers, a what-if cascade) written next to it.

    Every page works offline (no script or style is fetched). Example: carenet report out/demo
    """
    write_html_report(run_dir, out, backtest=backtest, quiet=quiet)

