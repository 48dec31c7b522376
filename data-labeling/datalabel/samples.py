"""Sample data that needs no internet: scikit-learn's 8x8 digits (1,797 images, classes 0-9) written as PNG.

The true class of each image is kept beside it in `truth.csv` (never in the file name, so annotators do not see
it); the active-learning simulation uses it as its simulated annotator.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .files import atomic_path

DIGIT_LABELS = [str(i) for i in range(10)]
SCALE = 8  # 8x8 -> 64x64 so a person can see them in the labeling UI


def digits_dataset():
    from sklearn.datasets import load_digits

    return load_digits()


def image_name(index: int) -> str:
    return f"digit_{index:04d}.png"


def write_digits(folder: str | Path, limit: int | None = None) -> Path:
    """Write the digits as PNG files into `folder/images/` plus `folder/truth.csv` (reused when complete)."""
    from PIL import Image
    import numpy as np

    folder = Path(folder)
    data = digits_dataset()
    count = len(data.images) if limit is None else min(limit, len(data.images))
    truth = folder / "truth.csv"
    images = folder / "images"
    if truth.exists() and sum(1 for _ in images.glob("digit_*.png")) == count:
        return folder
    images.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = (data.images[i] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(pixels, mode="L").resize((8 * SCALE, 8 * SCALE), Image.NEAREST)
        img.save(images / image_name(i))
    # truth.csv written last (atomically): its presence marks a complete folder
    with atomic_path(truth) as tmp, open(tmp, "w", newline="") as fp:
        writer = csv.writer(fp)
        writer.writerow(["file", "label"])
        for i in range(count):
            writer.writerow([image_name(i), int(data.target[i])])
    return folder


def read_truth(folder: str | Path) -> dict[str, str]:
    with open(Path(folder) / "truth.csv", newline="") as fp:
        return {row["file"]: row["label"] for row in csv.DictReader(fp)}
