"""Google Cloud Storage: the one module that talks to buckets (real GCS or the local emulator).

With STORAGE_EMULATOR_HOST set, google-cloud-storage sends every call to the emulator and needs no credentials.

Longer than 400 lines on purpose: every bucket operation (names and keys checked as untrusted, uploads, bulk
reads, CORS, retries) stays in the one module that owns Google Cloud Storage.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import ConfigError, NotFound, ServerError

WORKERS = 16

# Retries: how long to keep trying an unreachable or failing storage API before one error line, and who hears of
# each retry (the CLI shows them on its progress line; nothing is logged). Set with retry_policy().
RETRY_TIMEOUT_ENV = "DATALABEL_RETRY_TIMEOUT"
RETRY_HINT = f"{RETRY_TIMEOUT_ENV}, or --retry-timeout of export convert and watch, sets how long"
DEFAULT_RETRY_TIMEOUT = 20.0
_retry_timeout: float | None = None
_on_retry: Callable[[str], None] | None = None


def retry_timeout(value: float | str | None = None) -> float:
    """Seconds to keep retrying: `value`, else the one retry_policy() set, else $DATALABEL_RETRY_TIMEOUT, else
    DEFAULT_RETRY_TIMEOUT. ConfigError if it is not a positive number."""
    if value is None:
        value = _retry_timeout or os.environ.get(RETRY_TIMEOUT_ENV) or DEFAULT_RETRY_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"retry timeout {value!r}: expected a positive number of seconds "
                          f"({RETRY_HINT})")
    return seconds


@contextmanager
def retry_policy(timeout: float | str | None = None, on_retry: Callable[[str], None] | None = None):
    """Within the block, storage calls give up after `timeout` seconds of retries and report each retry to
    `on_retry` (one short line: what, attempt, why)."""
    global _retry_timeout, _on_retry
    before = _retry_timeout, _on_retry
    _retry_timeout, _on_retry = retry_timeout(timeout), on_retry
    try:
        yield _retry_timeout
    finally:
        _retry_timeout, _on_retry = before


def _note(what: str, attempt: int, exc: BaseException) -> None:
    if _on_retry is not None:
        _on_retry(f"retry {attempt} for {what}: {_short(exc)}")


def api_retry(what: str):
    """google-cloud-storage's default retry (same errors), bounded by retry_timeout(), each retry reported."""
    from google.api_core.retry import Retry
    from google.cloud.storage.retry import DEFAULT_RETRY

    attempts = [0]

    def on_error(exc: Exception) -> None:
        attempts[0] += 1
        _note(what, attempts[0], exc)

    return Retry(predicate=DEFAULT_RETRY._predicate, initial=0.5, maximum=8.0, timeout=retry_timeout(),
                 on_error=on_error)


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

    check_bucket_name(name)
    bound = retry_timeout()
    try:
        # a bounded retry budget: a wrong host fails in seconds, not after the default two minutes
        return gcs.get_bucket(name, retry=api_retry(f"bucket {name}"), timeout=min(10.0, bound))
    except exceptions.NotFound:
        raise NotFound(f"bucket {name!r} does not exist (create it, or check GCS_BUCKET_NAME)") from None
    except exceptions.RetryError as exc:
        raise ServerError(f"cannot reach the storage API for bucket {name!r}: gave up after {bound:g} s of retries "
                          f"({RETRY_HINT}); last error: "
                          f"{_short(exc.cause)}") from None
    except exceptions.GoogleAPIError as exc:
        raise ServerError(f"cannot read bucket {name!r}: {exc}".splitlines()[0]) from None
    except Exception as exc:  # connection refused and friends
        raise ServerError(f"cannot reach the storage API for bucket {name!r} (gave up after {bound:g} s of "
                          f"retries; {RETRY_HINT}): "
                          f"{type(exc).__name__}") from None


