"""What the loop reads from and writes to a project in Label Studio: its tasks, the classification control
predictions go to, the labeling queue (sampling and model version) and the Data Manager views."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable

import logging

from .. import gcs, ls, warm
from ..errors import ConfigError, LabError, NotFound, ServerError
from ..labelconfig import parse_config
from ..tasks import Task


log = logging.getLogger("datalabel.active")

DEFAULT_VIEW = "Active learning: label next"
UNCERTAINTY_SAMPLING = "Uncertainty sampling"  # Label Studio's project setting: lowest prediction score first

def load_tasks(client, project_id: int, progress: Callable[[int], None] | None = None) -> list[Task]:
    """Every task of the project with annotations and predictions: from the warm target-storage cache when there
    is one (warm.py), else in one whole-project read."""
    return list(warm.project_tasks(client, project_id, progress))


def load_tasks_by_id(client, task_ids: Iterable[int]) -> list[Task]:
    out = []
    for task_id in task_ids:
        with ls.api_errors(f"task {task_id}", client.settings.url):
            out.append(Task.from_json(client.tasks.get(id=str(task_id)).model_dump(mode="json", exclude_none=True)))
    return out


@dataclass
class Target:
    """Where classification predictions go in a project's label config."""

    from_name: str
    to_name: str
    data_key: str | None
    labels: list[str]


def target_of(label_config) -> Target:
    """The classification control of a label config (XML text or a parsed LabelConfig)."""
    config = parse_config(label_config) if isinstance(label_config, str) else label_config
    for control in config.controls:
        if control.tag == "Choices":
            to_name = control.to_name.split(",")[0]
            return Target(control.name, to_name, config.objects[to_name][1], control.labels)
    raise ConfigError("the project has no <Choices> control: active learning here handles image classification")


def project_target(client, project_id: int) -> Target:
    return target_of(ls.project_config(client, project_id))


def use_for_sampling(client, project_id: int, model_version: str) -> dict:
    """Make "Label All Tasks" serve the least certain task first: the project's sampling becomes "Uncertainty
    sampling" over predictions of `model_version` (lowest score first), and the Data Manager's prediction-score
    column follows the same version. Label Studio accepts a version only once predictions of it exist."""
    with ls.api_errors(f"set the labeling queue of project {project_id} to {model_version!r}", client.settings.url):
        client.projects.update(id=project_id, sampling=UNCERTAINTY_SAMPLING, model_version=model_version,
                               show_collab_predictions=True)
    return {"sampling": UNCERTAINTY_SAMPLING, "model_version": model_version}


def save_view(client, project_id: int, title: str, task_ids: list[int], extra: dict | None = None) -> dict:
    """A Data Manager tab showing exactly `task_ids`, lowest prediction score (least certain) first; replaced in
    place when re-run. "Label Tasks As Displayed" labels them in this order; "Label All Tasks" follows the
    project's queue (the whole project, least certain first once `use_for_sampling` set it). `extra`: more keys
    kept in the view's data (Label Studio stores them as they are)."""
    if not task_ids:
        raise LabError("refusing to save an empty selection as a view (it would show every task)")
    # the Data Manager UI knows `equal` on ids; an OR of them shows exactly the selection
    data = {
        "title": title,
        "filters": {"conjunction": "or", "items": [
            {"filter": "filter:tasks:id", "operator": "equal", "type": "Number", "value": int(i)} for i in task_ids]},
        "ordering": ["tasks:predictions_score"],
        **(extra or {}),
    }
    with ls.api_errors(f"save view {title!r}", client.settings.url):
        existing = [v for v in client.views.list(project=project_id)
                    if isinstance(v.data, dict) and v.data.get("title") == title]
        if existing:
            view = client.views.update(id=str(existing[0].id), project=project_id, data=data)
        else:
            view = client.views.create(project=project_id, data=data)
    url = f"{client.settings.url}/projects/{project_id}/data?tab={view.id}"
    return {"id": view.id, "title": title, "tasks": len(task_ids), "url": url}


