"""The dataset repository: git for history and tags, DVC for the data, a gs:// DVC remote for the bytes.

Layout of a dataset repository:

    .dvc/config        remote `store` = gs://BUCKET/dvc_store (analytics off)
    dataset/           the snapshot folder (ImageFolder / COCO / YOLO + manifest.json), ignored by git
    dataset.dvc        what DVC tracks: the folder's content hash
    manifest.json      a git-tracked copy of dataset/manifest.json, so versions can be listed and compared
                       without downloading any data

A version is a commit tagged `dataset_vN`. git and dvc run as subprocesses (their own CLIs are the stable
interface); their failures become one-line LabErrors.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, stop_any, wait_none

from datalabel.api import (RETRY_TIMEOUT_ENV, ConfigError, LabError, NotFound, ServerError, check_bucket_name,
                           check_url, existing_bucket, load_credentials, load_user_json, norm_prefix, retry_timeout,
                           storage_client, write_text_atomic)

from . import gitauth, publish
from .common import (DATASET_DIR, DEFAULT_REMOTE_PREFIX, MANIFEST, REMOTE, is_repo, require_repo,  # noqa: F401
                     tool_env)
from .history import (agreement_text, checkout, diff, diff_manifests, list_versions, manifest_quality,  # noqa: F401
                      read_manifest, resolve, version_tags)


def _error_line(stderr: str, stdout: str = "") -> str:
    """The line of a tool's output that says what went wrong (DVC prints `ERROR: ...`)."""
    lines = [ln.strip() for ln in (stderr + "\n" + stdout).splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("ERROR:", "error:", "fatal:")):
            return line
    return lines[-1] if lines else "(no output)"


