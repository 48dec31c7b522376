"""Images to features: the pixels the baseline model sees, read from the bucket (or a local folder) in parallel."""
from __future__ import annotations

import base64
import io
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

from .. import gcs
from ..errors import ConfigError, LabError, NotFound, ServerError
from ..tasks import Task


PIXELS = 8  # images are reduced to PIXELS x PIXELS grayscale


def pixels(image: bytes | str | Path, size: int = PIXELS):
    """An image as `size*size` grayscale values in 0..1 (box-filtered, so an upscaled 8x8 digit comes back exact)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        src = Image.open(io.BytesIO(image)) if isinstance(image, bytes) else Image.open(image)
        gray = src.convert("L").resize((size, size), Image.BOX)
    except (UnidentifiedImageError, OSError) as exc:
        raise LabError(f"not an image ({type(exc).__name__}): {str(image)[:80] if not isinstance(image, bytes) else 'bytes'}") from None
    return np.asarray(gray, dtype=np.float32).reshape(-1) / 255.0


class ImageLoader:
    """Fetches task images: gs:// straight from the bucket when this process can read it, else through Label
    Studio's proxy (/tasks/N/resolve/) with the API token. Features are cached by image URL."""

    def __init__(self, ls_url: str | None, token: str | None, use_gcs: bool | None = None):
        self.ls_url = (ls_url or "").rstrip("/")
        self.token = token
        if use_gcs is None:
            use_gcs = bool(os.environ.get("STORAGE_EMULATOR_HOST") or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
        self.use_gcs = use_gcs
        self._gcs = None
        self._cache: dict[tuple[str, int], object] = {}

    @classmethod
    def for_client(cls, client) -> "ImageLoader":
        settings = client.settings
        return cls(settings.url, settings.api_key,
                   bool(settings.emulator_host or settings.credentials_file or os.environ.get("STORAGE_EMULATOR_HOST")))

    def _storage(self):
        if self._gcs is None:
            self._gcs = gcs.client()
        return self._gcs

    def fetch(self, url: str, task_id: int | None = None) -> bytes:
        source = gcs.gs_url_from_ref(url) or url
        if source.startswith("gs://") and self.use_gcs:
            from google.api_core import exceptions

            bucket, key = gcs.split_url(source)
            try:
                return self._storage().bucket(bucket).blob(key).download_as_bytes()
            except exceptions.NotFound:
                raise NotFound(f"image {source} is not in the bucket") from None
            except exceptions.GoogleAPIError as exc:
                raise ServerError(f"cannot read {source}: {exc}".splitlines()[0]) from None
        if source.startswith("gs://"):
            if task_id is None:
                raise ConfigError(f"cannot read {source}: no bucket access and no task to proxy it through")
            link = f"/tasks/{task_id}/resolve/?fileuri=" + base64.urlsafe_b64encode(source.encode()).decode()
        else:
            link = url
        if link.startswith("/"):
            if not self.ls_url:
                raise ConfigError(f"cannot fetch {link}: the Label Studio URL is not known")
            link = self.ls_url + link
        headers = {}
        if self.token and (not self.ls_url or link.startswith(self.ls_url)):
            headers["Authorization"] = f"Token {self.token}"
        try:
            with urllib.request.urlopen(urllib.request.Request(link, headers=headers), timeout=30) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise ServerError(f"cannot fetch image {source}: HTTP {exc.code}") from None
        except OSError as exc:
            raise ServerError(f"cannot fetch image {source}: {type(exc).__name__}") from None

    def feature(self, task: Task, data_key: str | None, size: int = PIXELS):
        url = task.media_url(data_key)
        if not isinstance(url, str):
            raise LabError(f"task {task.id} has no image URL under data[{data_key!r}]")
        key = (gcs.gs_url_from_ref(url) or url, size)
        if key not in self._cache:
            self._cache[key] = pixels(self.fetch(url, task.id), size)
        return self._cache[key]

    def features(self, tasks: Sequence[Task], data_key: str | None, size: int = PIXELS,
                 progress: Callable[[int], None] | None = None):
        import numpy as np

        if not tasks:
            return np.zeros((0, size * size), dtype=np.float32)
        rows = gcs.parallel(lambda t: self.feature(t, data_key, size), list(tasks), workers=8, progress=progress)
        return np.vstack(rows)
