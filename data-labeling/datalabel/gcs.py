"""Google Cloud Storage: the one module that talks to buckets (real GCS or the local emulator).

With STORAGE_EMULATOR_HOST set, google-cloud-storage sends every call to the emulator and needs no credentials.
"""
from __future__ import annotations

import base64
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import ConfigError, NotFound, ServerError

WORKERS = 16


def client(credentials_file: str | None = None, project: str | None = None):
    """A storage client: anonymous against the emulator, else from a service-account file or ADC."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return _wide_pool(storage.Client(credentials=AnonymousCredentials(), project=project or "local"))
    try:
        if credentials_file:
            return _wide_pool(storage.Client.from_service_account_json(credentials_file, project=project))
        return _wide_pool(storage.Client(project=project))
    except Exception as exc:  # google.auth raises several unrelated types here
        raise ConfigError(f"cannot authenticate to Google Cloud Storage: {exc}".splitlines()[0]) from None


def _wide_pool(gcs, size: int = 64):
    """Keep a connection per worker thread: requests' default pool of 10 makes parallel transfers reconnect."""
    from requests.adapters import HTTPAdapter

    adapter = HTTPAdapter(pool_connections=size, pool_maxsize=size)
    gcs._http.mount("https://", adapter)
    gcs._http.mount("http://", adapter)
    return gcs


def split_url(url: str) -> tuple[str, str]:
    """gs://bucket/some/key -> (bucket, some/key); a key that could leave a folder it is joined to is refused."""
    if not url.startswith("gs://"):
        raise ConfigError(f"not a gs:// URL: {url}")
    bucket, _, key = url[5:].partition("/")
    check_key(key, url)
    return bucket, key


def check_key(key: str, where: str | None = None) -> str:
    """An object key or prefix from a task, a listing or a flag is untrusted: it is joined to local folders (a
    bucket mount, an export), so `..` segments, a leading slash, backslashes and NUL are refused."""
    if key.startswith("/") or "\\" in key or "\x00" in key or ".." in key.split("/"):
        raise ConfigError(f"unsafe object key in {where or key!r}: '..', a leading '/', '\\' and NUL are not "
                          "allowed; fix the task's URL or the prefix")
    return key


def bucket(gcs, name: str):
    """An existing bucket, or NotFound with the name in the message."""
    from google.api_core import exceptions
    from google.cloud.storage.retry import DEFAULT_RETRY

    try:
        # a short retry budget: a wrong host should fail in seconds, not after the default two minutes
        return gcs.get_bucket(name, retry=DEFAULT_RETRY.with_timeout(8), timeout=10)
    except exceptions.NotFound:
        raise NotFound(f"bucket {name!r} does not exist (create it, or check GCS_BUCKET_NAME)") from None
    except exceptions.GoogleAPIError as exc:
        raise ServerError(f"cannot read bucket {name!r}: {exc}".splitlines()[0]) from None
    except Exception as exc:  # connection refused and friends
        raise ServerError(f"cannot reach the storage API for bucket {name!r}: {type(exc).__name__}") from None


def ensure_bucket(gcs, name: str, location: str | None = None):
    from google.api_core import exceptions

    try:
        return gcs.get_bucket(name)
    except exceptions.NotFound:
        return gcs.create_bucket(name, location=location)


def norm_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def list_blobs(bkt, prefix: str = "", suffixes: tuple[str, ...] | None = None) -> Iterator:
    for blob in bkt.list_blobs(prefix=norm_prefix(prefix)):
        if blob.name.endswith("/"):
            continue
        if suffixes and not blob.name.lower().endswith(suffixes):
            continue
        yield blob


def md5_b64(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


def parallel(fn: Callable, items: Iterable, workers: int = WORKERS, progress: Callable[[int], None] | None = None) -> list:
    """Run fn over items in threads (I/O bound), in order, reporting each finished item to `progress`."""
    items = list(items)
    results = [None] * len(items)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items) or 1))) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        from concurrent.futures import as_completed

        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if progress:
                progress(1)
    return results


def filesystem(storage_client=None):
    """gcsfs over the same buckets, for bulk reads: asyncio keeps many requests in flight at a fraction of the
    per-request CPU that threads over google-cloud-storage cost (benchmarks/bench_snapshot.py).
    With a storage client, its credentials are used; against the emulator, none."""
    # gcsfs 2026.x probes the bucket type over gRPC, which hangs against the emulator; read once, at import
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import gcsfs

    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        return gcsfs.GCSFileSystem(token="anon", endpoint_url=emulator, skip_instance_cache=True)
    if storage_client is not None:
        return gcsfs.GCSFileSystem(token=storage_client._credentials, project=storage_client.project,
                                   skip_instance_cache=True)
    return gcsfs.GCSFileSystem(skip_instance_cache=True)


