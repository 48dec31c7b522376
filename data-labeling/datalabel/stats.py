"""Project statistics from the shared task model: progress, classes, annotators, model versions.

A plain function over `tasks.Task` objects, so the same numbers come out of a live project, an export file or the
JSON that target storage wrote to the bucket. Two ways to read a live project:

- `project_stats`: the whole project in one Label Studio export (exact, costs about what the export costs).
- `incremental_stats`: annotations from the project's target storage through a local cache that fetches only the
  files new or changed since the last run; totals and predictions from Label Studio. When target storage holds
  other annotation counts than Label Studio's own, it says so and reads the whole project instead.
"""
from __future__ import annotations

import hashlib
import sys
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import ls
from .errors import ConfigError, LabError
from .export import BucketObjects, TaskCache, check_cache_file
from .files import exclusive_lock, user_cache
from .labelconfig import parse_config
from .taskdata import sync_task_data
from .tasks import Prediction, Task, choose_annotation


def compute_stats(tasks: Iterable[Task], labels: list[str] | None = None, users: dict[str, str] | None = None,
                  policy: str = "latest", classification: bool = False) -> dict:
    """Counts for a set of tasks.

    - tasks: total; labeled (at least one annotation that was not skipped); skipped (only skipped/cancelled
      annotations); unlabeled (no annotation at all); empty (only when there are some, with `classification`:
      the chosen annotation holds no choice, an empty submission, not a label; `dataversion snapshot` leaves
      it out too).
    - classes: label occurrences in the one annotation `policy` picks per labeled task (regions for detection,
      choices for classification), in config order when `labels` is given (zero counts kept).
    - annotators: per person, annotations submitted and skipped; `users` maps ids to emails.
    - predictions: per model version, how many predictions, on how many tasks, and their mean score.
    """
    users = users or {}
    total = labeled = skipped = empty = 0
    classes: Counter = Counter()
    class_tasks: Counter = Counter()
    annotators: dict[str, Counter] = defaultdict(Counter)
    versions: dict[str, dict] = {}
    annotations = cancelled = 0

    for task in tasks:
        total += 1
        if task.is_labeled:
            chosen = choose_annotation(task, policy)
            found = chosen.labels if chosen else []
            if classification and not found:
                empty += 1
            else:
                labeled += 1
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
        "tasks": {"total": total, "labeled": labeled, "unlabeled": total - labeled - skipped - empty,
                  "skipped": skipped, **({"empty": empty} if empty else {})},
        "annotations": {"submitted": annotations, "skipped": cancelled},
        "classes": {label: {"count": classes.get(label, 0), "tasks": class_tasks.get(label, 0)} for label in order},
        "annotators": {who: {"annotations": c["annotations"], "skipped": c["skipped"]}
                       for who, c in sorted(annotators.items())},
        "predictions": predictions,
        "policy": policy,
    }


def _labels(project) -> list[str] | None:
    try:
        return parse_config(project.label_config).labels
    except LabError:  # a config our parser does not know still has countable tasks
        return None


def _classification(project) -> bool:
    try:
        return parse_config(project.label_config).kind == "classification"
    except LabError:
        return False


def project_stats(client, project_id: int, policy: str = "latest",
                  progress: Callable[[int], None] | None = None) -> dict:
    """`compute_stats` for a live Label Studio project (labels in config order, annotators by email), read as one
    whole-project export (`ls.project_tasks`); `progress` hears the bytes read."""
    project = ls.get_project(client, project_id)
    out = compute_stats(ls.project_tasks(client, project_id, progress), labels=_labels(project),
                        users=ls.user_emails(client), policy=policy, classification=_classification(project))
    return {"project": {"id": project.id, "title": project.title}, **out}


def default_cache(url: str, project_id: int, bucket: str, prefix: str) -> Path:
    """Where `incremental_stats` keeps a project's target-storage copy: the user's cache, one file per server,
    project and storage place."""
    key = hashlib.sha256(f"{url}\0{project_id}\0{bucket}\0{prefix}".encode()).hexdigest()[:16]
    try:
        return user_cache("targets") / f"project-{project_id}-{key}.sqlite"
    except (OSError, RuntimeError) as exc:  # no (writable) home, as for a container user
        raise LabError(f"no cache folder for --incremental ({exc}); give one with --cache FILE") from None


def has_cache(project_id: int) -> bool:
    """Whether a target-storage copy of a project with this id exists (of any server or storage place): a
    warm read is likely, so what it needs besides the copy can be asked for before the storage is known."""
    try:
        return any(user_cache("targets").glob(f"project-{int(project_id)}-*.sqlite"))
    except (OSError, RuntimeError):
        return False


def incremental_stats(client, project_id: int, policy: str = "latest", cache: str | Path | None = None,
                      progress: Callable[[int], None] | None = None, storage_client=None) -> dict:
    """`project_stats` with the annotations read from the project's target storage, through the cache file
    `cache` (default: `default_cache`), fetching only files new or changed since the last run; `progress` hears
    files listed. Task totals come from the project's counters, predictions from one list of them. Falls back to
    `project_stats` (a note on stderr) without target storage, or when target storage's annotation counts differ
    from Label Studio's (not synced since annotations were deleted or imported)."""
    project = ls.get_project(client, project_id)
    targets = ls.list_storages(client, project_id, "target")
    if not targets:
        print(f"note: project {project_id} has no target storage; reading the whole project", file=sys.stderr)
        return project_stats(client, project_id, policy, progress)
    target = min(targets, key=lambda t: t.id)
    path = Path(cache) if cache else default_cache(client.settings.url, project_id, target.bucket, target.prefix or "")
    check_cache_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the prediction and user lists are read while the bucket is synced (Label Studio answers in parallel); the
    # task data `export convert` and `al` read warm (warm.py) is kept up to date in the same cache meanwhile
    with ThreadPoolExecutor(max_workers=2) as pool, exclusive_lock(path.with_name(path.name + ".lock")), \
            TaskCache(path) as store:
        predictions_f = pool.submit(ls.project_predictions, client, project_id)
        users_f = pool.submit(ls.user_emails, client)
        store.sync_source(BucketObjects(target.bucket, storage_client), target.prefix or "", progress)
        sync_task_data(store, client, project_id, project.task_number or 0)
        out = compute_stats(_with_predictions(store.tasks(), predictions_f.result()), labels=_labels(project),
                            users=users_f.result(), policy=policy, classification=_classification(project))
    counted = (out["annotations"]["submitted"], out["annotations"]["skipped"])
    expected = (project.total_annotations_number or 0, project.skipped_annotations_number or 0)
    if counted != expected:
        print(f"note: target storage gs://{target.bucket}/{target.prefix or ''} holds {counted[0]} annotations and "
              f"{counted[1]} skipped, Label Studio {expected[0]} and {expected[1]} (sync it: datalabel storage sync "
              f"{project_id} --direction target); reading the whole project", file=sys.stderr)
        return project_stats(client, project_id, policy, progress)
    t = out["tasks"]
    t["total"] = project.task_number or 0  # tasks without annotations or predictions are in no file we read
    t["unlabeled"] = t["total"] - t["labeled"] - t["skipped"] - t.get("empty", 0)
    return {"project": {"id": project.id, "title": project.title}, **out}


def _with_predictions(tasks: Iterable[Task], predictions: dict[int, list[Prediction]]) -> Iterator[Task]:
    """Annotated tasks with their predictions joined, then a bare task for each other task with predictions."""
    for task in tasks:
        task.predictions = predictions.pop(task.id, [])
        yield task
    for task_id, preds in predictions.items():
        yield Task(id=task_id, data={}, predictions=preds)
