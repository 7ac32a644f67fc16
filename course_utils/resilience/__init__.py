"""Lesson 05: retries that help instead of hurt, breakers, fallbacks, and idempotency keys.

One job per module:

- :mod:`course_utils.retries` (the foundation lessons 03 and 04 use too, re-exported here because
  this lesson teaches it): what is retryable, ``retry-after``, :class:`RetryPolicy` (``retry-after``
  plus full jitter, attempts, deadline) and :class:`RetryBudget`;
- :mod:`.breaker`: :class:`CircuitBreaker` (closed / open / half-open) and :class:`BreakerBoard`;
- :mod:`.fallback`: :class:`FallbackChain` and :func:`stream_with_fallback`;
- :mod:`.idempotency`: :class:`IdempotencyStore` (SQLite) and :class:`Idempotent`;
- :mod:`.chaos`: the replayed incident (flaky, outage, slow and lossy) a report service is scored on;
- :mod:`.timeouts`: :func:`stream_with_start_timeout`, a response-start timeout on a stream;
- :mod:`.measure`: the notebook's workloads on virtual time (strategies, retry storm, stacked retries,
  timeouts, breaker);
- :mod:`.fakes`: the SDK's exceptions built without a network (tests, checks, tables).
"""

from .breaker import CLOSED, HALF_OPEN, OPEN, BreakerBoard, BreakerEvent, CircuitBreaker, CircuitOpenError
from .errors import ResilienceError
from .fallback import AllLinksFailed, FallbackChain, FallbackResult, Link, StreamInterrupted, stream_with_fallback
from .idempotency import (
    Claim,
    Idempotent,
    IdempotencyError,
    IdempotencyStore,
    InProgress,
    KeyReused,
    decode_response,
    encode_response,
    fingerprint,
)
from .chaos import FALLBACK, PHASES, PRIMARY, IncidentReport, OpRecord, report_body, run_incident
from .timeouts import stream_with_start_timeout
from .measure import (
    STRATEGIES,
    StrategyRun,
    breaker_run,
    on_virtual_time,
    percentile,
    rps,
    sim,
    TIMEOUT_MODES,
    stacked_run,
    storm_run,
    timeout_run,
    strategy_run,
)
from ..retries import (
    RETRYABLE_STATUSES,
    BudgetStats,
    RetryBudget,
    RetryEvent,
    RetryPolicy,
    backoff_delay,
    counts_as_outage,
    failure_kind,
    is_retryable,
    is_spend_limit,
    retry_after_s,
    retry_delay,
)

__all__ = [
    # the notebook's incident and measurements (chaos, measure)
    "PRIMARY",
    "FALLBACK",
    "PHASES",
    "report_body",
    "run_incident",
    "IncidentReport",
    "OpRecord",
    "STRATEGIES",
    "StrategyRun",
    "strategy_run",
    "storm_run",
    "stacked_run",
    "timeout_run",
    "TIMEOUT_MODES",
    "stream_with_start_timeout",
    "breaker_run",
    "on_virtual_time",
    "percentile",
    "rps",
    "sim",
    "is_retryable",
    "is_spend_limit",
    "retry_after_s",
    "counts_as_outage",
    "failure_kind",
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "RetryEvent",
    "backoff_delay",
    "retry_delay",
    "RetryBudget",
    "BudgetStats",
    "CircuitBreaker",
    "ResilienceError",
    "CircuitOpenError",
    "BreakerEvent",
    "BreakerBoard",
    "CLOSED",
    "OPEN",
    "HALF_OPEN",
    "FallbackChain",
    "FallbackResult",
    "Link",
    "AllLinksFailed",
    "StreamInterrupted",
    "stream_with_fallback",
    "IdempotencyStore",
    "Idempotent",
    "Claim",
    "IdempotencyError",
    "KeyReused",
    "InProgress",
    "fingerprint",
    "encode_response",
    "decode_response",
]
