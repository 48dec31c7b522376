"""A labeled snapshot: Label Studio's target-storage annotations + the source images, as a training-ready folder.

The folder is written by the export library (`datalabel.export.convert`: ImageFolder, COCO, YOLO, ...), plus a
`manifest.json` that says what went in: counts per class and annotator, the Label Studio project, the label
config's hash, the source prefixes and one entry per item (source image, labels, annotation id).

Where the bytes come from:
- the bucket: `datalabel.export.BucketObjects` (google-cloud-storage, several requests in flight), the same
  reader and cache (`datalabel.export.TaskCache`) the export watcher uses.
- MountSource: a gcsfuse mount of the bucket (the versioning container), read as files with threads; it plugs
  into the same reader.
Either way nothing is written to the bucket, and an empty or unreadable source is refused before any output.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from datalabel.api import (RUN_ONLY, BucketObjects, ConfigError, LabelConfig, LabError, NotFound, ServerError, Task,
                           TaskCache, check_key, choose_annotation, connect, convert, gs_url_from_ref, next_step, norm_prefix,
                           project_config, read_config_file, snapshot_quality, split_url, storage_client,
                           write_text_atomic)

from .common import MANIFEST, refuse_mounted

DEFAULT_LABELS_PREFIX = "labels/"
EMULATOR_CONCURRENCY = 4
CLOUD_CONCURRENCY = 32


def default_concurrency() -> int:
    value = os.environ.get("DATAVERSION_CONCURRENCY")
    if value:
        return max(1, int(value))
    return EMULATOR_CONCURRENCY if os.environ.get("STORAGE_EMULATOR_HOST") else CLOUD_CONCURRENCY


# --- sources ---------------------------------------------------------------------------------------------------


class MountSource:
    """Read one bucket through a local mount (gcsfuse) of it: gs://BUCKET/key is ROOT/key.

    A mount's listing lags the bucket: gcsfuse keeps what it listed for its metadata TTL (60 s by default). With
    `api` (the same bucket through the GCS API), `list` checks the mount against one API listing of the prefix;
    what the mount does not show yet, or shows older, is read through the API, and what the bucket no longer
    holds is left out. So a snapshot never misses a label the bucket already holds.
    """

    def __init__(self, root: str | Path, bucket: str, workers: int = 16, api: BucketObjects | None = None):
        self.root = Path(root)
        self._resolved_root = self.root.resolve()  # once: _inside runs for every file read
        self.bucket = bucket
        self.workers = workers
        self.api = api
        self.via_api: set[str] = set()  # keys the mount did not show (yet) as the bucket holds them

    def describe(self, prefix: str = "") -> str:
        return f"{self.root / prefix} (gs://{self.bucket}/{norm_prefix(prefix)} mounted)"

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
        """File key -> version (modification time and size; the API's MD5 for what the mount does not show)."""
        base = self._inside(self.root / check_key(prefix))
        seen: dict[str, tuple[int, float]] = {}
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    st = path.stat()
                    seen[path.relative_to(self.root).as_posix()] = (st.st_size, st.st_mtime)
        if self.api is None:
            return {key: f"{int(mtime * 1e9)}:{size}" for key, (size, mtime) in seen.items()}
        out = {}
        for key, (size, updated, md5) in self.api.entries(prefix).items():
            mounted = seen.get(key)
            # a stale entry: absent, another size, or older than the object (1 s: mounts round times)
            if mounted is None or mounted[0] != size or mounted[1] < updated - 1:
                self.via_api.add(key)
                out[key] = f"api:{md5}"
            else:
                out[key] = f"{int(mounted[1] * 1e9)}:{mounted[0]}"
        return out

    def url(self, key: str) -> str:
        return f"gs://{self.bucket}/{key}"

    def read_many(self, keys: list[str], progress: Callable[[int], None] | None = None) -> list[bytes]:
        def one(key: str) -> bytes:
            try:
                data = self._inside(self.root / check_key(key)).read_bytes()
            except FileNotFoundError:
                raise NotFound(f"{self.root / key} disappeared while reading; read it again") from None
            except OSError as exc:
                raise ServerError(f"cannot read {self.root / key} from the bucket mount: {exc.strerror}") from None
            if progress:
                progress(1)
            return data

        late = [k for k in keys if k in self.via_api]
        from_api = dict(zip(late, self.api.read_many(late, progress))) if late else {}
        with ThreadPoolExecutor(self.workers) as pool:
            mounted = dict(zip(rest := [k for k in keys if k not in from_api], pool.map(one, rest)))
        return [from_api[k] if k in from_api else mounted[k] for k in keys]

    def _path(self, url: str) -> Path:
        bucket, key = split_url(url)  # refuses keys with '..', '/...', '\\'
        if bucket != self.bucket:
            raise ConfigError(f"{url} is in bucket {bucket!r}, but only gs://{self.bucket} is mounted")
        return self._inside(self.root / key)

    def _inside(self, path: Path) -> Path:
        """`path` if it stays inside the mount once symlinks are followed; else a refusal."""
        if not path.resolve().is_relative_to(self._resolved_root):
            raise ConfigError(f"{path} leads outside the bucket mount {self.root}; refusing to read it")
        return path

    def fetch(self, jobs: list[tuple[str, Path]], progress: Callable[[int], None] | None = None) -> None:
        late = []

        def one(job: tuple[str, Path]) -> None:
            url, dest = job
            src = self._path(url)
            if not src.is_file():
                if self.api is not None:  # not in the mount's listing yet: the API says whether it exists
                    late.append(job)
                    return
                raise NotFound(f"image {url} is not in the bucket ({src} missing); fix the task or restore the file")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)

        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(one, jobs))
        if late:
            self.via_api.update(split_url(url)[1] for url, _ in late)
            self.api.fetch(late)
        if progress:
            progress(len(jobs))


