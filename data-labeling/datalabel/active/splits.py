"""Train / valid / test splits: a hash of each image URL, stored in the task's data (a Data Manager column)."""
from __future__ import annotations

import hashlib
import json
from typing import Callable, Sequence

from .. import gcs, ls
from ..errors import ConfigError, ServerError
from ..output import next_step
from ..tasks import Task
from .project import load_tasks


SPLITS = ("train", "valid", "test")
SPLIT_FIELD = "split"  # the task data key the split is written to (a Data Manager column)


def split_of(key: str, seed: int = 0, valid: float = 0.1, test: float = 0.1) -> str:
    """train / valid / test for a stable key (the image URL): a hash, so reruns and new tasks never move old ones."""
    if valid < 0 or test < 0 or valid + test >= 1:
        raise ConfigError(f"split fractions must be >= 0 and valid + test < 1 (got valid={valid}, test={test})")
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test:
        return "test"
    if u < test + valid:
        return "valid"
    return "train"


def media_url(task: Task, data_key: str | None = None) -> str | None:
    """The task's media reference as stored (gs://...), undoing Label Studio's proxy link if the API returned one."""
    url = task.media_url(data_key)
    if not isinstance(url, str):
        return None
    return gcs.gs_url_from_ref(url) or url


def stable_key(task: Task, data_key: str | None = None) -> str:
    """What a task's split is derived from: its media URL, else its data, never the task id (ids differ per server)."""
    url = media_url(task, data_key)
    if url:
        return url
    return json.dumps(task.data, sort_keys=True)


def stored_split(task: Task) -> str | None:
    """The split written into the task: `data.split` (what `assign_splits` writes, a Data Manager column), else
    `meta.split` (where earlier versions stored it)."""
    for holder in (task.data, task.meta):
        value = holder.get(SPLIT_FIELD) if isinstance(holder, dict) else None
        if value in SPLITS:
            return value
    return None


def task_split(task: Task, seed: int = 0, valid: float = 0.1, test: float = 0.1, data_key: str | None = None) -> str:
    """The split stored with the task, else the one its key hashes to."""
    return stored_split(task) or split_of(stable_key(task, data_key), seed, valid, test)


def plan_splits(tasks: Sequence[Task], seed: int = 0, valid: float = 0.1, test: float = 0.1,
                reassign: bool = False) -> tuple[dict[str, list[int]], dict]:
    """Which task ids must get which split written, and the counts after the write.

    A split already stored is kept unless `reassign`; a task whose `data.split` already says it is not rewritten.
    """
    split_of("", seed, valid, test)  # checks the fractions before anything is written
    todo: dict[str, list[int]] = {name: [] for name in SPLITS}
    counts = {name: 0 for name in SPLITS}
    kept = 0
    for task in tasks:
        if not isinstance(task.id, int) or not isinstance(task.data, dict):
            raise ServerError(f"Label Studio sent a task without an id or data ({str(task.id)[:40]}); not writing splits")
        stored = None if reassign else stored_split(task)
        name = stored or split_of(stable_key(task), seed, valid, test)
        counts[name] += 1
        if task.data.get(SPLIT_FIELD) == name:
            kept += 1
        else:
            todo[name].append(int(task.id))
    return todo, {"tasks": len(tasks), "assigned": sum(map(len, todo.values())), "kept": kept, **counts}


def assign_splits(client, project_id: int, seed: int = 0, valid: float = 0.1, test: float = 0.1,
                  reassign: bool = False, progress: Callable[[int], None] | None = None) -> dict:
    """Write a split into each task's data (`data.split`, a column in the Data Manager). Returns counts.

    Derived from a hash of the image URL and `seed`, so running it again changes nothing and tasks added later get
    a split without moving the old ones. Only tasks without `data.split` are read (all with `reassign`), and one
    bulk call per split writes them (Label Studio's "Add Or Modify Data Field" action, one UPDATE on its side)
    instead of one PATCH per task: reading is what costs on a first run, a rerun reads nothing.
    """
    split_of("", seed, valid, test)  # checks the fractions before anything is read or written
    unset = None if reassign else {"conjunction": "and", "items": [
        {"filter": f"filter:tasks:data.{SPLIT_FIELD}", "operator": "empty", "type": "String", "value": True}]}
    tasks = [Task.from_json(obj) for obj in ls.iter_task_json(client, project_id, fields="task_only", filters=unset,
                                                                   resolve_uri=False, include="id,data,meta")]
    todo, _ = plan_splits(tasks, seed, valid, test, reassign)
    next_step(progress, "write splits", sum(map(len, todo.values())), unit="tasks")
    for name, ids in todo.items():
        if not ids:
            continue
        with ls.api_errors(f"write split {name!r} into {len(ids)} task(s)", client.settings.url):
            client.actions.create(id="add_data_field", project=project_id,
                                  selected_items={"all": False, "included": ids},
                                  request_options={"additional_body_parameters": {
                                      "value_name": SPLIT_FIELD, "value_type": "String", "value": name}})
        if progress:
            progress(len(ids))
    counts = {name: ls.count_tasks(client, project_id, {"conjunction": "and", "items": [
        {"filter": f"filter:tasks:data.{SPLIT_FIELD}", "operator": "equal", "type": "String", "value": name}]})
        for name in SPLITS}
    assigned = sum(map(len, todo.values()))
    total = ls.count_tasks(client, project_id)
    return {"project": project_id, "tasks": total, "assigned": assigned, "kept": total - assigned, **counts}


def write_splits_one_by_one(client, project_id: int, seed: int = 0, valid: float = 0.1, test: float = 0.1) -> int:
    """The per-task way (one PATCH of `meta` per task): kept as the benchmark's baseline."""
    todo, _ = plan_splits(load_tasks(client, project_id), seed, valid, test, reassign=True)
    pairs = [(task_id, name) for name, ids in todo.items() for task_id in ids]

    def write(item: tuple[int, str]) -> None:
        task_id, name = item
        with ls.api_errors(f"set split of task {task_id}", client.settings.url):
            client.tasks.update(id=str(task_id), meta={SPLIT_FIELD: name, "split_seed": seed})

    gcs.parallel(write, pairs, workers=8)
    return len(pairs)


def in_split(task: Task, split: str | None) -> bool:
    """`split` None or "all": every task; else only tasks of that split."""
    return split in (None, "all") or task_split(task) == split


def check_split(split: str | None) -> None:
    if split not in (None, "all", *SPLITS):
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}, all")
