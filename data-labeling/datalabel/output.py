"""Terminal output shared by the CLIs: tables, JSON, progress bars (rich)."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.table import Table

from .errors import LabError

console = Console()
err_console = Console(stderr=True)


_notes: list[str] = []


def note_when_done(message: str) -> None:
    """A note for stderr once the command has succeeded: a failure's one error line stays the only line."""
    _notes.append(message)


def run_app(app, prog_name: str, argv: list[str] | None = None) -> None:
    """Run a typer app; a LabError or a bad option becomes one line on stderr and its exit code, never a
    traceback. Help (--help, or a group called without a command) prints as typer formats it."""
    import typer

    _notes.clear()  # notes of this run only (run_app can run again in one process: tests)
    try:
        code = app(args=argv, prog_name=prog_name, standalone_mode=False)
    except LabError as exc:
        _error_line(str(exc))
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # typer's own: a missing or bad option, an unknown command
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group without a command: the message is its help
            if message.strip():
                console.print(message, markup=False, highlight=False)
        else:
            ctx = getattr(exc, "ctx", None)
            _error_line(f"{message} (see: {ctx.command_path if ctx is not None else prog_name} --help)")
        sys.exit(getattr(exc, "exit_code", 2))
    except OSError as exc:  # the machine said no (a path that cannot be written, a full disk): one line, no traceback
        _error_line(os_error_line(exc))
        sys.exit(EXIT_OS_ERROR)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted")
        sys.exit(130)
    code = code if isinstance(code, int) else 0  # typer.Exit(n) and --help return their exit code
    if code == 0:
        for message in _notes:
            print(f"note: {message}", file=sys.stderr)
    sys.exit(code)


EXIT_OS_ERROR = 1


def os_error_line(exc: OSError) -> str:
    """What the system refused, where, and what to do about the usual cases."""
    import errno

    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or type(exc).__name__
    hint = {errno.ENOSPC: "free some space and run again (nothing half-written was kept)",
            errno.EACCES: "pick a folder you can write to", errno.EROFS: "pick a writable folder",
            errno.ENOENT: "check the path"}.get(exc.errno, "")
    return f"{where}: {reason}" + (f"; {hint}" if hint else "") if where else reason + (f"; {hint}" if hint else "")


def _error_line(message: str) -> None:
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)


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
    """A progress bar on stderr (hidden when not a terminal); yields `advance(n)`, whose `note(text)` shows
    text (a retry) on the same line until the next note, and whose `step(description, total)` starts the next
    phase of the work on a fresh bar (see `next_step`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        current = {"job": bar.add_task(description, total=total), "description": description}

        def advance(n: int = 1) -> None:
            bar.advance(current["job"], n)

        def note(text: str) -> None:
            bar.update(current["job"], description=f"{current['description']} ({text})")

        def step(description: str, total: int | None = None) -> None:
            bar.update(current["job"], visible=False)
            current.update(job=bar.add_task(description, total=total), description=description)

        advance.note = note  # type: ignore[attr-defined]
        advance.step = step  # type: ignore[attr-defined]
        yield advance


def next_step(progress: Callable[[int], None] | None, description: str, total: int | None = None) -> None:
    """Tell a progress callback that the next phase begins (a long read, then the writes): a bar from `progress`
    starts a fresh line; any other callback (a test's counter) is left as is."""
    step = getattr(progress, "step", None)
    if step is not None:
        step(description, total)
