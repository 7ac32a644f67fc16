"""Client-side token buckets: spend the provider's rate limit without ever being refused.

The Messages API limits requests, input tokens and output tokens per minute with token buckets
that refill continuously (capacity = the per-minute limit, refill = limit / 60 per second). A
client that keeps its own copy of those buckets, and takes from them *before* sending, knows
when a request would be refused and waits exactly that long instead of finding out with a 429.

Everything reads an injectable :class:`~course_utils.clock.Clock`, so tests drive hours of
traffic on a ``VirtualClock`` without sleeping.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from ..clock import SYSTEM_CLOCK, Clock

__all__ = ["TokenBucket", "Cost", "RateBudget", "ExceedsBucketCapacity"]

_SLACK_S = 1e-6


class ExceedsBucketCapacity(ValueError):
    """A request needs more than a bucket can ever hold (e.g. more input tokens than the ITPM limit)."""


class TokenBucket:
    """A continuously refilling bucket of ``capacity`` tokens, ``refill_per_second`` back per second.

    Starts full unless ``level`` is given. :meth:`take` may drive the level negative (charging
    what was only known afterwards); refunds never overfill it.
    """

    def __init__(self, capacity: float, refill_per_second: float, *, clock: Clock = SYSTEM_CLOCK,
                 level: float | None = None) -> None:
        if capacity <= 0 or refill_per_second < 0:
            raise ValueError("capacity must be > 0 and refill_per_second >= 0")
        self.capacity = float(capacity)
        self.refill_per_second = float(refill_per_second)
        self._clock = clock
        self._level = self.capacity if level is None else min(float(level), self.capacity)
        self._last = clock.monotonic()

    @classmethod
    def per_minute(cls, limit: float, *, clock: Clock = SYSTEM_CLOCK, capacity: float | None = None) -> "TokenBucket":
        """A bucket for a per-minute limit: refills ``limit / 60`` per second; holds ``limit`` unless ``capacity`` is smaller."""
        return cls(capacity if capacity is not None else limit, limit / 60.0, clock=clock)

    def _refill(self) -> None:
        now = self._clock.monotonic()
        if now > self._last:
            self._level = min(self.capacity, self._level + (now - self._last) * self.refill_per_second)
            self._last = now

    @property
    def level(self) -> float:
        """Tokens available now (may be negative after an overdraft)."""
        self._refill()
        return self._level

    def time_until(self, n: float) -> float:
        """Seconds until ``n`` tokens are available: 0 if they are now, ``inf`` if never (``n`` > capacity)."""
        if n > self.capacity:
            return math.inf
        deficit = n - self.level
        # Clocks on epoch floats resolve ~1e-7 s; a deficit that refills in under a microsecond
        # is treated as paid, or a waiter could sleep 0 s forever.
        if deficit <= self.refill_per_second * _SLACK_S + 1e-9:
            return 0.0
        return math.inf if self.refill_per_second == 0 else deficit / self.refill_per_second

    def try_take(self, n: float) -> bool:
        """Take ``n`` tokens if all are available now; else take nothing and return False."""
        if self.time_until(n) > 0:
            return False
        self._level -= n
        return True

    def take(self, n: float) -> None:
        """Take ``n`` tokens whatever the level (a negative ``n`` refunds, up to capacity)."""
        self._refill()
        self._level = min(self.capacity, self._level - n)

    def lower_to(self, level: float) -> float:
        """Lower the level to ``level`` if it is higher (news from the provider); return how much was removed."""
        self._refill()
        removed = max(0.0, self._level - level)
        self._level -= removed
        return removed

    def set_limit(self, limit: float, capacity: float | None = None) -> None:
        """Adopt a new per-minute limit (the provider's ``*-limit`` header), keeping the current level."""
        self._refill()
        self.refill_per_second = float(limit) / 60.0
        self.capacity = float(capacity if capacity is not None else limit)
        self._level = min(self._level, self.capacity)

    async def acquire(self, n: float) -> float:
        """Wait until ``n`` tokens are available, take them, and return the seconds waited."""
        waited = 0.0
        while True:
            wait = self.time_until(n)
            if wait == math.inf:
                raise ExceedsBucketCapacity(f"{n:g} tokens can never fit in a bucket of {self.capacity:g}")
            if wait <= 0:
                self._level -= n
                return waited
            await self._clock.sleep(wait)
            waited += wait

    def __repr__(self) -> str:
        return f"TokenBucket({self.level:.1f}/{self.capacity:g}, +{self.refill_per_second:g}/s)"


@dataclass(frozen=True)
class Cost:
    """What one request takes from the three buckets."""

    requests: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    """Output reserved up front (the request's ``max_tokens``), refunded down to actual use."""


class RateBudget:
    """The three per-minute limits of one (API key, model): requests, input and output tokens.

    :meth:`acquire` admits requests first come, first served: a large request at the head of
    the line is not starved by small ones behind it. :meth:`pause_until` holds every
    acquisition back (a ``retry-after`` from the provider).
    """

    def __init__(self, requests_per_minute: float, input_tokens_per_minute: float, output_tokens_per_minute: float,
                 *, clock: Clock = SYSTEM_CLOCK, burst: float | None = None) -> None:
        self.clock = clock
        self.requests = TokenBucket.per_minute(
            requests_per_minute, clock=clock, capacity=min(burst, requests_per_minute) if burst else None)
        # With a reduced request burst, token bursts are scaled alike so pacing stays even.
        fraction = (self.requests.capacity / requests_per_minute) if burst else 1.0
        self.input = TokenBucket.per_minute(input_tokens_per_minute, clock=clock,
                                            capacity=max(1.0, input_tokens_per_minute * fraction) if burst else None)
        self.output = TokenBucket.per_minute(output_tokens_per_minute, clock=clock,
                                             capacity=max(1.0, output_tokens_per_minute * fraction) if burst else None)
        self._paused_until = -math.inf
        self._line = asyncio.Lock()
        self.waited_s = 0.0
        """Total seconds acquisitions spent waiting for capacity or a pause."""

    @classmethod
    def from_limits(cls, limits: object, *, clock: Clock = SYSTEM_CLOCK, burst: float | None = None) -> "RateBudget":
        """From anything with ``requests_per_minute``, ``input_tokens_per_minute``, ``output_tokens_per_minute``."""
        return cls(limits.requests_per_minute, limits.input_tokens_per_minute,  # type: ignore[attr-defined]
                   limits.output_tokens_per_minute, clock=clock, burst=burst)  # type: ignore[attr-defined]

    def buckets(self) -> dict[str, TokenBucket]:
        """The buckets by the name the ``anthropic-ratelimit-{name}-*`` headers use."""
        return {"requests": self.requests, "input-tokens": self.input, "output-tokens": self.output}

    def clamp(self, cost: Cost) -> Cost:
        """The cost the provider will actually charge: output reservation capped at the OTPM capacity."""
        return Cost(cost.requests, cost.input_tokens, min(cost.output_tokens, int(self.output.capacity)))

    def time_until(self, cost: Cost) -> float:
        """Seconds until ``cost`` could be taken (pauses included)."""
        cost = self.clamp(cost)
        pause = max(0.0, self._paused_until - self.clock.monotonic())
        return max(pause, self.requests.time_until(cost.requests), self.input.time_until(cost.input_tokens),
                   self.output.time_until(cost.output_tokens))

    def take(self, cost: Cost) -> None:
        """Charge ``cost`` now, whatever the levels."""
        cost = self.clamp(cost)
        self.requests.take(cost.requests)
        self.input.take(cost.input_tokens)
        self.output.take(cost.output_tokens)

    def refund(self, cost: Cost) -> None:
        """Give ``cost`` back (a request the provider refused, so it was never charged)."""
        self.take(Cost(-cost.requests, -cost.input_tokens, -self.clamp(cost).output_tokens))

    def settle_output(self, reserved: int, used: int) -> None:
        """Replace an output reservation by the output actually generated."""
        self.output.take(used - min(reserved, int(self.output.capacity)))

    def pause_until(self, monotonic_deadline: float) -> None:
        """Admit nothing before ``monotonic_deadline`` (a clock ``monotonic()`` reading)."""
        self._paused_until = max(self._paused_until, monotonic_deadline)

    async def acquire(self, cost: Cost) -> float:
        """Wait until every bucket can pay ``cost``, take it, and return the seconds waited."""
        cost = self.clamp(cost)
        if cost.input_tokens > self.input.capacity:
            raise ExceedsBucketCapacity(
                f"{cost.input_tokens:,} input tokens exceed the {self.input.capacity:,.0f} input tokens per minute "
                "this key may ever send; shorten or split the prompt")
        waited = 0.0
        async with self._line:  # first come, first served
            while True:
                wait = self.time_until(cost)
                if wait <= 0:
                    self.take(cost)
                    self.waited_s += waited
                    return waited
                await self.clock.sleep(wait)
                waited += wait
