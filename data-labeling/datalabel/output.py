"""Terminal output shared by the CLIs: tables, JSON, progress bars (rich)."""
from __future__ import annotations

import atexit
import gc
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

    if argv is None:  # the process's own command line: it ends with this command
        # The interpreter's collections at exit walk every object the SDK and the other libraries made at import,
        # 0.2-0.25 s of a 1-2 s command; frozen, they are skipped (exit handlers still run; the memory goes
        # back with the process).
        atexit.register(gc.freeze)
    _notes.clear()  # notes of this run only (run_app can run again in one process: tests)
    _tables[0] = 0
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


_tables = [0]  # tables printed by this run (piped: a blank line between two)


def print_table(rows: list[dict], columns: list[str] | None = None, title: str | None = None) -> None:
    """A table on a terminal; piped or redirected, tab-separated values under a header line, never cut to a width
    (a tab or line break inside a value becomes a space), the title before them as a `# ` comment line and a
    blank line between two tables of one command."""
    columns = columns or (list(rows[0]) if rows else [])
    cells = [["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows]
    if not console.is_terminal:
        if _tables[0]:
            sys.stdout.write("\n")
        _tables[0] += 1
        if title:
            sys.stdout.write("# " + " ".join(title.split()) + "\n")
        for line in [columns, *cells]:
            sys.stdout.write("\t".join(" ".join(v.split()) if ("\t" in v or "\n" in v or "\r" in v) else v
                                        for v in line) + "\n")
        return
    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold")  # a narrow terminal wraps a long value; it never ends in "…"
    for row in cells:
        table.add_row(*row)
    console.print(table)


def count_text(completed: float, total: float | None, unit: str | None) -> str:
    """What a progress line says of its count: "120/5,000 tasks", "3.1/20.0 MB", or without a total "1,797 tasks"
    (bytes are counted in MB; no unit: no count, only the spinner and the time)."""
    if not unit:
        return ""
    if unit == "bytes":
        done = f"{completed / 1e6:,.1f}"
        return f"{done}/{total / 1e6:,.1f} MB" if total is not None else f"{done} MB"
    done = f"{int(completed):,}"
    return f"{done}/{int(total):,} {unit}" if total is not None else f"{done} {unit}"


def _columns():
    """A bar, the count of a total and the time left where the total is known; a spinner, the count so far and
    the time spent where it is not (a download of unknown size, tasks streamed from a file)."""
    from rich.progress import (BarColumn, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    from rich.text import Text

    class Either(ProgressColumn):
        def __init__(self, known: ProgressColumn, unknown: ProgressColumn):
            super().__init__()
            self.known, self.unknown = known, unknown

        def render(self, task):
            return (self.unknown if task.total is None else self.known).render(task)

    class Count(ProgressColumn):
        def render(self, task):
            return Text(count_text(task.completed, task.total, task.fields.get("unit")), style="progress.download")

    return (TextColumn("{task.description}"), Either(BarColumn(), SpinnerColumn()), Count(),
            Either(TimeRemainingColumn(), TimeElapsedColumn()))


@contextmanager
def progress(description: str, total: int | None = None, unit: str | None = "tasks"
             ) -> Iterator[Callable[[int], None]]:
    """A progress line on stderr (hidden when not a terminal); yields `advance(n)` (n of `unit`: "tasks",
    "images", "files", "bytes" shown as MB, ... or None for a spinner without a count), whose `note(text)` shows
    text (a retry) on the same line until the next note, and whose `step(description, total, unit)` starts the
    next phase of the work on a fresh line (see `next_step`)."""
    from rich.progress import Progress

    with Progress(*_columns(), console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        current = {"job": bar.add_task(description, total=total, unit=unit), "description": description}

        def advance(n: int = 1) -> None:
            bar.advance(current["job"], n)

        def note(text: str) -> None:
            bar.update(current["job"], description=f"{current['description']} ({text})")

        def step(description: str, total: int | None = None, unit: str | None = "tasks") -> None:
            bar.update(current["job"], visible=False)
            current.update(job=bar.add_task(description, total=total, unit=unit), description=description)

        advance.note = note  # type: ignore[attr-defined]
        advance.step = step  # type: ignore[attr-defined]
        yield advance


def next_step(progress: Callable[[int], None] | None, description: str, total: int | None = None,
              unit: str | None = "tasks") -> None:
    """Tell a progress callback that the next phase begins (a long read, then the writes): a bar from `progress`
    starts a fresh line counting `unit`; any other callback (a test's counter) is left as is."""
    step = getattr(progress, "step", None)
    if step is not None:
        step(description, total, unit)
