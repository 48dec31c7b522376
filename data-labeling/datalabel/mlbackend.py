"""A Label Studio ML backend for the baseline model: predictions as people label, retraining on new annotations.

It speaks the protocol Label Studio 1.23 uses (what label-studio-ml-backend's server answers):
  GET  /health            {"status": "UP", ...}
  POST /setup             {"project": "ID.ts", "schema": xml, "hostname", "access_token"} -> {"model_version"}
  POST /predict           {"tasks": [...], "project": "ID.ts", "label_config"} -> {"results": [...], "model_version"}
  POST /webhook           {"action": "ANNOTATION_CREATED" | ... | "START_TRAINING", "project": {...}} -> 201
  POST /train             the legacy training call, same effect as START_TRAINING
  GET  /versions          {"versions": [...]}
Label Studio registers `<url>/webhook` as a project webhook for all events when the backend is connected, and
sends START_TRAINING there when the project's "Start model training on annotation submission" is on. Training
follows that setting (`connect` turns it on): annotation events retrain only when the project says so, so the
settings page tells the truth. Label Studio calls the webhook synchronously with a 1 s timeout, so it only queues
a retrain; a worker thread trains, one run at a time, folding events that arrive meanwhile into the next run, and
skips the run when the labeled set is the one the newest version was trained on (both events of one annotation,
an edit that changed nothing). A new version then predicts the unlabeled train tasks in bulk and becomes the
project's model version, so "Label All Tasks" serves by its scores. Models are the versions `datalabel al train`
writes; the newest `keep` files are kept.

stdlib http.server only; bind 127.0.0.1 (Label Studio reaches it on loopback).

Longer than 400 lines on purpose: the protocol, the retraining worker and the project-side connection (`connect`)
are one contract with Label Studio, read together.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from urllib.parse import parse_qs, urlparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import active, ls
from .config import Settings
from .errors import ConfigError, LabError
from .tasks import Task

log = logging.getLogger("datalabel.mlbackend")

ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "ANNOTATION_DELETED"}
DEFAULT_KEEP = 5
MAX_BODY = 64 << 20  # a /predict of thousands of tasks fits; a body that would fill memory does not


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
    if value in (None, ""):
        return None
    try:
        return int(str(value).split(".")[0])
    except ValueError:
        return None


class Backend:
    """The model side: which version serves each project, predictions, and queued retraining."""

    def __init__(self, models_dir: str | Path = "models", settings: Settings | None = None, policy: str = "latest",
                 keep: int | None = DEFAULT_KEEP, strategy: str = "least-confidence", split: str = "train"):
        if keep is not None and keep < 1:
            raise LabError(f"keep at least 1 model version (got {keep})")
        if strategy not in active.SCORE_STRATEGIES:
            raise ConfigError(f"cannot score predictions by {strategy!r}; choose one of: "
                           f"{', '.join(active.SCORE_STRATEGIES)}")
        self.models_dir = Path(models_dir)
        self.settings = settings  # Label Studio URL + token to read labels; else what /setup hands over
        self.policy = policy
        self.keep = keep
        self.strategy = strategy  # what a prediction's score is the certainty of
        self.split = split  # tasks a new version predicts for the labeling queue
        self.settle = 2.0  # seconds before an unchanged labeled set is read again
        self._lock = threading.Lock()
        self._models: dict[int, active.PixelModel] = {}
        self._access: dict[int, tuple[str, str]] = {}
        self._pending: set[int] = set()
        self._wake = threading.Condition(self._lock)
        self._training = False
        self._stopped = False
        self.last_error: str | None = None
        self.trainings = 0
        self.unchanged = 0  # runs skipped because the labeled set had not changed
        self._loaders: dict[tuple[str, str], active.ImageLoader] = {}
        self._worker = threading.Thread(target=self._train_loop, name="retrain", daemon=True)
        self._worker.start()

    # --- models -------------------------------------------------------------------------------------------------

    def model(self, project: int) -> active.PixelModel | None:
        """The newest saved version for the project (picks up versions trained elsewhere, e.g. `al train`)."""
        versions = active.list_versions(self.models_dir, project)
        with self._lock:
            current = self._models.get(project)
        if not versions:
            return current
        newest = f"{active.MODEL_PREFIX}{versions[-1][0]}"
        if current is None or current.version != newest:
            current = active.load_model(versions[-1][1])
            with self._lock:
                self._models[project] = current
        return current

    def model_version(self, project: int | None) -> str:
        model = self.model(project) if project is not None else None
        return model.version if model else "untrained"

    def _client(self, project: int):
        if self.settings and self.settings.api_key:
            settings = self.settings
        elif project in self._access:
            url, token = self._access[project]
            settings = Settings(url=url.rstrip("/"), api_key=token)
        else:
            raise LabError(f"no Label Studio URL/token for project {project}: start the backend with "
                           "--url/--api-key or let Label Studio call /setup first")
        return ls.connect(settings, check=False)

    def _loader(self, client) -> active.ImageLoader:
        key = (client.settings.url, client.settings.api_key or "")
        if key not in self._loaders:
            self._loaders[key] = active.ImageLoader.for_client(client)
        return self._loaders[key]

    # --- protocol -------------------------------------------------------------------------------------------------

    def health(self) -> dict:
        return {"status": "UP", "model_class": "PixelModel (logistic regression on 8x8 grayscale pixels)",
                "trainings": self.trainings, "unchanged": self.unchanged, "training": self._training,
                "last_error": self.last_error}

    def setup(self, payload: dict) -> dict:
        project = project_id_of(payload.get("project"))
        if project is None:
            raise LabError("setup: no project in the request")
        hostname, token = payload.get("hostname"), payload.get("access_token")
        if hostname and token:
            # Label Studio names itself "localhost"; the loopback address avoids an IPv6 detour
            self._access[project] = (hostname.replace("://localhost", "://127.0.0.1"), token)
        if self.model(project) is None:
            self.request_training(project)
        return {"model_version": self.model_version(project)}

    def predict(self, payload: dict) -> dict:
        project = project_id_of(payload.get("project"))
        tasks = payload.get("tasks") or []
        model = self.model(project) if project is not None else None
        if model is None:
            # no results: Label Studio stores nothing and asks again once a version exists
            return {"results": [], "model_version": "untrained"}
        target = active.target_of(payload.get("label_config") or "")
        try:
            loader = self._loader(self._client(project))
        except LabError:
            # no Label Studio access yet: gs:// images can still come straight from the bucket
            loader = active.ImageLoader(None, None)
        parsed = [Task.from_json(t) for t in tasks]
        features = loader.features(parsed, target.data_key, model.size)
        probs = model.predict_proba(features)
        results = []
        for task, row in zip(parsed, probs):
            pred = active.prediction_json(task.id, dict(zip(model.classes, row)), target, model.version,
                                          self.strategy)
            results.append({"result": pred["result"], "score": pred["score"], "model_version": model.version})
        return {"results": results, "model_version": model.version}

    def webhook(self, payload: dict) -> dict:
        action = payload.get("action", "")
        project = project_id_of(payload.get("project"))
        wanted = action == "START_TRAINING" or (action in ANNOTATION_ACTIONS and trains_on_annotations(payload))
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
            self._wake.notify()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Until no retrain is queued or running (tests, and a clean shutdown)."""

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending and not self._training:
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

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
                client = self._client(project)
                loader = self._loader(client)
                model = None
                for wait in (0.0, self.settle):
                    # Label Studio calls before the annotation's transaction commits: an unchanged set is read
                    # again once after a pause before the run counts as unchanged
                    time.sleep(wait)
                    model = active.train_project(client, project, self.models_dir, self.policy, loader=loader,
                                                 only_if_changed=True, keep=self.keep)
                    if model is not None:
                        break
                if model is None:
                    with self._lock:
                        self.unchanged += 1
                    log.info("project %s: labels unchanged, not retrained", project)
                    continue
                with self._lock:
                    self._models[project] = model
                    self.trainings += 1
                log.info("project %s: trained %s on %d labels (valid accuracy %s)", project, model.version,
                         model.n_train, model.valid_accuracy)
                path = active.model_path(self.models_dir, project, model.version)
                published = active.preannotate(client, project, model_path=path, strategy=self.strategy,
                                               split=self.split, loader=loader)
                self.last_error = None
                log.info("project %s: %d prediction(s) of %s uploaded; the queue follows them", project,
                         published["created"], model.version)
            except LabError as exc:
                # too few labels, server gone: keep serving the current version
                self.last_error = str(exc)
                log.warning("project %s: not retrained: %s", project, exc)
            except Exception as exc:  # a bug must not kill the worker; /health names it, the log has the details
                self.last_error = f"retraining failed ({type(exc).__name__}); see the ML backend's log"
                log.exception("project %s: retraining failed", project)
            finally:
                with self._lock:
                    self._training = False


