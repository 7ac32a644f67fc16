"""The event bus on Redis Streams: consumer groups, ``XACK``, and ``XAUTOCLAIM`` for redelivery.

Each topic is a stream (``<prefix>:<topic>``); :meth:`RedisStreamsBus.ensure_group` is
``XGROUP CREATE ... 0 MKSTREAM`` (the group reads the stream from its start). :meth:`read` first
claims pending entries idle for ``idle_timeout_s`` (``XAUTOCLAIM``; their delivery counts come from
``XPENDING``), else reads new entries with ``XREADGROUP ... >``. Redis keeps the pending entries
list (PEL) itself, so events survive the crash of any consumer, and of the process that published
them: at-least-once delivery across processes and restarts of the workers.

Idle time is measured by the Redis server on its own clock (``XAUTOCLAIM``'s ``min-idle-time``): the
one timing the bus cannot take from an injected clock. Tests therefore use tiny idle timeouts for
"is redelivered" and long ones for "is not redelivered yet", never a measured duration.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import BusError, Event, dead_letter_topic, decode_data, encode_data, id_key

__all__ = ["RedisStreamsBus"]


class RedisStreamsBus:
    """An :class:`~.base.EventBus` on a real Redis server (``redis.asyncio``; one client per bus)."""

    name = "redis-streams"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "course:bus",
        idle_timeout_s: float = 30.0,
        max_deliveries: int = 5,
        maxlen: int | None = None,
    ) -> None:
        if idle_timeout_s < 0 or max_deliveries < 1:
            raise BusError("idle_timeout_s must be >= 0 and max_deliveries >= 1")
        import redis.asyncio as aioredis

        self.url = url
        self.prefix = prefix
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_deliveries = int(max_deliveries)
        self.maxlen = maxlen
        """Approximate cap on each stream's length (``XADD MAXLEN ~``); None keeps everything."""
        self._redis = aioredis.Redis.from_url(url, decode_responses=True)

    def key(self, topic: str) -> str:
        """The Redis key of ``topic``'s stream."""
        return f"{self.prefix}:{topic}"

    async def publish(self, topic: str, data: Mapping[str, Any]) -> str:
        fields = {"data": encode_data(data)}
        if self.maxlen is None:
            return await self._redis.xadd(self.key(topic), fields)
        return await self._redis.xadd(self.key(topic), fields, maxlen=self.maxlen, approximate=True)

    async def ensure_group(self, topic: str, group: str) -> None:
        import redis

        try:
            await self._redis.xgroup_create(self.key(topic), group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _call(self, coro: Any, topic: str, group: str) -> Any:
        import redis

        try:
            return await coro
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                raise BusError(f"no consumer group {group!r} on topic {topic!r}: call ensure_group first") from None
            raise

    async def _deliveries(self, topic: str, group: str, event_id: str) -> int:
        rows = await self._redis.xpending_range(self.key(topic), group, min=event_id, max=event_id, count=1)
        return int(rows[0]["times_delivered"]) if rows else 1

    async def _claim_idle(self, topic: str, group: str, consumer: str, count: int) -> list[Event]:
        key = self.key(topic)
        idle_ms = int(self.idle_timeout_s * 1000)
        claimed: list[Event] = []
        start = "0-0"
        while len(claimed) < count:
            reply = await self._call(
                self._redis.xautoclaim(key, group, consumer, min_idle_time=idle_ms, start_id=start, count=count),
                topic,
                group,
            )
            start, entries = reply[0], reply[1]
            for event_id, fields in entries:
                if fields is None:  # trimmed away while pending: nothing left to deliver
                    await self._redis.xack(key, group, event_id)
                    continue
                deliveries = await self._deliveries(topic, group, event_id)
                data = decode_data(fields["data"])
                if deliveries > self.max_deliveries:
                    await self.publish(
                        dead_letter_topic(topic),
                        {"group": group, "event_id": event_id, "deliveries": deliveries - 1, "data": data},
                    )
                    await self._redis.xack(key, group, event_id)
                    continue
                claimed.append(Event(topic, event_id, data, deliveries))
            if start == "0-0":  # the scan of the pending list is complete
                break
        return claimed

    async def read(
        self, topic: str, group: str, consumer: str, *, count: int = 10, block_s: float = 0.0
    ) -> list[Event]:
        if count < 1:
            raise BusError("count must be at least 1")
        events = await self._claim_idle(topic, group, consumer, count)
        if events:
            return events
        block_ms = int(block_s * 1000)
        reply = await self._call(
            self._redis.xreadgroup(group, consumer, {self.key(topic): ">"}, count=count, block=block_ms or None),
            topic,
            group,
        )
        return [
            Event(topic, event_id, decode_data(fields["data"]), 1)
            for _, entries in reply or []
            for event_id, fields in entries
        ]

    async def touch(self, topic: str, group: str, consumer: str, event_id: str) -> bool:
        # XCLAIM ... JUSTID resets the entry's idle time and does not increment its delivery count.
        claimed = await self._call(
            self._redis.xclaim(self.key(topic), group, consumer, min_idle_time=0, message_ids=[event_id], justid=True),
            topic,
            group,
        )
        return bool(claimed)

    async def ack(self, topic: str, group: str, event_id: str) -> bool:
        return bool(await self._call(self._redis.xack(self.key(topic), group, event_id), topic, group))

    async def tail(self, topic: str, after: str = "0", *, count: int = 100, block_s: float = 0.0) -> list[Event]:
        if count < 1:
            raise BusError("count must be at least 1")
        id_key(after)  # a clear error for a malformed id, before Redis gives a cryptic one
        block_ms = int(block_s * 1000)
        reply = await self._redis.xread({self.key(topic): after}, count=count, block=block_ms or None)
        return [
            Event(topic, event_id, decode_data(fields["data"]))
            for _, entries in reply or []
            for event_id, fields in entries
        ]

    async def pending(self, topic: str, group: str) -> int:
        summary = await self._call(self._redis.xpending(self.key(topic), group), topic, group)
        return int(summary["pending"])

    async def length(self, topic: str) -> int:
        return int(await self._redis.xlen(self.key(topic)))

    async def events(self, topic: str) -> list[Event]:
        rows = await self._redis.xrange(self.key(topic))
        return [Event(topic, event_id, decode_data(fields["data"])) for event_id, fields in rows]

    async def close(self) -> None:
        await self._redis.aclose()

    def __repr__(self) -> str:
        return f"RedisStreamsBus({self.url!r}, prefix={self.prefix!r}, idle_timeout_s={self.idle_timeout_s})"
