"""Converting a large export file on every core.

`export.convert_file` uses this for label-only conversions (no images to fetch, so the work is all CPU) to the
formats whose writer can run in parts (COCO, YOLO). The file is cut into byte ranges at task boundaries. Worker
processes each take a range: decode it, build the task model, pick annotations, compute objects. What has to
agree across the whole export is decided here, in file order, in one round trip per range: unique image names
(export.Namer), class ids for labels missing from the config, and where COCO's image and annotation ids start.
The worker then formats its range and sends the bytes back (a YOLO worker creates its label files itself), and
they are appended in file order. The output is the same, byte for byte, as the one-process path's.

Task boundaries are found with a pattern made of the first task's first two keys (`},{"id": 12, "annotations":`
in Label Studio's exports), which the objects nested in a task do not start with. A cut in the wrong place makes
its range fail to parse on its own; `Unsplittable` then sends the caller back to the one-process reader, which
takes any JSON. Memory stays bounded: a worker holds at most IN_FLIGHT ranges (of RANGE_BYTES of JSON each),
and this process at most that many ranges' output per worker, waiting for its turn to be appended.

Why not multiprocessing.Pool: a pool's workers keep nothing between jobs, so planning and writing become two
passes that decode every range twice; that takes 1.67x as long on 20,000 tasks (`benchmarks/bench_machinery.py`,
"scheduler").
"""
from __future__ import annotations

import gc
import json
import multiprocessing
import os
import queue
import re
import signal
import threading
import traceback
from collections import deque
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

from ..errors import LabError
from ..formats import Writer
from ..labelconfig import LabelConfig
from ..tasks import decode_tasks
from .naming import Namer, make_items


RANGE_BYTES = 256 << 10  # JSON per range: small enough to keep workers lean, large enough that round trips are cheap
MIN_FILE_BYTES = 1 << 20  # below this, starting workers costs more than it saves
MIN_RANGE_BYTES = 16 << 10
IN_FLIGHT = 2  # ranges given to a worker at a time
_SCALAR = rb'(?:-?[0-9][0-9.eE+-]*|"(?:[^"\\]|\\.)*"|null|true|false)'


class Unsplittable(Exception):
    """This export cannot be converted in parts; convert it in one process."""


