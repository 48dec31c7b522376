"""Project statistics from the shared task model: progress, classes, annotators, model versions.

A plain function over `tasks.Task` objects, so the same numbers come out of a live project, an export file or the
JSON that target storage wrote to the bucket.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Callable, Iterable

from . import ls
from .errors import LabError
from .labelconfig import parse_config
from .tasks import Task, choose_annotation


def compute_stats(tasks: Iterable[Task], labels: list[str] | None = None, users: dict[str, str] | None = None,
                  policy: str = "latest") -> dict:
    """Counts for a set of tasks.

    - tasks: total; labeled (at least one annotation that was not skipped); skipped (only skipped/cancelled
      annotations); unlabeled (no annotation at all).
    - classes: label occurrences in the one annotation `policy` picks per labeled task (regions for detection,
      choices for classification), in config order when `labels` is given (zero counts kept).
    - annotators: per person, annotations submitted and skipped; `users` maps ids to emails.
    - predictions: per model version, how many predictions, on how many tasks, and their mean score.
    """
    users = users or {}
    total = labeled = skipped = 0
    classes: Counter = Counter()
    class_tasks: Counter = Counter()
    annotators: dict[str, Counter] = defaultdict(Counter)
    versions: dict[str, dict] = {}
    annotations = cancelled = 0

    for task in tasks:
        total += 1
        if task.is_labeled:
            labeled += 1
            chosen = choose_annotation(task, policy)
            found = chosen.labels if chosen else []
            classes.update(found)
            class_tasks.update(set(found))
        elif task.annotations:
            skipped += 1
        for ann in task.annotations:
            who = users.get(ann.completed_by, ann.completed_by) or "unknown"
            annotators[who]["skipped" if ann.was_cancelled else "annotations"] += 1
            cancelled += ann.was_cancelled
            annotations += not ann.was_cancelled
        for pred in task.predictions:
            entry = versions.setdefault(pred.model_version or "(none)", {"predictions": 0, "tasks": 0, "_scores": []})
            entry["predictions"] += 1
            if pred.score is not None:
                entry["_scores"].append(pred.score)
        for version in {pred.model_version or "(none)" for pred in task.predictions}:
            versions[version]["tasks"] += 1

    order = list(labels or [])
    order += sorted(label for label in classes if label not in order)
    predictions = {}
    for version in sorted(versions):
        entry = versions[version]
        scores = entry.pop("_scores")
        entry["mean_score"] = round(sum(scores) / len(scores), 4) if scores else None
        predictions[version] = entry
    return {
        "tasks": {"total": total, "labeled": labeled, "unlabeled": total - labeled - skipped, "skipped": skipped},
        "annotations": {"submitted": annotations, "skipped": cancelled},
        "classes": {label: {"count": classes.get(label, 0), "tasks": class_tasks.get(label, 0)} for label in order},
        "annotators": {who: {"annotations": c["annotations"], "skipped": c["skipped"]}
                       for who, c in sorted(annotators.items())},
        "predictions": predictions,
        "policy": policy,
    }


def project_stats(client, project_id: int, policy: str = "latest",
                  progress: Callable[[int], None] | None = None) -> dict:
    """`compute_stats` for a live Label Studio project (labels in config order, annotators by email), read as one
    whole-project export (`ls.project_tasks`); `progress` hears the bytes read."""
    project = ls.get_project(client, project_id)
    try:
        labels = parse_config(project.label_config).labels
    except LabError:  # a config our parser does not know still has countable tasks
        labels = None
    out = compute_stats(ls.project_tasks(client, project_id, progress), labels=labels,
                        users=ls.user_emails(client), policy=policy)
    return {"project": {"id": project.id, "title": project.title}, **out}
