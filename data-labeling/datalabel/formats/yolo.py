"""YOLO (Ultralytics) label files: boxes and polygons, oriented boxes, pose."""
from __future__ import annotations

import json
import os

from ..errors import LabError
from ..files import can_fork
from .base import SHAPES, Writer
from .objects import IMAGE_DIR, Item, Obj, file_stem, image_objects


def _clamp(v: float) -> float:
    return 0.0 if v < 0 else 1.0 if v > 1 else v


def yolo_text(objs: list[Obj], class_id, oriented: bool = False) -> str:
    """One image's label file: a line per object, `cls cx cy w h` for boxes, `cls x1 y1 x2 y2 ...` for polygons;
    with `oriented` (YOLO-OBB), `cls x1 y1 ... x4 y4`: a rotated box's corners, else its box's corners.
    Normalized 0..1, clamped to the image. Objects without a box (image size unknown) are left out, uncounted."""
    lines = []
    for obj in objs:
        if obj.box is None:
            continue
        cls = class_id(obj.label)
        if oriented:
            if obj.corners:
                pts = obj.corners
            else:
                x, y, w, h = obj.box
                pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
            lines.append(f"{cls} " + " ".join(f"{_clamp(c / 100):.6f}" for p in pts for c in p) + "\n")
        elif obj.points:
            lines.append(f"{cls} " + " ".join(f"{_clamp(c / 100):.6f}" for p in obj.points for c in p) + "\n")
        else:
            x, y, w, h = obj.box
            x0, y0, x1, y1 = x / 100, y / 100, (x + w) / 100, (y + h) / 100
            if not (0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1):  # _clamp, inlined: this runs once per box
                x0 = 0.0 if x0 < 0 else 1.0 if x0 > 1 else x0
                y0 = 0.0 if y0 < 0 else 1.0 if y0 > 1 else y0
                x1 = 0.0 if x1 < 0 else 1.0 if x1 > 1 else x1
                y1 = 0.0 if y1 < 0 else 1.0 if y1 > 1 else y1
            lines.append("%d %.6f %.6f %.6f %.6f\n" % (cls, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0))
    return "".join(lines)


