"""`datalabel storage ...` end to end: source and target storages on the GCS emulator, through Label Studio."""
from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest

from cli_helpers import assert_user_error, copy_images, run_cli
from datalabel import gcs, ls
from datalabel.labelconfig import build_config
from datalabel.projects import create_project
from datalabel.tasks import Task


@pytest.fixture
def project(ls_client):
    made, _ = create_project(ls_client, f"Storage {uuid.uuid4().hex[:8]}",
                             build_config("image-classification", [str(d) for d in range(10)]))
    yield made.id
    ls.delete_project(ls_client, made.id)


@pytest.fixture
def images(digits_dir, tmp_path):
    """Eight PNGs and one CSV in a local folder."""
    folder = copy_images(digits_dir, tmp_path / "images", 8)
    (folder / "notes.csv").write_text("not an image\n")
    return folder


def _count(ls_client, project_id):
    return {kind: len(ls.list_storages(ls_client, project_id, kind)) for kind in ("source", "target")}


@pytest.mark.postgres
def test_source_storage_is_added_once_and_syncs_new_files(label_studio, ls_client, bucket, project, images):
    env = label_studio.env(bucket.name)
    gcs.upload_folder(bucket, images, "images_unlabeled/")
    args = ["storage", "add-source", project, "--prefix", "images_unlabeled/", "--regex", r".*\.png$", "--json"]
    first = run_cli(*args, env=env)
    assert first.ok, first
    row = first.json()[0]
    assert row["created"] is True and row["files"] == 8 and row["bucket"] == bucket.name

    second = run_cli(*args[:-1], env=env)  # same place, written without the trailing slash difference mattering
    assert second.ok and f"reused source storage {row['id']}" in second.stdout, second
    again = run_cli("storage", "add-source", project, "--prefix", "/images_unlabeled", "--regex", r".*\.png$", env=env)
    assert again.ok and "reused" in again.stdout, again
    assert _count(ls_client, project) == {"source": 1, "target": 0}

    synced = run_cli("storage", "sync", project, "--direction", "source", "--json", env=env)
    assert synced.ok, synced
    assert [r["synced"] for r in synced.json()] == [8]
    assert ls.get_project(ls_client, project).task_number == 8  # the CSV was filtered out by the regex

    # new files in the bucket: a second sync imports only those
    bucket.blob("images_unlabeled/extra/new.png").upload_from_filename(str(sorted(images.glob("*.png"))[0]))
    resync = run_cli("storage", "sync", project, "--direction", "source", env=env)
    assert resync.ok, resync
    assert ls.get_project(ls_client, project).task_number == 9


@pytest.mark.postgres
def test_target_storage_receives_annotations_then_storages_are_removed(label_studio, ls_client, bucket, project,
                                                                        images):
    env = label_studio.env(bucket.name)
    gcs.upload_folder(bucket, images, "raw/")
    assert run_cli("storage", "add-source", project, "--prefix", "raw", "--regex", r".*\.png$", "--sync", env=env).ok
    target = run_cli("storage", "add-target", project, "--prefix", "labels/", "--json", env=env)
    assert target.ok, target
    target_id = target.json()[0]["id"]
    assert run_cli("storage", "add-target", project, "--prefix", "labels", env=env).stdout.startswith("reused")
    assert _count(ls_client, project) == {"source": 1, "target": 1}

    task = next(iter(ls.iter_task_json(ls_client, project)))
    ls_client.annotations.create(id=task["id"], result=[{
        "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": ["3"]}}])
    both = run_cli("storage", "sync", project, "--json", env=env)
    assert both.ok, both
    assert sorted(r["kind"] for r in both.json()) == ["source", "target"]
    written = [Task.from_json(json.loads(b.download_as_bytes())) for b in gcs.list_blobs(bucket, "labels/")]
    assert [(t.id, t.pick().labels) for t in written] == [(task["id"], ["3"])]

    listed = run_cli("storage", "list", project, "--json", env=env)
    assert listed.ok and {(r["kind"], r["prefix"]) for r in listed.json()} == {("source", "raw/"), ("target", "labels/")}
    table = run_cli("storage", "list", project, env=env)
    assert "raw/" in table.stdout and "labels/" in table.stdout

    removed = run_cli("storage", "remove", project, "--id", target_id, "--kind", "target", env=env)
    assert removed.ok and f"removed target storage {target_id}" in removed.stdout, removed
    removed = run_cli("storage", "remove", project, "--bucket", bucket.name, "--prefix", "raw/", env=env)
    assert removed.ok, removed
    assert _count(ls_client, project) == {"source": 0, "target": 0}
    # tasks and files stay
    assert ls.get_project(ls_client, project).task_number == 8
    assert len(list(gcs.list_blobs(bucket, "labels/"))) == 1


