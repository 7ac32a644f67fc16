"""The course's one retry policy, built on ``tenacity``: what to retry, how long to wait, when to stop.

- **What**: :func:`~.errors.is_retryable` (429 except the spend limit, 529, 5xx, timeouts,
  connection errors; ``x-should-retry`` overrides), or your own predicate.
- **How long**: ``retry-after`` (0 when the response gives none) **plus** full-jitter exponential
  backoff (:func:`retry_delay`). Full jitter (a uniform draw in ``[0, min(cap, base * 2**(n-1))]``,
  AWS Architecture Blog, "Exponential Backoff and Jitter") spreads a crowd of clients that failed
  together, so their retries do not arrive together. The server's ``retry-after`` is a floor
  (retrying earlier is refused again), and the jitter goes *on top of* it: every client that got
  the same 429 reads the same ``retry-after``, so ``max(retry-after, backoff)``, or the SDK's
  "wait exactly retry-after", brings them all back at the same instant whenever ``retry-after``
  exceeds the backoff draw (lessons 03 and 05 measure that herd).
- **When to stop**: after ``max_attempts`` attempts, or when the next wait would end past
  ``deadline_s`` after the first attempt (a retry that cannot finish in time is not worth starting),
  or when a shared :class:`~.budget.RetryBudget` has no retry left.

It works sync (:meth:`RetryPolicy.call`) and async (:meth:`RetryPolicy.acall`), sleeps and reads
time on the injected clock (virtual in checks and tests), draws jitter from its own seeded
``random.Random``, logs every retry on the ``course_utils.resilience`` logger and records it as a
:class:`RetryEvent` (``on_retry`` callback, ``events`` list).
"""

from __future__ import annotations

import inspect
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

import tenacity

from ..clock import SYSTEM_CLOCK, Clock
from .budget import RetryBudget
from .errors import failure_kind, is_retryable, retry_after_s

__all__ = ["RetryPolicy", "RetryEvent", "backoff_delay", "retry_delay", "log"]

log = logging.getLogger("course_utils.resilience")
T = TypeVar("T")


def backoff_delay(
    attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None, jitter: bool = True
) -> float:
    """The wait before retry number ``attempt`` (1 = the first retry): full-jitter exponential backoff.

    Without jitter it is ``min(cap_s, base_s * 2**(attempt-1))``; with jitter a uniform draw in
    ``[0, that]``.
    """
    ceiling = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    if not jitter:
        return ceiling
    return (rng or random).uniform(0.0, ceiling)


def retry_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    base_s: float = 0.5,
    cap_s: float = 30.0,
    rng: random.Random | None = None,
    jitter: bool = True,
) -> float:
    """The course's one waiting rule: ``retry-after`` (None: 0) plus :func:`backoff_delay`.

    The result is never below ``retry_after`` (the server refuses earlier retries), and two clients
    given the same ``retry-after`` draw different waits (no herd). ``jitter=False`` exists to show
    the herd it prevents.
    """
    return (retry_after or 0.0) + backoff_delay(attempt, base_s=base_s, cap_s=cap_s, rng=rng, jitter=jitter)


@dataclass(frozen=True)
class RetryEvent:
    """One retry about to happen: after ``attempt`` failed with ``error``, wait ``delay_s``."""

    attempt: int
    error: BaseException
    delay_s: float
    retry_after_s: float | None
    elapsed_s: float

    @property
    def kind(self) -> str:
        return failure_kind(self.error)


@dataclass
class RetryPolicy:
    """Retry with ``retry-after`` plus full jitter, an attempt limit, a deadline and an optional budget.

    ``retry_if(exc) -> bool`` decides what is retryable; ``respect_retry_after=False`` and
    ``jitter=False`` exist to show what they prevent, not for production.
    """

    max_attempts: int = 4
    base_s: float = 0.5
    cap_s: float = 30.0
    deadline_s: float | None = 60.0
    jitter: bool = True
    respect_retry_after: bool = True
    retry_if: Callable[[BaseException], bool] = is_retryable
    budget: RetryBudget | None = None
    clock: Clock = SYSTEM_CLOCK
    seed: int | None = 0
    on_retry: Callable[[RetryEvent], Any] | None = None
    events: list[RetryEvent] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    # ----- the three decisions ---------------------------------------------------------------------
    def delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) with ``error``."""
        advised = retry_after_s(error) if (error is not None and self.respect_retry_after) else None
        with self._lock:
            return retry_delay(
                attempt, advised, base_s=self.base_s, cap_s=self.cap_s, rng=self._rng, jitter=self.jitter
            )

    def _tenacity_kwargs(self, started: list[float]) -> dict[str, Any]:
        def retry(state: tenacity.RetryCallState) -> bool:
            outcome = state.outcome
            return outcome is not None and outcome.failed and bool(self.retry_if(outcome.exception()))

        def wait(state: tenacity.RetryCallState) -> float:
            return self.delay(state.attempt_number, state.outcome.exception() if state.outcome else None)

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            if self.deadline_s is not None:
                if self.clock.monotonic() - started[0] + (state.upcoming_sleep or 0.0) > self.deadline_s:
                    return True
            if self.budget is not None and not self.budget.try_spend():
                log.info("retry budget spent: not retrying after attempt %d", state.attempt_number)
                return True
            return False

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            event = RetryEvent(
                state.attempt_number,
                error,
                state.upcoming_sleep,  # type: ignore[arg-type]
                retry_after_s(error) if error is not None else None,
                self.clock.monotonic() - started[0],
            )
            log.info("attempt %d failed (%s); retrying in %.2f s", event.attempt, event.kind, event.delay_s)
            with self._lock:
                self.events.append(event)
            if self.on_retry is not None:
                self.on_retry(event)

        return dict(retry=retry, wait=wait, stop=stop, before_sleep=before_sleep, reraise=True)

    # ----- running a call ------------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with retries; sleeps with ``clock.sleep_sync``; re-raises the last error."""
        started = [self.clock.monotonic()]
        if self.budget is not None:
            self.budget.deposit()
        retrying = tenacity.Retrying(sleep=self.clock.sleep_sync, **self._tenacity_kwargs(started))
        return retrying(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` with retries; sleeps with ``await clock.sleep``."""
        started = [self.clock.monotonic()]
        if self.budget is not None:
            self.budget.deposit()
        retrying = tenacity.AsyncRetrying(sleep=self.clock.sleep, **self._tenacity_kwargs(started))

        async def attempt() -> T:
            # ``fn`` may be a lambda returning a coroutine: tenacity would hand back the coroutine unawaited.
            result = fn(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return await retrying(attempt)

    def wraps(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator form: sync functions use :meth:`call`, ``async def`` functions :meth:`acall`."""
        import functools

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.acall(fn, *args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.call(fn, *args, **kwargs)

        return wrapper
