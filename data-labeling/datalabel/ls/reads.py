"""A project's tasks read from Label Studio: paged JSON, the streamed whole-project export joined with the
project's predictions, task counts."""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import tempfile
from typing import Callable, Iterator

import msgspec

from ..errors import NotFound, ServerError
from ..tasks import Prediction, Task, iter_tasks
from ..adapters.ls_sdk import raw_http
from .client import api_errors, json_or_text


def iter_task_json(client, project_id: int, page_size: int = 500, fields: str = "all",
                   filters: dict | None = None, resolve_uri: bool = True, include: str | None = None
                   ) -> Iterator[dict]:
    """Every task of a project as Label Studio JSON, page by page: with annotations and predictions
    (`fields="all"`) or without ("task_only"); only those matching Data Manager `filters` if given; media URLs
    as stored (gs://...) without `resolve_uri`. `include` names the only keys the server sends ("id,data,meta"):
    the Data Manager's other columns cost it a few ms per task (1,797 tasks: 1.1 s instead of 3.9 s)."""
    from label_studio_sdk.core.api_error import ApiError

    query = json.dumps({"filters": filters}) if filters else None
    with api_errors(f"tasks of project {project_id}", client.settings.url):
        seen = 0
        for page in itertools.count(1):
            # page by page here: the SDK's pager asks for one page more than there is, to find it empty; the
            # list's total says when the last one came (a server may serve pages smaller than asked for)
            try:
                listed = client.tasks.list(project=project_id, fields=fields, page=page, page_size=page_size,
                                           resolve_uri=resolve_uri, query=query, include=include)
            except ApiError as exc:
                if exc.status_code == 404 and page > 1:  # past the last page
                    return
                raise
            items = listed.items or []
            for task in items:
                yield task.model_dump(mode="json", exclude_none=True)
            seen += len(items)
            total = getattr(listed.response, "total", None)
            if not items or (isinstance(total, int) and seen >= total):
                return


def project_tasks(client, project_id: int, progress: Callable[[int], None] | None = None,
                  timeout: float = 3600.0, predictions: bool = True) -> Iterator[Task]:
    """Every task of a project with its annotations (skipped ones too) and predictions (without `predictions`:
    none, and no request for them), as the task model.

    Two requests, the fastest whole-project read Label Studio offers (its paged task list costs it several times
    more per task): its own JSON export (tasks and annotations; predictions by id only) streamed into a private
    temporary file, bounded memory here, `progress` hearing the bytes; and the project's predictions, joined to
    their tasks as the export is parsed back.
    """
    options = {"timeout_in_seconds": int(timeout)}
    with tempfile.TemporaryFile() as fp:
        with api_errors(f"export project {project_id}", client.settings.url):
            for chunk in client.projects.exports.download_sync(id=project_id, export_type="JSON",
                                                               download_all_tasks=True, request_options=options):
                fp.write(chunk)
                if progress:
                    progress(len(chunk))
        by_task = project_predictions(client, project_id, timeout) if predictions else {}
        fp.seek(0)
        for task in iter_tasks(io.TextIOWrapper(fp, encoding="utf-8")):
            task.predictions = by_task.pop(task.id, [])
            yield task


class _ListedPrediction(Prediction, gc=False):
    """A prediction as Label Studio's list gives it: with the id of its task."""
    task: int | None = None


def project_predictions(client, project_id: int, timeout: float = 3600.0) -> dict[int, list[Prediction]]:
    """Every prediction of a project, by task id: one request (Label Studio lists a project's predictions whole).

    The body is gathered once and decoded straight into the task model. The SDK's list would hold the body, its
    JSON and a pydantic object per prediction at once: at 100,000 predictions ~300 MB more and ~12 s of CPU
    (benchmarks/bench_predictions.py).
    """
    from label_studio_sdk.core.api_error import ApiError

    options = {"timeout_in_seconds": int(timeout)}
    body = bytearray()  # msgspec decodes a bytearray in place: the body is held once
    with api_errors(f"list predictions of project {project_id}", client.settings.url):
        with raw_http(client).stream("api/predictions/", method="GET", params={"project": project_id},
                                     request_options=options) as resp:
            if resp.status_code >= 300:
                resp.read()
                raise ApiError(status_code=resp.status_code, headers=dict(resp.headers), body=json_or_text(resp))
            for chunk in resp.iter_bytes():
                body += chunk
    listed = decode_predictions(body)
    by_task: dict[int, list[Prediction]] = {}
    for p in listed:  # plain predictions: the same model whichever way a task was read
        by_task.setdefault(p.task, []).append(Prediction(p.result, p.model_version, p.score, p.id))
    return by_task


def decode_predictions(body: bytes | bytearray) -> list[_ListedPrediction]:
    """Label Studio's prediction list (JSON bytes) as task-model predictions, each with its `task` id."""
    try:
        return msgspec.json.decode(body, type=list[_ListedPrediction])
    except msgspec.DecodeError as exc:
        raise ServerError(f"Label Studio sent a prediction list that is not one: {exc}") from None


def count_tasks(client, project_id: int, filters: dict | None = None) -> int:
    """How many tasks of a project match Data Manager `filters` (all tasks without): one small request."""
    query = json.dumps({"filters": filters}) if filters else None
    with api_errors(f"count tasks of project {project_id}", client.settings.url):
        # the first page of a one-task listing carries the total (the pager's response)
        page = client.tasks.list(project=project_id, page_size=1, fields="task_only", query=query)
    total = getattr(page.response, "total", None)
    if not isinstance(total, int) or total < 0:
        raise ServerError(f"count tasks of project {project_id}: the server sent no task count")
    return total


def remove_twin_imports(client, project_id: int) -> list[int]:
    """Tasks imported twice from one storage object (two syncs of one storage at once on SQLite: Label Studio
    imports the objects both saw): every copy but the lowest id is deleted, unless it was annotated. Returns the
    ids deleted."""
    seen: dict[str, int] = {}
    twins = []
    for task in sorted(iter_task_json(client, project_id, fields="all", resolve_uri=False,
                                      include="id,data,annotations"), key=lambda t: t.get("id") or 0):
        key = json.dumps(task.get("data"), sort_keys=True)
        if key in seen and not task.get("annotations"):
            twins.append(task["id"])
        seen.setdefault(key, task["id"])
    for task_id in twins:
        with contextlib.suppress(NotFound), api_errors(f"delete task {task_id}", client.settings.url):
            client.tasks.delete(id=task_id)  # the other setup may have deleted it first
    return twins