class Handler(BaseHTTPRequestHandler):
    backend: Backend  # set on the subclass made by make_server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY:
            raise ValueError(f"a body of {length} bytes (at most {MAX_BODY})")
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        return value

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path in ("", "/health"):
            return self._send(200, self.backend.health())
        if path == "/versions":
            project = project_id_of(parse_qs(urlparse(self.path).query).get("project", [None])[0])
            return self._send(200, self.backend.versions(project))
        if path == "/metrics":
            return self._send(200, {})
        return self._send(404, {"error": f"no such endpoint: {path}"})

    def do_POST(self):
        path = self.path.split("?")[0].rstrip("/")
        try:
            payload = self._body()
        except ValueError as exc:
            return self._send(400, {"error": f"bad JSON: {exc}"})
        try:
            if path == "/setup":
                return self._send(200, self.backend.setup(payload))
            if path == "/predict":
                return self._send(200, self.backend.predict(payload))
            if path == "/webhook":
                return self._send(201, self.backend.webhook(payload))
            if path == "/train":
                project = project_id_of(payload.get("project"))
                if project is not None:
                    self.backend.request_training(project)
                return self._send(201, {"queued": project is not None})
            if path == "/validate":
                return self._send(200, {"status": "ok"})
        except LabError as exc:
            return self._send(400, {"error": str(exc)})
        except Exception:  # answer, don't drop the connection; the details stay in this process's log
            incident = uuid.uuid4().hex[:8]
            log.exception("%s failed (incident %s)", path, incident)
            return self._send(500, {"error": f"internal error (incident {incident}); see the ML backend's log"})
        return self._send(404, {"error": f"no such endpoint: {path}"})


