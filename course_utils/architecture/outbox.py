"""The transactional outbox's relay: publish what the store committed, in order, at least once.

:meth:`~.store.DeskStore.add_message` writes a new message and its ``message.received`` event in one
SQLite transaction. :class:`OutboxRelay` then publishes each unpublished event to the bus and marks it
published. A crash between the commit and the publish leaves the event in the outbox, and the next
:meth:`~OutboxRelay.flush` (the pipeline's relay loop) publishes it; a crash between the publish and
the mark publishes it again, which the consumers' inbox absorbs. This is the standard answer to the
dual write (Richardson, *Microservices Patterns*, "Transactional outbox"; Debezium's outbox router
does the same from the database's log).
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from ..clock import SYSTEM_CLOCK, Clock
from .bus import EventBus
from .store import DeskStore

__all__ = ["OutboxRelay"]


class OutboxRelay:
    """Publishes the store's outbox to the bus (see the module docstring). One per process is enough;
    two (a rolling deploy) may publish an event twice, never lose one."""

    def __init__(
        self,
        store: DeskStore,
        bus: EventBus,
        *,
        clock: Clock = SYSTEM_CLOCK,
        fault: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.bus = bus
        self.fault = fault
        """Called after each publish, before the mark (a test's way to crash the relay there)."""
        self.published = 0
        self._lock = asyncio.Lock()

    async def flush(self) -> int:
        """Publish every unpublished outbox event, oldest first; returns how many this call published."""
        n = 0
        async with self._lock:
            while batch := self.store.unpublished(100):
                for seq, topic, data in batch:
                    event_id = await self.bus.publish(topic, data)
                    if self.fault is not None:
                        await self.fault()
                    self.store.mark_published(seq, event_id)
                    n += 1
        self.published += n
        return n

    async def run(self, stop: asyncio.Event, *, poll_s: float = 1.0) -> None:
        """Flush every ``poll_s`` until ``stop`` is set: what a crash left in the outbox goes out."""
        while not stop.is_set():
            await self.flush()
            await self.clock.sleep(poll_s)
