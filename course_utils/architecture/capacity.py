"""Capacity planning: how many conversations per minute an organisation's limits and a worker pool sustain.

A turn is one model call. Four limits cap the turns per minute, and the smallest one binds:

* the organisation's requests per minute (RPM) for the model: ``rpm`` turns;
* its input tokens per minute (ITPM): ``itpm / input_tokens_per_turn`` turns;
* its output tokens per minute (OTPM): ``otpm / output_tokens_per_turn`` turns;
* the workers, by Little's law (in flight = throughput x latency): ``workers * 60 / latency_s`` turns.

The Messages API refills each per-minute limit continuously ("your capacity is continuously replenished
up to your maximum limit": https://platform.claude.com/docs/en/api/rate-limits), so the long-run rate is
the refill rate, not a minute's burst; limits belong to the organisation (every key and workspace of it
shares them) and apply per model group, so plan one organisation-and-model at a time.
Conversations per minute are the binding turn rate over the turns per conversation.

:func:`simulate_conversations_per_minute` measures the same figure the hard way, on virtual time:
workers that take from the three buckets (lesson 03's :class:`~course_utils.concurrency.TokenBucket`)
before each call and then wait out the model's latency; it is what the formula is checked against.
"""

from __future__ import annotations

import math

import asyncio
from dataclasses import dataclass

from ..clock import SYSTEM_CLOCK, run_virtual
from ..concurrency import TokenBucket

__all__ = [
    "workers_for",
    "CapacityInputs",
    "turn_limits",
    "binding_limit",
    "conversations_per_minute",
    "simulate_conversations_per_minute",
]


@dataclass(frozen=True)
class CapacityInputs:
    """The organisation's limits for one model, the shape of the traffic and the worker pool (all positive)."""

    rpm: float
    """Requests per minute of the organisation (every key and workspace shares it)."""
    itpm: float
    """Input tokens per minute of the organisation."""
    otpm: float
    """Output tokens per minute of the organisation."""
    input_tokens_per_turn: float
    """Mean input tokens of one model call that count toward ITPM: ``input_tokens`` plus
    ``cache_creation_input_tokens``; cache reads do not count (docs/api-notes.md, "What counts")."""
    output_tokens_per_turn: float
    """Mean output tokens one model call generates (OTPM counts what is generated, not ``max_tokens``)."""
    turns_per_conversation: float
    """Model calls per conversation."""
    latency_s: float
    """Seconds one model call holds its worker."""
    workers: int
    """Model calls the pipeline runs at once (the model consumers)."""

    def __post_init__(self) -> None:
        bad = {name: value for name, value in vars(self).items() if not value > 0}
        if bad:
            raise ValueError(f"every capacity input must be positive, got {bad}")


def turn_limits(p: CapacityInputs) -> dict[str, float]:
    """Turns (model calls) per minute each limit allows, keyed ``rpm``, ``itpm``, ``otpm``, ``workers``."""
    return {
        "rpm": p.rpm,
        "itpm": p.itpm / p.input_tokens_per_turn,
        "otpm": p.otpm / p.output_tokens_per_turn,
        "workers": p.workers * 60.0 / p.latency_s,  # Little's law: L = lambda * W
    }


def workers_for(turns_per_minute: float, latency_s: float, *, utilisation: float = 0.7) -> int:
    """Workers (concurrent model calls) to provision for ``turns_per_minute`` by Little's law, with headroom.

    Little's law gives the mean number in flight, ``L = lambda * W``; a pool sized to exactly that runs at
    100% utilisation, where queues grow without bound on any burst. Pass a high percentile of the latency
    (p95, not the mean) for ``latency_s`` and divide by a target ``utilisation`` (0.7: 30% headroom).
    """
    if turns_per_minute < 0 or latency_s <= 0 or not 0 < utilisation <= 1:
        raise ValueError("turns_per_minute >= 0, latency_s > 0 and 0 < utilisation <= 1 are required")
    return max(1, math.ceil(turns_per_minute / 60.0 * latency_s / utilisation - 1e-9))


def binding_limit(p: CapacityInputs) -> str:
    """The name of the limit that caps the throughput (the smallest of :func:`turn_limits`)."""
    limits = turn_limits(p)
    return min(limits, key=limits.__getitem__)


def conversations_per_minute(p: CapacityInputs) -> float:
    """Sustainable conversations per minute: the binding turn rate over the turns per conversation."""
    return min(turn_limits(p).values()) / p.turns_per_conversation


def simulate_conversations_per_minute(
    p: CapacityInputs, *, minutes: float = 10.0, warmup_minutes: float = 1.0
) -> float:
    """Measure conversations per minute on virtual time: ``p.workers`` workers call a model of latency
    ``p.latency_s`` as fast as the organisation's three buckets allow; turns completed during ``minutes`` (after
    ``warmup_minutes``) over the turns per conversation. Buckets start empty, so no burst inflates it."""
    if minutes <= 0 or warmup_minutes < 0:
        raise ValueError("minutes must be positive and warmup_minutes not negative")

    async def measure() -> float:
        clock = SYSTEM_CLOCK
        # One second of each rate as the burst: a minute's worth would be spent at once and skew a short run.
        buckets = [
            (TokenBucket(max(1.0, p.rpm / 60), p.rpm / 60, clock=clock, level=0.0), 1.0),
            (
                TokenBucket(max(p.input_tokens_per_turn, p.itpm / 60), p.itpm / 60, clock=clock, level=0.0),
                p.input_tokens_per_turn,
            ),
            (
                TokenBucket(max(p.output_tokens_per_turn, p.otpm / 60), p.otpm / 60, clock=clock, level=0.0),
                p.output_tokens_per_turn,
            ),
        ]
        start = clock.monotonic()
        begin, end = start + warmup_minutes * 60, start + (warmup_minutes + minutes) * 60
        done = 0

        async def worker() -> None:
            nonlocal done
            while clock.monotonic() < end:
                for bucket, n in buckets:
                    await bucket.acquire(n)
                await clock.sleep(p.latency_s)
                if begin <= clock.monotonic() < end:
                    done += 1

        await asyncio.gather(*(worker() for _ in range(p.workers)))
        return done / minutes / p.turns_per_conversation

    return run_virtual(measure(), limit=(warmup_minutes + minutes) * 60 + 3600)
