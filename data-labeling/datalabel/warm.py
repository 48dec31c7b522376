"""Warm whole-project reads: the tasks of a project from the local copy of its target storage, as `stats
--incremental` reads them, for `export convert --project` and `al select/preannotate/train`.

A project read is warm when its target-storage cache (stats.default_cache, made by `datalabel stats ID
--incremental`) exists. Then only what changed is fetched:
- annotations: the target-storage files new or changed since the last run (TaskCache.sync_source);
- task data (every task, labeled or not): the tasks Label Studio updated since the last run, from its Data Manager
  list with only id, data and meta (filter on updated_at; a new task, an edited one and an annotated one are
  updated), kept in the same cache file; the whole list again when the task count no longer adds up (deletions);
- predictions: one list of them (ls.project_predictions), as `stats --incremental` reads them; not read for a
  caller that uses none (`export convert`: at 5,000 tasks that list is a third of a warm read).
It is used only when consistent: target storage's annotation counts equal Label Studio's, and the task data
covers exactly the project's tasks. Otherwise, or when cold, a note on stderr and the whole project is read
(ls.project_tasks) as before.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

from . import gcs, ls
from .export import BucketObjects, TaskCache
from .files import exclusive_lock
from .output import note_when_done
from .stats import default_cache, has_cache
from .taskdata import sync_task_data
from .tasks import Task


def warm_tasks(client, project_id: int, storage_client=None,
               predictions: bool = True) -> tuple[object, list[Task] | None, str]:
    """The project (as ls.get_project gives it) and every task of it with annotations, predictions (unless not
    asked for), data and meta, from the warm cache; or (project, None, why not). Label Studio answers requests in
    parallel: the project and its storages are read together, and when a copy of this project is likely warm
    (stats.has_cache) the prediction and user lists and the storage client start with them, else once the copy
    is found."""
    pool = ThreadPoolExecutor(max_workers=4)
    try:
        project_f = pool.submit(ls.get_project, client, project_id)
        targets_f = pool.submit(ls.list_storages, client, project_id, "target")
        early = has_cache(project_id)
        lists = _start_lists(pool, client, project_id, predictions, storage_client) if early else None
        project = project_f.result()  # first: a missing project is said as such
        targets = targets_f.result()
        if not targets:
            return project, None, f"project {project_id} has no target storage"
        target = min(targets, key=lambda t: t.id)
        path = default_cache(client.settings.url, project_id, target.bucket, target.prefix or "")
        if not path.exists():
            return project, None, (f"no warm copy of its target storage yet (`datalabel stats {project_id} "
                                   "--incremental` makes one)")
        predictions_f, users_f, storage_f = lists or _start_lists(pool, client, project_id, predictions,
                                                                  storage_client)
        with exclusive_lock(path.with_name(path.name + ".lock")), TaskCache(path) as store:
            store.sync_source(BucketObjects(target.bucket, storage_client or storage_f.result()), target.prefix or "")
            annotated = {t.id: t for t in store.tasks()}
            submitted = sum(not a.was_cancelled for t in annotated.values() for a in t.annotations)
            skipped = sum(a.was_cancelled for t in annotated.values() for a in t.annotations)
            expected = (project.total_annotations_number or 0, project.skipped_annotations_number or 0)
            if (submitted, skipped) != expected:
                return project, None, (f"target storage gs://{target.bucket}/{target.prefix or ''} holds "
                                       f"{submitted} annotations and {skipped} skipped, Label Studio {expected[0]} "
                                       f"and {expected[1]} (sync it: datalabel storage sync {project_id} "
                                       "--direction target)")
            if not sync_task_data(store, client, project_id, project.task_number or 0):
                return project, None, "the task list does not add up to the project's task count"
            rows = store.db.execute("SELECT id, body FROM taskdata ORDER BY id").fetchall()
        predictions = predictions_f.result() if predictions_f else {}
        emails = users_f.result()
    finally:  # a list started early for a read that is not warm after all is not waited for here
        pool.shutdown(wait=False, cancel_futures=True)
    # target storage names the annotator by an object with the email, the export by id: as the export does
    ids = {email: user_id for user_id, email in emails.items()}
    for task in annotated.values():
        for ann in task.annotations:
            if ann.completed_by in ids:
                ann.completed_by = ids[ann.completed_by]
                ann.annotator = int(ann.completed_by) if ann.completed_by.isdigit() else ann.completed_by
    tasks = []
    for task_id, body in rows:
        fields = json.loads(body)
        task = annotated.pop(task_id, None) or Task(id=task_id, data={})
        task.data, task.meta = fields["data"], fields["meta"]
        task.predictions = predictions.pop(task_id, [])
        tasks.append(task)
    if annotated:  # an annotated task the task list does not have: deleted meanwhile
        return project, None, f"target storage has annotations of {len(annotated)} task(s) no longer in the project"
    return project, tasks, ""


def _start_lists(pool, client, project_id: int, predictions: bool, storage_client) -> tuple:
    """The reads a warm read needs besides the copy, started: predictions, users and a storage client (the first
    and the last None when not asked for or given)."""
    return (pool.submit(ls.project_predictions, client, project_id) if predictions else None,
            pool.submit(ls.user_emails, client),
            pool.submit(gcs.client) if storage_client is None else None)


def project_and_tasks(client, project_id: int, progress: Callable[[int], None] | None = None,
                      storage_client=None, predictions: bool = True) -> tuple[object, Iterator[Task]]:
    """The project and its tasks as ls.project_tasks gives them: from the warm cache when it is warm and
    consistent, else (a note on stderr once the command succeeded) from the whole-project read."""
    project, tasks, why = warm_tasks(client, project_id, storage_client, predictions)
    if tasks is None:
        note_when_done(f"{why}; read the whole project")
        return project, ls.project_tasks(client, project_id, progress, predictions=predictions)
    return project, iter(tasks)


def project_tasks(client, project_id: int, progress: Callable[[int], None] | None = None,
                  storage_client=None, predictions: bool = True) -> Iterator[Task]:
    """project_and_tasks without the project."""
    return project_and_tasks(client, project_id, progress, storage_client, predictions)[1]
