"""Model versions: train a model (the interface in `interface.py`) on a project, save, load and retire versions."""
from __future__ import annotations

import hashlib
import json
import logging
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
from .images import ImageLoader
from .interface import DEFAULT_CLASS, Classifier, classifier_class
from .project import delete_model_version, load_tasks, project_target
from .splits import stable_key, task_split


log = logging.getLogger("datalabel.active")

MODEL_PREFIX = "logreg-v"


@dataclass
class ModelVersion:
    """One saved version: a model (any `Classifier`) and what it was trained on."""

    version: str
    model: Classifier
    n_train: int = 0
    n_valid: int = 0
    valid_accuracy: float | None = None
    trained_at: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(self.model.classes)

    def predict_proba(self, features):
        return self.model.predict_proba(features)

    def info(self) -> dict:
        return {"model_version": self.version, "model_kind": self.model.kind, "classes": self.classes,
                "n_train": self.n_train, "n_valid": self.n_valid, "valid_accuracy": self.valid_accuracy,
                "trained_at": self.trained_at}


SUFFIX = ".json"


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


# A model file is data, never code: the model's own `to_data()` and the metadata as JSON (a pickle, as joblib
# writes, runs whatever code whoever could write the file put in it when it is loaded). The file's `format` picks
# the class that reads it, among the default and the one configured (--model-class): never a name from the file.


def model_json(saved: ModelVersion) -> str:
    return json.dumps({
        "format": saved.model.kind, "version": saved.version, "classes": saved.classes,
        "n_train": saved.n_train, "n_valid": saved.n_valid, "valid_accuracy": saved.valid_accuracy,
        "trained_at": saved.trained_at, "extra": saved.extra, "estimator": saved.model.to_data(),
    }, indent=1)


def model_from_json(text: str, where: str, model_class: type | None = None) -> ModelVersion:
    """The model in a file written by `save_model`; LabError for anything else (checked, never executed)."""

    def refuse(why: str) -> LabError:
        return LabError(f"{where} is not a model saved by `datalabel al train` ({why})")

    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise refuse("not JSON") from None
    known = {cls.kind: cls for cls in (DEFAULT_CLASS, classifier_class(model_class))}
    if not isinstance(obj, dict) or obj.get("format") not in known:
        raise refuse(f"no format of {', '.join(map(repr, known))}")
    data = obj.get("estimator")
    if not isinstance(data, dict):
        raise refuse("fields missing or of the wrong type")
    if "size" in obj and "size" not in data:
        data = {**data, "size": obj["size"]}  # files of the first format kept the size beside the numbers
    try:
        model = known[obj["format"]].from_data(data)
        accuracy = obj.get("valid_accuracy")
        return ModelVersion(str(obj.get("version", "")), model, int(obj.get("n_train", 0)), int(obj.get("n_valid", 0)),
                            None if accuracy is None else float(accuracy), str(obj.get("trained_at", "")),
                            obj.get("extra") if isinstance(obj.get("extra"), dict) else {})
    except (TypeError, ValueError) as exc:
        raise refuse(str(exc) or "fields missing or of the wrong type") from None


def save_model(model: ModelVersion, models_dir: str | Path, project_id: int | str) -> Path:
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


def load_model(path: str | Path | None, models_dir: str | Path = "models", project_id: int | str | None = None,
               model_class: type | str | None = None) -> ModelVersion:
    """A saved model: a file path, or 'latest' / None for the project's newest version. Files of the default
    model and of `model_class` are read."""
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
    return model_from_json(text, str(path), model_class)


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


def retire_versions(client, project_id: int, models_dir: str | Path, keep: int | None) -> list[str]:
    """Delete the model files past the newest `keep`, and the predictions of those versions in Label Studio (a
    retired version's scores would otherwise stay in the project: what the queue and the score column read).
    Returns the versions retired."""
    versions = [path.name[:-len(SUFFIX)] for path in prune_models(models_dir, project_id, keep)]
    for version in versions:
        try:
            delete_model_version(client, project_id, version)
        except LabError as exc:  # the files are gone either way; the next retirement tries again
            log.warning("project %s: predictions of %s not deleted: %s", project_id, version, exc)
    return versions


def train_project(client, project_id: int, models_dir: str | Path = "models", policy: str = "latest",
                  seed: int = 0, loader: ImageLoader | None = None, only_if_changed: bool = False,
                  keep: int | None = None, progress: Callable[[int], None] | None = None,
                  model_class: type | str | None = None) -> ModelVersion | None:
    """Train a new `model_class` (default: the pixel model) on the labeled tasks of the train split, evaluate on
    the valid split, save the next version.

    With `only_if_changed`, nothing is trained (None) when the labeled set is the one the newest version (of the
    same kind) was trained on. `keep`: how many model files to keep; older ones are deleted after the save, with
    their predictions in Label Studio.
    """
    import numpy as np

    if keep is not None and keep < 1:
        raise ConfigError(f"keep at least 1 model version (got {keep})")
    cls = classifier_class(model_class)
    target = project_target(client, project_id)
    examples = labeled_examples(load_tasks(client, project_id, progress), policy, target.labels)
    train = [(t, y) for t, y in examples if task_split(t) == "train"]
    valid = [(t, y) for t, y in examples if task_split(t) == "valid"]
    digest = labels_digest(train + valid)
    if only_if_changed and list_versions(models_dir, project_id):
        newest = load_model("latest", models_dir, project_id, cls)
        if newest.extra.get("labels_digest") == digest and newest.model.kind == cls.kind:
            return None
    model = cls() if cls is not DEFAULT_CLASS else cls(seed=seed)
    loader = loader or ImageLoader.for_client(client)
    next_step(progress, "read images", len(train) + len(valid), unit="images")
    x_train = loader.features([t for t, _ in train], target.data_key, model, progress=progress)
    labels = [y for _, y in train]
    if len(set(labels)) < 2:
        raise LabError(f"need labels of at least 2 classes to train (have {len(labels)} label(s) of "
                       f"{len(set(labels))} class(es)); label a few more tasks")
    model.fit(x_train, labels)
    accuracy = None
    if valid:
        x_valid = loader.features([t for t, _ in valid], target.data_key, model, progress=progress)
        guess = np.asarray(model.classes)[np.asarray(model.predict_proba(x_valid)).argmax(axis=1)]
        accuracy = float(np.mean(guess == np.asarray([y for _, y in valid])))
    saved = ModelVersion("", model, len(train), len(valid), accuracy,
                         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         {"project": project_id, "policy": policy, "labels_digest": digest})
    save_model(saved, models_dir, project_id)
    retire_versions(client, project_id, models_dir, keep)
    return saved
