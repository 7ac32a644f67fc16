"""Concurrency for LLM calls (lesson 03): bounded fan-out, structured concurrency, worker pools,
client-side rate limiting and a rate-limit-aware dispatcher.

=================  ==============================================================================
module             what
=================  ==============================================================================
``fanout``         :func:`bounded_gather` (at most N in flight, input order); :func:`max_in_flight`
``structured``     :func:`run_all`: TaskGroup, per-item timeout, per-item :class:`Outcome`
                   (:class:`Outcomes` has ``.frame()``)
``workers``        :class:`WorkerPool` / :func:`run_pool`: N workers over an ``asyncio.Queue``
``buckets``        :class:`TokenBucket`, :class:`RateBudget`: client-side request and token buckets
``dispatcher``     :class:`RateLimitedDispatcher`: pace at the limit with headroom, sync with the headers
``org_limits``     :func:`read_rate_limits`: the organisation's limits from the Rate Limits API
``simulate``       :func:`simulate_runs`: approaches side by side on the simulator, on virtual time;
                   its kit (:func:`simulator_session`, :func:`run_each`) serves lesson 07 too
``threads``        :func:`run_threaded`: the same with a thread pool and the sync client
``display``        :func:`async_slider`: the Explore control
``workload``       the lesson's ticket-classification requests
=================  ==============================================================================

Long operations take ``on_progress``, a :data:`course_utils.progress.ProgressCallback` (pass a
:class:`course_utils.progress.ProgressBar`).
"""

from __future__ import annotations

from .buckets import Demand, ExceedsBucketCapacity, RateBudget, TokenBucket
from .dispatcher import DispatchStats, RateLimitedDispatcher, estimate_demand
from .display import async_slider
from .errors import ConcurrencyError
from .fanout import bounded_gather, max_in_flight
from .org_limits import ModelLimits, aread_rate_limits, read_rate_limits
from .simulate import (
    NO_LIMIT,
    RunComparison,
    SimulatedRun,
    SimulatorSession,
    arun_each,
    asimulate_runs,
    run_each,
    simulate_runs,
    simulator_session,
)
from .structured import Outcome, Outcomes, partition, run_all, with_timeout
from .threads import run_threaded
from .workers import WorkerPool, run_pool
from .workload import LABELS, classify_body, label_of, load_tickets

__all__ = [
    "ModelLimits",
    "read_rate_limits",
    "aread_rate_limits",
    "bounded_gather",
    "max_in_flight",
    "run_all",
    "with_timeout",
    "partition",
    "Outcome",
    "Outcomes",
    "WorkerPool",
    "run_pool",
    "TokenBucket",
    "RateBudget",
    "Demand",
    "ConcurrencyError",
    "ExceedsBucketCapacity",
    "RateLimitedDispatcher",
    "DispatchStats",
    "estimate_demand",
    "run_threaded",
    "simulate_runs",
    "asimulate_runs",
    "SimulatorSession",
    "simulator_session",
    "run_each",
    "arun_each",
    "SimulatedRun",
    "RunComparison",
    "NO_LIMIT",
    "async_slider",
    "LABELS",
    "classify_body",
    "label_of",
    "load_tickets",
]
