"""A rate-limit-aware dispatcher: paced at the provider's limits with headroom, never betting on a burst.

The API may enforce a per-minute limit over much shorter intervals ("60 RPM might be enforced as
1 request per second", https://platform.claude.com/docs/en/api/rate-limits), so a client that
spends a minute's quota at once is refused even under its per-minute limit. For each request this
dispatcher:

1. **estimates the demand before sending**: 1 request, the input tokens counted offline with
   :func:`course_utils.tokens.count_request`, and the output it *expects* (the mean of the replies
   so far, capped at ``max_tokens``). The API reserves nothing for ``max_tokens``: OTPM counts the
   output actually generated, so the estimate is the client's own, settled to the actual output;
   Input is charged the same way: "only uncached input tokens count towards your ITPM rate limits"
   on most models (cache reads are still billed), so the client subtracts the cache reads it expects
   (the latest reply's, for a body with ``cache_control``) and settles each reply to its
   ``input_tokens + cache_creation_input_tokens``;
2. **waits in a client-side** :class:`~.buckets.RateBudget` that refills at ``1 - headroom`` of each
   limit and holds about ``burst_s`` (1) second of it, so requests go out paced from the start;
3. **stays in step with the provider**: the first request goes alone and the buckets start when
   its answer arrives (behind the provider's, never ahead); every response's
   ``anthropic-ratelimit-*-limit`` headers set the limits, and a ``*-remaining`` lower than the local
   level (another process or key of the same organisation) lowers the local bucket to match;
4. **waits ``retry-after`` plus jitter** if a 429 still happens (the course's one waiting rule,
   :func:`course_utils.retries.retry_delay`): the request is refunded; nothing is sent before
   ``retry-after`` ("earlier retries will fail"), the local buckets drop to empty (the provider's
   short-interval bucket is), and each refused request comes back at its own time,
   ``retry-after`` plus a full-jitter draw, so the refused crowd does not return at one instant
   (the SDK waits exactly ``retry-after``: lesson 03 measures the herd that makes).

With ``limits=None`` the limits are read from the first response's headers.
The client is used with ``max_retries=0``: the SDK's own retries would hide the 429s from us.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import anthropic

from ..clients import AsyncClient
from ..clock import SYSTEM_CLOCK, Clock
from ..progress import ProgressCallback
from ..tokens import count_request
from ..retries import RetryEvent, RetryPolicy, retry_after_s
from .buckets import Demand, RateBudget
from .structured import Outcome, Outcomes, run_all


__all__ = ["RateLimitedDispatcher", "DispatchStats", "estimate_demand", "itpm_tokens", "uses_cache"]

HEADER_PREFIX = "anthropic-ratelimit-"
ROUNDING_SLACK = 500.0
"""The ``*-tokens-remaining`` headers are "rounded to the nearest thousand": at most this far off."""


def estimate_demand(body: Mapping[str, Any], expected_output: float = 0.0, expected_cache_read: float = 0.0) -> Demand:
    """What a Messages request body will take from the rate limits, computed before sending it.

    1 request and its input tokens (counted offline) less ``expected_cache_read`` (cache reads don't
    count towards ITPM on most models); ``expected_output`` tokens of output, capped at the body's
    ``max_tokens`` (the API charges OTPM for output generated, so only the client can guess it;
    ``max_tokens`` itself reserves nothing).
    """
    cap = int(body.get("max_tokens") or 0)
    counted = count_request(body)
    uncached = max(0, counted - int(expected_cache_read))
    return Demand(requests=1, input_tokens=uncached, output_tokens=min(cap, math.ceil(expected_output)))


def uses_cache(body: Mapping[str, Any]) -> bool:
    """Whether a body marks anything for the prompt cache (a block's or the top-level ``cache_control``)."""
    return '"cache_control"' in json.dumps(body, default=str)


def itpm_tokens(usage: Any) -> int | None:
    """What a reply's ``usage`` counts towards ITPM: ``input_tokens + cache_creation_input_tokens``
    (``cache_read_input_tokens`` do not count on most models); None without a usage."""
    if usage is None or getattr(usage, "input_tokens", None) is None:
        return None
    return int(usage.input_tokens or 0) + int(getattr(usage, "cache_creation_input_tokens", 0) or 0)


@dataclass
class DispatchStats:
    """Counters of one dispatcher, for dashboards and the notebook's tables."""

    sent: int = 0
    """HTTP requests sent, retries included."""
    succeeded: int = 0
    failed: int = 0
    rate_limited: int = 0
    """429 responses received."""
    retries: int = 0
    waited_s: float = 0.0
    """Seconds requests spent waiting for rate-limit capacity (summed over requests)."""
    corrections: int = 0
    """Times the provider's headers showed less capacity than the local estimate."""
    arrivals: list[float] = field(default_factory=list, repr=False)
    """Clock ``monotonic()`` reading at each send."""


class RateLimitedDispatcher:
    """Send Messages requests under a client-side copy of the provider's rate limits.

    ``limits``: anything with ``requests_per_minute``, ``input_tokens_per_minute`` and
    ``output_tokens_per_minute`` (e.g. ``course_utils.mock_provider.RateLimits``), or ``None`` to
    learn them from the first response. ``max_concurrency`` caps requests in flight (connections).
    ``headroom`` is the share of each limit left unused (0.05: pace at 95 %), which absorbs network
    jitter and clock differences; ``burst_s`` how many seconds of the paced rate the local buckets
    may spend at once (1: the short interval the API may enforce over; 60 bets on a lenient
    provider, see the lesson). ``max_attempts`` counts tries per request for 429 and transient
    500/529 errors. ``backoff_s`` is the full-jitter window of the first retry (doubling each
    retry) added on top of ``retry-after``; ``backoff_s=0`` waits exactly ``retry-after``, the SDK's
    rule, which exists to show the herd it makes. ``ramp_s`` ramps the paced rate up from
    ``ramp_start`` of it to all of it over that many seconds after the first response: the
    rate-limits page asks clients to "ramp up your traffic gradually" to avoid acceleration limits
    and gives no figures (0, the default, starts at the full paced rate, as lessons 07 and 08 use it).
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        limits: Any | None = None,
        max_concurrency: int = 64,
        max_attempts: int = 6,
        headroom: float = 0.05,
        burst_s: float = 1.0,
        sync_headers: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        backoff_s: float = 0.5,
        rng: random.Random | None = None,
        ramp_s: float = 0.0,
        ramp_start: float = 0.1,
    ) -> None:
        with_options = getattr(client, "with_options", None)
        self._client = with_options(max_retries=0) if with_options is not None else client
        self._clock = clock
        self._headroom = headroom
        self._burst_s = burst_s
        self._sync = sync_headers
        self._max_attempts = max(1, max_attempts)
        self._ramp = (ramp_s, ramp_start)
        self._rng = rng or random.Random(0)
        self._retry = RetryPolicy(
            max_attempts=self._max_attempts,
            base_s=backoff_s,
            deadline_s=None,
            clock=self._clock,
            seed=self._rng.getrandbits(32),
            on_retry=self._count_retry,
        )
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self.budget: RateBudget | None = (
            RateBudget.from_limits(limits, clock=clock, burst_s=burst_s, headroom=headroom)
            if limits is not None
            else None
        )
        self.stats = DispatchStats()
        self._first = asyncio.Lock()
        self._warmed_up = False
        self._corrected = {"requests": 0.0, "input-tokens": 0.0, "output-tokens": 0.0}
        self._outputs = 0
        self._output_tokens = 0
        self._cache_read_tokens = 0

    # ----- one request -----------------------------------------------------------------------
    async def create(self, **body: Any) -> Any:
        """``messages.create(**body)`` under the rate limits; returns the ``Message``.

        Raises the last error when a request still fails after ``max_attempts`` (or at once for
        non-retryable errors such as 400).
        """
        if not self._warmed_up:
            # The first request goes alone: its headers tell us the limits and how much of them
            # someone else has already spent, before we fire a burst on a guess.
            async with self._first:
                if not self._warmed_up:
                    try:
                        return await self._attempts(body)
                    finally:
                        self._warmed_up = True
        return await self._attempts(body)

    @property
    def expected_output(self) -> float:
        """Output tokens per reply so far (the mean), what the next request is expected to produce."""
        return self._output_tokens / self._outputs if self._outputs else 0.0

    @property
    def expected_cache_read(self) -> float:
        """Cache-read tokens the next body with ``cache_control`` is expected to read: the latest such
        reply's (the cache as it is now; a mean would drag the first reply's cache write along)."""
        return float(self._cache_read_tokens)

    async def _attempts(self, body: Mapping[str, Any]) -> Any:
        # The course's one retry policy (course_utils.retries, taught in lesson 05) decides what is retried
        # (429 but not the spend limit, 529, 5xx, timeouts, connection errors; x-should-retry wins) and how
        # long to wait: retry-after (0 if none) plus full jitter, for a 429 as for anything else.
        cached = uses_cache(body)

        def estimate() -> Demand:
            # Called again while the request waits for capacity: replies that arrive meanwhile count.
            return estimate_demand(body, self.expected_output, self.expected_cache_read if cached else 0.0)

        return await self._retry.acall(self._send_once, body, estimate, cached)

    def _count_retry(self, event: RetryEvent) -> None:
        self.stats.retries += 1

    async def _send_once(self, body: Mapping[str, Any], estimate: Callable[[], Demand], cached: bool = False) -> Any:
        async with self._slots:
            snapshot = None
            if self.budget is not None:
                waited, demand = await self.budget.acquire_estimate(estimate)
                self.stats.waited_s += waited
                snapshot = self._snapshot(demand)
            else:
                demand = estimate()
            self.stats.sent += 1
            self.stats.arrivals.append(self._clock.monotonic())
            try:
                raw = await self._client.messages.with_raw_response.create(**body)
            except anthropic.RateLimitError as exc:
                self.stats.rate_limited += 1
                if self.budget is not None:
                    self.budget.refund(demand)  # refused, so never charged
                self._observe(exc.response.headers, snapshot)
                advised = retry_after_s(exc)  # the course's one parser (retry-after-ms, then retry-after)
                if self.budget is not None:
                    # Nobody sends before retry-after (a floor for every request, not a meeting time: the
                    # refused request itself waits retry-after plus its own jitter, in the retry policy).
                    # A 429 says the provider's short-interval bucket is empty now, whatever the per-minute
                    # *-remaining headers say: ours empty too, or the refund above keeps them full and the
                    # end of every pause releases a burst of burst_s seconds into the same 429s.
                    self.budget.pause_until(self._clock.monotonic() + (advised or 0.0))
                    for bucket in self.budget.buckets().values():
                        self.stats.corrections += int(bucket.lower_to(0.0) >= 1)
                raise
            except anthropic.APIStatusError:
                self.stats.failed += 1
                raise
            message = await raw.parse()
            usage = getattr(message, "usage", None)
            used = int(getattr(usage, "output_tokens", 0) or 0)
            self._outputs += 1
            self._output_tokens += used
            counted = itpm_tokens(usage)
            if cached and usage is not None:
                self._cache_read_tokens = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
            self._observe(raw.headers, snapshot)
            if self.budget is not None:
                if not self._warmed_up:
                    counted_in = demand.input_tokens if counted is None else counted
                    self._start_after_first(raw.headers, Demand(demand.requests, counted_in, used))
                else:
                    self.budget.settle_output(demand.output_tokens, used)
                    if counted is not None:
                        self.budget.settle_input(demand.input_tokens, counted)
            self.stats.succeeded += 1
            return message

    # ----- keeping in step with the provider ---------------------------------------------------
    def _snapshot(self, demand: Demand) -> dict[str, Any]:
        """What we believed when sending: each bucket's level right after this request was charged,
        the corrections made so far, how many requests had been sent, and this request's demand."""
        assert self.budget is not None
        levels = {name: (bucket.level, self._corrected[name]) for name, bucket in self.budget.buckets().items()}
        return {"levels": levels, "sent": self.stats.sent, "demand": demand}

    def _observe(self, headers: Mapping[str, str], snapshot: dict[str, Any] | None) -> None:
        """Adopt the ``*-limit`` headers (creating the budget if it had no limits yet)."""
        limits = {}
        for name in ("requests", "input-tokens", "output-tokens"):
            value = headers.get(f"{HEADER_PREFIX}{name}-limit")
            if value is not None:
                limits[name] = float(value)
        if self.budget is None:
            if len(limits) < 3:
                return
            self.budget = RateBudget(
                limits["requests"],
                limits["input-tokens"],
                limits["output-tokens"],
                clock=self._clock,
                burst_s=self._burst_s,
                headroom=self._headroom,
            )
            return
        for name, limit in limits.items():
            if abs(limit - self.budget.per_minute[name]) > 1e-9:
                self.budget.set_limit(name, limit)
        if self._sync and snapshot is not None and self._warmed_up:
            self._lower_to_remaining(headers, snapshot)

    def _start_after_first(self, headers: Mapping[str, str], spent: Demand) -> None:
        """The first request went alone: start our buckets now, behind the provider's (which
        started when that request arrived), minus what it took, and no fuller than its remaining
        says (another process may be spending the key)."""
        assert self.budget is not None
        self.budget.restart(spent)
        if self._ramp[0] > 0:
            self.budget.ramp(*self._ramp)
        if self._sync:
            self._lower_to_remaining(headers, {}, fresh=True)

    def _lower_to_remaining(self, headers: Mapping[str, str], snapshot: dict[str, Any], fresh: bool = False) -> None:
        assert self.budget is not None
        for name, bucket in self.budget.buckets().items():
            value = headers.get(f"{HEADER_PREFIX}{name}-remaining")
            if value is None:
                continue
            remaining = float(value)
            if fresh:
                # A rounded token count may be up to ROUNDING_SLACK under the true level.
                removed = bucket.lower_to(remaining + (ROUNDING_SLACK if name != "requests" else 0.0))
                self._corrected[name] += removed
                self.stats.corrections += int(removed >= 1)
                continue
            level_at_send, corrected_at_send = snapshot["levels"][name]
            # Our requests sent after this one may have reached the provider first: each explains
            # one request's worth of gap. requests-remaining is exact.
            overtaken = self.stats.sent - snapshot["sent"] - 1
            demand: Demand = snapshot["demand"]
            if name == "requests":
                tolerance = 1.0 + overtaken * demand.requests
            else:
                per_request = demand.input_tokens if name == "input-tokens" else demand.output_tokens
                # Token counts come "rounded to the nearest thousand" (rate-limits page): up to 500 off.
                tolerance = max(2.0, 0.005 * bucket.capacity) + ROUNDING_SLACK + overtaken * per_request
            gap = level_at_send - remaining - tolerance
            # Responses of requests sent before an earlier correction would report the same gap again.
            new = gap - (self._corrected[name] - corrected_at_send)
            if new > 0:
                bucket.take(new)
                self._corrected[name] += new
                self.stats.corrections += 1

    # ----- many requests -----------------------------------------------------------------------
    async def run(
        self,
        bodies: Iterable[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        on_done: Callable[[Outcome[Any]], Any] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Outcomes:
        """Send every body; one :class:`Outcome` per body in input order (a message or an error).

        ``on_done(outcome)`` as each finishes (to save results incrementally); ``on_progress`` gets a
        ``ProgressEvent`` per finished body (e.g. a ``ProgressBar``).
        """
        started = self._clock.monotonic()

        async def send(body: Mapping[str, Any]) -> Any:
            return await self.create(**body)

        # The semaphore inside create() bounds connections; run_all only needs to keep every outcome.
        outcomes = await run_all(
            send, bodies, timeout=timeout, on_done=on_done, on_progress=on_progress, clock=self._clock
        )
        self.elapsed_s = self._clock.monotonic() - started
        return outcomes

    elapsed_s: float = 0.0
    """Clock seconds the last :meth:`run` took."""
