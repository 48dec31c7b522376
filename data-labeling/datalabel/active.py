"""Active learning: splits, pre-annotations, uncertainty sampling, a baseline model, and the offline simulation.

The loop: a model pre-annotates the train split (predictions whose score is a certainty, with a model version,
uploaded in bulk), the project's queue serves the least certain task first (Label Studio's Uncertainty sampling
over that version; a saved Data Manager view shows the top K), the model retrains on the new labels, repeat. The same `select` function ranks tasks for Label Studio and for the offline simulation, so the
learning curves measure exactly what the command does.

Tasks are read through the shared model in `tasks.py` (Task, choose_annotation); Label Studio is reached only
through `ls.py` / the SDK client.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from . import gcs
from .files import atomic_path, write_text_atomic
from .errors import ConfigError, LabError, NotFound, ServerError
from .tasks import Task, choose_annotation

STRATEGIES = ("least-confidence", "margin", "entropy", "random")
SCORE_STRATEGIES = STRATEGIES[:3]  # what a prediction's score can be the certainty of
SPLITS = ("train", "valid", "test")
SPLIT_FIELD = "split"  # the task data key the split is written to (a Data Manager column)
MODEL_PREFIX = "logreg-v"
DEFAULT_VIEW = "Active learning: label next"
UNCERTAINTY_SAMPLING = "Uncertainty sampling"  # Label Studio's project setting: lowest prediction score first
PIXELS = 8  # images are reduced to PIXELS x PIXELS grayscale


# --- splits ---------------------------------------------------------------------------------------------------


def split_of(key: str, seed: int = 0, valid: float = 0.1, test: float = 0.1) -> str:
    """train / valid / test for a stable key (the image URL): a hash, so reruns and new tasks never move old ones."""
    if valid < 0 or test < 0 or valid + test >= 1:
        raise ConfigError(f"split fractions must be >= 0 and valid + test < 1 (got valid={valid}, test={test})")
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test:
        return "test"
    if u < test + valid:
        return "valid"
    return "train"


def media_url(task: Task, data_key: str | None = None) -> str | None:
    """The task's media reference as stored (gs://...), undoing Label Studio's proxy link if the API returned one."""
    url = task.media_url(data_key)
    if not isinstance(url, str):
        return None
    return gcs.gs_url_from_ref(url) or url


def stable_key(task: Task, data_key: str | None = None) -> str:
    """What a task's split is derived from: its media URL, else its data, never the task id (ids differ per server)."""
    url = media_url(task, data_key)
    if url:
        return url
    return json.dumps(task.data, sort_keys=True)


def stored_split(task: Task) -> str | None:
    """The split written into the task: `data.split` (what `assign_splits` writes, a Data Manager column), else
    `meta.split` (where earlier versions stored it)."""
    for holder in (task.data, task.meta):
        value = holder.get(SPLIT_FIELD) if isinstance(holder, dict) else None
        if value in SPLITS:
            return value
    return None


def task_split(task: Task, seed: int = 0, valid: float = 0.1, test: float = 0.1, data_key: str | None = None) -> str:
    """The split stored with the task, else the one its key hashes to."""
    return stored_split(task) or split_of(stable_key(task, data_key), seed, valid, test)


# What the task model reads; the server sends only these. Label Studio applies the same list to each annotation,
# so the annotation keys (result, completed_by, ...) are named too; predictions come whole.
TASK_KEYS = ("id,data,meta,project,annotations,predictions,"
             "result,completed_by,was_cancelled,ground_truth,created_at,updated_at")


def load_tasks(client, project_id: int) -> list[Task]:
    from . import ls

    return [Task.from_json(obj) for obj in ls.iter_task_json(client, project_id, include=TASK_KEYS)]


def load_tasks_by_id(client, task_ids: Iterable[int]) -> list[Task]:
    from . import ls

    out = []
    for task_id in task_ids:
        with ls.api_errors(f"task {task_id}", client.settings.url):
            out.append(Task.from_json(client.tasks.get(id=str(task_id)).model_dump(mode="json", exclude_none=True)))
    return out


