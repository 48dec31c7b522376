"""The storage client and buckets: authenticate, open or create a bucket, list its objects, summarise it.

With STORAGE_EMULATOR_HOST set, google-cloud-storage sends every call to the emulator and needs no credentials."""
from __future__ import annotations

import os
from typing import Iterator

from ..adapters.gcs_client import wide_pool
from ..errors import ConfigError, LabError, ServerError
from .names import check_bucket_name, norm_prefix
from .retry import RETRY_HINT, api_call, api_retry, retry_timeout


def client(credentials_file: str | None = None, project: str | None = None, endpoint: str | None = None):
    """A storage client: anonymous against the emulator (STORAGE_EMULATOR_HOST, or `endpoint`: another storage
    endpoint, as DVC is given one), else from a service-account file or ADC."""
    from google.cloud import storage

    if endpoint or os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        options = {"api_endpoint": endpoint} if endpoint else None
        return wide_pool(storage.Client(credentials=AnonymousCredentials(), project=project or "local",
                                        client_options=options))
    try:
        if credentials_file:
            return wide_pool(storage.Client.from_service_account_json(credentials_file, project=project))
        return wide_pool(storage.Client(project=project))
    except Exception as exc:  # google.auth raises several unrelated types here
        raise ConfigError(f"cannot authenticate to Google Cloud Storage: {exc}".splitlines()[0]) from None



def bucket(gcs, name: str):
    """An existing bucket, or NotFound with the name in the message."""
    check_bucket_name(name)
    bound = retry_timeout()
    try:
        # a bounded retry budget: a wrong host fails in seconds, not after the default two minutes
        return api_call(f"bucket {name!r}",
                        lambda: gcs.get_bucket(name, retry=api_retry(f"bucket {name}"), timeout=min(10.0, bound)),
                        not_found=f"bucket {name!r} does not exist (create it, or check GCS_BUCKET_NAME)")
    except LabError:
        raise
    except Exception as exc:  # what api_call leaves: a transport error outside requests
        raise ServerError(f"cannot reach the storage API for bucket {name!r} (gave up after {bound:g} s of "
                          f"retries; {RETRY_HINT}): {type(exc).__name__}") from None


def ensure_bucket(gcs, name: str, location: str | None = None):
    from google.api_core import exceptions

    try:
        return gcs.get_bucket(name)
    except exceptions.NotFound:
        return gcs.create_bucket(name, location=location)


def list_blobs(bkt, prefix: str = "", suffixes: tuple[str, ...] | None = None) -> Iterator:
    for blob in bkt.list_blobs(prefix=norm_prefix(prefix), retry=api_retry(f"listing gs://{bkt.name}/{prefix}")):
        if blob.name.endswith("/"):
            continue
        if suffixes and not blob.name.lower().endswith(suffixes):
            continue
        yield blob


def bucket_info(bkt, prefix: str = "") -> dict:
    """Name, location, class, CORS, and the number and size of objects under `prefix`."""
    count = size = 0
    for blob in api_call(f"list bucket {bkt.name!r}", lambda: list(list_blobs(bkt, prefix))):
        count += 1
        size += blob.size or 0
    return {"bucket": bkt.name, "location": bkt.location, "storage_class": bkt.storage_class,
            "created": bkt.time_created.isoformat() if bkt.time_created else None,
            "prefix": norm_prefix(prefix), "objects": count, "bytes": size, "cors": list(bkt.cors or [])}
