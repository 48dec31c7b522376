"""The review of likely mislabeled tasks in Label Studio: a Data Manager tab in rank order, and a labeling queue
that serves them with "Label All Tasks".

"Label All Tasks" (open-source Label Studio 1.23, projects/functions/next_task.py) serves from the whole project,
not the tab, and only tasks that are not done (`is_labeled` false) and that the user has not labeled. In order:
a task the user holds locked; with overlap above 1, a random one among those with the most annotations by others
(breadth first); then the project's sampling, which for "Uncertainty sampling" is the lowest prediction score of
the project's model version. So a review here:
  1. reopens each suspect for one more annotation, the reviewer's (its overlap is raised by one and it is no longer
     done; the original overlap is kept in the tab's data and restored when a later run drops the task),
  2. gives each suspect a prediction of the version REVIEW_VERSION: the suggested class, pre-filled in the editor,
     whose score rises with the rank (rank 1 has the lowest), and makes it the project's model version with
     uncertainty sampling, so the queue serves the suspects in rank order where breadth first does not step in,
  3. writes the tab "Review: likely mislabeled" (ordered by that score: rank order),
  4. holds the first suspect the reviewer (the token's user) has not labeled: Label Studio serves it and locks it
     for them, so their "Label All Tasks" serves it first whatever the project's overlap; the queue is then asked
     what it serves first, and the answer is reported.
`datalabel al preannotate` gives the queue back to the active-learning model.
"""
from __future__ import annotations

from typing import Sequence

from .. import ls
from ..active.predictions import import_predictions
from ..active.project import Target, save_view, use_for_sampling
from ..errors import ConfigError, ServerError
from ..tasks import Task
from .consensus import latest_per_annotator
from .mislabels import Suspect

REVIEW_VIEW = "Review: likely mislabeled"
REVIEW_VERSION = "mislabel-review"
DATA_KEY = "datalabel_review"  # the tab's data: what the review changed (original overlaps) and its ranking


# --- Label Studio calls that the SDK does not return the answer of ------------------------------------------------


def _served(what: str, resp) -> dict | None:
    if resp.status_code == 404:  # Label Studio: "There are no tasks for <user>"
        return None
    if resp.status_code in (401, 403):
        raise ConfigError(f"{what}: Label Studio refused the API token (HTTP {resp.status_code})")
    if resp.status_code >= 300:
        raise ServerError(f"{what}: HTTP {resp.status_code}: {' '.join(resp.text.split())[:300]}")
    body = resp.json()
    return {"id": body.get("id"), "queue": body.get("queue", "")}


def _request(client, what: str, path: str, **kwargs):
    import httpx

    try:
        return ls.raw_http(client).request(path, **kwargs)
    except httpx.TransportError as exc:
        raise ServerError(f"{what}: cannot reach Label Studio at {client.settings.url} "
                          f"({type(exc).__name__})") from None


def hold_task(client, project_id: int, task_id: int) -> dict | None:
    """Ask for the next task among just this one, as the Data Manager does for a selection: Label Studio serves it
    to the token's user and locks it for them (TASK_LOCK_TTL, a day by default), so their "Label All Tasks" serves
    it first. None if it will not serve it to them (they labeled it, or it is done)."""
    what = f"hold task {task_id} for the reviewer"
    return _served(what, _request(client, what, "api/dm/actions/", method="POST",
                                  params={"id": "next_task", "project": project_id},
                                  json={"selectedItems": {"all": False, "included": [int(task_id)]}}))


def next_task(client, project_id: int) -> dict | None:
    """What "Label All Tasks" serves the token's user now, and why (`queue`); like the button, it locks it."""
    what = f"next task of project {project_id}"
    return _served(what, _request(client, what, f"api/projects/{project_id}/next/", method="GET"))


def task_states(client, project_id: int, task_ids: Sequence[int]) -> dict[int, dict]:
    """id -> {overlap, is_labeled}: how many annotations Label Studio wants of a task, and whether it is done."""
    if not task_ids:
        return {}
    ids = {"conjunction": "or", "items": [{"filter": "filter:tasks:id", "operator": "equal", "type": "Number",
                                           "value": int(i)} for i in task_ids]}
    return {t["id"]: {"overlap": int(t.get("overlap") or 1), "is_labeled": bool(t.get("is_labeled"))}
            for t in ls.iter_task_json(client, project_id, fields="task_only", filters=ids, resolve_uri=False,
                                       include="id,overlap,is_labeled")}