def usable_cores() -> int:
    """Worker processes to use by default: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def split(path: Path, workers: int) -> list[tuple[int, int]] | None:
    """Byte ranges of a JSON array of tasks, each a run of whole tasks with the commas between them (but not
    around them); None if the file is small, not a JSON array of objects, or its tasks have no common leading
    keys to cut at. Reads a few KiB around each cut."""
    size = path.stat().st_size
    if size < MIN_FILE_BYTES:
        return None
    with open(path, "rb") as fp:
        first, start = _first_item(fp)
        if not isinstance(first, dict) or len(first) < 2:
            return None
        k1, k2 = (re.escape(json.dumps(k).encode()) for k in list(first)[:2])
        # the comma between two tasks, seen from the end of the first task (lookahead: the start of the next)
        boundary = re.compile(rb"\}\s*,(?=\s*\{\s*" + k1 + rb"\s*:\s*" + _SCALAR + rb"\s*,\s*" + k2 + rb"\s*:)")
        fp.seek(max(0, size - 4096))
        tail = fp.read().rstrip()
        if tail[-1:] != b"]":
            return None
        end = size - (fp.tell() - (max(0, size - 4096) + len(tail))) - 1  # the closing bracket
        step = max(MIN_RANGE_BYTES, min(RANGE_BYTES, (end - start) // (workers * 8)))
        ranges = []
        while start + step < end:
            found = _next_boundary(fp, boundary, start + step, end)
            if found is None:
                break
            ranges.append((start, found[0]))
            start = found[1]
        ranges.append((start, end))
    return ranges if len(ranges) > 1 else None


def _first_item(fp) -> tuple[object, int]:
    """The first item of the JSON array in fp and where the array's content starts; (None, 0) if there is none
    within the first MiB (a task that long is unusual enough to skip the parallel path)."""
    for size in (64 << 10, 1 << 20):
        fp.seek(0)
        head = fp.read(size)
        start = len(head) - len(head.lstrip())
        if head[start:start + 1] != b"[":
            return None, 0
        try:
            first, _ = json.JSONDecoder().raw_decode(head[start + 1:].decode("utf-8", "ignore").lstrip())
            return first, start + 1
        except ValueError:
            continue
    return None, 0


def _next_boundary(fp, boundary: re.Pattern, pos: int, end: int) -> tuple[int, int] | None:
    """The first comma between two tasks at or after pos: (just after the task before it, just after it)."""
    window = 64 << 10
    while pos < end:
        fp.seek(pos)
        data = fp.read(min(window, end - pos) + 512)  # + the longest a boundary match can be, near enough
        found = boundary.search(data)
        if found is not None:
            return pos + found.start() + 1, pos + found.end()
        pos += window
    return None


def run(path: Path, ranges: list[tuple[int, int]], writer: Writer, config: LabelConfig, policy: str,
        progress: Callable[[int], None] | None, include_unlabeled: bool, workers: int) -> dict:
    """Write the tasks of `ranges` through `writer` (the main writer) with up to `workers` processes; returns
    the same stats as the one-process path."""
    if writer.video:  # a video task becomes many frames; its ids and names are not worth planning in parts
        raise Unsplittable
    ctx = multiprocessing.get_context("fork")
    lock = ctx.Lock()  # for output the part writers take turns at (writer.part_lock)
    stats = {"tasks": 0, "unlabeled_skipped": 0, "images_fetched": 0, "images_reused": 0, "images_not_in_bucket": 0}
    jobs = deque(enumerate(ranges))
    procs = {}  # connection -> worker process
    outbox: dict = {}  # connection -> its _Sender
    planned: dict[int, tuple] = {}  # range index -> (connection, plan), until its turn comes
    written: dict[int, dict] = {}  # range index -> part output, until its turn comes
    tasks_in: dict[int, int] = {}
    namer = Namer()
    starts = [getattr(writer, name) for name in writer.sequences]
    resolved = appended = 0

    def give(conn) -> None:
        if jobs:
            index, (start, end) = jobs.popleft()
            outbox[conn].send(("range", index, start, end))

    try:
        for _ in range(min(workers, len(ranges))):
            conn, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, daemon=True, args=(
                child, str(path), type(writer), str(writer.root), config, writer.frame_size, policy,
                include_unlabeled, lock, (conn, *procs)))
            proc.start()
            child.close()
            procs[conn] = proc
        for conn in procs:  # threads only once every worker is forked: a fork copies no other thread
            outbox[conn] = _Sender(conn)
        for _ in range(IN_FLIGHT):
            for conn in procs:
                give(conn)
        while appended < len(ranges):
            sentinels = {proc.sentinel: conn for conn, proc in procs.items()}
            for ready in wait([*procs, *sentinels]):
                if ready in sentinels:  # a worker ended before it was told to
                    conn = sentinels[ready]
                    if conn.poll():
                        continue  # its last message (or the end of its pipe) is read first
                    _stopped(procs[conn])
                try:
                    kind, index, payload = ready.recv()
                except (EOFError, OSError):  # OSError: it died with messages of ours unread
                    procs[ready].join(5)
                    _stopped(procs[ready])
                if kind == "unsplittable":
                    raise Unsplittable
                if kind == "error":
                    raise LabError(payload)
                if kind == "failed":
                    raise RuntimeError(f"conversion worker failed:\n{payload}")
                if kind == "planned":
                    planned[index] = (ready, payload)
                else:  # written
                    written[index] = payload
                    give(ready)
            while resolved in planned:  # names, class ids and id starts, in file order
                conn, (proposals, labels, extents, counts) = planned.pop(resolved)
                renames = {}
                for k, (base, task_id, slots) in enumerate(proposals):
                    name = namer.resolve(base, task_id, slots)
                    if name != base:
                        renames[k] = name
                for label in labels:
                    if label not in writer.class_ids:
                        writer.new_class(label)
                outbox[conn].send(("decided", renames, list(writer.classes), starts))
                starts = [s + n for s, n in zip(starts, extents)]
                for key, n in counts.items():
                    stats[key] += n
                tasks_in[resolved] = counts["tasks"]
                resolved += 1
            while appended in written:
                writer.add(written.pop(appended))
                if progress:
                    progress(tasks_in.pop(appended))
                appended += 1
        for conn in procs:
            outbox[conn].send(None)
        for conn, proc in procs.items():  # each writes out what it held back, then says so
            try:
                kind, _, payload = conn.recv()
            except (EOFError, OSError):
                proc.join(5)
                _stopped(proc)
            if kind == "error":
                raise LabError(payload)
            if kind == "failed":
                raise RuntimeError(f"conversion worker failed:\n{payload}")
            proc.join()
    finally:
        for conn, proc in procs.items():
            if proc.exitcode is None:
                proc.kill()
            proc.join()
            if conn in outbox:
                outbox[conn].stop()
            conn.close()
    for name, value in zip(writer.sequences, starts):
        setattr(writer, name, value)
    return stats


class _Sender:
    """Sends to one worker, in order, from a thread: this process never blocks on a worker that is itself busy
    sending, so either side can run ahead of the other by the ranges in flight without a deadlock."""

    _STOP = object()

    def __init__(self, conn):
        self.conn = conn
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def send(self, message) -> None:
        self.queue.put(message)

    def stop(self) -> None:
        self.queue.put(self._STOP)
        self.thread.join(5)

    def _run(self) -> None:
        while (message := self.queue.get()) is not self._STOP:
            try:
                self.conn.send(message)
            except OSError:  # the worker is gone: the main loop reports it
                return


def _read_range(fd: int, start: int, end: int) -> bytearray | bytes:
    """Bytes start..end of the file between brackets: a JSON array of the range's tasks."""
    if not hasattr(os, "preadv"):  # macOS before Python 3.12
        return b"[" + os.pread(fd, end - start, start) + b"]"
    body = bytearray(end - start + 2)  # read straight between the brackets: no copies
    body[0], body[-1] = ord("["), ord("]")
    if os.preadv(fd, [memoryview(body)[1:-1]], start) != end - start:
        raise ValueError("the file changed while it was read")
    return body


