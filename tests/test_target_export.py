"""`datalabel storage add-target` on a project that already has annotations: they are written from the CLI, in
parallel, in the form Label Studio's own target-storage sync writes, and Label Studio's later writes land beside."""
from __future__ import annotations

import json
import uuid

import pytest
from label_studio_sdk import LabelStudio

from cli_helpers import run_cli
from datalabel import ls
from datalabel.labelconfig import build_config
from datalabel.projects import create_project


def _objects(bucket, prefix: str) -> dict[str, dict]:
    return {b.name[len(prefix):]: json.loads(b.download_as_bytes()) for b in bucket.list_blobs(prefix=prefix)}


def _choice(label: str) -> list[dict]:
    return [{"type": "choices", "from_name": "label", "to_name": "image", "value": {"choices": [label]}}]


@pytest.fixture
def annotated(ls_client, label_studio, annotators):
    """A project of 6 tasks: 4 annotated by the admin and an annotator (two annotations on one task, one skip),
    one with a prediction only, one untouched."""
    made, _ = create_project(ls_client, f"Target export {uuid.uuid4().hex[:8]}",
                             build_config("image-classification", ["cat", "dog"]))
    ls_client.projects.import_tasks(id=made.id, request=[
        {"data": {"image": f"gs://nowhere/{i}.png", "n": i}, "meta": {"batch": "a"} if i == 0 else {},
         **({"predictions": [{"model_version": "v1", "score": 0.4, "result": _choice("cat")}]} if i == 4 else {})}
        for i in range(6)])
    tasks = sorted(ls.iter_task_json(ls_client, made.id, fields="task_only"), key=lambda t: t["id"])
    other = LabelStudio(base_url=label_studio.url, api_key=annotators[0]["token"])
    ls_client.annotations.create(id=tasks[0]["id"], result=_choice("cat"), lead_time=3.5)
    other.annotations.create(id=tasks[0]["id"], result=_choice("dog"), lead_time=1.0)
    other.annotations.create(id=tasks[1]["id"], result=_choice("dog"))
    ls_client.annotations.create(id=tasks[2]["id"], result=[], was_cancelled=True)
    ls_client.annotations.create(id=tasks[3]["id"], result=_choice("cat"), ground_truth=True)
    yield made.id, tasks
    ls.delete_project(ls_client, made.id)


@pytest.mark.postgres
def test_add_target_writes_existing_annotations_as_label_studio_does(label_studio, ls_client, storage_client,
                                                                      annotated):
    project, tasks = annotated
    ours = storage_client.create_bucket(f"test-{uuid.uuid4().hex[:12]}")
    theirs = storage_client.create_bucket(f"test-{uuid.uuid4().hex[:12]}")

    out = run_cli("storage", "add-target", project, "--bucket", ours.name, "--prefix", "labels/", "--json",
                  env=label_studio.env())
    assert out.ok, out
    row = out.json()[0]
    assert row["created"] and row["written"] == 5
    written = _objects(ours, "labels/")

    # Label Studio's own sync of the same annotations into another bucket: the reference
    storage, _ = ls.ensure_target_storage(ls_client, project, theirs.name, "labels/")
    ls.sync_storage(ls_client, storage.id, "target")
    ls.wait_storage(ls_client, storage.id, "target")
    reference = _objects(theirs, "labels/")

    assert sorted(written) == sorted(reference) and len(written) == 5
    # the same objects' content type (ours go through gcsfs, Label Studio's through google-cloud-storage)
    assert ({b.content_type for b in ours.list_blobs(prefix="labels/")}
            == {b.content_type for b in theirs.list_blobs(prefix="labels/")} == {"text/plain"})
    fields = list(next(iter(reference.values())))
    for key, ref in reference.items():
        mine = written[key]
        assert list(mine) == list(ref) and list(mine["task"]) == list(ref["task"]), key  # the same fields, in order
        ref.pop("created_ago"), mine.pop("created_ago")  # a relative time ("0 minutes"), as of each write
        assert mine == ref, key

    # Label Studio links an annotation to one GCS target storage only (unique on PostgreSQL): the reference goes
    ls.remove_storage(ls_client, storage.id, "target")
    # connected: an annotation made now is written by Label Studio itself, beside the ones written from here
    ls_client.annotations.create(id=tasks[5]["id"], result=_choice("dog"))
    after = _objects(ours, "labels/")
    assert len(after) == 6
    new = [obj for key, obj in after.items() if key not in written]
    assert new[0]["task"]["id"] == tasks[5]["id"] and list(new[0]) == fields

    again = run_cli("storage", "add-target", project, "--bucket", ours.name, "--prefix", "labels", "--json",
                    env=label_studio.env())
    assert again.ok and again.json()[0]["created"] is False and again.json()[0]["written"] is None
