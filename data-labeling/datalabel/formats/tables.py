"""JSON-MIN and CSV: one record per task, the control values as Label Studio's JSON-MIN writes them."""
from __future__ import annotations

import csv
import json
from typing import IO

from ..tasks import Annotation
from .base import Writer, dumps
from .objects import Item


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
