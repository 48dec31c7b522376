"""The connection to Label Studio: the SDK's client, the check that server and token work, and SDK/HTTP failures
as LabErrors with one actionable line."""
from __future__ import annotations

import contextlib
import json
from typing import Iterator

from ..config import Settings
from ..errors import ConfigError, NotFound, ServerError


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


def user_emails(client) -> dict[str, str]:
    """User id (as text, the way tasks.Annotation.completed_by holds it) -> email."""
    with api_errors("list users", client.settings.url):
        return {str(u.id): u.email or u.username or str(u.id) for u in client.users.list()}


def json_or_text(resp):
    try:
        return resp.json()
    except ValueError:
        return resp.text
