"""A labeled snapshot: Label Studio's target-storage annotations + the source images, as a training-ready folder.

The folder is written by the export library (`datalabel.export.convert`: ImageFolder, COCO, YOLO, ...), plus a
`manifest.json` that says what went in: counts per class and annotator, the Label Studio project, the label
config's hash, the source prefixes and one entry per item (source image, labels, annotation id).

Where the bytes come from:
- BucketSource: the GCS JSON API through gcsfs (async, many requests in flight; a bounded number against the
  emulator, which serves one request at a time and drops connections beyond a short accept queue).
- MountSource: a gcsfuse mount of the bucket (the versioning container), read with threads.
Either way nothing is written to the bucket, and an empty or unreadable source is refused before any output.
"""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import dataversion  # noqa: F401  (gcsfs settings before gcsfs is imported)
from datalabel import gcs
from datalabel.errors import ConfigError, LabError, NotFound, ServerError
from datalabel.labelconfig import LabelConfig, parse_config
from datalabel.tasks import Task, choose_annotation, merge_tasks

MANIFEST = "manifest.json"
DEFAULT_LABELS_PREFIX = "labels/"
EMULATOR_CONCURRENCY = 4
CLOUD_CONCURRENCY = 32


def default_concurrency() -> int:
    value = os.environ.get("DATAVERSION_CONCURRENCY")
    if value:
        return max(1, int(value))
    return EMULATOR_CONCURRENCY if os.environ.get("STORAGE_EMULATOR_HOST") else CLOUD_CONCURRENCY


# --- sources ---------------------------------------------------------------------------------------------------


class BucketSource:
    """Read objects of one bucket through the GCS API (gcsfs); also an export ImageSource."""

    def __init__(self, bucket: str, credentials_file: str | None = None, concurrency: int | None = None):
        self.bucket = bucket
        self.concurrency = concurrency or default_concurrency()
        self.credentials_file = credentials_file
        self._fs = None

    def describe(self, prefix: str = "") -> str:
        return f"gs://{self.bucket}/{gcs.norm_prefix(prefix)}"

    @property
    def fs(self):
        if self._fs is None:
            import gcsfs

            emulator = os.environ.get("STORAGE_EMULATOR_HOST")
            token = "anon" if emulator else (self.credentials_file or None)
            self._fs = gcsfs.GCSFileSystem(token=token, endpoint_url=emulator or None, skip_instance_cache=True)
        return self._fs

    def check(self) -> None:
        """The bucket exists and answers (google-cloud-storage's short retry budget: a wrong host fails fast)."""
        gcs.bucket(gcs.client(self.credentials_file), self.bucket)

    def list(self, prefix: str) -> dict[str, str]:
        """Object key -> version (generation, else MD5) under prefix; folder placeholders left out."""
        prefix = gcs.norm_prefix(prefix)
        try:
            found = self.fs.find(f"{self.bucket}/{prefix}", detail=True)
        except FileNotFoundError:
            return {}
        except Exception as exc:
            raise ServerError(f"cannot list {self.describe(prefix)}: {str(exc).splitlines()[0][:200]}") from None
        return {path.split("/", 1)[1]: str(info.get("generation") or info.get("md5Hash") or info.get("etag") or "")
                for path, info in sorted(found.items()) if not path.endswith("/")}

    def read_many(self, keys: list[str], progress: Callable[[int], None] | None = None,
                  bucket_of: list[str] | None = None, missing: str = "gs://{path} disappeared while reading; "
                  "run the snapshot again") -> list[bytes]:
        """The bytes of each key (of this bucket, or of `bucket_of[i]`), `concurrency` requests in flight."""
        paths = [f"{b}/{k}" for b, k in zip(bucket_of or [self.bucket] * len(keys), keys)]
        out: list[bytes] = []
        step = 512  # progress in steps
        for i in range(0, len(paths), step):
            chunk = paths[i:i + step]
            try:
                got = self.fs.cat(chunk, batch_size=self.concurrency, on_error="return")
            except Exception as exc:
                raise ServerError(f"cannot read {self.describe()}: {str(exc).splitlines()[0][:200]}") from None
            for path in chunk:
                value = got.get(path)
                if isinstance(value, FileNotFoundError):
                    raise NotFound(missing.format(path=path, url=f"gs://{path}"))
                if isinstance(value, BaseException):
                    raise ServerError(f"cannot read gs://{path}: {str(value).splitlines()[0][:200]}")
                out.append(value)
            if progress:
                progress(len(chunk))
        return out

    def fetch(self, jobs: list[tuple[str, Path]], progress: Callable[[int], None] | None = None) -> None:
        """ImageSource for datalabel.export.convert: write each gs:// URL to its destination.

        `cat` (one GET per object) rather than `get`, which first asks for each object's metadata and lists
        its parent: three requests instead of one.
        """
        by_url: dict[str, list[Path]] = {}
        for url, dest in jobs:
            by_url.setdefault(url, []).append(dest)
        urls = list(by_url)
        bodies = self.read_many([gcs.split_url(u)[1] for u in urls], bucket_of=[gcs.split_url(u)[0] for u in urls],
                                missing="image {url} is not in the bucket; fix the task or restore the file")
        for url, body in zip(urls, bodies):
            for dest in by_url[url]:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(body)
        if progress:
            progress(len(jobs))


