"""Training-format writers: JSON-MIN, CSV, COCO, YOLO, Pascal VOC, ImageFolder, MOT.

Every writer streams: `write(item)` is called once per task (after its image, if any, is in place) and output goes
to disk as it comes, so memory does not grow with the project. COCO is one JSON document, so its image and
annotation records are spooled to temporary files and stitched together in `close()`.

Class ids come from the label config's order (`LabelConfig.labels`): YOLO index i, COCO category id i + 1
(0 stays free for "background", as torchvision's detection models expect), ImageFolder folder names. A label that
is not in the config (the config changed after labeling) gets the next free id and is reported.

Coordinates: Label Studio stores x/y/width/height in percent of the image, top-left corner, rotation in degrees
clockwise around that corner, applied in pixels (geometry.py). Rotated boxes are exported as the axis-aligned box
around their corners (COCO adds the corners as segmentation; `yolo-obb` writes the corners), polygons as
polygons. label_studio_sdk.converter rotates the percent values instead, which is wrong on non-square images.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape

from .errors import LabError
from .files import can_fork
from .labelconfig import LabelConfig
from .geometry import bounds, brush_mask, coco_rle, ellipse_points, mask_bounds, polygon_area, rect_corners
from .tasks import Annotation, Region, Task
from .video import extract_frames, region_frames

IMAGE_DIR = "images"
VIDEO_DIR = "videos"

try:  # orjson is several times faster at writing many small records; the stdlib does the same job without it
    import orjson

    def dumps(value) -> str:
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # an integer beyond 64 bits (a task id): the stdlib writes it
            return json.dumps(value, ensure_ascii=False)

    def dump_line(value) -> bytes:
        try:
            return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
except ImportError:  # pragma: no cover
    def dumps(value) -> str:
        return json.dumps(value, ensure_ascii=False)

    def dump_line(value) -> bytes:
        return (json.dumps(value, ensure_ascii=False) + "\n").encode()


@dataclass(slots=True)
class Obj:
    """One labeled object in percent coordinates."""

    label: str
    kind: str  # "box" | "polygon" | "mask"
    box: tuple[float, float, float, float] | None  # x, y, w, h (percent), axis-aligned; None: image size needed
    points: list[tuple[float, float]] | None = None  # polygon vertices (percent)
    track: str | None = None  # video track id
    corners: list[tuple[float, float]] | None = None  # a rotated rectangle's corners (percent), as drawn
    mask: object | None = None  # kind "mask" (a brush region): a 2-D bool numpy array at the image's size
    keypoints: list[tuple[float, float] | None] | None = None  # pose: (x, y) percent per keypoint name, or None


@dataclass(slots=True)
class Item:
    """One task on its way into an export."""

    task: Task
    annotation: Annotation | None
    name: str  # the image's file name inside the export (unique)
    url: str | None  # where the image comes from (gs://...), if known
    width: int | None = None
    height: int | None = None
    placed: list[str] = field(default_factory=list)  # relative paths where the image was written
    objects: list[Obj] | None = None  # the image's objects, once computed (image_objects)


def image_objects(item: Item, pose: "Pose | None" = None) -> list[Obj]:
    """The objects of an image task's chosen annotation (computed once per item); with `pose`, keypoints are
    grouped into pose instances (see Pose) instead of being left out."""
    if item.objects is None:
        regions = item.annotation.result if item.annotation else ()
        w, h = item.width, item.height
        if pose is None:
            item.objects = [obj for region in regions if (obj := region_object(region, w, h)) is not None]
        else:
            item.objects = pose.objects(regions, w, h)
    return item.objects


class Pose:
    """Keypoints as pose instances (COCO keypoints, YOLO pose), as Label Studio's converter groups them.

    Keypoint names are the labels of the config's KeyPointLabels, in config order. A keypoint whose `parentID` is
    a rectangle belongs to that rectangle's instance (its class is the rectangle's label); the other keypoints of
    an image form one instance, of the class named after their KeyPointLabels control, with the box around them.
    Each instance lists every keypoint name: (x, y, 2) where labeled, (0, 0, 0) where not.
    """

    def __init__(self, config: LabelConfig):
        kp = [c for c in config.controls if c.tag in ("KeyPointLabels", "KeyPoint")]
        self.names = list(dict.fromkeys(label for c in kp for label in c.labels))
        self.index = {name: i for i, name in enumerate(self.names)}
        others = [label for c in config.controls if c not in kp for label in c.labels]
        self.loose = kp[0].name if kp else "keypoints"  # the class of keypoints without a rectangle
        self.classes = list(dict.fromkeys(others + ([self.loose] if self.loose not in others else [])))

    @staticmethod
    def wanted(config: LabelConfig) -> bool:
        return any(c.tag in ("KeyPointLabels", "KeyPoint") for c in config.controls)

    def objects(self, regions, width, height) -> list[Obj]:
        objs: list[Obj] = []
        by_id: dict[str, Obj] = {}
        loose: list[tuple[str, float, float]] = []
        points: list[tuple[str | None, str, float, float]] = []
        for region in regions:
            if region.type in ("keypointlabels", "keypoint"):
                value = region.value
                labels = region.labels
                try:
                    x, y = float(value["x"]), float(value["y"])
                except (KeyError, TypeError, ValueError):
                    continue
                if labels and labels[0] in self.index:
                    points.append((region.parent_id, labels[0], x, y))
                continue
            obj = region_object(region, width, height)
            if obj is not None:
                objs.append(obj)
                if obj.kind == "box" and region.id:
                    by_id[region.id] = obj
        for parent, name, x, y in points:
            owner = by_id.get(parent) if parent else None
            if owner is None:
                loose.append((name, x, y))
                continue
            if owner.keypoints is None:
                owner.keypoints = [None] * len(self.names)
            owner.keypoints[self.index[name]] = (x, y)
        if loose:
            kps: list = [None] * len(self.names)
            for name, x, y in loose:
                kps[self.index[name]] = (x, y)
            box = bounds([(x, y) for _, x, y in loose])
            objs.append(Obj(self.loose, "box", box, keypoints=kps))
        return objs


def _rect_object(label: str, value: dict, width, height) -> Obj | None:
    """A rectangle's object; a rotated one is rotated in pixels (geometry.py), so it needs the image size: without
    it the box is None and writers count the object as one without image size."""
    try:
        x, y, w, h = float(value["x"]), float(value["y"]), float(value["width"]), float(value["height"])
        r = float(value.get("rotation") or 0.0)
    except (KeyError, TypeError, ValueError):
        return None
    if r % 360 == 0:
        return Obj(label, "box", (x, y, w, h))
    if not width or not height:
        return Obj(label, "box", None)
    corners = rect_corners(x, y, w, h, r, width, height)
    return Obj(label, "box", bounds(corners), corners=corners)


def region_object(region: Region, width=None, height=None) -> Obj | None:
    """The object of an image region (a rectangle or a polygon, its first label); other region types give None.
    `width`, `height`: the image size, when the region does not record it."""
    if region.type == "rectanglelabels":  # the common case: no generic label lookup
        value = region.value
        found = value.get("rectanglelabels")
        if isinstance(found, list):
            if not found:
                return None
            label = found[0]
            label = label[-1] if isinstance(label, list) else label
            if value.get("rotation"):
                return _rect_object(label, value, region.original_width or width, region.original_height or height)
            # unrotated, inlined: this runs once per box of large exports
            try:
                box = float(value["x"]), float(value["y"]), float(value["width"]), float(value["height"])
            except (KeyError, TypeError, ValueError):
                return None
            return Obj(label, "box", box)
    labels = region.labels
    if not labels:
        return None
    if region.type in ("rectanglelabels", "rectangle"):
        return _rect_object(labels[0], region.value, region.original_width or width, region.original_height or height)
    if region.type in ("polygonlabels", "polygon"):
        pts = [(float(p[0]), float(p[1])) for p in region.value.get("points") or [] if len(p) >= 2]
        if len(pts) < 3:
            return None
        return Obj(labels[0], "polygon", bounds(pts), pts)
    if region.type in ("ellipselabels", "ellipse"):
        return _ellipse_object(labels[0], region.value, region.original_width or width,
                               region.original_height or height)
    if region.type in ("brushlabels", "brush"):
        return _brush_object(labels[0], region, region.original_width or width, region.original_height or height)
    return None


def _ellipse_object(label: str, value: dict, width, height) -> Obj | None:
    """An ellipse as a polygon of geometry.ELLIPSE_VERTICES vertices (COCO, YOLO and VOC have no ellipses)."""
    try:
        x, y = float(value["x"]), float(value["y"])
        rx, ry = float(value["radiusX"]), float(value["radiusY"])
        r = float(value.get("rotation") or 0.0)
    except (KeyError, TypeError, ValueError):
        return None
    pts = ellipse_points(x, y, rx, ry, r, width, height)
    if pts is None:
        return Obj(label, "polygon", None)
    return Obj(label, "polygon", bounds(pts), pts)


def _brush_object(label: str, region: Region, width, height) -> Obj | None:
    """A brush region's mask, decoded from Label Studio's RLE (needs the image size it was drawn on)."""
    rle = region.value.get("rle")
    if not isinstance(rle, list) or region.value.get("format", "rle") != "rle":
        return None
    if not width or not height:
        return Obj(label, "mask", None)
    try:
        mask = brush_mask(rle, int(width), int(height))
    except (ValueError, IndexError, TypeError) as exc:
        raise LabError(f"brush region {region.id or ''} ({label}) does not decode: {exc}") from None
    box = mask_bounds(mask)
    return Obj(label, "mask", box, mask=mask) if box else None


def frame_objects(annotation: Annotation | None, width=None, height=None) -> dict[int, list[Obj]]:
    """Video annotation -> {frame: objects} with interpolated boxes (see video.py); `width`, `height`: the frame
    size, which rotated boxes need."""
    frames: dict[int, list[Obj]] = {}
    if annotation is None:
        return frames
    for n, region in enumerate(annotation.result):
        if region.type != "videorectangle" or not region.labels:
            continue
        track = region.id or str(n)
        label = region.labels[0]
        for fb in region_frames(region):
            obj = _rect_object(label, {"x": fb.x, "y": fb.y, "width": fb.width, "height": fb.height,
                                       "rotation": fb.rotation}, width, height)
            obj.track = track
            frames.setdefault(fb.frame, []).append(obj)
    return dict(sorted(frames.items()))


def is_video(item: Item) -> bool:
    return item.annotation is not None and any(r.type == "videorectangle" for r in item.annotation.result)


def file_stem(name: str) -> str:
    """A file name without its extension: what label files are named after (export.Namer keeps it unique)."""
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def frame_name(name: str, frame: int) -> str:
    """The file name of one frame, as `ffmpeg -i videos/V -start_number 1 images/STEM_%06d.jpg` writes them."""
    return f"{file_stem(name)}_{frame:06d}.jpg"


# control tags of the regions the detection formats write
SHAPES = frozenset({"RectangleLabels", "Rectangle", "PolygonLabels", "Polygon", "VideoRectangle", "EllipseLabels",
                    "Ellipse", "BrushLabels", "Brush"})


class Writer:
    """Base: class ids, counts, where images go. Subclasses implement write() and finish().

    A writer with `parallel = True` can also run as a *part* writer in a worker process (parallel.py): it formats
    one range of an image export after the main process has fixed what must agree across ranges (class ids of
    labels missing from the config, the start of each counter in `sequences`), and `take()` hands its output and
    counts to the main writer's `add()`. The result is the same as writing every item in one process.
    """

    name = ""
    images_in: str | None = IMAGE_DIR  # folder (relative) for the images; None: per-label (ImageFolder)
    needs_size = False  # whether write() uses image width/height (read from the image when no region has it)
    parallel = False
    sequences: tuple[str, ...] = ()  # counters that number records across the whole export (COCO ids)
    # control tags whose regions this format can write (None: any); a config with none of them is refused
    expresses: frozenset[str] | None = None
    what = ""  # what the format writes, for that message
    class_ids_matter = True  # a label outside the config would shift or invent a class: refused unless allowed
    pose_aware = False  # writes keypoints as pose instances when the config has KeyPointLabels

    def __init__(self, root: Path, config: LabelConfig, frame_size: tuple[int, int] | None = None, *,
                 part: bool = False, part_lock=None, allow_unknown_labels: bool = False, all_frames: bool = False):
        self.part = part
        self.allow_unknown_labels = allow_unknown_labels
        self.all_frames = all_frames  # video to images: every frame, not only the labeled ones
        self.frames_past_end = 0
        self.part_lock = part_lock  # shared by the part writers of one export (a multiprocessing lock)
        self.root = Path(root)
        self.config = config
        self.frame_size = frame_size
        self.classes: list[str] = list(config.labels)
        self.class_ids: dict[str, int] = {c: i for i, c in enumerate(self.classes)}
        self.counts: dict[str, int] = {c: 0 for c in self.classes}
        self.unknown: list[str] = []
        self.items = 0
        self.objects = 0
        self.frames = 0
        self.no_size = 0
        self.video = any(tag == "Video" for tag, _ in config.objects.values())
        self.pose = Pose(config) if self.pose_aware and Pose.wanted(config) else None
        if self.pose is not None:  # keypoint names are not classes: the instances' classes are
            self.classes = list(self.pose.classes)
            self.class_ids = {c: i for i, c in enumerate(self.classes)}
            self.counts = {c: 0 for c in self.classes}
        self.has_masks = any(c.tag in ("BrushLabels", "Brush") for c in config.controls)

    def class_id(self, label: str) -> int:
        cid = self.class_ids.get(label)
        if cid is None:
            cid = self.new_class(label)
        self.counts[label] += 1
        self.objects += 1
        return cid

    @classmethod
    def check_config(cls, config: LabelConfig) -> None:
        """LabError if the config has no region this format can write: the export would be empty."""
        if cls.expresses is None:
            return
        tags = {c.tag for c in config.controls}
        if tags & cls.expresses:
            return
        fits = [name for name, w in WRITERS.items() if w.expresses is None or tags & w.expresses]
        raise LabError(f"{cls.name} writes {cls.what}, and the label config has none "
                       f"(its controls: {', '.join(sorted(tags))}); choose one of: {', '.join(fits)}")

    def new_class(self, label: str) -> int:
        """A label that is not in the config: refused (class ids would no longer be the config's), or with
        allow_unknown_labels, the next free id (reported)."""
        if self.class_ids_matter and not self.allow_unknown_labels:
            raise LabError(f"label {label!r} is in the annotations but not in the label config, so it has no "
                           f"class id; add it to the config, or pass --allow-unknown-labels to give it id "
                           f"{len(self.classes)} after the config's")
        cid = self.class_ids[label] = len(self.classes)
        self.classes.append(label)
        self.counts[label] = 0
        self.unknown.append(label)
        return cid

    # --- parallel writing (parallel.py) ---

    def plan(self, items: list[Item]) -> tuple[list[str], list[int]]:
        """Part writer: the labels of `items` with no class id yet (in order of first use), and how far the items
        advance each of `sequences`."""
        new: dict[str, None] = {}
        known = self.class_ids
        for item in items:
            for obj in image_objects(item, self.pose):
                if obj.label not in known:
                    new[obj.label] = None
        return list(new), [0] * len(self.sequences)

    def resume(self, classes: list[str], starts: list[int]) -> None:
        """Part writer: take the main writer's classes and where each counter of `sequences` starts."""
        for label in classes[len(self.classes):]:
            self.class_ids[label] = len(self.classes)
            self.classes.append(label)
            self.counts.setdefault(label, 0)
        for name, start in zip(self.sequences, starts):
            setattr(self, name, start)

    def streams(self) -> dict[str, IO[bytes]]:
        """Files whose content a part writer returns for the main writer to append (in export order)."""
        return {}

    def finish_part(self) -> None:
        """Part writer: no more ranges; write out anything still held back."""

    def take(self) -> dict:
        """Part writer: output and counts since the last call."""
        out = {"items": self.items, "objects": self.objects, "frames": self.frames, "no_size": self.no_size,
               "counts": {c: n for c, n in self.counts.items() if n},
               "streams": {k: fp.getvalue() for k, fp in self.streams().items()}}
        for fp in self.streams().values():
            fp.seek(0)
            fp.truncate()
        self.items = self.objects = self.frames = self.no_size = 0
        self.counts = dict.fromkeys(self.counts, 0)
        return out

    def add(self, part: dict) -> None:
        """Main writer: append a part writer's `take()`."""
        for key in ("items", "objects", "frames", "no_size"):
            setattr(self, key, getattr(self, key) + part[key])
        for label, n in part["counts"].items():
            self.counts[label] += n
        streams = self.streams()
        for key, data in part["streams"].items():
            streams[key].write(data)

    masks_dir = "masks"

    def write_masks(self, file_name: str, objs: list[Obj]) -> None:
        """Brush regions of one image as a PNG beside the labels, masks/<stem>.png: each pixel the class id + 1 of
        the last region painted over it, 0 where none is (16-bit when there are more than 254 classes)."""
        if not self.has_masks:
            return
        masks = [obj for obj in objs if obj.mask is not None]
        if not masks:
            return
        import numpy as np
        from PIL import Image

        wide = len(self.classes) > 254
        out = np.zeros(masks[0].mask.shape, dtype=np.uint16 if wide else np.uint8)
        for obj in masks:
            if obj.mask.shape == out.shape:
                out[obj.mask] = self.class_ids[obj.label] + 1
        folder = self.root / self.masks_dir
        folder.mkdir(exist_ok=True)
        Image.fromarray(out).save(folder / f"{file_stem(file_name)}.png")

    def image_dests(self, item: Item) -> list[str]:
        if self.video:
            # the video itself, to cut into frames named as frame_name() expects
            return [f"{VIDEO_DIR}/{item.name}"] if self.name in ("coco", "yolo", "yolo-obb", "voc", "mot") else []
        return [f"{self.images_in}/{item.name}"] if self.images_in else []

    def write(self, item: Item) -> None:
        raise NotImplementedError

    def finish(self) -> dict:
        return {}

    def abort(self) -> None:
        """The export failed: stop any background work before the caller removes the folder."""

    def close(self) -> dict:
        extra = self.finish()
        report = {"format": self.name, "items": self.items, "objects": self.objects,
                  "classes": {c: self.counts[c] for c in self.classes}}
        if self.frames:
            report["video_frames"] = self.frames
        if self.unknown:
            report["labels_not_in_config"] = self.unknown
        if self.no_size:
            report["objects_without_image_size"] = self.no_size
        if self.frames_past_end:
            report["labeled_frames_past_video_end"] = self.frames_past_end
        report.update(extra)
        return report

    def pictures(self, item: Item) -> list[tuple[str, list[Obj], int | None, int | None, int | None]]:
        """What one item becomes in image formats: its image, or one image per video frame that has a box:
        (file name, objects, width, height, frame number or None)."""
        if self.video and is_video(item):  # a config without a Video tag has no frames to cut
            width, height = self.video_size(item)
            frames = frame_objects(item.annotation, width, height)
            video = self.root / item.placed[0] if item.placed else None
            if video is None or not self.images_in or not video.is_file():  # --no-images: labels only
                self.frames += len(frames)
                return [(frame_name(item.name, n), objs, width, height, n) for n, objs in frames.items()]
            # the frames become image files beside the labels: the labeled ones (or all), decoded from the video
            folder = self.root / self.images_in
            folder.mkdir(exist_ok=True)
            written, video_w, video_h = extract_frames(video, None if self.all_frames else set(frames),
                                                       lambda n: folder / frame_name(item.name, n))
            if not (width and height):
                width, height = video_w, video_h
                frames = frame_objects(item.annotation, width, height)
            self.frames_past_end += sum(1 for n in frames if n not in written)
            self.frames += len(written)
            return [(frame_name(item.name, n), frames.get(n, []), width, height, n) for n in sorted(written)]
        return [(item.name, image_objects(item, self.pose), item.width, item.height, None)]

    def video_size(self, item: Item) -> tuple[int | None, int | None]:
        if self.frame_size:
            return self.frame_size
        if item.annotation:
            for r in item.annotation.result:
                if r.original_width and r.original_height:
                    return r.original_width, r.original_height
        return item.width, item.height


# --- JSON-MIN and CSV ------------------------------------------------------------------------------------------


def _control_values(annotation: Annotation | None) -> dict[str, object]:
    """{control name: value} as Label Studio's JSON-MIN writes it: a single choice as a string, else lists."""
    out: dict[str, list] = {}
    if annotation is None:
        return {}
    for region in annotation.result:
        if region.type in ("choices", "taxonomy"):
            out.setdefault(region.from_name, []).extend(region.labels)
        elif region.type == "textarea":
            out.setdefault(region.from_name, []).extend(region.value.get("text") or [])
        elif region.type in ("rating", "number"):
            out.setdefault(region.from_name, []).append(region.value.get(region.type))
        else:
            value = dict(region.value)
            if region.original_width:
                value["original_width"], value["original_height"] = region.original_width, region.original_height
            out.setdefault(region.from_name, []).append(value)
    return {k: (v[0] if len(v) == 1 and not isinstance(v[0], dict) else v) for k, v in out.items()}


def _count_labels(writer: Writer, annotation: Annotation | None) -> None:
    if annotation is not None:
        for label in annotation.labels:
            writer.class_id(label)


class JsonMinWriter(Writer):
    name = "json-min"
    class_ids_matter = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fp: IO[str] = open(self.root / "result.json", "w", encoding="utf-8")
        self.fp.write("[")

    def write(self, item: Item) -> None:
        ann = item.annotation
        record: dict = {"id": item.task.id, **item.task.data}
        if item.placed:
            record["file_name"] = item.placed[0]
        record.update(_control_values(ann))
        if ann is not None:
            record.update(annotation_id=ann.id, annotator=ann.completed_by, updated_at=ann.updated_at)
        _count_labels(self, ann)
        self.fp.write(("\n" if not self.items else ",\n") + dumps(record))
        self.items += 1

    def finish(self) -> dict:
        self.fp.write("\n]\n")
        self.fp.close()
        return {"file": "result.json"}


class CsvWriter(Writer):
    name = "csv"
    class_ids_matter = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.controls = [c.name for c in self.config.controls]
        self.data_key = self.config.data_key or "data"
        self.fp = open(self.root / "result.csv", "w", encoding="utf-8", newline="")
        self.out = csv.writer(self.fp)
        self.out.writerow(["id", self.data_key, "file_name", *self.controls, "annotation_id", "annotator", "updated_at"])

    def write(self, item: Item) -> None:
        ann = item.annotation
        values = _control_values(ann)
        cells = []
        for name in self.controls:
            v = values.get(name)
            if v is None:
                cells.append("")
            elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                cells.append(",".join(v))
            else:
                cells.append(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        _count_labels(self, ann)
        self.out.writerow([item.task.id, item.task.data.get(self.data_key, ""), item.placed[0] if item.placed else "",
                           *cells, ann.id if ann else "", ann.completed_by if ann else "", ann.updated_at if ann else ""])
        self.items += 1

    def finish(self) -> dict:
        self.fp.close()
        return {"file": "result.csv"}


# --- COCO ------------------------------------------------------------------------------------------------------


class CocoWriter(Writer):
    """COCO detection JSON in result.json; `file_name` is relative to images/ (pycocotools' img_dir)."""

    name = "coco"
    expresses = SHAPES | {"KeyPointLabels", "KeyPoint"}
    what = "boxes, polygons, ellipses, masks and keypoints"
    pose_aware = True
    needs_size = True
    parallel = True
    sequences = ("image_id", "ann_id")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # records are spooled as JSON lines (UTF-8 bytes) and joined at the end: no list of all annotations in memory
        if self.part:
            self.images_fp, self.ann_fp = io.BytesIO(), io.BytesIO()
        else:
            self.images_fp = open(self.root / ".images.part", "wb")
            self.ann_fp = open(self.root / ".annotations.part", "wb")
        self.image_id = 0
        self.ann_id = 0

    def streams(self) -> dict[str, IO[bytes]]:
        return {"images": self.images_fp, "annotations": self.ann_fp}

    def plan(self, items: list[Item]) -> tuple[list[str], list[int]]:
        labels, _ = super().plan(items)
        # one image record per item; one annotation per object of an image whose size is known
        return labels, [len(items), sum(1 for i in items if i.width and i.height
                                        for obj in image_objects(i, self.pose) if obj.box is not None)]

    def _image(self, file_name: str, width, height, item: Item, frame: int | None = None) -> int:
        self.image_id += 1
        rec = {"id": self.image_id, "file_name": file_name, "width": width, "height": height, "task_id": item.task.id}
        if frame is not None:
            rec["frame"] = frame
        self.images_fp.write(dump_line(rec))
        return self.image_id

    def _objects(self, image_id: int, objs: list[Obj], width, height) -> None:
        lines = []
        for obj in objs:
            cat = self.class_id(obj.label) + 1
            if not width or not height or obj.box is None:
                self.no_size += 1
                continue
            x, y, w, h = obj.box
            bbox = [x * width / 100, y * height / 100, w * width / 100, h * height / 100]
            seg: list = []
            area = bbox[2] * bbox[3]
            shape = obj.points or obj.corners  # a rotated box: its corners, so the rotation is not lost
            if obj.mask is not None:
                seg = coco_rle(obj.mask)  # size = the mask's, the size the brush was drawn on
                area = int(obj.mask.sum())
            elif shape:
                pts = [(px * width / 100, py * height / 100) for px, py in shape]
                seg = [[c for p in pts for c in p]]
                area = polygon_area(pts)
            self.ann_id += 1
            rec = {"id": self.ann_id, "image_id": image_id, "category_id": cat, "bbox": bbox, "area": area,
                   "segmentation": seg, "iscrowd": 0, "ignore": 0}
            if self.pose is not None:  # COCO keypoints: x, y, visibility per name, in pixels (2: labeled)
                kps = obj.keypoints or ()
                rec["keypoints"] = [v for p in (kps or [None] * len(self.pose.names)) for v in
                                    ((p[0] * width / 100, p[1] * height / 100, 2) if p else (0, 0, 0))]
                rec["num_keypoints"] = sum(1 for p in kps if p)
            if obj.track is not None:
                rec["track_id"] = obj.track
            lines.append(dump_line(rec))
        if lines:
            self.ann_fp.write(b"".join(lines))

    def write(self, item: Item) -> None:
        self.items += 1
        for name, objs, width, height, frame in self.pictures(item):
            self._objects(self._image(name, width, height, item, frame), objs, width, height)
            self.write_masks(name, objs)

    def finish(self) -> dict:
        self.images_fp.close()
        self.ann_fp.close()
        with open(self.root / "result.json", "wb") as out:
            out.write(b'{"info": {"description": "Label Studio export", "version": "1.0"},\n"images": [')
            _join_lines(self.root / ".images.part", out)
            categories = [{"id": i + 1, "name": c, "supercategory": ""} for i, c in enumerate(self.classes)]
            if self.pose is not None:
                for cat in categories:
                    cat.update(keypoints=self.pose.names, skeleton=[])
            out.write(('],\n"categories": ' + json.dumps(categories, ensure_ascii=False)
                       + ',\n"annotations": [').encode())
            _join_lines(self.root / ".annotations.part", out)
            out.write(b"]}\n")
        os.unlink(self.root / ".images.part")
        os.unlink(self.root / ".annotations.part")
        return {"file": "result.json", "images": self.image_id, "annotations": self.ann_id, "image_dir": IMAGE_DIR}


def _join_lines(path: Path, out: IO[bytes]) -> None:
    """JSON lines -> the items of a JSON array, one per line, in large blocks (records never hold a raw newline)."""
    with open(path, "rb") as fp:
        block = fp.read(1 << 20)
        if not block:
            return
        out.write(b"\n")
        while nxt := fp.read(1 << 20):
            out.write(block.replace(b"\n", b",\n"))
            block = nxt
        out.write(block[:-1].replace(b"\n", b",\n"))  # the last record's newline: the array closes instead


# --- YOLO ------------------------------------------------------------------------------------------------------


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


def _label_file_worker(labels_dir: str, conn) -> None:
    """Create label files sent as pickled [(file name, bytes)] batches; b"" ends. Replies with None or an error
    message, after reading everything (the sender never blocks on a worker that gave up)."""
    import pickle
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops this process
    error = None
    dir_fd = os.open(labels_dir, os.O_RDONLY | os.O_DIRECTORY)
    while batch := conn.recv_bytes():
        if error is not None:
            continue
        try:
            for name, data in pickle.loads(batch):
                _write_label_file(dir_fd, name, data)
        except OSError as exc:
            error = f"cannot write label file {exc.filename or ''} in {labels_dir}: {exc.strerror or exc}"
    os.close(dir_fd)
    conn.send(error)


class _LabelFiles:
    """Label files are created by a helper process while this one decodes and formats the next tasks.

    Creating a file costs the kernel tens of microseconds and there is one per image: done inline that is most of a
    YOLO export's time. A thread would not help (it needs the GIL back after every system call); a forked process
    takes the work in batches through a pipe, whose fixed buffer keeps memory flat.
    """

    BATCH = 512

    def __init__(self, labels_dir: str):
        import multiprocessing

        self.batch: list[tuple[str, bytes]] = []
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_label_file_worker, args=(labels_dir, child), daemon=True)
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

    def _label_file(self, image_name: str, objs: list[Obj]) -> None:
        stem = file_stem(image_name)
        before = self.objects
        data = self.text(objs).encode()
        self.no_size += len(objs) - (self.objects - before)  # rotated boxes of an image of unknown size
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
            self._label_file(item.name, image_objects(item, self.pose))
            return
        for name, objs, _, _, _ in self.pictures(item):
            self._label_file(name, objs)

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


# --- Pascal VOC ------------------------------------------------------------------------------------------------


class VocWriter(Writer):
    """Annotations/<stem>.xml per image (pixel boxes), JPEGImages/, labels.txt."""

    name = "voc"
    masks_dir = "SegmentationClass"  # VOC's own folder for class masks
    expresses = SHAPES
    what = "boxes (polygons as their boxes)"
    needs_size = True
    images_in = "JPEGImages"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        (self.root / "Annotations").mkdir(exist_ok=True)
        (self.root / self.images_in).mkdir(exist_ok=True)

    def _xml(self, file_name: str, objs: list[Obj], width, height) -> None:
        parts = [f"<annotation>\n  <folder>{self.images_in}</folder>\n  <filename>{escape(file_name)}</filename>\n"
                 f"  <size>\n    <width>{width or 0}</width>\n    <height>{height or 0}</height>\n"
                 f"    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n"]
        for obj in objs:
            self.class_id(obj.label)
            if not width or not height or obj.box is None:
                self.no_size += 1
                continue
            x, y, w, h = obj.box
            xmin, ymin = round(x * width / 100), round(y * height / 100)
            xmax, ymax = round((x + w) * width / 100), round((y + h) * height / 100)
            parts.append(f"  <object>\n    <name>{escape(obj.label)}</name>\n    <pose>Unspecified</pose>\n"
                         f"    <truncated>0</truncated>\n    <difficult>0</difficult>\n    <bndbox>\n"
                         f"      <xmin>{xmin}</xmin>\n      <ymin>{ymin}</ymin>\n"
                         f"      <xmax>{xmax}</xmax>\n      <ymax>{ymax}</ymax>\n    </bndbox>\n  </object>\n")
        parts.append("</annotation>\n")
        (self.root / "Annotations" / (file_stem(file_name) + ".xml")).write_text("".join(parts), encoding="utf-8")

    def write(self, item: Item) -> None:
        self.items += 1
        for name, objs, width, height, _ in self.pictures(item):
            self._xml(name, objs, width, height)
            self.write_masks(name, objs)

    def finish(self) -> dict:
        (self.root / "labels.txt").write_text("".join(c + "\n" for c in self.classes), encoding="utf-8")
        return {"annotations_dir": "Annotations", "image_dir": self.images_in}


# --- ImageFolder -----------------------------------------------------------------------------------------------


def _safe_folder(label: str) -> str:
    name = label.replace("/", "_").replace("\\", "_").strip()
    return name if name not in ("", ".", "..") else f"_{name}_"


class ImageFolderWriter(Writer):
    """Classification: <label>/<file name> (torchvision ImageFolder), plus labels.csv (file_name,label).

    An image with several chosen classes goes into each class's folder; a task with no class is left out.
    """

    name = "imagefolder"
    expresses = frozenset({"Choices", "Taxonomy"})
    what = "image classes (choices)"
    images_in = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fp = open(self.root / "labels.csv", "w", encoding="utf-8", newline="")
        self.out = csv.writer(self.fp)
        self.out.writerow(["file_name", "label", "task_id"])
        self.unlabeled = 0

    @staticmethod
    def _labels(item: Item) -> list[str]:
        if item.annotation is None:
            return []
        found = [lab for r in item.annotation.result if r.type in ("choices", "taxonomy") for lab in r.labels]
        return list(dict.fromkeys(found))

    def image_dests(self, item: Item) -> list[str]:
        return [f"{_safe_folder(label)}/{item.name}" for label in self._labels(item)]

    def write(self, item: Item) -> None:
        labels = self._labels(item)
        if not labels:
            self.unlabeled += 1
            return
        self.items += 1
        for label in labels:
            self.class_id(label)
            self.out.writerow([f"{_safe_folder(label)}/{item.name}", label, item.task.id])

    def finish(self) -> dict:
        self.fp.close()
        for label in self.classes:  # every class has a folder, even an empty one, so class indexes stay stable
            (self.root / _safe_folder(label)).mkdir(exist_ok=True)
        return {"file": "labels.csv", "without_class": self.unlabeled}


# --- MOT (video tracks) ----------------------------------------------------------------------------------------


class MotWriter(Writer):
    """Per-video MOT-style CSV: mot/<video stem>.txt with `frame,track,left,top,width,height,conf,class,visibility`.

    Frames are 1-based, boxes in pixels of the frame size (from --frame-size or the regions), class is the 0-based
    config index (classes.txt), track is a number per track (tracks.csv maps it to Label Studio's region id).
    """

    name = "mot"
    expresses = frozenset({"VideoRectangle"})
    what = "video tracks (VideoRectangle)"
    needs_size = True
    images_in = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        (self.root / "mot").mkdir(exist_ok=True)
        self.tracks_fp = open(self.root / "tracks.csv", "w", encoding="utf-8", newline="")
        self.tracks = csv.writer(self.tracks_fp)
        self.tracks.writerow(["video", "track", "region_id", "label", "task_id"])

    def write(self, item: Item) -> None:
        if not is_video(item):
            return
        width, height = self.video_size(item)
        if not width or not height:
            raise LabError(f"task {item.task.id}: the video frame size is unknown; pass the frame size "
                           "(e.g. --frame-size 1920x1080) to export pixel boxes")
        self.items += 1
        stem = file_stem(item.name)
        numbers: dict[str, int] = {}
        with open(self.root / "mot" / f"{stem}.txt", "w", encoding="utf-8", newline="") as fp:
            out = csv.writer(fp)
            for frame, objs in frame_objects(item.annotation, width, height).items():
                self.frames += 1
                for obj in objs:
                    if obj.track not in numbers:
                        numbers[obj.track] = len(numbers) + 1
                        self.tracks.writerow([stem, numbers[obj.track], obj.track, obj.label, item.task.id])
                    cls = self.class_id(obj.label)
                    if obj.box is None:
                        self.no_size += 1
                        continue
                    x, y, w, h = obj.box
                    out.writerow([frame, numbers[obj.track], round(x * width / 100, 2), round(y * height / 100, 2),
                                  round(w * width / 100, 2), round(h * height / 100, 2), 1, cls, 1])

    def finish(self) -> dict:
        self.tracks_fp.close()
        (self.root / "classes.txt").write_text("".join(c + "\n" for c in self.classes), encoding="utf-8")
        return {"dir": "mot"}


WRITERS: dict[str, type[Writer]] = {
    "json-min": JsonMinWriter,
    "csv": CsvWriter,
    "coco": CocoWriter,
    "yolo": YoloWriter,
    "yolo-obb": YoloObbWriter,
    "yolo-pose": YoloPoseWriter,
    "voc": VocWriter,
    "imagefolder": ImageFolderWriter,
    "mot": MotWriter,
}

DESCRIPTIONS = {
    "json-min": "result.json: one flat record per task (data + chosen annotation's values)",
    "csv": "result.csv: one row per task, one column per control",
    "coco": "result.json + images/: COCO detection/segmentation, category ids = config order + 1",
    "yolo": "images/ + labels/ + classes.txt + data.yaml: boxes and polygons, class = config order",
    "yolo-obb": "the yolo layout with oriented boxes: `cls x1 y1 x2 y2 x3 y3 x4 y4` (rotated rectangles' corners)",
    "yolo-pose": "the yolo layout with keypoints: `cls cx cy w h x1 y1 v1 ...`, kpt_shape in data.yaml",
    "voc": "Annotations/*.xml + JPEGImages/: Pascal VOC boxes",
    "imagefolder": "<label>/<image>: classification folders (torchvision ImageFolder) + labels.csv",
    "mot": "mot/<video>.txt: per-frame video tracks, MOT challenge columns",
}


def writer_for(fmt: str) -> type[Writer]:
    try:
        return WRITERS[fmt.lower()]
    except KeyError:
        raise LabError(f"unknown format {fmt!r}; choose one of: {', '.join(WRITERS)}") from None
