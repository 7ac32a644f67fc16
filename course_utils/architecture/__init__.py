"""Lesson 08: AI product architecture — an event-driven support desk composed of lessons 01-07.

* :mod:`.bus` — the event bus (in-process or Redis Streams), at-least-once, idempotent consumers.
"""

from .bus import (
    ANSWER_STREAMED,
    CONTEXT_READY,
    MESSAGE_RECEIVED,
    PIPELINE,
    USAGE_RECORDED,
    BusError,
    ConsumerStats,
    Event,
    EventBus,
    IdempotentHandler,
    InMemoryBus,
    ProcessedLog,
    RedisStreamsBus,
    consume,
    dead_letter_topic,
)

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
    "IdempotentHandler",
    "ProcessedLog",
]
