"""Concurrency for LLM calls (lesson 03): bounded fan-out, structured concurrency, worker pools,
client-side rate limiting and a rate-limit-aware dispatcher.

=================  ==============================================================================
module             what
=================  ==============================================================================
``fanout``         :func:`bounded_gather` (at most N in flight, input order); :func:`max_in_flight`
``structured``     :func:`run_all`: TaskGroup, per-item timeout, per-item :class:`Outcome`
``workers``        :class:`WorkerPool` / :func:`run_pool`: N workers over an ``asyncio.Queue``
``buckets``        :class:`TokenBucket`, :class:`RateBudget`: client-side request and token buckets
``dispatcher``     :class:`RateLimitedDispatcher`: estimate, wait, send, sync with the headers
``threads``        :func:`run_threaded`: the same with a thread pool and the sync client
``progress``       :class:`Progress`: a progress bar (widget, or text)
``workload``       the lesson's ticket-classification requests
=================  ==============================================================================
"""

from __future__ import annotations

from .buckets import Cost, RateBudget, ExceedsBucketCapacity, TokenBucket
from .dispatcher import DispatchStats, RateLimitedDispatcher, estimate_cost, retry_after_seconds
from .fanout import bounded_gather, max_in_flight
from .progress import Progress
from .structured import Outcome, partition, run_all, with_timeout
from .threads import run_threaded
from .workers import WorkerPool, run_pool

__all__ = [
    "bounded_gather",
    "max_in_flight",
    "run_all",
    "with_timeout",
    "partition",
    "Outcome",
    "WorkerPool",
    "run_pool",
    "TokenBucket",
    "RateBudget",
    "Cost",
    "ExceedsBucketCapacity",
    "RateLimitedDispatcher",
    "DispatchStats",
    "estimate_cost",
    "retry_after_seconds",
    "run_threaded",
    "Progress",
]