def read_objects(fs, urls: list[str], concurrency: int = WORKERS, progress: Callable[[int], None] | None = None,
                 missing: str = "{url} is not in the bucket") -> list[bytes]:
    """The bytes of each gs:// URL, in order, `concurrency` requests in flight, in bounded chunks."""
    import asyncio

    from fsspec.asyn import sync

    async def gather(paths: list[str]) -> list:
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(path: str):
            async with gate:
                try:
                    return await fs._cat_file(path)
                except Exception as exc:  # reported per object below, with its URL
                    return exc

        return await asyncio.gather(*(one(p) for p in paths))

    out: list[bytes] = []
    step = 256  # bytes held at once stay bounded; progress moves in steps
    for start in range(0, len(urls), step):
        chunk = urls[start:start + step]
        for url, value in zip(chunk, sync(fs.loop, gather, [u[len("gs://"):] for u in chunk])):
            if isinstance(value, FileNotFoundError):
                raise NotFound(missing.format(url=url))
            if isinstance(value, BaseException):
                raise ServerError(f"cannot read {url}: {value}".splitlines()[0][:300])
            out.append(value)
        if progress:
            progress(len(chunk))
    return out


def upload_folder(bkt, folder: str | Path, prefix: str, workers: int = WORKERS,
                  progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Upload every file below `folder` to `prefix/`, skipping blobs that already hold the same bytes (MD5)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"not a folder: {folder}")
    prefix = norm_prefix(prefix)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    existing = {b.name: b.md5_hash for b in bkt.list_blobs(prefix=prefix)}

    def one(path: Path) -> str:
        name = prefix + path.relative_to(folder).as_posix()
        if existing.get(name) and existing[name] == md5_b64(path):
            return "skipped"
        bkt.blob(name).upload_from_filename(str(path))
        return "uploaded"

    outcome = parallel(one, files, workers, progress)
    return {"uploaded": outcome.count("uploaded"), "skipped": outcome.count("skipped"), "total": len(files)}


def download_blobs(bkt, names: Iterable[str], dest_for: Callable[[str], Path], workers: int = WORKERS,
                   progress: Callable[[int], None] | None = None) -> int:
    """Download blobs in parallel to the paths `dest_for(name)` gives; returns how many were written."""

    def one(name: str) -> None:
        dest = dest_for(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        bkt.blob(name).download_to_filename(str(dest))

    return len(parallel(one, list(names), workers, progress))


# --- bucket metadata: CORS and a summary ----------------------------------------------------------------------

CORS_METHODS = ("GET", "HEAD")


def _api_call(what: str, fn: Callable):
    """Run one metadata call, mapping google-cloud errors to one-line LabErrors."""
    from google.api_core import exceptions

    try:
        return fn()
    except exceptions.NotFound:
        raise NotFound(f"{what}: not found") from None
    except exceptions.GoogleAPIError as exc:
        raise ServerError(f"{what}: {exc}".splitlines()[0]) from None


def get_cors(bkt) -> list[dict]:
    _api_call(f"read bucket {bkt.name!r}", bkt.reload)
    return list(bkt.cors or [])


def set_cors(bkt, origins: list[str], methods: Iterable[str] = CORS_METHODS, max_age: int = 3600) -> list[dict]:
    """Let browsers on `origins` read the bucket's objects (the labeling UI loads images straight from it)."""
    origins = [o.strip().rstrip("/") for o in origins if o and o.strip()]
    if not origins:
        raise ConfigError("no CORS origin given: pass --origin https://your-label-studio")
    bkt.cors = [{"origin": origins, "method": list(methods),
                 "responseHeader": ["Content-Type", "Content-Length", "Range"], "maxAgeSeconds": max_age}]
    _api_call(f"set CORS on bucket {bkt.name!r}", bkt.patch)
    return get_cors(bkt)


def remove_cors(bkt) -> None:
    bkt.cors = []
    _api_call(f"remove CORS from bucket {bkt.name!r}", bkt.patch)


def bucket_info(bkt, prefix: str = "") -> dict:
    """Name, location, class, CORS, and the number and size of objects under `prefix`."""
    count = size = 0
    for blob in _api_call(f"list bucket {bkt.name!r}", lambda: list(list_blobs(bkt, prefix))):
        count += 1
        size += blob.size or 0
    return {"bucket": bkt.name, "location": bkt.location, "storage_class": bkt.storage_class,
            "created": bkt.time_created.isoformat() if bkt.time_created else None,
            "prefix": norm_prefix(prefix), "objects": count, "bytes": size, "cors": list(bkt.cors or [])}


def gs_url_from_ref(ref: str | None) -> str | None:
    """The gs:// URL behind a task's media reference, or None.

    Tasks from target storage hold gs://bucket/key; tasks fetched through the API may hold Label Studio's proxy
    form `/tasks/N/resolve/?fileuri=<base64 of gs://...>` (also under /data/ or a full http URL).
    """
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith("gs://"):
        return ref
    from urllib.parse import parse_qs, urlparse

    for value in parse_qs(urlparse(ref).query).get("fileuri", []):
        try:
            decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            continue
        if decoded.startswith("gs://"):
            return decoded
    return None
