"""The baseline model: logistic regression on downscaled pixels; train, save, load and prune its versions."""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import ConfigError, LabError, NotFound
from ..output import next_step
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


SUFFIX = ".json"
FILE_FORMAT = "datalabel-logreg/1"


def model_dir(models_dir: str | Path, project_id: int | str) -> Path:
    return Path(models_dir) / f"project-{project_id}"


def model_path(models_dir: str | Path, project_id: int | str, version: str) -> Path:
    return model_dir(models_dir, project_id) / f"{version}{SUFFIX}"


def list_versions(models_dir: str | Path, project_id: int | str) -> list[tuple[int, Path]]:
    folder = model_dir(models_dir, project_id)
    found = []
    for path in folder.glob(f"{MODEL_PREFIX}*{SUFFIX}"):
        m = re.fullmatch(re.escape(MODEL_PREFIX) + r"(\d+)" + re.escape(SUFFIX), path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


# A model file is data, never code: the fitted numbers and the metadata as JSON (a pickle, as joblib writes, runs
# whatever code whoever could write the file put in it when it is loaded).


def model_json(model: PixelModel) -> str:
    est = model.estimator
    return json.dumps({
        "format": FILE_FORMAT, "version": model.version, "classes": model.classes, "size": model.size,
        "n_train": model.n_train, "n_valid": model.n_valid, "valid_accuracy": model.valid_accuracy,
        "trained_at": model.trained_at, "extra": model.extra,
        "estimator": {"coef": est.coef_.tolist(), "intercept": est.intercept_.tolist(),
                      "classes": [str(c) for c in est.classes_], "C": est.C, "max_iter": est.max_iter},
    }, indent=1)


def model_from_json(text: str, where: str) -> PixelModel:
    """The model in a file written by `save_model`; LabError for anything else (checked, never executed)."""
    import numpy as np

    def refuse(why: str) -> LabError:
        return LabError(f"{where} is not a model saved by `datalabel al train` ({why})")

    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise refuse("not JSON") from None
    if not isinstance(obj, dict) or obj.get("format") != FILE_FORMAT:
        raise refuse(f"no format {FILE_FORMAT!r}")
    try:
        size, classes, raw = int(obj["size"]), [str(c) for c in obj["classes"]], obj["estimator"]
        coef = np.asarray(raw["coef"], dtype=float)
        intercept = np.asarray(raw["intercept"], dtype=float)
        est_classes = np.asarray([str(c) for c in raw["classes"]])
    except (KeyError, TypeError, ValueError):
        raise refuse("fields missing or of the wrong type") from None
    rows = 1 if len(est_classes) == 2 else len(est_classes)
    if not 1 <= size <= 64 or len(est_classes) < 2 or coef.shape != (rows, size * size) \
            or intercept.shape != (rows,) or not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise refuse("the numbers do not fit together")
    est = make_estimator()
    est.set_params(C=float(raw.get("C", est.C)), max_iter=int(raw.get("max_iter", est.max_iter)))
    est.coef_, est.intercept_, est.classes_ = coef, intercept, est_classes
    est.n_features_in_ = size * size
    est.n_iter_ = np.zeros(1, dtype=int)
    accuracy = obj.get("valid_accuracy")
    return PixelModel(str(obj.get("version", "")), classes, est, size, int(obj.get("n_train", 0)),
                      int(obj.get("n_valid", 0)), None if accuracy is None else float(accuracy),
                      str(obj.get("trained_at", "")), obj.get("extra") if isinstance(obj.get("extra"), dict) else {})


def save_model(model: PixelModel, models_dir: str | Path, project_id: int | str) -> Path:
    """Write the next version atomically: a temp file in the same folder, then a no-clobber link to its name.

    The version number is picked here, so two trainers never write the same version.
    """
    folder = model_dir(models_dir, project_id)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        while True:
            versions = list_versions(models_dir, project_id)
            n = (versions[-1][0] if versions else 0) + 1
            model.version = f"{MODEL_PREFIX}{n}"
            Path(tmp).write_text(model_json(model), encoding="utf-8")
            final = model_path(models_dir, project_id, model.version)
            try:
                os.link(tmp, final)
                return final
            except FileExistsError:
                continue
    finally:
        os.unlink(tmp)


def load_model(path: str | Path | None, models_dir: str | Path = "models", project_id: int | str | None = None) -> PixelModel:
    """A saved model: a file path, or 'latest' / None for the project's newest version."""
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
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    except OSError as exc:
        raise LabError(f"cannot read model {path}: {exc.strerror}") from None
    return model_from_json(text, str(path))


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
    examples = labeled_examples(load_tasks(client, project_id, progress), policy, target.labels)
    train = [(t, y) for t, y in examples if task_split(t) == "train"]
    valid = [(t, y) for t, y in examples if task_split(t) == "valid"]
    digest = labels_digest(train + valid)
    if only_if_changed and list_versions(models_dir, project_id):
        newest = load_model("latest", models_dir, project_id)
        if newest.extra.get("labels_digest") == digest:
            return None
    loader = loader or ImageLoader.for_client(client)
    next_step(progress, "read images", len(train) + len(valid))
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