class MountSource:
    """Read one bucket through a local mount (gcsfuse) of it: gs://BUCKET/key is ROOT/key."""

    def __init__(self, root: str | Path, bucket: str, workers: int = 16):
        self.root = Path(root)
        self.bucket = bucket
        self.workers = workers

    def describe(self, prefix: str = "") -> str:
        return f"{self.root / prefix} (gs://{self.bucket}/{gcs.norm_prefix(prefix)} mounted)"

    def check(self) -> None:
        if not self.root.is_dir():
            raise NotFound(f"bucket mount {self.root} does not exist; is the bucket mounted?")
        try:
            empty = not any(self.root.iterdir())
        except OSError as exc:
            raise ServerError(f"cannot read the bucket mount {self.root}: {exc.strerror}") from None
        if empty:
            raise NotFound(f"bucket mount {self.root} is empty: the mount failed or the bucket has no objects")

    def list(self, prefix: str) -> dict[str, str]:
        """File key -> version (modification time and size)."""
        base = self.root / prefix
        if not base.is_dir():
            return {}
        out = {}
        for path in sorted(base.rglob("*")):
            if path.is_file():
                st = path.stat()
                out[path.relative_to(self.root).as_posix()] = f"{st.st_mtime_ns}:{st.st_size}"
        return out

    def read_many(self, keys: list[str], progress: Callable[[int], None] | None = None) -> list[bytes]:
        def one(key: str) -> bytes:
            data = (self.root / key).read_bytes()
            if progress:
                progress(1)
            return data

        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(one, keys))

    def _path(self, url: str) -> Path:
        bucket, key = gcs.split_url(url)
        if bucket != self.bucket:
            raise ConfigError(f"{url} is in bucket {bucket!r}, but only gs://{self.bucket} is mounted")
        return self.root / key

    def fetch(self, jobs: list[tuple[str, Path]], progress: Callable[[int], None] | None = None) -> None:
        def one(job: tuple[str, Path]) -> None:
            url, dest = job
            src = self._path(url)
            if not src.is_file():
                raise NotFound(f"image {url} is not in the bucket ({src} missing); fix the task or restore the file")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)

        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(one, jobs))
        if progress:
            progress(len(jobs))


def open_source(bucket: str, mount: str | Path | None = None, credentials_file: str | None = None,
                concurrency: int | None = None):
    if not bucket:
        raise ConfigError("no bucket: set GCS_BUCKET_NAME or pass --bucket")
    if mount:
        return MountSource(mount, bucket)
    return BucketSource(bucket, credentials_file, concurrency)


# --- annotations -----------------------------------------------------------------------------------------------


def cache_path(repo: Path, bucket: str, prefix: str) -> Path:
    """Where a dataset repository keeps its label cache for one source (DVC's own tmp dir, ignored by git)."""
    import hashlib

    key = hashlib.sha1(f"{bucket}/{gcs.norm_prefix(prefix)}".encode()).hexdigest()[:12]
    return Path(repo) / ".dvc" / "tmp" / f"dataversion-labels-{key}.sqlite"


class LabelCache:
    """Target-storage files already read, by key and version (SQLite), so a new snapshot of a project where a
    few annotations changed downloads only those. Lives outside the dataset (e.g. .dvc/tmp/)."""

    def __init__(self, path: str | Path):
        import sqlite3

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path))
        self.db.execute("CREATE TABLE IF NOT EXISTS files (key TEXT PRIMARY KEY, version TEXT, body BLOB)")

    def get(self, listing: dict[str, str]) -> dict[str, bytes]:
        found = {}
        for key, version, body in self.db.execute("SELECT key, version, body FROM files"):
            if listing.get(key) == version and version:
                found[key] = body
        return found

    def replace(self, listing: dict[str, str], bodies: dict[str, bytes]) -> None:
        with self.db:
            self.db.execute("DELETE FROM files")
            self.db.executemany("INSERT INTO files VALUES (?, ?, ?)",
                                [(k, listing[k], bodies[k]) for k in listing])

    def close(self) -> None:
        self.db.close()


