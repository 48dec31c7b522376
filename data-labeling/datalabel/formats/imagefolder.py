"""ImageFolder: classification as one folder per class (torchvision)."""
from __future__ import annotations

import csv

from .base import Writer
from .objects import Item


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
