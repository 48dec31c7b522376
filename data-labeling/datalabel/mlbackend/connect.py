"""The project side: attach a running backend to a Label Studio project with its basic-auth pair, and line the
project up with it (training on submission, predictions of its version for the queue, no stale task lock).

`connect` first waits for the backend to answer (so `al serve &` then `al connect` works on the first try) and
checks the pair itself, so a failure is said in one whole sentence naming its cause, not in Label Studio's cut one.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from .. import active, ls
from ..config import check_url
from ..errors import ConfigError, LabError, ServerError
from .auth import Credentials

WAIT_SECONDS = 30.0


def _get(url: str, credentials: Credentials | None, timeout: float) -> tuple[int, dict]:
    headers = {"Authorization": credentials.header()} if credentials else {}
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the backend is ours: no proxy
    try:
        with opener.open(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def wait_for_backend(url: str, credentials: Credentials, seconds: float = WAIT_SECONDS) -> dict:
    """The backend's /health once it answers (it warms up before listening), after checking that it takes
    `credentials`; ServerError / ConfigError with the cause otherwise."""
    def health_check() -> tuple[dict | None, str]:
        """(the health, "") once it answers 200, else (None, what went wrong)."""
        try:
            status, body = _get(url + "/health", None, 5.0)
        except (OSError, ValueError) as exc:
            return None, type(exc).__name__ if not isinstance(exc, urllib.error.URLError) else str(exc.reason)
        return (body, "") if status == 200 else (None, f"HTTP {status}")

    health, last = Retrying(retry=retry_if_result(lambda answer: answer[0] is None),
                            stop=stop_after_delay(seconds), wait=wait_fixed(0.5),
                            retry_error_callback=lambda state: state.outcome.result())(health_check)
    if health is None:
        raise ServerError(f"no ML backend answers at {url}/health within {seconds:g} s ({last}); start it with "
                          "`datalabel al serve` and pass the URL it prints as --backend")
    status, _ = _get(url + "/versions", credentials, 10.0)
    if status == 401:
        raise ConfigError(f"the ML backend at {url} refused this user and password: it was started with another "
                          "pair (it reads DATALABEL_ML_BACKEND_USER/_PASSWORD, else secrets/ml_backend_user and "
                          "secrets/ml_backend_password); run `al connect` with the same settings as `al serve`")
    if status != 200:
        raise ServerError(f"the ML backend at {url} answered HTTP {status} to /versions; see its log")
    return health


def _registration_error(exc, url: str) -> LabError:
    """Label Studio's refusal to register the backend, whole, with what it means here."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        detail = body.get("validation_errors") or body.get("detail") or body
    else:
        detail = body
    text = " ".join(str(detail if not isinstance(detail, (dict, list)) else json.dumps(detail)).split())
    if "authentication parameters" in text:
        return ConfigError(f"Label Studio reached the ML backend at {url}, which refused the user and password "
                           "it was given; restart `al serve` and `al connect` with the same settings")
    if "health check failed" in text or "Can't connect" in text:
        return ServerError(f"Label Studio cannot reach the ML backend at {url}, though it answers here: Label "
                           "Studio must reach that address (the embedded stack allows loopback; on a Compose "
                           "network use the backend's service address and LS_ML_BLOCK_LOCAL_IP=false). "
                           f"Label Studio said: {text}")
    return ServerError(f"Label Studio refused to register the ML backend at {url} "
                       f"(HTTP {getattr(exc, 'status_code', '?')}): {text}")


def _register(client, project_id: int, url: str, title: str, credentials: Credentials):
    """The backend registered (or updated) in the project with its pair: (ML backend, created?)."""
    from label_studio_sdk.core.api_error import ApiError

    auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": credentials.user,
            "basic_auth_pass": credentials.password}
    with ls.api_errors(f"ML backends of project {project_id}", client.settings.url):
        existing = [m for m in client.ml.list(project=project_id) if (m.url or "").rstrip("/") == url]
    with ls.api_errors(f"connect ML backend {url}", client.settings.url):
        try:
            if existing:
                return client.ml.update(id=existing[0].id, url=url, title=title, project=project_id, **auth), False
            return client.ml.create(project=project_id, url=url, title=title, is_interactive=False,
                                    auto_update=True, **auth), True
        except ApiError as exc:
            if exc.status_code in (401, 403, 404):
                raise  # the token or the project: api_errors words those
            raise _registration_error(exc, url) from None


