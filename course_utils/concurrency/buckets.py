"""Client-side token buckets: pace requests at the provider's rate limit, with headroom.

The Messages API limits requests, input tokens and output tokens per minute, refilled
continuously, and "your rate limit may be enforced over shorter time intervals": 60 requests per
minute "might be enforced as 1 request per second" (https://platform.claude.com/docs/en/api/rate-limits).
So a client must not count on spending a minute's quota at once. It keeps its own small buckets
(about one second of each rate, refilled at a little under the rate: the *headroom*), takes from
them *before* sending, and so waits exactly as long as pacing needs instead of finding out with a 429.

Output tokens per minute count "only the actual tokens generated" (``max_tokens`` "does not factor
into OTPM"), which are known only when a reply ends: the client budgets the output it *expects*
(from the replies it has seen) and settles to what was generated.

Everything reads an injectable :class:`~course_utils.clock.Clock`, so tests drive hours of
traffic on a ``VirtualClock`` without sleeping.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Callable

from ..clock import SYSTEM_CLOCK, Clock
from ..token_bucket import TIME_SLACK_S, Bucket
from .errors import ConcurrencyError

__all__ = ["TokenBucket", "Demand", "RateBudget", "ExceedsBucketCapacity"]


class ExceedsBucketCapacity(ConcurrencyError, ValueError):
    """A request needs more than a bucket can ever hold (e.g. more input tokens than the ITPM limit)."""


class TokenBucket(Bucket):
    """A continuously refilling bucket of ``capacity`` tokens, ``refill_per_second`` back per second.

    The course's one bucket (:class:`course_utils.token_bucket.Bucket`: refill, ``time_until``,
    ``try_take``, ``take``, ``reset``) with what a client needs on top: :meth:`acquire` (wait on the
    clock, then take) and adopting what the provider says (:meth:`lower_to`, :meth:`set_limit`).
    Starts full unless ``level`` is given. :meth:`take` may drive the level negative (charging
    what was only known afterwards); refunds never overfill it.
    """

    def __init__(
        self, capacity: float, refill_per_second: float, *, clock: Clock = SYSTEM_CLOCK, level: float | None = None
    ) -> None:
        if capacity <= 0 or refill_per_second < 0:
            raise ValueError("capacity must be > 0 and refill_per_second >= 0")
        super().__init__(capacity, refill_per_second, clock, level)

    @classmethod
    def per_minute(cls, limit: float, *, clock: Clock = SYSTEM_CLOCK, capacity: float | None = None) -> "TokenBucket":
        """A bucket for a per-minute limit: refills ``limit / 60`` per second; holds ``limit`` unless ``capacity`` is smaller."""
        return cls(capacity if capacity is not None else limit, limit / 60.0, clock=clock)

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
class Demand:
    """What one request draws from the three rate limits: a request and its input and output tokens.

    A quantity of tokens, not of money: dollars are :func:`course_utils.pricing.cost`'s (a ``Decimal``).
    """

    requests: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    """Output the client *expects* (an estimate from earlier replies, never ``max_tokens``); settled
    to the actual output with :meth:`RateBudget.settle_output` when the reply ends."""


class RateBudget:
    """A client-side copy of one (API key, model)'s three per-minute limits, paced with headroom.

    Each bucket refills at ``(1 - headroom) * limit / 60`` per second and holds ``burst_s``
    seconds of that (at least one request, or one token): ``burst_s=1`` is the robust default
    (the provider may enforce over about a second); a minute (``burst_s=60``) bets on a lenient
    provider. A demand bigger than a bucket (a long prompt under a small input burst) goes once
    that bucket is full and overdraws it, so the average rate still holds.

    :meth:`acquire` admits requests first come, first served: a large request at the head of
    the line is not starved by small ones behind it. :meth:`pause_until` holds every
    acquisition back (a ``retry-after`` from the provider).
    """

    def __init__(
        self,
        requests_per_minute: float,
        input_tokens_per_minute: float,
        output_tokens_per_minute: float,
        *,
        clock: Clock = SYSTEM_CLOCK,
        burst_s: float = 1.0,
        headroom: float = 0.0,
    ) -> None:
        if not 0 < burst_s <= 60:
            raise ValueError(f"burst_s must be in (0, 60] seconds, not {burst_s!r}")
        if not 0 <= headroom < 1:
            raise ValueError(f"headroom must be in [0, 1), not {headroom!r}")
        self.clock = clock
        self.burst_s = float(burst_s)
        self.headroom = float(headroom)
        self.per_minute = {
            "requests": float(requests_per_minute),
            "input-tokens": float(input_tokens_per_minute),
            "output-tokens": float(output_tokens_per_minute),
        }
        """The provider's limits (per minute), as given or as the ``*-limit`` headers last said."""
        self.requests = self._bucket(requests_per_minute)
        self.input = self._bucket(input_tokens_per_minute)
        self.output = self._bucket(output_tokens_per_minute)
        self._paused_until = -math.inf
        self._ramp: tuple[float, float, float] | None = None
        self._line = asyncio.Lock()
        self.waited_s = 0.0
        """Total seconds acquisitions spent waiting for capacity or a pause."""

    def _shape(self, limit: float) -> tuple[float, float]:
        rate = float(limit) * (1.0 - self.headroom) / 60.0
        return max(1.0, rate * self.burst_s), rate

    def _bucket(self, limit: float) -> TokenBucket:
        capacity, rate = self._shape(limit)
        return TokenBucket(capacity, rate, clock=self.clock)

    @classmethod
    def from_limits(
        cls, limits: object, *, clock: Clock = SYSTEM_CLOCK, burst_s: float = 1.0, headroom: float = 0.0
    ) -> "RateBudget":
        """From anything with ``requests_per_minute``, ``input_tokens_per_minute``, ``output_tokens_per_minute``."""
        return cls(
            limits.requests_per_minute,
            limits.input_tokens_per_minute,  # type: ignore[attr-defined]
            limits.output_tokens_per_minute,
            clock=clock,
            burst_s=burst_s,  # type: ignore[attr-defined]
            headroom=headroom,
        )

    def buckets(self) -> dict[str, TokenBucket]:
        """The buckets by the name the ``anthropic-ratelimit-{name}-*`` headers use."""
        return {"requests": self.requests, "input-tokens": self.input, "output-tokens": self.output}

    def set_limit(self, name: str, per_minute: float) -> None:
        """Adopt the provider's per-minute limit for bucket ``name`` (a ``*-limit`` header), keeping its level."""
        self.per_minute[name] = float(per_minute)
        self._reshape(name)

    def _reshape(self, name: str) -> None:
        capacity, rate = self._shape(self.per_minute[name])
        share = self.ramp_share()
        self.buckets()[name].set_limit(rate * share * 60.0, capacity=max(1.0, capacity * share))

    def ramp(self, over_s: float, start: float = 0.1) -> None:
        """Ramp up from now: the paced rate (and burst) start at ``start`` of the full ones and grow
        linearly to all of them over ``over_s`` seconds. The rate-limits page asks clients to "ramp
        up your traffic gradually" (acceleration limits); it publishes no figures, so these are the
        caller's. ``over_s=0`` switches the ramp off."""
        if not 0 < start <= 1:
            raise ValueError(f"start must be in (0, 1], not {start!r}")
        self._ramp = (self.clock.monotonic(), float(over_s), float(start)) if over_s > 0 else None
        for name in self.buckets():
            self._reshape(name)

    def ramp_share(self) -> float:
        """The share of the paced rate allowed now: 1 when not ramping."""
        if self._ramp is None:
            return 1.0
        began, over_s, start = self._ramp
        share = start + (1.0 - start) * (self.clock.monotonic() - began) / over_s
        if share >= 1.0:
            self._ramp = None
            return 1.0
        return share

    def _follow_ramp(self) -> float:
        """Apply the ramp's current share; return the longest sleep before it should be applied again."""
        if self._ramp is None:
            return math.inf
        for name in self.buckets():
            self._reshape(name)
        return 0.0 if self._ramp is None else max(0.05, self._ramp[1] / 100.0)

    def restart(self, spent: Demand | None = None) -> None:
        """Start every bucket afresh now, full minus ``spent`` (a request the provider already charged)."""
        spent = spent or Demand(0, 0, 0)
        for bucket, n in (
            (self.requests, spent.requests),
            (self.input, spent.input_tokens),
            (self.output, spent.output_tokens),
        ):
            bucket.reset(bucket.capacity - n)

    def _needs(self, demand: Demand) -> tuple[float, float, float]:
        # A demand bigger than its bucket is admitted once the bucket is full (then overdraws it).
        return (
            min(demand.requests, self.requests.capacity),
            min(demand.input_tokens, self.input.capacity),
            min(demand.output_tokens, self.output.capacity),
        )

    def time_until(self, demand: Demand) -> float:
        """Seconds until ``demand`` could be taken (pauses included)."""
        pause = self._paused_until - self.clock.monotonic()
        # Below a microsecond a pause is over: a virtual loop's clock (integer microseconds) would not
        # move for a shorter sleep, and the waiter would spin.
        pause = pause if pause > TIME_SLACK_S else 0.0
        requests, input_tokens, output_tokens = self._needs(demand)
        return max(
            pause,
            self.requests.time_until(requests),
            self.input.time_until(input_tokens),
            self.output.time_until(output_tokens),
        )

    def take(self, demand: Demand) -> None:
        """Charge ``demand`` now, whatever the levels (may overdraw)."""
        self.requests.take(demand.requests)
        self.input.take(demand.input_tokens)
        self.output.take(demand.output_tokens)

    def refund(self, demand: Demand) -> None:
        """Give ``demand`` back (a request the provider refused, so it was never charged)."""
        self.take(Demand(-demand.requests, -demand.input_tokens, -demand.output_tokens))

    def settle_output(self, expected: int, used: int) -> None:
        """Replace the output the client expected by the output actually generated."""
        self.output.take(used - expected)

    def settle_input(self, charged: int, counted: int) -> None:
        """Replace the input charged before sending by what the provider counts towards ITPM
        (``input_tokens + cache_creation_input_tokens``: cache reads don't count on most models)."""
        self.input.take(counted - charged)

    def pause_until(self, monotonic_deadline: float) -> None:
        """Admit nothing before ``monotonic_deadline`` (a clock ``monotonic()`` reading)."""
        self._paused_until = max(self._paused_until, monotonic_deadline)

    async def acquire(self, demand: Demand) -> float:
        """Wait until every bucket can pay ``demand``, take it, and return the seconds waited.

        Raises :class:`ExceedsBucketCapacity` for more input tokens than the per-minute limit
        (the provider refuses those for good).
        """
        waited, _ = await self.acquire_estimate(lambda: demand)
        return waited

    async def acquire_estimate(self, estimate: Callable[[], Demand]) -> tuple[float, Demand]:
        """:meth:`acquire` for a demand estimated while waiting: ``estimate()`` is called again each time
        the request is about to be admitted (what replies taught while it queued, e.g. how many of its
        tokens the prompt cache will serve, counts); returns the seconds waited and the demand taken."""
        waited = 0.0
        async with self._line:  # first come, first served
            while True:
                step = self._follow_ramp()
                demand = estimate()
                if demand.input_tokens > self.per_minute["input-tokens"]:
                    raise ExceedsBucketCapacity(
                        f"{demand.input_tokens:,} input tokens exceed the {self.per_minute['input-tokens']:,.0f} input "
                        "tokens per minute this key may ever send; shorten or split the prompt"
                    )
                wait = self.time_until(demand)
                if wait <= 0:
                    self.take(demand)
                    self.waited_s += waited
                    return waited, demand
                wait = min(wait, step) if step > 0 else wait  # look again as the ramp raises the rate
                await self.clock.sleep(wait)
                waited += wait