def open_source(bucket: str, mount: str | Path | None = None, credentials_file: str | None = None,
                concurrency: int | None = None):
    """The bucket through the GCS API, or through a mount checked against the API (see MountSource)."""
    if not bucket:
        raise ConfigError("no bucket: set GCS_BUCKET_NAME or pass --bucket")
    api = BucketObjects(bucket, storage_client(credentials_file), concurrency or default_concurrency())
    if mount:
        return MountSource(mount, bucket, api=api)
    return api


# --- annotations -----------------------------------------------------------------------------------------------


def cache_path(repo: Path, bucket: str, prefix: str) -> Path:
    """Where a dataset repository keeps its label cache for one source (DVC's own tmp dir, ignored by git)."""
    key = hashlib.sha1(f"{bucket}/{norm_prefix(prefix)}".encode()).hexdigest()[:12]
    return Path(repo) / ".dvc" / "tmp" / f"dataversion-labels-{key}.sqlite"


def read_labeled_tasks(source, prefix: str = DEFAULT_LABELS_PREFIX,
                       progress: Callable[[int], None] | None = None, cache: str | Path | None = None) -> list[Task]:
    """Tasks from the JSON files target storage wrote under `prefix` (one file per task or per annotation),
    merged per task through the shared task model. Refuses a missing, empty or unlabeled source.

    With `cache` (a file path), files whose version did not change since the last call are not downloaded.
    """
    source.check()
    with TaskCache(cache) as store:
        counts = store.sync_source(source, prefix, progress)
        if not counts["new"] + counts["changed"] + counts["unchanged"]:
            raise NotFound(f"no annotations under {source.describe(prefix)}: connect the project's target storage "
                           "to this prefix and sync it (datalabel storage sync), then try again")
        tasks = list(store.tasks())
    labeled = [t for t in tasks if t.is_labeled]
    if not labeled:
        raise LabError(f"{len(tasks)} task(s) under {source.describe(prefix)} but none has an annotation "
                       "that counts (skipped ones do not); label some, sync target storage, try again")
    return labeled


