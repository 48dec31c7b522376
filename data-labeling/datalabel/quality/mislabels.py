"""The labels most likely wrong: out-of-fold class probabilities from the project's model, ranked by confident
learning (cleanlab).

No task is scored by a model that saw its label: the labeled train split is cut into k stratified folds and each
fold is scored by the project's baseline model (active/model.py) trained on the other folds; labeled valid and
test tasks, which no training run uses, are scored by the model trained on the whole train split. cleanlab then
finds the label issues (`cleanlab.filter.find_label_issues`: the confident joint, pruned by noise rate) and scores
every label (`cleanlab.rank.get_label_quality_scores`, self-confidence: the out-of-fold probability of the given
label). The ranking lists the flagged tasks first, least likely label first, then the rest the same way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from ..active.interface import fit
from ..errors import LabError
from ..output import next_step
from ..tasks import Task

FOLDS = 5
METHOD = "self_confidence"  # cleanlab's ranking: the probability of the given label


@dataclass
class Suspect:
    rank: int
    task_id: int
    given: str
    suggested: str
    score: float  # label quality, 0..1: low = likely mislabeled
    suggested_probability: float
    flagged: bool
    split: str
    annotators: int

    def to_json(self) -> dict:
        return asdict(self)


def out_of_fold_probs(features, labels: Sequence[int], n_classes: int, folds: int = FOLDS, seed: int = 0,
                      holdout=None, progress: Callable[[int], None] | None = None):
    """(probabilities of the train rows from k-fold, probabilities of the `holdout` rows from a model trained on
    all train rows); columns are the classes 0..n_classes-1 (a class a fold never saw gets 0)."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    x, y = np.asarray(features), np.asarray(labels)
    counts = np.bincount(y, minlength=n_classes)
    k = min(folds, int(counts[counts > 0].max()))
    if len(y) < 2 * max(k, 2) or k < 2:
        raise LabError(f"need more labeled train tasks to score labels out of fold (have {len(y)}); label more")
    oof = np.zeros((len(y), n_classes))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    import warnings

    with warnings.catch_warnings():  # a class rarer than k: scikit-learn warns, the folds are still valid
        warnings.simplefilter("ignore", UserWarning)
        fold_list = list(splitter.split(x, y))
    for train_idx, test_idx in fold_list:
        est = fit(x[train_idx], [str(v) for v in y[train_idx]], seed)
        oof[np.ix_(test_idx, [int(c) for c in est.classes_])] = est.predict_proba(x[test_idx])
        if progress:
            progress(1)
    held = None
    if holdout is not None and len(holdout):
        est = fit(x, [str(v) for v in y], seed)
        held = np.zeros((len(holdout), n_classes))
        held[:, [int(c) for c in est.classes_]] = est.predict_proba(np.asarray(holdout))
    return oof, held


def rank_label_issues(labels: Sequence[int], probs) -> tuple[list[int], "object", set[int]]:
    """(row order, most likely mislabeled first; label quality per row; the rows cleanlab flags)."""
    import numpy as np

    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError as exc:  # the labeling image leaves out pandas, which cleanlab needs
        raise LabError(f"confident learning needs cleanlab with its dependencies ({exc.name} is missing here); "
                       "install the pinned requirements (requirements.lock), as the embedded stack has them") from None

    y = np.asarray(labels)
    p = np.asarray(probs, dtype=float)
    present = sorted(set(int(v) for v in y))  # cleanlab wants labels 0..K-1, every class present
    remap = {c: i for i, c in enumerate(present)}
    yy = np.array([remap[int(v)] for v in y])
    pp = p[:, present]
    pp = pp / np.clip(pp.sum(axis=1, keepdims=True), 1e-12, None)
    quality = get_label_quality_scores(yy, pp, method=METHOD)
    if len(present) < 2:
        return sorted(range(len(y)), key=lambda i: (quality[i], i)), quality, set()
    flagged = [int(i) for i in find_label_issues(yy, pp, return_indices_ranked_by=METHOD)]
    rest = sorted(set(range(len(y))) - set(flagged), key=lambda i: (quality[i], i))
    return flagged + rest, quality, set(flagged)


def find_mislabels(examples: list[tuple[Task, str]], features, classes: Sequence[str], splits: Sequence[str],
                   folds: int = FOLDS, seed: int = 0, annotators: Sequence[int] | None = None,
                   progress: Callable[[int], None] | None = None) -> list[Suspect]:
    """Every labeled example ranked, most likely mislabeled first. `examples` are (task, given label), with their
    pixel `features` (rows in the same order) and split names; train rows are scored out of fold, the others by
    the model of the whole train split."""
    import numpy as np

    code = {c: i for i, c in enumerate(classes)}
    y = np.array([code[label] for _, label in examples])
    x = np.asarray(features)
    train = np.array([s == "train" for s in splits])
    if not train.any():
        raise LabError("no labeled task in the train split: run `datalabel al split` and label some train tasks")
    next_step(progress, "score labels out of fold", folds, unit="folds")
    oof, held = out_of_fold_probs(x[train], y[train], len(classes), folds, seed,
                                  holdout=x[~train] if (~train).any() else None, progress=progress)
    probs = np.zeros((len(y), len(classes)))
    probs[train] = oof
    if held is not None:
        probs[~train] = held
    order, quality, flagged = rank_label_issues(y, probs)
    out = []
    for rank, i in enumerate(order, 1):
        task, given = examples[i]
        best = int(np.argmax(probs[i]))
        out.append(Suspect(rank, int(task.id), given, classes[best], round(float(quality[i]), 6),
                           round(float(probs[i, best]), 6), i in flagged, splits[i],
                           int(annotators[i]) if annotators is not None else 1))
    return out
