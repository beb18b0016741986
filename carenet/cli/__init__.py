"""The ``carenet`` command line: generate data, analyse logs, inspect files, run the demo,
use a run (report, simulate, plan), backtest, serve the store and manage its keys.

Every command calls the same library functions a notebook would (:func:`carenet.analyze`,
:func:`carenet.synthetic.generate`); the modules of this package only parse flags, show progress
and print results, one module per command group:

- :mod:`~carenet.cli.data`: ``generate``, ``inspect``
- :mod:`~carenet.cli.analyze`: ``analyze``, ``demo``
- :mod:`~carenet.cli.report`: ``report``
- :mod:`~carenet.cli.whatif`: ``simulate``, ``plan``, ``explain``
- :mod:`~carenet.cli.backtest`: ``backtest``
- :mod:`~carenet.cli.service`: ``serve``, ``keys create|list|revoke``
- :mod:`~carenet.cli.warmup`: ``warmup`` (compile the numba kernels once, after installing)

Shared option definitions and the flag -> config key tables are in :mod:`~carenet.cli.options`;
the consoles, error handling and progress bar in :mod:`~carenet.cli.ui`. Errors the user can fix
(a missing file, a bad row format, an unknown column) are printed as one line naming the file,
line and column, with exit code 2, never as a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import typer

from carenet.cli.analyze import analyze, demo
from carenet.cli.backtest import backtest
from carenet.cli.data import generate, inspect
from carenet.cli.report import report
from carenet.cli.service import keys_app, serve
from carenet.cli.ui import console
from carenet.cli.warmup import warmup
from carenet.cli.whatif import explain, plan, simulate

app = typer.Typer(
    name="carenet",
    help=(
        "Find and care for the customers who carry a community.\n\n"
        "carenet turns interaction logs (calls, messages, referrals, ...) into a customer "
        "graph and measures each customer's position, influence and exposure.\n\n"
        "Start with `carenet demo` (analyses the shipped sample) or "
        "`carenet analyze LOG.csv --out runs/first`; `carenet inspect LOG.csv` shows how a "
        "file will be read."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)

COMMANDS: tuple[Callable[..., Any], ...] = (
    generate, analyze, inspect, demo, report, serve, simulate, backtest, plan, explain, warmup,
)
"""Every top-level command, in the order ``carenet --help`` lists them."""
for command in COMMANDS:
    app.command()(command)
app.add_typer(keys_app, name="keys")


def version() -> None:
    """Print carenet's version and the versions of the libraries it computes with."""
    from carenet.pipeline import library_versions

    console.print_json(json.dumps(library_versions()))



app.command()(version)


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
