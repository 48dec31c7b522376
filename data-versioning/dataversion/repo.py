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
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from datalabel.api import (RETRY_TIMEOUT_ENV, ConfigError, LabError, NotFound, ServerError, check_bucket_name,
                           check_url, load_credentials, load_user_json, norm_prefix, retry_timeout, write_text_atomic)

from .common import (DATASET_DIR, DEFAULT_REMOTE_PREFIX, MANIFEST, REMOTE, TAG_PREFIX, check_rev, refuse_mounted,
                     tool_env)
from .load import download

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
    deadline, down_since = time.monotonic() + timeout, None
    while True:
        try:
            out, err = proc.communicate(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            if alive is not None:
                down_since = None if alive() else (down_since or now)
            if now > deadline or (down_since is not None and now - down_since > grace):
                proc.kill()
                proc.communicate()
                if now > deadline:
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


def endpoint_alive(repo: Path) -> Callable[[], bool] | None:
    """For a remote on a custom endpoint (the emulator): whether it still answers HTTP. None for Google's own."""
    config = repo / ".dvc" / "config"
    text = config.read_text(encoding="utf-8") if config.is_file() else ""
    match = re.search(r"^\s*endpointurl\s*=\s*(\S+)", text, re.MULTILINE)
    if not match:
        return None
    url = match.group(1)

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


def is_repo(path: str | Path) -> bool:
    path = Path(path)
    return (path / ".git").exists() and (path / ".dvc").is_dir()


def require_repo(path: str | Path) -> Path:
    path = Path(path).resolve()
    if not is_repo(path):
        raise ConfigError(f"{path} is not a dataset repository (no .git and .dvc); run `dataversion init` there first")
    return path


def remote_url(bucket: str, prefix: str = DEFAULT_REMOTE_PREFIX) -> str:
    return f"gs://{bucket}/{prefix.strip('/')}"


def init(path: str | Path, bucket: str, prefix: str = DEFAULT_REMOTE_PREFIX, endpoint: str | None = None,
         credentials_file: str | None = None, jobs: int | None = None) -> dict:
    """Make `path` a dataset repository (git + DVC) whose remote is gs://BUCKET/PREFIX. Safe to run again.

    `endpoint` points DVC at another storage endpoint (the local emulator); anonymous access is then allowed.
    `jobs` bounds DVC's parallel transfers (the emulator serves one request at a time).
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
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    created = []
    if not (path / ".git").exists():
        git(path, "init", "-q", "-b", "main")
        created.append("git")
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
    return {"repo": str(path), "remote": url, "endpoint": endpoint, "created": created}


def _has_staged_changes(repo: Path) -> bool:
    proc = subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=repo, env=tool_env())
    return proc.returncode == 1


def _head(repo: Path) -> str | None:
    proc = subprocess.run(["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=repo, env=tool_env(),
                          capture_output=True, text=True)
    return proc.stdout.strip() or None


# --- versions -------------------------------------------------------------------------------------------------


def version_tags(repo: Path) -> list[str]:
    """`dataset_vN` tags in version order."""
    out = git(repo, "tag", "--list", f"{TAG_PREFIX}*")
    tags = [t for t in out.split() if re.fullmatch(rf"{TAG_PREFIX}\d+", t)]
    return sorted(tags, key=lambda t: int(t[len(TAG_PREFIX):]))


def next_tag(repo: Path) -> str:
    tags = version_tags(repo)
    return f"{TAG_PREFIX}{int(tags[-1][len(TAG_PREFIX):]) + 1 if tags else 1}"


def _tags_at(repo: Path, rev: str) -> list[str]:
    return git(repo, "tag", "--points-at", rev).split()


def _check_tag_name(repo: Path, tag: str) -> None:
    proc = subprocess.run(["git", "check-ref-format", f"refs/tags/{tag}"], cwd=repo, env=tool_env())
    if proc.returncode != 0 or not tag:
        raise ConfigError(f"{tag!r} is not a valid tag name")
    if tag in git(repo, "tag", "--list", tag).split():
        raise ConfigError(f"tag {tag} already exists; pick another with --tag or leave it out for the next dataset_vN")


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
    """Version the snapshot in `dataset/`: dvc add, dvc push, git commit, git tag.

    The push comes before the commit: if the remote cannot take the data, no commit and no tag exist, and running
    it again resumes (DVC skips what it already cached or uploaded; an untagged dataset commit is tagged).
    """
    repo = require_repo(repo)
    folder = repo / DATASET_DIR
    manifest = read_manifest_file(folder)
    if not manifest.get("items"):
        raise LabError(f"{folder} holds an empty snapshot; nothing to version")
    tag = tag or next_tag(repo)
    _check_tag_name(repo, tag)
    message = message or f"{tag}: {manifest['counts']['items']} labeled items"

    dvc(repo, "add", "-q", DATASET_DIR, what=f"dvc add {DATASET_DIR}")
    last = (version_tags(repo) or [None])[-1]
    if last and _data_hash(repo, None) == _data_hash(repo, last):
        # the same images and labels as the last version: no new version (and nothing to push)
        return {"tag": None, "unchanged_since": last, "items": manifest["counts"]["items"]}
    stamped = {**manifest, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_text_atomic(repo / MANIFEST, json.dumps(stamped, indent=1, sort_keys=True) + "\n")
    remote = _remote(repo)
    try:
        dvc(repo, "push", f"{DATASET_DIR}.dvc", what=f"dvc push to {remote}", error=ServerError,
            alive=endpoint_alive(repo))
    except ServerError as exc:
        raise ServerError(f"{exc} -- nothing was committed or tagged; check that the bucket exists and is "
                          "reachable, then run the same command again") from None
    git(repo, "add", f"{DATASET_DIR}.dvc", ".gitignore", MANIFEST)
    if _has_staged_changes(repo):
        git(repo, "commit", "-q", "-m", message)
    else:
        head = _head(repo)
        done = [t for t in _tags_at(repo, head) if t.startswith(TAG_PREFIX)] if head else []
        if done:
            raise LabError(f"the snapshot is the same as {done[0]}; nothing new to version")
        # an earlier run committed but did not tag: tag that commit now
    git(repo, "tag", "-a", tag, "-m", message)
    return {"tag": tag, "commit": _head(repo), "items": manifest["counts"]["items"], "message": message,
            "remote": remote}


def _data_hash(repo: Path, rev: str | None) -> str | None:
    """The DVC hash of dataset/ in the workspace (rev None) or at a git revision; None where there is none."""
    if rev is None:
        path = repo / f"{DATASET_DIR}.dvc"
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
    else:
        proc = subprocess.run(["git", "show", f"{rev}:{DATASET_DIR}.dvc", "--"], cwd=repo, env=tool_env(),
                              capture_output=True, text=True)
        text = proc.stdout if proc.returncode == 0 else ""
    match = re.search(r"^\s*-?\s*md5:\s*(\S+)", text, re.MULTILINE)
    return match.group(1) if match else None


def _remote(repo: Path) -> str:
    for line in dvc(repo, "remote", "list").splitlines():
        if line.split()[:1] == [REMOTE]:
            return line.split()[1]
    return ""


def resolve(repo: Path, rev: str) -> str:
    """The commit a version name points at (NotFound if none): every later git call gets this hash."""
    check_rev(rev)
    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
                          cwd=repo, env=tool_env(), capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise NotFound(f"no dataset version {rev!r} in {repo} (see `dataversion versions`)")
    return proc.stdout.strip()


def read_manifest(repo: str | Path, rev: str) -> dict:
    """The manifest of a version, from git (no data download)."""
    repo = require_repo(repo)
    commit = resolve(repo, rev)
    proc = subprocess.run(["git", "show", f"{commit}:{MANIFEST}"], cwd=repo, env=tool_env(), capture_output=True)
    if proc.returncode != 0:
        raise NotFound(f"{rev!r} of {repo} has no {MANIFEST}; it is not a dataset version")
    try:
        manifest = json.loads(proc.stdout.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
        raise LabError(f"the {MANIFEST} of {rev!r} in {repo} is not valid JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("items", []), list):
        raise LabError(f"the {MANIFEST} of {rev!r} in {repo} is not a manifest written by `dataversion snapshot`")
    return manifest


def list_versions(repo: str | Path) -> list[dict]:
    """Each dataset_vN tag with its date, commit, message and counts."""
    repo = require_repo(repo)
    out = git(repo, "for-each-ref", "--format=%(refname:short)\t%(creatordate:iso-strict)\t%(*objectname)"
              "%(objectname)\t%(contents:subject)", f"refs/tags/{TAG_PREFIX}*")
    rows = {}
    for line in out.splitlines():
        name, date, obj, subject = (line.split("\t") + ["", "", ""])[:4]
        rows[name] = (date, obj, subject)
    versions = []
    for tag in version_tags(repo):
        date, obj, subject = rows.get(tag, ("", "", ""))
        manifest = read_manifest(repo, tag)
        counts = manifest.get("counts", {})
        quality = manifest_quality(manifest)
        versions.append({"tag": tag, "date": date, "commit": obj[:12], "items": counts.get("items"),
                         "classes": counts.get("per_class", {}), "annotators": counts.get("per_annotator", {}),
                         "format": manifest.get("format"), "agreement": quality["agreement"],
                         "flagged": quality["flagged"], "message": subject})
    return versions


def manifest_quality(manifest: dict) -> dict:
    """A manifest's label quality (`datalabel.api.snapshot_quality`); versions made before it have none."""
    quality = manifest.get("quality") or {}
    return {"agreement": quality.get("agreement") or {}, "flagged": quality.get("flagged")}


def agreement_text(agreement: dict) -> str:
    """alpha (classification) or F1 (boxes, polygons) and on how many multi-annotated tasks; "-" if none."""
    if agreement.get("alpha") is not None:
        return f"alpha {agreement['alpha']:.3f} ({agreement.get('tasks')} tasks)"
    if agreement.get("f1") is not None:
        return f"F1 {agreement['f1']:.3f} ({agreement.get('tasks')} tasks)"
    return "-"


def diff_manifests(old: dict, new: dict) -> dict:
    """Items added, removed and relabeled between two manifests (items keyed by their source image)."""
    a = {item["source"]: item for item in old.get("items", [])}
    b = {item["source"]: item for item in new.get("items", [])}
    relabeled = sorted(s for s in a.keys() & b.keys() if sorted(a[s]["labels"]) != sorted(b[s]["labels"]))
    return {
        "added": sorted(b.keys() - a.keys()),
        "removed": sorted(a.keys() - b.keys()),
        "relabeled": [{"source": s, "old": a[s]["labels"], "new": b[s]["labels"]} for s in relabeled],
        "label_config_changed": old.get("label_config_digest") != new.get("label_config_digest"),
        "format_changed": old.get("format") != new.get("format"),
        "quality": {"old": manifest_quality(old), "new": manifest_quality(new)},
    }


def diff(repo: str | Path, old: str, new: str) -> dict:
    out = diff_manifests(read_manifest(repo, old), read_manifest(repo, new))
    return {"old": old, "new": new, **out}


# --- reading a version into a folder --------------------------------------------------------------------------


def checkout(repo: str | Path, rev: str, dest: str | Path, endpoint: str | None = None) -> dict:
    """Copy dataset version `rev` into the new folder `dest` (never the workspace, never the bucket mount).

    Reads through DVC's filesystem: from the local cache when it has the files, else from the remote.
    """
    repo = require_repo(repo)
    if Path(dest).is_symlink():  # a link (dangling or not) would have the files land somewhere else
        raise ConfigError(f"{dest} is a symbolic link; check out into a new or empty folder")
    if Path(dest).exists() and not Path(dest).is_dir():
        raise ConfigError(f"{dest} is a file; check out into a new or empty folder")
    dest = Path(dest).resolve()
    refuse_mounted(dest)
    if dest == repo or repo in dest.parents and dest.relative_to(repo).parts[:1] in ((DATASET_DIR,), (".dvc",), (".git",)):
        raise ConfigError(f"refusing to check out into {dest}: pick a folder outside the repository's dataset/.dvc/.git")
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"{dest} is not empty; check out into a new or empty folder")
    manifest = read_manifest(repo, rev)
    commit = resolve(repo, rev)  # DVC reads the commit, not a name it could take for something else
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        count = download(str(repo), commit, tmp, endpoint=endpoint)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"rev": rev, "dest": str(dest), "files": count, "items": manifest.get("counts", {}).get("items")}
