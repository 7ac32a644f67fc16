"""Rate limits as the Messages API enforces them: token buckets per organization and model.

What the simulator reproduces (https://platform.claude.com/docs/en/api/rate-limits):

* Three limits per model: requests (RPM), input tokens (ITPM) and output tokens (OTPM) per minute.
  Each is a *token bucket* that refills continuously (limit / 60 per second), not a window that
  resets on the minute.
* **Burst capacity** (``burst_s``): how many seconds' worth of the per-minute rate the bucket that
  admits requests holds. The docs: "a rate of 60 requests per minute (RPM) might be enforced as 1
  request per second. Short bursts of requests can exceed the rate limit", so ``burst_s=1.0`` is
  the documented short-interval enforcement, and ``burst_s=60`` the lenient variant in which a
  burst may spend a whole minute's quota at once. The default is :data:`DEFAULT_BURST_S`; pick one
  per organisation with ``RateLimits(..., burst_s=1.0)`` or for every one with
  :meth:`RateLimiter.set_default_burst`. The bucket holds at least one request, and a request
  bigger than the token burst capacity is admitted once that bucket is full (it then overdraws it,
  so the average rate stays at the limit). The ``anthropic-ratelimit-*`` headers report the
  minute-sized view (limit per minute, remaining in it, time it is full again) whatever the burst.
* Limits belong to the **organisation** ("Limits are set at the organization level"): every key of
  the simulated organisation shares its buckets, so a second key adds no capacity. A key given a tier
  of its own (:meth:`RateLimiter.set_tier`) stands for another organisation (another account).
* Buckets are per **model group** (:mod:`.groups`): "Opus rate limit is a total limit that applies to
  combined traffic across Claude Opus 4.8, Opus 4.7, Opus 4.6, and Opus 4.5"; other models each have
  their own.
* **Workspaces** (:mod:`.workspaces`): keys put in a workspace (:meth:`RateLimiter.assign_workspace`)
  draw on the organization's limits (:meth:`RateLimiter.set_org_limits`) and, when the workspace has
  limits of its own (:meth:`RateLimiter.set_workspace`), the workspace's too: "Organization-wide
  limits always apply, even if Workspace limits add up to more"; "the lower of the two is enforced".
* **Acceleration limits** (:mod:`.acceleration`, off by default): 429s on a sharp increase of an
  organisation's traffic, as the page warns; the figures are the simulator's own.
* ITPM counts uncached input only: ``input_tokens`` and cache writes count, cache reads do not.
* OTPM counts the output actually produced; ``max_tokens`` reserves nothing. The docs: "OTPM rate
  limits are evaluated in real time as output tokens are produced, counting only the actual tokens
  generated. The ``max_tokens`` parameter does not factor into OTPM rate limit calculations." A
  request is admitted while the output bucket is not exhausted (at least one token available), and
  its output is charged when the reply finishes (:meth:`RateLimiter.settle`), possibly taking the
  bucket negative. Simplification: the API charges tokens as they stream; the simulator charges a
  reply's output at its end, so concurrent replies can overshoot OTPM by what is in flight.
* A refusal is a 429 ``rate_limit_error`` that names the limit exceeded, with ``retry-after``
  (whole seconds, rounded up: a retry at exactly that moment is admitted if nothing else spent
  the capacity meanwhile) and the ``anthropic-ratelimit-*`` headers.
* A request whose uncached input alone exceeds the ITPM capacity can never be admitted. It gets
  the same 429 with an explanation, no ``retry-after``, and ``x-should-retry: false``, which the
  official SDKs honour, so they fail fast instead of retrying a hopeless request.

* **Separate limits** for two other endpoints, per organisation: token counting has its own requests per
  minute (``count_tokens_rpm``: "Token counting ... rate limits" are separate from the Messages
  API's), and the Message Batches API limits its HTTP requests (``batch_rpm``) and the number of
  batch requests waiting in the processing queue (``batch_queue``). ``None`` = not limited (the
  ``default`` and ``unlimited`` tiers); tiers 1-4 carry the documented figures.

Headers as the page describes them: token ``*-remaining`` "rounded to the nearest thousand"
(``RateLimiter(exact_remaining=True)`` keeps exact figures for a teaching demo), and ``tokens-*`` the
sum of input and output when no workspace limits apply, the most restrictive limit when they do.
"""

from __future__ import annotations

from .acceleration import Acceleration
from .buckets import LimitBucket, reset_timestamp
from .limiter import Admission, RateLimiter
from .tiers import DEFAULT_BURST_S, TIERS, TIERS_SOURCE, RateLimits, get_tier
from .workspaces import WORKSPACES_SOURCE, Workspaces, effective_limits

__all__ = [
    "Acceleration",
    "DEFAULT_BURST_S",
    "LimitBucket",
    "RateLimits",
    "TIERS",
    "TIERS_SOURCE",
    "get_tier",
    "Admission",
    "RateLimiter",
    "reset_timestamp",
    "Workspaces",
    "WORKSPACES_SOURCE",
    "effective_limits",
]
