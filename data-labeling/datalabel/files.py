"""File and process helpers shared by both CLIs: atomic single-file writes, an exclusive lock between processes,
whether a process still runs, whether processes can be forked.

Standard library only. Files a person gives (configs, label lists, tokens, keys, manifests) are read here.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import ConfigError, LabError, NotFound


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


# --- files a person gives: the one place they are read -------------------------------------------------------

SMALL_FILE = 16 << 20  # label configs, label lists, tokens, .env, key files, manifests
MAX_JSON_DEPTH = 200  # deeper than any file of ours; Python's own parser stops near 1,000 with a traceback


def read_user_text(path: str | Path, what: str, limit: int = SMALL_FILE, error: type | None = None,
                   missing: type | None = None) -> str:
    """The text of a file a person pointed at: UTF-8 (a BOM is dropped), at most `limit` bytes, no NUL bytes.
    Anything else is one line naming `what` and the file: `error` (ConfigError by default) for content,
    `missing` (NotFound) for a path that is not a file, LabError for what the system refused."""
    error, missing = error or ConfigError, missing or NotFound
    file = Path(path)
    try:
        if not file.is_file():
            raise missing(f"{what} not found: {path} (give the path of a file)")
        with open(file, "rb") as fp:
            data = fp.read(limit + 1)
    except OSError as exc:
        raise LabError(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limit:
        raise error(f"{what} {path} is larger than {limit >> 20} MiB; give the file itself, not an archive or a dump")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    if "\x00" in text:
        raise error(f"{what} {path} is binary, not text; give the {what} itself")
    return text


def check_json_depth(text: str, where: str, error: type | None = None, limit: int = MAX_JSON_DEPTH) -> None:
    """`error` (ConfigError) if JSON text nests arrays/objects deeper than `limit` (strings are skipped)."""
    depth = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > limit:
                raise (error or ConfigError)(f"{where} nests JSON deeper than {limit} levels; no file of ours does")
        elif char in "]}":
            depth -= 1


def no_json_constant(name: str):
    """For json's parse_constant: NaN and Infinity are not JSON (Python's parser takes them unless told)."""
    raise LabError(f"{name} is not JSON; numbers are finite")


def load_user_json(path: str | Path, what: str, limit: int = SMALL_FILE, error: type | None = None,
                   missing: type | None = None):
    """A JSON file a person pointed at, read by `read_user_text`, nesting checked; NaN and Infinity refused."""
    error = error or ConfigError
    text = read_user_text(path, what, limit, error, missing)
    check_json_depth(text, f"{what} {path}", error)

    def no_constant(name: str):
        raise error(f"{what} {path} holds {name}, which is not JSON; write a finite number")

    try:
        return json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
