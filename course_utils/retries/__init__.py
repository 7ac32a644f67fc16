"""The foundation of every retry in the course: what to retry, how long to wait, when to stop.

Lessons 03 (the dispatcher), 04 (the batch poller) and 05 (which teaches it) share these, so a
failure is classified, and a ``retry-after`` read, the same way everywhere:

- :mod:`.errors`: what is retryable (:func:`is_retryable`), the one ``retry-after`` parser
  (:func:`retry_after_s`, which reads ``retry-after-ms`` first), what a circuit breaker counts;
- :mod:`.policy`: :class:`RetryPolicy` on ``tenacity`` (``retry-after`` plus jitter, attempts,
  deadline, budget);
- :mod:`.budget`: :class:`RetryBudget`, retries capped at a fraction of requests;
- :mod:`.throttle`: :class:`AdaptiveThrottle`, the SRE book's client-side adaptive throttling.
"""

from .budget import BudgetStats, RetryBudget
from .errors import (
    RETRYABLE_STATUSES,
    RETRYABLE_STREAM_ERRORS,
    SPEND_LIMIT_CODE,
    RetriesError,
    counts_as_outage,
    failure_kind,
    is_retryable,
    is_spend_limit,
    retry_after_s,
)
from .policy import RetryEvent, RetryPolicy, backoff_delay, retry_delay
from .throttle import AdaptiveThrottle, ThrottledLocally, rejected_by_backend

__all__ = [
    "RETRYABLE_STATUSES",
    "RETRYABLE_STREAM_ERRORS",
    "SPEND_LIMIT_CODE",
    "is_retryable",
    "is_spend_limit",
    "retry_after_s",
    "counts_as_outage",
    "failure_kind",
    "RetryPolicy",
    "RetryEvent",
    "backoff_delay",
    "retry_delay",
    "RetryBudget",
    "BudgetStats",
    "AdaptiveThrottle",
    "RetriesError",
    "ThrottledLocally",
    "rejected_by_backend",
]
