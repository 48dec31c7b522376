"""Read a dataset version anywhere: a local repository path or a git URL, plus a tag.

Everything goes through DVC's own filesystem (`dvc.api.DVCFileSystem`): git-tracked files (the manifest) come
from git, the data from the local DVC cache if it holds them, else from the gs:// remote. Nothing here writes
to the repository or the bucket.

    from dataversion.load import versions, manifest, download
    versions("https://github.com/you/labels-repo.git")        # ['dataset_v1', 'dataset_v2']
    download("https://github.com/you/labels-repo.git", "dataset_v2", "/content/data")
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import dataversion  # noqa: F401  (sets the gcsfs/DVC environment before they are imported)
from datalabel.api import LabError, NotFound, ServerError

from . import gitauth
from .common import DATASET_DIR, MANIFEST, TAG_PREFIX, check_rev



def remote_config(endpoint: str | None = None) -> dict | None:
    """Remote settings for another storage endpoint (the emulator); real GCS needs none."""
    endpoint = endpoint or os.environ.get("STORAGE_EMULATOR_HOST")
    if not endpoint:
        return None
    return {"endpointurl": endpoint, "allow_anonymous_login": True}


def filesystem(repo: str, rev: str, endpoint: str | None = None):
    """A read-only view of the repository at `rev` (git files + DVC-tracked data)."""
    check_rev(rev)
    from dvc.api import DVCFileSystem

    try:
        return DVCFileSystem(str(repo), rev=rev, remote_config=remote_config(endpoint))
    except Exception as exc:  # scmrepo / dvc raise many unrelated types for a bad URL or rev
        name = type(exc).__name__
        if "Rev" in name or "revision" in str(exc).lower():
            raise NotFound(f"no version {rev!r} in {repo} (see `dataversion versions`)") from None
        raise LabError(f"cannot open {repo} at {rev}: {str(exc).splitlines()[0] if str(exc) else name}") from None


def versions(repo: str) -> list[str]:
    """The dataset_vN tags of a repository (path or git URL), oldest first, without cloning it."""
    return sorted(_remote_tags(str(repo)), key=lambda t: int(t[len(TAG_PREFIX):]))


def _remote_tags(repo: str) -> dict[str, str]:
    """dataset_vN tag -> object id, by `git ls-remote` with the secrets folder's credentials for a URL."""
    url = gitauth.check_url(repo) if gitauth.is_url(repo) else None
    proc = subprocess.run(["git", "ls-remote", "--tags", "--end-of-options", repo], capture_output=True, text=True,
                          env=gitauth.git_env(url), timeout=120)
    if proc.returncode != 0:
        hint = gitauth.explain(proc.stderr, repo) if url else None
        raise NotFound(f"cannot list versions of {repo}: {hint or (proc.stderr.strip().splitlines() or ['?'])[-1]}")
    tags = {}
    for line in proc.stdout.splitlines():
        oid, _, ref = line.partition("\t")
        name = ref.removeprefix("refs/tags/")
        if re.fullmatch(rf"{TAG_PREFIX}\d+", name):
            tags[name] = oid
    return tags


def fetch_versions(url: str, tags: list[str] | None, dest: Path) -> list[str]:
    """Fetch version tags of the repository at `url` one commit deep into a new git repository `dest` (no history,
    no data): enough for manifests, `.dvc` files and DVC's filesystem. All version tags if `tags` is None."""
    wanted = None if tags is None else [check_rev(t) for t in dict.fromkeys(tags)]
    available = _remote_tags(url)
    wanted = sorted(available) if wanted is None else wanted
    for tag in wanted:
        if tag not in available:
            raise NotFound(f"no dataset version {tag!r} in {url} (see `dataversion versions --repo {url}`)")
    env = gitauth.git_env(url)
    commands = [["init", "--quiet", str(dest)]]
    if wanted:
        commands.append(["-C", str(dest), "fetch", "--quiet", "--depth", "1", "--no-tags", "--end-of-options", url,
                         *(f"refs/tags/{t}:refs/tags/{t}" for t in wanted)])
    for args in commands:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            hint = gitauth.explain(proc.stderr, url)
            raise ServerError(f"cannot fetch versions from {url}: "
                              f"{hint or (proc.stderr.strip().splitlines() or ['?'])[-1][:300]}")
    return wanted


def manifest(repo: str, rev: str, endpoint: str | None = None) -> dict:
    """The version's manifest: counts, label-config hash, Label Studio project, and one entry per item."""
    fs = filesystem(repo, rev, endpoint)
    try:
        found = json.loads(fs.read_bytes(MANIFEST).decode("utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{rev} of {repo} has no {MANIFEST}; it is not a dataset version") from None
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
        raise LabError(f"the {MANIFEST} of {rev} in {repo} is not valid JSON") from None
    if not isinstance(found, dict) or not isinstance(found.get("items"), list):
        raise LabError(f"the {MANIFEST} of {rev} in {repo} is not a manifest written by `dataversion snapshot`")
    return found


def labels(repo: str, rev: str, endpoint: str | None = None) -> dict[str, list[str]]:
    """Source image -> labels, for every item of the version."""
    return {item["source"]: item["labels"] for item in manifest(repo, rev, endpoint)["items"]}


def list_files(repo: str, rev: str, endpoint: str | None = None) -> list[str]:
    """Paths of the version's files, relative to the dataset folder."""
    fs = filesystem(repo, rev, endpoint)
    return sorted(p.removeprefix(DATASET_DIR + "/") for p in fs.find(DATASET_DIR))


def read_bytes(repo: str, rev: str, path: str, endpoint: str | None = None) -> bytes:
    """One file of the version (e.g. `images/digit_0001.png`), fetched from cache or remote."""
    fs = filesystem(repo, rev, endpoint)
    try:
        return fs.read_bytes(f"{DATASET_DIR}/{path.lstrip('/')}")
    except FileNotFoundError:
        raise NotFound(f"{path} is not in {rev}") from None


def download(repo: str, rev: str, dest: str | Path, endpoint: str | None = None) -> int:
    """Copy the whole dataset folder of `rev` into `dest` (created; its content is the dataset). Returns files."""
    dest = Path(dest)
    fs = filesystem(repo, rev, endpoint)
    files = fs.find(DATASET_DIR)
    if not files:
        raise NotFound(f"{rev} of {repo} has no {DATASET_DIR}/ folder")
    try:
        # explicit file-to-file pairs: fsspec would otherwise nest dataset/ inside an existing `dest`
        local = [str(dest / p.removeprefix(DATASET_DIR + "/")) for p in files]
        fs.get(files, local)
    except FileNotFoundError as exc:
        raise NotFound(f"data of {rev} missing from the cache and the remote: {exc}") from None
    except LabError:
        raise
    except Exception as exc:
        raise ServerError(f"cannot download {rev} from the DVC remote: {str(exc).splitlines()[0][:300]}") from None
    return len(files)
