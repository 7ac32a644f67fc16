"""Clocks: the single source of time for everything time-dependent.

Production code takes a ``Clock`` so tests can swap in a :class:`VirtualClock` and run hours of
simulated time (rate-limit windows, cache TTLs, batch processing, retry backoff) without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "VirtualClock", "SYSTEM_CLOCK"]


@runtime_checkable
class Clock(Protocol):
    """What time-dependent code needs from a clock."""

    def time(self) -> float:
        """Wall-clock time in seconds since the epoch (for timestamps, TTLs, rate-limit resets)."""

    def monotonic(self) -> float:
        """A monotonic reading in seconds, for measuring durations."""

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` of this clock's time."""

    def sleep_sync(self, seconds: float) -> None:
        """Blocking sleep for synchronous code (threads, sync clients)."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def sleep_sync(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class VirtualClock:
    """A clock that only moves when told to, for deterministic tests.

    Two modes:

    * ``auto_advance=True`` (default): ``sleep`` jumps time forward to the sleeper's deadline.
      Concurrent sleepers are woken in deadline order, so ``gather(sleep(1), sleep(2))`` takes
      2 virtual seconds, not 3. Ideal for testing pollers, backoff and dispatchers.
    * ``auto_advance=False``: sleepers wait until the test calls :meth:`advance`.
    """

    def __init__(self, start: float = 1_800_000_000.0, *, auto_advance: bool = True) -> None:
        self._now = float(start)
        self._start = float(start)
        self.auto_advance = auto_advance
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    def sleep_sync(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._seq), fut))
        if self.auto_advance and (self._driver is None or self._driver.done()):
            self._driver = loop.create_task(self._drive())
        await fut

    async def _drive(self) -> None:
        # Let every runnable task reach its next await before moving time, so that concurrent
        # sleepers all register first and are woken in deadline order.
        while self._sleepers:
            for _ in range(5):
                await asyncio.sleep(0)
            if not self._sleepers:
                break
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper whose deadline has passed."""
        target = self._now + max(0.0, seconds)
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            await asyncio.sleep(0)
        self._now = target
        await asyncio.sleep(0)

    def advance_sync(self, seconds: float) -> None:
        """Move time forward without waking async sleepers (for purely synchronous tests)."""
        self._now += max(0.0, seconds)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now:.3f})"
