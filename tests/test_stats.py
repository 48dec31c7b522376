"""Project statistics: the pure function on hand-written task JSON, and `datalabel stats` on a live project."""
from __future__ import annotations

import uuid

import pytest

from cli_helpers import assert_user_error, run_cli
from datalabel import ls
from datalabel.labelconfig import build_config
from datalabel.projects import create_project
from datalabel.stats import compute_stats
from datalabel.tasks import Task


def _choice(label):
    return [{"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}]


def _box(label):
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": [label]}}


def test_compute_stats_counts_tasks_classes_annotators_and_models():
    tasks = [Task.from_json(t) for t in [
        {"id": 1, "data": {"image": "a"}, "annotations": [
            {"id": 1, "completed_by": 1, "result": [_box("car"), _box("car"), _box("bus")], "updated_at": "1"}],
         "predictions": [{"model_version": "m1", "score": 0.5, "result": [_box("car")]},
                         {"model_version": "m1", "score": 0.7, "result": []}]},
        {"id": 2, "data": {"image": "b"}, "annotations": [
            {"id": 2, "completed_by": 1, "was_cancelled": True, "result": []}],
         "predictions": [{"model_version": "m2", "result": [_box("bus")]}]},
        {"id": 3, "data": {"image": "c"}, "annotations": [
            {"id": 3, "completed_by": 2, "result": [_box("bus")], "updated_at": "1"},
            {"id": 4, "completed_by": 1, "result": [_box("car")], "updated_at": "2"},
            {"id": 5, "completed_by": 2, "was_cancelled": True, "result": [], "updated_at": "3"}]},
        {"id": 4, "data": {"image": "d"}},
    ]]
    out = compute_stats(tasks, labels=["car", "bus", "truck"], users={"1": "ann@x", "2": "bob@x"})
    assert out["tasks"] == {"total": 4, "labeled": 2, "unlabeled": 1, "skipped": 1}
    assert out["annotations"] == {"submitted": 3, "skipped": 2}
    # latest annotation per task: task 1 (car, car, bus), task 3 (car by ann, newer than bob's bus)
    assert out["classes"] == {"car": {"count": 3, "tasks": 2}, "bus": {"count": 1, "tasks": 1},
                              "truck": {"count": 0, "tasks": 0}}
    assert out["annotators"] == {"ann@x": {"annotations": 2, "skipped": 1}, "bob@x": {"annotations": 1, "skipped": 1}}
    assert out["predictions"] == {"m1": {"predictions": 2, "tasks": 1, "mean_score": 0.6},
                                  "m2": {"predictions": 1, "tasks": 1, "mean_score": None}}


def test_policy_changes_which_annotation_counts():
    task = Task.from_json({"id": 1, "data": {}, "annotations": [
        {"id": 1, "result": _choice("cat"), "updated_at": "1", "ground_truth": True},
        {"id": 2, "result": _choice("dog"), "updated_at": "2"},
        {"id": 3, "result": _choice("cat"), "updated_at": "0"}]})
    assert compute_stats([task])["classes"] == {"dog": {"count": 1, "tasks": 1}}
    assert compute_stats([task], policy="ground-truth")["classes"] == {"cat": {"count": 1, "tasks": 1}}
    assert compute_stats([task], policy="majority")["classes"] == {"cat": {"count": 1, "tasks": 1}}
    empty = compute_stats([])
    assert empty["tasks"] == {"total": 0, "labeled": 0, "unlabeled": 0, "skipped": 0} and empty["classes"] == {}


@pytest.fixture
def labeled_project(ls_client):
    """Six tasks: three labeled (one by a second annotator), one skipped, two untouched; predictions from two
    model versions."""
    project, _ = create_project(ls_client, f"Stats {uuid.uuid4().hex[:8]}",
                                build_config("image-classification", ["cat", "dog", "bird"]))
    other = ls_client.users.create(email=f"ann-{uuid.uuid4().hex[:6]}@example.com",
                                   username=f"ann{uuid.uuid4().hex[:6]}")

    def pred(label, version, score):
        return {"model_version": version, "score": score, "result": _choice(label)}

    ls_client.projects.import_tasks(id=project.id, request=[
        {"data": {"image": f"gs://b/{i}.png"},
         "predictions": [pred("cat", "v1", round(0.1 * (i + 1), 2))] + ([pred("dog", "v2", 0.9)] if i < 2 else [])}
        for i in range(6)])
    tasks = sorted(ls.iter_task_json(ls_client, project.id), key=lambda t: t["id"])
    ls_client.annotations.create(id=tasks[0]["id"], result=_choice("cat"))
    ls_client.annotations.create(id=tasks[1]["id"], result=_choice("dog"))
    ls_client.annotations.create(id=tasks[2]["id"], result=_choice("dog"), completed_by=other.id)
    ls_client.annotations.create(id=tasks[3]["id"], result=[], was_cancelled=True)
    yield project.id, other.email
    ls.delete_project(ls_client, project.id)


@pytest.mark.postgres
def test_stats_command_matches_the_annotations_made(label_studio, ls_client, labeled_project):
    project_id, other = labeled_project
    env = label_studio.env()
    result = run_cli("stats", project_id, "--json", env=env)
    assert result.ok, result
    out = result.json()
    assert out["project"]["id"] == project_id
    assert out["tasks"] == {"total": 6, "labeled": 3, "unlabeled": 2, "skipped": 1}
    assert out["classes"] == {"cat": {"count": 1, "tasks": 1}, "dog": {"count": 2, "tasks": 2},
                              "bird": {"count": 0, "tasks": 0}}
    assert out["annotators"] == {label_studio.username: {"annotations": 2, "skipped": 1},
                                 other: {"annotations": 1, "skipped": 0}}
    assert out["predictions"] == {"v1": {"predictions": 6, "tasks": 6, "mean_score": 0.35},
                                  "v2": {"predictions": 2, "tasks": 2, "mean_score": 0.9}}
    # the server's own counters agree
    project = ls.get_project(ls_client, project_id)
    assert project.total_predictions_number == 8 and project.skipped_annotations_number == 1

    table = run_cli("stats", project_id, env=env)
    assert table.ok, table
    for text in ("labeled", "dog", other, "v1", "0.35"):
        assert text in table.stdout


def test_stats_bad_input(label_studio):
    assert_user_error(run_cli("stats", "987654", env=label_studio.env()), "project 987654 does not exist", code=4)
    assert_user_error(run_cli("stats", "1", "--policy", "loudest", env=label_studio.env()), "unknown --policy")


@pytest.mark.postgres
def test_incremental_stats_read_target_storage_once_then_only_what_changed(label_studio, ls_client, labeled_project,
                                                                           bucket, tmp_path, monkeypatch):
    from datalabel import export, stats

    project_id, _ = labeled_project
    env = label_studio.env()
    cache = tmp_path / "cache.sqlite"
    no_target = run_cli("stats", project_id, "--json", "--incremental", "--cache", cache, env=env)
    assert no_target.ok and "has no target storage; reading the whole project" in no_target.stderr
    full = run_cli("stats", project_id, "--json", env=env).json()
    assert no_target.json() == full

    target, _ = ls.ensure_target_storage(ls_client, project_id, bucket.name, "labels/")
    ls.sync_storage(ls_client, target.id, "target")
    ls.wait_storage(ls_client, target.id, "target")
    cold = run_cli("stats", project_id, "--json", "--incremental", "--cache", cache, env=env)
    assert cold.ok, cold
    assert cold.json() == full and "note:" not in cold.stderr

    # one more annotation reaches target storage by itself; the warm read fetches that file only
    fetched = []
    read_many = export.BucketObjects.read_many
    monkeypatch.setattr(export.BucketObjects, "read_many",
                        lambda self, keys, progress=None: fetched.extend(keys) or read_many(self, keys, progress))
    tasks = sorted(ls.iter_task_json(ls_client, project_id), key=lambda t: t["id"])
    made = ls_client.annotations.create(id=tasks[4]["id"], result=_choice("bird"))
    warm = stats.incremental_stats(ls_client, project_id, cache=cache)
    assert len(fetched) == 1 and fetched[0].startswith("labels/")
    assert warm["tasks"] == {"total": 6, "labeled": 4, "unlabeled": 1, "skipped": 1}
    assert warm["classes"]["bird"] == {"count": 1, "tasks": 1}
    assert warm == stats.project_stats(ls_client, project_id)

    # an annotation deleted in Label Studio stays in the bucket: the counts disagree, so the whole project is read
    ls_client.annotations.delete(id=made.id)
    behind = run_cli("stats", project_id, "--json", "--incremental", "--cache", cache, env=env)
    assert behind.ok and "holds 4 annotations and 1 skipped, Label Studio 3 and 1" in behind.stderr
    assert behind.json() == run_cli("stats", project_id, "--json", env=env).json() == full

    assert_user_error(run_cli("stats", project_id, "--cache", cache, env=env), "--cache goes with --incremental")


def test_interrupted_incremental_read_leaves_the_cache_as_it_was(label_studio, ls_client, labeled_project, bucket,
                                                                  tmp_path, monkeypatch):
    """Ctrl-C in the middle of filling the cache: the files stored so far are rolled back, the next run reads
    everything and agrees with the whole-project read."""
    import sqlite3

    from datalabel import export, stats

    project_id, _ = labeled_project
    target, _ = ls.ensure_target_storage(ls_client, project_id, bucket.name, "labels/")
    ls.sync_storage(ls_client, target.id, "target")
    ls.wait_storage(ls_client, target.id, "target")
    cache = tmp_path / "cache.sqlite"
    put, calls = export.TaskCache._put, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return put(self, *args, **kwargs)

    monkeypatch.setattr(export.TaskCache, "_put", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stats.incremental_stats(ls_client, project_id, cache=cache)
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 0
    monkeypatch.setattr(export.TaskCache, "_put", put)
    assert stats.incremental_stats(ls_client, project_id, cache=cache) == stats.project_stats(ls_client, project_id)
