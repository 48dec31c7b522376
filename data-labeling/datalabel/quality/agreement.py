"""Agreement between annotators, on the tasks two or more of them labeled.

Classification (a <Choices> control): Cohen's kappa per annotator pair (scikit-learn's `cohen_kappa_score`),
Krippendorff's alpha, nominal, for the project and per class (the `krippendorff` package; a class's alpha is the
alpha of "this class or not"), and each annotator's agreement with the consensus (consensus.py).

Boxes and polygons (<RectangleLabels>, <PolygonLabels>): for each pair of annotators of a task, regions are
matched one to one by IoU, greedily from the largest IoU down (as COCO's evaluation matches); a pair of the same
label with IoU >= 0.5 is a match. F1 = 2 x matches / (regions of one + regions of the other), and the
mean IoU of the matches, per annotator pair and for the project.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import ConfigError
from ..geometry import Point, rect_corners, rect_value
from ..tasks import Region, Task
from .consensus import Consensus, latest_per_annotator, majority, task_votes

IOU_MATCH = 0.5
REGION_TYPES = {"rectanglelabels": "rectangles", "polygonlabels": "polygons"}


def _none_if_nan(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


# --- classification --------------------------------------------------------------------------------------------


@dataclass
class Ratings:
    """The reliability data of a classification project: one row per annotator, one column per task rated by two
    or more, the class index or NaN where that annotator did not label that task."""

    task_ids: list[int]
    annotators: list[str]
    classes: list[str]
    matrix: "object"  # numpy array, annotators x tasks
    consensus: list[Consensus]


def ratings(tasks: Iterable[Task], from_name: str | None = None, classes: Sequence[str] | None = None) -> Ratings:
    """The votes of every task with two or more labeled annotations, as Krippendorff's reliability data."""
    import numpy as np

    rows = [(task.id, task_votes(task, from_name)) for task in tasks]
    rows = [(tid, votes) for tid, votes in rows if len(votes) >= 2]
    seen = sorted({label for _, votes in rows for label in votes.values()})
    names = list(classes or []) + [c for c in seen if c not in (classes or [])]
    code = {name: i for i, name in enumerate(names)}
    annotators = sorted({who for _, votes in rows for who in votes}, key=lambda w: (len(w), w))
    index = {who: i for i, who in enumerate(annotators)}
    matrix = np.full((len(annotators), len(rows)), np.nan)
    for j, (_, votes) in enumerate(rows):
        for who, label in votes.items():
            matrix[index[who], j] = code[label]
    return Ratings([tid for tid, _ in rows], annotators, names, matrix,
                   [majority(votes, tid) for tid, votes in rows])


def alpha_nominal(matrix, domain: Sequence[int]) -> float | None:
    """Krippendorff's alpha (nominal) of reliability data; None where it is undefined (fewer than two pairable
    values, or a single value in all of them)."""
    import krippendorff
    import numpy as np

    values = matrix[~np.isnan(matrix)]
    pairable = (np.sum(~np.isnan(matrix), axis=0) >= 2).sum() if matrix.size else 0
    if pairable == 0 or len(np.unique(values)) < 2:
        return None
    return _none_if_nan(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal",
                                           value_domain=list(domain)))


def pair_kappas(r: Ratings) -> list[dict]:
    """Cohen's kappa and the raw agreement of every pair of annotators on the tasks both labeled."""
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    out = []
    for (i, a), (j, b) in itertools.combinations(enumerate(r.annotators), 2):
        both = ~np.isnan(r.matrix[i]) & ~np.isnan(r.matrix[j])
        n = int(both.sum())
        if n == 0:
            continue
        x, y = r.matrix[i, both].astype(int), r.matrix[j, both].astype(int)
        kappa = None
        if len(np.unique(np.concatenate([x, y]))) > 1:  # one class in both: kappa is 0/0
            kappa = _none_if_nan(cohen_kappa_score(x, y, labels=list(range(len(r.classes)))))
        out.append({"a": a, "b": b, "tasks": n, "agreement": float(np.mean(x == y)), "kappa": kappa})
    return out


