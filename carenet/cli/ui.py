"""What every command shares on the terminal: the consoles, friendly errors, a progress bar.

Errors the user can fix (a missing file, a bad row format, an unknown column) are printed as
one line naming the file, line and column, with exit code 2, never as a traceback.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from carenet.errors import CarenetError, EmptyGraphError, InvalidInputError

console = Console(stderr=False)
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES)
"""Write failures the user fixes (a full disk, a size limit, a read-only place)."""


def friendly_errors(fn: F) -> F:
    """Turn carenet errors into one red line and an exit code (2: bad input, 1: other)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (InvalidInputError, EmptyGraphError) as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except CarenetError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # no room or no permission to write a file: one line
            if exc.errno not in _WRITE_ERRNOS:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            err_console.print(f"[bold red]error:[/] {where}cannot write: "
                              f"{os.strerror(exc.errno or 0)} ({exc})", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[..., None]]:
    """A rich progress display fed by the pipeline's ``(step, done, total)`` callback."""
    if not enabled or not sys.stderr.isatty():
        yield lambda step, done=None, total=None: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}
        last: list[str] = []

        def report(step: str, done: float | None = None, total: float | None = None) -> None:
            if step not in tasks:
                if last:
                    prev = tasks[last[-1]]
                    bar.update(prev, total=1, completed=1)
                tasks[step] = bar.add_task(step, total=None, detail="")
                last.append(step)
            detail = ""
            if done is not None and step == "load":
                detail = f"{int(done):,} rows"
            elif done is not None and total:
                detail = f"{done:,.0f}/{total:,.0f}"
            bar.update(tasks[step], total=total, completed=done or 0, detail=detail)

        yield report
        if last:
            bar.update(tasks[last[-1]], total=1, completed=1)

