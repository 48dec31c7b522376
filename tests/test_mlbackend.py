"""The ML backend: authentication, what it may fetch, the server's limits, and Label Studio calling it for
predictions and retraining with its credentials (the real server on loopback)."""
from __future__ import annotations

import http.server
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from waiting import wait_until

from datalabel import active, embedded, mlbackend, samples
from datalabel.config import Settings

PAIR = mlbackend.Credentials("ml-test", "s3cret-" + os.urandom(6).hex())


def _call(url, path, body=None, auth: mlbackend.Credentials | str | None = PAIR, timeout=30):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth if isinstance(auth, str) else auth.header()
    req = urllib.request.Request(url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def backend(tmp_path):
    b = mlbackend.Backend(tmp_path / "models")
    server, url = mlbackend.start_in_thread(b, PAIR)
    yield b, url
    server.shutdown()
    b.stop()


class Canary:
    """Another local HTTP service (an image on it, too): a fetch that reaches it is a hit."""

    def __init__(self, body: bytes):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- 1. authentication ------------------------------------------------------------------------------------------


def test_every_endpoint_but_health_answers_401_without_the_pair(backend, monkeypatch):
    b, url = backend
    assert url.startswith("http://127.0.0.1:")  # loopback unless told
    assert _call(url, "/health", auth=None)[0] == 200
    wrong = [None, mlbackend.Credentials(PAIR.user, "nope"), mlbackend.Credentials("x", PAIR.password),
             "Basic !!notbase64", "Bearer " + PAIR.password, "Basic " + "dXNlcg=="]  # "user", no colon
    calls = [("/predict", {"project": "1.0", "tasks": []}), ("/setup", {"project": "1.0"}),
             ("/webhook", {"action": "START_TRAINING", "project": {"id": 1}}), ("/train", {"project": "1.0"}),
             ("/versions?project=1", None), ("/validate", {}), ("/metrics", None), ("/", None)]
    for path, body in calls:
        for auth in wrong:
            status, answer = _call(url, path, body, auth=auth)
            assert status == 401 and "authentication required" in answer["error"], (path, auth)
    assert b.wait_idle(5) and b._pending == set() and b.trainings == b.unchanged == 0  # nothing was queued
    # with the pair: answered; the comparison is hmac.compare_digest's (constant time), user and password both
    seen = []
    real = mlbackend.auth.hmac.compare_digest
    monkeypatch.setattr(mlbackend.auth.hmac, "compare_digest", lambda a, b: seen.append(1) or real(a, b))
    assert _call(url, "/versions?project=1") == (200, {"versions": []})
    assert len(seen) == 2


def _outside_address() -> str | None:
    """An address of this machine other than loopback (how a Compose network reaches a container), if it has one."""
    for target in ("203.0.113.1", "10.254.254.254"):  # a UDP "connect" sends nothing: it picks the source address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((target, 9))
            except OSError:
                continue
            address = probe.getsockname()[0]
        if not address.startswith("127."):
            return address
    return None


def test_loopback_unless_told_and_authenticated_wherever_it_listens(tmp_path):
    """The default bind is 127.0.0.1 (not reachable on the machine's other addresses); bound to 0.0.0.0, as in the
    Compose stack, the backend answers on the network address and still wants the pair on every route but /health."""
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no address but loopback to reach a server from")
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    b = mlbackend.Backend(tmp_path / "models")
    server, url = mlbackend.start_in_thread(b, PAIR)
    try:
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            socket.create_connection((outside, port), timeout=5).close()
    finally:
        server.shutdown()
    server, url = mlbackend.start_in_thread(b, PAIR, host="0.0.0.0")
    try:
        there = f"http://{outside}:{url.rsplit(':', 1)[1]}"
        assert direct.open(there + "/health", timeout=10).status == 200
        for path, body in (("/predict", {"project": "1.0", "tasks": []}), ("/setup", {"project": "1.0"}),
                           ("/webhook", {"action": "START_TRAINING", "project": {"id": 1}}),
                           ("/train", {"project": "1.0"}), ("/versions?project=1", None)):
            data = None if body is None else json.dumps(body).encode()
            with pytest.raises(urllib.error.HTTPError) as refused:
                direct.open(urllib.request.Request(there + path, data=data), timeout=10)
            assert refused.value.code == 401, path
        request = urllib.request.Request(there + "/versions?project=1", headers={"Authorization": PAIR.header()})
        assert json.loads(direct.open(request, timeout=10).read()) == {"versions": []}
        assert b.wait_idle(5) and b.trainings == b.unchanged == 0 and b._pending == set()
    finally:
        server.shutdown()
        b.stop()


def test_protocol_without_a_model(backend):
    b, url = backend
    # no model and no Label Studio to read: setup says so, predict returns nothing to store
    status, body = _call(url, "/setup", {"project": "7.1700000000", "schema": "<View/>"})
    assert status == 200 and body == {"model_version": "untrained"}
    status, body = _call(url, "/predict", {"project": "7.1700000000", "tasks": [{"id": 1, "data": {}}]})
    assert status == 200 and body["results"] == []
    assert b.wait_idle(10)
    assert "started without a Label Studio URL and API token" in _call(url, "/health")[1]["last_error"]
    assert _call(url, "/webhook", {"action": "PROJECT_UPDATED", "project": {"id": 7}}) == (
        201, {"action": "PROJECT_UPDATED", "queued": False})
    # annotation events retrain only when the project's "train on annotation submission" is on; a skip never
    assert _call(url, "/webhook", {"action": "ANNOTATION_CREATED", "project": {
        "id": 7, "min_annotations_to_start_training": 0}})[1]["queued"] is False
    assert _call(url, "/webhook", {"action": "ANNOTATION_CREATED", "project": {
        "id": 7, "min_annotations_to_start_training": 1}})[1]["queued"] is True
    assert _call(url, "/webhook", {"action": "ANNOTATION_CREATED", "annotation": {"was_cancelled": True},
                                   "project": {"id": 7, "min_annotations_to_start_training": 1}})[1]["queued"] is False
    assert _call(url, "/webhook", {"action": "START_TRAINING", "project": {"id": 7}})[1]["queued"] is True
    assert _call(url, "/predict", b"{not json")[0] == 400
    assert _call(url, "/predict", b"[1, 2]")[0] == 400
    assert _call(url, "/nowhere", {})[0] == 404
    assert _call(url, "/versions?project=7") == (200, {"versions": []})


def test_a_failure_answers_500_without_its_details(tmp_path, caplog):
    """The backend's error text (paths, values, library internals) stays in its log; the caller gets an incident id."""

    class Broken(mlbackend.Backend):
        def predict(self, payload):
            raise RuntimeError("details of /home/someone/secret-path")

    b = Broken(tmp_path / "models")
    server, url = mlbackend.start_in_thread(b, PAIR)
    try:
        with caplog.at_level("ERROR", logger="datalabel.mlbackend"):
            status, body = _call(url, "/predict", {"tasks": [{"id": 1, "data": {}}], "project": "1.0"})
        assert status == 500 and "incident" in body["error"] and "secret-path" not in json.dumps(body)
        incident = body["error"].split("incident ")[1].split(")")[0]
        assert incident in caplog.text and "secret-path" in caplog.text  # the operator still has the details
        assert PAIR.password not in caplog.text
    finally:
        server.shutdown()
        b.stop()


# --- 2 and 3. limits of the server ------------------------------------------------------------------------------


def test_bodies_are_capped_and_stalled_clients_time_out(tmp_path, monkeypatch):
    monkeypatch.setattr(mlbackend.app, "BODY_SECONDS", 1.0)
    monkeypatch.setattr(mlbackend.server, "HEAD_SECONDS", 1.0)
    b = mlbackend.Backend(tmp_path / "models")
    server, url = mlbackend.start_in_thread(b, PAIR)
    port = int(url.rsplit(":", 1)[1])
    try:
        # a declared body past the cap: refused before it is read; a chunked one once the read passes the cap
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: " + PAIR.header().encode()
                     + b"\r\nContent-Length: %d\r\n\r\n{" % (mlbackend.BODY_LIMIT + 1))
        sock.settimeout(10)
        assert sock.recv(200).startswith(b"HTTP/1.1 413")
        sock.close()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: " + PAIR.header().encode()
                     + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"y" * (1 << 20)
        try:
            for _ in range(mlbackend.BODY_LIMIT // len(chunk) + 2):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except OSError:
            pass  # the server answered and closed: that is the point
        assert sock.recv(200).startswith(b"HTTP/1.1 413")
        sock.close()
        # without the pair, not even a small body is read
        assert _call(url, "/predict", b"{}" * 10, auth=None)[0] == 401

        # a body that trickles: 408 after BODY_SECONDS
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: " + PAIR.header().encode()
                     + b"\r\nContent-Length: 100\r\n\r\n{\"tasks\"")
        sock.settimeout(10)
        assert sock.recv(200).startswith(b"HTTP/1.1 408")
        sock.close()

        # 200 clients that connect and send nothing, or half a request head: no thread each, closed in time
        threads = threading.active_count()
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
        for i, s in enumerate(stalled):
            if i % 2:
                s.sendall(b"GET /health HTTP/1.1\r\nHost:")
        assert threading.active_count() <= threads + 2
        started = time.monotonic()
        for s in stalled:
            s.settimeout(10)
            assert s.recv(100) == b""  # closed by the server
            s.close()
        assert time.monotonic() - started < 8
        assert _call(url, "/health", auth=None)[0] == 200  # and it still serves
    finally:
        server.shutdown()
        b.stop()


