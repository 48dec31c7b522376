"""The output folder: written beside its place, swapped in when complete, refused if it is not an export."""
from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path

from ..errors import LabError
from ..files import pid_alive


MARKER = ".datalabel-export.json"  # the report, written last; marks a folder as ours to replace
# report fields that differ between identical exports
RUN_ONLY = ("seconds", "images_fetched", "images_reused", "workers")
# Set by the CLI when SIGTERM/SIGINT arrives. Its KeyboardInterrupt can be lost: a signal handled while a worker is
# forked raises inside Python's at-fork hooks, where the exception is printed and ignored. The swap checks it.
stop_requested = threading.Event()


def check_replaceable(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise LabError(f"{out_dir} exists and is not a folder; choose another output path")
        if any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
            raise LabError(f"{out_dir} is not empty and is not a previous export; choose an empty or new folder")


def swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished temporary folder to out_dir; a previous export there is replaced."""
    if stop_requested.is_set():
        raise KeyboardInterrupt  # asked to stop: the caller removes tmp
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def remove_stale(out_dir: Path) -> None:
    """Remove temporary folders that a killed run (SIGKILL, power loss) left beside out_dir.

    Their names carry the writing process's id; a folder whose process is gone cannot be in use.
    """
    if not out_dir.parent.is_dir():
        return
    for kind in ("tmp", "old"):
        for path in out_dir.parent.glob(f".{out_dir.name}.{kind}-*"):
            pid = path.name[len(f".{out_dir.name}.{kind}-"):].split("-", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
