"""The ML backend: its HTTP protocol, and Label Studio calling it for predictions and retraining on loopback."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from datalabel import active, embedded, mlbackend, samples


def _call(url, path, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def backend(tmp_path):
    b = mlbackend.Backend(tmp_path / "models")
    server, url = mlbackend.start_in_thread(b)
    yield b, url
    server.shutdown()
    server.server_close()
    b.stop()


def test_protocol_without_a_model(backend):
    b, url = backend
    assert url.startswith("http://127.0.0.1:")
    status, body = _call(url, "/health")
    assert status == 200 and body["status"] == "UP"
    # no model and no way to reach Label Studio: setup says so, predict returns nothing to store
    status, body = _call(url, "/setup", {"project": "7.1700000000", "schema": "<View/>"})
    assert status == 200 and body == {"model_version": "untrained"}
    status, body = _call(url, "/predict", {"project": "7.1700000000", "tasks": [{"id": 1, "data": {}}]})
    assert status == 200 and body["results"] == []
    assert b.wait_idle(10)
    assert "no Label Studio URL/token for project 7" in _call(url, "/health")[1]["last_error"]
    assert _call(url, "/webhook", {"action": "PROJECT_UPDATED", "project": {"id": 7}}) == (
        201, {"action": "PROJECT_UPDATED", "queued": False})
    # annotation events retrain only when the project's "train on annotation submission" is on
    assert _call(url, "/webhook", {"action": "ANNOTATION_CREATED", "project": {
        "id": 7, "min_annotations_to_start_training": 0}})[1]["queued"] is False
    assert _call(url, "/webhook", {"action": "ANNOTATION_CREATED", "project": {
        "id": 7, "min_annotations_to_start_training": 1}})[1]["queued"] is True
    assert _call(url, "/webhook", {"action": "START_TRAINING", "project": {"id": 7}})[1]["queued"] is True
    assert _call(url, "/predict", b"{not json")[0] == 400
    assert _call(url, "/nowhere", {})[0] == 404
    assert _call(url, "/versions?project=7") == (200, {"versions": []})


def test_label_studio_gets_predictions_and_a_new_annotation_retrains(ls_client, bucket, tmp_path, backend):
    b, url = backend
    samples_dir = tmp_path / "samples"
    pid = embedded.seed_demo(ls_client, bucket.name, samples_dir, limit=30, title=f"mlb {bucket.name}")
    truth = samples.read_truth(samples_dir)
    tasks = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)

    def annotate(task):
        label = truth[active.media_url(task).rsplit("/", 1)[-1]]
        ls_client.annotations.create(id=task.id, result=[{
            "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}])

    for task in tasks[:16]:
        annotate(task)
    # the split hashes the image URL, which holds the random bucket name: one unlabeled task is held out for sure
    held = tasks[20]
    ls_client.tasks.update(id=str(held.id), data={**held.data, active.SPLIT_FIELD: "test"})
    first = active.train_project(ls_client, pid, b.models_dir)
    assert first.version == "logreg-v1"

    info = mlbackend.connect(ls_client, pid, url)
    assert info["created"] and info["state"] == "CO" and info["model_version"] == "logreg-v1"
    assert info["webhook"], "Label Studio registers <backend>/webhook on connect"
    # the project lines up with the backend: its version, uncertainty sampling, training on submission (the
    # setting the webhook's retrains follow), and the backend's predictions for the unlabeled train tasks
    project = ls_client.projects.get(id=pid)
    assert project.model_version == "logreg-v1" and project.sampling == "Uncertainty sampling"
    assert project.start_training_on_annotation_update is True
    train_pool = [t for t in active.load_tasks(ls_client, pid) if not t.is_labeled and active.task_split(t) == "train"]
    assert train_pool
    held_out = [t for t in active.load_tasks(ls_client, pid) if not t.is_labeled and active.task_split(t) != "train"]
    assert held_out and all(not t.predictions for t in held_out), "valid/test stay out of the queue"
    assert all([p.model_version for p in t.predictions] == ["logreg-v1"] for t in train_pool)
    assert mlbackend.connect(ls_client, pid, url)["created"] is False  # idempotent
    assert len(ls_client.ml.list(project=pid)) == 1

    # Label Studio asks the backend (which reads the image from the bucket) and stores the prediction
    probe = tasks[-1]
    mlbackend.retrieve_predictions(ls_client, pid, [probe.id])
    (pred,) = active.load_tasks_by_id(ls_client, [probe.id])[0].predictions
    assert pred.model_version == "logreg-v1" and 0 < pred.score <= 1
    assert pred.result[0].labels[0] in first.classes

    # a new annotation on a train task (a test-split label changes nothing the model is trained or checked on, so it
    # retrains nothing; the split hashes the image URL, which holds the random bucket name): the webhook queues a
    # retrain, which saves the next version
    b.keep = 1
    trainings = b.trainings
    annotate(next(t for t in tasks[16:-1] if t.id != held.id and active.task_split(t) == "train"))
    deadline = time.monotonic() + 60
    while b.trainings == trainings and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b.wait_idle(60)
    assert b.trainings == trainings + 1, b.health()
    assert b.model_version(pid) == "logreg-v2"
    assert _call(url, f"/versions?project={pid}")[1] == {"versions": ["logreg-v2"]}  # keep=1: v1 deleted
    # the new version predicted the train pool in bulk and the project's queue follows it
    assert ls_client.projects.get(id=pid).model_version == "logreg-v2"
    pool = [t for t in active.load_tasks(ls_client, pid) if not t.is_labeled and active.task_split(t) == "train"]
    assert all("logreg-v2" in [p.model_version for p in t.predictions] for t in pool)

    # the same labels again (a repeated event, an edit that changed nothing): no retrain
    unchanged = b.unchanged
    assert _call(url, "/webhook", {"action": "START_TRAINING", "project": {"id": pid}})[1]["queued"]
    deadline = time.monotonic() + 30
    while b.unchanged == unchanged and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b.wait_idle(30)
    assert b.trainings == trainings + 1 and b.unchanged > unchanged

    # and Label Studio now gets predictions from the new version
    mlbackend.retrieve_predictions(ls_client, pid, [probe.id])
    versions = sorted(p.model_version for p in active.load_tasks_by_id(ls_client, [probe.id])[0].predictions)
    assert versions == ["logreg-v1", "logreg-v2"]


def test_a_failure_answers_500_without_its_details(tmp_path, caplog):
    """The backend's error text (paths, values, library internals) stays in its log; the caller gets an incident id."""

    class Broken(mlbackend.Backend):
        def predict(self, payload):
            raise RuntimeError("details of /home/someone/secret-path")

    server, url = mlbackend.start_in_thread(Broken(tmp_path / "models"))
    try:
        with caplog.at_level("ERROR", logger="datalabel.mlbackend"):
            status, body = _call(url, "/predict", {"tasks": [{"id": 1, "data": {}}], "project": "1.0"})
        assert status == 500 and "incident" in body["error"] and "secret-path" not in json.dumps(body)
        incident = body["error"].split("incident ")[1].split(")")[0]
        assert incident in caplog.text and "secret-path" in caplog.text  # the operator still has the details
        assert _call(url, "/predict", b"[1, 2]")[0] == 400  # not an object: a plain 400
    finally:
        server.shutdown()
