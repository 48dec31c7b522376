"""Label Studio API: the one module that talks to the server, through label-studio-sdk's generated client.

Names follow the SDK's resources (projects, import_storage, export_storage, predictions) so a reader who knows
Label Studio knows where to look. Every SDK/HTTP failure is turned into a LabError with one actionable line.

Longer than 400 lines: it is the one place that talks to Label Studio (client, projects, storages, the streamed
whole-project reads, lifecycle helpers); splitting it would put the server's API in several places.
"""
from __future__ import annotations

import contextlib
import io
import json
import tempfile
from typing import Callable, Iterator

import msgspec

from .config import Settings, load_credentials
from .errors import ConfigError, LabError, NotFound, ServerError
from .gcs import norm_prefix
from .labelconfig import parse_config
from .tasks import Prediction, Task, iter_tasks


@contextlib.contextmanager
def api_errors(what: str, url: str = "") -> Iterator[None]:
    """Map SDK / transport errors to one-line LabErrors."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except ApiError as exc:
        code = exc.status_code
        if code == 401 and "expired" in str(exc.body).lower():
            raise ConfigError(f"{what}: Label Studio says the API token has expired; copy a new one (Account & "
                              "Settings > Access Token) into LABEL_STUDIO_API_KEY") from None
        if code in (401, 403):
            raise ConfigError(f"{what}: Label Studio refused the API token (HTTP {code}); check LABEL_STUDIO_API_KEY") from None
        if code == 404:
            raise NotFound(f"{what}: not found (HTTP 404)") from None
        detail = exc.body
        if isinstance(detail, dict):
            detail = detail.get("validation_errors") or detail.get("detail") or detail
        text = " ".join(json.dumps(detail).split()) if not isinstance(detail, str) else detail
        raise ServerError(f"{what}: HTTP {code}: {text[:300]}") from None
    except httpx.TransportError as exc:
        where = f" at {url}" if url else ""
        raise ServerError(f"{what}: cannot reach Label Studio{where} ({type(exc).__name__}); is the server running?") from None


_CLIENT_CLASS = None


def _client_class():
    """The SDK's client that also carries the Settings it was made from (commands need the URL and bucket later).
    Made on first use: importing the SDK takes ~1 s, which `--help` and offline commands skip.

    It is the SDK's generated `LabelStudioBase` with the two list fixes of its `LabelStudio` (a 404 past the last
    page ends a listing), not `LabelStudio` itself: that one's project extension imports the label-interface
    helpers and with them pandas, boto3, azure and faker, 150 MB of memory in every command for nothing used here
    (190 MB against 40 MB resident after the import).
    """
    global _CLIENT_CLASS
    if _CLIENT_CLASS is None:
        from label_studio_sdk._extensions.pager_ext import SyncPagerExt
        from label_studio_sdk.base_client import LabelStudioBase
        from label_studio_sdk.projects.client import ProjectsClient
        from label_studio_sdk.tasks.client_ext import TasksClientExt

        class Projects(ProjectsClient):
            def list(self, **kwargs):
                return SyncPagerExt.from_sync_pager(super().list(**kwargs))

        class Client(LabelStudioBase):
            def __init__(self, settings: Settings, **kwargs):
                super().__init__(base_url=settings.url, api_key=settings.require_api_key(), **kwargs)
                self.settings = settings
                self._tasks_ext = TasksClientExt(client_wrapper=self._client_wrapper)
                self._projects_ext = Projects(client_wrapper=self._client_wrapper)

            @property
            def tasks(self):
                return self._tasks_ext

            @property
            def projects(self):
                return self._projects_ext

        _CLIENT_CLASS = Client
    return _CLIENT_CLASS


def connect(settings: Settings | None = None, check: bool = True):
    """An SDK client for the configured server; with `check`, fail now if the server or token is wrong."""
    settings = settings or Settings.load()
    settings.require_url()
    with api_errors("connect", settings.url):  # a JWT token is exchanged for an access token at once
        client = _client_class()(settings, timeout=120)
    if check:
        whoami(client)
    return client


def raw_http(client):
    """The SDK's own HTTP client (same auth, base URL, timeouts) for the endpoint the SDK does not wrap
    (project-less label-config validation) and the one read it cannot stream (the prediction list). Reached
    through a private attribute: here only."""
    return client._client_wrapper.httpx_client


def whoami(client) -> dict:
    with api_errors("connect", client.settings.url):
        # one retry only: a server that is down should say so in a second, not after the SDK's backoff
        user = client.users.whoami(request_options={"max_retries": 1})
    return {"id": user.id, "email": user.email, "username": user.username}


# --- projects -------------------------------------------------------------------------------------------------


def get_project(client, project_id: int):
    try:
        with api_errors(f"project {project_id}", client.settings.url):
            return client.projects.get(id=project_id)
    except NotFound:
        raise NotFound(f"project {project_id} does not exist (see `datalabel projects list`)") from None


def project_config(client, project_id: int):
    """The project's label config, parsed (labelconfig.LabelConfig)."""
    return parse_config(get_project(client, project_id).label_config)


