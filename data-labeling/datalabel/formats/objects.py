"""What the writers write: one task's chosen annotation as objects (boxes, polygons, masks, pose instances) in
percent of the image, and the names of the files they go to.

Coordinates: Label Studio stores x/y/width/height in percent of the image, top-left corner, rotation in degrees
clockwise around that corner, applied in pixels (geometry.py). Rotated boxes are exported as the axis-aligned box
around their corners (COCO adds the corners as segmentation; `yolo-obb` writes the corners), polygons as
polygons. label_studio_sdk.converter rotates the percent values instead, which is wrong on non-square images.
"""
from __future__ import annotations

import msgspec

from ..errors import LabError
from ..geometry import bounds, brush_mask, ellipse_points, mask_bounds, rect_corners, rect_value
from ..labelconfig import LabelConfig
from ..tasks import Annotation, Region, Task
from ..video import region_frames

IMAGE_DIR = "images"
VIDEO_DIR = "videos"


# msgspec Structs, not dataclasses: built in C (one Item per task and one Obj per region of large exports); gc=False:
# they hold no references back to each other, so the cyclic collector need not track them
class Obj(msgspec.Struct, gc=False):
    """One labeled object in percent coordinates."""

    label: str
    kind: str  # "box" | "polygon" | "mask" | "keypoints" (a pose instance of keypoints on no rectangle)
    box: tuple[float, float, float, float] | None  # x, y, w, h (percent), axis-aligned; None: image size needed
    points: list[tuple[float, float]] | None = None  # polygon vertices (percent)
    track: str | None = None  # video track id
    corners: list[tuple[float, float]] | None = None  # a rotated rectangle's corners (percent), as drawn
    mask: object | None = None  # kind "mask" (a brush region): a 2-D bool numpy array at the image's size
    keypoints: list[tuple[float, float] | None] | None = None  # pose: (x, y) percent per keypoint name, or None
    also: list[str] | None = None  # the region's other labels (multi-label): each is an object of its own


class Item(msgspec.Struct, gc=False):
    """One task on its way into an export."""

    task: Task
    annotation: Annotation | None
    name: str  # the image's file name inside the export (unique)
    url: str | None  # where the image comes from (gs://...), if known
    width: int | None = None
    height: int | None = None
    placed: list[str] = []  # relative paths where the image was written (each Item gets its own list)
    objects: list[Obj] | None = None  # the image's objects, once computed (image_objects)
    same_image: bool = False  # another annotation of the item before (json-min/csv, --policy all): image placed


def image_objects(item: Item, pose: "Pose | None" = None) -> list[Obj]:
    """The objects of an image task's chosen annotation (computed once per item); with `pose`, keypoints are
    grouped into pose instances (see Pose) instead of being left out."""
    if item.objects is None:
        regions = item.annotation.result if item.annotation else ()
        w, h = item.width, item.height
        if pose is None:
            item.objects = objs = []
            for region in regions:
                obj = region_object(region, w, h)
                if obj is not None:
                    objs.append(obj)
                    if obj.also:
                        objs.extend(relabeled(obj))
        else:
            item.objects = pose.objects(regions, w, h)
    return item.objects


def relabeled(obj: Obj) -> list[Obj]:
    """A region with several labels is an object per label (as Label Studio's YOLO writes a line per label)."""
    return [Obj(label, obj.kind, obj.box, obj.points, obj.track, obj.corners, obj.mask, obj.keypoints)
            for label in obj.also]


