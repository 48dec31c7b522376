"""Who said what on each task, and the consensus: the majority label, with ties flagged (never broken silently).

A task's votes are one label per annotator: that annotator's latest annotation that counts (skipped ones never
do), its first class of the chosen control. An annotator who labeled a task twice has one vote.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from ..tasks import Annotation, Task


def latest_per_annotator(task: Task) -> dict[str, Annotation]:
    """Each annotator's latest annotation of the task that counts (skipped / cancelled ones never do)."""
    out: dict[str, Annotation] = {}
    for ann in sorted(task.valid_annotations, key=lambda a: (a.updated_at, a.id or 0)):
        out[ann.completed_by or "unknown"] = ann
    return out


def annotation_label(ann: Annotation, from_name: str | None = None) -> str | None:
    """The first class an annotation gives through the control `from_name` (any control when None)."""
    for region in ann.result:
        if from_name and region.from_name != from_name:
            continue
        if region.labels:
            return str(region.labels[0])
    return None


def task_votes(task: Task, from_name: str | None = None) -> dict[str, str]:
    """annotator -> label, for the annotators whose annotation of the task has a label."""
    votes = {}
    for who, ann in latest_per_annotator(task).items():
        label = annotation_label(ann, from_name)
        if label is not None:
            votes[who] = label
    return votes


@dataclass
class Consensus:
    """The majority label of one task; `tie` when two or more labels share the most votes (then `label` is None
    and `tied` names them)."""

    task_id: int | None
    label: str | None
    votes: dict[str, str]
    tie: bool = False
    tied: list[str] = field(default_factory=list)

    @property
    def annotators(self) -> int:
        return len(self.votes)

    @property
    def share(self) -> float:
        """How many of the votes the consensus label has (0 for a tie)."""
        if self.label is None or not self.votes:
            return 0.0
        return sum(v == self.label for v in self.votes.values()) / len(self.votes)

    def to_json(self) -> dict:
        return {"task_id": self.task_id, "label": self.label, "tie": self.tie, "tied": self.tied,
                "annotators": self.annotators, "share": round(self.share, 6), "votes": self.votes}


def majority(votes: dict[str, str], task_id: int | None = None) -> Consensus:
    counts = Counter(votes.values())
    if not counts:
        return Consensus(task_id, None, votes)
    best = max(counts.values())
    winners = sorted(label for label, n in counts.items() if n == best)
    if len(winners) > 1:
        return Consensus(task_id, None, votes, tie=True, tied=winners)
    return Consensus(task_id, winners[0], votes)


def consensus(tasks: Iterable[Task], from_name: str | None = None, min_annotators: int = 1) -> list[Consensus]:
    """The consensus of each task with at least `min_annotators` labeled annotations, in task order."""
    out = []
    for task in tasks:
        votes = task_votes(task, from_name)
        if len(votes) >= min_annotators:
            out.append(majority(votes, task.id))
    return out