def ensure_bucket(gcs, name: str, location: str | None = None):
    from google.api_core import exceptions

    try:
        return gcs.get_bucket(name)
    except exceptions.NotFound:
        return gcs.create_bucket(name, location=location)


def norm_prefix(prefix: str) -> str:
    """A folder of a bucket as "a/b/" ("" for the whole bucket); a prefix that could leave a folder is refused."""
    prefix = (prefix or "").strip("/")
    check_key(prefix, f"prefix {prefix!r}")
    if prefix and any(part in ("", ".") or part != part.strip() for part in prefix.split("/")):
        raise ConfigError(f"prefix {prefix + '/'!r} has an empty, '.' or space-padded folder; write it as "
                          f"{'/'.join(p.strip() for p in prefix.split('/') if p.strip() not in ('', '.')) + '/'!r}")
    return prefix + "/" if prefix else ""


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


def check_bucket_name(name: str) -> str:
    """A name Google Cloud Storage accepts: 3-63 characters (222 with dots) of a-z 0-9 - _ ., starting and ending
    with a letter or digit; said here, before any request, instead of a confusing answer from the API."""
    parts = (name or "").split(".")
    if not _BUCKET_NAME.fullmatch(name or "") or any(len(p) > 63 or not p for p in parts) or ".." in name \
            or (len(parts) == 1 and len(name) > 63) or name.startswith("goog"):
        raise ConfigError(f"not a valid bucket name: {name!r}; use 3-63 lowercase letters, digits, '-', '_' or '.', "
                          "starting and ending with a letter or digit")
    return name


def _short(exc: BaseException | None) -> str:
    """An exception as a short phrase: urllib3's connection errors nest three messages deep."""
    if exc is None:
        return "unknown"
    text = str(exc)
    if "Failed to establish a new connection: " in text:  # urllib3
        text = text.split("Failed to establish a new connection: ", 1)[1].split("]", 1)[-1].strip(" \"')") or text
    elif text.startswith("Cannot connect to host"):  # aiohttp
        text = text.split(" [", 1)[0]
    return (text.splitlines() or [type(exc).__name__])[0][:160]


def list_blobs(bkt, prefix: str = "", suffixes: tuple[str, ...] | None = None) -> Iterator:
    for blob in bkt.list_blobs(prefix=norm_prefix(prefix), retry=api_retry(f"listing gs://{bkt.name}/{prefix}")):
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
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items) or 1)))
    try:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if progress:
                progress(1)
    except BaseException:
        # the first failure (or Ctrl-C) ends the run: what has not started is cancelled, not tried one by one
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def filesystem(storage_client=None):
    """gcsfs over the same buckets, for bulk reads: asyncio keeps many requests in flight at a fraction of the
    per-request CPU that threads over google-cloud-storage cost (benchmarks/bench_snapshot.py).
    With a storage client, its credentials are used; against the emulator, none."""
    # gcsfs 2026.x probes the bucket type over gRPC, which hangs against the emulator; read once, at import
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    cls = _single_try_filesystem()  # imports gcsfs: after the line above
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        return cls(token="anon", endpoint_url=emulator, skip_instance_cache=True)
    if storage_client is not None:
        return cls(token=storage_client._credentials, project=storage_client.project, skip_instance_cache=True)
    return cls(skip_instance_cache=True)


_SINGLE_TRY = None


def _single_try_filesystem():
    """gcsfs with one attempt per request: its own retries (6, up to ~35 s, each logged with a traceback) give
    way to read_objects' bounded, quiet ones."""
    global _SINGLE_TRY
    if _SINGLE_TRY is None:
        import gcsfs

        once = getattr(gcsfs.GCSFileSystem._request, "__wrapped__", None)
        if once is None:  # a gcsfs without the decorator's __wrapped__: its own retries stay
            _SINGLE_TRY = gcsfs.GCSFileSystem
        else:
            class SingleTry(gcsfs.GCSFileSystem):
                async def _request(self, *args, **kwargs):
                    return await once(self, *args, **kwargs)

            _SINGLE_TRY = SingleTry
    return _SINGLE_TRY


