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
  per key with ``RateLimits(..., burst_s=1.0)`` or for every key with
  :meth:`RateLimiter.set_default_burst`. The bucket holds at least one request, and a request
  bigger than the token burst capacity is admitted once that bucket is full (it then overdraws it,
  so the average rate stays at the limit). The ``anthropic-ratelimit-*`` headers report the
  minute-sized view (limit per minute, remaining in it, time it is full again) whatever the burst.
* Limits apply separately to each model, and (here) to each API key, standing in for an
  organization, so tenants can be given different tiers with :meth:`RateLimiter.set_tier`.
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

* **Separate limits** for two other endpoints, per API key: token counting has its own requests per
  minute (``count_tokens_rpm``: "Token counting ... rate limits" are separate from the Messages
  API's), and the Message Batches API limits its HTTP requests (``batch_rpm``) and the number of
  batch requests waiting in the processing queue (``batch_queue``). ``None`` = not limited (the
  ``default`` and ``unlimited`` tiers); tiers 1-4 carry the documented figures.

Deliberate simplification: ``*-remaining`` headers are exact integer floors so students see them
count down request by request (the API rounds token counts to the nearest thousand).
"""

from __future__ import annotations

import hashlib
import math
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from ..clock import Clock
from .errors import RateLimited

__all__ = [
    "DEFAULT_BURST_S",
    "LimitBucket",
    "RateLimits",
    "TIERS",
    "TIERS_SOURCE",
    "get_tier",
    "Admission",
    "RateLimiter",
    "reset_timestamp",
]

TIERS_SOURCE = "https://platform.claude.com/docs/en/api/rate-limits"

DEFAULT_BURST_S = 1.0
"""Burst capacity, in seconds' worth of each per-minute limit, for limits that do not set their own.

60.0 = a whole minute's quota may be spent at once (lenient); 1.0 = short-interval enforcement, as
the rate-limits page describes ("60 RPM might be enforced as 1 request per second").
"""

# Time slack (seconds) when comparing a bucket level with a demand: wall-clock epoch floats have a
# resolution of ~2e-7 s, and "retry at exactly retry-after" must not fail by a rounding error.
_TIME_SLACK_S = 1e-6


def reset_timestamp(epoch_seconds: float) -> str:
    """Format an epoch time as the API's reset timestamps, e.g. ``2026-11-27T02:51:04Z``.

    Rounded *up* to the second so the moment named has really been reached.
    """
    if math.isinf(epoch_seconds):
        epoch_seconds = 253402300799  # 9999-12-31T23:59:59Z: "never" in a parseable form
    return datetime.fromtimestamp(math.ceil(epoch_seconds - _TIME_SLACK_S), tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


class LimitBucket:
    """A continuously refilling token bucket.

    Starts full. The level may go negative through :meth:`take_unchecked` (charging usage that
    was only known after the fact); it then needs longer to recover.
    """

    def __init__(self, capacity: float, refill_per_second: float, clock: Clock) -> None:
        if capacity < 0 or refill_per_second < 0:
            raise ValueError("capacity and refill_per_second must be >= 0")
        self.capacity = float(capacity)
        self.refill_per_second = float(refill_per_second)
        self._clock = clock
        self._level = float(capacity)
        self._last = clock.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def per_minute(cls, limit: float, clock: Clock) -> "LimitBucket":
        """A bucket for a per-minute limit: capacity ``limit``, refilled at ``limit / 60`` per second."""
        return cls(limit, limit / 60.0, clock)

    def _refill(self) -> None:
        now = self._clock.monotonic()
        if now > self._last:
            self._level = min(self.capacity, self._level + (now - self._last) * self.refill_per_second)
        self._last = max(self._last, now)

    def _tolerance(self) -> float:
        return self.refill_per_second * _TIME_SLACK_S + 1e-9

    def available(self) -> float:
        """Tokens available now (fractional; negative after an overdraft)."""
        with self._lock:
            self._refill()
            return self._level

    def remaining(self) -> int:
        """Whole tokens available now, never below zero (what the ``*-remaining`` headers show)."""
        with self._lock:
            self._refill()
            return max(0, math.floor(self._level + self._tolerance()))

    def try_take(self, n: float) -> bool:
        """Take ``n`` tokens if they are all available now; otherwise take nothing and return False."""
        with self._lock:
            self._refill()
            if self._level + self._tolerance() >= n:
                self._level -= n
                return True
            return False

    def time_until(self, n: float) -> float:
        """Seconds until ``n`` tokens are available (0 if they are now; ``inf`` if ``n`` > capacity)."""
        with self._lock:
            self._refill()
            return self._time_until_locked(n)

    def _time_until_locked(self, n: float) -> float:
        if n > self.capacity + 1e-9:
            return math.inf
        deficit = n - self._level
        if deficit <= self._tolerance():
            return 0.0
        if self.refill_per_second <= 0:
            return math.inf
        return deficit / self.refill_per_second

    def take_unchecked(self, n: float) -> None:
        """Take ``n`` tokens regardless of the level (may go negative); a negative ``n`` refunds.

        Refunds never fill the bucket beyond its capacity.
        """
        with self._lock:
            self._refill()
            self._level = min(self.capacity, self._level - n)

    def reset_at(self, n: float | None = None) -> float:
        """Wall-clock epoch time at which ``n`` tokens (default: a full bucket) will be available."""
        with self._lock:
            self._refill()
            wait = self._time_until_locked(self.capacity if n is None else n)
        return self._clock.time() + wait

    def __repr__(self) -> str:
        return f"LimitBucket(level={self.available():.1f}/{self.capacity:g}, refill={self.refill_per_second:g}/s)"


@dataclass(frozen=True)
class RateLimits:
    """Per-minute limits for one model, as the API's tier tables list them.

    ``burst_s``: the burst capacity in seconds' worth of each limit (1.0 = short-interval
    enforcement, 60 = a minute's quota at once); ``None`` = the limiter's default
    (:data:`DEFAULT_BURST_S` unless :meth:`RateLimiter.set_default_burst` changed it).
    """

    requests_per_minute: int
    input_tokens_per_minute: int
    output_tokens_per_minute: int
    burst_s: float | None = None
    count_tokens_rpm: int | None = None
    """Requests per minute to ``POST /v1/messages/count_tokens`` (None: not limited)."""
    batch_rpm: int | None = None
    """HTTP requests per minute to the Message Batches API (create, retrieve, list, results, ...)."""
    batch_queue: int | None = None
    """Batch requests that may wait in the processing queue at once (a create that would pass it gets 429)."""

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.burst_s is not None:
            _check_burst(self.burst_s)
        for name in ("count_tokens_rpm", "batch_rpm", "batch_queue"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive integer or None")

    def with_burst(self, burst_s: float | None) -> "RateLimits":
        """The same limits with another burst capacity, e.g. ``TIERS["tier-1"].with_burst(1.0)``."""
        return replace(self, burst_s=burst_s)


def _check_burst(burst_s: float) -> float:
    if isinstance(burst_s, bool) or not isinstance(burst_s, (int, float)) or not 0 < burst_s <= 60:
        raise ValueError(f"burst_s must be a number of seconds in (0, 60], not {burst_s!r}")
    return float(burst_s)


_UNLIMITED = 10**12

TIERS: dict[str, RateLimits] = {
    # Low on purpose: a notebook fanning out 50-100 short requests runs into it, which is the lesson.
    "default": RateLimits(50, 20_000, 8_000),
    # Usage tiers 1-4 for Claude Opus 4.x / Sonnet 4.x (see TIERS_SOURCE). Haiku 4.5 is listed
    # higher at tiers 1, 3 and 4 (50K/10K, 1M/200K, 4M/800K ITPM/OTPM); set it per key if needed.
    # Token counting RPM and Message Batches RPM / queue per tier: the rate-limits page's tables
    # (Batches tier 1: 50 RPM, 100,000 requests in the processing queue; see docs/api-notes.md §1).
    "tier-1": RateLimits(50, 30_000, 8_000, count_tokens_rpm=100, batch_rpm=50, batch_queue=100_000),
    "tier-2": RateLimits(1_000, 450_000, 90_000, count_tokens_rpm=2_000, batch_rpm=1_000, batch_queue=200_000),
    "tier-3": RateLimits(2_000, 800_000, 160_000, count_tokens_rpm=4_000, batch_rpm=2_000, batch_queue=300_000),
    "tier-4": RateLimits(4_000, 2_000_000, 400_000, count_tokens_rpm=8_000, batch_rpm=4_000, batch_queue=500_000),
    "unlimited": RateLimits(_UNLIMITED, _UNLIMITED, _UNLIMITED),
}


def get_tier(tier: str | RateLimits) -> RateLimits:
    """Resolve a tier name (a key of :data:`TIERS`) or pass a :class:`RateLimits` through."""
    if isinstance(tier, RateLimits):
        return tier
    try:
        return TIERS[tier]
    except KeyError:
        raise ValueError(f"Unknown rate-limit tier {tier!r}; known tiers: {', '.join(TIERS)}") from None


class Limit:
    """One per-minute limit: the burst bucket that admits requests, and the minute-sized view.

    Both refill at ``per_minute / 60`` per second and are charged alike, so the burst bucket
    (capacity ``per_minute * burst_s / 60``, at least ``floor``) is never fuller than the minute
    bucket; with ``burst_s = 60`` they are one bucket. Headers report the minute bucket.
    """

    def __init__(self, per_minute: float, clock: Clock, burst_s: float, floor: float = 0.0) -> None:
        self.per_minute = per_minute
        self.minute = LimitBucket.per_minute(per_minute, clock)
        capacity = max(floor, per_minute * burst_s / 60.0)
        self.burst = self.minute if capacity >= per_minute else LimitBucket(capacity, per_minute / 60.0, clock)

    def wait_for(self, need: float) -> float:
        """Seconds until a demand of ``need`` is admissible: ``need`` available in the burst bucket,
        or a full burst bucket if ``need`` is bigger than it."""
        return self.burst.time_until(min(need, self.burst.capacity))

    def charge(self, n: float) -> None:
        """Charge ``n`` (may overdraw; negative refunds)."""
        self.minute.take_unchecked(n)
        if self.burst is not self.minute:
            self.burst.take_unchecked(n)


@dataclass
class _Buckets:
    limits: RateLimits
    burst_s: float
    requests: Limit
    input: Limit
    output: Limit

    @classmethod
    def create(cls, limits: RateLimits, clock: Clock, default_burst_s: float) -> "_Buckets":
        burst_s = limits.burst_s if limits.burst_s is not None else default_burst_s
        return cls(
            limits,
            burst_s,
            Limit(limits.requests_per_minute, clock, burst_s, floor=1.0),
            Limit(limits.input_tokens_per_minute, clock, burst_s),
            Limit(limits.output_tokens_per_minute, clock, burst_s),
        )


@dataclass
class Admission:
    """A request let through: what it was charged, and the headers its response should carry."""

    api_key: str
    model: str
    input_tokens: int
    """Uncached input tokens charged against ITPM."""
    output_reserved: int
    """Always 0: OTPM counts actual output only (charged by :meth:`RateLimiter.settle`)."""
    headers: dict[str, str]
    """``anthropic-ratelimit-*`` headers as of admission (after this request was charged)."""
    admitted_at: float
    settled: bool = False
    _buckets: _Buckets | None = field(default=None, repr=False, compare=False)


_UNITS = {"requests": "requests", "input": "input tokens", "output": "output tokens"}
_DOCS = "https://docs.claude.com/en/api/rate-limits"
_SALES = "https://claude.com/contact-sales"


def _org_id(api_key: str) -> str:
    # A stable stand-in for the organization id the API names; never echo the key itself.
    return str(uuid.UUID(bytes=hashlib.sha256(api_key.encode()).digest()[:16], version=4))


class RateLimiter:
    """Token-bucket rate limits per (API key, model), with per-key tiers and a burst capacity.

    Safe to call from several threads: every operation holds one lock, so an admission checks
    and charges its three buckets atomically.
    """

    def __init__(
        self, clock: Clock, default_tier: str | RateLimits = "default", *, burst_s: float | None = None
    ) -> None:
        self._clock = clock
        self._default = get_tier(default_tier)
        # Read at construction (not at import), so the module constant is the one place to change it.
        self._default_burst_s = _check_burst(DEFAULT_BURST_S if burst_s is None else burst_s)
        self._tiers: dict[str, RateLimits] = {}
        self._buckets: dict[tuple[str, str], _Buckets] = {}
        self._endpoint_buckets: dict[tuple[str, str], Limit] = {}
        self._lock = threading.Lock()

    # ----- configuration -------------------------------------------------------------------------
    @property
    def default_burst_s(self) -> float:
        """Burst capacity (seconds' worth of each limit) of limits that do not set ``burst_s``."""
        return self._default_burst_s

    def set_default_burst(self, burst_s: float) -> None:
        """Burst capacity for every limit without its own ``burst_s`` (1.0 = short-interval
        enforcement, 60 = a minute's quota at once); the affected buckets start afresh (full)."""
        burst_s = _check_burst(burst_s)
        with self._lock:
            self._default_burst_s = burst_s
            for key, b in list(self._buckets.items()):
                if b.limits.burst_s is None:
                    del self._buckets[key]

    def set_tier(self, api_key: str, tier: str | RateLimits) -> None:
        """Give ``api_key`` its own limits; its buckets start afresh (full) at the new limits."""
        limits = get_tier(tier)
        with self._lock:
            self._tiers[api_key] = limits
            self._drop_key(api_key)

    def set_default_tier(self, tier: str | RateLimits) -> None:
        """Change the limits of every key without a tier of its own (their buckets start afresh)."""
        limits = get_tier(tier)
        with self._lock:
            self._default = limits
            for key in [k for k in self._buckets if k[0] not in self._tiers]:
                del self._buckets[key]
            for key in [k for k in self._endpoint_buckets if k[0] not in self._tiers]:
                del self._endpoint_buckets[key]

    def limits_for(self, api_key: str) -> RateLimits:
        """The limits that apply to ``api_key``."""
        with self._lock:
            return self._tiers.get(api_key, self._default)

    def burst_for(self, api_key: str) -> float:
        """The burst capacity (seconds) that applies to ``api_key``."""
        limits = self.limits_for(api_key)
        return self._default_burst_s if limits.burst_s is None else limits.burst_s

    def reset(self) -> None:
        """Refill every bucket (forget all usage); per-key tiers are kept."""
        with self._lock:
            self._buckets.clear()
            self._endpoint_buckets.clear()

    def _drop_key(self, api_key: str) -> None:
        for key in [k for k in self._buckets if k[0] == api_key]:
            del self._buckets[key]
        for key in [k for k in self._endpoint_buckets if k[0] == api_key]:
            del self._endpoint_buckets[key]

    def _get(self, api_key: str, model: str) -> _Buckets:
        buckets = self._buckets.get((api_key, model))
        if buckets is None:
            buckets = _Buckets.create(self._tiers.get(api_key, self._default), self._clock, self._default_burst_s)
            self._buckets[(api_key, model)] = buckets
        return buckets

    # ----- admission -----------------------------------------------------------------------------
    def admit(
        self,
        api_key: str,
        model: str,
        input_tokens: int,
        max_tokens: int = 0,
        cache_read_tokens: int = 0,
    ) -> Admission:
        """Charge a request against the limits, or refuse it with :class:`RateLimited` (429).

        ``input_tokens`` is the whole prompt, including any part that will be read from the
        prompt cache; ``cache_read_tokens`` of it are not charged (cache reads don't count
        towards ITPM). Charges 1 request and the uncached input. ``max_tokens`` is accepted for
        the caller's convenience and ignored: OTPM counts the output actually produced, charged by
        :meth:`settle`; admission only needs the output bucket not to be exhausted.
        """
        del max_tokens  # "does not factor into OTPM rate limit calculations" (rate-limits page)
        uncached = max(0, int(input_tokens) - max(0, int(cache_read_tokens)))
        with self._lock:
            b = self._get(api_key, model)
            if uncached > b.limits.input_tokens_per_minute:
                headers = self._headers_locked(b)
                headers["x-should-retry"] = "false"
                raise RateLimited(
                    f"This request would exceed your organization's rate limit of "
                    f"{b.limits.input_tokens_per_minute:,} input tokens per minute (org: {_org_id(api_key)}, "
                    f"model: {model}): its {uncached:,} uncached input tokens are more than the limit allows "
                    f"in a minute, so retrying cannot succeed. Shorten the prompt, cache its stable prefix "
                    f"(cache reads do not count towards this limit), or use a higher rate-limit tier. "
                    f"For details, refer to: {_DOCS}.",
                    headers=headers,
                )
            # (name, limit, needed to be admitted, charged now)
            demands = [
                ("requests", b.requests, 1, 1),
                ("input", b.input, uncached, uncached),
                ("output", b.output, 1, 0),
            ]
            waits = [(limit.wait_for(need), name) for name, limit, need, _ in demands]
            wait, binding = max(waits)
            if wait > 0:
                headers = self._headers_locked(b)
                # Whole seconds, rounded up, never 0: an earlier retry would be refused again.
                headers["retry-after"] = str(max(1, math.ceil(wait - _TIME_SLACK_S)))
                limit = {
                    "requests": b.limits.requests_per_minute,
                    "input": b.limits.input_tokens_per_minute,
                    "output": b.limits.output_tokens_per_minute,
                }[binding]
                raise RateLimited(
                    f"This request would exceed your organization's rate limit of {limit:,} {_UNITS[binding]} "
                    f"per minute (org: {_org_id(api_key)}, model: {model}). For details, refer to: {_DOCS}. "
                    f"You can see the response headers for current usage. Please reduce the prompt length or "
                    f"the maximum tokens requested, or try again later. You may also contact sales at {_SALES} "
                    f"to discuss your options for a rate limit increase.",
                    headers=headers,
                )
            for _, limit_, _, charge in demands:
                if charge:
                    limit_.charge(charge)
            return Admission(
                api_key=api_key,
                model=model,
                input_tokens=uncached,
                output_reserved=0,
                headers=self._headers_locked(b),
                admitted_at=self._clock.time(),
                _buckets=b,
            )

    def settle(self, admission: Admission, actual_output_tokens: int) -> None:
        """Charge the output the reply actually produced against OTPM (may overdraw the bucket).

        Settling twice is a no-op, so callers may settle in a ``finally``.
        """
        with self._lock:
            if admission.settled:
                return
            admission.settled = True
            if admission._buckets is not None:
                admission._buckets.output.charge(max(0, int(actual_output_tokens)))

    # ----- other endpoints: token counting and Message Batches -------------------------------------
    ENDPOINTS = {"count_tokens": ("count_tokens_rpm", "token counting"), "batches": ("batch_rpm", "Message Batches API")}

    def admit_endpoint(self, api_key: str, endpoint: str) -> dict[str, str]:
        """Charge one request to ``endpoint`` (``count_tokens`` or ``batches``) against its own
        requests-per-minute limit, or refuse it with :class:`RateLimited`. Returns the endpoint's
        ``anthropic-ratelimit-requests-*`` headers (empty when the endpoint is not limited)."""
        field_name, label = self.ENDPOINTS[endpoint]
        with self._lock:
            limits = self._tiers.get(api_key, self._default)
            rpm = getattr(limits, field_name)
            if rpm is None:
                return {}
            key = (api_key, f"endpoint:{endpoint}")
            bucket = self._endpoint_buckets.get(key)
            if bucket is None:
                burst = limits.burst_s if limits.burst_s is not None else self._default_burst_s
                bucket = self._endpoint_buckets[key] = Limit(rpm, self._clock, burst, floor=1.0)
            wait = bucket.wait_for(1)
            headers = _bucket_headers("requests", bucket.minute)
            if wait > 0:
                headers["retry-after"] = str(max(1, math.ceil(wait - _TIME_SLACK_S)))
                raise RateLimited(
                    f"This request would exceed your organization's rate limit of {rpm:,} requests per minute "
                    f"for the {label} (org: {_org_id(api_key)}). For details, refer to: {_DOCS}.",
                    headers=headers,
                )
            bucket.charge(1)
            return _bucket_headers("requests", bucket.minute)

    def check_batch_queue(self, api_key: str, queued: int, adding: int) -> None:
        """Refuse (429) a batch create that would put more than ``batch_queue`` requests of this key in
        the processing queue (``queued`` already waiting, ``adding`` in the new batch)."""
        limit = self.limits_for(api_key).batch_queue
        if limit is None or queued + adding <= limit:
            return
        retryable = adding <= limit
        headers = {"retry-after": "60"} if retryable else {"x-should-retry": "false"}
        raise RateLimited(
            f"This request would exceed your organization's limit of {limit:,} batch requests in the processing "
            f"queue (org: {_org_id(api_key)}): {queued:,} are waiting and this batch adds {adding:,}. "
            + ("Wait for batches to finish, or send fewer requests per batch. " if retryable else
               "This batch alone is larger than the limit; split it. ")
            + f"For details, refer to: {_DOCS}.",
            headers=headers,
        )

    # ----- headers -------------------------------------------------------------------------------
    def headers(self, api_key: str, model: str) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers for ``api_key`` and ``model`` right now."""
        with self._lock:
            return self._headers_locked(self._get(api_key, model))

    def _headers_locked(self, b: _Buckets) -> dict[str, str]:
        out: dict[str, str] = {}
        for prefix, limit in (("requests", b.requests), ("input-tokens", b.input), ("output-tokens", b.output)):
            out.update(_bucket_headers(prefix, limit.minute))
        # "tokens-*" mirror whichever token limit is closer to refusing requests right now.
        tightest = min((b.input.minute, b.output.minute), key=lambda bk: (bk.remaining(), -bk.reset_at()))
        out.update(_bucket_headers("tokens", tightest))
        return out


def _bucket_headers(prefix: str, bucket: LimitBucket) -> dict[str, str]:
    return {
        f"anthropic-ratelimit-{prefix}-limit": str(int(bucket.capacity)),
        f"anthropic-ratelimit-{prefix}-remaining": str(bucket.remaining()),
        f"anthropic-ratelimit-{prefix}-reset": reset_timestamp(bucket.reset_at()),
    }
