"""The baseline model: logistic regression on downscaled pixels; train, save, load and prune its versions."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import ConfigError, LabError, NotFound
from ..tasks import Task, choose_annotation
from .images import PIXELS, ImageLoader
from .project import load_tasks, project_target
from .splits import stable_key, task_split


MODEL_PREFIX = "logreg-v"


@dataclass
class PixelModel:
    """Logistic regression on downscaled grayscale pixels: trains in well under a second on a CPU."""

    version: str
    classes: list[str]
    estimator: object
    size: int = PIXELS
    n_train: int = 0
    n_valid: int = 0
    valid_accuracy: float | None = None
    trained_at: str = ""
    extra: dict = field(default_factory=dict)

    def predict_proba(self, features):
        return self.estimator.predict_proba(features)

    def info(self) -> dict:
        return {"model_version": self.version, "classes": self.classes, "n_train": self.n_train,
                "n_valid": self.n_valid, "valid_accuracy": self.valid_accuracy, "trained_at": self.trained_at}


def make_estimator(seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, C=10.0, random_state=seed)


def fit(features, labels: Sequence[str], seed: int = 0):
    """A fitted estimator; at least two classes are needed."""
    import numpy as np

    classes = sorted(set(labels), key=lambda x: (len(x), x))
    if len(classes) < 2:
        raise LabError(f"need labels of at least 2 classes to train (have {len(labels)} label(s) of "
                       f"{len(classes)} class(es)); label a few more tasks")
    est = make_estimator(seed)
    est.fit(np.asarray(features), np.asarray(labels))
    return est


def model_dir(models_dir: str | Path, project_id: int | str) -> Path:
    return Path(models_dir) / f"project-{project_id}"


def list_versions(models_dir: str | Path, project_id: int | str) -> list[tuple[int, Path]]:
    folder = model_dir(models_dir, project_id)
    found = []
    for path in folder.glob(f"{MODEL_PREFIX}*.joblib"):
        m = re.fullmatch(re.escape(MODEL_PREFIX) + r"(\d+)\.joblib", path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def save_model(model: PixelModel, models_dir: str | Path, project_id: int | str) -> Path:
    """Write the next version atomically: a temp file in the same folder, then a no-clobber link to its name.

    The version number is picked here, so two trainers never write the same version.
    """
    import joblib

    folder = model_dir(models_dir, project_id)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        while True:
            versions = list_versions(models_dir, project_id)
            n = (versions[-1][0] if versions else 0) + 1
            model.version = f"{MODEL_PREFIX}{n}"
            joblib.dump(model, tmp)
            final = folder / f"{model.version}.joblib"
            try:
                os.link(tmp, final)
                return final
            except FileExistsError:
                continue
    finally:
        os.unlink(tmp)


def load_model(path: str | Path | None, models_dir: str | Path = "models", project_id: int | str | None = None) -> PixelModel:
    """A saved model: a file path, or 'latest' / None for the project's newest version."""
    import joblib

    if path in (None, "latest"):
        versions = list_versions(models_dir, project_id) if project_id is not None else []
        if not versions:
            raise NotFound(f"no trained model for project {project_id} in {model_dir(models_dir, project_id)}; "
                           "run `datalabel al train` first")
        path = versions[-1][1]
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"model file not found: {path}")
    try:
        model = joblib.load(path)
    except Exception as exc:  # pickle raises many unrelated types on a bad file
        raise LabError(f"cannot load model {path}: {type(exc).__name__}") from None
    if not isinstance(model, PixelModel):
        raise LabError(f"{path} is not a model saved by `datalabel al train`")
    return model


def labeled_examples(tasks: Iterable[Task], policy: str = "latest", labels: Sequence[str] | None = None
                     ) -> list[tuple[Task, str]]:
    """(task, class) for every labeled task; the class is the first choice of the chosen annotation."""
    out = []
    for task in tasks:
        ann = choose_annotation(task, policy)
        if ann is None or not ann.labels:
            continue
        label = ann.labels[0]
        if labels is not None and label not in labels:
            continue
        out.append((task, label))
    return out


def labels_digest(examples: Iterable[tuple[Task, str]]) -> str:
    """A fingerprint of a labeled set: which image has which label in which split (not task ids or times)."""
    rows = sorted(f"{task_split(t)}\0{stable_key(t)}\0{y}" for t, y in examples)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def prune_models(models_dir: str | Path, project_id: int | str, keep: int | None) -> list[Path]:
    """Delete all but the newest `keep` model files of a project (None keeps all). Returns what was deleted."""
    if keep is None:
        return []
    if keep < 1:
        raise ConfigError(f"keep at least 1 model version (got {keep})")
    old = [path for _, path in list_versions(models_dir, project_id)[:-keep]]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def train_project(client, project_id: int, models_dir: str | Path = "models", policy: str = "latest",
                  seed: int = 0, loader: ImageLoader | None = None, only_if_changed: bool = False,
                  keep: int | None = None, progress: Callable[[int], None] | None = None) -> PixelModel | None:
    """Train on the labeled tasks of the train split, evaluate on the valid split, save the next version.

    With `only_if_changed`, nothing is trained (None) when the labeled set is the one the newest version was
    trained on. `keep`: how many model files to keep (older ones are deleted after the save).
    """
    import numpy as np

    if keep is not None and keep < 1:
        raise ConfigError(f"keep at least 1 model version (got {keep})")
    target = project_target(client, project_id)
    examples = labeled_examples(load_tasks(client, project_id), policy, target.labels)
    train = [(t, y) for t, y in examples if task_split(t) == "train"]
    valid = [(t, y) for t, y in examples if task_split(t) == "valid"]
    digest = labels_digest(train + valid)
    if only_if_changed and list_versions(models_dir, project_id):
        newest = load_model("latest", models_dir, project_id)
        if newest.extra.get("labels_digest") == digest:
            return None
    loader = loader or ImageLoader.for_client(client)
    x_train = loader.features([t for t, _ in train], target.data_key, progress=progress)
    est = fit(x_train, [y for _, y in train], seed)
    accuracy = None
    if valid:
        x_valid = loader.features([t for t, _ in valid], target.data_key, progress=progress)
        accuracy = float(np.mean(est.predict(x_valid) == np.asarray([y for _, y in valid])))
    model = PixelModel("", [str(c) for c in est.classes_], est, PIXELS, len(train), len(valid), accuracy,
                       time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       {"project": project_id, "policy": policy, "labels_digest": digest})
    save_model(model, models_dir, project_id)
    prune_models(models_dir, project_id, keep)
    return model