def annotator_rows(r: Ratings, pairs: list[dict]) -> list[dict]:
    """Per annotator: tasks labeled among the shared ones, agreement with the consensus (tasks without a tie),
    and the mean kappa with the others."""
    import numpy as np

    out = []
    for i, who in enumerate(r.annotators):
        agree = total = 0
        for cons in r.consensus:
            if cons.tie or who not in cons.votes:
                continue
            total += 1
            agree += cons.votes[who] == cons.label
        kappas = [p["kappa"] for p in pairs if who in (p["a"], p["b"]) and p["kappa"] is not None]
        out.append({"annotator": who, "tasks": int((~np.isnan(r.matrix[i])).sum()),
                    "consensus_tasks": total, "consensus_agreement": agree / total if total else None,
                    "mean_kappa": sum(kappas) / len(kappas) if kappas else None})
    return out


def classification_agreement(tasks: Iterable[Task], from_name: str | None = None,
                             classes: Sequence[str] | None = None, kappas: bool = True) -> dict:
    """Every classification figure of the module, for the tasks labeled by two or more annotators. Without
    `kappas` no pair figures (scikit-learn is not needed: the versioning image carries none)."""
    import numpy as np

    r = ratings(tasks, from_name, classes)
    pairs = pair_kappas(r) if kappas else []
    domain = range(len(r.classes))
    per_class = {}
    for k, name in enumerate(r.classes):
        binary = np.where(np.isnan(r.matrix), np.nan, (r.matrix == k).astype(float))
        if (r.matrix == k).any():
            per_class[name] = alpha_nominal(binary, (0, 1))
    ties = [c.task_id for c in r.consensus if c.tie]
    return {
        "kind": "classification", "tasks": len(r.task_ids), "annotators": len(r.annotators),
        "alpha": alpha_nominal(r.matrix, domain), "alpha_per_class": per_class,
        "mean_kappa": _mean(p["kappa"] for p in pairs),
        "pairs": pairs, "per_annotator": annotator_rows(r, pairs),
        "consensus": [c.to_json() for c in r.consensus], "ties": ties,
    }


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


# --- boxes and polygons ----------------------------------------------------------------------------------------


@dataclass
class Shape:
    label: str
    points: list[Point]  # percent of the image; a rectangle's four corners
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 of an unrotated rectangle


def region_shape(region: Region) -> Shape | None:
    """A rectangle or polygon region as a shape in percent coordinates (IoU is the same in pixels: an affine map
    scales every area by one factor); None for other regions or malformed values."""
    if not region.labels:
        return None
    label = str(region.labels[0])
    if region.type == "rectanglelabels":
        parsed = rect_value(region.value)
        if parsed is None:
            return None
        x, y, w, h, rot = parsed
        if rot % 360 == 0:
            return Shape(label, [(x, y), (x + w, y), (x + w, y + h), (x, y + h)], (x, y, x + w, y + h))
        width, height = region.original_width or 100.0, region.original_height or 100.0
        return Shape(label, rect_corners(x, y, w, h, rot, width, height))
    if region.type == "polygonlabels":
        try:
            points = [(float(px), float(py)) for px, py in region.value.get("points") or []]
        except (TypeError, ValueError):
            return None
        return Shape(label, points) if len(points) >= 3 else None
    return None


RASTER = 0.05  # percent per raster cell where a shape is not an unrotated rectangle


def iou(a: Shape, b: Shape) -> float:
    """Intersection over union: exact for two unrotated rectangles, else on a raster of 1/20 of a percent."""
    if a.box and b.box:
        ix = max(0.0, min(a.box[2], b.box[2]) - max(a.box[0], b.box[0]))
        iy = max(0.0, min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]))
        inter = ix * iy
        union = ((a.box[2] - a.box[0]) * (a.box[3] - a.box[1]) + (b.box[2] - b.box[0]) * (b.box[3] - b.box[1])
                 - inter)
        return inter / union if union > 0 else 0.0
    return _raster_iou(a.points, b.points)


