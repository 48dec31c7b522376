"""The connection to Label Studio: the SDK's client, the check that server and token work, and SDK/HTTP failures
as LabErrors with one actionable line."""
from __future__ import annotations

import contextlib
import json
from typing import Iterator

from ..adapters import ls_sdk
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



def connect(settings: Settings | None = None, check: bool = True):
    """An SDK client for the configured server; with `check`, fail now if the server or token is wrong."""
    settings = settings or Settings.load()
    settings.require_url()
    with api_errors("connect", settings.url):  # a JWT token is exchanged for an access token at once
        client = ls_sdk.client_class()(settings, timeout=120)
    if check:
        whoami(client)
    return client


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
