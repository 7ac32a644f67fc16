"""The token bucket every rate limit is made of, and the API's reset timestamps."""

from __future__ import annotations

import math
import threading
from datetime import datetime, timezone

from ...clock import Clock

__all__ = ["LimitBucket", "reset_timestamp", "TIME_SLACK_S"]

# Time slack (seconds) when comparing a bucket level with a demand: wall-clock epoch floats have a
# resolution of ~2e-7 s, and "retry at exactly retry-after" must not fail by a rounding error.
TIME_SLACK_S = 1e-6


def reset_timestamp(epoch_seconds: float) -> str:
    """Format an epoch time as the API's reset timestamps, e.g. ``2026-11-27T02:51:04Z``.

    Rounded *up* to the second so the moment named has really been reached.
    """
    if math.isinf(epoch_seconds):
        epoch_seconds = 253402300799  # 9999-12-31T23:59:59Z: "never" in a parseable form
    return datetime.fromtimestamp(math.ceil(epoch_seconds - TIME_SLACK_S), tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


class LimitBucket:
    """A continuously refilling token bucket.

    Starts full. The level may go negative through :meth:`take_unchecked` (charging usage that
    was only known after the fact); it then needs longer to recover.
    """

    def __init__(self, capacity: float, refill_per_second: float, clock: Clock) -> None:
        if capacity < 0 or refill_per_second < 0:
            raise ValueError("capacity and refill_per_second must be >= 0")
        self.capacity = float(capacity)
        self.refill_per_second = float(refill_per_second)
        self._clock = clock
        self._level = float(capacity)
        self._last = clock.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def per_minute(cls, limit: float, clock: Clock) -> "LimitBucket":
        """A bucket for a per-minute limit: capacity ``limit``, refilled at ``limit / 60`` per second."""
        return cls(limit, limit / 60.0, clock)

    def _refill(self) -> None:
        now = self._clock.monotonic()
        if now > self._last:
            self._level = min(self.capacity, self._level + (now - self._last) * self.refill_per_second)
        self._last = max(self._last, now)

    def _tolerance(self) -> float:
        return self.refill_per_second * TIME_SLACK_S + 1e-9

    def available(self) -> float:
        """Tokens available now (fractional; negative after an overdraft)."""
        with self._lock:
            self._refill()
            return self._level

    def remaining(self) -> int:
        """Whole tokens available now, never below zero (what the ``*-remaining`` headers show)."""
        with self._lock:
            self._refill()
            return max(0, math.floor(self._level + self._tolerance()))

    def try_take(self, n: float) -> bool:
        """Take ``n`` tokens if they are all available now; otherwise take nothing and return False."""
        with self._lock:
            self._refill()
            if self._level + self._tolerance() >= n:
                self._level -= n
                return True
            return False

    def time_until(self, n: float) -> float:
        """Seconds until ``n`` tokens are available (0 if they are now; ``inf`` if ``n`` > capacity)."""
        with self._lock:
            self._refill()
            return self._time_until_locked(n)

    def _time_until_locked(self, n: float) -> float:
        if n > self.capacity + 1e-9:
            return math.inf
        deficit = n - self._level
        if deficit <= self._tolerance():
            return 0.0
        if self.refill_per_second <= 0:
            return math.inf
        return deficit / self.refill_per_second

    def take_unchecked(self, n: float) -> None:
        """Take ``n`` tokens regardless of the level (may go negative); a negative ``n`` refunds.

        Refunds never fill the bucket beyond its capacity.
        """
        with self._lock:
            self._refill()
            self._level = min(self.capacity, self._level - n)

    def reset_at(self, n: float | None = None) -> float:
        """Wall-clock epoch time at which ``n`` tokens (default: a full bucket) will be available."""
        with self._lock:
            self._refill()
            wait = self._time_until_locked(self.capacity if n is None else n)
        return self._clock.time() + wait

    def __repr__(self) -> str:
        return f"LimitBucket(level={self.available():.1f}/{self.capacity:g}, refill={self.refill_per_second:g}/s)"
