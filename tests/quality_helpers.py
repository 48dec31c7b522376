"""Several annotators label demo tasks through the real API, each with their own token (the tests of `datalabel
quality` and benchmarks/bench_quality.py): a seeded plan of who labels what, with some labels flipped."""
from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from datalabel import ls
from datalabel.config import Settings


@dataclass
class Plan:
    """Who gives which label to which task: (task id, annotator index, label), the true labels, the tasks whose
    first label was flipped on purpose."""

    votes: list[tuple[int, int, str]] = field(default_factory=list)
    truth: dict[int, str] = field(default_factory=dict)
    flipped: set[int] = field(default_factory=set)


def plan_labels(truth: dict[int, str], classes: list[str], annotators: int, overlap_share: float,
                flip_rate: float, noise: float, seed: int = 0) -> Plan:
    """Each task gets one label from an annotator in turn; `flip_rate` of those (exactly round(n x rate) tasks,
    chosen at random) are another class. `overlap_share` of the tasks that are not flipped get a label from
    every other annotator too, each wrong with probability `noise` (disagreement to measure)."""
    rng = random.Random(seed)
    ids = sorted(truth)
    flipped = set(rng.sample(ids, round(len(ids) * flip_rate)))
    others = [t for t in ids if t not in flipped]
    overlap = set(rng.sample(others, round(len(others) * overlap_share)))
    plan = Plan(truth=dict(truth), flipped=flipped)
    for i, tid in enumerate(ids):
        first = i % annotators
        label = truth[tid]
        if tid in flipped:
            label = rng.choice([c for c in classes if c != truth[tid]])
        plan.votes.append((tid, first, label))
        if tid in overlap:
            for who in range(annotators):
                if who == first:
                    continue
                wrong = rng.random() < noise
                plan.votes.append((tid, who, rng.choice([c for c in classes if c != truth[tid]]) if wrong
                                   else truth[tid]))
    return plan


def choice(label: str, from_name: str = "choice", to_name: str = "image") -> list[dict]:
    return [{"type": "choices", "from_name": from_name, "to_name": to_name, "value": {"choices": [label]}}]


def label_through_api(url: str, tokens: list[str], votes: list[tuple[int, int, str]], workers: int = 8) -> int:
    """Each vote submitted by its annotator, with that annotator's own token (one client per annotator)."""
    clients = [ls.connect(Settings(url=url, api_key=token)) for token in tokens]

    def submit(vote: tuple[int, int, str]) -> None:
        task_id, who, label = vote
        clients[who].annotations.create(id=task_id, result=choice(label))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(submit, votes))
    return len(votes)
