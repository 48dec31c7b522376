"""Uploads and downloads of many objects at once, over threads: checked before anything is sent, unchanged files skipped."""
from __future__ import annotations

import base64
import hashlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Iterable

from ..errors import ConfigError, NotFound
from .names import norm_prefix
from .retry import api_call, api_retry, retry_timeout


WORKERS = 16


def md5_b64(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def parallel(fn: Callable, items: Iterable, workers: int = WORKERS, progress: Callable[[int], None] | None = None) -> list:
    """Run fn over items in threads (I/O bound), in order, reporting each finished item to `progress`."""
    items = list(items)
    results = [None] * len(items)
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items) or 1)))
    try:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if progress:
                progress(1)
    except BaseException:
        # the first failure (or Ctrl-C) ends the run: what has not started is cancelled, not tried one by one
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


# What an image's first bytes are, by its suffix: a file named .png that is not a PNG would become a task that
# cannot be shown.
IMAGE_MAGIC = {".png": (b"\x89PNG",), ".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",),
               ".gif": (b"GIF87a", b"GIF89a"), ".bmp": (b"BM",), ".webp": (b"RIFF",),
               ".tif": (b"II*\x00", b"MM\x00*"), ".tiff": (b"II*\x00", b"MM\x00*")}


def check_upload(folder: Path, files: list[Path]) -> None:
    """Before anything is uploaded: some files, none empty, images that are what their suffix says."""
    if not files:
        raise NotFound(f"no files in {folder} (hidden files are skipped); nothing to upload")
    for path in files:
        size = path.stat().st_size
        if size == 0:
            raise ConfigError(f"{path} is empty (0 bytes); remove it and upload again (nothing was uploaded)")
        magic = IMAGE_MAGIC.get(path.suffix.lower())
        if magic:
            with open(path, "rb") as fp:
                head = fp.read(12)
            if not head.startswith(magic) or (path.suffix.lower() == ".webp" and head[8:12] != b"WEBP"):
                raise ConfigError(f"{path} is not a {path.suffix.lstrip('.').upper()} image; fix or remove it "
                                  "(nothing was uploaded)")


def upload_folder(bkt, folder: str | Path, prefix: str, workers: int = WORKERS,
                  progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Upload every file below `folder` to `prefix/`, skipping blobs that already hold the same bytes (MD5)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"not a folder: {folder}")
    prefix = norm_prefix(prefix)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    check_upload(folder, files)
    existing = api_call(f"list gs://{bkt.name}/{prefix}", lambda: {
        b.name: b.md5_hash for b in bkt.list_blobs(prefix=prefix, retry=api_retry(f"list gs://{bkt.name}/{prefix}"))})

    def one(path: Path) -> str:
        name = prefix + path.relative_to(folder).as_posix()
        if existing.get(name) and existing[name] == md5_b64(path):
            return "skipped"
        what = f"upload gs://{bkt.name}/{name}"
        api_call(what, lambda: bkt.blob(name).upload_from_filename(str(path), retry=api_retry(what),
                                                                    timeout=min(60.0, retry_timeout())))
        return "uploaded"

    outcome = parallel(one, files, workers, progress)
    return {"uploaded": outcome.count("uploaded"), "skipped": outcome.count("skipped"), "total": len(files)}


def download_blobs(bkt, names: Iterable[str], dest_for: Callable[[str], Path], workers: int = WORKERS,
                   progress: Callable[[int], None] | None = None) -> int:
    """Download blobs in parallel to the paths `dest_for(name)` gives; returns how many were written."""

    def one(name: str) -> None:
        dest = dest_for(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        bkt.blob(name).download_to_filename(str(dest))

    return len(parallel(one, list(names), workers, progress))
