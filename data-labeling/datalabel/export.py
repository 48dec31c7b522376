"""Export and convert annotations into training formats, from the API or straight from the bucket.

Interface (stable; other tools build on it):

    convert(tasks: Iterable[Task], out_dir: Path, fmt: str, config: LabelConfig, images: ImageSource | None,
            policy: str = "latest", progress=None, *, include_unlabeled=False, frame_size=None) -> dict
        Write `tasks` as `fmt` (json-min, csv, coco, yolo, voc, imagefolder, mot) into out_dir, atomically:
        everything goes to a temporary folder beside out_dir that is renamed into place when complete; on any
        error the temporary folder is removed and an existing out_dir is left untouched. Returns a report
        (counts per class, items, objects, images fetched/reused). `policy` picks one annotation per task
        (tasks.choose_annotation: latest | ground-truth | majority); skipped/cancelled annotations never count.
        Images already present in a previous export in out_dir (same path, same source URL) are hard-linked,
        not fetched again.

    BucketImages(storage_client)        an ImageSource: fetches gs:// images into the output, in parallel (gcsfs).
    read_target_storage(bucket, prefix, cache=None) -> Iterator[Task]
        Tasks from the JSON files Label Studio's target storage wrote, streamed and merged per task.
    TaskCache(path).sync_source(source, prefix)   the one incremental reader of target storage: fetches only
        new or changed objects from any source with list(prefix) -> {key: version}, read_many(keys) -> [bytes]
        and url(key); BucketObjects is that source for a bucket (google-cloud-storage, parallel requests).
    read_export_file(path) -> Iterator[Task]            tasks from a Label Studio JSON export, streamed.
    export_from_api(client, project_id, export_type, dest) -> Path
        A server-side export in any format Label Studio offers (export snapshot, then download).
    watch(...)                            re-export whenever new or changed annotations arrive.
"""
from __future__ import annotations

import csv
import gc
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

from . import gcs, parallel
from .errors import LabError, NotFound, ServerError
from .files import can_fork, pid_alive
from .formats import DESCRIPTIONS, WRITERS, Item, Writer, file_stem, writer_for
from .labelconfig import LabelConfig
from .tasks import POLICIES, Task, choose_annotation, iter_tasks, merge_tasks

FORMATS = tuple(WRITERS)
MARKER = ".datalabel-export.json"  # the report, written last; marks a folder as ours to replace
BATCH = 256
# report fields that differ between identical exports
RUN_ONLY = ("seconds", "images_fetched", "images_reused", "workers")


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


# --- naming ----------------------------------------------------------------------------------------------------


_THREE_WORDS = struct.Struct("<III").unpack


