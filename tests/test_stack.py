"""The vertical slice through the real servers: bucket -> tasks -> annotation -> target storage -> image proxy."""
from __future__ import annotations

import base64
import json
import urllib.request

import pytest

from datalabel import credentials, embedded, gcs, ls
from datalabel.tasks import Task


def _resolve(label_studio, task_id: int, gs_url: str) -> tuple[int, str, bytes]:
    fileuri = base64.urlsafe_b64encode(gs_url.encode()).decode()
    req = urllib.request.Request(f"{label_studio.url}/tasks/{task_id}/resolve/?fileuri={fileuri}",
                                 headers={"Authorization": f"Token {label_studio.token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.headers.get("content-type", ""), resp.read()


@pytest.mark.postgres
def test_sample_images_become_tasks_and_labels_reach_target_storage(label_studio, ls_client, bucket, tmp_path):
    project_id = embedded.seed_demo(ls_client, bucket.name, tmp_path / "samples", limit=25,
                                    title=f"slice {bucket.name}")
    # bucket -> tasks
    images = sorted(b.name for b in gcs.list_blobs(bucket, embedded.SOURCE_PREFIX))
    assert len(images) == 25
    tasks = [Task.from_json(t) for t in ls.iter_task_json(ls_client, project_id)]
    assert len(tasks) == 25

    # an annotation made through the API lands as JSON under the target prefix
    task = tasks[0]
    ls_client.annotations.create(id=task.id, result=[{
        "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": ["7"]}}])
    target = ls.list_storages(ls_client, project_id, "target")[0]
    ls.sync_storage(ls_client, target.id, "target")
    ls.wait_storage(ls_client, target.id, "target")
    written = list(gcs.list_blobs(bucket, embedded.TARGET_PREFIX))
    assert len(written) == 1
    exported = Task.from_json(json.loads(written[0].download_as_bytes()))
    assert exported.id == task.id
    assert exported.pick().labels == ["7"]
    source_url = exported.data["image"]
    assert source_url.startswith(f"gs://{bucket.name}/{embedded.SOURCE_PREFIX}")

    # the task's image resolves through Label Studio with the bucket's bytes
    status, ctype, body = _resolve(label_studio, task.id, source_url)
    assert status == 200 and ctype.startswith("image/")
    assert body == bucket.blob(gcs.split_url(source_url)[1]).download_as_bytes()


def test_seeding_twice_creates_nothing_new(ls_client, bucket, tmp_path):
    title = f"twice {bucket.name}"
    first = embedded.seed_demo(ls_client, bucket.name, tmp_path / "samples", limit=10, title=title)
    second = embedded.seed_demo(ls_client, bucket.name, tmp_path / "samples", limit=10, title=title)
    assert first == second
    assert [p.title for p in ls.list_projects(ls_client)].count(title) == 1
    assert len(ls.list_storages(ls_client, first, "source")) == 1
    assert len(ls.list_storages(ls_client, first, "target")) == 1
    assert ls.get_project(ls_client, first).task_number == 10


def test_the_ml_backend_pair_comes_from_the_one_generator(tmp_path, monkeypatch):
    """`al serve` and `al connect` read the same pair: the environment's (the Compose CLI container), else the
    secrets folder's, generated once even by two starts at the same moment."""
    import threading

    for name in credentials.ML_BACKEND_ENV:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "secrets"
    pairs = []
    threads = [threading.Thread(target=lambda: pairs.append(credentials.ml_backend(folder))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(pairs)) == 1 and len(pairs[0][1]) >= 24
    assert credentials.ensure(folder)["ml_password"] == pairs[0][1]
    for name in ("ml_backend_user", "ml_backend_password"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv(credentials.ML_BACKEND_ENV[0], "from-env")
    monkeypatch.setenv(credentials.ML_BACKEND_ENV[1], "env-password")
    assert credentials.ml_backend(folder) == ("from-env", "env-password")


def test_secrets_are_generated_once_and_private(tmp_path):
    first = credentials.ensure(tmp_path / "secrets")
    second = credentials.ensure(tmp_path / "secrets")
    assert first == second and len(first["token"]) == 40 and first["password"]
    for path in (tmp_path / "secrets").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    # an emptied file is generated again; the Compose env files carry the same values (both start paths share them)
    (tmp_path / "secrets" / "ls_admin_password").write_text("")
    third = credentials.ensure(tmp_path / "secrets")
    assert third["token"] == first["token"] and third["password"] and third["password"] != first["password"]
    credentials.write_compose_env_files(tmp_path / "secrets")
    cli_env = (tmp_path / "secrets" / "cli.env").read_text()
    assert cli_env == (f"LABEL_STUDIO_API_KEY={first['token']}\nDATALABEL_ML_BACKEND_USER={first['ml_user']}\n"
                       f"DATALABEL_ML_BACKEND_PASSWORD={first['ml_password']}\n")
    assert f"LABEL_STUDIO_PASSWORD={third['password']}\n" in (tmp_path / "secrets" / "label-studio.env").read_text()
    for path in (tmp_path / "secrets").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
