"""Settings shared by every command: from flags, else the environment, else a `.env` file.

Names are the ones the containers set: LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY, GCS_BUCKET_NAME,
GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST when the bucket lives in the local emulator, and
LABEL_STUDIO_PUBLIC_URL where the browser's address differs from the API's (the CLI container).
"""
from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, NotFound
from .files import check_json_depth, read_user_text
from .gcs import check_bucket_name

DEFAULT_URL = "http://127.0.0.1:8080"


def read_dotenv(path: str | Path = ".env") -> dict[str, str]:
    """A `.env` file read by python-dotenv (the parser Compose v1 uses for the one docker-shell.sh writes):
    comments, single and double quotes, escapes in double quotes, an `export ` prefix. Values are taken as
    written: no ${VAR} expansion (python-dotenv would expand it even in single quotes). A line it cannot parse
    (a quote left open) is a ConfigError naming the line, not a value silently cut; a key without `=` is skipped."""
    import io

    from dotenv.parser import parse_stream

    path = Path(path)
    if not path.is_file():
        return {}
    values: dict[str, str | None] = {}
    # one pass of python-dotenv's parser: what dotenv_values(interpolate=False) builds, and the line of an error
    for binding in parse_stream(io.StringIO(read_user_text(path, "settings file"))):
        if binding.error:
            key = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=", binding.original.string)
            where = f"line {binding.original.line}" + (f" ({key.group(1)})" if key else "")  # never the value
            raise ConfigError(f"settings file {path}, {where} cannot be read; write KEY=VALUE (quote a value "
                              "holding spaces or #, and close the quote)")
        if binding.key is not None:
            values[binding.key] = binding.value
    return {k: v for k, v in values.items() if v is not None}


def setting(name: str, default: str | None = None) -> str | None:
    """An environment variable, else NAME_FILE (a file holding it, as Docker secrets are), else `.env`."""
    value = os.environ.get(name)
    if value:
        return value
    file = os.environ.get(name + "_FILE")
    if file and Path(file).is_file():
        return read_user_text(file, name + "_FILE").strip()
    return read_dotenv().get(name) or default


def check_url(url: str | None, what: str) -> str:
    """An http(s) URL with a host; ConfigError naming the setting otherwise."""
    try:
        parts = urllib.parse.urlsplit(url or "")
        parts.hostname  # noqa: B018  (raises on a bracket left open: http://[::1)
    except ValueError:
        raise ConfigError(f"{what} is not an http(s) URL: {url!r}; e.g. http://127.0.0.1:8080") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise ConfigError(f"{what} is not an http(s) URL: {url!r}; e.g. http://127.0.0.1:8080")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number or out of range)
    except ValueError:
        raise ConfigError(f"{what} has an invalid port: {url!r}") from None
    return url


@dataclass
class Settings:
    url: str = DEFAULT_URL
    api_key: str | None = None
    bucket: str | None = None
    credentials_file: str | None = None
    emulator_host: str | None = None
    public_url: str | None = None  # where a browser reaches Label Studio, when not `url` (a container network)

    @property
    def browser_url(self) -> str:
        """The URL a person opens (links, the CORS origin): LABEL_STUDIO_PUBLIC_URL, else the API URL."""
        return self.public_url or self.url

    @classmethod
    def load(cls, url: str | None = None, api_key: str | None = None, bucket: str | None = None,
             credentials_file: str | None = None) -> "Settings":
        return cls(
            url=(url or setting("LABEL_STUDIO_URL", DEFAULT_URL)).rstrip("/"),
            api_key=api_key or setting("LABEL_STUDIO_API_KEY"),
            bucket=bucket or setting("GCS_BUCKET_NAME"),
            credentials_file=credentials_file or setting("GOOGLE_APPLICATION_CREDENTIALS"),
            emulator_host=setting("STORAGE_EMULATOR_HOST"),
            public_url=(setting("LABEL_STUDIO_PUBLIC_URL") or "").rstrip("/") or None,
        )

    def require_api_key(self) -> str:
        if not self.api_key:
            raise ConfigError("no Label Studio API token: set LABEL_STUDIO_API_KEY or pass --api-key")
        if any(c.isspace() or ord(c) < 32 for c in self.api_key):
            raise ConfigError("the Label Studio API token holds a space or a line break; copy it again "
                              "(Account & Settings > Access Token) into LABEL_STUDIO_API_KEY")
        if not self.api_key.isascii() or not self.api_key.isprintable() or len(self.api_key) > 4096:
            raise ConfigError("the Label Studio API token holds characters no token has (letters, digits and "
                              "-_.: only); copy it again (Account & Settings > Access Token) into LABEL_STUDIO_API_KEY")
        return self.api_key

    def require_url(self) -> str:
        return check_url(self.url, "LABEL_STUDIO_URL (or --url)")

    def require_bucket(self, bucket: str | None = None) -> str:
        name = bucket or self.bucket
        if not name:
            raise ConfigError("no bucket: set GCS_BUCKET_NAME or pass --bucket")
        return check_bucket_name(name)


# what Google's client libraries need of each kind of key file
CREDENTIAL_FIELDS = {
    "service_account": ("client_email", "private_key", "token_uri"),
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
    "external_account": ("audience", "token_url"),
}


def load_credentials(path: str | None) -> dict | None:
    """The service-account JSON's content, checked before it is sent anywhere. None means no key (emulator)."""
    if not path:
        return None
    if not Path(path).is_file():
        raise NotFound(f"credentials file not found: {path} (set GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON)")
    text = read_user_text(path, "credentials file")
    check_json_depth(text, f"credentials file {path}")
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"credentials file is not JSON: {path} (download the service-account key as JSON)") from None
    if not isinstance(content, dict) or "type" not in content:
        raise ConfigError(f"credentials file is not a service-account key: {path} (no 'type' field)")
    needed = CREDENTIAL_FIELDS.get(content["type"])
    if needed is None:
        raise ConfigError(f"credentials file {path} is of type {str(content['type'])[:40]!r}; use a service-account key "
                          f"({', '.join(CREDENTIAL_FIELDS)})")
    missing = [k for k in needed if not isinstance(content.get(k), str) or not content[k].strip()]
    if missing:
        raise ConfigError(f"credentials file {path} lacks {', '.join(missing)}; download the key again (JSON)")
    return content
