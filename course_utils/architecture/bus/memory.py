"""The in-process event bus: the default, for one process (a notebook, a test, a single server).

Same semantics as Redis Streams consumer groups (see :mod:`.base`), kept in dictionaries; idle
times are measured on the injected clock, so redelivery runs on virtual time in checks and tests.
It loses everything when the process exits: that is what the Redis backend is for.
"""

from __future__ import annotations

import asyncio
import itertools
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
    """Index in the topic's log of the next event never delivered to this group."""
    pending: dict[str, _Pending] = field(default_factory=dict)


class InMemoryBus:
    """An :class:`~.base.EventBus` in process memory (asyncio; not thread-safe: one event loop)."""

    name = "in-process"

    def __init__(self, *, idle_timeout_s: float = 30.0, max_deliveries: int = 5, clock: Clock = SYSTEM_CLOCK) -> None:
        if idle_timeout_s < 0 or max_deliveries < 1:
            raise BusError("idle_timeout_s must be >= 0 and max_deliveries >= 1")
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_deliveries = int(max_deliveries)
        self.clock = clock
        self._logs: dict[str, list[tuple[str, str]]] = {}
        self._index: dict[str, dict[str, int]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._ids = itertools.count(1)
        # One condition per topic: a publish wakes only that topic's readers (a delta stream's
        # hundreds of publishes per answer would otherwise wake every stage's consumers).
        self._changed: dict[str, asyncio.Condition] = {}

    def _condition(self, topic: str) -> asyncio.Condition:
        cond = self._changed.get(topic)
        if cond is None:
            cond = self._changed[topic] = asyncio.Condition()
        return cond

    async def publish(self, topic: str, data: Mapping[str, Any]) -> str:
        text = encode_data(data)
        event_id = f"{next(self._ids)}-0"
        self._logs.setdefault(topic, []).append((event_id, text))
        self._index.setdefault(topic, {})[event_id] = len(self._logs[topic]) - 1
        cond = self._changed.get(topic)
        if cond is not None:  # nobody has waited on this topic yet: nobody to wake
            async with cond:
                cond.notify_all()
        return event_id

    async def ensure_group(self, topic: str, group: str) -> None:
        self._logs.setdefault(topic, [])
        self._groups.setdefault((topic, group), _Group())

    def _group(self, topic: str, group: str) -> _Group:
        try:
            return self._groups[(topic, group)]
        except KeyError:
            raise BusError(f"no consumer group {group!r} on topic {topic!r}: call ensure_group first") from None

    def _event(self, topic: str, event_id: str, deliveries: int) -> Event:
        _, text = self._logs[topic][self._index[topic][event_id]]
        return Event(topic, event_id, decode_data(text), deliveries)

    async def _claim_idle(self, topic: str, group: str, consumer: str, count: int) -> list[Event]:
        state = self._group(topic, group)
        now = self.clock.monotonic()
        claimed: list[Event] = []
        for event_id, entry in sorted(state.pending.items(), key=lambda kv: self._index[topic][kv[0]]):
            if len(claimed) >= count:
                break
            if now - entry.delivered_at < self.idle_timeout_s:
                continue
            if entry.deliveries >= self.max_deliveries:
                await self._dead_letter(topic, group, event_id, entry.deliveries)
                continue
            entry.consumer, entry.delivered_at, entry.deliveries = consumer, now, entry.deliveries + 1
            claimed.append(self._event(topic, event_id, entry.deliveries))
        return claimed

    async def _dead_letter(self, topic: str, group: str, event_id: str, deliveries: int) -> None:
        event = self._event(topic, event_id, deliveries)
        await self.publish(
            dead_letter_topic(topic),
            {"group": group, "event_id": event_id, "deliveries": deliveries, "data": event.data},
        )
        self._group(topic, group).pending.pop(event_id, None)

    def _take_new(self, topic: str, group: str, consumer: str, count: int) -> list[Event]:
        state = self._group(topic, group)
        log = self._logs[topic]
        taken = log[state.cursor : state.cursor + count]
        state.cursor += len(taken)
        now = self.clock.monotonic()
        for event_id, _ in taken:
            state.pending[event_id] = _Pending(consumer, now, 1)
        return [Event(topic, event_id, decode_data(text), 1) for event_id, text in taken]

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
        cond = self._condition(topic)

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
        after_key = id_key(after)
        deadline = self.clock.monotonic() + max(0.0, block_s)
        while True:
            newer = [(i, t) for i, t in self._logs.get(topic, []) if id_key(i) > after_key][:count]
            if newer:
                return [Event(topic, event_id, decode_data(text)) for event_id, text in newer]
            remaining = deadline - self.clock.monotonic()
            if remaining < _TICK:  # a shorter wait may not move a virtual clock at all: spin for ever
                return []
            await self._wait_for_publish(topic, remaining)

    async def pending(self, topic: str, group: str) -> int:
        return len(self._group(topic, group).pending)

    async def length(self, topic: str) -> int:
        return len(self._logs.get(topic, []))

    async def events(self, topic: str) -> list[Event]:
        return [Event(topic, event_id, decode_data(text)) for event_id, text in self._logs.get(topic, [])]

    async def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"InMemoryBus(topics={len(self._logs)}, idle_timeout_s={self.idle_timeout_s})"
