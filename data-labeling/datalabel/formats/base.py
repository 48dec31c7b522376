"""The writer base class: class ids from the config, counts, where images go, the parts a parallel export
is written in; JSON helpers the writers share."""
from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from ..errors import LabError
from ..labelconfig import LabelConfig
from ..video import extract_frames
from .objects import (IMAGE_DIR, VIDEO_DIR, Item, Obj, Pose, file_stem, frame_name, frame_objects, image_objects,
                      is_video)

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
        self.media_key = self.source_key(config)  # the task data key of the image (video) the regions are on
        self.classes: list[str] = self.config_classes(config)
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
    def config_classes(cls, config: LabelConfig) -> list[str]:
        """The classes in id order: the config's labels, in its order. Keypoint names are not classes where class
        ids matter: they are parts of an instance (pose-aware writers list the instances' classes instead)."""
        if cls.class_ids_matter and Pose.wanted(config):
            return list(dict.fromkeys(label for c in config.controls if c.tag not in Pose.TAGS for label in c.labels))
        return list(config.labels)

    @classmethod
    def source_key(cls, config: LabelConfig) -> str | None:
        """The task data key of the image the regions this format writes are drawn on: the object their control
        points to (toName), whatever other media the config shows first; else the first media object's."""
        tags = (cls.expresses or frozenset()) | Pose.TAGS
        return config.target_key(tags) or config.data_key

    @classmethod
    def fits(cls, config: LabelConfig) -> bool:
        """Whether the config has a region this format can write (else the export would be empty)."""
        return cls.expresses is None or bool({c.tag for c in config.controls} & cls.expresses)

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

    def unsized(self, item: Item, name: str, obj: Obj) -> None:
        """An object that needs its image's size in pixels (a COCO/VOC box, a rotated box, an ellipse, a mask),
        on an image whose size nothing gives: the export stops rather than leave it out (an empty or partial
        dataset that says nothing is wrong)."""
        raise LabError(f"task {item.task.id}: {self.name} needs the size of image {name!r} for its {obj.label!r} "
                       "region, and neither the regions (original_width/original_height) nor an image file gives it; "
                       "export with the images (without --no-images) so their sizes are read from the files")

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