def _stopped(proc) -> None:
    raise LabError(f"a conversion worker stopped (exit code {proc.exitcode}); rerun the export")


def _worker(conn, path: str, writer_cls: type[Writer], root: str, config: LabelConfig,
            frame_size: tuple[int, int] | None, policy: str, include_unlabeled: bool, lock,
            inherited: tuple = ()) -> None:
    """One worker: ("range", index, start, end) in, ("planned", index, plan) out; ("decided", renames, classes,
    starts) on the oldest planned range in, ("written", index, output) out; None ends it, ("finished", ...) is
    its last word. With a second range in flight, it plans that one while the decisions on the first are made."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle; it stops the workers
    for end in inherited:  # the main process's ends, copied by the fork: held here, its exit would never be seen
        end.close()
    gc.disable()  # a range's objects are freed by reference counting (no cycles): collector passes only cost
    try:
        writer = writer_cls(Path(root), config, frame_size, part=True, part_lock=lock)
    except FileNotFoundError:
        if not Path(root).exists():  # stopped while this worker started: the export's folder is already gone
            return
        raise
    fd = os.open(path, os.O_RDONLY)
    waiting: deque = deque()  # (range index, items) planned, waiting for the decisions on them
    index = None
    try:
        while (message := conn.recv()) is not None:
            if message[0] == "decided":  # on the oldest range planned
                _, renames, classes, starts = message
                index, items = waiting.popleft()
                for k, name in renames.items():
                    items[k].name = name
                writer.resume(classes, starts)
                for item in items:
                    writer.write(item)
                conn.send(("written", index, writer.take()))
                continue
            _, index, start, end = message
            try:
                tasks = decode_tasks(_read_range(fd, start, end))
            except (ValueError, LabError):  # cut inside a task, or invalid JSON (the one-process reader says where)
                conn.send(("unsplittable", index, None))
                continue
            counts = {"tasks": 0, "unlabeled_skipped": 0}
            items = make_items(tasks, policy, writer.media_key, include_unlabeled, counts)  # names: base names
            labels, extents = writer.plan(items)
            proposals = [(item.name, item.task.id, Namer.slots(item.name)) for item in items]
            waiting.append((index, items))
            conn.send(("planned", index, (proposals, labels, extents, counts)))
        writer.finish_part()
        conn.send(("finished", None, None))
    except EOFError:  # the main process is gone (killed): nobody to answer
        pass
    except LabError as exc:
        conn.send(("error", index, str(exc)))
    except Exception:  # a bug: the main process shows it
        conn.send(("failed", index, traceback.format_exc()))
    finally:
        os.close(fd)
        writer.abort()
