"""Label Studio's own exports: the formats it offers, an export snapshot made and downloaded."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from .. import ls
from ..errors import ConfigError, LabError, ServerError


def api_formats(client, project_id: int) -> list[dict]:
    """Formats Label Studio offers for this project's config: name, title, whether it is disabled."""
    with ls.api_errors(f"export formats of project {project_id}", client.settings.url):
        raw = client.projects.exports.list_formats(id=project_id)
    out = []
    for f in raw:
        if isinstance(f, dict):
            out.append({"name": f.get("name"), "title": f.get("title", ""), "disabled": bool(f.get("disabled"))})
        else:
            out.append({"name": str(f), "title": "", "disabled": False})
    return out


def check_output_file(path: str | Path, force: bool = False) -> Path:
    """Where `export api` writes: a path that names a file, not an existing one unless `force`."""
    path = Path(path)
    if str(path).strip() in ("", ".") or path.is_dir():
        raise ConfigError(f"--output {str(path)!r} is a folder; give a file name, e.g. --output project.json")
    if (path.exists() or path.is_symlink()) and not force:
        raise ConfigError(f"--output {path} exists; pass --force to replace it, or give a new file name")
    return path


def export_from_api(client, project_id: int, export_type: str, dest: str | Path, timeout: float = 600.0,
                    progress: Callable[[int], None] | None = None) -> Path:
    """Ask Label Studio for an export snapshot in `export_type` (e.g. JSON, COCO, YOLO) and download it to dest.

    The snapshot is created, polled until complete (no synchronous request to time out), then streamed into a
    temporary file that is renamed to `dest` only when the download finished with HTTP 2xx; an HTTP error is
    raised as a LabError and nothing is written.
    """
    offered = api_formats(client, project_id)
    names = {f["name"]: f for f in offered}
    if export_type not in names:
        raise LabError(f"Label Studio does not offer {export_type!r} for project {project_id}; "
                       f"choose one of: {', '.join(n for n, f in names.items() if not f['disabled'])}")
    if names[export_type]["disabled"]:
        raise LabError(f"{export_type} does not fit project {project_id}'s label config; "
                       f"choose one of: {', '.join(n for n, f in names.items() if not f['disabled'])}")
    url = client.settings.url
    with ls.api_errors(f"create export of project {project_id}", url):
        snapshot = client.projects.exports.create(id=project_id, title=f"datalabel {export_type}")
    created = [snapshot]

    def read():
        if created:  # the answer to the create request is the first state
            return created.pop()
        with ls.api_errors(f"export {snapshot.id} of project {project_id}", url):
            return client.projects.exports.get(id=project_id, export_pk=snapshot.id)

    try:
        snapshot = Retrying(retry=retry_if_result(lambda s: str(s.status or "") not in ("completed", "failed")),
                            stop=stop_after_delay(timeout), wait=wait_fixed(1))(read)
    except RetryError as exc:
        raise ServerError(f"export {snapshot.id} of project {project_id} still {exc.last_attempt.result().status} "
                          f"after {timeout:.0f}s; try again with a longer --timeout") from None
    if snapshot.status == "failed":
        raise ServerError(f"Label Studio failed to build export {snapshot.id} of project {project_id}; see its log")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        with ls.api_errors(f"download {export_type} export of project {project_id}", url), open(part, "wb") as fp:
            for chunk in client.projects.exports.download(id=project_id, export_pk=snapshot.id,
                                                          export_type=export_type,
                                                          request_options={"chunk_size": 1 << 16}):
                fp.write(chunk)
                if progress:
                    progress(len(chunk))
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest
