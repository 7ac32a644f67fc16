"""A circuit breaker: stop sending to a provider that is down, probe it, come back when it recovers.

States (Nygard, *Release It!*; Fowler, "CircuitBreaker"; resilience4j's sliding-window breaker):

- **closed**: calls go through; each outcome enters a sliding window of the last ``window_s``
  seconds. When the window holds at least ``min_calls`` outcomes and the failure rate reaches
  ``failure_rate``, the breaker **opens**.
- **open**: calls fail at once with :class:`CircuitOpenError` (no request, no timeout to wait out)
  for ``cooldown_s``; then the breaker is **half-open**.
- **half-open**: at most ``half_open_calls`` probe calls go through (the others are refused as if
  open). If all of them succeed the breaker **closes** (window cleared); one failure **opens** it again.

What counts as a failure is :func:`~.errors.counts_as_outage`: overloads, 5xx, timeouts and
connection errors. A 429 is *not* counted, neither as failure nor as success: it means "you are
sending too fast", the provider is up, and the cure is to slow down (the retry policy honours
``retry-after``), not to stop sending to a healthy provider. Other 4xx count as successes (the
provider answered). Every state change is a :class:`BreakerEvent`, passed to ``on_change`` and kept
in ``events``; time comes from the injected clock. :class:`BreakerBoard` keeps one breaker per
``(provider, model)``, because one model being down says nothing about the others.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Hashable, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..retries import counts_as_outage, is_retryable
from .errors import ResilienceError

__all__ = ["CircuitBreaker", "CircuitOpenError", "BreakerEvent", "BreakerBoard", "CLOSED", "OPEN", "HALF_OPEN"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
T = TypeVar("T")


class CircuitOpenError(ResilienceError):
    """Refused without calling: the breaker for ``key`` is open (or half-open with its probes taken)."""

    def __init__(self, key: Any, retry_in_s: float) -> None:
        super().__init__(f"circuit {key!r} is open; next probe in {retry_in_s:.1f} s")
        self.key = key
        self.retry_in_s = retry_in_s


@dataclass(frozen=True)
class BreakerEvent:
    """A state change at ``at_s`` (the clock's monotonic reading) and why."""

    key: Any
    at_s: float
    old: str
    new: str
    reason: str


class CircuitBreaker:
    """Closed / open / half-open breaker over a time-based sliding window (see the module docstring)."""

    def __init__(
        self,
        key: Hashable = "default",
        *,
        failure_rate: float = 0.5,
        min_calls: int = 10,
        window_s: float = 30.0,
        cooldown_s: float = 10.0,
        half_open_calls: int = 2,
        counts: Callable[[BaseException], bool] = counts_as_outage,
        clock: Clock = SYSTEM_CLOCK,
        on_change: Callable[[BreakerEvent], Any] | None = None,
    ) -> None:
        if not 0 < failure_rate <= 1 or min_calls < 1 or window_s <= 0 or cooldown_s < 0 or half_open_calls < 1:
            raise ValueError(
                "need 0 < failure_rate <= 1, min_calls >= 1, window_s > 0, cooldown_s >= 0, half_open_calls >= 1"
            )
        self.key = key
        self.failure_rate = failure_rate
        self.min_calls = min_calls
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.half_open_calls = half_open_calls
        self.counts = counts
        self.clock = clock
        self.on_change = on_change
        self.events: list[BreakerEvent] = []
        self._lock = threading.RLock()
        self._state = CLOSED
        self._window: deque[tuple[float, bool]] = deque()  # (time, failed)
        self._opened_at = 0.0
        self._probes_out = 0
        self._probes_ok = 0
        self.refused = 0

    # ----- state ---------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock.monotonic()

    def _set(self, new: str, reason: str, at: float) -> None:
        old, self._state = self._state, new
        if new == OPEN:
            self._opened_at = at
        if new == HALF_OPEN:
            self._probes_out = self._probes_ok = 0
        if new == CLOSED:
            self._window.clear()
        event = BreakerEvent(self.key, at, old, new, reason)
        self.events.append(event)
        if self.on_change is not None:
            self.on_change(event)

    def _tick(self) -> None:
        if self._state == OPEN and self._now() >= self._opened_at + self.cooldown_s:
            self._set(HALF_OPEN, f"cooldown of {self.cooldown_s:g} s over", self._opened_at + self.cooldown_s)

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open``, as of now on the clock."""
        with self._lock:
            self._tick()
            return self._state

    def failure_stats(self) -> tuple[int, int]:
        """(failures, calls) in the current window."""
        with self._lock:
            self._trim()
            return sum(f for _, f in self._window), len(self._window)

    def _trim(self) -> None:
        horizon = self._now() - self.window_s
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()

    # ----- the protocol: allow, then record the outcome -----------------------------------------------
    def allow(self) -> bool:
        """Whether a call may go now; a True in half-open takes one of the probe slots."""
        with self._lock:
            self._tick()
            if self._state == CLOSED:
                return True
            if self._state == HALF_OPEN and self._probes_out < self.half_open_calls:
                self._probes_out += 1
                return True
            self.refused += 1
            return False

    def retry_in_s(self) -> float:
        """Seconds until the breaker lets a probe through (0 when it would now)."""
        with self._lock:
            self._tick()
            if self._state == OPEN:
                return max(0.0, self._opened_at + self.cooldown_s - self._now())
            return 0.0

    def record_success(self) -> None:
        self._record(False)

    def record_failure(self, error: BaseException | None = None) -> None:
        """Record a failed call; ``error`` that does not count (a 429, a 400) is ignored or a success."""
        if error is not None and not self.counts(error):
            if isinstance(error, Exception) and is_retryable(error):
                self._release_probe()  # a 429: neither healthy nor failing; free the probe slot
                return
            self._record(False)  # the provider answered (our request was wrong)
            return
        self._record(True)

    def _release_probe(self) -> None:
        with self._lock:
            if self._state == HALF_OPEN and self._probes_out > 0:
                self._probes_out -= 1

    def _record(self, failed: bool) -> None:
        with self._lock:
            self._tick()
            now = self._now()
            if self._state == HALF_OPEN:
                if failed:
                    self._set(OPEN, "a probe failed", now)
                    return
                self._probes_ok += 1
                if self._probes_ok >= self.half_open_calls:
                    self._set(CLOSED, f"{self._probes_ok} probe(s) succeeded", now)
                return
            if self._state == OPEN:
                return  # a call that started before the breaker opened
            self._window.append((now, failed))
            self._trim()
            calls = len(self._window)
            failures = sum(f for _, f in self._window)
            if calls >= self.min_calls and failures / calls >= self.failure_rate:
                self._set(OPEN, f"{failures} of the last {calls} calls failed", now)

    # ----- wrappers ---------------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` through the breaker (sync); raises :class:`CircuitOpenError` when refused."""
        if not self.allow():
            raise CircuitOpenError(self.key, self.retry_in_s())
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self.record_failure(exc)
            raise
        self.record_success()
        return result

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run ``await fn(...)`` through the breaker; raises :class:`CircuitOpenError` when refused."""
        if not self.allow():
            raise CircuitOpenError(self.key, self.retry_in_s())
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self.record_failure(exc)
            raise
        self.record_success()
        return result

    def frame(self) -> Any:
        """The state changes: one row per event (``at_s``, ``old``, ``new``, ``reason``)."""
        import pandas as pd

        return pd.DataFrame(
            [{"key": str(e.key), "at_s": e.at_s, "old": e.old, "new": e.new, "reason": e.reason} for e in self.events],
            columns=["key", "at_s", "old", "new", "reason"],
        )

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.key!r}, state={self.state})"


class BreakerBoard:
    """One :class:`CircuitBreaker` per key, e.g. ``(provider, model)``, made on first use with shared settings."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self._breakers: dict[Hashable, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> CircuitBreaker:
        with self._lock:
            if key not in self._breakers:
                self._breakers[key] = CircuitBreaker(key, **self.settings)
            return self._breakers[key]

    __getitem__ = get

    def states(self) -> dict[Hashable, str]:
        with self._lock:
            breakers = dict(self._breakers)
        return {k: b.state for k, b in breakers.items()}

    def events(self) -> list[BreakerEvent]:
        with self._lock:
            breakers = list(self._breakers.values())
        return sorted((e for b in breakers for e in b.events), key=lambda e: e.at_s)
