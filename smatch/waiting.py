"""Polling until something holds: the demo, the end-to-end tests and the benches wait on the
database while a worker and a CPO platform work in other processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.1,
               error: type[Exception] = TimeoutError) -> T:
    """The first truthy value of `predicate()`, polled every `interval_s`; `error` naming `what`
    when `timeout_s` passes without one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise error(f"timed out after {timeout_s:.0f} s waiting for {what}")
