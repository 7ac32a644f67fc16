"""The token bucket: the course's one implementation of a continuously refilling limit.

A bucket holds at most ``capacity`` tokens and gets ``refill_per_second`` back continuously; a
demand of ``n`` tokens is admissible once the level reaches ``n``. Three parts of the course are
made of it, each a thin layer over this module, on the clock it is given (``course_utils.clock``):

* lesson 03's client-side :class:`~course_utils.concurrency.TokenBucket` (adds ``acquire``, which
  sleeps on the clock, and adopting the provider's limits);
* the simulator's :class:`~course_utils.mock_provider.ratelimit.LimitBucket` (adds a lock, because
  the simulator's server thread and its callers share buckets, and the ``*-remaining`` and
  ``*-reset`` header values);
* lesson 07's :class:`~course_utils.tenancy.MemoryLimiter`, which keeps three levels per tenant in
  one dictionary and applies :func:`refilled` and :func:`seconds_until` to them (the Redis limiter's
  Lua script is the same arithmetic, run inside Redis).

The arithmetic is the same everywhere; only the slack when comparing a level with a demand differs,
and is passed in: a bucket read against clock times (retry-after, reset headers) forgives what
:data:`TIME_SLACK_S` of refill would bring (:meth:`Bucket.slack`), while the tenant limiters forgive
only :data:`LEVEL_SLACK`, as their Lua twin does. Levels may go negative (a charge known only after
the fact, such as the output tokens of a reply); refunds never fill a bucket beyond its capacity.

This module is foundation: it knows nothing of lessons or of HTTP, so the simulator may use it.
"""

from __future__ import annotations

import math

from .clock import Clock

__all__ = ["Bucket", "refilled", "seconds_until", "LEVEL_SLACK", "TIME_SLACK_S"]

LEVEL_SLACK = 1e-9
"""Float slack (tokens) when comparing a level with a demand or a demand with a capacity."""

TIME_SLACK_S = 1e-6
"""Time slack (seconds): clocks on epoch floats resolve ~2e-7 s, and "retry at exactly retry-after"
must not fail by a rounding error, nor a waiter sleep 0 s for ever on a deficit that refills in
under a microsecond."""


def refilled(level: float, capacity: float, refill_per_second: float, elapsed_s: float) -> float:
    """The level ``elapsed_s`` seconds later: refilled at ``refill_per_second``, never above
    ``capacity``. A negative ``elapsed_s`` (a clock read out of order) refills nothing."""
    return min(capacity, level + max(0.0, elapsed_s) * refill_per_second)


def seconds_until(n: float, level: float, refill_per_second: float, slack: float = LEVEL_SLACK) -> float:
    """Seconds until a bucket at ``level`` holds ``n`` tokens: 0 if it does now (within ``slack``),
    ``inf`` if it never refills. The caller checks ``n`` against the capacity (a demand bigger than
    the bucket never fits, whatever the refill)."""
    if level + slack >= n:
        return 0.0
    if refill_per_second <= 0:
        return math.inf
    return (n - level) / refill_per_second


class Bucket:
    """A bucket of ``capacity`` tokens, ``refill_per_second`` back per second of ``clock.monotonic()``.

    Starts full unless ``level`` is given (then no fuller than ``capacity``). Not thread-safe by
    itself: a caller shared across threads holds a lock around each call (the simulator's does).
    """

    def __init__(self, capacity: float, refill_per_second: float, clock: Clock, level: float | None = None) -> None:
        self.capacity = float(capacity)
        self.refill_per_second = float(refill_per_second)
        self._clock = clock
        self._level = self.capacity if level is None else min(float(level), self.capacity)
        self._last = clock.monotonic()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._level = refilled(self._level, self.capacity, self.refill_per_second, now - self._last)
        self._last = max(self._last, now)

    @property
    def level(self) -> float:
        """Tokens available now (fractional; negative after an overdraft)."""
        self._refill()
        return self._level

    def slack(self) -> float:
        """Tokens forgiven when comparing the level with a demand: what :data:`TIME_SLACK_S` of refill brings."""
        return self.refill_per_second * TIME_SLACK_S + LEVEL_SLACK

    def _time_until(self, n: float) -> float:
        self._refill()
        if n > self.capacity + LEVEL_SLACK:
            return math.inf
        return seconds_until(n, self._level, self.refill_per_second, self.slack())

    def time_until(self, n: float) -> float:
        """Seconds until ``n`` tokens are available: 0 if they are now, ``inf`` if never (``n`` > capacity)."""
        return self._time_until(n)

    def _try_take(self, n: float) -> bool:
        if self._time_until(n) > 0:
            return False
        self._level -= n
        return True

    def try_take(self, n: float) -> bool:
        """Take ``n`` tokens if all are available now; else take nothing and return False."""
        return self._try_take(n)

    def _take(self, n: float) -> None:
        self._refill()
        self._level = min(self.capacity, self._level - n)

    def take(self, n: float) -> None:
        """Take ``n`` tokens whatever the level (may go negative); a negative ``n`` refunds, up to capacity."""
        self._take(n)

    def reset(self, level: float | None = None) -> None:
        """Start afresh now at ``level`` (default: full), whatever the level was."""
        self._last = self._clock.monotonic()
        self._level = self.capacity if level is None else min(float(level), self.capacity)
