"""Consuming events at least once, processing them once: the consumer loop and the idempotent handler.

The two rules of a consumer under at-least-once delivery:

1. **Acknowledge after processing**, never before: an event acked and then lost to a crash is
   gone for good; one processed and not acked is redelivered, so nothing is lost.
2. **Make processing idempotent**: a redelivered event (its consumer crashed after doing the work
   but before the ack, or was merely slow past the idle timeout) must not do the work twice.
   :class:`IdempotentHandler` records each event's *business key* (e.g. the message id, which
   stays the same when an event is re-published, unlike the bus id) once its work succeeded, and
   skips the work for a key it has seen. The work itself should write its results keyed the same
   way, so a crash between the work and the record is caught too.

While a handler runs, :func:`consume` renews the event's lease (:meth:`EventBus.touch`) every
third of the idle timeout, so a slow handler keeps its event and only a dead consumer's event is
redelivered; the idle timeout is then the time to *detect* a crash, not a bound on processing time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from ...sqlite_store import connect, migrate
from .base import Event, EventBus

__all__ = ["Handler", "ConsumerStats", "consume", "ProcessedLog", "IdempotentHandler"]

log = logging.getLogger("course_utils.architecture.bus")

Handler = Callable[[Event], Awaitable[Any]]
"""Processes one event; raising leaves the event pending (it is redelivered after the idle timeout)."""


@dataclass
class ConsumerStats:
    """What one consumer loop did."""

    delivered: int = 0
    acked: int = 0
    failed: int = 0
    """Handler raised: the event stays pending and comes back after the idle timeout."""
    redelivered: int = 0


async def consume(
    bus: EventBus,
    topic: str,
    group: str,
    consumer: str,
    handler: Handler,
    *,
    stop: asyncio.Event | None = None,
    count: int = 10,
    block_s: float = 0.5,
    stats: ConsumerStats | None = None,
) -> ConsumerStats:
    """Read ``topic`` as ``consumer`` of ``group`` until ``stop`` is set: handle each event, then ack it.

    A handler that raises leaves its event pending (logged, counted in ``failed``); cancelling the
    task (a crash) leaves the event being handled pending too. Returns the stats (also updated in
    place in ``stats`` while running, for live dashboards).
    """
    stats = stats if stats is not None else ConsumerStats()
    await bus.ensure_group(topic, group)
    while stop is None or not stop.is_set():
        for event in await bus.read(topic, group, consumer, count=count, block_s=block_s):
            stats.delivered += 1
            stats.redelivered += event.redelivered
            try:
                await _with_lease(bus, topic, group, consumer, event, handler)
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the consumer; it stays pending
                stats.failed += 1
                # Routine under at-least-once delivery (the event comes back after the idle timeout), so
                # info, not an alarm: what to alert on is ``failed`` climbing and the dead-letter topic.
                log.info(
                    "%s/%s: handling %s %s failed (%s: %s); left pending",
                    group,
                    consumer,
                    topic,
                    event.id,
                    type(exc).__name__,
                    exc,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                continue
            await bus.ack(topic, group, event.id)
            stats.acked += 1
    return stats


async def _with_lease(bus: EventBus, topic: str, group: str, consumer: str, event: Event, handler: Handler) -> Any:
    """Run ``handler(event)`` while renewing the event's lease every third of the idle timeout, so a
    slow handler (a long model stream) is not mistaken for a dead one and redelivered under it."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(bus.idle_timeout_s / 3)
            await bus.touch(topic, group, consumer, event.id)

    renewer = asyncio.create_task(renew()) if bus.idle_timeout_s > 0 else None
    try:
        return await handler(event)
    finally:
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)


class ProcessedLog:
    """Which business keys a consumer group has finished processing, in SQLite (a file is shared by
    processes and survives restarts; ``":memory:"`` for one process)."""

    MIGRATIONS: tuple[str, ...] = (
        # 1: the original schema (IF NOT EXISTS: a file written before versions opens as version 1).
        "CREATE TABLE IF NOT EXISTS processed (grp TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (grp, key))",
    )
    """The log's schema, one migration per entry (see :func:`course_utils.sqlite_store.migrate`)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = connect(self.path)
        migrate(self._db, self.MIGRATIONS)

    def seen(self, group: str, key: str) -> bool:
        """True if ``key`` was processed by ``group``."""
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM processed WHERE grp = ? AND key = ?", (group, key)).fetchone()
                is not None
            )

    def mark(self, group: str, key: str) -> bool:
        """Record ``key`` as processed by ``group``; False if it already was."""
        with self._lock:
            return self._db.execute("INSERT OR IGNORE INTO processed VALUES (?, ?)", (group, key)).rowcount == 1

    def count(self, group: str) -> int:
        """How many keys ``group`` has processed."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM processed WHERE grp = ?", (group,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class IdempotentHandler:
    """Wrap ``handler`` so each business key (``key(event)``) is processed once per ``group``.

    A duplicate delivery returns ``None`` without calling ``handler`` (and is counted in
    ``duplicates``); the consumer loop then acks it, which is right: its work is done.
    """

    def __init__(
        self,
        handler: Handler,
        processed: ProcessedLog,
        group: str,
        *,
        key: Callable[[Event], str] = lambda event: str(event.data["message_id"]),
    ) -> None:
        self.handler = handler
        self.processed = processed
        self.group = group
        self.key = key
        self.calls = 0
        self.duplicates = 0

    async def __call__(self, event: Event) -> Any:
        key = self.key(event)
        if self.processed.seen(self.group, key):
            self.duplicates += 1
            return None
        self.calls += 1
        result = await self.handler(event)
        self.processed.mark(self.group, key)
        return result