def plan_splits(tasks: Sequence[Task], seed: int = 0, valid: float = 0.1, test: float = 0.1,
                reassign: bool = False) -> tuple[dict[str, list[int]], dict]:
    """Which task ids must get which split written, and the counts after the write.

    A split already stored is kept unless `reassign`; a task whose `data.split` already says it is not rewritten.
    """
    split_of("", seed, valid, test)  # checks the fractions before anything is written
    todo: dict[str, list[int]] = {name: [] for name in SPLITS}
    counts = {name: 0 for name in SPLITS}
    kept = 0
    for task in tasks:
        if not isinstance(task.id, int) or not isinstance(task.data, dict):
            raise ServerError(f"Label Studio sent a task without an id or data ({str(task.id)[:40]}); not writing splits")
        stored = None if reassign else stored_split(task)
        name = stored or split_of(stable_key(task), seed, valid, test)
        counts[name] += 1
        if task.data.get(SPLIT_FIELD) == name:
            kept += 1
        else:
            todo[name].append(int(task.id))
    return todo, {"tasks": len(tasks), "assigned": sum(map(len, todo.values())), "kept": kept, **counts}


def assign_splits(client, project_id: int, seed: int = 0, valid: float = 0.1, test: float = 0.1,
                  reassign: bool = False, progress: Callable[[int], None] | None = None) -> dict:
    """Write a split into each task's data (`data.split`, a column in the Data Manager). Returns counts.

    Derived from a hash of the image URL and `seed`, so running it again changes nothing and tasks added later get
    a split without moving the old ones. Only tasks without `data.split` are read (all with `reassign`), and one
    bulk call per split writes them (Label Studio's "Add Or Modify Data Field" action, one UPDATE on its side)
    instead of one PATCH per task: reading is what costs on a first run, a rerun reads nothing.
    """
    from . import ls

    split_of("", seed, valid, test)  # checks the fractions before anything is read or written
    unset = None if reassign else {"conjunction": "and", "items": [
        {"filter": f"filter:tasks:data.{SPLIT_FIELD}", "operator": "empty", "type": "String", "value": True}]}
    tasks = [Task.from_json(obj) for obj in ls.iter_task_json(client, project_id, fields="task_only", filters=unset,
                                                                   resolve_uri=False, include="id,data,meta")]
    todo, _ = plan_splits(tasks, seed, valid, test, reassign)
    for name, ids in todo.items():
        if not ids:
            continue
        with ls.api_errors(f"write split {name!r} into {len(ids)} task(s)", client.settings.url):
            client.actions.create(id="add_data_field", project=project_id,
                                  selected_items={"all": False, "included": ids},
                                  request_options={"additional_body_parameters": {
                                      "value_name": SPLIT_FIELD, "value_type": "String", "value": name}})
        if progress:
            progress(len(ids))
    counts = {name: ls.count_tasks(client, project_id, {"conjunction": "and", "items": [
        {"filter": f"filter:tasks:data.{SPLIT_FIELD}", "operator": "equal", "type": "String", "value": name}]})
        for name in SPLITS}
    assigned = sum(map(len, todo.values()))
    total = ls.count_tasks(client, project_id)
    return {"project": project_id, "tasks": total, "assigned": assigned, "kept": total - assigned, **counts}


def write_splits_one_by_one(client, project_id: int, seed: int = 0, valid: float = 0.1, test: float = 0.1) -> int:
    """The per-task way (one PATCH of `meta` per task): kept as the benchmark's baseline."""
    from . import ls

    todo, _ = plan_splits(load_tasks(client, project_id), seed, valid, test, reassign=True)
    pairs = [(task_id, name) for name, ids in todo.items() for task_id in ids]

    def write(item: tuple[int, str]) -> None:
        task_id, name = item
        with ls.api_errors(f"set split of task {task_id}", client.settings.url):
            client.tasks.update(id=str(task_id), meta={SPLIT_FIELD: name, "split_seed": seed})

    gcs.parallel(write, pairs, workers=8)
    return len(pairs)


# --- uncertainty and selection (pure) -------------------------------------------------------------------------


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


# --- predictions in Label Studio ------------------------------------------------------------------------------