class Pose:
    """Keypoints as pose instances (COCO keypoints, YOLO pose), as Label Studio's converter groups them.

    Keypoint names are the labels of the config's KeyPointLabels, ordered by their `model_index` attribute where
    they have one (as Label Studio's converter orders them), then in config order. A keypoint whose `parentID` is
    a rectangle belongs to that rectangle's instance (its class is the rectangle's label); the other keypoints of
    an image form one instance, of the class named after their KeyPointLabels control, with the box around them.
    Each instance lists every keypoint name: (x, y, 2) where labeled, (0, 0, 0) where not.
    """

    TAGS = frozenset({"KeyPointLabels", "KeyPoint"})

    def __init__(self, config: LabelConfig):
        kp = [c for c in config.controls if c.tag in self.TAGS]
        names = list(dict.fromkeys(label for c in kp for label in c.labels))
        # a label's model_index fixes its place (as in Label Studio's converter); the others follow, in config order
        fixed = {}
        for c in kp:
            for label in c.labels:
                try:
                    fixed.setdefault(label, int(c.attrs.get(label, {})["model_index"]))
                except (KeyError, TypeError, ValueError):
                    pass
        self.names = sorted(fixed, key=lambda n: (fixed[n], names.index(n))) + [n for n in names if n not in fixed]
        self.index = {name: i for i, name in enumerate(self.names)}
        others = [label for c in config.controls if c not in kp for label in c.labels]
        self.loose = kp[0].name if kp else "keypoints"  # the class of keypoints without a rectangle
        self.classes = list(dict.fromkeys(others + ([self.loose] if self.loose not in others else [])))

    @staticmethod
    def wanted(config: LabelConfig) -> bool:
        return any(c.tag in Pose.TAGS for c in config.controls)

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
                if obj.also:
                    objs.extend(relabeled(obj))
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
            objs.append(Obj(self.loose, "keypoints", box, keypoints=kps))
        return objs


def _rect_object(label: str, value: dict, width, height) -> Obj | None:
    """A rectangle's object; a rotated one is rotated in pixels (geometry.py), so it needs the image size: without
    it the box is None and writers count the object as one without image size."""
    parsed = rect_value(value)
    if parsed is None:
        return None
    x, y, w, h, r = parsed
    if r % 360 == 0:
        return Obj(label, "box", (x, y, w, h))
    if not width or not height:
        return Obj(label, "box", None)
    corners = rect_corners(x, y, w, h, r, width, height)
    return Obj(label, "box", bounds(corners), corners=corners)


def region_object(region: Region, width=None, height=None) -> Obj | None:
    """The object of an image region (a rectangle, polygon, ellipse or brush mask; its first label, the others in
    `also`); other region types give None. `width`, `height`: the image size, when the region does not record it."""
    if region.type == "rectanglelabels":  # the common case: no generic label lookup
        value = region.value
        found = value.get("rectanglelabels")
        if isinstance(found, list):
            if not found:
                return None
            label = found[0]
            label = label[-1] if isinstance(label, list) else label
            if value.get("rotation") or len(found) > 1:
                obj = _rect_object(label, value, region.original_width or width, region.original_height or height)
                if obj is not None and len(found) > 1:
                    obj.also = [lab[-1] if isinstance(lab, list) else lab for lab in found[1:]]
                return obj
            # unrotated, inlined: this runs once per box of large exports
            try:
                box = float(value["x"]), float(value["y"]), float(value["width"]), float(value["height"])
            except (KeyError, TypeError, ValueError):
                return None
            return Obj(label, "box", box)
    labels = region.labels
    if not labels:
        return None
    obj = _shape(region, labels[0], region.original_width or width, region.original_height or height)
    if obj is not None and len(labels) > 1:
        obj.also = labels[1:]
    return obj


def _shape(region: Region, label: str, width, height) -> Obj | None:
    kind = region.type
    value = region.value
    if kind == "labels":  # a <Labels> control beside a <Rectangle>, <Polygon>...: the shape is in the value
        kind = ("polygon" if "points" in value else "ellipse" if "radiusX" in value else "brush" if "rle" in value
                else "rectangle" if "height" in value and "width" in value else "")
    if kind in ("rectanglelabels", "rectangle"):
        return _rect_object(label, value, width, height)
    if kind in ("polygonlabels", "polygon"):
        pts = [(float(p[0]), float(p[1])) for p in value.get("points") or [] if len(p) >= 2]
        if len(pts) < 3:
            return None
        return Obj(label, "polygon", bounds(pts), pts)
    if kind in ("ellipselabels", "ellipse"):
        return _ellipse_object(label, value, width, height)
    if kind in ("brushlabels", "brush"):
        return _brush_object(label, region, width, height)
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
