"""The offline simulation: learning curves of each strategy on a labeled folder, and their report."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ConfigError, require
from ..files import atomic_path, write_text_atomic
from ..samples import read_truth
from .images import PIXELS, pixels
from .interface import fit
from .splits import split_of
from .scoring import STRATEGIES, select


@dataclass
class Simulation:
    strategies: list[str]
    sizes: list[int]                       # number of labels at each round
    accuracy: dict[str, list[list[float]]]  # strategy -> repeat -> accuracy per round
    test_size: int
    pool_size: int

    def mean(self, strategy: str) -> list[float]:
        import numpy as np

        return [float(x) for x in np.mean(np.asarray(self.accuracy[strategy]), axis=0)]

    def labels_to_reach(self, strategy: str, accuracy: float) -> int | None:
        for n, acc in zip(self.sizes, self.mean(strategy)):
            if acc >= accuracy - 1e-12:
                return n
        return None

    def fractions_vs_random(self) -> dict[str, float | None]:
        """Per strategy: labels needed to reach random sampling's final accuracy, as a fraction of random's labels."""
        if "random" not in self.accuracy:
            return {}
        goal = self.mean("random")[-1]
        budget = self.sizes[-1]
        out = {}
        for strategy in self.strategies:
            if strategy == "random":
                continue
            n = self.labels_to_reach(strategy, goal)
            out[strategy] = None if n is None else round(n / budget, 4)
        return out

    def table_rows(self) -> list[dict]:
        means = {s: self.mean(s) for s in self.strategies}
        return [{"labels": n, **{s: round(means[s][i], 4) for s in self.strategies}} for i, n in enumerate(self.sizes)]


def load_digit_features(folder: str | Path, size: int = PIXELS):
    """Features and true labels of the sample digits written by `samples.write_digits` (PNG + truth.csv)."""
    import numpy as np


    folder = Path(folder)
    truth = read_truth(folder)
    names = sorted(truth)
    x = np.vstack([pixels(folder / "images" / name, size) for name in names])
    y = np.asarray([truth[name] for name in names])
    return names, x, y


def simulate(folder: str | Path, strategies: Sequence[str] = STRATEGIES, repeats: int = 3, initial: int = 20,
             step: int = 10, budget: int = 300, test_fraction: float = 0.25, split_seed: int = 0,
             progress: Callable[[int], None] | None = None) -> Simulation:
    """The loop with a simulated annotator (the true labels): train, select `step` tasks, label them, repeat.

    The held-out test split comes from the same hash as `split_of`; each repeat starts every strategy from the
    same random initial labels, so strategies differ only in what they select.
    """
    import numpy as np

    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    names, x, y = load_digit_features(folder)
    is_test = np.asarray([split_of(n, split_seed, 0.0, test_fraction) == "test" for n in names])
    x_test, y_test = x[is_test], y[is_test]
    pool_idx = np.flatnonzero(~is_test)
    if budget > len(pool_idx):
        raise ConfigError(f"budget {budget} is larger than the pool of {len(pool_idx)} images")
    if initial < 2 or initial > budget:
        raise ConfigError(f"initial labels must be between 2 and the budget {budget} (got {initial})")
    sizes = list(range(initial, budget + 1, step))
    if sizes[-1] != budget:
        sizes.append(budget)
    accuracy: dict[str, list[list[float]]] = {s: [] for s in strategies}
    for rep in range(repeats):
        rng = np.random.default_rng(1000 + rep)
        start = list(rng.choice(pool_idx, size=initial, replace=False))
        for strategy in strategies:
            labeled = list(start)
            curve = []
            for i, n in enumerate(sizes):
                est = fit(x[labeled], y[labeled], seed=rep)
                curve.append(float(np.mean(est.predict(x_test) == y_test)))
                if progress:
                    progress(1)
                if i + 1 == len(sizes):
                    break
                taken = set(labeled)
                rest = np.asarray([j for j in pool_idx if j not in taken])
                chosen = select(est.predict_proba(x[rest]), strategy, sizes[i + 1] - n, seed=rep * 7919 + i)
                labeled.extend(int(rest[j]) for j in chosen)
            accuracy[strategy].append(curve)
    return Simulation(list(strategies), sizes, accuracy, int(is_test.sum()), int(len(pool_idx)))


def write_report(sim: Simulation, out_dir: str | Path, name: str = "active_learning") -> dict[str, Path]:
    """Learning-curve PNG, a markdown table and a CSV, each written atomically. Returns their paths."""
    require("matplotlib", "plots", "the learning-curve PNG").use("Agg")  # no display needed
    plt = require("matplotlib.pyplot", "plots", "the learning-curve PNG")
    import numpy as np

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"png": out / f"{name}_curve.png", "md": out / f"{name}_table.md", "csv": out / f"{name}_table.csv"}

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for strategy in sim.strategies:
        runs = np.asarray(sim.accuracy[strategy])
        mean, std = runs.mean(axis=0), runs.std(axis=0)
        ax.plot(sim.sizes, mean, label=strategy, linestyle="--" if strategy == "random" else "-")
        ax.fill_between(sim.sizes, mean - std, mean + std, alpha=0.15)
    if "random" in sim.accuracy:
        ax.axhline(sim.mean("random")[-1], color="grey", linewidth=0.8, linestyle=":",
                   label=f"random @ {sim.sizes[-1]} labels")
    ax.set_xlabel("labeled images")
    ax.set_ylabel(f"test accuracy ({sim.test_size} held-out digits)")
    ax.set_title(f"Active learning on the digits sample (mean of {len(next(iter(sim.accuracy.values())))} runs)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(paths["png"]) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

    rows = sim.table_rows()
    cols = ["labels", *sim.strategies]
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    fractions = sim.fractions_vs_random()
    if fractions:
        md += ["", f"Labels needed to reach random sampling's accuracy at {sim.sizes[-1]} labels "
                   f"({sim.mean('random')[-1]:.4f}), as a fraction of {sim.sizes[-1]}:", ""]
        md += [f"- {s}: {'not reached' if f is None else f}" for s, f in fractions.items()]
    write_text_atomic(paths["md"], "\n".join(md) + "\n")

    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fp:
        writer = csv.DictWriter(fp, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
    return paths
