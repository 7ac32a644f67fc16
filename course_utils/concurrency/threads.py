"""The same fan-out with threads and the synchronous client, for comparison with asyncio.

A thread per request in flight works (the SDK's sync client is thread-safe and releases the GIL
while it waits on the network), and is the right tool inside synchronous code. Each thread costs
memory and a slot in a fixed pool, so it scales to tens of requests in flight, where asyncio
scales to thousands on one thread.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

from .structured import Outcome

__all__ = ["run_threaded"]

R = TypeVar("R")


def run_threaded(fn: Callable[[Any], R], items: Iterable[Any], *, workers: int,
                 on_done: Callable[[Outcome[R]], Any] | None = None) -> list[Outcome[R]]:
    """Call ``fn(item)`` on a pool of ``workers`` threads; one :class:`Outcome` per item, in input order."""
    if workers < 1:
        raise ValueError("workers must be at least 1")

    def run_one(indexed: tuple[int, Any]) -> Outcome[R]:
        index, item = indexed
        started = time.monotonic()
        try:
            value = fn(item)
        except Exception as exc:  # noqa: BLE001 - every error belongs to its item
            outcome: Outcome[R] = Outcome(index, item, error=exc, seconds=time.monotonic() - started)
        else:
            outcome = Outcome(index, item, value=value, seconds=time.monotonic() - started)
        if on_done is not None:
            on_done(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm") as pool:
        # map() yields in input order; the with-block joins every thread before returning.
        return list(pool.map(run_one, enumerate(items)))