def _write_label_file(dir_fd: int, name: str, data: bytes) -> None:
    """One label file in the folder dir_fd, with one os-level write: they are tiny and there is one per image."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666, dir_fd=dir_fd)
    try:
        if data:
            os.write(fd, data)
    finally:
        os.close(fd)


def _label_file_worker(labels_dir: str, conn, parent_end=None) -> None:
    """Create label files sent as pickled [(file name, bytes)] batches; b"" ends. Replies with None or an error
    message, after reading everything (the sender never blocks on a worker that gave up)."""
    import pickle
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops this process
    if parent_end is not None:  # copied by the fork: held here, the parent's exit would never end the loop below
        parent_end.close()
    error = None
    try:
        dir_fd = os.open(labels_dir, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:  # stopped while this helper started: the export's folder is already gone
        return
    try:
        batches = iter(conn.recv_bytes, b"")
        for batch in batches:
            if error is not None:
                continue
            try:
                for name, data in pickle.loads(batch):
                    _write_label_file(dir_fd, name, data)
            except OSError as exc:
                error = f"cannot write label file {exc.filename or ''} in {labels_dir}: {exc.strerror or exc}"
    except EOFError:  # the parent is gone (killed): nobody to answer
        return
    finally:
        os.close(dir_fd)
    conn.send(error)


class _LabelFiles:
    """Label files are created by a helper process while this one decodes and formats the next tasks.

    Creating a file costs the kernel tens of microseconds and there is one per image: done inline that is most of a
    YOLO export's time. A thread would not help (it needs the GIL back after every system call); a forked process
    takes the work in batches through a pipe, whose fixed buffer keeps memory flat. Measured on 20,000 tasks in one
    process (`benchmarks/bench_machinery.py`, "labels"): 0.50 s against 0.71 s inline on a quiet 2-core machine,
    no gain when the other core is busy; a thread pool is slower than inline.
    """

    BATCH = 512

    def __init__(self, labels_dir: str):
        import multiprocessing

        self.batch: list[tuple[str, bytes]] = []
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_label_file_worker, args=(labels_dir, child, self.conn), daemon=True)
        self.proc.start()
        child.close()

    def add(self, name: str, data: bytes) -> None:
        self.batch.append((name, data))
        if len(self.batch) >= self.BATCH:
            self._send()

    def _send(self) -> None:
        import pickle

        try:
            self.conn.send_bytes(pickle.dumps(self.batch, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:  # the helper died (killed, out of memory): say so instead of a broken pipe
            raise LabError("the process writing YOLO label files stopped; rerun the export") from None
        self.batch = []

    def close(self) -> None:
        if self.batch:
            self._send()
        self.conn.send_bytes(b"")
        try:
            error = self.conn.recv()
        except EOFError:
            error = "the process writing YOLO label files stopped; rerun the export"
        self.conn.close()
        self.proc.join()
        if error:
            raise LabError(error)

    def abort(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


class YoloWriter(Writer):
    """images/, labels/ (one .txt per image, empty for an image without objects), classes.txt, data.yaml."""

    name = "yolo"
    expresses = SHAPES
    what = "boxes, polygons and ellipses (masks as their boxes)"
    parallel = True
    needs_size = True  # rotated boxes, ellipses and masks (only read where no region records it)
    oriented = False
    HOLD = 20_000  # label files a part writer may hold back while another one is creating its own

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        (self.root / "labels").mkdir(exist_ok=True)
        (self.root / IMAGE_DIR).mkdir(exist_ok=True)
        self.labels_dir = str(self.root / "labels")
        # files are created relative to this folder's descriptor: no path walk per label file
        self._labels_fd: int | None = os.open(self.labels_dir, os.O_RDONLY | os.O_DIRECTORY)
        # the helper process starts with the first label file (a main writer fed by part writers needs none)
        self._files: _LabelFiles | None = None
        self._use_helper = not self.part and can_fork()
        self._held: list[tuple[str, bytes]] = []  # a part writer's label files not created yet

    def _label_file(self, image_name: str, objs: list[Obj], item: Item) -> None:
        stem = file_stem(image_name)
        for obj in objs:
            if obj.box is None:  # a rotated box, an ellipse or a mask on an image of unknown size
                self.unsized(item, image_name, obj)
        data = self.text(objs).encode()
        self.write_masks(image_name, objs)
        if self.part:
            self._held.append((f"{stem}.txt", data))
        elif self._use_helper:
            if self._files is None:
                self._files = _LabelFiles(self.labels_dir)
            self._files.add(f"{stem}.txt", data)
        else:
            self._create(f"{stem}.txt", data)

    def text(self, objs: list[Obj]) -> str:
        return yolo_text(objs, self.class_id, self.oriented)

    def data_yaml_extra(self) -> str:
        return ""

    def _create(self, name: str, data: bytes) -> None:
        try:
            _write_label_file(self._labels_fd, name, data)
        except OSError as exc:
            raise LabError(f"cannot write label file {name} in {self.labels_dir}: {exc.strerror or exc}") from None

    def _create_held(self, block: bool) -> None:
        """Part writers create their label files one at a time: processes creating files in one folder at once
        spin on its lock in the kernel (+60% system time, measured). A part writer that finds another at it goes
        on formatting and creates its files later."""
        if not self._held or not self.part_lock.acquire(block):
            return
        try:
            held, self._held = self._held, []
            for name, data in held:
                self._create(name, data)
        finally:
            self.part_lock.release()

    def take(self) -> dict:
        self._create_held(block=len(self._held) >= self.HOLD)
        return super().take()

    def finish_part(self) -> None:
        self._create_held(block=True)

    def _close_dir(self) -> None:
        fd = getattr(self, "_labels_fd", None)
        if fd is not None:
            self._labels_fd = None
            os.close(fd)

    def abort(self) -> None:
        files, self._files = getattr(self, "_files", None), None
        if files is not None:
            files.abort()
        self._close_dir()

    def __del__(self):  # a failed export never reaches finish()
        self.abort()

    def write(self, item: Item) -> None:
        self.items += 1
        if not self.video:  # an image: its one label file (the common case, without pictures()' list)
            self._label_file(item.name, image_objects(item, self.pose), item)
            return
        for name, objs, _, _, _ in self.pictures(item):
            self._label_file(name, objs, item)

    def finish(self) -> dict:
        files, self._files = self._files, None
        if files is not None:
            files.close()
        self._close_dir()
        (self.root / "classes.txt").write_text("".join(c + "\n" for c in self.classes), encoding="utf-8")
        # no `path:` key: Ultralytics then resolves train/val relative to this file's folder
        names = "\n".join(f"  {i}: {json.dumps(c, ensure_ascii=False)}" for i, c in enumerate(self.classes))
        (self.root / "data.yaml").write_text(
            f"# YOLO dataset exported from Label Studio\ntrain: {IMAGE_DIR}\nval: {IMAGE_DIR}\n"
            f"nc: {len(self.classes)}\nnames:\n{names}\n{self.data_yaml_extra()}", encoding="utf-8")
        return {"labels_dir": "labels", "image_dir": IMAGE_DIR}


def pose_text(objs: list[Obj], class_id, names: int) -> str:
    """A YOLO pose label file: `cls cx cy w h` and `x y v` for each of the `names` keypoints (0 0 0 where the
    instance has none), normalized; one line per box (polygons and masks by their box)."""
    lines = []
    for obj in objs:
        if obj.box is None:
            continue
        cls = class_id(obj.label)
        x, y, w, h = obj.box
        x0, y0, x1, y1 = _clamp(x / 100), _clamp(y / 100), _clamp((x + w) / 100), _clamp((y + h) / 100)
        parts = ["%d %.6f %.6f %.6f %.6f" % (cls, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)]
        for p in obj.keypoints or [None] * names:
            parts.append("%.6f %.6f 2" % (_clamp(p[0] / 100), _clamp(p[1] / 100)) if p else "0.000000 0.000000 0")
        lines.append(" ".join(parts) + "\n")
    return "".join(lines)


class YoloPoseWriter(YoloWriter):
    """YOLO pose (Ultralytics): the yolo layout, a line per instance with its keypoints; data.yaml has kpt_shape."""

    name = "yolo-pose"
    expresses = frozenset({"KeyPointLabels", "KeyPoint"})
    what = "keypoints"
    pose_aware = True

    def text(self, objs: list[Obj]) -> str:
        return pose_text(objs, self.class_id, len(self.pose.names))

    def data_yaml_extra(self) -> str:
        return f"kpt_shape: [{len(self.pose.names)}, 3]\nkpt_names: {json.dumps(self.pose.names)}\n"


class YoloObbWriter(YoloWriter):
    """YOLO-OBB (Ultralytics oriented boxes): the same layout, a line per object `cls x1 y1 x2 y2 x3 y3 x4 y4`."""

    name = "yolo-obb"
    oriented = True
