"""Images to features: read from the bucket or through Label Studio only, capped in size and time, in parallel.

What a task's image reference may make this process read (the ML backend reads references anyone who can edit a
task wrote): a gs:// object of an allowed bucket with this process's own bucket access, else Label Studio's proxy
for the task (`/tasks/N/resolve/`, which resolves only what the project's storages hold); a path on Label Studio
(`/data/...`); an http(s) URL of exactly Label Studio's origin (scheme, host and port). Never a local file, another
host or another port of this one, and never a redirect off Label Studio's origin. The API token goes to that
origin only. An image past `MAX_IMAGE_BYTES` (or `MAX_PIXELS` once decoded) is refused, so is a read past
`FETCH_SECONDS`; features are cached by image in a bounded LRU.
"""
from __future__ import annotations

import base64
import io
import os
import threading
import time
from collections import OrderedDict
from typing import Callable, Sequence
from urllib.parse import urljoin

from .. import gcs
from ..errors import ConfigError, LabError, NotFound, ServerError
from ..tasks import Task


PIXELS = 8  # images are reduced to PIXELS x PIXELS grayscale
MAX_IMAGE_BYTES = 20 << 20  # a large photo fits; a file that would fill memory does not
MAX_PIXELS = 40_000_000  # decoded size (a small file can decode to gigabytes)
FETCH_SECONDS = 30.0  # a whole image read, connecting included
CACHE_ITEMS = 20_000  # feature rows kept (8x8 pixels: 5 MB)
ALLOWED_PATHS = ("/data/", "/tasks/", "/storage-data/")  # where Label Studio serves task media


class ImageRefused(LabError):
    """A reference this loader will not read (another origin, a local file, too large)."""


def pixels(image: bytes | str | os.PathLike, size: int = PIXELS):
    """An image as `size*size` grayscale values in 0..1 (box-filtered, so an upscaled 8x8 digit comes back exact)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        src = Image.open(io.BytesIO(image)) if isinstance(image, bytes) else Image.open(image)
        if src.width * src.height > MAX_PIXELS:
            raise ImageRefused(f"an image of {src.width}x{src.height} pixels (at most {MAX_PIXELS:,})")
        gray = src.convert("L").resize((size, size), Image.BOX)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise LabError(f"not an image ({type(exc).__name__}): {str(image)[:80] if not isinstance(image, bytes) else 'bytes'}") from None
    return np.asarray(gray, dtype=np.float32).reshape(-1) / 255.0


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in: what two URLs must share to be one origin.
    Parsed by httpx, the client that connects, so the check and the connection never read a URL differently."""
    import httpx

    try:
        parts = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "", "", -1
    scheme = parts.scheme.lower()
    return scheme, (parts.host or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme, 0)