def list_projects(client) -> list:
    with api_errors("list projects", client.settings.url):
        return list(client.projects.list())


def find_project(client, title: str):
    return next((p for p in list_projects(client) if p.title == title), None)


def ensure_project(client, title: str, label_config: str, description: str = ""):
    """The project with this title, created with `label_config` if it does not exist yet. Returns (project, created)."""
    found = find_project(client, title)
    if found is not None:
        return found, False
    with api_errors(f"create project {title!r}", client.settings.url):
        made = client.projects.create(title=title, label_config=label_config, description=description)
    same = [p for p in list_projects(client) if p.title == title]
    return _settle(made, same, lambda: delete_project(client, made.id))


def _settle(made, same: list, remove):
    """Two identical commands at the same moment each create one: both settle on the lowest id, and the one that
    made another removes it. Returns (the kept one, whether this call made it)."""
    first = min(same + [made], key=lambda x: x.id)
    if first.id == made.id:
        return made, True
    remove()
    return first, False


# --- storages -------------------------------------------------------------------------------------------------


def _credentials_text(credentials_file: str | None) -> str | None:
    content = load_credentials(credentials_file)
    return json.dumps(content) if content is not None else None


def same_place(storage, bucket: str, prefix: str) -> bool:
    return storage.bucket == bucket and norm_prefix(storage.prefix or "") == norm_prefix(prefix)


def list_storages(client, project_id: int, kind: str = "source") -> list:
    resource = client.import_storage.gcs if kind == "source" else client.export_storage.gcs
    with api_errors(f"list {kind} storages of project {project_id}", client.settings.url):
        return list(resource.list(project=project_id))


def ensure_source_storage(client, project_id: int, bucket: str, prefix: str, regex: str = r".*",
                          use_blob_urls: bool = True, credentials_file: str | None = None, title: str | None = None,
                          recursive: bool = True):
    """A GCS import storage for bucket+prefix; reuses an existing one instead of adding a duplicate.

    Returns (storage, created). `recursive` imports files in sub-folders too (upload_folder keeps them).
    presign is off: Label Studio proxies the bytes itself, which works with the emulator and with keys that
    cannot sign URLs.
    """
    credentials = _credentials_text(credentials_file)  # checked before any call
    for storage in list_storages(client, project_id, "source"):
        if same_place(storage, bucket, prefix):
            return storage, False
    # Label Studio joins prefix and key with "/" itself
    kwargs = dict(project=project_id, bucket=bucket, prefix=prefix.strip("/"), regex_filter=regex,
                  use_blob_urls=use_blob_urls, presign=False, recursive_scan=recursive,
                  title=title or f"source gs://{bucket}/{norm_prefix(prefix)}")
    if credentials:
        kwargs["google_application_credentials"] = credentials
    with api_errors(f"add source storage gs://{bucket}/{prefix}", client.settings.url):
        made = client.import_storage.gcs.create(**kwargs)
    same = [st for st in list_storages(client, project_id, "source") if same_place(st, bucket, prefix)]
    return _settle(made, same, lambda: remove_storage(client, made.id, "source"))


# Label Studio without a job queue (no Redis: the embedded stack, the Compose stack) syncs a storage inside the
# request, also the sync it starts when a target storage is added: on a big project that takes minutes, far past
# the usual request timeout, and a client that gives up early reports a failure while the server goes on.
SYNC_OPTIONS = {"timeout_in_seconds": 3 * 3600}


def ensure_target_storage(client, project_id: int, bucket: str, prefix: str, credentials_file: str | None = None,
                          title: str | None = None):
    """A GCS export storage for bucket+prefix, reused if it exists. Returns (storage, created)."""
    credentials = _credentials_text(credentials_file)
    for storage in list_storages(client, project_id, "target"):
        if same_place(storage, bucket, prefix):
            return storage, False
    kwargs = dict(project=project_id, bucket=bucket, prefix=prefix.strip("/"),
                  title=title or f"target gs://{bucket}/{norm_prefix(prefix)}")
    if credentials:
        kwargs["google_application_credentials"] = credentials
    with api_errors(f"add target storage gs://{bucket}/{prefix}", client.settings.url):
        made = client.export_storage.gcs.create(**kwargs, request_options=SYNC_OPTIONS)
    same = [st for st in list_storages(client, project_id, "target") if same_place(st, bucket, prefix)]
    return _settle(made, same, lambda: remove_storage(client, made.id, "target"))


def sync_storage(client, storage_id: int, kind: str = "source"):
    """Sync one storage: source imports new files as tasks, target writes annotations to the bucket."""
    resource = client.import_storage.gcs if kind == "source" else client.export_storage.gcs
    with api_errors(f"sync {kind} storage {storage_id}", client.settings.url):
        return resource.sync(id=storage_id, request_options=SYNC_OPTIONS)


