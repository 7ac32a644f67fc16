"""Client-side adaptive throttling (Google SRE book, "Handling Overload"): stop sending what the
backend is going to reject anyway.

Each client keeps, over the last ``window_s`` seconds (the book: two minutes), ``requests`` (attempts
the application made, including those this throttle refused) and ``accepts`` (attempts the backend
accepted). A new attempt is refused locally, without reaching the backend, with probability

    max(0, (requests - K * accepts) / (requests + 1))

With the backend healthy, requests == accepts and nothing is refused. When the backend rejects
(529 overloaded, 429), accepts stop growing and the client sends at most about ``K * accepts``: the
rejections it does cost the backend stay bounded, and the refusals cost nothing. The book uses K = 2
("allowing more requests to reach the backend than are expected to actually be allowed"), so the
client notices recovery quickly.

``min_requests`` is a small-sample guard (not in the book): below that many requests in the window the
throttle refuses nothing, so a client that has just started, whose first requests are all still in
flight (counted as requests, not yet as accepts), does not throttle itself on no evidence.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from typing import Awaitable, Callable, TypeVar

import anthropic

from ..clock import SYSTEM_CLOCK, Clock
from .errors import RetriesError

__all__ = ["AdaptiveThrottle", "ThrottledLocally", "rejected_by_backend"]

T = TypeVar("T")


class ThrottledLocally(RetriesError):
    """The attempt was refused by the client's own adaptive throttle; it never reached the backend."""


def rejected_by_backend(exc: BaseException) -> bool:
    """What counts as a backend rejection (not an accept): 529 overloaded and 429 rate limit."""
    return isinstance(exc, anthropic.APIStatusError) and exc.status_code in (429, 529)


class AdaptiveThrottle:
    """Client-side adaptive throttling, ``requests - K * accepts`` over a sliding window. Thread-safe."""

    def __init__(
        self,
        k: float = 2.0,
        *,
        window_s: float = 120.0,
        min_requests: int = 20,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = 0,
    ) -> None:
        if k < 1 or window_s <= 0 or min_requests < 0:
            raise ValueError("k must be >= 1, window_s > 0 and min_requests >= 0")
        self.min_requests = int(min_requests)
        self.k = float(k)
        self.window_s = float(window_s)
        self.clock = clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._requests: deque[float] = deque()
        self._accepts: deque[float] = deque()
        self.refused = 0

    def _prune(self, now: float) -> None:
        for q in (self._requests, self._accepts):
            while q and q[0] <= now - self.window_s:
                q.popleft()

    def reject_probability(self) -> float:
        """``max(0, (requests - K * accepts) / (requests + 1))`` over the window, now (0 below ``min_requests``)."""
        with self._lock:
            self._prune(self.clock.monotonic())
            return self._p()

    def _p(self) -> float:
        n = len(self._requests)
        if n < self.min_requests:
            return 0.0
        return max(0.0, (n - self.k * len(self._accepts)) / (n + 1))

    def allow(self) -> bool:
        """Count one attempt; False (refused locally) with the reject probability."""
        with self._lock:
            now = self.clock.monotonic()
            self._prune(now)
            p = self._p()
            self._requests.append(now)
            if self._rng.random() < p:
                self.refused += 1
                return False
            return True

    def record_accept(self) -> None:
        """The backend accepted an attempt (it answered, even with an error that is not a rejection)."""
        with self._lock:
            self._accepts.append(self.clock.monotonic())

    async def acall(
        self, fn: Callable[[], Awaitable[T]], *, rejected: Callable[[BaseException], bool] = rejected_by_backend
    ) -> T:
        """``await fn()`` unless refused (:class:`ThrottledLocally`); an answer that is not a backend
        rejection (``rejected``) or a transport failure counts as an accept."""
        if not self.allow():
            raise ThrottledLocally(f"refused locally (p={self.reject_probability():.2f})")
        try:
            result = await fn()
        except anthropic.APIStatusError as exc:
            if not rejected(exc):
                self.record_accept()
            raise
        self.record_accept()
        return result

    def __repr__(self) -> str:
        return f"AdaptiveThrottle(k={self.k}, p={self.reject_probability():.2f}, refused={self.refused})"
