"""A project's GCS storages: source (import) and target (export), added once, synced, waited on, removed."""
from __future__ import annotations

import json

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from ..config import load_credentials
from ..errors import ConfigError, NotFound, ServerError
from ..gcs import norm_prefix
from .client import api_errors
from .projects import settle


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
    return settle(made, same, lambda: remove_storage(client, made.id, "source"))


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
    return settle(made, same, lambda: remove_storage(client, made.id, "target"))


def sync_storage(client, storage_id: int, kind: str = "source"):
    """Sync one storage: source imports new files as tasks, target writes annotations to the bucket."""
    resource = client.import_storage.gcs if kind == "source" else client.export_storage.gcs
    with api_errors(f"sync {kind} storage {storage_id}", client.settings.url):
        return resource.sync(id=storage_id, request_options=SYNC_OPTIONS)


def wait_storage(client, storage_id: int, kind: str = "source", timeout: float = 300.0):
    """Wait until a storage's sync job has finished (status completed or failed)."""
    resource = client.import_storage.gcs if kind == "source" else client.export_storage.gcs

    def status_of(storage) -> str:
        return str(getattr(storage, "status", "") or "")

    def read():
        with api_errors(f"{kind} storage {storage_id}", client.settings.url):
            storage = resource.get(id=storage_id)
        if status_of(storage).endswith("failed"):
            # Label Studio keeps the worker's whole traceback: its last line says what went wrong
            lines = [ln.strip() for ln in str(storage.traceback or "").splitlines() if ln.strip()]
            raise ServerError(f"{kind} storage {storage_id} sync failed in Label Studio: "
                              f"{(lines[-1] if lines else status_of(storage))[:300]}")
        return storage

    def running(storage) -> bool:
        status = status_of(storage)
        return not (status.endswith("completed") or status in ("", "None"))

    try:  # an error (a failed sync, the server gone) ends the wait at once
        return Retrying(retry=retry_if_result(running), stop=stop_after_delay(timeout), wait=wait_fixed(0.5))(read)
    except RetryError as exc:
        status = status_of(exc.last_attempt.result())
        raise ServerError(f"{kind} storage {storage_id} sync still {status} after {timeout:.0f}s") from None


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