def _retriable(exc: BaseException) -> bool:
    from gcsfs.retry import is_retriable

    return is_retriable(exc) or isinstance(exc, (ConnectionError, TimeoutError))


def read_objects(fs, urls: list[str], concurrency: int = WORKERS, progress: Callable[[int], None] | None = None,
                 missing: str = "{url} is not in the bucket") -> list[bytes]:
    """The bytes of each gs:// URL, in order, `concurrency` requests in flight, in bounded chunks."""
    import asyncio

    from fsspec.asyn import sync

    bound = retry_timeout()
    gave_up: list[BaseException] = []  # once one request gives up, the others stop too: one error, soon

    async def gather(paths: list[str]) -> list:
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(path: str):
            async with gate:
                deadline, attempt = None, 0
                while True:
                    if gave_up:
                        return gave_up[0]
                    try:
                        return await fs._cat_file(path)
                    except Exception as exc:  # reported per object below, with its URL
                        now = time.monotonic()
                        deadline = deadline or now + bound
                        delay = min(0.5 * 2 ** attempt, 8.0)
                        if not _retriable(exc) or now + delay > deadline:
                            if _retriable(exc):
                                gave_up.append(_GaveUp(bound, exc))
                                return gave_up[0]
                            return exc
                        attempt += 1
                        _note(f"gs://{path}", attempt, exc)
                        await asyncio.sleep(delay)

        return await asyncio.gather(*(one(p) for p in paths))

    out: list[bytes] = []
    step = 256  # bytes held at once stay bounded; progress moves in steps
    for start in range(0, len(urls), step):
        chunk = urls[start:start + step]
        for url, value in zip(chunk, sync(fs.loop, gather, [u[len("gs://"):] for u in chunk])):
            if isinstance(value, FileNotFoundError):
                raise NotFound(missing.format(url=url))
            if isinstance(value, _GaveUp):
                raise ServerError(f"cannot read {url}: gave up after {bound:g} s of retries "
                                  f"({RETRY_HINT}); last error: {_short(value.last)}")
            if isinstance(value, BaseException):
                raise ServerError(f"cannot read {url}: {value}".splitlines()[0][:300])
            out.append(value)
        if progress:
            progress(len(chunk))
    return out


class _GaveUp(Exception):
    def __init__(self, bound: float, last: BaseException):
        super().__init__(f"gave up after {bound:g} s")
        self.last = last


# What an image's first bytes are, by its suffix: a file named .png that is not a PNG would become a task that
# cannot be shown.
IMAGE_MAGIC = {".png": (b"\x89PNG",), ".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",),
               ".gif": (b"GIF87a", b"GIF89a"), ".bmp": (b"BM",), ".webp": (b"RIFF",),
               ".tif": (b"II*\x00", b"MM\x00*"), ".tiff": (b"II*\x00", b"MM\x00*")}


def check_upload(folder: Path, files: list[Path]) -> None:
    """Before anything is uploaded: some files, none empty, images that are what their suffix says."""
    if not files:
        raise NotFound(f"no files in {folder} (hidden files are skipped); nothing to upload")
    for path in files:
        size = path.stat().st_size
        if size == 0:
            raise ConfigError(f"{path} is empty (0 bytes); remove it and upload again (nothing was uploaded)")
        magic = IMAGE_MAGIC.get(path.suffix.lower())
        if magic:
            with open(path, "rb") as fp:
                head = fp.read(12)
            if not head.startswith(magic) or (path.suffix.lower() == ".webp" and head[8:12] != b"WEBP"):
                raise ConfigError(f"{path} is not a {path.suffix.lstrip('.').upper()} image; fix or remove it "
                                  "(nothing was uploaded)")


