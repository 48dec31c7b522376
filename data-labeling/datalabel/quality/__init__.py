"""Label quality: agreement between annotators, the consensus of each task, and the labels most likely wrong.

One module per concern, each importing only those before it in this list:
  consensus   who said what on each task; the majority label, ties flagged
  agreement   Cohen's kappa per pair, Krippendorff's alpha (project, per class), agreement with the consensus;
              boxes and polygons matched by IoU (F1, mean IoU)
  mislabels   out-of-fold probabilities from the project's model (k-fold over the labeled train split), ranked by
              confident learning (cleanlab)
  review      the Data Manager tab "Review: likely mislabeled" and the queue that serves it with "Label All Tasks"
This file ties them to a Label Studio project (what the commands call). Tasks are read through the shared model in
`tasks.py`, Label Studio through `ls`, the model and images through `active`.
"""
from __future__ import annotations

from typing import Callable

from .. import ls
from ..active import ImageLoader, labeled_examples, project_target, task_split
from ..errors import LabError
from ..output import next_step
from .agreement import IOU_MATCH, agreement, classification_agreement, region_agreement
from .consensus import Consensus, consensus, majority, task_votes
from .mislabels import FOLDS, Suspect, find_mislabels
from .review import REVIEW_VERSION, REVIEW_VIEW, last_review, write_review

__all__ = ["agreement", "classification_agreement", "consensus", "Consensus", "find_mislabels", "FOLDS",
           "IOU_MATCH", "majority", "project_agreement", "project_mislabels", "region_agreement", "REVIEW_VERSION",
           "REVIEW_VIEW", "snapshot_quality", "Suspect", "task_votes", "write_review"]


def _named(result: dict, emails: dict[str, str]) -> dict:
    """Annotator ids (as annotations carry them) shown as their emails."""
    name = lambda who: emails.get(str(who), str(who))  # noqa: E731
    for pair in result.get("pairs", []):
        pair["a"], pair["b"] = name(pair["a"]), name(pair["b"])
    for row in result.get("per_annotator", []):
        row["annotator"] = name(row["annotator"])
    for cons in result.get("consensus", []):
        cons["votes"] = {name(k): v for k, v in cons["votes"].items()}
    return result


def project_agreement(client, project_id: int, progress: Callable[[int], None] | None = None) -> dict:
    """Agreement figures and the consensus of a project's tasks labeled by two or more annotators."""
    config = ls.project_config(client, project_id)
    tasks = list(ls.project_tasks(client, project_id, progress))
    result = agreement(tasks, config)
    return {"project": project_id, "labeled_tasks": sum(t.is_labeled for t in tasks),
            **_named(result, ls.user_emails(client))}


def project_mislabels(client, project_id: int, folds: int = FOLDS, seed: int = 0, limit: int | None = None,
                      review: bool = True, loader=None, progress: Callable[[int], None] | None = None) -> dict:
    """Rank every labeled task of a classification project, most likely mislabeled first; the suspects are cleanlab's
    flagged tasks (at most `limit`). With `review`, write the review tab and queue (review.py)."""
    target = project_target(client, project_id)
    tasks = list(ls.project_tasks(client, project_id, progress))
    # the given label of a task several people labeled is their majority (ties: the latest of the tied)
    examples = labeled_examples(tasks, "majority", target.labels)
    loader = loader or ImageLoader.for_client(client)
    next_step(progress, "read images", len(examples), unit="images")
    features = loader.features([t for t, _ in examples], target.data_key, progress=progress)
    ranked = find_mislabels(examples, features, target.labels, [task_split(t) for t, _ in examples], folds, seed,
                            [len(task_votes(t, target.from_name)) for t, _ in examples], progress)
    suspects = [s for s in ranked if s.flagged][:limit]
    result = {"project": project_id, "labeled": len(examples), "flagged": sum(s.flagged for s in ranked),
              "folds": folds, "suspects": [s.to_json() for s in suspects], "ranking": [s.to_json() for s in ranked],
              "review": None}
    if review and suspects:
        result["review"] = write_review(client, project_id, suspects, {t.id: t for t in tasks}, target)
    return result


def snapshot_quality(tasks: list, config, client=None, project_id: int | None = None) -> dict:
    """What a dataset version's manifest records of label quality: the agreement on its tasks labeled by two or
    more annotators, and how many of its tasks the last `datalabel quality mislabels` flagged (read from the
    project's review tab; None without a project or a review)."""
    try:
        found = agreement(tasks, config, kappas=False)  # the figures numpy and krippendorff give
    except LabError:
        found = {"kind": None, "tasks": 0}
    summary = {key: found.get(key) for key in ("kind", "tasks", "annotators", "alpha", "f1", "mean_iou")
               if key in found}
    summary["ties"] = len(found.get("ties", []))
    flagged = None
    if client is not None and project_id is not None:
        try:
            ranked = last_review(client, project_id).get("ranked")
        except LabError:
            ranked = None
        if ranked is not None:
            flagged = len(set(ranked) & {t.id for t in tasks})
    return {"agreement": summary, "flagged": flagged}
