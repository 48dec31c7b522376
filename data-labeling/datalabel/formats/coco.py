"""COCO detection / segmentation / keypoints JSON."""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import IO

from ..geometry import coco_rle, polygon_area
from .base import SHAPES, Writer, dump_line

try:
    from orjson import dumps as orjson_dumps
except ImportError:  # pragma: no cover
    def orjson_dumps(value) -> bytes:
        return json.dumps(value, ensure_ascii=False).encode()
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
        # <Label category="N"> fixes a label's category id (as in Label Studio); the others take the smallest free
        # ids from 1 in class order (0 stays free for "background", as torchvision's detection models expect)
        self.fixed: dict[str, int] = {}
        for control in self.config.controls:
            for label, attrs in control.attrs.items():
                try:
                    self.fixed.setdefault(label, int(attrs["category"]))
                except (KeyError, TypeError, ValueError):
                    pass
        self.cat_ids: dict[str, int] = {}

    def category_id(self, label: str) -> int:
        """The COCO category id of a class: a function of the class list alone, so part writers agree."""
        cid = self.cat_ids.get(label)
        if cid is None:
            taken = set(self.fixed.values()) | set(self.cat_ids.values())
            free = 1
            for name in self.classes:
                if name in self.cat_ids:
                    continue
                if name in self.fixed:
                    self.cat_ids[name] = self.fixed[name]
                    continue
                while free in taken:
                    free += 1
                self.cat_ids[name] = free
                taken.add(free)
            cid = self.cat_ids[label]
        return cid

    def streams(self) -> dict[str, IO[bytes]]:
        return {"images": self.images_fp, "annotations": self.ann_fp}

    def plan(self, items: list[Item]) -> tuple[list[str], list[int]]:
        labels, _ = super().plan(items)
        # one image record per item; one annotation per object (an object without a size stops the export)
        return labels, [len(items), sum(len(image_objects(i, self.pose)) for i in items)]

    def _image(self, file_name: str, width, height, item: Item, frame: int | None = None) -> int:
        self.image_id += 1
        rec = {"id": self.image_id, "file_name": file_name, "width": width, "height": height, "task_id": item.task.id}
        if frame is not None:
            rec["frame"] = frame
        self.images_fp.write(dump_line(rec))
        return self.image_id

    def _objects(self, image_id: int, objs: list[Obj], width, height, item: Item, name: str) -> None:
        if not objs:
            return
        recs = []
        class_ids, counts, cat_ids = self.class_ids, self.counts, self.cat_ids
        ann_id = self.ann_id
        for obj in objs:  # runs once per object of large exports: the plain box first, without helper calls
            box = obj.box
            if box is None or not width or not height:
                self.unsized(item, name, obj)
            label = obj.label
            if label in class_ids:
                counts[label] += 1
                self.objects += 1
            else:
                self.class_id(label)
            cat = cat_ids.get(label)
            if cat is None:
                cat = self.category_id(label)
            ann_id += 1
            if obj.kind == "box" and obj.corners is None and obj.keypoints is None and obj.track is None:
                x, y, w, h = box
                bw, bh = w * width / 100, h * height / 100
                recs.append({"id": ann_id, "image_id": image_id, "category_id": cat,
                             "bbox": [x * width / 100, y * height / 100, bw, bh], "area": bw * bh,
                             "segmentation": [], "iscrowd": 0, "ignore": 0})
                continue
            recs.append(self._record(obj, ann_id, image_id, cat, width, height))
        self.ann_id = ann_id
        if self.pose is not None:  # one record a line: finish() reads the keypoint ones back
            self.ann_fp.write(b"".join(map(dump_line, recs)))
        else:  # the records of an image on one line, commas between them: finish() joins lines with commas
            try:
                self.ann_fp.write(orjson_dumps(recs)[1:-1] + b"\n")
            except TypeError:  # an integer beyond 64 bits (a task id)
                self.ann_fp.write(b"".join(map(dump_line, recs)))

    @staticmethod
    def _record(obj: Obj, ann_id: int, image_id: int, cat: int, width, height) -> dict:
        """An object other than a plain box: a polygon, a rotated box, a mask, a pose instance, a video track's."""
        seg: list = []
        shape = obj.points or obj.corners  # a rotated box: its corners, so the rotation is not lost
        if obj.mask is not None:
            x, y, w, h = obj.box
            bbox = [x * width / 100, y * height / 100, w * width / 100, h * height / 100]
            seg = coco_rle(obj.mask)  # size = the mask's, the size the brush was drawn on
            area = int(obj.mask.sum())
        elif shape:  # in pixels first, the box around them (as Label Studio computes a polygon's)
            pts = [(px / 100 * width, py / 100 * height) for px, py in shape]
            bbox = _around(pts)
            seg = [[c for p in pts for c in p]]
            area = polygon_area(pts)
        elif obj.kind == "keypoints":  # keypoints on no rectangle: the box around them, in pixels
            bbox = _around([(p[0] / 100 * width, p[1] / 100 * height) for p in obj.keypoints if p])
            area = bbox[2] * bbox[3]
        else:
            x, y, w, h = obj.box
            bbox = [x * width / 100, y * height / 100, w * width / 100, h * height / 100]
            area = bbox[2] * bbox[3]
        rec = {"id": ann_id, "image_id": image_id, "category_id": cat, "bbox": bbox, "area": area,
               "segmentation": seg, "iscrowd": 0, "ignore": 0}
        if obj.keypoints is not None:  # COCO keypoints: x, y, visibility per name, in pixels (2: labeled)
            rec["keypoints"] = [v for p in obj.keypoints for v in
                                ((p[0] / 100 * width, p[1] / 100 * height, 2) if p else (0, 0, 0))]
            rec["num_keypoints"] = sum(1 for p in obj.keypoints if p)
        if obj.track is not None:
            rec["track_id"] = obj.track
        return rec

    def write(self, item: Item) -> None:
        self.items += 1
        if not self.video:  # an image: one image record (the common case, without pictures()' list)
            objs = image_objects(item, self.pose)
            self._objects(self._image(item.name, item.width, item.height, item), objs, item.width, item.height,
                          item, item.name)
            if self.has_masks:
                self.write_masks(item.name, objs)
            return
        for name, objs, width, height, frame in self.pictures(item):
            self._objects(self._image(name, width, height, item, frame), objs, width, height, item, name)
            self.write_masks(name, objs)

    def finish(self) -> dict:
        self.images_fp.close()
        self.ann_fp.close()
        annotations = self.root / ".annotations.part"
        with_keypoints = self._keypoint_categories(annotations) if self.pose is not None else set()
        if with_keypoints:
            _add_empty_keypoints(annotations, with_keypoints, len(self.pose.names))
        with open(self.root / "result.json", "wb") as out:
            out.write(b'{"info": {"description": "Label Studio export", "version": "1.0"},\n"images": [')
            _join_lines(self.root / ".images.part", out)
            categories, seen = [], set()
            for c in self.classes:  # one per id: labels that share a category="N" are one category
                cid = self.category_id(c)
                if cid in seen:
                    continue
                seen.add(cid)
                cat = {"id": cid, "name": c, "supercategory": ""}
                if cid in with_keypoints:  # only a category with keypoints lists them
                    cat.update(keypoints=self.pose.names, skeleton=[])
                categories.append(cat)
            out.write(('],\n"categories": ' + json.dumps(categories, ensure_ascii=False)
                       + ',\n"annotations": [').encode())
            _join_lines(annotations, out)
            out.write(b"]}\n")
        os.unlink(self.root / ".images.part")
        os.unlink(annotations)
        return {"file": "result.json", "images": self.image_id, "annotations": self.ann_id, "image_dir": IMAGE_DIR}

    @staticmethod
    def _keypoint_categories(path: Path) -> set[int]:
        """Category ids of the annotations that carry keypoints (read back from the spooled lines)."""
        found = set()
        with open(path, "rb") as fp:
            for line in fp:
                if b'"num_keypoints"' in line:
                    found.add(json.loads(line)["category_id"])
        return found


def _around(points: list[tuple[float, float]]) -> list[float]:
    """[x, y, w, h] of the box around points, so that x + w and y + h reach the outermost point in floating point
    too (max - min, added back to min, can fall one ulp short)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    w, h = x1 - x0, y1 - y0
    while x0 + w < x1:
        w = math.nextafter(w, math.inf)
    while y0 + h < y1:
        h = math.nextafter(h, math.inf)
    return [x0, y0, w, h]


def _add_empty_keypoints(path: Path, categories: set[int], names: int) -> None:
    """Give the annotations of a keypoint category that have no keypoint an all-zero `keypoints` (num_keypoints
    0), as COCO's own person annotations have: pycocotools' keypoint evaluation reads num_keypoints of each."""
    tail = (',"keypoints":' + json.dumps([0] * 3 * names) + ',"num_keypoints":0}').encode()
    fixed = path.with_name(path.name + ".kp")
    with open(path, "rb") as src, open(fixed, "wb") as dst:
        for line in src:
            if b'"num_keypoints"' not in line and json.loads(line)["category_id"] in categories:
                line = line.rstrip(b"\n")[:-1] + tail + b"\n"
            dst.write(line)
    os.replace(fixed, path)


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
