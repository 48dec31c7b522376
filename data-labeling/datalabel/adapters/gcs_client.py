"""google-cloud-storage's private parts, here only. Written against google-cloud-storage 3.17.1 with
google-cloud-core 2.8.0 and google-api-core 2.44.0 under it (all three checked on first use).

- `client._http` (google-cloud-core's client base): the requests session every call goes through, given a
  connection pool as wide as the transfer threads;
- `client._credentials` (same base): the client's credentials, handed to gcsfs so bulk reads use the same ones;
- `DEFAULT_RETRY._predicate` (google-api-core's Retry): which errors google-cloud-storage retries, so a retry with
  its own bound and reporting retries exactly those (Retry has no public way to add `on_error`).
"""
from __future__ import annotations

from . import require

PINNED = {"google-cloud-storage": "3.17.1", "google-cloud-core": "2.8.0", "google-api-core": "2.44.0"}


def wide_pool(gcs, size: int = 64):
    """Keep a connection per worker thread: requests' default pool of 10 makes parallel transfers reconnect."""
    require(PINNED)
    from requests.adapters import HTTPAdapter

    adapter = HTTPAdapter(pool_connections=size, pool_maxsize=size)
    gcs._http.mount("https://", adapter)
    gcs._http.mount("http://", adapter)
    return gcs


def credentials(gcs):
    """The credentials a storage client was made with."""
    require(PINNED)
    return gcs._credentials


def default_retry_predicate():
    """The predicate of google-cloud-storage's DEFAULT_RETRY: the errors it deems worth another try."""
    require(PINNED)
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY._predicate