def make_server(backend: Backend, host: str = "127.0.0.1", port: int = 9090) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"backend": backend})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise LabError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    server.daemon_threads = True
    return server


def start_in_thread(backend: Backend, host: str = "127.0.0.1", port: int = 0):
    """Serve in a background thread; returns (server, url). Stop with server.shutdown()."""
    server = make_server(backend, host, port)
    thread = threading.Thread(target=server.serve_forever, name="ml-backend", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}"


def connect(client, project_id: int, url: str, title: str = "datalabel-logreg", split: str = "train") -> dict:
    """Attach the backend at `url` to a project (reused if already attached) and line the project up with it:
    training on annotation submission on (the webhook's retrains follow that setting), predictions of the
    backend's current version for the unlabeled tasks of `split` (asked of the backend through Label Studio, in
    one batch), and that version as the project's model version with uncertainty sampling, so "Label All Tasks"
    and the Data Manager's score column follow it."""
    url = url.rstrip("/")
    active.check_split(split)
    ls.get_project(client, project_id)
    with ls.api_errors(f"ML backends of project {project_id}", client.settings.url):
        existing = [m for m in client.ml.list(project=project_id) if (m.url or "").rstrip("/") == url]
    try:
        with ls.api_errors(f"connect ML backend {url}", client.settings.url):
            if existing:
                backend = client.ml.update(id=existing[0].id, url=url, title=title, project=project_id)
                created = False
            else:
                backend = client.ml.create(project=project_id, url=url, title=title, is_interactive=False,
                                           auto_update=True)
                created = True
            # no automatic predictions when the Data Manager lists tasks: they would put valid/test tasks in the
            # uncertainty queue; the pool is predicted in bulk here and after each retrain
            client.projects.update(id=project_id, evaluate_predictions_automatically=False,
                                   show_collab_predictions=True, min_annotations_to_start_training=1)
    except LabError as exc:
        raise type(exc)(f"{exc}; is the backend running at {url} and may Label Studio reach it "
                        "(ML_BLOCK_LOCAL_IP=false for loopback)?") from None
    state = str(getattr(backend, "state", "") or "")
    with ls.api_errors(f"webhooks of project {project_id}", client.settings.url):
        hooks = [h for h in client.webhooks.list(project=str(project_id)) if (h.url or "").rstrip("/") == url + "/webhook"]
    version = str(getattr(backend, "model_version", "") or "")
    sampling, fetched = None, 0
    if version and version != "untrained":
        fetched, sampling = align(client, project_id, version, split)
    return {"id": backend.id, "url": url, "created": created, "state": state, "model_version": version or None,
            "webhook": bool(hooks), "train_on_submit": True, "predicted": fetched, "sampling": sampling}


def align(client, project_id: int, version: str, split: str = "train") -> tuple[int, dict | None]:
    """Predictions of `version` for the unlabeled tasks of `split` that lack one (Label Studio asks the backend),
    then `version` as the project's queue. Returns (tasks asked for, the queue setting)."""
    tasks = [t for t in active.load_tasks(client, project_id) if not t.is_labeled and active.in_split(t, split)]
    missing = [t.id for t in tasks if active.latest_prediction(t, version) is None]
    if missing:
        retrieve_predictions(client, project_id, missing)
    have = [t for t in active.load_tasks_by_id(client, missing[:1])] if missing else tasks
    if not any(active.latest_prediction(t, version) for t in have):
        return len(missing), None  # the backend returned nothing: leave the project's queue as it was
    return len(missing), active.use_for_sampling(client, project_id, version)


def retrieve_predictions(client, project_id: int, task_ids: list[int] | None = None) -> None:
    """Ask Label Studio to fetch predictions from the connected backend (the Data Manager's "Retrieve
    Predictions" action) for some tasks, or all of them."""
    selected = {"all": True, "excluded": []} if task_ids is None else {"all": False, "included": list(task_ids)}
    with ls.api_errors(f"retrieve predictions for project {project_id}", client.settings.url):
        client.actions.create(id="retrieve_tasks_predictions", project=project_id, selected_items=selected)


def serve(host: str = "127.0.0.1", port: int = 9090, models_dir: str | Path = "models",
          settings: Settings | None = None, keep: int | None = DEFAULT_KEEP,
          strategy: str = "least-confidence") -> None:
    """Run until interrupted."""
    backend = Backend(models_dir, settings, keep=keep, strategy=strategy)
    server = make_server(backend, host, port)
    log.info("ML backend on http://%s:%s (models in %s)", host, port, models_dir)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        backend.stop()