class Namer:
    """Unique image file names inside one export: the source's base name, the task id added on a clash.

    What must be unique is the name without its extension, compared without case: label files (YOLO's
    `labels/cat.txt`, VOC's `cat.xml`, MOT's `cat.txt`, video frames `cat_000001.jpg`) are named after it, so
    `cat.jpg` and `cat.png` (or `Cat.png` on a case-insensitive disk) would share one.

    Names seen are remembered in a fixed-size Bloom filter (2 MiB), not a set, so memory does not grow with the
    project. A Bloom filter never misses a name it saw, so names stay unique; a rare false alarm only adds the
    task id to a name that did not need it (deterministically, so reruns give the same names).
    """

    BITS = 1 << 24

    def __init__(self):
        self.bits = bytearray(self.BITS // 8)

    @staticmethod
    def slots(name: str) -> tuple[int, int, int]:
        """The filter bits of a name's stem (without case): three 32-bit little-endian words of its digest, each
        mod BITS."""
        a, b, c = _THREE_WORDS(hashlib.blake2b(file_stem(name).casefold().encode(), digest_size=12).digest())
        mask = Namer.BITS - 1
        return a & mask, b & mask, c & mask

    def _seen(self, name: str, slots: tuple[int, int, int] | None = None) -> bool:
        bits = self.bits
        seen = True
        for s in slots or self.slots(name):
            byte, bit = s >> 3, 1 << (s & 7)
            if not bits[byte] & bit:
                seen = False
                bits[byte] |= bit
        return seen

    def __call__(self, task: Task, url: str | None, ref: str | None) -> str:
        return self.resolve(base_name(task.id, url, ref), task.id)

    def resolve(self, base: str, task_id, slots: tuple[int, int, int] | None = None) -> str:
        """`base`, or with the task id added if an earlier task of this export already took it. `slots`:
        Namer.slots(base), if computed already (by a worker process)."""
        if not self._seen(base, slots):
            return base
        stem = file_stem(base)
        suffix = base[len(stem):]
        name, n = f"{stem}_{task_id}{suffix}", 1
        while self._seen(name):
            n += 1
            name = f"{stem}_{task_id}_{n}{suffix}"
        return name


_UNSAFE = {c: "_" for c in [*range(32), 127, ord("\\"), ord(":")]}  # control characters, Windows separators
MAX_NAME = 200  # bytes; file systems take 255, and a clash or a frame number adds a few


def base_name(task_id, url: str | None, ref: str | None) -> str:
    """The file name a task's image would like to have: the last part of its URL, made safe as one file name
    (the URL comes from the server: no separators, control characters or dot-only names; bounded length)."""
    base = (url or ref or "").split("?")[0].rsplit("/", 1)[-1]
    if not base.isprintable() or "\\" in base or ":" in base:
        base = base.translate(_UNSAFE)
    if len(base) > MAX_NAME // 4 and len(base.encode()) > MAX_NAME:
        dot = base.rfind(".")
        suffix = base[dot:] if 0 < dot and len(base) - dot <= 10 else ""
        base = base.encode()[:MAX_NAME - len(suffix.encode())].decode("utf-8", "ignore") + suffix
    if not base.strip(". "):
        base = f"task_{task_id}.jpg"
    return base


def make_items(tasks: Iterable[Task], policy: str, key: str | None, include_unlabeled: bool, stats: dict,
               name: Callable[[Task, str | None, str | None], str] | None = None) -> list[Item]:
    """Tasks -> export items: the chosen annotation, the image's source URL and file name (`name`; None: the
    base name, for the caller to make unique), its size if a region recorded it. Tasks without a valid annotation
    are counted and left out unless `include_unlabeled`."""
    items: list[Item] = []
    seen = skipped = 0
    gs_url = gcs.gs_url_from_ref
    for task in tasks:  # runs once per task of large exports: kept free of helper calls
        seen += 1
        ann = choose_annotation(task, policy)
        if ann is None and not include_unlabeled:
            skipped += 1
            continue
        ref = task.media_url(key)
        url = gs_url(ref)
        width = height = None
        if ann is not None:
            for region in ann.result:
                if region.original_width and region.original_height:
                    width, height = int(region.original_width), int(region.original_height)
                    break
        label = base_name(task.id, url, ref) if name is None else name(task, url, ref)
        items.append(Item(task, ann, label, url, width, height))
    stats["tasks"] += seen
    stats["unlabeled_skipped"] += skipped
    return items


def _image_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as img:  # reads the header only
            return img.size
    except Exception:  # not an image (a video, a PDF) or one PIL refuses: its size stays unknown
        return None


# --- atomic output ---------------------------------------------------------------------------------------------


def _check_replaceable(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise LabError(f"{out_dir} exists and is not a folder; choose another output path")
        if any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
            raise LabError(f"{out_dir} is not empty and is not a previous export; choose an empty or new folder")


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished temporary folder to out_dir; a previous export there is replaced."""
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


def _remove_stale(out_dir: Path) -> None:
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


# --- convert ---------------------------------------------------------------------------------------------------


@contextmanager
def _fewer_gc_passes(young: int = 100_000):
    """Converting makes millions of short-lived containers and no reference cycles, so the cyclic collector's
    frequent young-generation passes (every 700 allocations by default) only cost time (~10%); run them rarer."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], young), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)



def convert(tasks: Iterable[Task], out_dir: str | Path, fmt: str, config: LabelConfig,
            images: ImageSource | None = None, policy: str = "latest", progress: Callable[[int], None] | None = None,
            *, include_unlabeled: bool = False, frame_size: tuple[int, int] | None = None,
            reuse_from: str | Path | None = None, allow_empty: bool = False,
            allow_unknown_labels: bool = False, all_frames: bool = False) -> dict:
    """Write tasks in a training format into out_dir, atomically. See the module docstring."""
    def body(writer: Writer, tmp: Path, reuse: Path | None) -> dict:
        return _run(tasks, writer, tmp, config, images, policy, progress, include_unlabeled, reuse)

    return _convert(body, out_dir, fmt, config, policy, frame_size, reuse_from,
                    Options(allow_empty, allow_unknown_labels, all_frames))


def convert_file(path: str | Path, out_dir: str | Path, fmt: str, config: LabelConfig,
                 images: ImageSource | None = None, policy: str = "latest",
                 progress: Callable[[int], None] | None = None, *, include_unlabeled: bool = False,
                 frame_size: tuple[int, int] | None = None, workers: int | None = None, allow_empty: bool = False,
                 allow_unknown_labels: bool = False, all_frames: bool = False) -> dict:
    """convert(read_export_file(path), ...), on every core where that pays: a label-only conversion (no images
    to fetch, so the work is all CPU) of a large image export to a format that can be written in parts (COCO,
    YOLO). `workers` caps the processes (default: the usable cores; 1 = one process). Same output either way."""
    path = Path(path)
    check_export_file(path)
    checks = Options(allow_empty, allow_unknown_labels, all_frames)
    workers = (workers or parallel.usable_cores()) if can_fork() else 1  # Windows: one process
    ranges = parallel.split(path, workers) if images is None and writer_for(fmt).parallel and workers > 1 else None
    if ranges:
        def body(writer: Writer, tmp: Path, reuse: Path | None) -> dict:
            return parallel.run(path, ranges, writer, config, policy, progress, include_unlabeled, workers)

        try:
            report = _convert(body, out_dir, fmt, config, policy, frame_size, None, checks)
            return {**report, "workers": min(workers, len(ranges))}
        except parallel.Unsplittable:
            pass  # a video export, or a range that does not parse on its own: the one-process reader takes any JSON
    report = convert(read_export_file(path), out_dir, fmt, config, images, policy, progress,
                     include_unlabeled=include_unlabeled, frame_size=frame_size, allow_empty=allow_empty,
                     allow_unknown_labels=allow_unknown_labels, all_frames=all_frames)
    return {**report, "workers": 1}


@dataclass(frozen=True)
class Options:
    """What an export refuses unless told to accept it, and what it writes beyond the labels."""

    allow_empty: bool = False  # an export with no item (no task, or none labeled)
    allow_unknown_labels: bool = False  # labels outside the config get the next class ids
    all_frames: bool = False  # video to images: every frame, not only the labeled ones


def check_frame_size(frame_size) -> tuple[int, int] | None:
    """None, or (width, height) as two positive integers; LabError otherwise."""
    if frame_size is None:
        return None
    try:
        w, h = frame_size
        ok = all(type(v) is int and v > 0 for v in (w, h))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise LabError(f"frame size {frame_size!r}: expected two positive integers WIDTHxHEIGHT, e.g. 1920x1080")
    return w, h


def check_config(fmt: str, config: LabelConfig) -> None:
    """LabError if `fmt` is unknown or cannot write any region of `config` (see Writer.check_config)."""
    writer_for(fmt).check_config(config)


def check_export_file(path: Path) -> None:
    """NotFound if missing, LabError if empty or whitespace only (it would convert to an empty dataset)."""
    if not path.is_file():
        raise NotFound(f"export file {path} does not exist")
    with open(path, "rb") as fp:
        while block := fp.read(1 << 16):
            if block.strip():
                return
    raise LabError(f"export file {path} is empty; export the project again "
                   "(e.g. datalabel export api --project ID --type JSON --output export.json)")


def _convert(body: Callable[[Writer, Path, Path | None], dict], out_dir: str | Path, fmt: str, config: LabelConfig,
             policy: str, frame_size: tuple[int, int] | None, reuse_from: str | Path | None,
             checks: Options = Options()) -> dict:
    """Everything but the reading: a temporary folder beside out_dir, the writer, `body(writer, tmp, reuse)` for
    the tasks (returns stats), the report, the swap into place; on any error nothing is left behind."""
    writer_cls = writer_for(fmt)
    if policy not in POLICIES:
        raise LabError(f"unknown annotation policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    frame_size = check_frame_size(frame_size)
    writer_cls.check_config(config)
    out_dir = Path(out_dir).absolute()
    _check_replaceable(out_dir)
    if reuse_from is None and (out_dir / MARKER).exists():
        reuse_from = out_dir  # images of the previous export are linked, not downloaded again
    reuse = Path(reuse_from) if reuse_from else None
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{os.getpid()}-", dir=out_dir.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the export is an ordinary folder
    started = time.monotonic()
    writer = None
    try:
        writer = writer_cls(tmp, config, frame_size, allow_unknown_labels=checks.allow_unknown_labels,
                            all_frames=checks.all_frames)
        with _fewer_gc_passes():
            stats = body(writer, tmp, reuse)
        report = writer.close()
        if not report["items"] and not checks.allow_empty:
            raise LabError(f"nothing to export: {stats['tasks']} task(s) read, {stats['unlabeled_skipped']} without "
                           f"a submitted annotation, none that {fmt} can write; label some, or pass --allow-empty "
                           "to write an empty dataset")
        report.update(stats, policy=policy, seconds=round(time.monotonic() - started, 3))
        # only what describes the content: the same export twice gives the same file (datasets get versioned)
        marker = {k: v for k, v in report.items() if k not in RUN_ONLY}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _swap_into_place(tmp, out_dir)
    except BaseException:
        if writer is not None:
            writer.abort()  # background writing stops before its folder goes
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report["out_dir"] = str(out_dir)
    return report


class _ImageIndex:
    """Which source URL each exported image came from: `.datalabel-images.csv` in the export (plain text, in
    export order, so identical exports are identical files).

    A later export into the same folder links an image from the previous one only if the same path came from the
    same URL, so a name that moved to another image (after a task was deleted) is downloaded again. The previous
    index is loaded into a temporary SQLite file, not into memory.
    """

    FILE = ".datalabel-images.csv"

    def __init__(self, out: Path | None, reuse: Path | None):
        self.fp = open(out / self.FILE, "w", encoding="utf-8", newline="") if out is not None else None
        self.out = csv.writer(self.fp) if self.fp is not None else None
        self.old = None
        self._old_path = None
        old = reuse / self.FILE if reuse is not None else None
        if self.out is not None and old is not None and old.is_file():
            fd, self._old_path = tempfile.mkstemp(prefix="datalabel-images-", suffix=".sqlite")
            os.close(fd)
            self.old = sqlite3.connect(self._old_path)
            self.old.execute("CREATE TABLE images (path TEXT PRIMARY KEY, url TEXT)")
            with open(old, encoding="utf-8", newline="") as fp:
                rows = csv.reader(fp)
                while batch := list(islice(rows, 10000)):
                    self.old.executemany("INSERT OR REPLACE INTO images VALUES (?, ?)", batch)

    def previous(self, paths: list[str]) -> dict[str, str]:
        if self.old is None or not paths:
            return {}
        marks = ",".join("?" * len(paths))
        return dict(self.old.execute(f"SELECT path, url FROM images WHERE path IN ({marks})", paths))

    def add(self, placed: list[tuple[str, str]]) -> None:
        if self.out is not None:
            self.out.writerows(placed)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.fp is not None:
            self.fp.close()
        if self.old is not None:
            self.old.close()
            Path(self._old_path).unlink(missing_ok=True)


def _run(tasks: Iterable[Task], writer: Writer, tmp: Path, config: LabelConfig, images: ImageSource | None,
         policy: str, progress, include_unlabeled: bool, reuse: Path | None) -> dict:
    """Chunks of tasks: pick annotations and names, fetch images, write. The images of one chunk download while
    the previous chunk is written, so the network and the writer overlap; at most two chunks are in memory."""
    from concurrent.futures import ThreadPoolExecutor

    stats = {"tasks": 0, "unlabeled_skipped": 0, "images_fetched": 0, "images_reused": 0, "images_not_in_bucket": 0}
    namer = Namer()
    key = config.data_key
    index = _ImageIndex(tmp if images is not None else None, reuse)

    def prepare(chunk: list[Task]) -> tuple[list[Item], list[tuple[str, Path]]]:
        items = make_items(chunk, policy, key, include_unlabeled, stats, namer)
        jobs: list[tuple[str, Path]] = []
        placed: list[tuple[str, str]] = []
        for item in items:
            dests = writer.image_dests(item) if images is not None else []
            if dests and item.url is None:
                stats["images_not_in_bucket"] += 1
                continue
            for rel in dests:
                item.placed.append(rel)
                placed.append((rel, item.url))
        before = index.previous([rel for rel, _ in placed])
        for rel, url in placed:
            if before.get(rel) == url and (reuse / rel).is_file():
                _link_or_copy(reuse / rel, tmp / rel)
                stats["images_reused"] += 1
            else:
                jobs.append((url, tmp / rel))
        index.add(placed)
        return items, jobs

    def finish(items: list[Item], fetching, n_tasks: int) -> None:
        if fetching is not None:
            fetching.result()  # raises the first failed download
        for item in items:
            if writer.needs_size and item.width is None and item.placed:
                size = _image_size(tmp / item.placed[0])
                if size:
                    item.width, item.height = size
            writer.write(item)
            item.objects = None  # brush masks can be large: only one item's are held at a time
        if progress:
            progress(n_tasks)

    pending = None
    with index, ThreadPoolExecutor(max_workers=1) as background:
        try:
            for chunk in _batched(tasks, BATCH):
                items, jobs = prepare(chunk)
                fetching = None
                if jobs:
                    fetching = background.submit(images.fetch, jobs)
                    stats["images_fetched"] += len(jobs)
                if pending is not None:
                    finish(*pending)
                pending = (items, fetching, len(chunk))
            if pending is not None:
                finish(*pending)
                pending = None
        except BaseException:
            # let a download still running finish before the caller removes the folder it writes into
            if pending is not None and pending[1] is not None:
                pending[1].exception()
            raise
    return stats


# --- sources ---------------------------------------------------------------------------------------------------


def read_export_file(path: str | Path) -> Iterator[Task]:
    """Tasks from a Label Studio JSON export (or JSON lines), one at a time."""
    path = Path(path)
    check_export_file(path)
    yield from iter_tasks(str(path))


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
        from google.api_core import exceptions

        try:
            return {b.name: str(b.md5_hash or b.generation) for b in gcs.list_blobs(self.bkt, prefix)}
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise ServerError(f"cannot list {self.describe(prefix)}: {exc}".splitlines()[0]) from None

    def read_many(self, keys: list[str], progress: Callable[[int], None] | None = None) -> list[bytes]:
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
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False)
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY, version TEXT, task_id INTEGER, body BLOB,"
            " sig TEXT);"
            "CREATE INDEX IF NOT EXISTS items_task ON items (task_id, name);"
            "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT);")

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
        for chunk in _batched(source.list(prefix).items(), BATCH):
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
        from . import ls

        self._begin_sync()
        counts = {"new": 0, "changed": 0, "unchanged": 0}
        for chunk in _batched(ls.iter_task_json(client, project_id), BATCH):
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
        store.sync_source(source, prefix, progress)
        yield from store.tasks()
    finally:
        store.close()


# --- server-side exports ---------------------------------------------------------------------------------------


def api_formats(client, project_id: int) -> list[dict]:
    """Formats Label Studio offers for this project's config: name, title, whether it is disabled."""
    from . import ls

    with ls.api_errors(f"export formats of project {project_id}", client.settings.url):
        raw = client.projects.exports.list_formats(id=project_id)
    out = []
    for f in raw:
        if isinstance(f, dict):
            out.append({"name": f.get("name"), "title": f.get("title", ""), "disabled": bool(f.get("disabled"))})
        else:
            out.append({"name": str(f), "title": "", "disabled": False})
    return out


def export_from_api(client, project_id: int, export_type: str, dest: str | Path, timeout: float = 600.0,
                    progress: Callable[[int], None] | None = None) -> Path:
    """Ask Label Studio for an export snapshot in `export_type` (e.g. JSON, COCO, YOLO) and download it to dest.

    The snapshot is created, polled until complete (no synchronous request to time out), then streamed into a
    temporary file that is renamed to `dest` only when the download finished with HTTP 2xx; an HTTP error is
    raised as a LabError and nothing is written.
    """
    from . import ls

    offered = api_formats(client, project_id)
    names = {f["name"]: f for f in offered}
    if export_type not in names:
        raise LabError(f"Label Studio does not offer {export_type!r} for project {project_id}; "
                       f"choose one of: {', '.join(n for n, f in names.items() if not f['disabled'])}")
    if names[export_type]["disabled"]:
        raise LabError(f"{export_type} does not fit project {project_id}'s label config; "
                       f"choose one of: {', '.join(n for n, f in names.items() if not f['disabled'])}")
    url = client.settings.url
    with ls.api_errors(f"create export of project {project_id}", url):
        snapshot = client.projects.exports.create(id=project_id, title=f"datalabel {export_type}")
    deadline = time.monotonic() + timeout
    while str(snapshot.status or "") not in ("completed", "failed"):
        if time.monotonic() > deadline:
            raise ServerError(f"export {snapshot.id} of project {project_id} still {snapshot.status} "
                              f"after {timeout:.0f}s; try again with a longer --timeout")
        time.sleep(1)
        with ls.api_errors(f"export {snapshot.id} of project {project_id}", url):
            snapshot = client.projects.exports.get(id=project_id, export_pk=snapshot.id)
    if snapshot.status == "failed":
        raise ServerError(f"Label Studio failed to build export {snapshot.id} of project {project_id}; see its log")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        with ls.api_errors(f"download {export_type} export of project {project_id}", url), open(part, "wb") as fp:
            for chunk in client.projects.exports.download(id=project_id, export_pk=snapshot.id,
                                                          export_type=export_type,
                                                          request_options={"chunk_size": 1 << 16}):
                fp.write(chunk)
                if progress:
                    progress(len(chunk))
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


# --- watch -----------------------------------------------------------------------------------------------------


@dataclass
class WatchSource:
    """Where a watcher looks: a bucket prefix (target storage) or a project through the API."""

    bucket: object | None = None
    prefix: str = ""
    client: object | None = None
    project_id: int | None = None

    def sync(self, cache: TaskCache, progress=None) -> dict:
        if self.bucket is not None:
            return cache.sync_source(BucketObjects(self.bucket), self.prefix, progress)
        if self.client is not None and self.project_id is not None:
            return cache.sync_api(self.client, self.project_id, progress)
        raise LabError("nothing to watch: give a bucket prefix or a project")


def export_once(source: WatchSource, cache: TaskCache, out_dir: str | Path, fmt: str, config: LabelConfig,
                images: ImageSource | None = None, policy: str = "latest", progress=None, force: bool = False,
                **options) -> dict:
    """One watch cycle: fetch what changed; if anything did (or no export exists yet), re-export.

    Only new/changed target files (or tasks whose annotations changed) are fetched; tasks are then re-read from
    the local cache and images already in the previous export are linked, not downloaded again.
    """
    out_dir = Path(out_dir)
    changes = source.sync(cache)
    key = f"{fmt}|{policy}|{config.digest}|{out_dir.absolute()}"
    fresh = cache.get_state("export") == key and (out_dir / MARKER).exists()
    if fresh and not force and not (changes["new"] or changes["changed"] or changes["removed"]):
        return {"changed": False, "fetched": changes}
    report = convert(cache.tasks(), out_dir, fmt, config, images, policy, progress, **options)
    cache.set_state("export", key)
    report["changed"] = True
    report["fetched"] = changes
    return report


def watch(source: WatchSource, out_dir: str | Path, fmt: str, config: LabelConfig, images: ImageSource | None = None,
          policy: str = "latest", interval: float = 30.0, cycles: int | None = None, state: str | Path | None = None,
          on_cycle: Callable[[dict], None] | None = None, **options) -> None:
    """Poll `source` every `interval` seconds and re-export when annotations change; `cycles` bounds the loop."""
    out_dir = Path(out_dir)
    state = Path(state) if state else out_dir.with_name(f".{out_dir.name}.state.sqlite")
    with TaskCache(state) as cache:
        n = 0
        while cycles is None or n < cycles:
            if n:
                time.sleep(interval)
            report = export_once(source, cache, out_dir, fmt, config, images, policy, **options)
            if on_cycle:
                on_cycle(report)
            n += 1


def describe_formats() -> list[dict]:
    return [{"format": name, "output": DESCRIPTIONS[name]} for name in WRITERS]
