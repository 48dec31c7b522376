"""A project's existing annotations written to its new target storage from here, in parallel, then the storage
connected: what Label Studio does when target storage is added, without its sync inside one HTTP request
(open-source Label Studio has no job queue: 30,000 annotations took 774 s in one request).

The objects are the ones Label Studio writes, read in its 1.23.2 source (io_storages/gcs/models.py
`GCSExportStorage.save_annotation`, base_models.py `ExportStorage._get_serialized_data`, `get_key`):
- key: PREFIX/ANNOTATION_ID (prefix without slashes at its ends, as the storage keeps it); no extension;
- body: `json.dumps` of io_storages/serializers.py `StorageAnnotationSerializer(annotation)`: the annotation's
  fields in the order of Label Studio's own annotation list, `completed_by` as {id, first_name, last_name, email},
  and `task` (after completed_by) as the task's own fields without its annotations;
- content type text/plain, as Label Studio's google-cloud-storage `upload_from_string` of a str gives it.
That is the form of its default setting (FUTURE_SAVE_TASK_TO_STORAGE off); a later sync or Label Studio's own write
of an annotation replaces the object with an equal one (`created_ago`, a relative time, is as of the write).

What is read, in three requests (the cheapest whole-project reads Label Studio offers): its JSON export of the
annotated tasks (the task fields and annotations), its Data Manager task list restricted to those tasks for the
columns the export leaves out (is_labeled, overlap, file_upload: only those columns, in pages of 2,000, since every
other Data Manager column costs it time per task), and its user list. `precomputed_agreement` is not in any open-source list: null, as open source
writes it.
"""
from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from . import gcs, ls
from .errors import ServerError

# StorageTaskSerializer's fields (TaskSerializer, fields '__all__', annotations omitted), in its order
TASK_FIELDS = ("id", "data", "meta", "created_at", "updated_at", "is_labeled", "allow_skip", "overlap", "inner_id",
               "total_annotations", "cancelled_annotations", "total_predictions", "precomputed_agreement",
               "comment_count", "unresolved_comment_count", "last_comment_updated_at", "project", "updated_by",
               "file_upload", "comment_authors")
# the export's annotation fields that StorageAnnotationSerializer does not write
_NOT_STORED = ("prediction", "result_count", "unique_id")
_ANNOTATED = {"conjunction": "or", "items": [
    {"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0},
    {"filter": "filter:tasks:cancelled_annotations", "operator": "greater", "type": "Number", "value": 0}]}


def storage_object(annotation: dict, task: dict, user: dict | None, listed: dict) -> dict:
    """One annotation as Label Studio's target storage writes it. `annotation` and `task` from its JSON export,
    `user` the annotator from its user list, `listed` the task's Data Manager columns (is_labeled, overlap,
    file_upload). `created_ago` is empty: a relative time as of the write ("0 minutes"), which no list gives (the
    Data Manager's annotation column holds only ids); Label Studio's own next write of the annotation sets it."""
    out = {"id": annotation.get("id"), "result": annotation.get("result", []),
           "created_username": created_username(user), "created_ago": "",
           "completed_by": ({k: user.get(k, "") for k in ("id", "first_name", "last_name", "email")}
                            if user else annotation.get("completed_by")),
           "task": {name: _task_field(name, task, listed) for name in TASK_FIELDS}}
    for key, value in annotation.items():
        if key not in out and key not in _NOT_STORED:
            out[key] = value
    return out


def created_username(user: dict | None) -> str:
    """AnnotationSerializer.get_created_username: "FIRST[ LAST] EMAIL, ID"."""
    if not user:
        return ""
    name = str(user.get("first_name") or "")
    if user.get("last_name"):
        name += " " + str(user["last_name"])
    return name + f" {user.get('email') or ''}, {user.get('id')}"


def _task_field(name: str, task: dict, listed: dict):
    if name in ("is_labeled", "overlap", "file_upload"):
        return listed.get(name)
    return task.get(name)


def object_key(prefix: str, annotation_id: int) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{int(annotation_id)}" if prefix else str(int(annotation_id))


def listed_columns(client, project_id: int) -> dict[int, dict]:
    """The Data Manager columns the export leaves out, for the project's tasks that have annotations."""
    out = {}
    for task in ls.iter_task_json(client, project_id, fields="task_only", filters=_ANNOTATED, resolve_uri=False,
                                  include="id,is_labeled,overlap,file_upload", page_size=2000):
        out[task["id"]] = {"is_labeled": task.get("is_labeled"), "overlap": task.get("overlap"),
                           "file_upload": task.get("file_upload")}
    return out


def annotated_tasks(client, project_id: int, timeout: float = 3600.0):
    """The project's tasks that have annotations, from Label Studio's JSON export, streamed from a temp file."""
    with tempfile.TemporaryFile() as fp:
        with ls.api_errors(f"export project {project_id}", client.settings.url):
            for chunk in client.projects.exports.download_sync(id=project_id, export_type="JSON",
                                                               download_all_tasks=False,
                                                               request_options={"timeout_in_seconds": int(timeout)}):
                fp.write(chunk)
        fp.seek(0)
        tasks = json.load(fp)
    if not isinstance(tasks, list):
        raise ServerError(f"export of project {project_id} is not a list of tasks")
    return [t for t in tasks if isinstance(t, dict) and isinstance(t.get("annotations"), list)]


def _users(client) -> dict[int, dict]:
    with ls.api_errors("list users", client.settings.url):
        return {u.id: u.model_dump(mode="json") for u in client.users.list()}


def write_annotations(client, project_id: int, bkt, prefix: str, workers: int = gcs.WORKERS,
                      progress: Callable[[int], None] | None = None) -> int:
    """Every annotation of the project written to gs://bucket/prefix as Label Studio's target storage writes it,
    in parallel (through gcsfs: 1,450 objects in 1.0 s where threads over google-cloud-storage took 2.9 s).
    Returns how many."""
    with ThreadPoolExecutor(max_workers=4) as pool:  # the three reads at once (Label Studio answers in parallel)
        exported = pool.submit(annotated_tasks, client, project_id)
        listed_f = pool.submit(listed_columns, client, project_id)
        people_f = pool.submit(_users, client)
        fs_f = pool.submit(gcs.filesystem, bkt.client)  # its import (~0.6 s) while the server works
        tasks, listed, people, fs = exported.result(), listed_f.result(), people_f.result(), fs_f.result()
    objects = []
    for task in tasks:
        for annotation in task["annotations"]:
            if isinstance(annotation, dict) and isinstance(annotation.get("id"), int):
                body = storage_object(annotation, task, people.get(annotation.get("completed_by")),
                                      listed.get(task.get("id"), {}))
                objects.append((f"gs://{bkt.name}/{object_key(prefix, annotation['id'])}", json.dumps(body).encode()))
    # the content type of Label Studio's upload_from_string of a str
    gcs.write_objects(fs, objects, workers, content_type="text/plain", progress=progress)
    return len(objects)
