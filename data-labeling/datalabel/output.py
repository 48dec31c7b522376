"""Terminal output shared by the CLIs: tables, JSON, progress bars (rich)."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def run_app(app, prog_name: str, argv: list[str] | None = None) -> None:
    """Run a typer app; a LabError becomes one line on stderr and its exit code, never a traceback."""
    from .errors import LabError

    try:
        app(args=argv, prog_name=prog_name)
    except LabError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


def print_json(value) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def print_table(rows: list[dict], columns: list[str] | None = None, title: str | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (hidden when not a terminal); yields `advance(n)`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        job = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(job, n)
