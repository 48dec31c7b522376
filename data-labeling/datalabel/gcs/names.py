"""Bucket names, object keys and gs:// URLs: all untrusted (a task, a listing, a flag), checked before use."""
from __future__ import annotations

import base64
import re

from ..errors import ConfigError


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
