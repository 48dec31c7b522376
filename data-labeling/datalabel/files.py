"""File and process helpers shared by both CLIs: atomic single-file writes, an exclusive lock between processes,
whether a process still runs, whether processes can be forked.

Standard library only.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path`: renamed onto it when the block completes, removed if the block fails,
    so readers see the old file or the whole new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """One holder at a time across processes (a lock file, 0600, created if missing); others wait."""
    with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+") as fp:
        fcntl.flock(fp, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fp, fcntl.LOCK_UN)


def user_cache(*parts: str) -> Path:
    """A folder in the user's cache ($XDG_CACHE_HOME or ~/.cache)/datalabel, made if missing. Raises OSError (or
    RuntimeError: no home at all, as for a container user without a passwd entry) where there is none to write."""
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "datalabel", *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (also when it belongs to another user)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def can_fork() -> bool:
    """Helper processes are forked (they start in milliseconds, sharing what is loaded); Windows cannot."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()
