"""The in-process event bus: the default, for one process (a notebook, a test, a single server).

Same semantics as Redis Streams consumer groups (see :mod:`.base`), kept in dictionaries; idle
times are measured on the injected clock, so redelivery runs on virtual time in checks and tests.
It loses everything when the process exits: that is what the Redis backend is for.

Event ids are ``"<n>-0"``, ``n`` counting the events of *that topic* (as Redis numbers entries per
stream): an id says nothing about traffic on other topics, so a tenant reading its conversation's
stream learns nothing of other tenants' volume. Memory stays bounded: ``maxlen`` caps each topic's
log (approximately, as Redis' ``XADD MAXLEN ~``: trimmed in steps of a tenth; never an event a consumer
group still has to process), and a topic's wait condition exists only while a reader waits on it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Mapping

from ...clock import SYSTEM_CLOCK, Clock
from .base import BusError, Event, dead_letter_topic, decode_data, encode_data, id_key

__all__ = ["InMemoryBus"]

_TICK = 1e-3
"""Waits shorter than this count as expired (virtual loops keep microseconds; a sub-tick sleep is a no-op)."""


@dataclass
class _Pending:
    consumer: str
    delivered_at: float
    deliveries: int


@dataclass
class _Group:
    cursor: int = 0
    """Number (the ``n`` of ``"<n>-0"``) of the last event delivered to this group; 0: none yet."""
    pending: dict[str, _Pending] = field(default_factory=dict)


@dataclass
class _Topic:
    entries: list[str] = field(default_factory=list)
    """The payloads still kept, oldest first; ``entries[i]`` is event number ``head + i``."""
    head: int = 1
    last: int = 0
    """Number of the newest event ever published (ids keep increasing across trims)."""
    cond: asyncio.Condition | None = None
    """Exists only while a reader waits (a publish wakes only that topic's readers)."""
    waiters: int = 0

    def get(self, n: int) -> str | None:
        i = n - self.head
        return self.entries[i] if 0 <= i < len(self.entries) else None

    def after(self, n: int, count: int) -> list[tuple[int, str]]:
        start = max(0, n + 1 - self.head)
        return [(self.head + i, self.entries[i]) for i in range(start, min(len(self.entries), start + count))]


def _number(event_id: str) -> int:
    return id_key(event_id)[0]


class InMemoryBus:
    """An :class:`~.base.EventBus` in process memory (asyncio; not thread-safe: one event loop).

    ``maxlen``: the approximate number of events each topic keeps (the oldest are dropped in steps, as
    with Redis' ``MAXLEN ~``), except events a consumer group has not been given or not acknowledged,
    which are kept until it has; None keeps everything.
    """

    name = "in-process"

    def __init__(
        self,
        *,
        idle_timeout_s: float = 30.0,
        max_deliveries: int = 5,
        maxlen: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if idle_timeout_s < 0 or max_deliveries < 1:
            raise BusError("idle_timeout_s must be >= 0 and max_deliveries >= 1")
        if maxlen is not None and maxlen < 1:
            raise BusError("maxlen must be at least 1 (or None: keep everything)")
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_deliveries = int(max_deliveries)
        self.maxlen = maxlen
        self.clock = clock
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[tuple[str, str], _Group] = {}

    def _topic(self, topic: str) -> _Topic:
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _Topic()
        return state

    async def publish(self, topic: str, data: Mapping[str, Any]) -> str:
        text = encode_data(data)
        state = self._topic(topic)
        state.last += 1
        state.entries.append(text)
        if self.maxlen is not None and len(state.entries) > self.maxlen + max(1, self.maxlen // 10):
            self._trim(topic, state, len(state.entries) - self.maxlen)
        if state.cond is not None:  # nobody waits on this topic: nobody to wake
            async with state.cond:
                state.cond.notify_all()
        return f"{state.last}-0"

    def _trim(self, topic: str, state: _Topic, drop: int) -> None:
        # Never an event a consumer group has not yet been given or has not acknowledged: that is the
        # pipeline's work, not history. Topics without groups (a conversation's stream) trim freely.
        for (t, _), group in self._groups.items():
            if t == topic:
                kept_from = min([group.cursor + 1, *(_number(i) for i in group.pending)])
                drop = min(drop, kept_from - state.head)
        if drop > 0:
            del state.entries[:drop]
            state.head += drop

    async def ensure_group(self, topic: str, group: str) -> None:
        self._topic(topic)
        self._groups.setdefault((topic, group), _Group())

    def _group(self, topic: str, group: str) -> _Group:
        try:
            return self._groups[(topic, group)]
        except KeyError:
            raise BusError(f"no consumer group {group!r} on topic {topic!r}: call ensure_group first") from None

    async def _claim_idle(self, topic: str, group: str, consumer: str, count: int) -> list[Event]:
        state, log = self._group(topic, group), self._topic(topic)
        now = self.clock.monotonic()
        claimed: list[Event] = []
        for event_id, entry in sorted(state.pending.items(), key=lambda kv: _number(kv[0])):
            if len(claimed) >= count:
                break
            if now - entry.delivered_at < self.idle_timeout_s:
                continue
            text = log.get(_number(event_id))
            if text is None:  # trimmed away while pending: nothing left to deliver (as Redis does)
                state.pending.pop(event_id, None)
                continue
            if entry.deliveries >= self.max_deliveries:
                await self._dead_letter(topic, group, event_id, entry.deliveries, text)
                continue
            entry.consumer, entry.delivered_at, entry.deliveries = consumer, now, entry.deliveries + 1
            claimed.append(Event(topic, event_id, decode_data(text), entry.deliveries))
        return claimed

    async def _dead_letter(self, topic: str, group: str, event_id: str, deliveries: int, text: str) -> None:
        await self.publish(
            dead_letter_topic(topic),
            {"group": group, "event_id": event_id, "deliveries": deliveries, "data": decode_data(text)},
        )
        self._group(topic, group).pending.pop(event_id, None)

    def _take_new(self, topic: str, group: str, consumer: str, count: int) -> list[Event]:
        state = self._group(topic, group)
        taken = self._topic(topic).after(state.cursor, count)
        now = self.clock.monotonic()
        events = []
        for n, text in taken:
            event_id = f"{n}-0"
            state.cursor = n
            state.pending[event_id] = _Pending(consumer, now, 1)
            events.append(Event(topic, event_id, decode_data(text), 1))
        return events

    def _next_claim_in(self, topic: str, group: str) -> float | None:
        state = self._group(topic, group)
        if not state.pending:
            return None
        oldest = min(entry.delivered_at for entry in state.pending.values())
        return max(0.0, oldest + self.idle_timeout_s - self.clock.monotonic())

    async def read(
        self, topic: str, group: str, consumer: str, *, count: int = 10, block_s: float = 0.0
    ) -> list[Event]:
        if count < 1:
            raise BusError("count must be at least 1")
        deadline = self.clock.monotonic() + max(0.0, block_s)
        while True:
            events = await self._claim_idle(topic, group, consumer, count)
            if not events:
                events = self._take_new(topic, group, consumer, count)
            if events:
                return events
            remaining = deadline - self.clock.monotonic()
            if remaining < _TICK:  # a shorter wait may not move a virtual clock at all: spin for ever
                return []
            claim_in = self._next_claim_in(topic, group)
            wait = remaining if claim_in is None else min(remaining, max(claim_in, _TICK))
            await self._wait_for_publish(topic, wait)

    async def _wait_for_publish(self, topic: str, seconds: float) -> None:
        # The timer runs on the injected clock (virtual in checks), not on asyncio.wait_for's loop time.
        state = self._topic(topic)
        if state.cond is None:
            state.cond = asyncio.Condition()
        cond = state.cond
        state.waiters += 1

        async def changed() -> None:
            async with cond:
                await cond.wait()

        waiter = asyncio.ensure_future(changed())
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
            state.waiters -= 1
            if state.waiters == 0 and state.cond is cond:  # the last reader left: drop the condition
                state.cond = None
                if state.last == 0 and not any(t == topic for t, _ in self._groups):
                    del self._topics[topic]  # a stream opened on a topic never written: keep nothing

    async def touch(self, topic: str, group: str, consumer: str, event_id: str) -> bool:
        entry = self._group(topic, group).pending.get(event_id)
        if entry is None:
            return False
        entry.consumer, entry.delivered_at = consumer, self.clock.monotonic()
        return True

    async def ack(self, topic: str, group: str, event_id: str) -> bool:
        return self._group(topic, group).pending.pop(event_id, None) is not None

    async def tail(self, topic: str, after: str = "0", *, count: int = 100, block_s: float = 0.0) -> list[Event]:
        if count < 1:
            raise BusError("count must be at least 1")
        after_n = _number(after)  # "<n>-<m>" with m > 0 is still before event n + 1
        deadline = self.clock.monotonic() + max(0.0, block_s)
        while True:
            state = self._topics.get(topic)
            newer = state.after(after_n, count) if state is not None else []
            if newer:
                return [Event(topic, f"{n}-0", decode_data(text)) for n, text in newer]
            remaining = deadline - self.clock.monotonic()
            if remaining < _TICK:  # a shorter wait may not move a virtual clock at all: spin for ever
                return []
            await self._wait_for_publish(topic, remaining)

    async def pending(self, topic: str, group: str) -> int:
        return len(self._group(topic, group).pending)

    def backlog(self, topic: str, group: str) -> int:
        """Events of ``topic`` not yet delivered to ``group`` plus those delivered and not acknowledged:
        the queue a consumer group has still to work through (0 for an unknown group)."""
        state, g = self._topics.get(topic), self._groups.get((topic, group))
        if state is None or g is None:
            return 0
        return state.last - g.cursor + len(g.pending)

    async def length(self, topic: str) -> int:
        state = self._topics.get(topic)
        return len(state.entries) if state is not None else 0

    async def events(self, topic: str) -> list[Event]:
        state = self._topics.get(topic)
        if state is None:
            return []
        return [Event(topic, f"{state.head + i}-0", decode_data(text)) for i, text in enumerate(state.entries)]

    def topics(self) -> list[str]:
        """The topics this bus holds state for (events or consumer groups), sorted."""
        return sorted(self._topics)

    def waiting_topics(self) -> int:
        """How many topics have a reader waiting (each holds a condition only while one does)."""
        return sum(1 for state in self._topics.values() if state.cond is not None)

    async def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"InMemoryBus(topics={len(self._topics)}, idle_timeout_s={self.idle_timeout_s}, maxlen={self.maxlen})"