def _save_model(models_dir, project_id, labels=samples.DIGIT_LABELS):
    rng = np.random.default_rng(0)
    x = rng.random((10 * len(labels), active.PIXELS ** 2))
    y = [labels[i % len(labels)] for i in range(len(x))]
    model = active.LogisticPixels()
    model.fit(x, y)
    saved = active.ModelVersion("", model, len(x))
    active.save_model(saved, models_dir, project_id)
    return saved


def test_images_come_only_from_label_studio_or_the_bucket(label_studio, ls_client, bucket, tmp_path):
    """With the pair: file://, other hosts and ports, Label Studio's API and oversized images are refused (the
    task gets no prediction, the others in the batch do); /setup cannot point the backend elsewhere."""
    from PIL import Image

    pid = embedded.seed_demo(ls_client, bucket.name, tmp_path / "samples", limit=3, title=f"fetch {bucket.name}")
    config = ls_client.projects.get(id=pid).label_config
    task = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)[0]
    # an image past the cap: a valid PNG padded beyond MAX_IMAGE_BYTES, in the project's bucket
    png = tmp_path / "big.png"
    Image.new("L", (64, 64)).save(png)
    bucket.blob("images_unlabeled/big.png").upload_from_string(
        png.read_bytes() + b"\0" * (active.MAX_IMAGE_BYTES + 1), content_type="image/png")
    big_url = f"gs://{bucket.name}/images_unlabeled/big.png"
    ls_client.projects.import_tasks(id=pid, request=[{"image": big_url}])
    big_id = next(t.id for t in active.load_tasks(ls_client, pid) if active.media_url(t) == big_url)
    canary = Canary(png.read_bytes())
    models = tmp_path / "models"
    _save_model(models, pid)
    results = {}
    try:
        for name, buckets in (("direct", label_studio.settings(bucket.name)), ("proxied", label_studio.settings())):
            b = mlbackend.Backend(models, buckets)
            server, url = mlbackend.start_in_thread(b, PAIR)
            try:
                # /setup names another Label Studio and token: not taken
                assert _call(url, "/setup", {"project": f"{pid}.0", "hostname": canary.url,
                                             "access_token": "attacker"})[0] == 200
                refs = {"good": task.data["image"], "passwd": "file:///etc/passwd",
                        "missing": "file:///no/such/file.png", "other_host": "http://example.invalid/x.png",
                        "other_port": canary.url + "/data/x.png", "relative": "/data/upload/1/x.png",
                        "api": label_studio.url + "/api/projects/",
                        "userinfo": label_studio.url.replace("://", "://evil@") + "/data/x.png"}
                if name == "direct":
                    # (through Label Studio's proxy the cap is the HTTP one, tested below: an abandoned proxied
                    # read would stall the single-threaded emulator behind Label Studio for the whole session)
                    refs["big"] = big_url
                ids = {key: {"good": task.id, "big": big_id}.get(key, 10_000 + i) for i, key in enumerate(refs)}
                # all in the train split (a valid/test task gets no prediction, hence no fetch, anyway)
                tasks = [{"id": ids[key], "data": {"image": ref, "split": "train"}} for key, ref in refs.items()]
                status, body = _call(url, "/predict", {"project": f"{pid}.0", "label_config": config, "tasks": tasks})
                assert status == 200 and len(body["results"]) == len(tasks)
                errors = {e["task"]: e["error"] for e in body["errors"]}
                results[name] = dict(zip(refs, body["results"])), {k: errors.get(ids[k]) for k in refs}
            finally:
                server.shutdown()
                b.stop()
    finally:
        canary.close()
    assert canary.hits == []  # neither a fetch nor /setup made the backend call another service
    for name, (by_ref, errors) in results.items():
        assert by_ref["good"]["model_version"] == "logreg-v1", name
        assert all(by_ref[k] == [] for k in by_ref if k != "good"), name
        text = errors
        assert text["good"] is None and all(text[k] for k in text if k != "good"), (name, text)
        assert "only Label Studio's origin" in text["passwd"] and "only Label Studio's origin" in text["other_host"]
        assert "only Label Studio's origin" in text["other_port"]
        # a local file that exists and one that does not: the same answer (no oracle)
        assert text["passwd"].replace("/etc/passwd", "X") == text["missing"].replace("/no/such/file.png", "X")
        assert "not a media path" in text["api"]
    assert f"larger than {active.MAX_IMAGE_BYTES:,} bytes" in results["direct"][1]["big"]


