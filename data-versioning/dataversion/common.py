"""What the versioning modules share: names in the dataset repository, the environment git and DVC run in,
and the guard that keeps writes out of the bucket mount."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from datalabel.api import ConfigError

from . import QUIET_ENV

DATASET_DIR = "dataset"  # the versioned folder in the repository
MANIFEST = "manifest.json"
TAG_PREFIX = "dataset_v"
REMOTE = "store"
DEFAULT_REMOTE_PREFIX = "dvc_store"
MOUNT_ENV = "GCS_MOUNT_DIR"  # set by the container's entrypoint to where the bucket is mounted


def tool_env() -> dict[str, str]:
    """Environment for git/dvc subprocesses: no analytics, no prompts, an identity if git has none."""
    env = {**os.environ, **QUIET_ENV, "GIT_TERMINAL_PROMPT": "0"}
    if not _git_identity_configured():
        env.setdefault("GIT_AUTHOR_NAME", "dataversion")
        env.setdefault("GIT_AUTHOR_EMAIL", "dataversion@localhost")
        env.setdefault("GIT_COMMITTER_NAME", env["GIT_AUTHOR_NAME"])
        env.setdefault("GIT_COMMITTER_EMAIL", env["GIT_AUTHOR_EMAIL"])
    return env


_IDENTITY: bool | None = None


def _git_identity_configured() -> bool:
    global _IDENTITY
    if _IDENTITY is None:
        if shutil.which("git") is None:
            raise ConfigError("git is not installed (the dataset history is a git repository); install git")
        out = subprocess.run(["git", "config", "--get", "user.email"], capture_output=True, text=True)
        _IDENTITY = bool(out.stdout.strip()) or bool(os.environ.get("GIT_AUTHOR_EMAIL"))
    return _IDENTITY


def mount_points() -> list[Path]:
    """Where the bucket is mounted: the entrypoint's GCS_MOUNT_DIR and any gcsfuse mount of this machine."""
    points = []
    if os.environ.get(MOUNT_ENV):
        points.append(Path(os.environ[MOUNT_ENV]))
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2] in ("fuse.gcsfuse", "fuse.gcsfs"):
                points.append(Path(fields[1].replace("\\040", " ")))
    except OSError:
        pass
    return [p.resolve() for p in points]


def refuse_mounted(dest: Path) -> None:
    dest = dest.resolve()
    for point in mount_points():
        if dest == point or point in dest.parents:
            raise ConfigError(f"refusing to write into {dest}: it is inside the bucket mount {point}; "
                              "check versions out into a local folder")


def check_rev(rev: str) -> str:
    """A version name from the user, refused before git or DVC sees it if it could be read as an option (a leading
    "-") or holds whitespace or control characters. Git calls also take it after `--end-of-options`."""
    if not isinstance(rev, str) or not rev or rev.startswith("-") or any(c.isspace() or ord(c) < 32 for c in rev):
        raise ConfigError(f"not a version name: {rev!r}; use a tag such as {TAG_PREFIX}1 (see `dataversion versions`)")
    return rev


def is_repo(path: str | Path) -> bool:
    path = Path(path)
    return (path / ".git").exists() and (path / ".dvc").is_dir()


def require_repo(path: str | Path) -> Path:
    path = Path(path).resolve()
    if not is_repo(path):
        raise ConfigError(f"{path} is not a dataset repository (no .git and .dvc); run `dataversion init` there first")
    return path