def load_label_config(project_id: int | None = None, config_file: str | Path | None = None,
                      client=None) -> tuple[LabelConfig, int | None]:
    """The label config from a file, else from the Label Studio project (API)."""
    if config_file:
        return read_config_file(config_file), project_id
    if project_id is None:
        raise ConfigError("no label config: pass --project ID (read from Label Studio) or --label-config FILE")
    client = client or connect()
    return project_config(client, project_id), project_id


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
        items.append({"source": gs_url_from_ref(ref) or ref, "task": task.id,
                      "annotation": ann.id, "annotator": ann.completed_by, "labels": labels})
    projects = sorted({t.project for t in tasks if t.project is not None})
    # No timestamp here: this file is versioned with the data, so the same labels give the same bytes (and the
    # same DVC hash); `commit` records when a version was made in the git-tracked copy.
    return {
        "format": fmt,
        "policy": policy,
        "label_studio_project": project_id if project_id is not None else (projects[0] if len(projects) == 1 else None),
        "label_config_digest": config.digest,
        "classes": config.labels,
        "source": {"labels": source, "labels_prefix": norm_prefix(labels_prefix),
                   "images_prefixes": sorted({it["source"].rsplit("/", 1)[0] + "/" for it in items
                                              if isinstance(it["source"], str)})},
        "counts": {"items": len(items), "per_class": dict(sorted(per_class.items())),
                   "per_annotator": dict(sorted(per_annotator.items()))},
        "annotation_ids": sorted(it["annotation"] for it in items if it["annotation"] is not None),
        # what describes this run only (timings, images fetched vs reused) would make equal snapshots differ
        "export": {k: v for k, v in export_report.items() if k not in ("out_dir", *RUN_ONLY)},
        "items": items,
    }


def _answered(task: Task, policy: str) -> bool:
    ann = choose_annotation(task, policy)
    return ann is not None and bool(ann.labels)


def snapshot(out_dir: str | Path, bucket: str, fmt: str = "imagefolder", config: LabelConfig | None = None,
             project_id: int | None = None, labels_prefix: str = DEFAULT_LABELS_PREFIX, policy: str = "latest",
             mount: str | Path | None = None, credentials_file: str | None = None, concurrency: int | None = None,
             progress: Callable[[int], None] | None = None, source=None, cache: str | Path | None = None,
             client=None) -> dict:
    """Build the dataset folder `out_dir` (atomically replaced) and its manifest. Returns the manifest, with `run`:
    this run's figures that the written manifest leaves out (images fetched and reused, seconds).

    Images already in a previous snapshot at `out_dir` are linked, not downloaded again; with `cache`,
    annotation files are only downloaded when they changed. The manifest's `quality`: agreement on the tasks
    labeled by two or more annotators, and (with a Label Studio `client` and `project_id`) how many of the
    snapshot's tasks the last `datalabel quality mislabels` flagged.
    """
    if config is None:
        raise ConfigError("no label config: pass --project ID or --label-config FILE")
    out_dir = Path(out_dir).absolute()
    refuse_mounted(out_dir)
    source = source or open_source(bucket, mount, credentials_file, concurrency)
    tasks = read_labeled_tasks(source, labels_prefix, progress, cache)
    empty = 0
    if config.kind == "classification":
        # an empty submission (no choice) is not a label: left out, and counted apart as `datalabel stats` does
        answered = [t for t in tasks if _answered(t, policy)]
        empty, tasks = len(tasks) - len(answered), answered
        if not tasks:
            raise NotFound("no annotation with a choice in the target storage (only empty submissions); label "
                           "some, sync target storage, try again")
    next_step(progress, "snapshot: convert and copy the images", len(tasks), unit="tasks")
    report = convert(tasks, out_dir, fmt, config, source, policy, progress)
    manifest = build_manifest(tasks, config, fmt, policy, project_id, source.describe(labels_prefix),
                              labels_prefix, report)
    if empty:
        manifest["counts"]["empty_submissions"] = empty
    manifest["quality"] = snapshot_quality(tasks, config, client, project_id)
    write_text_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    # what describes this run only (images fetched vs reused, seconds) is returned, not written
    return {**manifest, "run": {k: report[k] for k in RUN_ONLY if k in report}}