def test_caches_are_bounded(label_studio, ls_client, bucket, tmp_path, monkeypatch):
    """The feature cache keeps at most `cache_items` images (least recently used out) and the backend at most
    MODELS_CACHED projects' models: a long-running backend does not grow with every image and project it sees."""
    pid = embedded.seed_demo(ls_client, bucket.name, tmp_path / "samples", limit=6, title=f"cache {bucket.name}")
    tasks = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)
    loader = mlbackend.fetch.loader_for(label_studio.settings(bucket.name))
    loader.cache_items = 3
    rows = [loader.feature(task, None) for task in tasks]
    assert len(rows) == 6 and len(loader._cache) == 3
    assert [url for url, _ in loader._cache] == [active.media_url(t) for t in tasks[-3:]]
    assert np.array_equal(loader.feature(tasks[0], None), rows[0])  # read again once evicted: the same row
    assert len(loader._cache) == 3

    monkeypatch.setattr(mlbackend.backend, "MODELS_CACHED", 2)
    models = tmp_path / "models"
    for project in (1, 2, 3):
        _save_model(models, project)
    b = mlbackend.Backend(models)
    try:
        assert [b.model_version(p) for p in (1, 2, 3)] == ["logreg-v1"] * 3
        assert list(b._models) == [2, 3]
        assert b.model_version(1) == "logreg-v1" and list(b._models) == [3, 1]  # read from its file again
    finally:
        b.stop()