def _raster_iou(p: list[Point], q: list[Point]) -> float:
    import numpy as np
    from PIL import Image, ImageDraw

    xs = [x for x, _ in p + q]
    ys = [y for _, y in p + q]
    x0, y0 = min(xs), min(ys)
    if (max(xs) - x0) <= 0 or (max(ys) - y0) <= 0:
        return 0.0
    size = (int(math.ceil((max(xs) - x0) / RASTER)) + 2, int(math.ceil((max(ys) - y0) / RASTER)) + 2)

    def mask(points: list[Point]):
        img = Image.new("1", size, 0)
        ImageDraw.Draw(img).polygon([((x - x0) / RASTER, (y - y0) / RASTER) for x, y in points], fill=1)
        return np.asarray(img, dtype=bool)

    m, n = mask(p), mask(q)
    union = np.logical_or(m, n).sum()
    return float(np.logical_and(m, n).sum() / union) if union else 0.0


def match(a: list[Shape], b: list[Shape], threshold: float = IOU_MATCH) -> list[float]:
    """The IoUs of the matched pairs: one to one, same label, IoU >= threshold, the largest IoU first."""
    pairs = sorted(((iou(s, t), i, j) for i, s in enumerate(a) for j, t in enumerate(b) if s.label == t.label),
                   key=lambda p: (-p[0], p[1], p[2]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for score, i, j in pairs:
        if score < threshold:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append(score)
    return out


def task_shapes(task: Task, from_name: str | None = None) -> dict[str, list[Shape]]:
    """annotator -> the shapes of their latest annotation of the task."""
    out = {}
    for who, ann in latest_per_annotator(task).items():
        shapes = [region_shape(r) for r in ann.result if not from_name or r.from_name == from_name]
        out[who] = [s for s in shapes if s is not None]
    return out


def region_agreement(tasks: Iterable[Task], from_name: str | None = None, threshold: float = IOU_MATCH) -> dict:
    """F1 and mean IoU of matched regions, per annotator pair and for the project (micro: summed counts)."""
    pairs: dict[tuple[str, str], dict] = {}
    tasks_used = 0
    annotators: set[str] = set()
    for task in tasks:
        shapes = task_shapes(task, from_name)
        if len(shapes) < 2:
            continue
        tasks_used += 1
        annotators.update(shapes)
        for a, b in itertools.combinations(sorted(shapes, key=lambda w: (len(w), w)), 2):
            ious = match(shapes[a], shapes[b], threshold)
            acc = pairs.setdefault((a, b), {"a": a, "b": b, "tasks": 0, "matched": 0, "regions": 0, "iou_sum": 0.0})
            acc["tasks"] += 1
            acc["matched"] += len(ious)
            acc["regions"] += len(shapes[a]) + len(shapes[b])
            acc["iou_sum"] += sum(ious)
    rows = [_pair_row(p) for p in pairs.values()]
    total = _pair_row({"a": "", "b": "", "tasks": tasks_used, "matched": sum(p["matched"] for p in pairs.values()),
                       "regions": sum(p["regions"] for p in pairs.values()),
                       "iou_sum": sum(p["iou_sum"] for p in pairs.values())})
    return {"kind": "regions", "tasks": tasks_used, "annotators": len(annotators), "iou_threshold": threshold,
            "f1": total["f1"], "mean_iou": total["mean_iou"], "pairs": rows}


def _pair_row(p: dict) -> dict:
    return {"a": p["a"], "b": p["b"], "tasks": p["tasks"], "matched": p["matched"], "regions": p["regions"],
            "f1": 2 * p["matched"] / p["regions"] if p["regions"] else None,
            "mean_iou": p["iou_sum"] / p["matched"] if p["matched"] else None}


def agreement(tasks: list[Task], config, kappas: bool = True) -> dict:
    """The figures that fit a project's label config (a parsed LabelConfig): classification for its first
    <Choices>, else regions for its first <RectangleLabels> / <PolygonLabels>."""
    for control in config.controls:
        if control.tag == "Choices":
            return {"control": control.name,
                    **classification_agreement(tasks, control.name, control.labels, kappas)}
    for control in config.controls:
        if control.tag in ("RectangleLabels", "PolygonLabels"):
            return {"control": control.name, **region_agreement(tasks, control.name)}
    raise ConfigError("agreement is measured for <Choices>, <RectangleLabels> and <PolygonLabels> controls; "
                      "this project has none")
