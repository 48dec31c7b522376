"""Pascal VOC: an XML file of pixel boxes per image."""
from __future__ import annotations

from xml.sax.saxutils import escape

from .base import SHAPES, Writer
from .objects import Item, Obj, file_stem


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

    def _xml(self, file_name: str, objs: list[Obj], width, height, item: Item) -> None:
        parts = [f"<annotation>\n  <folder>{self.images_in}</folder>\n  <filename>{escape(file_name)}</filename>\n"
                 f"  <size>\n    <width>{width or 0}</width>\n    <height>{height or 0}</height>\n"
                 f"    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n"]
        for obj in objs:
            if not width or not height or obj.box is None:
                self.unsized(item, file_name, obj)
            self.class_id(obj.label)
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
            self._xml(name, objs, width, height, item)
            self.write_masks(name, objs)

    def finish(self) -> dict:
        (self.root / "labels.txt").write_text("".join(c + "\n" for c in self.classes), encoding="utf-8")
        return {"annotations_dir": "Annotations", "image_dir": self.images_in}