class ImageLoader:
    """Reads task images as the module's doc says. `buckets`: gs:// buckets read directly (None: any this process
    can read; an empty set: none, everything through Label Studio)."""

    def __init__(self, ls_url: str | None, token: str | None, use_gcs: bool | None = None,
                 buckets: set[str] | None = None, max_bytes: int = MAX_IMAGE_BYTES, seconds: float = FETCH_SECONDS,
                 cache_items: int = CACHE_ITEMS):
        self.ls_url = (ls_url or "").rstrip("/")
        self.token = token
        if use_gcs is None:
            use_gcs = bool(os.environ.get("STORAGE_EMULATOR_HOST") or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
        self.use_gcs = use_gcs
        self.buckets = buckets
        self.max_bytes = max_bytes
        self.seconds = seconds
        self.cache_items = cache_items
        self._gcs = None
        self._http = None
        self._cache: OrderedDict[tuple[str, str], object] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def for_client(cls, client, buckets: set[str] | None = None) -> "ImageLoader":
        settings = client.settings
        return cls(settings.url, settings.api_key,
                   bool(settings.emulator_host or settings.credentials_file or os.environ.get("STORAGE_EMULATOR_HOST")),
                   buckets)

    def _storage(self):
        if self._gcs is None:
            self._gcs = gcs.client()
        return self._gcs

    def _client(self):
        import httpx

        with self._lock:
            if self._http is None:
                self._http = httpx.Client(follow_redirects=False, timeout=httpx.Timeout(self.seconds, connect=5.0))
            return self._http

    def _refuse(self, source: str, why: str) -> ImageRefused:
        return ImageRefused(f"image {source[:120]!r} not read: {why}")

    def _from_bucket(self, source: str) -> bytes:
        from google.api_core import exceptions

        bucket, key = gcs.split_url(source)
        try:
            # one byte past the cap tells a too-large object without reading it whole
            data = self._storage().bucket(bucket).blob(key).download_as_bytes(
                start=0, end=self.max_bytes, timeout=(5.0, self.seconds))
        except exceptions.NotFound:
            raise NotFound(f"image {source} is not in the bucket") from None
        except exceptions.GoogleAPIError as exc:
            raise ServerError(f"cannot read {source}: {exc}".splitlines()[0]) from None
        if len(data) > self.max_bytes:
            raise self._refuse(source, f"larger than {self.max_bytes:,} bytes")
        return data

    def _link(self, url: str, task_id: int | None) -> tuple[str, str]:
        """(what the reference names, the Label Studio URL to read it from), or ImageRefused."""
        source = gcs.gs_url_from_ref(url) or url
        if source.startswith("gs://"):
            bucket = source[5:].partition("/")[0]
            if self.use_gcs and (self.buckets is None or bucket in self.buckets):
                return source, ""
            if task_id is None:
                raise ConfigError(f"cannot read {source}: no bucket access and no task to proxy it through")
            link = f"/tasks/{int(task_id)}/resolve/?fileuri=" + base64.urlsafe_b64encode(source.encode()).decode()
        else:
            link = url
        if not self.ls_url:
            raise self._refuse(source, "the Label Studio URL is not known")
        if link.startswith("/") and not link.startswith("//"):
            link = self.ls_url + link
        if origin(link) != origin(self.ls_url):
            raise self._refuse(source, f"only Label Studio's origin {self.ls_url} or the bucket is read")
        self._check_path(source, link)
        return source, link

    def _check_path(self, source: str, link: str) -> None:
        import httpx

        path = httpx.URL(link).path
        base = httpx.URL(self.ls_url).path.rstrip("/")
        if not any(path.startswith(base + allowed) for allowed in ALLOWED_PATHS) or "/../" in path + "/":
            raise self._refuse(source, f"not a media path of Label Studio ({', '.join(ALLOWED_PATHS)})")

    def _over_http(self, source: str, link: str) -> bytes:
        import httpx

        deadline = time.monotonic() + self.seconds
        for _ in range(3):  # Label Studio may redirect within itself; never elsewhere
            headers = {"Authorization": f"Token {self.token}"} if self.token else {}
            try:
                with self._client().stream("GET", link, headers=headers) as resp:
                    if resp.is_redirect:
                        target = urljoin(link, resp.headers.get("location", ""))
                        if origin(target) != origin(self.ls_url):
                            raise self._refuse(source, "Label Studio redirects it off its origin (a presigned "
                                                       "URL): give this process bucket access instead")
                        self._check_path(source, target)
                        link = target
                        continue
                    if resp.status_code != 200:
                        raise ServerError(f"cannot fetch image {source}: HTTP {resp.status_code}")
                    if int(resp.headers.get("content-length") or 0) > self.max_bytes:
                        raise self._refuse(source, f"larger than {self.max_bytes:,} bytes")
                    body = bytearray()
                    for chunk in resp.iter_bytes(1 << 16):
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise self._refuse(source, f"larger than {self.max_bytes:,} bytes")
                        if time.monotonic() > deadline:
                            raise self._refuse(source, f"not read within {self.seconds:g} s")
                    return bytes(body)
            except httpx.HTTPError as exc:
                raise ServerError(f"cannot fetch image {source}: {type(exc).__name__}") from None
        raise self._refuse(source, "too many redirects")

    def fetch(self, url: str, task_id: int | None = None) -> bytes:
        source, link = self._link(url, task_id)
        return self._from_bucket(source) if not link else self._over_http(source, link)

    def feature(self, task: Task, data_key: str | None, model=None):
        """One task's feature row by `model` (its `featurize` and `feature_key`; default: 8x8 pixels)."""
        url = task.media_url(data_key)
        if not isinstance(url, str):
            raise LabError(f"task {task.id} has no image URL under data[{data_key!r}]")
        kind = model.feature_key if model is not None else f"pixels{PIXELS}"
        key = (gcs.gs_url_from_ref(url) or url, kind)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = self.fetch(url, task.id)
        row = model.featurize(data) if model is not None else pixels(data)
        with self._lock:
            self._cache[key] = row
            while len(self._cache) > self.cache_items:
                self._cache.popitem(last=False)
        return row

    def features(self, tasks: Sequence[Task], data_key: str | None, model=None,
                 progress: Callable[[int], None] | None = None):
        import numpy as np

        if not tasks:
            return np.zeros((0, PIXELS * PIXELS), dtype=np.float32)
        rows = gcs.parallel(lambda t: self.feature(t, data_key, model), list(tasks), workers=8, progress=progress)
        return np.vstack(rows)
