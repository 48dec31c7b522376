"""Retries of storage calls: how long to keep trying an unreachable or failing storage API before one error line,
who hears of each retry, and the mapping of google-cloud errors to one-line LabErrors."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable

from ..adapters.gcs_client import default_retry_predicate
from ..errors import ConfigError, NotFound, ServerError

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


def note_retry(what: str, attempt: int, exc: BaseException) -> None:
    if _on_retry is not None:
        _on_retry(f"retry {attempt} for {what}: {short_error(exc)}")


def api_retry(what: str):
    """google-cloud-storage's default retry (same errors), bounded by retry_timeout(), each retry reported."""
    from google.api_core.retry import Retry

    attempts = [0]

    def on_error(exc: Exception) -> None:
        attempts[0] += 1
        note_retry(what, attempts[0], exc)

    return Retry(predicate=default_retry_predicate(), initial=0.5, maximum=8.0, timeout=retry_timeout(),
                 on_error=on_error)


def short_error(exc: BaseException | None) -> str:
    """An exception as a short phrase: urllib3's connection errors nest three messages deep."""
    if exc is None:
        return "unknown"
    text = str(exc)
    if "Failed to establish a new connection: " in text:  # urllib3
        text = text.split("Failed to establish a new connection: ", 1)[1].split("]", 1)[-1].strip(" \"')") or text
    elif text.startswith("Cannot connect to host"):  # aiohttp
        text = text.split(" [", 1)[0]
    return (text.splitlines() or [type(exc).__name__])[0][:160]


def api_call(what: str, fn: Callable, not_found: str | None = None):
    """Run one metadata call, mapping google-cloud errors to one-line LabErrors (`not_found`: the whole line for
    a 404, else "WHAT: not found")."""
    from google.api_core import exceptions

    import requests

    try:
        return fn()
    except exceptions.NotFound:
        raise NotFound(not_found or f"{what}: not found") from None
    except exceptions.RetryError as exc:
        raise ServerError(f"{what}: cannot reach the storage API: gave up after {retry_timeout():g} s of retries "
                          f"({RETRY_HINT}); last error: "
                          f"{short_error(exc.cause)}") from None
    except exceptions.GoogleAPIError as exc:
        raise ServerError(f"{what}: {exc}".splitlines()[0]) from None
    except requests.exceptions.RequestException as exc:
        raise ServerError(f"{what}: cannot reach the storage API ({short_error(exc)})") from None
