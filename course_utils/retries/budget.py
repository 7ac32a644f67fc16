"""A retry budget: retries capped at a fraction of requests, so a fleet cannot amplify an outage.

Per-request retry limits do not bound the *load*: with 3 retries each, an outage turns every
request into 4, and thousands of clients multiply the provider's trouble by 4 exactly when it can
least take it. A budget bounds the whole client instead (the SRE book's "retry budget", Envoy's
``retry_budget``, Finagle's ``RetryBudget``): every request deposits ``ratio`` tokens, every retry
withdraws one, and a retry without a token is not made. Over any period,

    retries <= initial + ratio * requests + min_retries_per_s * elapsed_s

so load amplification stays below ``1 + ratio`` in a long outage, while a healthy service with
rare failures never notices the budget. ``min_retries_per_s`` keeps a trickle of retries available
to a client that sends little (Finagle's reserve). Thread-safe; time comes from the injected clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..clock import SYSTEM_CLOCK, Clock

__all__ = ["RetryBudget", "BudgetStats"]


@dataclass(frozen=True)
class BudgetStats:
    """What a budget has seen: requests deposited, retries granted, retries refused."""

    requests: int
    retries: int
    refused: int

    @property
    def retry_ratio(self) -> float:
        """Retries granted per request (the load the budget let through beyond 1x)."""
        return self.retries / self.requests if self.requests else 0.0


class RetryBudget:
    """Token bucket of retries: ``deposit()`` per request, ``try_spend()`` per retry."""

    def __init__(
        self,
        ratio: float = 0.2,
        *,
        initial: float = 5.0,
        capacity: float = 50.0,
        min_retries_per_s: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if ratio < 0 or initial < 0 or capacity <= 0 or min_retries_per_s < 0:
            raise ValueError("ratio, initial and min_retries_per_s must be >= 0, capacity > 0")
        self.ratio = float(ratio)
        self.capacity = float(capacity)
        self.min_retries_per_s = float(min_retries_per_s)
        self.clock = clock
        self._tokens = min(float(initial), self.capacity)
        self._last = clock.monotonic()
        self._lock = threading.Lock()
        self._requests = self._retries = self._refused = 0

    def _refill(self) -> None:
        if self.min_retries_per_s:
            now = self.clock.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.min_retries_per_s)
            self._last = now

    def deposit(self) -> None:
        """Count one new request (not a retry): it earns ``ratio`` of a retry."""
        with self._lock:
            self._refill()
            self._requests += 1
            self._tokens = min(self.capacity, self._tokens + self.ratio)

    def try_spend(self) -> bool:
        """Take one retry from the budget; False (and counted as refused) when it is spent."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                self._retries += 1
                return True
            self._refused += 1
            return False

    @property
    def tokens(self) -> float:
        """Retries available right now."""
        with self._lock:
            self._refill()
            return self._tokens

    def stats(self) -> BudgetStats:
        with self._lock:
            return BudgetStats(self._requests, self._retries, self._refused)

    def __repr__(self) -> str:
        s = self.stats()
        return f"RetryBudget(ratio={self.ratio}, tokens={self.tokens:.1f}, requests={s.requests}, retries={s.retries}, refused={s.refused})"
