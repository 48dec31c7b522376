"""Label Studio projects: find, create (once, also when two commands race), check a label config, delete."""
from __future__ import annotations


from ..errors import ConfigError, NotFound, ServerError
from ..labelconfig import parse_config
from ..adapters.ls_sdk import raw_http
from .client import api_errors


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
    return settle(made, same, lambda: delete_project(client, made.id))


def settle(made, same: list, remove):
    """Two identical commands at the same moment each create one: both settle on the lowest id, and the one that
    made another removes it. Returns (the kept one, whether this call made it)."""
    first = min(same + [made], key=lambda x: x.id)
    if first.id == made.id:
        return made, True
    remove()
    return first, False


def delete_project(client, project_id: int) -> None:
    get_project(client, project_id)  # a clear "does not exist" first
    with api_errors(f"delete project {project_id}", client.settings.url):
        client.projects.delete(id=project_id)


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
