"""File names in an export: unique, safe, stable across runs (Namer, base_name) and the items a writer gets."""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Callable, Iterable

from .. import gcs
from ..formats import Item, file_stem
from ..errors import ConfigError
from ..tasks import POLICIES, Annotation, Task, choose_annotation


_THREE_WORDS = struct.Struct("<III").unpack


class Namer:
    """Unique image file names inside one export: the source's base name, the task id added on a clash.

    What must be unique is the name without its extension, compared without case: label files (YOLO's
    `labels/cat.txt`, VOC's `cat.xml`, MOT's `cat.txt`, video frames `cat_000001.jpg`) are named after it, so
    `cat.jpg` and `cat.png` (or `Cat.png` on a case-insensitive disk) would share one.

    Names seen are remembered in a fixed-size Bloom filter (2 MiB), not a set, so memory does not grow with the
    project. A Bloom filter never misses a name it saw, so names stay unique; a rare false alarm only adds the
    task id to a name that did not need it (deterministically, so reruns give the same names). A set of the names
    is 3.4x quicker but grows with the export: 103 MB for a million names against 10.6 MB
    (`benchmarks/bench_machinery.py`, "names").
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
        a, b, c = slots or self.slots(name)
        bits = self.bits
        # unrolled: the main process of a parallel export runs this once per image, while the workers wait
        if bits[a >> 3] & (1 << (a & 7)) and bits[b >> 3] & (1 << (b & 7)) and bits[c >> 3] & (1 << (c & 7)):
            return True
        bits[a >> 3] |= 1 << (a & 7)
        bits[b >> 3] |= 1 << (b & 7)
        bits[c >> 3] |= 1 << (c & 7)
        return False

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


ALL = "all"  # the policy of json-min and csv that writes every submitted annotation, as Label Studio does


def every_annotation(task: Task) -> list[Annotation]:
    """A task's submitted annotations, newest first: the records Label Studio's JSON-MIN and CSV write for it."""
    return sorted(task.valid_annotations, key=lambda a: a.created_at, reverse=True)


def make_items(tasks: Iterable[Task], policy: str, key: str | None, include_unlabeled: bool, stats: dict,
               name: Callable[[Task, str | None, str | None], str] | None = None) -> list[Item]:
    """Tasks -> export items: the chosen annotation, the image's source URL and file name (`name`; None: the
    base name, for the caller to make unique), its size if a region recorded it. Tasks without a valid annotation
    are counted and left out unless `include_unlabeled`. Policy `all`: an item per submitted annotation."""
    if policy != ALL and policy not in POLICIES:  # checked here: a task with one annotation skips choose_annotation
        raise ConfigError(f"unknown annotation policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    items: list[Item] = []
    seen = skipped = 0
    gs_url = gcs.gs_url_from_ref
    for task in tasks:  # runs once per task of large exports: kept free of helper calls
        seen += 1
        if policy == ALL:
            anns: list = every_annotation(task) or [None]
            ann = anns[0]
            if ann is None and task.annotations:  # every annotation skipped: Label Studio writes no record either
                skipped += 1
                continue
        else:
            anns = task.annotations
            if len(anns) == 1:  # choose_annotation's common case, inlined: nothing to choose between
                ann = None if anns[0].was_cancelled else anns[0]
            else:
                ann = choose_annotation(task, policy)
        if ann is None and not include_unlabeled:
            skipped += 1
            continue
        ref = task.data.get(key) if key else task.media_url(None)
        url = ref if type(ref) is str and ref.startswith("gs://") else gs_url(ref)
        width = height = None
        if ann is not None:
            for region in ann.result:
                if region.original_width and region.original_height:
                    width, height = int(region.original_width), int(region.original_height)
                    break
        label = base_name(task.id, url, ref) if name is None else name(task, url, ref)
        first = Item(task, ann, label, url, width, height)
        items.append(first)
        if policy == ALL:  # the other annotations: the same image, placed once (by the first), the same paths
            items.extend(Item(task, other, label, url, width, height, first.placed, same_image=True)
                         for other in anns[1:])
    stats["tasks"] += seen
    stats["unlabeled_skipped"] += skipped
    return items


def image_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as img:  # reads the header only
            return img.size
    except Exception:  # not an image (a video, a PDF) or one PIL refuses: its size stays unknown
        return None