def test_reads_from_label_studio_are_capped_in_size_and_time_and_stay_on_its_origin(monkeypatch):
    """The HTTP side of the loader, with a stand-in for Label Studio: a body past the cap (declared or not), a
    body that trickles past the time cap, a redirect off the origin: refused; the token goes to that origin only."""
    import http.server

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            if self.path.startswith("/data/declared"):
                self.send_response(200)
                self.send_header("Content-Length", str(10 << 20))
                self.end_headers()
                return
            if self.path.startswith("/data/undeclared"):
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(40):
                    self.wfile.write(b"\0" * (1 << 16))
                return
            if self.path.startswith("/data/slow"):
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(30):
                    self.wfile.write(b"\0" * 10)
                    self.wfile.flush()
                    time.sleep(0.2)
                return
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:9/steal")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    loader = active.ImageLoader(origin, "tok", use_gcs=False, buckets=set(), max_bytes=1 << 20, seconds=2)
    try:
        for path, why in (("/data/declared", "larger than"), ("/data/undeclared", "larger than"),
                          ("/data/slow", "not read within 2 s"), ("/data/redirect", "off its origin")):
            with pytest.raises(active.ImageRefused, match=why):
                loader.fetch(origin + path)
    finally:
        server.shutdown()
        server.server_close()
    assert {auth for _, auth in seen} == {"Token tok"} and not any("steal" in p for p, _ in seen)


# --- 1 to 5 with Label Studio ----------------------------------------------------------------------------------


