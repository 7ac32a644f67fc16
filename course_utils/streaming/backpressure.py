"""Backpressure: a bounded queue between a fast upstream (the model) and a slow client.

Without a bound, a relay reads the model as fast as it produces and keeps everything the client
has not taken yet: memory per connection grows with the reply and with how slowly the client
reads (a phone on a train). A bounded queue picks what happens when it is full:

* ``"pause"``: the upstream reader waits until the client takes something. Memory stays at
  ``maxsize`` deltas; TCP flow control then slows the upstream connection itself.
* ``"coalesce"``: the upstream keeps being read, and a new delta is appended to the last queued one
  instead of becoming a new item. The number of items (and of writes to the client) stays at
  ``maxsize``; no text is lost, the client just gets fewer, bigger pieces. Bytes still grow with
  the reply (never beyond it), so it suits short replies and upstreams that must be drained.
* ``"unbounded"``: the naive relay, for comparison.

Dropping deltas is never an option for text: the client would show a sentence with holes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterable, Awaitable, Callable, Sequence

from ..clock import SYSTEM_CLOCK, Clock, run_virtual

__all__ = ["POLICIES", "QueueStats", "DeltaQueue", "relay_deltas", "simulate_policy", "run_simulation"]

POLICIES = ("unbounded", "pause", "coalesce")


@dataclass
class QueueStats:
    """What a queue went through; ``trace`` holds ``(seconds, depth, buffered_bytes)`` samples."""

    policy: str
    maxsize: int
    puts: int = 0
    gets: int = 0
    coalesced: int = 0
    """Deltas merged into an already queued item (coalesce policy)."""
    max_depth: int = 0
    max_buffered_bytes: int = 0
    """Peak memory held by queued text (``sys.getsizeof`` of the items)."""
    paused_s: float = 0.0
    """Time the upstream reader spent waiting for room (pause policy)."""
    sent_chars: int = 0
    trace: list[tuple[float, int, int]] = field(default_factory=list)

    def frame(self) -> Any:
        """The trace as a pandas DataFrame: one row per sample, ``t_s``, ``depth``, ``buffered_bytes``
        (empty unless the queue was made with ``trace=True``)."""
        import pandas as pd

        return pd.DataFrame(self.trace, columns=["t_s", "depth", "buffered_bytes"])

    def summary(self) -> dict[str, Any]:
        """The headline figures (a row of a comparison table)."""
        return {
            "policy": self.policy,
            "maxsize": self.maxsize,
            "deltas_in": self.puts,
            "writes_out": self.gets,
            "coalesced": self.coalesced,
            "max_depth": self.max_depth,
            "max_buffered_bytes": self.max_buffered_bytes,
            "upstream_paused_s": self.paused_s,
        }


class DeltaQueue:
    """An asyncio queue of text deltas with a full-queue policy (see the module docstring)."""

    def __init__(
        self, maxsize: int = 16, policy: str = "pause", *, clock: Clock = SYSTEM_CLOCK, trace: bool = False
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if maxsize < 1 and policy != "unbounded":
            raise ValueError("maxsize must be >= 1")
        self.policy, self.maxsize, self.clock = policy, maxsize, clock
        self.stats = QueueStats(policy, maxsize)
        self._items: deque[str] = deque()
        self._bytes = 0
        self._closed = False
        self._changed = asyncio.Condition()
        self._trace = trace
        self._t0 = clock.monotonic()

    # ----- state ------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def _full(self) -> bool:
        return self.policy != "unbounded" and len(self._items) >= self.maxsize

    def _record(self) -> None:
        s = self.stats
        s.max_depth = max(s.max_depth, len(self._items))
        s.max_buffered_bytes = max(s.max_buffered_bytes, self._bytes)
        if self._trace:
            s.trace.append((self.clock.monotonic() - self._t0, len(self._items), self._bytes))

    # ----- producer side ----------------------------------------------------------------------
    async def put(self, text: str) -> None:
        """Queue one delta, applying the policy when the queue is full."""
        if self._closed:
            raise RuntimeError("put() after close()")
        async with self._changed:
            if self._full() and self.policy == "pause":
                waited_from = self.clock.monotonic()
                while self._full():
                    await self._changed.wait()
                self.stats.paused_s += self.clock.monotonic() - waited_from
            self.stats.puts += 1
            if self._full() and self.policy == "coalesce":
                tail = self._items.pop()
                merged = tail + text
                self._bytes += sys.getsizeof(merged) - sys.getsizeof(tail)
                self._items.append(merged)
                self.stats.coalesced += 1
            else:
                self._items.append(text)
                self._bytes += sys.getsizeof(text)
            self._record()
            self._changed.notify_all()

    async def close(self) -> None:
        """No more deltas: :meth:`get` returns ``None`` once the queue is drained."""
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    # ----- consumer side ----------------------------------------------------------------------
    async def get(self) -> str | None:
        """The next delta (or merged deltas), waiting for one; ``None`` after close and drain."""
        async with self._changed:
            while not self._items and not self._closed:
                await self._changed.wait()
            if not self._items:
                return None
            text = self._items.popleft()
            self._bytes -= sys.getsizeof(text)
            self.stats.gets += 1
            self.stats.sent_chars += len(text)
            self._record()
            self._changed.notify_all()
            return text


async def relay_deltas(
    source: AsyncIterable[str],
    send: Callable[[str], Awaitable[Any]],
    *,
    maxsize: int = 16,
    policy: str = "pause",
    clock: Clock = SYSTEM_CLOCK,
    trace: bool = False,
) -> QueueStats:
    """Pump ``source`` into a :class:`DeltaQueue` in one task and ``await send(text)`` from it in this one.

    Returns when the source is exhausted and everything was sent. If sending fails (the client
    left) or this task is cancelled, the reader task is cancelled too, so the upstream stops.
    """
    queue = DeltaQueue(maxsize, policy, clock=clock, trace=trace)

    async def pump() -> None:
        try:
            async for text in source:
                await queue.put(text)
        finally:
            await queue.close()

    reader = asyncio.create_task(pump())
    try:
        while (text := await queue.get()) is not None:
            await send(text)
        await reader  # re-raise an upstream failure
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return queue.stats


async def simulate_policy(
    delta_times: Sequence[float],
    deltas: Sequence[str],
    *,
    consumer_delay_s: float,
    maxsize: int,
    policy: str,
    clock: Clock | None = None,
) -> QueueStats:
    """Replay a recorded stream (``deltas`` arriving at ``delta_times`` seconds) to a client that
    takes ``consumer_delay_s`` per write, through a :class:`DeltaQueue`, on ``clock`` (default: the running
    loop's; on a :func:`~course_utils.clock.virtual_loop`, as :func:`run_simulation` runs it, virtual time)."""
    clock = clock or SYSTEM_CLOCK
    t0 = clock.monotonic()

    async def source() -> Any:
        for at, text in zip(delta_times, deltas):
            wait = t0 + at - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
            yield text

    async def slow_send(_text: str) -> None:
        await clock.sleep(consumer_delay_s)

    return await relay_deltas(source(), slow_send, maxsize=maxsize, policy=policy, clock=clock, trace=True)


def run_simulation(
    delta_times: Sequence[float], deltas: Sequence[str], *, consumer_delay_s: float, maxsize: int, policy: str
) -> QueueStats:
    """:func:`simulate_policy` from synchronous code (e.g. a widget callback inside a running kernel
    loop): it runs on a private virtual-time loop (in a worker thread if a loop is running) and takes no real time."""
    return run_virtual(
        simulate_policy(delta_times, deltas, consumer_delay_s=consumer_delay_s, maxsize=maxsize, policy=policy)
    )
