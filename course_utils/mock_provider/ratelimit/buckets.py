"""The token bucket every rate limit is made of (the course's one, :mod:`course_utils.token_bucket`, made
thread-safe), and the API's reset timestamps."""

from __future__ import annotations

import math
import threading
from datetime import datetime, timezone

from ...clock import Clock
from ...token_bucket import TIME_SLACK_S, Bucket

__all__ = ["LimitBucket", "reset_timestamp", "TIME_SLACK_S"]


def reset_timestamp(epoch_seconds: float) -> str:
    """Format an epoch time as the API's reset timestamps, e.g. ``2026-11-27T02:51:04Z``.

    Rounded *up* to the second so the moment named has really been reached.
    """
    if math.isinf(epoch_seconds):
        epoch_seconds = 253402300799  # 9999-12-31T23:59:59Z: "never" in a parseable form
    return datetime.fromtimestamp(math.ceil(epoch_seconds - TIME_SLACK_S), tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


class LimitBucket(Bucket):
    """A continuously refilling token bucket, safe to share between threads.

    The course's one bucket (:class:`course_utils.token_bucket.Bucket`) under a lock (the
    simulator's server thread and the code that inspects it share buckets), with the values the
    rate-limit headers carry (:meth:`remaining`, :meth:`reset_at`). Starts full. The level may go
    negative through :meth:`take_unchecked` (charging usage that was only known after the fact);
    it then needs longer to recover.
    """

    def __init__(self, capacity: float, refill_per_second: float, clock: Clock) -> None:
        if capacity < 0 or refill_per_second < 0:
            raise ValueError("capacity and refill_per_second must be >= 0")
        super().__init__(capacity, refill_per_second, clock)
        self._lock = threading.Lock()

    @classmethod
    def per_minute(cls, limit: float, clock: Clock) -> "LimitBucket":
        """A bucket for a per-minute limit: capacity ``limit``, refilled at ``limit / 60`` per second."""
        return cls(limit, limit / 60.0, clock)

    def available(self) -> float:
        """Tokens available now (fractional; negative after an overdraft)."""
        with self._lock:
            return self.level

    def remaining(self) -> int:
        """Whole tokens available now, never below zero (what the ``*-remaining`` headers show)."""
        with self._lock:
            return max(0, math.floor(self.level + self.slack()))

    def try_take(self, n: float) -> bool:
        """Take ``n`` tokens if they are all available now; otherwise take nothing and return False."""
        with self._lock:
            return self._try_take(n)

    def time_until(self, n: float) -> float:
        """Seconds until ``n`` tokens are available (0 if they are now; ``inf`` if ``n`` > capacity)."""
        with self._lock:
            return self._time_until(n)

    def take_unchecked(self, n: float) -> None:
        """Take ``n`` tokens regardless of the level (may go negative); a negative ``n`` refunds.

        Refunds never fill the bucket beyond its capacity.
        """
        with self._lock:
            self._take(n)

    take = take_unchecked

    def reset(self, level: float | None = None) -> None:
        """Start afresh now at ``level`` (default: full), whatever the level was."""
        with self._lock:
            super().reset(level)

    def reset_at(self, n: float | None = None) -> float:
        """Wall-clock epoch time at which ``n`` tokens (default: a full bucket) will be available."""
        with self._lock:
            wait = self._time_until(self.capacity if n is None else n)
        return self._clock.time() + wait

    def __repr__(self) -> str:
        return f"LimitBucket(level={self.available():.1f}/{self.capacity:g}, refill={self.refill_per_second:g}/s)"