@dataclass
class Target:
    """Where classification predictions go in a project's label config."""

    from_name: str
    to_name: str
    data_key: str | None
    labels: list[str]


def target_of(label_config) -> Target:
    """The classification control of a label config (XML text or a parsed LabelConfig)."""
    from .labelconfig import parse_config

    config = parse_config(label_config) if isinstance(label_config, str) else label_config
    for control in config.controls:
        if control.tag == "Choices":
            to_name = control.to_name.split(",")[0]
            return Target(control.name, to_name, config.objects[to_name][1], control.labels)
    raise ConfigError("the project has no <Choices> control: active learning here handles image classification")


def project_target(client, project_id: int) -> Target:
    from . import ls

    return target_of(ls.project_config(client, project_id))


def prediction_json(task_id: int, probs: dict[str, float], target: Target, model_version: str,
                    strategy: str = "least-confidence") -> dict:
    """A Label Studio prediction for one task: the top class with its probability, every class's probability,
    and as the prediction's `score` the certainty by `strategy` (what uncertainty sampling orders by)."""
    if not probs:
        raise LabError(f"no class probabilities for task {task_id}")
    # rounded once: the score below and a later `al select` (which reads this map back) see the same numbers
    rounded = {k: round(float(v), 6) for k, v in probs.items()}
    label = max(rounded, key=rounded.get)
    row = [rounded.get(k, 0.0) for k in target.labels] if target.labels else list(rounded.values())
    sure = float(certainty([row], strategy)[0])
    region = {"type": "choices", "from_name": target.from_name, "to_name": target.to_name,
              "value": {"choices": [label]}, "score": rounded[label],
              # kept beside the region so margin / entropy can be computed from Label Studio data later
              "scores": rounded}
    return {"task": int(task_id), "result": [region], "score": round(sure, 6), "model_version": model_version}


def prediction_probs(pred, labels: Sequence[str]) -> dict[str, float] | None:
    """Class probabilities of a stored prediction: the full `scores` map if present, else spread from the score.

    With only a top score s for label L, the remaining mass is spread evenly over the other labels (the least
    informative completion), so least-confidence is exact and margin / entropy stay defined.
    """
    raw = pred.to_json() if hasattr(pred, "to_json") else pred
    regions = raw.get("result") or []
    for region in regions:
        if isinstance(region, dict) and isinstance(region.get("scores"), dict) and region["scores"]:
            return {str(k): float(v) for k, v in region["scores"].items()}
    chosen = []
    for region in regions:
        value = region.get("value", {}) if isinstance(region, dict) else {}
        chosen.extend(value.get("choices") or [])
    # the region's score is the top class's probability; the prediction's may be another certainty
    score = next((r.get("score") for r in regions if isinstance(r, dict) and r.get("score") is not None), None)
    if score is None:
        score = raw.get("score")
    if not chosen or score is None:
        return None
    top = str(chosen[0])
    others = [label for label in labels if label != top]
    rest = (1.0 - float(score)) / len(others) if others else 0.0
    return {top: float(score), **{label: rest for label in others}}


def latest_prediction(task: Task, model_version: str | None = None):
    preds = [p for p in task.predictions if model_version is None or p.model_version == model_version]
    if not preds:
        return None
    return max(preds, key=lambda p: p.id or 0)


def import_predictions(client, project_id: int, predictions: list[dict], chunk: int = 500,
                       progress: Callable[[int], None] | None = None) -> int:
    """Upload predictions for existing tasks in bulk (one request per `chunk`). Returns how many were created."""
    from . import ls

    created = 0
    for start in range(0, len(predictions), chunk):
        batch = predictions[start:start + chunk]
        with ls.api_errors(f"import predictions into project {project_id}", client.settings.url):
            response = client.projects.import_predictions(id=project_id, request=batch)
        created += int(getattr(response, "created", None) or len(batch))
        if progress:
            progress(len(batch))
    return created


def create_predictions_one_by_one(client, predictions: list[dict]) -> int:
    """The per-task way (one request per prediction): kept as the benchmark's baseline."""
    from . import ls

    for pred in predictions:
        with ls.api_errors(f"create prediction for task {pred['task']}", client.settings.url):
            client.predictions.create(task=pred["task"], result=pred["result"], score=pred.get("score"),
                                      model_version=pred.get("model_version"))
    return len(predictions)