def run(repo: Path, cmd: list[str], what: str, error: type[LabError] = LabError, timeout: float = 1800,
        alive: Callable[[], bool] | None = None, grace: float = 20.0) -> str:
    """Run a tool; its failure is one line. With `alive`, the tool is stopped once `alive()` has said False for
    `grace` seconds in a row (the endpoint it talks to is gone: its own retries could go on for half an hour)."""
    proc = subprocess.Popen(cmd, cwd=repo, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started, down = time.monotonic(), []  # since when `alive()` has said False, in a row

    def endpoint_gone(state) -> bool:
        if alive is None:
            return False
        if alive():
            down.clear()
        elif not down:
            down.append(time.monotonic())
        return bool(down) and time.monotonic() - down[0] > grace

    # the tool is waited on a second at a time, so `alive` is asked between
    waiting = Retrying(retry=retry_if_exception_type(subprocess.TimeoutExpired),
                       stop=stop_any(stop_after_delay(timeout), endpoint_gone), wait=wait_none())
    try:
        out, err = waiting(proc.communicate, timeout=1.0)
    except RetryError:
        proc.kill()
        proc.communicate()
        if time.monotonic() - started >= timeout:
            raise error(f"{what}: no answer after {timeout:.0f}s") from None
        raise error(f"{what}: the storage endpoint stopped answering (gave up after {grace:g} s; "
                    f"{RETRY_TIMEOUT_ENV} sets how long)") from None
    if proc.returncode != 0:
        raise error(f"{what} failed: {_error_line(err, out)[:400]}")
    return out


def git(repo: Path, *args: str, what: str | None = None) -> str:
    return run(repo, ["git", *args], what or f"git {args[0]}")


def dvc(repo: Path, *args: str, what: str | None = None, error: type[LabError] = LabError,
        alive: Callable[[], bool] | None = None) -> str:
    return run(repo, [sys.executable, "-m", "dvc", *args], what or f"dvc {args[0]}", error, alive=alive,
               grace=retry_timeout())


def remote_endpoint(repo: Path) -> str | None:
    """The endpoint URL of the repository's default DVC remote as DVC reads its config (every level merged), or
    None: no DVC config, Google's own endpoint, or a config DVC refuses (its own commands then say why)."""
    from dvc.config import Config
    from dvc.config import ConfigError as DvcConfigError

    if not (repo / ".dvc").is_dir():
        return None
    try:
        config = Config(dvc_dir=str(repo / ".dvc"))
    except DvcConfigError:
        return None
    remote = config["remote"].get(config["core"].get("remote") or REMOTE) or {}
    return remote.get("endpointurl") or None


def endpoint_alive(repo: Path) -> Callable[[], bool] | None:
    """For a remote on a custom endpoint (the emulator): whether it still answers HTTP. None for Google's own."""
    url = remote_endpoint(repo)
    if not url:
        return None

    def alive() -> bool:
        try:
            urllib.request.urlopen(url, timeout=2).close()
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            return False
        return True

    return alive


# --- set-up ---------------------------------------------------------------------------------------------------


def remote_url(bucket: str, prefix: str = DEFAULT_REMOTE_PREFIX) -> str:
    return f"gs://{bucket}/{prefix.strip('/')}"


def check_remote_bucket(bucket: str, endpoint: str | None = None, credentials_file: str | None = None) -> None:
    """NotFound unless the bucket exists, read where and as DVC will (the endpoint, the key file)."""
    existing_bucket(storage_client(credentials_file, endpoint=endpoint), bucket)


def init(path: str | Path, bucket: str, prefix: str = DEFAULT_REMOTE_PREFIX, endpoint: str | None = None,
         credentials_file: str | None = None, jobs: int | None = None, git_remote: str | None = None) -> dict:
    """Make `path` a dataset repository (git + DVC) whose remote is gs://BUCKET/PREFIX. Safe to run again.

    `endpoint` points DVC at another storage endpoint (the local emulator); anonymous access is then allowed.
    `jobs` bounds DVC's parallel transfers (the emulator serves one request at a time).
    `git_remote` becomes `origin`, where `commit` pushes each version; a new repository starts from the remote's
    history when it has one (a second person joins the team's dataset).
    """
    if not bucket:
        raise ConfigError("no bucket: set GCS_BUCKET_NAME or pass --bucket")
    check_bucket_name(bucket)  # everything is checked before anything is created
    if not norm_prefix(prefix):
        raise ConfigError("--remote-prefix is empty: DVC would keep its files at the bucket's root, among the "
                          f"images; give a folder, e.g. --remote-prefix {DEFAULT_REMOTE_PREFIX}")
    if endpoint:
        check_url(endpoint, "--endpoint (STORAGE_EMULATOR_HOST)")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (got {jobs})")
    if credentials_file:
        load_credentials(credentials_file)
    if git_remote:
        gitauth.check_url(git_remote)
        gitauth.git_env(git_remote)  # the secrets it needs exist and are private
    check_remote_bucket(bucket, endpoint, credentials_file)
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    created = []
    if not (path / ".git").exists():
        git(path, "init", "-q", "-b", "main")
        created.append("git")
    if git_remote:
        publish.set_origin(path, git_remote)
        publish.join(path)
    if not (path / ".dvc").is_dir():
        dvc(path, "init", "-q")
        created.append("dvc")
    dvc(path, "config", "core.analytics", "false")
    url = remote_url(bucket, prefix)
    dvc(path, "remote", "add", "--force", "--default", REMOTE, url)
    if endpoint:
        dvc(path, "remote", "modify", REMOTE, "endpointurl", endpoint)
        dvc(path, "remote", "modify", REMOTE, "allow_anonymous_login", "true")
    if credentials_file:
        # machine-specific, so it goes to the untracked config.local
        dvc(path, "remote", "modify", "--local", REMOTE, "credentialpath", str(Path(credentials_file).resolve()))
    if jobs:
        dvc(path, "remote", "modify", REMOTE, "jobs", str(jobs))
    git(path, "add", ".dvc/config", ".dvc/.gitignore", ".dvcignore")
    if _has_staged_changes(path):
        git(path, "commit", "-q", "-m", f"Dataset repository with DVC remote {url}")
    return {"repo": str(path), "remote": url, "endpoint": endpoint, "created": created,
            "git_remote": publish.origin_url(path)}


def _has_staged_changes(repo: Path) -> bool:
    proc = subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=repo, env=tool_env())
    return proc.returncode == 1