def _webhook(client, project_id: int, url: str, credentials: Credentials) -> bool:
    """The retrain webhook Label Studio made for the backend, carrying the basic-auth header (Label Studio sends
    its ML backends' pair on its own calls, not on webhooks); made if missing."""
    target = url + "/webhook"
    headers = {"Authorization": credentials.header()}
    with ls.api_errors(f"webhooks of project {project_id}", client.settings.url):
        hooks = [h for h in client.webhooks.list(project=str(project_id)) if (h.url or "").rstrip("/") == target]
        if hooks:
            for hook in hooks:
                client.webhooks.update(id=hook.id, url=target, headers=headers, send_payload=True,
                                       send_for_all_actions=True, is_active=True)
        else:
            client.webhooks.create(project=project_id, url=target, headers=headers, send_payload=True,
                                   send_for_all_actions=True, is_active=True)
    return True


def connect(client, project_id: int, url: str, credentials: Credentials, title: str = "datalabel-logreg",
            split: str = "train", wait: float = WAIT_SECONDS) -> dict:
    """Attach the backend at `url` to a project with its basic-auth pair (reused if already attached) and line
    the project up with it: training on annotation submission on (the webhook's retrains follow that setting),
    predictions of the backend's current version for the unlabeled tasks of `split` (asked of the backend through
    Label Studio, in one batch), that version as the project's model version with uncertainty sampling, and the
    token user's stale task locks released, so "Label All Tasks" serves the least certain task first."""
    url = check_url(url, "--backend").rstrip("/")
    active.check_split(split)
    ls.get_project(client, project_id)
    wait_for_backend(url, credentials, wait)
    backend, created = _register(client, project_id, url, title, credentials)
    with ls.api_errors(f"settings of project {project_id}", client.settings.url):
        # no automatic predictions when the Data Manager lists tasks: the pool is predicted in bulk here and after
        # each retrain (valid/test tasks that are opened get none from the backend either)
        client.projects.update(id=project_id, evaluate_predictions_automatically=False,
                               show_collab_predictions=True, min_annotations_to_start_training=1)
    hook = _webhook(client, project_id, url, credentials)
    state = str(getattr(backend, "state", "") or "")
    version = str(getattr(backend, "model_version", "") or "")
    sampling, fetched = None, 0
    if version and version != "untrained":
        fetched, sampling = align(client, project_id, version, split)
    released = active.release_locks(client, project_id)
    return {"id": backend.id, "url": url, "created": created, "state": state, "model_version": version or None,
            "webhook": hook, "auth": "basic", "train_on_submit": True, "predicted": fetched, "sampling": sampling,
            "locks_released": len(released)}


def align(client, project_id: int, version: str, split: str = "train") -> tuple[int, dict | None]:
    """Predictions of `version` for the unlabeled tasks of `split` that lack one (Label Studio asks the backend),
    then `version` as the project's queue. Returns (tasks asked for, the queue setting)."""
    tasks = [t for t in active.load_tasks(client, project_id) if not t.is_labeled and active.in_split(t, split)]
    missing = [t.id for t in tasks if active.latest_prediction(t, version) is None]
    if missing:
        retrieve_predictions(client, project_id, missing)
    have = [t for t in active.load_tasks_by_id(client, missing[:1])] if missing else tasks
    if not any(active.latest_prediction(t, version) for t in have):
        return len(missing), None  # the backend returned nothing: leave the project's queue as it was
    return len(missing), active.use_for_sampling(client, project_id, version)


def retrieve_predictions(client, project_id: int, task_ids: list[int] | None = None) -> None:
    """Ask Label Studio to fetch predictions from the connected backend (the Data Manager's "Retrieve
    Predictions" action) for some tasks, or all of them."""
    selected = {"all": True, "excluded": []} if task_ids is None else {"all": False, "included": list(task_ids)}
    with ls.api_errors(f"retrieve predictions for project {project_id}", client.settings.url):
        client.actions.create(id="retrieve_tasks_predictions", project=project_id, selected_items=selected)
