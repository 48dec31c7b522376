"""COCO detection / segmentation / keypoints JSON."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import IO

from ..geometry import coco_rle, polygon_area
from .base import SHAPES, Writer, dump_line
from .objects import IMAGE_DIR, Item, Obj, image_objects


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
