"""Wait on a condition, never a fixed time: poll until it holds, fail with what was awaited after `timeout`.

    from waiting import wait_until
    wait_until(lambda: out.exists(), 60, "the export's output")
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 60, what: str = "the condition",
               interval: float = 0.02) -> T:
    """The first truthy value of `condition()`, polled every `interval` s; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