def find_view(client, project_id: int, title: str):
    """The Data Manager tab with this title, or None."""
    with ls.api_errors(f"views of project {project_id}", client.settings.url):
        return next((v for v in client.views.list(project=project_id)
                     if isinstance(v.data, dict) and v.data.get("title") == title), None)


def _call(client, method: str, path: str, what: str, ok=(200, 201, 204), **kwargs):
    """A call the SDK does not wrap, through its own HTTP client (same token): the response, or a LabError."""
    with ls.api_errors(what, client.settings.url):
        resp = ls.raw_http(client).request(path, method=method, **kwargs)
    if resp.status_code == 404:
        raise NotFound(f"{what}: not found (HTTP 404)")
    if resp.status_code not in ok:
        raise ServerError(f"{what}: HTTP {resp.status_code}: {' '.join(resp.text.split())[:300]}")
    return resp


def delete_model_version(client, project_id: int, version: str) -> int:
    """Delete every prediction of `version` in the project (the project's "model versions" API). Returns how
    many were deleted."""
    resp = _call(client, "DELETE", f"api/projects/{int(project_id)}/model-versions/",
                 f"delete the predictions of {version!r} in project {project_id}", json={"model_version": version})
    try:
        return int(resp.json().get("deleted", 0))
    except (ValueError, AttributeError, TypeError):
        return 0


def release_locks(client, project_id: int, limit: int = 10) -> list[int]:
    """Release the task locks the token's user holds in the project; returns the task ids released.

    "Label All Tasks" serves first the task its user still holds locked (Label Studio's `TaskLock`, kept
    TASK_LOCK_TTL = 24 h by default), whatever the queue says: the task left open in the last session. Label Studio
    1.23 has no API to drop a lock; it drops a user's lock when that user submits or skips the task. So: ask for the
    user's next task as "Label All Tasks" does (a lock held comes first, queue "Task lock"; else the queue's first
    task, locked now), skip it (a cancelled annotation, which releases the lock) and delete the skip again.
    Repeated while the served task came from a lock."""
    released = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        targets = pool.submit(ls.list_storages, client, project_id, "target")  # read during the first release
        for _ in range(limit):
            what = f"the next task of project {project_id}"
            resp = _call(client, "POST", "api/dm/actions", what, json={"project": str(project_id)}, ok=(200, 404),
                         params={"id": "next_task", "project": int(project_id)})
            if resp.status_code == 404:
                break  # nothing left to label: nothing locked either
            served = resp.json()
            task_id = int(served["id"])
            skip = _call(client, "POST", f"api/tasks/{task_id}/annotations/", f"release the lock on task {task_id}",
                         params={"was_cancelled": 1}, json={"result": [], "was_cancelled": True})
            annotation = int(skip.json()["id"])
            _call(client, "DELETE", f"api/annotations/{annotation}/", f"release the lock on task {task_id}")
            _forget_exported(targets, project_id, annotation)
            released.append(task_id)
            if "Task lock" not in str(served.get("queue") or ""):
                break  # that one was locked by this very call: none of the user's is left
    return released


def _forget_exported(targets: Future, project_id: int, annotation_id: int) -> None:
    """Delete the object Label Studio 1.23 wrote for an annotation into each GCS target storage of the project
    (`targets`: their list, being read; its key: the annotation id under the prefix), so the bucket holds no
    annotation Label Studio no longer has."""
    try:
        storages = targets.result()
        if not storages:
            return
        store = gcs.client()
        for storage in storages:
            prefix = (storage.prefix or "").strip("/")
            key = f"{prefix}/{annotation_id}" if prefix else str(annotation_id)
            blob = store.bucket(storage.bucket).blob(key)
            if blob.exists():
                blob.delete()
    except Exception as exc:  # no bucket access here: the copy stays (a skipped annotation, which counts nowhere)
        log.warning("skip %s left in the target storage of project %s (%s)", annotation_id, project_id,
                    type(exc).__name__)


def view_task_ids(client, project_id: int, view_id: int) -> list[int]:
    with ls.api_errors(f"tasks of view {view_id}", client.settings.url):
        return [t.id for t in client.tasks.list(project=project_id, view=view_id, fields="task_only")]
