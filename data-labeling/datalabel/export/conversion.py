"""Convert tasks into a training format: chunks of tasks named, their images fetched and written, the folder
swapped into place; an export file on every core (parallel.py)."""
from __future__ import annotations

import csv
import gc
import json
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable

from . import parallel, sources
from .. import formats
from ..errors import ConfigError, LabError
from ..files import can_fork
from ..formats import DESCRIPTIONS, WRITERS, Item, Writer, writer_for
from ..labelconfig import LabelConfig
from ..tasks import POLICIES, Task
from .folder import MARKER, RUN_ONLY, check_replaceable, link_or_copy, remove_stale, swap_into_place, umask
from .naming import ALL, Namer, image_size, make_items
from .sources import ImageSource, batched, check_export_file, read_export_file


FORMATS = tuple(WRITERS)


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
        raise ConfigError(f"frame size {frame_size!r}: expected two positive integers WIDTHxHEIGHT, e.g. 1920x1080")
    return w, h


def check_config(fmt: str, config: LabelConfig) -> None:
    """LabError if `fmt` is unknown or cannot write any region of `config`."""
    formats.check_config(fmt, config)


def _convert(body: Callable[[Writer, Path, Path | None], dict], out_dir: str | Path, fmt: str, config: LabelConfig,
             policy: str, frame_size: tuple[int, int] | None, reuse_from: str | Path | None,
             checks: Options = Options()) -> dict:
    """Everything but the reading: a temporary folder beside out_dir, the writer, `body(writer, tmp, reuse)` for
    the tasks (returns stats), the report, the swap into place; on any error nothing is left behind."""
    writer_cls = writer_for(fmt)
    if policy == ALL and writer_cls.class_ids_matter:
        raise ConfigError(f"--policy all writes a record per annotation, which only json-min, csv and tsv hold; "
                          f"{fmt} takes one annotation per task: choose one of: {', '.join(POLICIES)}")
    if policy not in POLICIES and policy != ALL:
        raise ConfigError(f"unknown annotation policy {policy!r}; choose one of: {', '.join(POLICIES)} "
                          f"(json-min, csv and tsv: also {ALL})")
    frame_size = check_frame_size(frame_size)
    formats.check_config(fmt, config)
    out_dir = Path(out_dir).absolute()
    check_replaceable(out_dir)
    if reuse_from is None and (out_dir / MARKER).exists():
        reuse_from = out_dir  # images of the previous export are linked, not downloaded again
    reuse = Path(reuse_from) if reuse_from else None
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir)
    # named before it is made, so that an interrupt landing right after the mkdir still removes it
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    started = time.monotonic()
    writer = None
    try:
        tmp.mkdir(mode=0o777 & ~umask())  # an ordinary folder, as the export will be
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
        swap_into_place(tmp, out_dir)
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
    key = writer.media_key
    index = _ImageIndex(tmp if images is not None else None, reuse)

    def prepare(chunk: list[Task]) -> tuple[list[Item], list[tuple[str, Path]]]:
        items = make_items(chunk, policy, key, include_unlabeled, stats, namer)
        jobs: list[tuple[str, Path]] = []
        placed: list[tuple[str, str]] = []
        for item in items:
            dests = writer.image_dests(item) if images is not None and not item.same_image else []
            if dests and item.url is None:
                # a dataset without its image is a silently wrong dataset: http:// or file: media are not copied
                ref = str(item.task.media_url(key) or "")[:100]
                raise LabError(f"task {item.task.id}: its media {ref!r} is not in a gs:// bucket, so it cannot be "
                               "copied into the dataset; fix the task's URL (labels alone: export convert --no-images)")
            for rel in dests:
                item.placed.append(rel)
                placed.append((rel, item.url))
        before = index.previous([rel for rel, _ in placed])
        for rel, url in placed:
            if before.get(rel) == url and (reuse / rel).is_file():
                link_or_copy(reuse / rel, tmp / rel)
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
                size = image_size(tmp / item.placed[0])
                if size:
                    item.width, item.height = size
            writer.write(item)
            item.objects = None  # brush masks can be large: only one item's are held at a time
        if progress:
            progress(n_tasks)

    pending = None
    with index, ThreadPoolExecutor(max_workers=1) as background:
        try:
            for chunk in batched(tasks, sources.BATCH):
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


def describe_formats(config=None) -> list[dict]:
    """Each format `convert` writes; with a label config, whether it fits (the test `convert` refuses by)."""
    if config is None:
        return [{"format": name, "output": DESCRIPTIONS[name]} for name in WRITERS]
    rows = []
    for name, writer in WRITERS.items():
        fits = writer.fits(config)
        rows.append({"format": name, "output": DESCRIPTIONS[name], "fits": fits,
                     "why_not": "" if fits else f"writes {writer.what}; the label config has none"})
    return rows
