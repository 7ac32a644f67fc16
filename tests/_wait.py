"""Waiting on what no virtual clock drives: a real server thread, a subprocess, a browser.

:func:`wait_until` waits for a condition, within a deadline, and fails with what it waited for and the
last value it saw. The deadline bounds a wait on real time (a hung server fails the test instead of
hanging it); it is never a measurement: no test asserts on how long a wait took.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

__all__ = ["wait_until"]

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str,
    every: float = 0.02,
    detail: Callable[[], str] | None = None,
) -> T:
    """Call ``condition`` every ``every`` seconds until it returns a true value, and return that value.

    After ``timeout`` real seconds, raise ``AssertionError`` naming ``what`` was awaited, with the last
    value (and ``detail()``, e.g. a server's log, if given).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            message = f"waited {timeout:g} s for {what}; the last check gave {value!r:.500}"
            raise AssertionError(message + (f"\n{detail()}" if detail is not None else ""))
        time.sleep(every)
