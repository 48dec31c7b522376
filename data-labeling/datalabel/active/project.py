"""What the loop reads from and writes to a project in Label Studio: its tasks, the classification control
predictions go to, the labeling queue (sampling and model version) and the Data Manager views."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from .. import ls
from ..errors import ConfigError, LabError
from ..labelconfig import parse_config
from ..tasks import Task


DEFAULT_VIEW = "Active learning: label next"
UNCERTAINTY_SAMPLING = "Uncertainty sampling"  # Label Studio's project setting: lowest prediction score first

def load_tasks(client, project_id: int, progress: Callable[[int], None] | None = None) -> list[Task]:
    """Every task of the project with annotations and predictions, in one whole-project read."""
    return list(ls.project_tasks(client, project_id, progress))


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


def project_model_version(client, project_id: int) -> str:
    return str(getattr(ls.get_project(client, project_id), "model_version", "") or "")


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


def view_task_ids(client, project_id: int, view_id: int) -> list[int]:
    with ls.api_errors(f"tasks of view {view_id}", client.settings.url):
        return [t.id for t in client.tasks.list(project=project_id, view=view_id, fields="task_only")]
