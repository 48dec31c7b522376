"""Reading versions back: list, compare, copy out. From a dataset repository folder, or from the git URL of a
pushed one: then only the version tags are fetched, one commit deep (manifests and `.dvc` files, no history),
into a temporary folder, and the data comes from the DVC remote.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from datalabel.api import ConfigError, LabError, NotFound

from . import gitauth
from .common import DATASET_DIR, MANIFEST, TAG_PREFIX, check_rev, refuse_mounted, require_repo, tool_env
from .load import download, fetch_versions


def _git_out(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, env=tool_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"git {args[0]} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:300]}")
    return proc.stdout


@contextmanager
def opened(repo: str | Path, revs: list[str] | None = None):
    """A local git repository to read from: the folder itself (checked), or for a git URL a temporary shallow
    fetch of the version tags `revs` (all of them if None)."""
    if gitauth.is_url(str(repo)):
        url = gitauth.check_url(str(repo))
        with tempfile.TemporaryDirectory(prefix="dataversion-read-") as tmp:
            fetch_versions(url, revs, Path(tmp))
            yield Path(tmp)
    else:
        yield require_repo(repo)


def version_tags(repo: Path) -> list[str]:
    """`dataset_vN` tags in version order."""
    out = _git_out(repo, "tag", "--list", f"{TAG_PREFIX}*")
    tags = [t for t in out.split() if re.fullmatch(rf"{TAG_PREFIX}\d+", t)]
    return sorted(tags, key=lambda t: int(t[len(TAG_PREFIX):]))



def resolve(repo: Path, rev: str, name: str | Path | None = None) -> str:
    """The commit a version name points at (NotFound if none): every later git call gets this hash."""
    check_rev(rev)
    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
                          cwd=repo, env=tool_env(), capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise NotFound(f"no dataset version {rev!r} in {name or repo} (see `dataversion versions`)")
    return proc.stdout.strip()


def read_manifest(repo: str | Path, rev: str) -> dict:
    """The manifest of a version, from git (no data download)."""
    with opened(repo, [rev]) as path:
        return _manifest(path, rev, repo)


def _manifest(repo: Path, rev: str, name: str | Path) -> dict:
    commit = resolve(repo, rev, name)
    proc = subprocess.run(["git", "show", f"{commit}:{MANIFEST}"], cwd=repo, env=tool_env(), capture_output=True)
    if proc.returncode != 0:
        raise NotFound(f"{rev!r} of {name} has no {MANIFEST}; it is not a dataset version")
    try:
        manifest = json.loads(proc.stdout.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
        raise LabError(f"the {MANIFEST} of {rev!r} in {name} is not valid JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("items", []), list):
        raise LabError(f"the {MANIFEST} of {rev!r} in {name} is not a manifest written by `dataversion snapshot`")
    return manifest


def list_versions(repo: str | Path) -> list[dict]:
    """Each dataset_vN tag with its date, commit, message and counts."""
    with opened(repo) as path:
        return _list_versions(path, repo)


def _list_versions(repo: Path, name: str | Path) -> list[dict]:
    out = _git_out(repo, "for-each-ref", "--format=%(refname:short)\t%(creatordate:iso-strict)\t%(*objectname)"
              "%(objectname)\t%(contents:subject)", f"refs/tags/{TAG_PREFIX}*")
    rows = {}
    for line in out.splitlines():
        name, date, obj, subject = (line.split("\t") + ["", "", ""])[:4]
        rows[name] = (date, obj, subject)
    versions = []
    for tag in version_tags(repo):
        date, obj, subject = rows.get(tag, ("", "", ""))
        manifest = _manifest(repo, tag, name)
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
    with opened(repo, [old, new]) as path:
        out = diff_manifests(_manifest(path, old, repo), _manifest(path, new, repo))
    return {"old": old, "new": new, **out}


# --- reading a version into a folder --------------------------------------------------------------------------


def checkout(repo: str | Path, rev: str, dest: str | Path, endpoint: str | None = None) -> dict:
    """Copy dataset version `rev` into the new folder `dest` (never the workspace, never the bucket mount).

    Reads through DVC's filesystem: from the local cache when it has the files, else from the remote.
    """
    if Path(dest).is_symlink():  # a link (dangling or not) would have the files land somewhere else
        raise ConfigError(f"{dest} is a symbolic link; check out into a new or empty folder")
    if Path(dest).exists() and not Path(dest).is_dir():
        raise ConfigError(f"{dest} is a file; check out into a new or empty folder")
    dest = Path(dest).resolve()
    refuse_mounted(dest)
    with opened(repo, [rev]) as path:
        if dest == path or path in dest.parents and dest.relative_to(path).parts[:1] in (
                (DATASET_DIR,), (".dvc",), (".git",)):
            raise ConfigError(f"refusing to check out into {dest}: pick a folder outside the repository's "
                              "dataset/.dvc/.git")
        if dest.exists() and any(dest.iterdir()):
            raise ConfigError(f"{dest} is not empty; check out into a new or empty folder")
        manifest = _manifest(path, rev, repo)
        commit = resolve(path, rev, repo)  # DVC reads the commit, not a name it could take for something else
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
        try:
            count = download(str(path), commit, tmp, endpoint=endpoint)
            if dest.exists():
                dest.rmdir()
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return {"rev": rev, "dest": str(dest), "files": count, "items": manifest.get("counts", {}).get("items")}