def test_bad_storage_input_creates_nothing(label_studio, ls_client, bucket, project, images, tmp_path):
    env = label_studio.env(bucket.name)
    gcs.upload_folder(bucket, images, "images/")
    not_json = tmp_path / "key.json"
    not_json.write_text("{not json")
    not_key = tmp_path / "other.json"
    not_key.write_text('{"hello": "world"}')
    cases = [
        (["add-source", project, "--bucket", f"missing-{uuid.uuid4().hex[:8]}"], "does not exist", 4),
        (["add-target", project, "--bucket", f"missing-{uuid.uuid4().hex[:8]}"], "does not exist", 4),
        (["add-source", project, "--prefix", "empty/"], "no file under", 4),
        (["add-source", project, "--prefix", "images/", "--regex", r".*\.jpg$"], "no file under", 4),
        (["add-source", project, "--prefix", "images/", "--regex", "("], "invalid --regex", 2),
        (["add-source", project, "--prefix", "images/", "--credentials", tmp_path / "nope.json"],
         "credentials file not found", 4),
        (["add-source", project, "--prefix", "images/", "--credentials", not_json], "not JSON", 2),
        (["add-source", project, "--prefix", "images/", "--credentials", not_key], "not a service-account key", 2),
        (["add-source", 987654, "--prefix", "images/"], "project 987654 does not exist", 4),
        (["list", 987654], "project 987654 does not exist", 4),
        (["sync", project], "no storage to sync", 4),
        (["sync", project, "--id", 987654], "no storage 987654", 4),
        (["sync", project, "--direction", "sideways"], "unknown direction", 2),
        (["remove", project, "--id", 987654], "no matching storage", 4),
        (["remove", project], "say which storage", 2),
    ]
    for args, message, code in cases:
        assert_user_error(run_cli("storage", *args, env=env), message, code=code)
    assert _count(ls_client, project) == {"source": 0, "target": 0}
    no_bucket = {k: v for k, v in env.items() if k != "GCS_BUCKET_NAME"}
    assert_user_error(run_cli("storage", "add-source", project, env=no_bucket), "GCS_BUCKET_NAME")


def test_credentials_content_is_what_label_studio_receives(tmp_path):
    """The key file's JSON content (not its path) goes into the storage; checked with a recording client."""
    key = {"type": "service_account", "project_id": "demo", "client_email": "x@demo.iam.gserviceaccount.com",
           "private_key": "placeholder: the recording client never signs with it",
           "token_uri": "https://oauth2.googleapis.com/token"}
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    calls = []

    class Storages:
        def list(self, project):
            return []

        def create(self, **kwargs):
            calls.append(kwargs)
            return SimpleNamespace(id=1, **kwargs)

    fake = SimpleNamespace(settings=SimpleNamespace(url="http://127.0.0.1:1"),
                           import_storage=SimpleNamespace(gcs=Storages()), export_storage=SimpleNamespace(gcs=Storages()))
    ls.ensure_source_storage(fake, 1, "b", "images/", credentials_file=str(path))
    ls.ensure_target_storage(fake, 1, "b", "labels/", credentials_file=str(path))
    assert [json.loads(c["google_application_credentials"]) for c in calls] == [key, key]
    assert all(c["presign"] is False for c in calls[:1])