def upload_folder(bkt, folder: str | Path, prefix: str, workers: int = WORKERS,
                  progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Upload every file below `folder` to `prefix/`, skipping blobs that already hold the same bytes (MD5)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"not a folder: {folder}")
    prefix = norm_prefix(prefix)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    check_upload(folder, files)
    existing = _api_call(f"list gs://{bkt.name}/{prefix}", lambda: {
        b.name: b.md5_hash for b in bkt.list_blobs(prefix=prefix, retry=api_retry(f"list gs://{bkt.name}/{prefix}"))})

    def one(path: Path) -> str:
        name = prefix + path.relative_to(folder).as_posix()
        if existing.get(name) and existing[name] == md5_b64(path):
            return "skipped"
        what = f"upload gs://{bkt.name}/{name}"
        _api_call(what, lambda: bkt.blob(name).upload_from_filename(str(path), retry=api_retry(what),
                                                                    timeout=min(60.0, retry_timeout())))
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

    import requests

    try:
        return fn()
    except exceptions.NotFound:
        raise NotFound(f"{what}: not found") from None
    except exceptions.RetryError as exc:
        raise ServerError(f"{what}: cannot reach the storage API: gave up after {retry_timeout():g} s of retries "
                          f"({RETRY_HINT}); last error: "
                          f"{_short(exc.cause)}") from None
    except exceptions.GoogleAPIError as exc:
        raise ServerError(f"{what}: {exc}".splitlines()[0]) from None
    except requests.exceptions.RequestException as exc:
        raise ServerError(f"{what}: cannot reach the storage API ({_short(exc)})") from None


def get_cors(bkt) -> list[dict]:
    _api_call(f"read bucket {bkt.name!r}", bkt.reload)
    return list(bkt.cors or [])


def check_origin(origin: str) -> str:
    """A browser origin (scheme://host[:port]); ConfigError otherwise, "*" too (every site could read the bucket)."""
    value = (origin or "").strip().rstrip("/")
    if "*" in value:
        raise ConfigError(f"origin {origin!r} would let every web site read the bucket; give Label Studio's origin, "
                          "e.g. --origin http://127.0.0.1:8080")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ConfigError(f"not a browser origin: {origin!r}; give scheme://host[:port], e.g. http://127.0.0.1:8080")
    return value


def _without(rules: list[dict], origins: set[str]) -> list[dict]:
    """The rules with `origins` taken out; a rule left with no origin is dropped, every other rule kept as is."""
    out = []
    for rule in rules:
        rule = dict(rule)
        kept = [o for o in rule.get("origin", []) if o.rstrip("/") not in origins]
        if kept:
            rule["origin"] = kept
            out.append(rule)
        elif not rule.get("origin"):
            out.append(rule)  # not ours to judge: a rule without origins stays
    return out


def set_cors(bkt, origins: list[str], methods: Iterable[str] = CORS_METHODS, max_age: int = 3600) -> list[dict]:
    """Let browsers on `origins` read the bucket's objects (the labeling UI loads images straight from it).

    Only the rule for these origins changes: rules for other origins (another app's) are kept as they are."""
    wanted = [check_origin(o) for o in origins if o and o.strip()]
    if not wanted:
        raise ConfigError("no CORS origin given: pass --origin https://your-label-studio")
    rule = {"origin": wanted, "method": list(methods),
            "responseHeader": ["Content-Type", "Content-Length", "Range"], "maxAgeSeconds": max_age}
    bkt.cors = _without(get_cors(bkt), set(wanted)) + [rule]
    _api_call(f"set CORS on bucket {bkt.name!r}", bkt.patch)
    return get_cors(bkt)


def remove_cors(bkt, origins: list[str] | None) -> list[dict]:
    """Take `origins` out of the bucket's CORS rules (every rule with `origins` None); the rest stays.
    Returns the rules left."""
    bkt.cors = [] if origins is None else _without(get_cors(bkt), {check_origin(o) for o in origins})
    _api_call(f"remove CORS from bucket {bkt.name!r}", bkt.patch)
    return get_cors(bkt)


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