@dataclass
class PredictionRow:
    """One line of a predictions file: which image, the label(s), the score(s)."""

    path: str
    labels: list[str]
    score: float | None = None
    scores: dict[str, float] | None = None


def read_prediction_file(path: str | Path) -> list[PredictionRow]:
    """Predictions from JSON lines or CSV.

    JSONL: {"path": "gs://b/x.png" | "x.png", "label": "3" | "labels": [...], "score": 0.9, "scores": {"3": 0.9, ...}}
    CSV:   path,label,score  (several labels separated by ";")
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"predictions file not found: {path}")
    rows: list[PredictionRow] = []
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabError(f"{path}:{n}: not JSON ({exc.msg}); expected one object per line") from None
            rows.append(_row(obj, f"{path}:{n}"))
    else:
        reader = csv.DictReader(io.StringIO(text))
        for n, obj in enumerate(reader, 2):
            rows.append(_row(obj, f"{path}:{n}"))
    if not rows:
        raise LabError(f"{path}: no predictions found")
    return rows


def _row(obj: dict, where: str) -> PredictionRow:
    if not isinstance(obj, dict):
        raise LabError(f"{where}: expected an object with path, label and score")
    ref = obj.get("path") or obj.get("image") or obj.get("file") or obj.get("url")
    if not ref:
        raise LabError(f"{where}: no 'path' (the image's gs:// URL or file name)")
    labels = obj.get("labels") if obj.get("labels") is not None else obj.get("label")
    if isinstance(labels, str):
        labels = [s.strip() for s in labels.split(";") if s.strip()]
    scores = obj.get("scores") if isinstance(obj.get("scores"), dict) else None
    if not labels and scores:
        labels = [max(scores, key=scores.get)]
    if not labels:
        raise LabError(f"{where}: no 'label' for {ref}")
    score = obj.get("score")
    try:
        score = None if score in (None, "") else float(score)
        scores = {str(k): float(v) for k, v in scores.items()} if scores else None
    except (TypeError, ValueError):
        raise LabError(f"{where}: score is not a number") from None
    if score is not None and not 0.0 <= score <= 1.0:
        raise LabError(f"{where}: score {score} is outside 0..1")
    return PredictionRow(str(ref), [str(x) for x in labels], score, scores)


def _task_index(tasks: Iterable[Task]) -> dict[str, int]:
    """Lookup from every name a predictions file may use for an image (URL, blob name, file name) to a task id."""
    index: dict[str, int] = {}
    ambiguous: set[str] = set()
    for task in tasks:
        url = media_url(task)
        if not url:
            continue
        names = {url, url.split("/", 3)[-1] if url.startswith("gs://") else url, url.rsplit("/", 1)[-1]}
        for name in names:
            if name in index and index[name] != task.id:
                ambiguous.add(name)
            index[name] = task.id
    for name in ambiguous:
        index.pop(name, None)
    return index


def rows_to_predictions(rows: list[PredictionRow], tasks: list[Task], target: Target,
                        model_version: str) -> tuple[list[dict], list[str]]:
    """Match file rows to tasks; returns (predictions, references that matched no task)."""
    index = _task_index(tasks)
    preds, missing = [], []
    for row in rows:
        task_id = index.get(row.path) or index.get(row.path.rsplit("/", 1)[-1])
        if task_id is None:
            missing.append(row.path)
            continue
        unknown = [label for label in row.labels if label not in target.labels]
        if unknown:
            raise LabError(f"label(s) {', '.join(unknown)} for {row.path} are not in the project's labels "
                           f"({', '.join(target.labels)})")
        if row.scores:
            preds.append(prediction_json(task_id, row.scores, target, model_version))
            continue
        region = {"type": "choices", "from_name": target.from_name, "to_name": target.to_name,
                  "value": {"choices": row.labels}}
        pred = {"task": task_id, "result": [region], "model_version": model_version}
        if row.score is not None:
            region["score"] = row.score
            pred["score"] = row.score
        preds.append(pred)
    return preds, missing


def in_split(task: Task, split: str | None) -> bool:
    """`split` None or "all": every task; else only tasks of that split."""
    return split in (None, "all") or task_split(task) == split


def check_split(split: str | None) -> None:
    if split not in (None, "all", *SPLITS):
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}, all")


def preannotate(client, project_id: int, *, model_path: str | Path | None = None, file: str | Path | None = None,
                model_version: str | None = None, include_labeled: bool = False, models_dir: str | Path = "models",
                strategy: str = "least-confidence", split: str | None = "train", queue: bool = True,
                loader: "ImageLoader | None" = None, progress: Callable[[int], None] | None = None) -> dict:
    """Predictions for a project's tasks, uploaded in bulk, from a trained model or a JSONL/CSV file.

    A model's predictions carry as `score` the certainty by `strategy`. Only tasks of `split` get predictions
    (default train: valid and test are held out, so the labeling queue must not pick them by uncertainty).
    Tasks that already have a prediction of the same model version are skipped, so reruns add nothing. With
    `queue`, the project then serves tasks by these scores (`use_for_sampling`).
    """
    if model_path is None and file is None:
        raise ConfigError("nothing to upload: give a model (--model FILE or --model latest) or a predictions file (--from)")
    if model_path is not None and file is not None:
        raise ConfigError("give a model (--model) or a predictions file (--from), not both")
    check_split(split)
    if strategy not in SCORE_STRATEGIES:
        raise ConfigError(f"cannot score predictions by {strategy!r}; choose one of: {', '.join(SCORE_STRATEGIES)}")
    target = project_target(client, project_id)
    tasks = load_tasks(client, project_id)
    outside = sum(not in_split(t, split) for t in tasks)
    tasks = [t for t in tasks if in_split(t, split)]
    if file is not None:
        version = model_version or Path(file).stem
        preds, missing = rows_to_predictions(read_prediction_file(file), tasks, target, version)
        if not preds:
            raise NotFound(f"no line of {file} matches a task of project {project_id}"
                           + (f" in the {split} split" if split not in (None, "all") else "")
                           + (f" (e.g. {missing[0]!r}); use the image's gs:// URL or file name" if missing else ""))
    else:
        model = load_model(model_path, models_dir, project_id)
        version = model_version or model.version
        wanted = [t for t in tasks if include_labeled or not t.is_labeled]
        preds = predict_tasks(model, wanted, target, version, strategy, loader or ImageLoader.for_client(client))
        missing = []
    have = {t.id for t in tasks if latest_prediction(t, version) is not None}
    skipped = len([p for p in preds if p["task"] in have]) + (len(wanted) - len(preds) if file is None else 0)
    preds = [p for p in preds if p["task"] not in have]
    started = time.perf_counter()
    created = import_predictions(client, project_id, preds, progress=progress)
    seconds = round(time.perf_counter() - started, 3)
    sampling = use_for_sampling(client, project_id, version) if queue and (created or have) else None
    return {"project": project_id, "model_version": version, "created": created, "skipped": skipped,
            "outside_split": outside, "unmatched": len(missing), "seconds": seconds, "sampling": sampling}


def predict_tasks(model: "PixelModel", tasks: Sequence[Task], target: Target, version: str, strategy: str,
                  loader: "ImageLoader") -> list[dict]:
    """Predictions of `model` for tasks that have none of `version` yet."""
    todo = [t for t in tasks if latest_prediction(t, version) is None]
    if not todo:
        return []
    probs = model.predict_proba(loader.features(todo, target.data_key, model.size))
    return [prediction_json(t.id, dict(zip(model.classes, row)), target, version, strategy)
            for t, row in zip(todo, probs)]


# --- the project's labeling queue -----------------------------------------------------------------------------


def use_for_sampling(client, project_id: int, model_version: str) -> dict:
    """Make "Label All Tasks" serve the least certain task first: the project's sampling becomes "Uncertainty
    sampling" over predictions of `model_version` (lowest score first), and the Data Manager's prediction-score
    column follows the same version. Label Studio accepts a version only once predictions of it exist."""
    from . import ls

    with ls.api_errors(f"set the labeling queue of project {project_id} to {model_version!r}", client.settings.url):
        client.projects.update(id=project_id, sampling=UNCERTAINTY_SAMPLING, model_version=model_version,
                               show_collab_predictions=True)
    return {"sampling": UNCERTAINTY_SAMPLING, "model_version": model_version}


def project_model_version(client, project_id: int) -> str:
    from . import ls

    return str(getattr(ls.get_project(client, project_id), "model_version", "") or "")


# --- selection in Label Studio --------------------------------------------------------------------------------


@dataclass
class Candidate:
    task_id: int
    label: str
    score: float
    uncertainty: float
    split: str


def select_tasks(client, project_id: int, strategy: str = "least-confidence", k: int = 20,
                 max_score: float | None = None, model_version: str | None = None, split: str | None = "train",
                 seed: int = 0, view_title: str | None = DEFAULT_VIEW) -> dict:
    """Rank unlabeled tasks of `split` (default train; "all" for every task) by the uncertainty of their
    predictions; save the top K as a Data Manager view.

    Predictions of `model_version` count, by default the project's (what "Label All Tasks" and the score column
    follow), else each task's latest. The result says whether Label Studio's queue serves in the same order.
    """
    import numpy as np

    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    check_split(split)
    target = project_target(client, project_id)
    all_tasks = load_tasks(client, project_id)
    current = project_model_version(client, project_id)
    if model_version is None and current and any(p.model_version == current for t in all_tasks for p in t.predictions):
        model_version = current
    tasks = [t for t in all_tasks if not t.is_labeled and in_split(t, split)]
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
                        float(matrix[i].max()), float(u[i]), task_split(pool[i])) for i in chosen]
    if not picked:
        raise NotFound(f"no task has a top score <= {max_score}; raise --max-score")
    view = save_view(client, project_id, view_title, [c.task_id for c in picked]) if view_title else None
    # the queue orders by the stored scores: it agrees with this ranking when they are this strategy's certainty
    same_order = (strategy in SCORE_STRATEGIES and model_version is not None and model_version == current
                  and bool(np.allclose(np.asarray(stored), certainty(matrix, strategy), atol=1e-5)))
    return {"project": project_id, "strategy": strategy, "split": split or "all", "model_version": model_version,
            "pool": len(pool), "selected": [c.__dict__ for c in picked], "view": view,
            "queue_matches": same_order}


def save_view(client, project_id: int, title: str, task_ids: list[int]) -> dict:
    """A Data Manager tab showing exactly `task_ids`, lowest prediction score (least certain) first; replaced in
    place when re-run. "Label Tasks As Displayed" labels them in this order; "Label All Tasks" follows the
    project's queue (the whole project, least certain first once `use_for_sampling` set it)."""
    from . import ls

    if not task_ids:
        raise LabError("refusing to save an empty selection as a view (it would show every task)")
    # the Data Manager UI knows `equal` on ids; an OR of them shows exactly the selection
    data = {
        "title": title,
        "filters": {"conjunction": "or", "items": [
            {"filter": "filter:tasks:id", "operator": "equal", "type": "Number", "value": int(i)} for i in task_ids]},
        "ordering": ["tasks:predictions_score"],
    }
    with ls.api_errors(f"save view {title!r}", client.settings.url):
        existing = [v for v in client.views.list(project=project_id)
                    if isinstance(v.data, dict) and v.data.get("title") == title]
        if existing:
            view = client.views.update(id=str(existing[0].id), project=project_id, data=data)
        else:
            view = client.views.create(project=project_id, data=data)
    url = f"{client.settings.url}/projects/{project_id}/data?tab={view.id}"
    return {"id": view.id, "title": title, "tasks": len(task_ids), "url": url}


