"""Which tasks to label next in a project: rank the unlabeled pool by the uncertainty of its predictions."""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Callable

from .. import warm
from ..errors import ConfigError, NotFound
from ..tasks import Task
from .predictions import latest_prediction, prediction_probs
from .project import DEFAULT_VIEW, find_view, release_locks, save_view, target_of
from .splits import check_split, in_split, task_split
from .scoring import SCORE_STRATEGIES, STRATEGIES, certainty, select, uncertainty


@dataclass
class Candidate:
    task_id: int
    label: str
    top_prob: float  # the model's probability of `label`, its top class
    prediction_score: float | None  # the stored prediction's `score` (the certainty Label Studio's queue sorts by)
    uncertainty: float  # this strategy's uncertainty (high = label next)
    split: str


def select_tasks(client, project_id: int, strategy: str = "least-confidence", k: int = 20,
                 max_score: float | None = None, model_version: str | None = None, split: str | None = "train",
                 seed: int = 0, view_title: str | None = DEFAULT_VIEW,
                 progress: Callable[[int], None] | None = None, release: bool = False) -> dict:
    """Rank unlabeled tasks of `split` (default train; "all" for every task) by the uncertainty of their
    predictions; save the top K as a Data Manager view.

    Predictions of `model_version` count, by default the project's (what "Label All Tasks" and the score column
    follow), else each task's latest. The result says whether Label Studio's queue serves in the same order.
    `release`: also release the task locks the user holds (release_locks; `locks_released` in the result), once
    the view is saved (not during the read: a release writes and deletes a skip, which a warm read would count).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    check_split(split)
    # numpy's import (~0.1 s) in a thread, while this one waits for Label Studio's answers to the read
    threading.Thread(target=importlib.import_module, args=("numpy",), daemon=True).start()
    # the project is read once (its config, its model version, its counts), with the tasks
    project, project_tasks = warm.project_and_tasks(client, project_id, progress)
    target = target_of(project.label_config)
    current = str(getattr(project, "model_version", "") or "")
    seen_current = False
    tasks, splits = [], {}  # the unlabeled tasks of the split, slimmed to id + predictions: a 100k project streams by
    for task in project_tasks:
        if not task.is_labeled and in_split(task, split):
            # the project's version counts if the pool has its predictions (a review's are on labeled tasks only)
            seen_current = seen_current or any(p.model_version == current for p in task.predictions)
            splits[task.id] = task_split(task)
            tasks.append(Task(task.id, {}, predictions=task.predictions))
    import numpy as np  # imported by now, or being imported (the thread above): then this waits for it

    if model_version is None and current and seen_current:
        model_version = current
    pool, probs, stored = [], [], []
    for task in tasks:
        pred = latest_prediction(task, model_version)
        p = prediction_probs(pred, target.labels) if pred is not None else None
        if p is None:
            if strategy != "random":
                continue
            p = {}
        pool.append(task)
        probs.append([p.get(label, 0.0) for label in target.labels])
        stored.append(pred.score if pred is not None and isinstance(pred.score, (int, float)) else np.nan)
    if not pool:
        raise NotFound(f"no unlabeled task of project {project_id}"
                       + (f" in the {split} split" if split not in (None, "all") else "") + " has a prediction"
                       + (f" of model version {model_version!r}" if model_version else "")
                       + "; run `datalabel al preannotate` first")
    matrix = np.asarray(probs, dtype=float)
    chosen = select(matrix, strategy, k, None if strategy == "random" else max_score, seed)
    u = uncertainty(matrix, strategy, seed)
    picked = [Candidate(pool[i].id, target.labels[int(matrix[i].argmax())] if matrix[i].any() else "",
                        float(matrix[i].max()), None if np.isnan(stored[i]) else float(stored[i]), float(u[i]),
                        splits[pool[i].id]) for i in chosen]
    if not picked:
        raise NotFound(f"no task has a top_prob (top-class probability) <= {max_score}; raise --max-score")
    # the queue orders by the stored scores: it agrees with this ranking when they are this strategy's certainty
    same_order = (strategy in SCORE_STRATEGIES and model_version is not None and model_version == current
                  and bool(np.allclose(np.asarray(stored), certainty(matrix, strategy), atol=1e-5)))
    # one after the other: on SQLite, Label Studio answers two writes at once with "database is locked" and runs
    # the losing request again after a second's sleep (its DatabaseIsLockedRetryMiddleware); a next-task request run
    # again finds the lock its first run took (21 of 150 tab saves beside a release hit it, measured)
    view = save_view(client, project_id, view_title, [c.task_id for c in picked]) if view_title else None
    locks = len(release_locks(client, project_id)) if release else None
    return {"project": project_id, "strategy": strategy, "split": split or "all", "model_version": model_version,
            "pool": len(pool), "selected": [c.__dict__ for c in picked], "view": view,
            "queue_matches": same_order, **({"locks_released": locks} if release else {})}


def refresh_view(client, project_id: int, strategy: str = "least-confidence", title: str = DEFAULT_VIEW,
                 split: str | None = "train") -> dict | None:
    """Rank the tab `title` again by the project's current model version (after a retrain), keeping its size, so
    its first row is again what "Label All Tasks" serves first. None when the project has no such tab."""
    view = find_view(client, project_id, title)
    if view is None:
        return None
    items = ((view.data or {}).get("filters") or {}).get("items") or []
    k = max(1, len(items))
    return select_tasks(client, project_id, strategy, k, None, None, split, view_title=title)
