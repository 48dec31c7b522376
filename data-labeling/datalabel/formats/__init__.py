"""Training-format writers: JSON-MIN, CSV (TSV), COCO, YOLO, Pascal VOC, ImageFolder, MOT.

Every writer streams: `write(item)` is called once per task (after its image, if any, is in place) and output goes
to disk as it comes, so memory does not grow with the project. COCO is one JSON document, so its image and
annotation records are spooled to temporary files and stitched together in `close()`; JSON-MIN and CSV need every
record's keys before the first line, so they spool theirs too.

Class ids come from the label config's order (`LabelConfig.labels`, keypoint names left out: they are parts of an
instance): YOLO index i, COCO category id i + 1 (0 stays free for "background", as torchvision's detection models
expect) unless a label's `category="N"` fixes it, ImageFolder folder names. A label that is not in the config (the
config changed after labeling) is an error, or with allow_unknown_labels gets the next free id and is reported.

One module per part: objects.py (annotations as objects, file names), base.py (the Writer base class),
tables.py (JSON-MIN, CSV), coco.py, yolo.py (YOLO, YOLO-OBB, YOLO pose), voc.py, imagefolder.py, mot.py.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..labelconfig import LabelConfig
from .base import SHAPES, Writer, dump_line, dumps
from .coco import CocoWriter
from .imagefolder import ImageFolderWriter
from .mot import MotWriter
from .objects import (IMAGE_DIR, VIDEO_DIR, Item, Obj, Pose, file_stem, frame_name, frame_objects, image_objects,
                      is_video, region_object)
from .tables import CsvWriter, JsonMinWriter, TsvWriter
from .voc import VocWriter
from .yolo import YoloObbWriter, YoloPoseWriter, YoloWriter, pose_text, yolo_text

__all__ = ["SHAPES", "Writer", "dump_line", "dumps", "CocoWriter", "ImageFolderWriter", "MotWriter", "IMAGE_DIR",
           "VIDEO_DIR", "Item", "Obj", "Pose", "file_stem", "frame_name", "frame_objects", "image_objects",
           "is_video", "region_object", "CsvWriter", "JsonMinWriter", "TsvWriter", "VocWriter", "YoloObbWriter",
           "YoloPoseWriter", "YoloWriter", "pose_text", "yolo_text", "WRITERS", "DESCRIPTIONS", "writer_for",
           "check_config"]

WRITERS: dict[str, type[Writer]] = {
    "json-min": JsonMinWriter,
    "csv": CsvWriter,
    "tsv": TsvWriter,
    "coco": CocoWriter,
    "yolo": YoloWriter,
    "yolo-obb": YoloObbWriter,
    "yolo-pose": YoloPoseWriter,
    "voc": VocWriter,
    "imagefolder": ImageFolderWriter,
    "mot": MotWriter,
}

DESCRIPTIONS = {
    "json-min": "result.json: Label Studio's JSON-MIN, one flat record per task (data + chosen annotation's values)",
    "csv": "result.csv: Label Studio's CSV, one row per task, a column per data field and per control",
    "tsv": "result.tsv: the same as csv, tab-separated (Label Studio's TSV)",
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
        raise ConfigError(f"unknown format {fmt!r}; choose one of: {', '.join(WRITERS)}") from None


def check_config(fmt: str, config: LabelConfig) -> type[Writer]:
    """The writer of `fmt`; LabError if the format is unknown or the config has no region it can write."""
    writer = writer_for(fmt)
    if not writer.fits(config):
        tags = {c.tag for c in config.controls}
        fits = [name for name, w in WRITERS.items() if w.fits(config)]
        raise ConfigError(f"{writer.name} writes {writer.what}, and the label config has none "
                       f"(its controls: {', '.join(sorted(tags))}); choose one of: {', '.join(fits)}")
    return writer