def wait_storage(client, storage_id: int, kind: str = "source", timeout: float = 300.0):
    """Wait until a storage's sync job has finished (status completed or failed)."""
    import time

    resource = client.import_storage.gcs if kind == "source" else client.export_storage.gcs
    deadline = time.monotonic() + timeout
    while True:
        with api_errors(f"{kind} storage {storage_id}", client.settings.url):
            storage = resource.get(id=storage_id)
        status = str(getattr(storage, "status", "") or "")
        if status.endswith("failed"):
            # Label Studio keeps the worker's whole traceback: its last line says what went wrong
            lines = [ln.strip() for ln in str(storage.traceback or "").splitlines() if ln.strip()]
            raise ServerError(f"{kind} storage {storage_id} sync failed in Label Studio: "
                              f"{(lines[-1] if lines else status)[:300]}")
        if status.endswith("completed") or status == "" or status == "None":
            return storage
        if time.monotonic() > deadline:
            raise ServerError(f"{kind} storage {storage_id} sync still {status} after {timeout:.0f}s")
        time.sleep(0.5)


# --- tasks ----------------------------------------------------------------------------------------------------


def iter_task_json(client, project_id: int, page_size: int = 500, fields: str = "all",
                   filters: dict | None = None, resolve_uri: bool = True, include: str | None = None
                   ) -> Iterator[dict]:
    """Every task of a project as Label Studio JSON, page by page: with annotations and predictions
    (`fields="all"`) or without ("task_only"); only those matching Data Manager `filters` if given; media URLs
    as stored (gs://...) without `resolve_uri`. `include` names the only keys the server sends ("id,data,meta"):
    the Data Manager's other columns cost it a few ms per task (1,797 tasks: 1.1 s instead of 3.9 s)."""
    query = {"filters": filters} if filters else None
    with api_errors(f"tasks of project {project_id}", client.settings.url):
        for task in client.tasks.list(project=project_id, fields=fields, page_size=page_size, resolve_uri=resolve_uri,
                                      query=json.dumps(query) if query else None, include=include):
            yield task.model_dump(mode="json", exclude_none=True)


def project_tasks(client, project_id: int, progress: Callable[[int], None] | None = None,
                  timeout: float = 3600.0) -> Iterator[Task]:
    """Every task of a project with its annotations (skipped ones too) and predictions, as the task model.

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
        by_task = project_predictions(client, project_id, timeout)
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
                raise ApiError(status_code=resp.status_code, headers=dict(resp.headers), body=_json_or_text(resp))
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


def _json_or_text(resp):
    try:
        return resp.json()
    except ValueError:
        return resp.text


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


# --- lifecycle helpers: delete, validate, storage lookup and removal ------------------------------------------


def delete_project(client, project_id: int) -> None:
    get_project(client, project_id)  # a clear "does not exist" first
    with api_errors(f"delete project {project_id}", client.settings.url):
        client.projects.delete(id=project_id)


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


def validate_label_config(client, label_config: str) -> None:
    """Ask the server whether it accepts a label config, without creating anything.

    The SDK only wraps the per-project check, so this posts to the project-less endpoint through the SDK's own
    HTTP client (same auth, base URL and timeouts).
    """
    import httpx

    http = raw_http(client)
    try:
        resp = http.request("api/projects/validate/", method="POST", json={"label_config": label_config})
    except httpx.TransportError as exc:
        raise ServerError(f"validate label config: cannot reach Label Studio at {client.settings.url} "
                          f"({type(exc).__name__}); is the server running?") from None
    if resp.status_code in (200, 201, 204):
        return
    if resp.status_code in (401, 403):
        raise ConfigError(f"validate label config: Label Studio refused the API token (HTTP {resp.status_code}); "
                          "check LABEL_STUDIO_API_KEY")
    try:
        body = resp.json()
        problems = body.get("label_config") or body.get("validation_errors") or body
        if isinstance(problems, dict):
            problems = problems.get("label_config") or problems
        text = "; ".join(map(str, problems)) if isinstance(problems, list) else str(problems)
    except ValueError:
        text = resp.text
    raise ConfigError(f"invalid label config: Label Studio says: {' '.join(text.split())[:300]}")


def _storage_resource(client, kind: str):
    if kind not in ("source", "target"):
        raise ConfigError(f"unknown storage kind {kind!r}; choose source or target")
    return client.import_storage.gcs if kind == "source" else client.export_storage.gcs


def get_storage(client, storage_id: int, kind: str = "source"):
    try:
        with api_errors(f"{kind} storage {storage_id}", client.settings.url):
            return _storage_resource(client, kind).get(id=storage_id)
    except NotFound:
        raise NotFound(f"{kind} storage {storage_id} does not exist (see `datalabel storage list PROJECT`)") from None


def remove_storage(client, storage_id: int, kind: str = "source") -> None:
    """Disconnect a storage from its project; the bucket's files and the imported tasks stay."""
    get_storage(client, storage_id, kind)
    with api_errors(f"remove {kind} storage {storage_id}", client.settings.url):
        _storage_resource(client, kind).delete(id=storage_id)


def user_emails(client) -> dict[str, str]:
    """User id (as text, the way tasks.Annotation.completed_by holds it) -> email."""
    with api_errors("list users", client.settings.url):
        return {str(u.id): u.email or u.username or str(u.id) for u in client.users.list()}
