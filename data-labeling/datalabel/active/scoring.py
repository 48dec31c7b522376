"""Uncertainty maths (pure): how unsure a model is of each item, the certainty a prediction's score holds,
and which items to label next. The same `select` ranks tasks for Label Studio and for the offline simulation."""
from __future__ import annotations

from ..errors import ConfigError, LabError


STRATEGIES = ("least-confidence", "margin", "entropy", "random")
SCORE_STRATEGIES = STRATEGIES[:3]  # what a prediction's score can be the certainty of


def uncertainty(probs, strategy: str, seed: int = 0):
    """One number per row of class probabilities; higher means the model is less sure."""
    import numpy as np

    p = np.asarray(probs, dtype=float)
    if p.ndim != 2:
        raise LabError("probabilities must be a 2-D array (items x classes)")
    if strategy == "least-confidence":
        return 1.0 - p.max(axis=1)
    if strategy == "margin":
        if p.shape[1] < 2:
            return np.zeros(len(p))
        top2 = np.sort(p, axis=1)[:, -2:]
        return 1.0 - (top2[:, 1] - top2[:, 0])
    if strategy == "entropy":
        q = np.clip(p, 1e-12, 1.0)
        return -(q * np.log(q)).sum(axis=1)
    if strategy == "random":
        return np.random.default_rng(seed).random(len(p))
    raise ConfigError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")


def certainty(probs, strategy: str = "least-confidence"):
    """One number in 0..1 per row, the reverse of `uncertainty`'s order: what a prediction's `score` holds.

    Label Studio's "Uncertainty sampling" serves the task whose prediction has the lowest score first, so the
    score must be a certainty (low = label next): the top probability, the top-two margin, or one minus the
    entropy as a fraction of its maximum.
    """
    import numpy as np

    if strategy not in SCORE_STRATEGIES:
        raise ConfigError(f"cannot score predictions by {strategy!r}; choose one of: {', '.join(SCORE_STRATEGIES)}")
    p = np.asarray(probs, dtype=float)
    u = uncertainty(p, strategy)
    if strategy == "entropy":
        return 1.0 - u / np.log(p.shape[1]) if p.shape[1] > 1 else np.ones(len(p))
    return 1.0 - u


def select(probs, strategy: str, k: int, max_score: float | None = None, seed: int = 0) -> list[int]:
    """Indexes of the `k` most uncertain rows (most uncertain first).

    `max_score`: only rows whose top probability is at most this are eligible (the model is not already sure).
    """
    import numpy as np

    if k < 1:
        raise ConfigError(f"top-k must be at least 1 (got {k})")
    p = np.asarray(probs, dtype=float)
    if len(p) == 0:
        return []
    u = uncertainty(p, strategy, seed)
    eligible = np.arange(len(p))
    if max_score is not None:
        eligible = eligible[p.max(axis=1) <= max_score]
    # stable sort: ties keep input order, so the result is reproducible
    order = eligible[np.argsort(-u[eligible], kind="stable")]
    return [int(i) for i in order[:k]]