# --- versions -------------------------------------------------------------------------------------------------


def next_tag(repo: Path) -> str:
    return publish.next_tag(version_tags(repo))


def read_manifest_file(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise NotFound(f"{folder} has no {MANIFEST}; build it with `dataversion snapshot` first")
    manifest = load_user_json(path, "manifest", error=LabError)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("items"), list) \
            or not isinstance(manifest.get("counts"), dict):
        raise LabError(f"{path} is not a manifest written by `dataversion snapshot`; rebuild it with it")
    return manifest


def commit(repo: str | Path, message: str | None = None, tag: str | None = None) -> dict:
    """Version the snapshot in `dataset/`: dvc add, dvc push, then the commit and its tag, pushed together to
    the git remote when there is one (see publish.py).

    Everything is checked first (the tag, the git remote and its credentials); the DVC push comes before the
    commit: if the bucket cannot take the data, no commit and no tag exist, and running it again resumes (DVC
    skips what it already uploaded). A commit never exists without its tag, locally or on the remote.
    """
    repo = require_repo(repo)
    folder = repo / DATASET_DIR
    manifest = read_manifest_file(folder)
    if not manifest.get("items"):
        raise LabError(f"{folder} holds an empty snapshot; nothing to version")
    if tag is not None:
        publish.check_tag_name(repo, tag)
    remote = publish.Remote(repo)
    if remote.url:
        _tip, remote_tags = remote.sync()  # a wrong token or host key stops here, before any upload
        if tag in remote_tags:
            raise ConfigError(f"tag {tag} already exists on {publish.ORIGIN}; pick another with --tag or leave it out")
    items = manifest["counts"]["items"]

    dvc(repo, "add", "-q", DATASET_DIR, what=f"dvc add {DATASET_DIR}")
    last = (version_tags(repo) or [None])[-1]
    if last and _data_hash(repo, None) == _data_hash(repo, last):
        # the same images and labels as the last version: no new version (and nothing to push)
        return {"tag": None, "unchanged_since": last, "items": items}
    stamped = {**manifest, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_text_atomic(repo / MANIFEST, json.dumps(stamped, indent=1, sort_keys=True) + "\n")
    store = _remote(repo)
    try:
        dvc(repo, "push", f"{DATASET_DIR}.dvc", what=f"dvc push to {store}", error=ServerError,
            alive=endpoint_alive(repo))
    except ServerError as exc:
        raise ServerError(f"{exc} -- nothing was committed or tagged; check that the bucket exists and is "
                          "reachable, then run the same command again") from None
    done = publish.record(repo, [f"{DATASET_DIR}.dvc", ".gitignore", MANIFEST], tag, message,
                          lambda name: f"{name}: {items} labeled items")
    return {**done, "items": items, "remote": store}


def _data_hash(repo: Path, rev: str | None) -> str | None:
    """The DVC hash of dataset/ in the workspace (rev None) or at a git revision; None where there is none."""
    if rev is None:
        path = repo / f"{DATASET_DIR}.dvc"
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
    else:
        proc = subprocess.run(["git", "show", f"{rev}:{DATASET_DIR}.dvc", "--"], cwd=repo, env=tool_env(),
                              capture_output=True, text=True)
        text = proc.stdout if proc.returncode == 0 else ""
    return dvcfile_hash(text)


def dvcfile_hash(text: str, where: str = f"{DATASET_DIR}.dvc") -> str | None:
    """The content hash of the first output of a .dvc file's text (YAML, read with DVC's own parser); None when
    there is none or the file is not one DVC can read."""
    from dvc.utils.serialize import ParseError, parse_yaml

    try:
        data = parse_yaml(text, where) if text.strip() else None
    except ParseError:
        return None
    outs = data.get("outs") if isinstance(data, dict) else None
    first = outs[0] if isinstance(outs, list) and outs and isinstance(outs[0], dict) else {}
    value = first.get("md5")
    return str(value) if value else None


def _remote(repo: Path) -> str:
    for line in dvc(repo, "remote", "list").splitlines():
        if line.split()[:1] == [REMOTE]:
            return line.split()[1]
    return ""