def view_task_ids(client, project_id: int, view_id: int) -> list[int]:
    from . import ls

    with ls.api_errors(f"tasks of view {view_id}", client.settings.url):
        return [t.id for t in client.tasks.list(project=project_id, view=view_id, fields="task_only")]


# --- images and features --------------------------------------------------------------------------------------


def pixels(image: bytes | str | Path, size: int = PIXELS):
    """An image as `size*size` grayscale values in 0..1 (box-filtered, so an upscaled 8x8 digit comes back exact)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        src = Image.open(io.BytesIO(image)) if isinstance(image, bytes) else Image.open(image)
        gray = src.convert("L").resize((size, size), Image.BOX)
    except (UnidentifiedImageError, OSError) as exc:
        raise LabError(f"not an image ({type(exc).__name__}): {str(image)[:80] if not isinstance(image, bytes) else 'bytes'}") from None
    return np.asarray(gray, dtype=np.float32).reshape(-1) / 255.0


class ImageLoader:
    """Fetches task images: gs:// straight from the bucket when this process can read it, else through Label
    Studio's proxy (/tasks/N/resolve/) with the API token. Features are cached by image URL."""

    def __init__(self, ls_url: str | None, token: str | None, use_gcs: bool | None = None):
        self.ls_url = (ls_url or "").rstrip("/")
        self.token = token
        if use_gcs is None:
            use_gcs = bool(os.environ.get("STORAGE_EMULATOR_HOST") or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
        self.use_gcs = use_gcs
        self._gcs = None
        self._cache: dict[tuple[str, int], object] = {}

    @classmethod
    def for_client(cls, client) -> "ImageLoader":
        settings = client.settings
        return cls(settings.url, settings.api_key,
                   bool(settings.emulator_host or settings.credentials_file or os.environ.get("STORAGE_EMULATOR_HOST")))

    def _storage(self):
        if self._gcs is None:
            self._gcs = gcs.client()
        return self._gcs

    def fetch(self, url: str, task_id: int | None = None) -> bytes:
        import urllib.error
        import urllib.request

        source = gcs.gs_url_from_ref(url) or url
        if source.startswith("gs://") and self.use_gcs:
            from google.api_core import exceptions

            from .gcs import split_url

            bucket, key = split_url(source)
            try:
                return self._storage().bucket(bucket).blob(key).download_as_bytes()
            except exceptions.NotFound:
                raise NotFound(f"image {source} is not in the bucket") from None
            except exceptions.GoogleAPIError as exc:
                raise ServerError(f"cannot read {source}: {exc}".splitlines()[0]) from None
        if source.startswith("gs://"):
            if task_id is None:
                raise ConfigError(f"cannot read {source}: no bucket access and no task to proxy it through")
            link = f"/tasks/{task_id}/resolve/?fileuri=" + base64.urlsafe_b64encode(source.encode()).decode()
        else:
            link = url
        if link.startswith("/"):
            if not self.ls_url:
                raise ConfigError(f"cannot fetch {link}: the Label Studio URL is not known")
            link = self.ls_url + link
        headers = {}
        if self.token and (not self.ls_url or link.startswith(self.ls_url)):
            headers["Authorization"] = f"Token {self.token}"
        try:
            with urllib.request.urlopen(urllib.request.Request(link, headers=headers), timeout=30) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise ServerError(f"cannot fetch image {source}: HTTP {exc.code}") from None
        except OSError as exc:
            raise ServerError(f"cannot fetch image {source}: {type(exc).__name__}") from None

    def feature(self, task: Task, data_key: str | None, size: int = PIXELS):
        url = task.media_url(data_key)
        if not isinstance(url, str):
            raise LabError(f"task {task.id} has no image URL under data[{data_key!r}]")
        key = (gcs.gs_url_from_ref(url) or url, size)
        if key not in self._cache:
            self._cache[key] = pixels(self.fetch(url, task.id), size)
        return self._cache[key]

    def features(self, tasks: Sequence[Task], data_key: str | None, size: int = PIXELS,
                 progress: Callable[[int], None] | None = None):
        import numpy as np

        from .gcs import parallel

        if not tasks:
            return np.zeros((0, size * size), dtype=np.float32)
        rows = parallel(lambda t: self.feature(t, data_key, size), list(tasks), workers=8, progress=progress)
        return np.vstack(rows)


# --- the baseline model ---------------------------------------------------------------------------------------


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


# --- the offline simulation -----------------------------------------------------------------------------------


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

    from .samples import read_truth

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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

