"""The model side of the ML backend: which version serves each project, predictions, and queued retraining.

It knows the Label Studio it was started with (URL + token) and nothing a request says can change that: /setup's
`hostname` and `access_token` are ignored. Training follows the project's "Start model training on annotation
submission" (`connect` turns it on). Label Studio calls the webhook synchronously with a 1 s timeout, so it only
queues a retrain; a worker thread trains, one run at a time, folding events that arrive meanwhile into the next
run, and skips the run when the labeled set is the one the newest version was trained on. A new version then
predicts the unlabeled tasks of the split in bulk, becomes the project's model version (so "Label All Tasks"
serves by its scores), re-ranks the "label next" tab, and releases the task locks left by the last session;
versions past `keep` are retired with their predictions.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_fixed

from .. import active, ls
from ..config import Settings
from ..errors import ConfigError, LabError
from ..tasks import Task
from .fetch import loader_for, task_features

log = logging.getLogger("datalabel.mlbackend")

ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "ANNOTATION_DELETED"}
DEFAULT_KEEP = 5
MODELS_CACHED = 16  # projects whose current version is kept in memory


def trains_on_annotations(payload: dict) -> bool:
    """Whether the project in a webhook payload has "Start model training on annotation submission" on."""
    project = payload.get("project")
    if not isinstance(project, dict):
        return False
    value = project.get("min_annotations_to_start_training", project.get("start_training_on_annotation_update"))
    return bool(value) and not isinstance(value, str)


def project_id_of(value) -> int | None:
    """Label Studio sends the project as "ID.timestamp" (setup/predict) or as an object (webhooks)."""
    if isinstance(value, dict):
        value = value.get("id")
    if value in (None, "") or isinstance(value, (bool, float)):
        return None
    try:
        project = int(str(value).split(".")[0])
    except ValueError:
        return None
    return project if 0 < project < 2**31 else None


class Backend:
    """Predictions and retraining for the projects of one Label Studio."""

    def __init__(self, models_dir: str | Path = "models", settings: Settings | None = None, policy: str = "latest",
                 keep: int | None = DEFAULT_KEEP, strategy: str = "least-confidence", split: str = "train",
                 model_class: type | str | None = None):
        if keep is not None and keep < 1:
            raise LabError(f"keep at least 1 model version (got {keep})")
        if strategy not in active.SCORE_STRATEGIES:
            raise ConfigError(f"cannot score predictions by {strategy!r}; choose one of: "
                              f"{', '.join(active.SCORE_STRATEGIES)}")
        active.check_split(split)
        self.models_dir = Path(models_dir)
        self.settings = settings if settings and settings.api_key else None  # fixed at start
        self.policy = policy
        self.keep = keep
        self.strategy = strategy  # what a prediction's score is the certainty of
        self.split = split  # the tasks that get predictions (the labeling queue); valid/test get none
        self.model_class = active.classifier_class(model_class)
        self.settle = 2.0  # seconds before an unchanged labeled set is read again
        self.loader = loader_for(self.settings)
        self._lock = threading.Lock()
        self._models: OrderedDict[int, active.ModelVersion] = OrderedDict()
        self._pending: set[int] = set()
        self._wake = threading.Condition(self._lock)
        self._training = False
        self._stopped = False
        self.last_error: str | None = None
        self.trainings = 0
        self.unchanged = 0  # runs skipped because the labeled set had not changed
        self._worker = threading.Thread(target=self._train_loop, name="retrain", daemon=True)
        self._worker.start()

    # --- models -------------------------------------------------------------------------------------------------

    def model(self, project: int) -> active.ModelVersion | None:
        """The newest saved version for the project (picks up versions trained elsewhere, e.g. `al train`)."""
        versions = active.list_versions(self.models_dir, project)
        with self._lock:
            current = self._models.get(project)
        if not versions:
            return current
        newest = f"{active.MODEL_PREFIX}{versions[-1][0]}"
        if current is None or current.version != newest:
            current = active.load_model(versions[-1][1], model_class=self.model_class)
        with self._lock:
            self._models[project] = current
            self._models.move_to_end(project)
            while len(self._models) > MODELS_CACHED:
                self._models.popitem(last=False)
        return current

    def model_version(self, project: int | None) -> str:
        model = self.model(project) if project is not None else None
        return model.version if model else "untrained"

    def warm_up(self) -> None:
        """Import the numeric libraries and read the newest versions before the server listens, so the first
        calls (Label Studio's 1 s health check, 3 s setup) answer in milliseconds."""
        import numpy  # noqa: F401
        import sklearn.linear_model  # noqa: F401

        for folder in sorted(self.models_dir.glob("project-*")):
            project = project_id_of(folder.name.removeprefix("project-"))
            if project is not None:
                try:
                    self.model(project)
                except LabError as exc:
                    log.warning("project %s: newest model not loaded: %s", project, exc)

    def _client(self):
        if self.settings is None:
            raise LabError("the backend was started without a Label Studio URL and API token (--url/--api-key or "
                           "LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY): it cannot read labels")
        return ls.connect(self.settings, check=False)

    # --- protocol -------------------------------------------------------------------------------------------------

    def health(self) -> dict:
        return {"status": "UP", "model_class": self.model_class.__name__, "trainings": self.trainings,
                "unchanged": self.unchanged, "training": self._training, "last_error": self.last_error}

    def setup(self, payload: dict) -> dict:
        """Label Studio's hello: the current version. Its `hostname` and `access_token` are not taken: the backend
        reads the Label Studio it was started with, with its own token."""
        project = project_id_of(payload.get("project"))
        if project is None:
            raise LabError("setup: no project in the request")
        if self.model(project) is None:
            self.request_training(project)
        return {"model_version": self.model_version(project)}

    def predict(self, payload: dict) -> dict:
        project = project_id_of(payload.get("project"))
        tasks = payload.get("tasks") or []
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            raise LabError("predict: `tasks` must be a list of task objects")
        model = self.model(project) if project is not None else None
        if model is None:
            # no results: Label Studio stores nothing and asks again once a version exists
            return {"results": [], "model_version": "untrained"}
        target = active.target_of(payload.get("label_config") or "")
        parsed = [Task.from_json(t) for t in tasks]
        # valid and test tasks get no prediction: a pre-filled answer would bias the labels they are checked on
        wanted = [i for i, task in enumerate(parsed) if active.in_split(task, self.split)]
        features, kept, errors = task_features(self.loader, model.model, [parsed[i] for i in wanted],
                                               target.data_key)
        results: list = [[] for _ in parsed]  # an empty list: Label Studio stores nothing for that task
        if features is not None:
            for i, row in zip((wanted[k] for k in kept), model.predict_proba(features)):
                pred = active.prediction_json(parsed[i].id, dict(zip(model.classes, row)), target, model.version,
                                              self.strategy)
                results[i] = {"result": pred["result"], "score": pred["score"], "model_version": model.version}
        body = {"results": results, "model_version": model.version}
        if errors:
            body["errors"] = errors
        return body

    def webhook(self, payload: dict) -> dict:
        action = payload.get("action", "")
        project = project_id_of(payload.get("project"))
        annotation = payload.get("annotation")
        skipped = isinstance(annotation, dict) and annotation.get("was_cancelled") is True  # a skip labels nothing
        wanted = action == "START_TRAINING" or (action in ANNOTATION_ACTIONS and trains_on_annotations(payload)
                                                 and not skipped)
        if wanted and project is not None:
            self.request_training(project)
            return {"action": action, "project": project, "queued": True}
        return {"action": action, "queued": False}

    def versions(self, project: int | None) -> dict:
        if project is None:
            return {"versions": []}
        return {"versions": [f"{active.MODEL_PREFIX}{n}" for n, _ in active.list_versions(self.models_dir, project)]}

    # --- retraining -------------------------------------------------------------------------------------------

    def request_training(self, project: int) -> None:
        with self._wake:
            self._pending.add(project)
            self._wake.notify_all()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Until no retrain is queued or running (tests, and a clean shutdown)."""
        with self._wake:  # woken when a retrain ends
            return self._wake.wait_for(lambda: not self._pending and not self._training, timeout)

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()

    def _train_loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                project = self._pending.pop()
                self._training = True
            try:
                self._retrain(project)
            except LabError as exc:
                # too few labels, server gone: keep serving the current version
                self.last_error = str(exc)
                log.warning("project %s: not retrained: %s", project, exc)
            except Exception as exc:  # a bug must not kill the worker; /health names it, the log has the details
                self.last_error = f"retraining failed ({type(exc).__name__}); see the ML backend's log"
                log.exception("project %s: retraining failed", project)
            finally:
                with self._wake:
                    self._training = False
                    self._wake.notify_all()

    def _retrain(self, project: int) -> None:
        client = self._client()
        # Label Studio calls before the annotation's transaction commits: an unchanged set (no model made) is read
        # again once after a pause before the run counts as unchanged
        model = Retrying(retry=retry_if_result(lambda made: made is None), stop=stop_after_attempt(2),
                         wait=wait_fixed(self.settle), retry_error_callback=lambda state: None)(
            active.train_project, client, project, self.models_dir, self.policy, loader=self.loader,
            only_if_changed=True, keep=self.keep, model_class=self.model_class)
        if model is None:
            with self._lock:
                self.unchanged += 1
            log.info("project %s: labels unchanged, not retrained", project)
            return
        with self._lock:
            self._models[project] = model
            self.trainings += 1
        log.info("project %s: trained %s on %d labels (valid accuracy %s)", project, model.version, model.n_train,
                 model.valid_accuracy)
        path = active.model_path(self.models_dir, project, model.version)
        published = active.preannotate(client, project, model_path=path, strategy=self.strategy, split=self.split,
                                       loader=self.loader, model_class=self.model_class)
        # the "label next" tab is ranked by the new version, and a lock left from the last session does not
        # put an old task before the new rank 1
        active.refresh_view(client, project, self.strategy, split=self.split)
        active.release_locks(client, project)
        self.last_error = None
        log.info("project %s: %d prediction(s) of %s uploaded; the queue follows them", project,
                 published["created"], model.version)
