"""The event bus of lesson 08: one interface, two backends, at-least-once delivery.

* :mod:`.base` — topics (the pipeline's four events), :class:`Event`, the :class:`EventBus` contract;
* :mod:`.memory` — :class:`InMemoryBus`, in process (the default; idle times on the injected clock);
* :mod:`.redis_streams` — :class:`RedisStreamsBus`, Redis Streams consumer groups (``XREADGROUP``,
  ``XACK``, ``XAUTOCLAIM``) on a real server, shared by processes;
* :mod:`.consumer` — :func:`consume` (handle, then ack) and :class:`IdempotentHandler` (process once).
"""

from .base import (
    ANSWER_STREAMED,
    CONTEXT_READY,
    MESSAGE_RECEIVED,
    PIPELINE,
    USAGE_RECORDED,
    BusError,
    Event,
    EventBus,
    dead_letter_topic,
)
from .consumer import ConsumerStats, Handler, IdempotentHandler, ProcessedLog, consume
from .memory import InMemoryBus
from .redis_streams import RedisStreamsBus

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
    "InMemoryBus",
    "RedisStreamsBus",
    "consume",
    "ConsumerStats",
    "Handler",
    "IdempotentHandler",
    "ProcessedLog",
]
