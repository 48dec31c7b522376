"""`datalabel setup`: the whole project lifecycle in one idempotent command, end to end."""
from __future__ import annotations

import uuid

import pytest

from cli_helpers import assert_user_error, copy_images, run_cli
from datalabel import embedded, gcs, ls


def _projects(client, title):
    return [p for p in ls.list_projects(client) if p.title == title]


@pytest.fixture
def images(digits_dir, tmp_path):
    return copy_images(digits_dir, tmp_path / "images", 6)


@pytest.mark.postgres
def test_setup_twice_leaves_one_project_one_source_one_target(label_studio, ls_client, bucket, images):
    env = label_studio.env(bucket.name)
    title = f"Setup {uuid.uuid4().hex[:8]}"
    args = ["setup", "--title", title, "--template", "image-classification", "--labels", "0,1,2,3,4,5,6,7,8,9",
            "--upload", images, "--regex", r".*\.png$", "--cors", "--json"]
    first = run_cli(*args, env=env)
    assert first.ok, first
    one = first.json()
    assert (one["project_created"], one["source_created"], one["target_created"]) == (True, True, True)
    assert one["uploaded"] == {"uploaded": 6, "skipped": 0, "total": 6}
    assert one["files"] == 6 and one["imported"] == 6 and one["tasks"] == 6
    assert one["cors"][0]["origin"] == [label_studio.url]

    second = run_cli(*args, env=env)
    assert second.ok, second
    two = second.json()
    assert (two["project_created"], two["source_created"], two["target_created"]) == (False, False, False)
    assert (two["project_id"], two["source_id"], two["target_id"]) == (one["project_id"], one["source_id"],
                                                                        one["target_id"])
    assert two["uploaded"]["skipped"] == 6 and two["imported"] == 0 and two["tasks"] == 6

    assert len(_projects(ls_client, title)) == 1
    sources = ls.list_storages(ls_client, one["project_id"], "source")
    targets = ls.list_storages(ls_client, one["project_id"], "target")
    assert [(s.bucket, s.prefix) for s in sources] == [(bucket.name, "images_unlabeled")]
    assert [(s.bucket, s.prefix) for s in targets] == [(bucket.name, "labels")]

    # the human-readable form of a third run says what was reused
    third = run_cli(*args[:-1], env=env)
    assert third.ok and f"reused project {one['project_id']}" in third.stdout and "6 task(s) ready" in third.stdout
    ls.delete_project(ls_client, one["project_id"])


def test_setup_on_files_already_in_the_bucket(label_studio, ls_client, bucket, images):
    gcs.upload_folder(bucket, images, "photos/")
    title = f"Prefilled {uuid.uuid4().hex[:8]}"
    result = run_cli("setup", "--title", title, "--template", "object-detection", "--labels", "digit",
                     "--source-prefix", "photos", "--target-prefix", "boxes/", env=label_studio.env(bucket.name))
    assert result.ok, result
    project = _projects(ls_client, title)[0]
    assert project.task_number == 6
    assert [s.prefix for s in ls.list_storages(ls_client, project.id, "target")] == ["boxes"]
    assert gcs.get_cors(bucket) == []  # CORS only on request
    ls.delete_project(ls_client, project.id)


def test_setup_bad_input_creates_nothing(label_studio, ls_client, bucket, images, tmp_path):
    env = label_studio.env(bucket.name)
    gcs.upload_folder(bucket, images, "images_unlabeled/")
    title = f"Never {uuid.uuid4().hex[:8]}"
    base = ["setup", "--title", title]
    good = ["--template", "image-classification", "--labels", "a,b"]
    not_json = tmp_path / "key.json"
    not_json.write_text("[1, 2")
    bad_xml = tmp_path / "bad.xml"
    bad_xml.write_text("<View><Image name='i' value='$image'/><Choices name='c' toName='nope'>"
                       "<Choice value='a'/></Choices></View>")
    down = {**env, "LABEL_STUDIO_URL": f"http://127.0.0.1:{embedded.free_port()}"}
    cases = [
        (base + ["--template", "nope", "--labels", "a"], env, "unknown template"),
        (base + ["--template", "ner", "--labels", ","], env, "no labels given"),
        (base + ["--template", "ner", "--labels", "x,y,x"], env, "duplicated label"),
        (base + ["--config", bad_xml], env, "invalid label config"),
        (base + good + ["--credentials", tmp_path / "missing.json"], env, "credentials file not found"),
        (base + good + ["--credentials", not_json], env, "not JSON"),
        (base + good + ["--bucket", f"missing-{uuid.uuid4().hex[:8]}"], env, "does not exist"),
        (base + good + ["--source-prefix", "nothing_here/"], env, "no file under"),
        (base + good + ["--regex", r".*\.tiff$"], env, "no file under"),
        (base + good + ["--upload", tmp_path / "no-folder"], env, "not a folder"),
        (base + good, {**env, "LABEL_STUDIO_API_KEY": "0" * 40}, "API token"),
        (base + good, down, "cannot reach Label Studio"),
    ]
    for args, case_env, message in cases:
        assert_user_error(run_cli(*args, env=case_env), message)
    assert _projects(ls_client, title) == []
    assert sorted(b.name for b in gcs.list_blobs(bucket)) == sorted(f"images_unlabeled/{p.name}" for p in images.iterdir())
    assert gcs.get_cors(bucket) == []
