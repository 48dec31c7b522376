"""Warm whole-project reads: `export convert --project` and `al select` read a project from the local copy of its
target storage once `stats --incremental` has made it, and give what the whole-project read gives; cold or
inconsistent, they say so and read the whole project."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from cli_helpers import run_cli
from datalabel import ls
from datalabel.labelconfig import build_config
from datalabel.projects import create_project


def _choice(label: str) -> list[dict]:
    return [{"type": "choices", "from_name": "label", "to_name": "image", "value": {"choices": [label]}}]


def _tree(folder: Path) -> dict[str, list[bytes]]:
    """Each file's header line, then its records sorted: the whole-project export lists tasks in the database's
    order (not by id on PostgreSQL), the warm read by task id."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            lines = p.read_bytes().splitlines()
            out[str(p.relative_to(folder))] = lines[:1] + sorted(lines[1:])
    return out


@pytest.mark.postgres
def test_convert_and_select_read_the_warm_cache_and_agree_with_the_whole_read(label_studio, ls_client, bucket,
                                                                               tmp_path):
    made, _ = create_project(ls_client, f"Warm {uuid.uuid4().hex[:8]}",
                             build_config("image-classification", ["cat", "dog"]))
    project = made.id
    try:
        ls_client.projects.import_tasks(id=project, request=[
            {"data": {"image": f"gs://{bucket.name}/img/{i}.png"},
             "predictions": [{"model_version": "v1", "score": 0.1 * (i + 1), "result": _choice("cat")}]}
            for i in range(8)])
        tasks = sorted(ls.iter_task_json(ls_client, project, fields="task_only"), key=lambda t: t["id"])
        for task, label in zip(tasks[:3], ("cat", "dog", "cat")):
            ls_client.annotations.create(id=task["id"], result=_choice(label))
        ls_client.annotations.create(id=tasks[3]["id"], result=[], was_cancelled=True)
        storage, _ = ls.ensure_target_storage(ls_client, project, bucket.name, "labels/")
        ls.sync_storage(ls_client, storage.id, "target")
        ls.wait_storage(ls_client, storage.id, "target")

        env = {**label_studio.env(bucket.name), "XDG_CACHE_HOME": str(tmp_path / "cache")}
        cold_env = {**env, "XDG_CACHE_HOME": str(tmp_path / "no-cache")}

        def convert(name: str, environment: dict):
            out = run_cli("export", "convert", "--project", project, "-f", "csv", "--no-images", "--include-unlabeled",
                          "-o", tmp_path / name, env=environment)
            assert out.ok, out
            return out.stderr, _tree(tmp_path / name)

        def select(environment: dict):
            out = run_cli("al", "select", "--project", project, "--split", "all", "-k", "3", "--json",
                          env=environment)
            assert out.ok, out
            return out.stderr, out.json()

        note, whole = convert("whole", cold_env)
        assert "no warm copy of its target storage" in note and "read the whole project" in note
        assert run_cli("stats", project, "--incremental", "--json", env=env).ok  # makes the warm copy
        note, warm_out = convert("warm", env)
        assert "read the whole project" not in note and warm_out == whole
        assert len(warm_out) >= 1

        cold_note, cold_pick = select(cold_env)
        note, warm_pick = select(env)
        assert "read the whole project" in cold_note and "read the whole project" not in note
        assert warm_pick == cold_pick

        # changes since: a new annotation (Label Studio writes it to target storage) and a new task
        ls_client.annotations.create(id=tasks[4]["id"], result=_choice("dog"))
        ls_client.projects.import_tasks(id=project, request=[{"data": {"image": f"gs://{bucket.name}/img/new.png"}}])
        note, warm_again = convert("warm-again", env)
        _, whole_again = convert("whole-again", cold_env)
        assert "read the whole project" not in note and warm_again == whole_again != whole

        # inconsistent: an annotation's file gone from the bucket -> a note, and the whole read
        next(iter(bucket.list_blobs(prefix="labels/"))).delete()
        note, fallback = convert("fallback", env)
        assert "target storage" in note and "read the whole project" in note and fallback == whole_again
    finally:
        ls.delete_project(ls_client, project)


def test_task_pages_end_on_the_list_total_without_an_extra_request(ls_client, bucket):
    """The paged task list every warm read uses asks Label Studio for exactly the pages there are (the SDK's pager
    asks for one more, empty page), also when the count is a multiple of the page size, and keeps going when the
    server serves smaller pages than asked for (TASK_API_PAGE_SIZE_MAX)."""
    made, _ = create_project(ls_client, f"Pages {uuid.uuid4().hex[:8]}",
                             build_config("image-classification", ["cat", "dog"]))
    try:
        ls_client.projects.import_tasks(id=made.id, request=[{"data": {"image": f"gs://{bucket.name}/{i}.png"}}
                                                              for i in range(7)])
        sizes = []
        listing = ls_client.tasks.list

        def counted(**kwargs):
            sizes.append(kwargs["page_size"])
            return listing(**kwargs)

        ls_client.tasks.list = counted
        try:
            for page_size, requests in ((3, 3), (7, 1), (1, 7), (10, 1)):
                sizes.clear()
                ids = [t["id"] for t in ls.iter_task_json(ls_client, made.id, fields="task_only", page_size=page_size)]
                assert len(ids) == len(set(ids)) == 7 and len(sizes) == requests, (page_size, sizes)
            # a server capping pages at 2 where 5 are asked for: every task still comes
            ls_client.tasks.list = lambda **kwargs: listing(**{**kwargs, "page_size": min(2, kwargs["page_size"])})
            ids = [t["id"] for t in ls.iter_task_json(ls_client, made.id, fields="task_only", page_size=5)]
            assert sorted(ids) == sorted(set(ids)) and len(ids) == 7
        finally:
            del ls_client.tasks.list
    finally:
        ls.delete_project(ls_client, made.id)
