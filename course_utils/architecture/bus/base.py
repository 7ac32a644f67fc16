"""The event bus contract: topics, events, and the at-least-once delivery both backends keep.

A *topic* is an append-only log of events (one per event type of the pipeline). A *consumer
group* reads a topic once as a whole: each event goes to one consumer of the group, and every group
sees every event (from the start of the topic, so a group created late misses nothing).

Delivery is **at least once**. A consumer acknowledges an event (:meth:`EventBus.ack`) *after* it
has processed it. An event delivered but not acknowledged stays *pending*; once it has been idle
for ``idle_timeout_s``, the next :meth:`EventBus.read` of any consumer of the group claims it and
delivers it again (``deliveries`` counts the attempts). So a consumer that crashes loses nothing,
and a consumer may see the same event twice: handlers must be idempotent (:mod:`.consumer`).
An event delivered ``max_deliveries`` times without an ack is a *poison message*: it moves to the
topic's dead-letter topic (``<topic>.dead``) instead of being retried for ever.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable
from ..errors import ArchitectureError

__all__ = [
    "MESSAGE_RECEIVED",
    "CONTEXT_READY",
    "ANSWER_STREAMED",
    "USAGE_RECORDED",
    "PIPELINE",
    "Event",
    "EventBus",
    "BusError",
    "dead_letter_topic",
    "encode_data",
    "id_key",
    "decode_data",
]

MESSAGE_RECEIVED = "message.received"
CONTEXT_READY = "context.ready"
ANSWER_STREAMED = "answer.streamed"
USAGE_RECORDED = "usage.recorded"
PIPELINE = (MESSAGE_RECEIVED, CONTEXT_READY, ANSWER_STREAMED, USAGE_RECORDED)
"""The pipeline's topics, in the order a message goes through them."""


class BusError(ArchitectureError, ValueError):
    """A bad call to the bus (an unknown group, an event that is not a JSON object, ...)."""


def dead_letter_topic(topic: str) -> str:
    """Where events of ``topic`` go after ``max_deliveries`` failed deliveries."""
    return f"{topic}.dead"


def encode_data(data: Mapping[str, Any]) -> str:
    """An event's payload as JSON text; raises :class:`BusError` for anything but a JSON object."""
    if not isinstance(data, Mapping):
        raise BusError(f"event data must be a mapping (a JSON object), not {type(data).__name__}")
    try:
        return json.dumps(dict(data), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BusError(f"event data is not JSON-serialisable: {exc}") from exc


_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
_ID_MAX = 2**64 - 1  # each part is an unsigned 64-bit integer in Redis


def id_key(event_id: str) -> tuple[int, int]:
    """An event id (``"<ms>-<seq>"`` as Redis writes them) as a sortable pair; ``"0"`` is before every id.

    Raises :class:`BusError` for anything else (as Redis would, but before it is asked): decimal digits
    only, each part at most 2**64 - 1.
    """
    found = _ID.fullmatch(event_id) if isinstance(event_id, str) else None
    if found is None or int(found.group(1)) > _ID_MAX or int(found.group(2) or 0) > _ID_MAX:
        raise BusError(f"not an event id: {event_id!r}"[:120])
    return int(found.group(1)), int(found.group(2) or 0)


def decode_data(text: str) -> dict[str, Any]:
    """The payload :func:`encode_data` wrote."""
    return json.loads(text)


@dataclass(frozen=True)
class Event:
    """One delivery of an event: its ``topic``, bus-assigned ``id`` (unique and increasing within the
    topic), payload ``data``, and ``deliveries`` (1 the first time, more when redelivered)."""

    topic: str
    id: str
    data: dict[str, Any] = field(default_factory=dict)
    deliveries: int = 1

    @property
    def redelivered(self) -> bool:
        """True when an earlier delivery of this event was not acknowledged."""
        return self.deliveries > 1


@runtime_checkable
class EventBus(Protocol):
    """What the pipeline needs from a bus; :class:`~.memory.InMemoryBus` and
    :class:`~.redis_streams.RedisStreamsBus` implement it with the same semantics."""

    name: str
    idle_timeout_s: float
    max_deliveries: int

    async def publish(self, topic: str, data: Mapping[str, Any]) -> str:
        """Append an event to ``topic``; returns its id."""

    async def ensure_group(self, topic: str, group: str) -> None:
        """Create consumer group ``group`` on ``topic`` (reading from the start) unless it exists."""

    async def read(
        self, topic: str, group: str, consumer: str, *, count: int = 10, block_s: float = 0.0
    ) -> list[Event]:
        """Up to ``count`` events for ``consumer``: first pending events idle for ``idle_timeout_s``
        (redeliveries), else new ones, waiting up to ``block_s`` for one to arrive."""

    async def touch(self, topic: str, group: str, consumer: str, event_id: str) -> bool:
        """Reset the idle time of ``consumer``'s pending ``event_id`` (a lease renewal while it is still
        being processed), without counting a delivery. False if the event is not pending."""

    async def ack(self, topic: str, group: str, event_id: str) -> bool:
        """Acknowledge ``event_id``: it will not be delivered to ``group`` again. False if it was not pending."""

    async def tail(self, topic: str, after: str = "0", *, count: int = 100, block_s: float = 0.0) -> list[Event]:
        """Up to ``count`` events of ``topic`` with ids after ``after`` ("0": from the start), waiting up
        to ``block_s`` for one; no group, no acks: for fan-out readers such as an SSE stream."""

    async def pending(self, topic: str, group: str) -> int:
        """How many events of ``group`` are delivered but not acknowledged."""

    async def length(self, topic: str) -> int:
        """How many events ``topic`` holds."""

    async def events(self, topic: str) -> list[Event]:
        """Every event of ``topic``, oldest first (for inspection and tests)."""

    async def close(self) -> None:
        """Release connections (idempotent)."""