def set_overlap(client, task_id: int, overlap: int, done: bool) -> None:
    """Label Studio does not recount `is_labeled` when a task's overlap changes: both are set."""
    with ls.api_errors(f"set the overlap of task {task_id}", client.settings.url):
        client.tasks.update(id=str(task_id), overlap=int(overlap), is_labeled=bool(done))


def last_review(client, project_id: int) -> dict:
    """What the last review wrote into its tab's data ({} if there was none)."""
    with ls.api_errors(f"views of project {project_id}", client.settings.url):
        for view in client.views.list(project=project_id):
            data = view.data if isinstance(view.data, dict) else {}
            if data.get("title") == REVIEW_VIEW and isinstance(data.get(DATA_KEY), dict):
                return data[DATA_KEY]
    return {}


# --- the review ----------------------------------------------------------------------------------------------


def review_prediction(suspect: Suspect, target: Target, score: float) -> dict:
    region = {"type": "choices", "from_name": target.from_name, "to_name": target.to_name,
              "value": {"choices": [suspect.suggested]}, "score": suspect.suggested_probability}
    return {"task": suspect.task_id, "result": [region], "score": score, "model_version": REVIEW_VERSION}


def queue_scores(suspects: Sequence[Suspect]) -> list[float]:
    """Each suspect's label quality, nudged to rise strictly with the rank: Label Studio serves the lowest first,
    and equal scores would come in any order."""
    out: list[float] = []
    for s in suspects:
        score = round(s.score, 6)
        if out and score <= out[-1]:
            score = round(out[-1] + 1e-6, 6)
        out.append(score)
    return out


def write_review(client, project_id: int, suspects: Sequence[Suspect], tasks: dict[int, Task],
                 target: Target) -> dict:
    """Reopen the suspects for the reviewer, queue them in rank order, write the tab, hold rank 1 (module doc)."""
    if not suspects:
        raise ConfigError("no suspect to review")
    ids = [s.task_id for s in suspects]
    previous = last_review(client, project_id)
    reopened = {int(k): int(v) for k, v in (previous.get("reopened") or {}).items()}
    annotators = {tid: len(latest_per_annotator(tasks[tid])) if tid in tasks else 0 for tid in set(ids) | set(reopened)}
    states = task_states(client, project_id, sorted(set(ids) | set(reopened)))
    # tasks of the last review that are no longer suspects and not reviewed yet: their overlap as it was
    restored = 0
    for tid, overlap in sorted(reopened.items()):
        state = states.get(tid)
        if tid in ids or state is None:
            continue
        if not state["is_labeled"]:
            set_overlap(client, tid, overlap, annotators[tid] >= overlap)
            restored += 1
        del reopened[tid]
    opened = 0
    for tid in ids:
        state = states.get(tid)
        if state is None or not state["is_labeled"] or tid in reopened:
            continue  # Label Studio serves it already (not done), or the last review reopened it
        reopened[tid] = state["overlap"]
        set_overlap(client, tid, annotators[tid] + 1, False)
        opened += 1
    old = [p.id for t in tasks.values() for p in t.predictions if p.model_version == REVIEW_VERSION and p.id]
    for pid in old:
        with ls.api_errors(f"delete review prediction {pid}", client.settings.url):
            client.predictions.delete(id=int(pid))
    scores = queue_scores(suspects)
    import_predictions(client, project_id, [review_prediction(s, target, q) for s, q in zip(suspects, scores)])
    use_for_sampling(client, project_id, REVIEW_VERSION)
    view = save_view(client, project_id, REVIEW_VIEW, ids, extra={
        DATA_KEY: {"reopened": {str(k): v for k, v in sorted(reopened.items())}, "ranked": ids}})
    me = ls.whoami(client)
    mine = {tid for tid in ids if str(me["id"]) in latest_per_annotator(tasks[tid])}
    first = next((tid for tid in ids if tid not in mine), None)
    held = hold_task(client, project_id, first) if first is not None else None
    served = next_task(client, project_id)
    return {"view": view, "reopened": opened, "restored": restored, "reviewer": me["email"],
            "first": first, "held": bool(held and held["id"] == first),
            "served_first": served["id"] if served else None, "queue": served["queue"] if served else "",
            "yours": sorted(mine)}
