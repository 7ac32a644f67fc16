"""Bounded fan-out: many requests at once, but never more than ``limit`` in flight.

Unbounded ``asyncio.gather`` over 2,000 requests opens 2,000 connections at the same moment:
the connection pool queues most of them anyway, and the provider's rate limiter refuses the
rest. A semaphore caps the requests in flight; results come back in input order, whatever
order the requests finish in. This is the fail-fast form (the first error cancels the rest and
is raised); :func:`course_utils.concurrency.structured.run_all` keeps every result instead.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Iterable, TypeVar

__all__ = ["bounded_gather", "max_in_flight"]

R = TypeVar("R")


async def bounded_gather(fn: Callable[[Any], Awaitable[R]], items: Iterable[Any], *, limit: int) -> list[R]:
    """``[await fn(item) for item in items]``, at most ``limit`` at a time, results in input order.

    The first exception cancels the items still running and is raised as itself (not wrapped
    in an ``ExceptionGroup``).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    pending = list(items)
    results: list[Any] = [None] * len(pending)
    slots = asyncio.Semaphore(limit)

    async def run_one(index: int, item: Any) -> None:
        async with slots:
            results[index] = await fn(item)

    try:
        async with asyncio.TaskGroup() as group:
            for index, item in enumerate(pending):
                group.create_task(run_one(index, item))
    except BaseExceptionGroup as group_error:
        # One failure cancels its siblings; report the failure, not the cancellations it caused.
        first = next(
            (e for e in group_error.exceptions if not isinstance(e, asyncio.CancelledError)), group_error.exceptions[0]
        )
        raise first from None
    return results


def max_in_flight(intervals: Iterable[tuple[float, float]]) -> int:
    """Most intervals ``(start, end)`` open at the same moment (an end at ``t`` closes before a start at ``t``).

    Used on the simulator's ledger (``arrival``, ``finish``) to measure how many requests a
    client really had in flight.
    """
    # (time, order, delta): at one instant, ends (0) come before starts (1), and an instantaneous
    # interval closes (2) only after every start at that instant, so it still counts once.
    events: list[tuple[float, int, int]] = []
    for start, end in intervals:
        start, end = float(start), float(end)
        events.append((start, 1, 1))
        events.append((end, 2 if end <= start else 0, -1))
    events.sort()
    open_now = peak = 0
    for _, _, delta in events:
        open_now += delta
        peak = max(peak, open_now)
    return peak
