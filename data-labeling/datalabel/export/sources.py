"""Where tasks and images come from: a JSON export file, target storage in a bucket (through the incremental
TaskCache), the API; images from the bucket."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

from .. import gcs, ls
from ..gcs import norm_prefix
from ..errors import ConfigError, LabError, NotFound, ServerError
from ..tasks import Task, iter_tasks, merge_tasks


BATCH = 256  # tasks or objects handled at once: bounds memory, keeps requests in flight


def batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


class ImageSource(Protocol):
    def fetch(self, jobs: list[tuple[str, Path]], progress: Callable[[int], None] | None = None) -> None:
        """Write each (gs:// URL, destination path); raise LabError if any cannot be fetched."""


class BucketImages:
    """Images from GCS buckets (or the emulator), `workers` downloads in flight (gcsfs, asyncio)."""

    def __init__(self, storage_client=None, workers: int = gcs.WORKERS, fs=None):
        self.client = storage_client  # whose credentials the downloads use
        self.workers = workers
        self.fs = fs

    def fetch(self, jobs: list[tuple[str, Path]], progress: Callable[[int], None] | None = None) -> None:
        if self.fs is None:
            self.fs = gcs.filesystem(self.client)
        by_url: dict[str, list[Path]] = {}
        for url, dest in jobs:
            gcs.split_url(url)  # a clear error for anything but gs://
            by_url.setdefault(url, []).append(dest)
        urls = list(by_url)
        step = 256  # bytes held at once stay bounded
        for start in range(0, len(urls), step):
            chunk = urls[start:start + step]
            bodies = gcs.read_objects(self.fs, chunk, self.workers,
                                      missing="image {url} is not in the bucket; fix the task or restore the file")
            for url, body in zip(chunk, bodies):
                for dest in by_url[url]:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(body)
                if progress:
                    progress(len(by_url[url]))


def check_export_file(path: Path) -> None:
    """NotFound if missing, LabError if empty or whitespace only (it would convert to an empty dataset)."""
    if not path.is_file():
        raise NotFound(f"export file {path} does not exist")
    again = "export the project again (e.g. datalabel export api --project ID --type JSON --output export.json)"
    with open(path, "rb") as fp:
        while block := fp.read(1 << 16):
            if block.strip():
                break
        else:
            raise LabError(f"export file {path} is empty; {again}")
        if block.strip()[:1] not in (b"[", b"{"):
            raise LabError(f"export file {path} is not a JSON export (it begins with neither [ nor {{); {again}")
        fp.seek(max(0, fp.seek(0, os.SEEK_END) - (1 << 16)))
        tail = fp.read().rstrip()
        if tail[-1:] not in (b"]", b"}"):
            raise LabError(f"export file {path} does not end where its JSON does ({tail[-20:]!r}); {again}")


def read_export_file(path: str | Path) -> Iterator[Task]:
    """Tasks from a Label Studio JSON export (or JSON lines), one at a time; one line naming the file for
    text that is not UTF-8, nests too deep or is not a task."""
    path = Path(path)
    check_export_file(path)
    try:
        yield from iter_tasks(str(path))
    except UnicodeDecodeError:
        raise LabError(f"export file {path} is not UTF-8 text; export the project again as JSON") from None
    except RecursionError:
        raise LabError(f"export file {path} nests JSON too deep to be a Label Studio export") from None
    except LabError as exc:
        raise type(exc)(f"export file {path}: {exc}") from None



def _task_id(obj: dict):
    if isinstance(obj.get("task"), dict) and "data" not in obj:
        return obj["task"].get("id")
    return obj.get("id")


class ObjectSource(Protocol):
    """Where target-storage objects are read from: a bucket (BucketObjects) or a mount of one."""

    def list(self, prefix: str) -> dict[str, str]:
        """Object key -> version (changes when the content does) under prefix."""

    def read_many(self, keys: list[str]) -> list[bytes]:
        """The bytes of each key, in order; LabError if one cannot be read."""

    def url(self, key: str) -> str:
        """gs://bucket/key, for messages."""


class BucketObjects:
    """One bucket's objects through google-cloud-storage: an ObjectSource (`workers` requests in flight) and an
    ImageSource. `bucket` is a name (checked on first use) or a google.cloud.storage Bucket."""

    def __init__(self, bucket, storage_client=None, workers: int = gcs.WORKERS):
        self._bkt = None if isinstance(bucket, str) else bucket
        self.bucket = bucket if isinstance(bucket, str) else bucket.name
        self.client = storage_client
        self.workers = workers
        self._images = None
        self._fs = None

    @property
    def bkt(self):
        if self._bkt is None:
            self._bkt = gcs.bucket(self.client or gcs.client(), self.bucket)  # NotFound names the bucket
        return self._bkt

    def check(self) -> None:
        self.bkt

    def url(self, key: str) -> str:
        return f"gs://{self.bucket}/{key}"

    def describe(self, prefix: str = "") -> str:
        return self.url(gcs.norm_prefix(prefix))

    def list(self, prefix: str) -> dict[str, str]:
        """Key -> MD5 (a content hash: a target sync rewrites every file, mostly with the same annotations)."""
        return {key: version for key, (_, _, version) in self.entries(prefix).items()}

    def entries(self, prefix: str) -> dict[str, tuple[int, float, str]]:
        """Key -> (size, updated as a POSIX time, MD5) of every object under `prefix`: one listing."""
        from google.api_core import exceptions

        try:
            return {b.name: (int(b.size or 0), b.updated.timestamp() if b.updated else 0.0,
                             str(b.md5_hash or b.generation)) for b in gcs.list_blobs(self.bkt, prefix)}
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise ServerError(f"cannot list {self.describe(prefix)}: {exc}".splitlines()[0]) from None

    def read_many(self, keys: list[str], progress: Callable[[int], None] | None = None) -> list[bytes]:
        if not keys:  # nothing new: no filesystem (importing gcsfs alone takes ~0.8 s)
            return []
        if self._fs is None:
            self._fs = gcs.filesystem(self.bkt.client)
        return gcs.read_objects(self._fs, [self.url(k) for k in keys], self.workers, progress,
                                missing="{url} disappeared while reading; read it again")

    def fetch(self, jobs: list[tuple[str, Path]], progress: Callable[[int], None] | None = None) -> None:
        if self._images is None:
            if self._fs is None:
                self._fs = gcs.filesystem(self.bkt.client)
            self._images = BucketImages(self.bkt.client, self.workers, fs=self._fs)
        self._images.fetch(jobs, progress)


def check_cache_file(path: str | Path) -> Path:
    """A cache or state file (SQLite) a person named: a new path, or a regular file that is an SQLite database;
    ConfigError otherwise (an XML file, /dev/null, a folder), before anything is opened or written."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise ConfigError(f"cache file {path} is not a regular file; pass a new path (e.g. ./tasks.sqlite)")
        with open(path, "rb") as fp:
            head = fp.read(16)
        if head and head != b"SQLite format 3\x00":
            raise ConfigError(f"cache file {path} is not a cache written by datalabel (SQLite); pass a new path")
    return path


class TaskCache:
    """A local SQLite copy of the project's task JSON: what the last sync saw, keyed by blob (or task) name.

    It lets a watcher fetch only new or changed files, and lets tasks be read back sorted by task id, so the
    several files of one task (one per annotation) are merged without holding the project in memory.
    """

    def __init__(self, path: str | Path | None = None):
        self._tmp = None
        if path is None:
            self._tmp = tempfile.NamedTemporaryFile(prefix="datalabel-tasks-", suffix=".sqlite", delete=False)
            self._tmp.close()
            path = self._tmp.name
        self.path = check_cache_file(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False)
        try:
            self.db.executescript(
                "CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY, version TEXT, task_id INTEGER, body BLOB,"
                " sig TEXT);"
                "CREATE INDEX IF NOT EXISTS items_task ON items (task_id, name);"
                "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT);")
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise ConfigError(f"cache file {path} cannot be used ({exc}); pass a new path or delete it") from None

    def close(self) -> None:
        self.db.close()
        if self._tmp is not None:
            Path(self._tmp.name).unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def get_state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))
        self.db.commit()

    def _begin_sync(self) -> None:
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (name TEXT PRIMARY KEY)")
        self.db.execute("DELETE FROM seen")

    def _versions(self, names: list[str]) -> dict[str, str]:
        marks = ",".join("?" * len(names))
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(n,) for n in names])
        return dict(self.db.execute(f"SELECT name, version FROM items WHERE name IN ({marks})", names))

    def _put(self, name: str, version: str, body: bytes, where: str | None = None) -> bool:
        """Store one file; True if what it says about annotations (or task data) differs from the stored copy."""
        where = where or name
        try:
            obj = json.loads(body)
        except ValueError:
            raise LabError(f"{where} is not JSON; only Label Studio's target-storage files belong under this prefix") from None
        tid = _task_id(obj) if isinstance(obj, dict) else None
        if tid is None:
            raise LabError(f"{where} is not a Label Studio task or annotation (no task id)")
        sig = signature(Task.from_json(obj))
        old = self.db.execute("SELECT sig FROM items WHERE name = ?", (name,)).fetchone()
        self.db.execute("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)", (name, version, int(tid), body, sig))
        return old is None or old[0] != sig

    def _end_sync(self) -> int:
        removed = self.db.execute("DELETE FROM items WHERE name NOT IN (SELECT name FROM seen)").rowcount
        self.db.commit()
        return removed

    def sync_source(self, source: ObjectSource, prefix: str, progress: Callable[[int], None] | None = None) -> dict:
        """Download only the objects under prefix that are new or changed (by version) since the last sync."""
        self._begin_sync()
        counts = {"new": 0, "changed": 0, "unchanged": 0}
        for chunk in batched(source.list(prefix).items(), BATCH):
            have = self._versions([key for key, _ in chunk])
            todo = [(key, version) for key, version in chunk if have.get(key) != version]
            counts["unchanged"] += len(chunk) - len(todo)
            for (key, version), body in zip(todo, source.read_many([key for key, _ in todo])):
                differs = self._put(key, version, body, source.url(key))
                counts["unchanged" if not differs else "changed" if key in have else "new"] += 1
            if progress:
                progress(len(chunk))
        counts["removed"] = self._end_sync()
        return counts

    def sync_api(self, client, project_id: int, progress: Callable[[int], None] | None = None) -> dict:
        """Store every task of a project from the API; a task counts as changed when its annotations changed."""
        self._begin_sync()
        counts = {"new": 0, "changed": 0, "unchanged": 0}
        for chunk in batched(ls.iter_task_json(client, project_id), BATCH):
            names = [f"task/{obj.get('id')}" for obj in chunk]
            have = self._versions(names)
            for name, obj in zip(names, chunk):
                version = signature(Task.from_json(obj))
                if have.get(name) == version:
                    counts["unchanged"] += 1
                    continue
                counts["changed" if name in have else "new"] += 1
                self._put(name, version, json.dumps(obj).encode())
            if progress:
                progress(len(chunk))
        counts["removed"] = self._end_sync()
        return counts

    def tasks(self) -> Iterator[Task]:
        """Tasks sorted by id, the records of one task merged into one."""
        cur = self.db.execute("SELECT task_id, body FROM items ORDER BY task_id, name")
        group: list[Task] = []
        current = None
        for tid, body in cur:
            if tid != current and group:
                yield from merge_tasks(group)
                group = []
            current = tid
            group.append(Task.from_json(json.loads(body)))
        if group:
            yield from merge_tasks(group)

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(DISTINCT task_id) FROM items").fetchone()[0]


def signature(task: Task) -> str:
    """Changes when an annotation is added, updated, removed or cancelled, or the task's data changes."""
    parts = sorted(f"{a.id}:{a.updated_at}:{int(a.was_cancelled)}:{int(a.ground_truth)}" for a in task.annotations)
    parts.append(json.dumps(task.data, sort_keys=True))
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def read_target_storage(bucket, prefix: str, cache: str | Path | None = None, storage_client=None,
                        progress: Callable[[int], None] | None = None) -> Iterator[Task]:
    """Tasks from target-storage JSON under gs://bucket/prefix, streamed and merged per task.

    `bucket` is a name or a google.cloud.storage Bucket. With `cache` (a file path), files already fetched by an
    earlier call are not downloaded again.
    """
    source = BucketObjects(bucket, storage_client)
    store = TaskCache(cache)
    try:
        counts = store.sync_source(source, prefix, progress)
        if not any(counts[k] for k in ("new", "changed", "unchanged")):
            raise NotFound(f"no annotation files under {source.url(norm_prefix(prefix))}; check --prefix (the target "
                           "storage's prefix, e.g. labels/) and that it was synced (datalabel storage sync)")
        yield from store.tasks()
    finally:
        store.close()