def _annotate(ls_client, task, label):
    ls_client.annotations.create(id=task.id, result=[{
        "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}])


def _next_task(ls_client, pid):
    from datalabel import ls

    resp = ls.raw_http(ls_client).request("api/dm/actions", method="POST",
                                          params={"id": "next_task", "project": pid}, json={"project": str(pid)})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_label_studio_calls_the_backend_with_its_credentials_and_retrains(label_studio, ls_client, bucket, tmp_path):
    samples_dir = tmp_path / "samples"
    pid = embedded.seed_demo(ls_client, bucket.name, samples_dir, limit=40, title=f"mlb {bucket.name}")
    truth = samples.read_truth(samples_dir)
    active.assign_splits(ls_client, pid)
    tasks = sorted(active.load_tasks(ls_client, pid), key=lambda t: t.id)
    label_of = {t.id: truth[active.media_url(t).rsplit("/", 1)[-1]] for t in tasks}
    train = [t for t in tasks if active.task_split(t) == "train"]
    held = [t for t in tasks if active.task_split(t) != "train"]
    assert held, "the split hashes image URLs: 40 tasks have some valid/test ones"
    for task in train[:16]:
        _annotate(ls_client, task, label_of[task.id])
    b = mlbackend.Backend(tmp_path / "models", label_studio.settings(bucket.name), keep=1)
    server, url = mlbackend.start_in_thread(b, PAIR)
    try:
        first = active.train_project(ls_client, pid, b.models_dir)
        assert first.version == "logreg-v1"
        # the tab of `al select`, and a task locked by the user's last session ("Label All Tasks", then closed)
        active.preannotate(ls_client, pid, model_path="latest", models_dir=b.models_dir)
        active.select_tasks(ls_client, pid, k=5)
        stale = _next_task(ls_client, pid)["id"]  # served to the user's last session, left open: locked
        again = _next_task(ls_client, pid)
        assert again["id"] == stale and again["queue"].startswith("Task lock")
        info = mlbackend.connect(ls_client, pid, url, PAIR)
        assert info["locks_released"] >= 1
        assert info["created"] and info["state"] == "CO" and info["model_version"] == "logreg-v1"
        assert info["webhook"] and info["auth"] == "basic"
        (registered,) = ls_client.ml.list(project=pid)
        assert registered.auth_method == "BASIC_AUTH" and registered.basic_auth_user == PAIR.user
        hooks = [h for h in ls_client.webhooks.list(project=str(pid)) if h.url == url + "/webhook"]
        assert len(hooks) == 1 and hooks[0].headers == {"Authorization": PAIR.header()}
        project = ls_client.projects.get(id=pid)
        assert project.model_version == "logreg-v1" and project.sampling == "Uncertainty sampling"
        assert project.start_training_on_annotation_update is True
        assert mlbackend.connect(ls_client, pid, url, PAIR)["created"] is False  # idempotent
        assert len(ls_client.ml.list(project=pid)) == 1

        # Label Studio asks the backend for an unlabeled train task: a prediction; for a valid/test one: none
        probe = next(t for t in reversed(train) if not t.is_labeled)
        mlbackend.retrieve_predictions(ls_client, pid, [probe.id] + [t.id for t in held])
        assert [p.model_version for p in active.load_tasks_by_id(ls_client, [probe.id])[0].predictions] == ["logreg-v1"]
        assert all(not t.predictions for t in active.load_tasks_by_id(ls_client, [t.id for t in held]))
        # opened as the editor opens a task (GET /api/tasks/ID): Label Studio asks the backend, which predicts none
        asked, serve_predict = [], b.predict

        def recording(payload):
            asked.extend(t.get("id") for t in payload.get("tasks") or [])
            return serve_predict(payload)

        b.predict = recording
        try:
            for task in held:
                ls_client.tasks.get(id=task.id)
        finally:
            b.predict = serve_predict
        assert {t.id for t in held} <= set(asked)
        assert all(not t.predictions for t in active.load_tasks_by_id(ls_client, [t.id for t in held]))

        # a session leaves a task locked; the next retrain releases it (and re-ranks the tab)
        first = _next_task(ls_client, pid)
        assert "Task lock" not in first["queue"]  # `connect` released the lock of the session before it
        locked = first["id"]
        assert _next_task(ls_client, pid)["queue"].startswith("Task lock")
        v1_predictions = sum(p.model_version == "logreg-v1" for t in active.load_tasks(ls_client, pid)
                             for p in t.predictions)
        assert v1_predictions > 0
        trainings = b.trainings
        newly = next(t for t in train[16:] if t.id not in (probe.id, locked))
        _annotate(ls_client, newly, label_of[newly.id])  # the webhook (with the pair) queues a retrain
        wait_until(lambda: b.trainings != trainings, 90, "the webhook's retrain to start")
        assert b.wait_idle(90) and b.trainings == trainings + 1, b.health()
        assert b.model_version(pid) == "logreg-v2" and b.last_error is None
        assert _call(url, f"/versions?project={pid}")[1] == {"versions": ["logreg-v2"]}  # keep=1: v1 retired
        # Label Studio 1.23 asks /versions without naming the project (its GET drops the request body): none listed
        assert not ls_client.ml.list_model_versions(id=registered.id).versions
        after = active.load_tasks(ls_client, pid)
        assert not any(p.model_version == "logreg-v1" for t in after for p in t.predictions), "v1 predictions stay"
        assert ls_client.projects.get(id=pid).model_version == "logreg-v2"
        pool = [t for t in after if not t.is_labeled and active.task_split(t) == "train"]
        assert pool and all("logreg-v2" in [p.model_version for p in t.predictions] for t in pool)
        # the tab is ranked by v2 and its first row is what "Label All Tasks" serves: no lock comes first
        ranked = active.select_tasks(ls_client, pid, k=5, view_title=None)["selected"]
        view = active.find_view(ls_client, pid, active.DEFAULT_VIEW)
        assert active.view_task_ids(ls_client, pid, view.id) == [c["task_id"] for c in ranked]
        served = _next_task(ls_client, pid)
        assert served["id"] == ranked[0]["task_id"] and "Task lock" not in served["queue"]
        assert not any(a for t in active.load_tasks_by_id(ls_client, [locked]) for a in t.annotations)
        # and no copy of a skip made to release a lock stays in the target storage
        kept = {a.id for t in active.load_tasks(ls_client, pid) for a in t.annotations}
        exported = [blob.name for blob in bucket.list_blobs(prefix=embedded.TARGET_PREFIX)]
        assert exported and {int(name.rsplit("/", 1)[1]) for name in exported} == kept, exported
    finally:
        server.shutdown()
        b.stop()


def test_al_connect_works_on_the_first_try_right_after_al_serve(label_studio, ls_client, bucket, tmp_path):
    """`al serve &` then at once `al connect`: exit 0 the first time; the pair is generated into the secrets
    folder (0600) by the one generator; a backend that is not there is said in one whole sentence."""
    from datalabel import embedded as emb

    pid = embedded.seed_demo(ls_client, bucket.name, tmp_path / "samples", limit=6, title=f"serve {bucket.name}")
    secrets_dir = tmp_path / "secrets"
    env = {**os.environ, **label_studio.env(bucket.name), "SECRETS_DIR": str(secrets_dir),
           "DATALABEL_MODELS_DIR": str(tmp_path / "models")}
    for name in ("DATALABEL_ML_BACKEND_USER", "DATALABEL_ML_BACKEND_PASSWORD"):
        env.pop(name, None)
    port = emb.free_port()
    serve = subprocess.Popen([sys.executable, "-m", "datalabel", "al", "serve", "--port", str(port)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run = subprocess.run([sys.executable, "-m", "datalabel", "al", "connect", "--project", str(pid),
                              "--backend", f"http://127.0.0.1:{port}", "--json"],
                             env=env, capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["state"] == "CO"
        for name in ("ml_backend_user", "ml_backend_password"):
            assert stat.S_IMODE((secrets_dir / name).stat().st_mode) == 0o600
        password = (secrets_dir / "ml_backend_password").read_text().strip()
        assert len(password) >= 24 and password not in run.stdout + run.stderr
        # the pair works, and only it
        pair = mlbackend.Credentials((secrets_dir / "ml_backend_user").read_text().strip(), password)
        assert _call(f"http://127.0.0.1:{port}", "/versions", auth=pair)[0] == 200
        assert _call(f"http://127.0.0.1:{port}", "/versions", auth=None)[0] == 401
        # another pair than the backend's: exit 2 and one whole line naming the cause, before Label Studio is asked
        wrong = {**env, "DATALABEL_ML_BACKEND_USER": "someone", "DATALABEL_ML_BACKEND_PASSWORD": "else"}
        run = subprocess.run([sys.executable, "-m", "datalabel", "al", "connect", "--project", str(pid),
                              "--backend", f"http://127.0.0.1:{port}"], env=wrong, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "refused this user and password" in run.stderr and "Traceback" not in run.stderr
        outside = _outside_address()
        if outside is not None:  # `al serve` without --host listens on loopback only
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=5).close()
    finally:
        serve.terminate()
        out = serve.communicate(timeout=30)[0]
    assert "Traceback" not in out and password not in out
    # nothing there: exit 3 and one whole line that says so
    run = subprocess.run([sys.executable, "-m", "datalabel", "al", "connect", "--project", str(pid), "--backend",
                          f"http://127.0.0.1:{emb.free_port()}", "--wait", "1"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 3 and len(run.stderr.strip().splitlines()) == 1
    assert run.stderr.strip().endswith("pass the URL it prints as --backend") and "Traceback" not in run.stderr
