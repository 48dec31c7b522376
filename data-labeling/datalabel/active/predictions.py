"""Pre-annotations: prediction JSON with a certainty as its score, read from a model or a JSONL/CSV file, uploaded
in bulk; the project's queue then follows them."""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .. import ls
from ..errors import ConfigError, LabError, NotFound
from ..files import check_json_depth, no_json_constant, read_user_text
from ..output import next_step
from ..tasks import Task
from .images import ImageLoader
from .model import ModelVersion, load_model
from .project import Target, load_tasks, project_target, use_for_sampling
from .splits import check_split, in_split, media_url
from .scoring import SCORE_STRATEGIES, certainty


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
    rows: list[PredictionRow] = []
    text = read_user_text(path, "predictions file", limit=1 << 30, error=LabError)
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                check_json_depth(line, f"{path}:{n}", LabError)
                obj = json.loads(line, parse_constant=no_json_constant)
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


def preannotate(client, project_id: int, *, model_path: str | Path | None = None, file: str | Path | None = None,
                model_version: str | None = None, include_labeled: bool = False, models_dir: str | Path = "models",
                strategy: str = "least-confidence", split: str | None = "train", queue: bool = True,
                loader: "ImageLoader | None" = None, progress: Callable[[int], None] | None = None,
                model_class: type | str | None = None) -> dict:
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
    # the model or the file first: a wrong one is refused before the project is read
    rows = read_prediction_file(file) if file is not None else None
    model = load_model(model_path, models_dir, project_id, model_class) if file is None else None
    tasks = load_tasks(client, project_id, progress)
    outside = sum(not in_split(t, split) for t in tasks)
    tasks = [t for t in tasks if in_split(t, split)]
    if file is not None:
        version = model_version or Path(file).stem
        preds, missing = rows_to_predictions(rows, tasks, target, version)
        if not preds:
            raise NotFound(f"no line of {file} matches a task of project {project_id}"
                           + (f" in the {split} split" if split not in (None, "all") else "")
                           + (f" (e.g. {missing[0]!r}); use the image's gs:// URL or file name" if missing else ""))
    else:
        version = model_version or model.version
        wanted = [t for t in tasks if include_labeled or not t.is_labeled]
        next_step(progress, f"predict {len(wanted):,} task(s)", unit=None)
        preds = predict_tasks(model, wanted, target, version, strategy, loader or ImageLoader.for_client(client))
        missing = []
    have = {t.id for t in tasks if latest_prediction(t, version) is not None}
    skipped = len([p for p in preds if p["task"] in have]) + (len(wanted) - len(preds) if file is None else 0)
    preds = [p for p in preds if p["task"] not in have]
    next_step(progress, "upload predictions", len(preds), unit="predictions")
    started = time.perf_counter()
    created = import_predictions(client, project_id, preds, progress=progress)
    seconds = round(time.perf_counter() - started, 3)
    sampling = use_for_sampling(client, project_id, version) if queue and (created or have) else None
    return {"project": project_id, "model_version": version, "created": created, "skipped": skipped,
            "outside_split": outside, "unmatched": len(missing), "seconds": seconds, "sampling": sampling}


def predict_tasks(model: "ModelVersion", tasks: Sequence[Task], target: Target, version: str, strategy: str,
                  loader: "ImageLoader") -> list[dict]:
    """Predictions of `model` for tasks that have none of `version` yet."""
    todo = [t for t in tasks if latest_prediction(t, version) is None]
    if not todo:
        return []
    probs = model.predict_proba(loader.features(todo, target.data_key, model.model))
    return [prediction_json(t.id, dict(zip(model.classes, row)), target, version, strategy)
            for t, row in zip(todo, probs)]