def read_labeled_tasks(source, prefix: str = DEFAULT_LABELS_PREFIX,
                       progress: Callable[[int], None] | None = None, cache: str | Path | None = None) -> list[Task]:
    """Tasks from the JSON files target storage wrote under `prefix` (one file per task or per annotation),
    merged per task through the shared task model. Refuses a missing, empty or unlabeled source.

    With `cache` (a file path), files whose version did not change since the last call are not downloaded.
    """
    source.check()
    listing = source.list(prefix)
    if not listing:
        raise NotFound(f"no annotations under {source.describe(prefix)}: connect the project's target storage "
                       "to this prefix and sync it (datalabel storage sync), then try again")
    store = LabelCache(cache) if cache else None
    try:
        bodies = store.get(listing) if store else {}
        todo = [k for k in listing if k not in bodies]
        if progress and bodies:
            progress(len(bodies))
        bodies.update(zip(todo, source.read_many(todo, progress)))
        tasks = []
        for key in listing:
            try:
                obj = json.loads(bodies[key])
            except ValueError:
                raise LabError(f"gs://{source.bucket}/{key} is not JSON; only Label Studio's target-storage files "
                               "belong under this prefix") from None
            tasks.append(Task.from_json(obj))
        if store:
            store.replace(listing, bodies)
    finally:
        if store:
            store.close()
    merged = merge_tasks(tasks)
    labeled = [t for t in merged if t.is_labeled]
    if not labeled:
        raise LabError(f"{len(merged)} task(s) under {source.describe(prefix)} but none has an annotation "
                       "that counts (skipped ones do not); label some, sync target storage, try again")
    return sorted(labeled, key=lambda t: (t.id is None, t.id))


def load_label_config(project_id: int | None = None, config_file: str | Path | None = None,
                      client=None) -> tuple[LabelConfig, int | None]:
    """The label config from a file, else from the Label Studio project (API)."""
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise NotFound(f"label config file {path} does not exist")
        return parse_config(path.read_text(encoding="utf-8")), project_id
    if project_id is None:
        raise ConfigError("no label config: pass --project ID (read from Label Studio) or --label-config FILE")
    from datalabel import ls

    client = client or ls.connect()
    return parse_config(ls.get_project(client, project_id).label_config), project_id


# --- snapshot --------------------------------------------------------------------------------------------------


def build_manifest(tasks: list[Task], config: LabelConfig, fmt: str, policy: str, project_id: int | None,
                   source: str, labels_prefix: str, export_report: dict) -> dict:
    items = []
    per_class: Counter = Counter()
    per_annotator: Counter = Counter()
    for task in tasks:
        ann = choose_annotation(task, policy)
        ref = task.media_url(config.data_key)
        labels = sorted(dict.fromkeys(ann.labels))
        per_class.update(labels)
        per_annotator[ann.completed_by or "unknown"] += 1
        items.append({"source": gcs.gs_url_from_ref(ref) or ref, "task": task.id,
                      "annotation": ann.id, "annotator": ann.completed_by, "labels": labels})
    projects = sorted({t.project for t in tasks if t.project is not None})
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "format": fmt,
        "policy": policy,
        "label_studio_project": project_id if project_id is not None else (projects[0] if len(projects) == 1 else None),
        "label_config_digest": config.digest,
        "classes": config.labels,
        "source": {"labels": source, "labels_prefix": gcs.norm_prefix(labels_prefix),
                   "images_prefixes": sorted({it["source"].rsplit("/", 1)[0] + "/" for it in items
                                              if isinstance(it["source"], str)})},
        "counts": {"items": len(items), "per_class": dict(sorted(per_class.items())),
                   "per_annotator": dict(sorted(per_annotator.items()))},
        "annotation_ids": sorted(it["annotation"] for it in items if it["annotation"] is not None),
        "export": {k: v for k, v in export_report.items() if k not in ("out_dir", "seconds")},
        "items": items,
    }


def snapshot(out_dir: str | Path, bucket: str, fmt: str = "imagefolder", config: LabelConfig | None = None,
             project_id: int | None = None, labels_prefix: str = DEFAULT_LABELS_PREFIX, policy: str = "latest",
             mount: str | Path | None = None, credentials_file: str | None = None, concurrency: int | None = None,
             progress: Callable[[int], None] | None = None, source=None, cache: str | Path | None = None) -> dict:
    """Build the dataset folder `out_dir` (atomically replaced) and its manifest. Returns the manifest.

    Images already in a previous snapshot at `out_dir` are linked, not downloaded again; with `cache`,
    annotation files are only downloaded when they changed.
    """
    from datalabel.export import convert

    from .repo import refuse_mounted

    if config is None:
        raise ConfigError("no label config: pass --project ID or --label-config FILE")
    out_dir = Path(out_dir).absolute()
    refuse_mounted(out_dir)
    source = source or open_source(bucket, mount, credentials_file, concurrency)
    tasks = read_labeled_tasks(source, labels_prefix, progress, cache)
    report = convert(tasks, out_dir, fmt, config, source, policy, progress)
    manifest = build_manifest(tasks, config, fmt, policy, project_id, source.describe(labels_prefix),
                              labels_prefix, report)
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST)
    return manifest
