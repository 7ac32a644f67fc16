"""Lesson 03 reference implementation: fan-out, structured concurrency, worker pool, buckets, dispatcher.

Everything asynchronous runs on a virtual loop (``run_virtual``): the code under test reads the loop's
clock (``SYSTEM_CLOCK``), so sleeps, timeouts and pacing take no wall time. Synchronous units (a token
bucket stepped by hand) use a manual ``VirtualClock``. The dispatcher is tested against the simulator's
own RateLimiter on the same virtual loop, behind a fake SDK client.
"""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace

import anthropic
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.clock import SYSTEM_CLOCK, TICK, VirtualClock, run_virtual
from course_utils.concurrency import (
    Demand,
    Outcome,
    RateBudget,
    RateLimitedDispatcher,
    ExceedsBucketCapacity,
    TokenBucket,
    WorkerPool,
    bounded_gather,
    estimate_demand,
    max_in_flight,
    partition,
    run_all,
    run_pool,
    run_threaded,
    with_timeout,
)
from course_utils.concurrency.workload import LABELS, classify_body, label_of, load_tickets
from course_utils.progress import ProgressBar, ProgressEvent
from course_utils.mock_provider.errors import RateLimited
from course_utils.mock_provider.ratelimit import RateLimiter, RateLimits
from course_utils.tokens import count_request

BIG = 10**9


def run(coro):
    return asyncio.run(coro)


def leftover_tasks() -> list:
    """Tasks still pending besides the caller."""
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]


class Tracker:
    """An async function that records how many calls overlap, with per-item delays on a clock."""

    def __init__(self, clock=None, delays=None, fail=()):
        self.clock = clock
        self.delays = delays or {}
        self.fail = set(fail)
        self.now = self.peak = 0
        self.calls = []

    async def __call__(self, item):
        self.calls.append(item)
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            delay = self.delays.get(item, 1.0)
            if self.clock is not None:
                await self.clock.sleep(delay)
            else:
                await asyncio.sleep(0)
            if item in self.fail:
                raise ValueError(f"item {item} failed")
            return item * 10
        finally:
            self.now -= 1


# ----- fan-out ----------------------------------------------------------------------------------
def test_bounded_gather_preserves_order_and_bounds_concurrency():
    async def main():
        clock = SYSTEM_CLOCK
        # Later items finish first, so completion order is the reverse of input order.
        fn = Tracker(clock, delays={i: 10 - i for i in range(10)})
        got = await bounded_gather(fn, range(10), limit=3)
        return got, fn.peak

    got, peak = run_virtual(main())
    assert got == [i * 10 for i in range(10)]
    assert peak == 3


def test_bounded_gather_raises_the_first_error_itself_and_cancels_the_rest():
    async def main():
        clock = SYSTEM_CLOCK
        fn = Tracker(clock, delays={0: 1.0, 1: 5.0, 2: 5.0}, fail={0})
        with pytest.raises(ValueError, match="item 0 failed"):
            await bounded_gather(fn, range(3), limit=3)
        leftovers = leftover_tasks()
        return leftovers

    assert run_virtual(main()) == []


def test_bounded_gather_rejects_a_zero_limit():
    with pytest.raises(ValueError):
        run(bounded_gather(Tracker(), [1], limit=0))


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 10)), max_size=30))
def test_max_in_flight_matches_a_brute_force_count(raw):
    intervals = [(s, s + d) for s, d in raw]
    expected = 0
    for t in {s for s, _ in intervals}:
        expected = max(expected, sum(1 for s, e in intervals if s <= t < e or (s == t == e)))
    assert max_in_flight(intervals) == expected


# ----- structured concurrency ---------------------------------------------------------------------
def test_run_all_keeps_every_result_and_every_error_in_order():
    async def main():
        fn = Tracker(SYSTEM_CLOCK, fail={1, 3})
        return await run_all(fn, range(5), concurrency=2)

    outcomes = run_virtual(main())
    assert [o.index for o in outcomes] == list(range(5))
    assert [o.value for o in outcomes if o.ok] == [0, 20, 40]
    assert [type(o.error) for o in outcomes if not o.ok] == [ValueError, ValueError]
    done, failed = partition(outcomes)
    assert [o.item for o in done] == [0, 2, 4] and [o.item for o in failed] == [1, 3]
    with pytest.raises(ValueError):
        failed[0].unwrap()
    assert done[1].unwrap() == 20


def test_run_all_times_out_slow_items_on_the_virtual_clock():
    async def main():
        clock = SYSTEM_CLOCK
        fn = Tracker(clock, delays={0: 1.0, 1: 100.0, 2: 2.0})
        started = clock.monotonic()
        outcomes = await run_all(fn, range(3), timeout=5.0, clock=clock)
        return outcomes, clock.monotonic() - started

    outcomes, elapsed = run_virtual(main())
    assert outcomes[0].value == 0 and outcomes[2].value == 20
    assert isinstance(outcomes[1].error, TimeoutError)
    assert elapsed == pytest.approx(5.0)


def test_run_all_reports_each_outcome_as_it_finishes():
    seen: list[Outcome] = []

    async def main():
        fn = Tracker(SYSTEM_CLOCK, delays={0: 3.0, 1: 1.0, 2: 2.0})
        return await run_all(fn, range(3), on_done=seen.append)

    run_virtual(main())
    assert [o.item for o in seen] == [1, 2, 0]


def test_cancelling_run_all_cancels_every_child_and_keeps_what_finished():
    seen: list[Outcome] = []

    async def main():
        clock = SYSTEM_CLOCK
        fn = Tracker(clock, delays={0: 1.0, 1: 10.0, 2: 10.0})
        task = asyncio.create_task(run_all(fn, range(3), on_done=seen.append, clock=clock))
        await asyncio.sleep(1.5)  # after the first item's end (1 s), long before the others' (10 s)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return leftover_tasks()

    assert run_virtual(main()) == []
    assert [o.value for o in seen] == [0]


def test_with_timeout_on_the_system_clock_passes_values_through():
    async def main():
        async def quick():
            return 7

        assert await with_timeout(quick(), None) == 7
        assert await with_timeout(quick(), 1.0) == 7
        with pytest.raises(TimeoutError):
            await with_timeout(asyncio.sleep(10), 0.01)

    run_virtual(main())


# ----- worker pool --------------------------------------------------------------------------------
def test_worker_pool_runs_exactly_n_at_a_time_and_shuts_down_cleanly():
    progress: list[ProgressEvent] = []

    async def main():
        clock = SYSTEM_CLOCK
        fn = Tracker(clock, fail={4})
        outcomes = await run_pool(fn, range(12), workers=4, clock=clock, on_progress=progress.append)
        leftovers = leftover_tasks()
        return outcomes, fn.peak, leftovers

    outcomes, peak, leftovers = run_virtual(main())
    assert peak == 4
    assert leftovers == []
    assert [o.index for o in outcomes] == list(range(12))
    assert isinstance(outcomes[4].error, ValueError) and outcomes[5].value == 50
    # One event per finished job: done counts up, the total is known, time is the pool's (virtual) clock.
    assert [e.done for e in progress] == list(range(1, 13)) and {e.total for e in progress} == {12}
    assert [e.elapsed_s for e in progress] == [1.0] * 4 + [2.0] * 4 + [3.0] * 4
    assert sorted(e.latest.index for e in progress) == list(range(12))
    frame = outcomes.frame()
    assert list(frame.columns) == ["index", "ok", "value", "error_type", "error", "seconds"]
    assert frame["error_type"].tolist()[4] == "ValueError" and int(frame["ok"].sum()) == 11
    assert outcomes.summary() == {"items": 12, "succeeded": 11, "failed": 1, "slowest_s": 1.0}


def test_worker_pool_without_a_total_reports_it_once_closed():
    progress: list[ProgressEvent] = []

    async def main():
        clock = SYSTEM_CLOCK
        pool = WorkerPool(Tracker(clock), workers=2, clock=clock, on_progress=progress.append).start()
        for job in range(3):
            await pool.submit(job)
        await clock.sleep(1.5)  # two jobs finish while the producer may still submit more
        await pool.close()

    run_virtual(main())
    assert [(e.done, e.total) for e in progress] == [(1, None), (2, None), (3, 3)]


def test_run_all_and_run_threaded_report_progress_with_the_protocol():
    events: list[ProgressEvent] = []

    async def main():
        fn = Tracker(SYSTEM_CLOCK, delays={0: 3.0, 1: 1.0, 2: 2.0})
        return await run_all(fn, range(3), on_progress=events.append)

    run_virtual(main())
    assert [(e.done, e.total, e.latest.item) for e in events] == [(1, 3, 1), (2, 3, 2), (3, 3, 0)]
    threaded: list[ProgressEvent] = []
    outcomes = run_threaded(lambda x: x * 2, range(5), workers=2, on_progress=threaded.append)
    assert [o.value for o in outcomes] == [0, 2, 4, 6, 8]
    assert [e.done for e in threaded] == [1, 2, 3, 4, 5] and {e.total for e in threaded} == {5}
    assert sorted(e.latest.index for e in threaded) == list(range(5))


def test_worker_pool_cancels_its_workers_when_the_block_fails():
    async def main():
        clock = SYSTEM_CLOCK
        with pytest.raises(RuntimeError):
            async with WorkerPool(Tracker(clock), workers=3, clock=clock) as pool:
                await pool.submit(1)
                raise RuntimeError("producer failed")
        await asyncio.sleep(0)
        return leftover_tasks()

    assert run_virtual(main()) == []


def test_worker_pool_refuses_jobs_after_close_and_applies_backpressure():
    async def main():
        clock = SYSTEM_CLOCK
        pool = WorkerPool(Tracker(clock), workers=1, maxsize=2, clock=clock).start()
        for job in range(5):
            await pool.submit(job)  # waits while the queue holds 2
        outcomes = await pool.close()
        with pytest.raises(RuntimeError):
            await pool.submit(9)
        return outcomes

    assert [o.value for o in run_virtual(main())] == [0, 10, 20, 30, 40]


def test_worker_pool_per_job_timeout():
    async def main():
        clock = SYSTEM_CLOCK
        return await run_pool(Tracker(clock, delays={1: 50.0}), range(3), workers=2, timeout=5.0, clock=clock)

    outcomes = run_virtual(main())
    assert isinstance(outcomes[1].error, TimeoutError) and outcomes[2].value == 20


# ----- threads ------------------------------------------------------------------------------------
def test_run_threaded_keeps_order_and_errors():
    def fn(x):
        if x == 2:
            raise KeyError(x)
        return x + 1

    outcomes = run_threaded(fn, range(5), workers=3)
    assert [o.value for o in outcomes if o.ok] == [1, 2, 4, 5]
    assert isinstance(outcomes[2].error, KeyError)
    with pytest.raises(ValueError):
        run_threaded(fn, [], workers=0)


def test_run_threaded_times_items_on_the_injected_clock():
    """Durations come from the clock given, not the machine's: one worker, each item sleeps 2 s on it."""
    clock = VirtualClock()

    def fn(x):
        clock.sleep_sync(2.0)
        return x

    seen = []
    outcomes = run_threaded(fn, range(3), workers=1, on_progress=seen.append, clock=clock)
    assert [o.seconds for o in outcomes] == [2.0, 2.0, 2.0]
    assert [e.elapsed_s for e in seen][-1] == 6.0


# ----- token buckets ------------------------------------------------------------------------------
def test_token_bucket_refills_continuously_and_never_overfills():
    clock = VirtualClock()
    bucket = TokenBucket.per_minute(60, clock=clock)  # 1 per second
    assert bucket.try_take(60) and not bucket.try_take(1)
    assert bucket.time_until(1) == pytest.approx(1.0)
    clock.advance_sync(2.5)
    assert bucket.level == pytest.approx(2.5)
    clock.advance_sync(1_000)
    assert bucket.level == 60
    assert bucket.time_until(61) == math.inf


def test_token_bucket_overdraft_refund_and_lower_to():
    clock = VirtualClock()
    bucket = TokenBucket(10, 1.0, clock=clock)
    bucket.take(15)
    assert bucket.level == -5 and bucket.time_until(1) == pytest.approx(6.0)
    bucket.take(-100)
    assert bucket.level == 10
    assert bucket.lower_to(4) == 6 and bucket.level == 4
    assert bucket.lower_to(9) == 0 and bucket.level == 4
    bucket.set_limit(120)
    assert bucket.refill_per_second == 2 and bucket.capacity == 120 and bucket.level == 4


def test_token_bucket_acquire_waits_exactly_on_the_virtual_clock():
    async def main():
        clock = SYSTEM_CLOCK
        bucket = TokenBucket(5, 1.0, clock=clock)
        waits = [await bucket.acquire(1) for _ in range(8)]
        with pytest.raises(ExceedsBucketCapacity):
            await bucket.acquire(6)
        return waits, clock.monotonic()

    waits, elapsed = run_virtual(main())
    assert waits[:5] == [0.0] * 5
    assert elapsed == pytest.approx(3.0)


@settings(max_examples=30, deadline=None)
@given(rpm=st.integers(30, 600), n=st.integers(1, 300), headroom=st.sampled_from([0.0, 0.05, 0.2]))
def test_rate_budget_paces_from_the_first_request_never_ahead_of_a_short_interval_provider(rpm, n, headroom):
    async def main():
        clock = SYSTEM_CLOCK
        budget = RateBudget(rpm, BIG, BIG, clock=clock, headroom=headroom)
        times = []
        for _ in range(n):
            await budget.acquire(Demand())
            times.append(clock.monotonic())
        return times

    times = run_virtual(main(), noop_cycles=1)  # one task: no other coroutine to let set its timer first
    rate = rpm * (1 - headroom) / 60
    burst = max(1.0, rate)  # one second of the paced rate, at least one request
    provider_burst = max(1.0, rpm / 60)  # what a provider enforcing over one second holds
    slack_s = 1e-4
    for k, t in enumerate(times, start=1):
        assert k <= burst + rate * (t + slack_s)  # never ahead of the paced bucket
        assert k <= provider_burst + rpm / 60 * (t + slack_s)  # so never ahead of the provider's
    # and never behind it: the last one goes as soon as the paced rate allows. A virtual loop's timers
    # fire on whole microseconds (TICK), so each wait may end up to a tick late, and a full bucket
    # cannot bank the overshoot: at most one tick per request.
    assert times[-1] == pytest.approx(max(0.0, (n - burst) / rate), abs=slack_s + n * TICK)


def test_rate_budget_with_a_minute_burst_spends_a_minute_at_once():
    async def main():
        clock = SYSTEM_CLOCK
        budget = RateBudget(60, BIG, BIG, clock=clock, burst_s=60)
        for _ in range(61):
            await budget.acquire(Demand())
        return clock.monotonic()

    assert run_virtual(main()) == pytest.approx(1.0)  # 60 at once, the 61st a second later
    with pytest.raises(ValueError):
        RateBudget(60, BIG, BIG, burst_s=0)
    with pytest.raises(ValueError):
        RateBudget(60, BIG, BIG, headroom=1.0)


def test_rate_budget_tokens_bind_fifo_oversized_requests_overdraw_and_pause():
    async def main():
        clock = SYSTEM_CLOCK
        budget = RateBudget(BIG, 600, BIG, clock=clock)  # 10 input tokens per second, a bucket of 10
        await budget.acquire(Demand(1, 600, 0))  # bigger than the bucket: goes once it is full, overdraws
        await budget.acquire(Demand(1, 100, 0))  # waits until the bucket is full again: 600 tokens later
        after_tokens = clock.monotonic()  # the bucket is at -90 now: 9 s from empty
        budget.pause_until(clock.monotonic() + 12)
        await budget.acquire(Demand(1, 0, 0))
        with pytest.raises(ExceedsBucketCapacity):
            await budget.acquire(Demand(1, 601, 0))  # more than a minute's limit: never
        return after_tokens, clock.monotonic()

    after_tokens, after_pause = run_virtual(main())
    assert after_tokens == pytest.approx(60.0)
    assert after_pause == pytest.approx(72.0)


def test_rate_budget_settles_expected_output_to_the_actual_and_adopts_new_limits():
    clock = VirtualClock()
    budget = RateBudget(BIG, BIG, 1_200, clock=clock)  # 20 output tokens per second, a bucket of 20
    budget.take(Demand(1, 0, 15))
    budget.settle_output(15, 4)  # expected 15, the reply had 4
    assert budget.output.level == pytest.approx(16)
    budget.set_limit("output-tokens", 2_400)
    assert budget.per_minute["output-tokens"] == 2_400
    assert budget.output.refill_per_second == pytest.approx(40) and budget.output.capacity == pytest.approx(40)
    assert budget.output.level == pytest.approx(16)
    budget.restart(Demand(1, 0, 5))
    assert budget.output.level == pytest.approx(35) and budget.requests.level == pytest.approx(BIG / 60 - 1)


# ----- dispatcher against the simulator's rate limiter on virtual time ----------------------------
class FakeProvider:
    """The simulator's RateLimiter behind a fake AsyncAnthropic: admission, headers, 429s, latency.

    ``burst_s`` is the provider's burst capacity (1: enforced over about a second, as the API may;
    60: a minute's quota at once). Each reply generates ``output`` tokens, charged against OTPM.
    """

    def __init__(self, limits, *, latency=0.5, key="k", burst_s=1.0, output=1, rtt=0.0, cache_read=0, spent=0):
        self.clock = SYSTEM_CLOCK  # the virtual loop's, once the run has started (see start())
        self.limits, self.burst_s = limits, burst_s
        self.spent = spent  # requests another process made on the key just before the run
        self.limiter = None
        self.key = key
        self.latency = latency
        self.output = output
        self.cache_read = cache_read  # tokens of every request but the first read from the prompt cache
        self.rtt = rtt  # the way to the provider: requests sent together arrive before any 429 comes back
        self.log: list[tuple[float, int]] = []  # (time, status)
        self.refusals: list[tuple[float, float]] = []  # (time of a 429, its retry-after in seconds)
        self.messages = SimpleNamespace(with_raw_response=SimpleNamespace(create=self._create))

    def start(self):
        """Open the provider on the running (virtual) loop: its limiter reads that loop's clock from here on."""
        assert self.limiter is None, "a FakeProvider serves one run"
        self.limiter = RateLimiter(self.clock, "unlimited", burst_s=self.burst_s)
        self.limiter.set_tier(self.key, self.limits)
        self.spend(self.spent)

    def with_options(self, **kwargs):
        assert kwargs == {"max_retries": 0}
        return self

    async def _create(self, **body):
        if self.rtt:
            await self.clock.sleep(self.rtt)
        prompt = count_request(body)
        read = self.cache_read if self.count(200) else 0  # the first request writes the cache
        try:
            admission = self.limiter.admit(self.key, body["model"], prompt, body["max_tokens"], cache_read_tokens=read)
        except RateLimited as exc:
            self.log.append((self.clock.monotonic(), 429))
            self.refusals.append((self.clock.monotonic(), float(exc.headers["retry-after"])))
            request = httpx2.Request("POST", "http://sim/v1/messages")
            response = httpx2.Response(429, headers=exc.headers, request=request)
            raise anthropic.RateLimitError(exc.message, response=response, body=None) from None
        self.log.append((self.clock.monotonic(), 200))
        await self.clock.sleep(self.latency)
        self.limiter.settle(admission, self.output)
        usage = SimpleNamespace(output_tokens=self.output)
        if self.cache_read:
            usage = SimpleNamespace(
                output_tokens=self.output,
                input_tokens=prompt - self.cache_read,
                cache_creation_input_tokens=0 if read else self.cache_read,
                cache_read_input_tokens=read,
            )
        message = SimpleNamespace(usage=usage, content=[SimpleNamespace(type="text", text="billing")])

        async def parse():
            return message

        return SimpleNamespace(headers=admission.headers, parse=parse)

    def spend(self, requests):
        """Another process on the same key."""
        for _ in range(requests):
            self.limiter.admit(self.key, "claude-haiku-5-5", 10, 1)

    def count(self, status):
        return sum(1 for _, s in self.log if s == status)

    def sends(self):
        """Times of the admitted requests, from the first one."""
        times = [t for t, s in self.log if s == 200]
        return [t - self.log[0][0] for t in times]

    def assert_retry_after_honoured(self):
        """After each 429 nothing goes out before its retry-after ("earlier retries will fail"): the
        floor of the course's one waiting rule (retry-after plus jitter). Not a meeting time: that the
        refused requests come back spread out is tested on the retry events."""
        assert self.refusals, "the scenario should have met at least one 429"
        for refused_at, retry_after in self.refusals:
            # Arrival times: a request sent after the 429 came back arrives rtt later; those that
            # arrive within rtt of it were already on their way.
            later = [t for t, _ in self.log if t > refused_at + self.rtt + 1e-9]
            assert later, f"nothing was sent after the 429 at {refused_at:.3f} s"
            assert min(later) >= refused_at + retry_after + self.rtt - 1e-6, (
                f"429 at {refused_at:.3f} s with retry-after {retry_after:g} s: the next request went out at "
                f"{min(later):.3f} s"
            )


BODY = classify_body("I was charged twice for my invoice.")


def _run_dispatcher(provider, n, body=BODY, **kwargs):
    async def main():
        provider.start()
        dispatcher = RateLimitedDispatcher(provider, clock=provider.clock, **kwargs)
        started = provider.clock.monotonic()
        outcomes = await dispatcher.run([body] * n)
        return dispatcher, outcomes, provider.clock.monotonic() - started

    return run_virtual(main())


def test_dispatcher_paces_at_the_limit_with_headroom_from_the_first_request_with_no_429():
    provider = FakeProvider(RateLimits(120, BIG, BIG))  # enforced over one second
    dispatcher, outcomes, virtual_s = _run_dispatcher(provider, 300, limits=RateLimits(120, BIG, BIG))
    assert all(o.ok for o in outcomes) and len(outcomes) == 300
    assert provider.count(429) == 0 and dispatcher.stats.rate_limited == 0
    # The first alone; its reply (0.5 s) starts a bucket of 1.9 at 1.9 per second (95 % of 2/s),
    # holding 0.9 after the first: the k-th of the other 299 goes at 0.5 + (k - 0.9) / 1.9.
    assert provider.sends()[-1] == pytest.approx(0.5 + (299 - 0.9) / 1.9, abs=1e-3)
    assert virtual_s == pytest.approx(0.5 + (299 - 0.9) / 1.9 + provider.latency, abs=1e-3)


def test_a_client_that_bets_on_a_minute_burst_is_refused_by_short_interval_enforcement():
    limits = RateLimits(120, BIG, BIG)
    short = FakeProvider(limits, burst_s=1.0, rtt=0.05)
    dispatcher, outcomes, _ = _run_dispatcher(short, 150, limits=limits, burst_s=60, max_attempts=30)
    assert all(o.ok for o in outcomes)  # retry-after got every one through in the end
    assert short.count(429) > 10 and dispatcher.stats.rate_limited == short.count(429)  # its first burst
    short.assert_retry_after_honoured()
    # The same client against a provider that does allow a minute's burst: no 429 (the bet paid off there).
    lenient = FakeProvider(limits, burst_s=60.0)
    dispatcher, outcomes, _ = _run_dispatcher(lenient, 150, limits=limits, burst_s=60)
    assert all(o.ok for o in outcomes) and lenient.count(429) == 0


def test_dispatcher_learns_the_limits_from_the_first_response():
    provider = FakeProvider(RateLimits(60, 50_000, 9_000))
    dispatcher, outcomes, _ = _run_dispatcher(provider, 30, limits=None)
    assert all(o.ok for o in outcomes)
    assert provider.count(429) == 0
    assert dispatcher.budget is not None
    assert dispatcher.budget.per_minute == {"requests": 60, "input-tokens": 50_000, "output-tokens": 9_000}
    assert provider.sends()[-1] == pytest.approx(0.5 + (29 - 0) / 0.95, abs=1e-3)  # a bucket of 1, at 0.95/s


def test_dispatcher_syncs_with_headers_when_someone_else_spends_the_key():
    # Header sync matters where the local budget is large: a client that keeps a minute's burst
    # (burst_s=60) against a lenient provider whose minute another process has mostly spent.
    limits = RateLimits(120, BIG, BIG)
    provider = FakeProvider(limits, burst_s=60.0, spent=80)  # another process used two thirds of the minute
    dispatcher, outcomes, _ = _run_dispatcher(provider, 150, limits=limits, burst_s=60)
    assert all(o.ok for o in outcomes)
    assert provider.count(429) == 0
    assert dispatcher.stats.corrections >= 1


def test_without_header_sync_the_same_run_meets_429s_and_honours_retry_after():
    limits = RateLimits(120, BIG, BIG)
    provider = FakeProvider(limits, burst_s=60.0, spent=80)
    dispatcher, outcomes, _ = _run_dispatcher(
        provider, 150, limits=limits, burst_s=60, sync_headers=False, max_attempts=20
    )
    assert all(o.ok for o in outcomes)  # every 429 was retried after retry-after
    assert provider.count(429) > 0 and dispatcher.stats.rate_limited == provider.count(429)
    provider.assert_retry_after_honoured()


def test_dispatcher_paces_on_input_tokens_estimated_before_sending():
    per_request = count_request(BODY)
    itpm = per_request * 30  # 30 requests' worth of input per minute: half a request per second
    provider = FakeProvider(RateLimits(BIG, itpm, BIG))
    dispatcher, outcomes, _ = _run_dispatcher(provider, 60, limits=RateLimits(BIG, itpm, BIG))
    assert all(o.ok for o in outcomes) and provider.count(429) == 0
    # Each request is bigger than a second's worth of input, so each goes when the bucket is full
    # again: one request's input per 0.95 * 0.5 requests per second.
    assert provider.sends()[-1] == pytest.approx(0.5 + 59 / (0.5 * 0.95), abs=1e-3)


CACHED_BODY = dict(
    BODY, system=[{"type": "text", "text": "You label support tickets. " * 60, "cache_control": {"type": "ephemeral"}}]
)


def test_cache_reads_are_not_charged_against_itpm():
    # "For most Claude models, only uncached input tokens count towards your ITPM rate limits"
    # (rate-limits page): a shared cached system prompt read by every request but the first.
    prompt = count_request(CACHED_BODY)
    read = prompt - 40  # all but the 40-token tail comes from the cache
    itpm = prompt * 30  # the whole prompt 30 times a minute: one uncached request every 2 s
    limits = RateLimits(BIG, itpm, BIG)
    provider = FakeProvider(limits, cache_read=read)
    dispatcher, outcomes, _ = _run_dispatcher(provider, 60, body=CACHED_BODY, limits=limits)
    assert all(o.ok for o in outcomes) and provider.count(429) == 0
    assert dispatcher.expected_cache_read == read
    # Charged the whole prompt, 60 requests would take 59 / (0.95 * 0.5) = 124 s. Charged their 40
    # uncached tokens, they go one every 40 / (0.95 * itpm / 60) s once the cache is warm.
    sends = provider.sends()
    assert sends[-1] < 25, sends[-1]
    assert sends[-1] - sends[-2] == pytest.approx(40 / (0.95 * itpm / 60), abs=1e-3)
    # Settled to what the provider counted: the input bucket ends where the provider's does (within
    # the tokens the first, uncached, request took and one second's refill).
    assert dispatcher.budget.input.level > dispatcher.budget.input.capacity - prompt


def test_the_same_prompt_without_cache_control_is_paced_on_every_token():
    prompt = count_request(BODY)
    limits = RateLimits(BIG, prompt * 30, BIG)
    provider = FakeProvider(limits)
    dispatcher, outcomes, _ = _run_dispatcher(provider, 20, limits=limits)
    assert all(o.ok for o in outcomes) and provider.count(429) == 0
    assert dispatcher.expected_cache_read == 0
    assert provider.sends()[-1] == pytest.approx(0.5 + 19 / (0.5 * 0.95), abs=1e-3)


def test_a_ramp_starts_at_a_share_of_the_paced_rate_and_reaches_all_of_it():
    # "ramp up your traffic gradually" (rate-limits page, acceleration limits); the figures are ours.
    limits = RateLimits(120, BIG, BIG)  # paced at 0.95 * 2 = 1.9 requests a second
    provider = FakeProvider(limits)
    dispatcher, outcomes, _ = _run_dispatcher(provider, 120, limits=limits, ramp_s=20, ramp_start=0.1)
    assert all(o.ok for o in outcomes) and provider.count(429) == 0
    sends = provider.sends()
    start = 0.5  # the first reply starts the ramp
    # The ramped rate integrates to 1.9 * (0.1 * 20 + 0.9 * 20 / 2) = 20.9 requests over its 20 s
    # (plus what the first burst held): far fewer than the 38 an unramped client sends then.
    during = sum(1 for t in sends if start < t <= start + 20)
    assert 18 <= during <= 23, during
    early = sum(1 for t in sends if start < t <= start + 5)  # about 1.9 * (0.1 * 5 + 0.9 * 25 / 40) = 2.0
    assert early <= 4, early
    # After the ramp: the full paced rate.
    assert sends[-1] - sends[-2] == pytest.approx(1 / 1.9, abs=1e-3)
    assert dispatcher.budget.ramp_share() == 1.0


def test_without_a_ramp_the_dispatcher_starts_at_the_full_paced_rate():
    limits = RateLimits(120, BIG, BIG)
    provider = FakeProvider(limits)
    _run_dispatcher(provider, 60, limits=limits)
    assert sum(1 for t in provider.sends() if 0.5 < t <= 20.5) >= 37


def test_max_tokens_reserves_nothing_output_is_paced_on_what_replies_generate():
    # OTPM 300 and 5 tokens per reply: one request a second. A max_tokens of 1,000 (more than the
    # whole minute's OTPM) changes nothing, as on the API.
    runs = {}
    for max_tokens in (5, 1_000):
        provider = FakeProvider(RateLimits(BIG, BIG, 300), output=5)
        body = dict(BODY, max_tokens=max_tokens)
        dispatcher, outcomes, _ = _run_dispatcher(provider, 40, body=body, limits=RateLimits(BIG, BIG, 300))
        assert all(o.ok for o in outcomes) and provider.count(429) == 0
        assert dispatcher.expected_output == 5
        runs[max_tokens] = provider.sends()
    assert runs[5] == runs[1_000]
    # The first reply starts the output bucket (5 * 0.95 tokens, holding none after it); then one
    # reply's expected output every 5 / 4.75 s.
    assert runs[5][-1] == pytest.approx(0.5 + 39 * 5 / 4.75, abs=1e-3)


def test_dispatcher_gives_up_after_max_attempts_and_keeps_other_results():
    # One request a second, and another process just took this second's request.
    provider = FakeProvider(RateLimits(60, BIG, BIG), spent=1)
    dispatcher, outcomes, _ = _run_dispatcher(
        provider, 4, limits=RateLimits(60, BIG, BIG), max_attempts=1, max_concurrency=4
    )
    assert [o.ok for o in outcomes] == [False, True, True, True]  # the first met the 429, one try only
    assert isinstance(outcomes[0].error, anthropic.RateLimitError)
    provider.assert_retry_after_honoured()  # the others waited at least its retry-after


def test_a_429_empties_the_local_buckets_so_a_pause_ends_without_a_burst():
    # Cell 35's burst_s=5 case: a client bucket of five seconds against a provider that enforces over
    # one. Refunding each refused request kept that bucket full, so every pause ended in a burst of
    # five seconds' worth and the same 429s (144 x 429, 11 lost, in the notebook). A 429 means the
    # provider's short-interval bucket is empty: ours empties too, and pacing resumes from there.
    limits = RateLimits(120, BIG, BIG)
    provider = FakeProvider(limits, burst_s=1.0, rtt=0.05)
    dispatcher, outcomes, _ = _run_dispatcher(provider, 60, limits=limits, burst_s=5, max_attempts=6)
    assert all(o.ok for o in outcomes)
    assert 0 < provider.count(429) <= 10, provider.count(429)  # the first burst's, not one per pause
    provider.assert_retry_after_honoured()


@pytest.mark.parametrize("backoff_s", [0.5, 0.0])
def test_refused_requests_wait_retry_after_plus_their_own_jitter(backoff_s):
    # The course's one rule (course_utils.retries.retry_delay): never before retry-after, and each
    # refused request at its own time after it. backoff_s=0 is the SDK's rule, exactly retry-after.
    limits = RateLimits(120, BIG, BIG)
    provider = FakeProvider(limits, burst_s=1.0, rtt=0.05)
    dispatcher, outcomes, _ = _run_dispatcher(
        provider, 60, limits=limits, burst_s=60, max_attempts=30, backoff_s=backoff_s
    )
    assert all(o.ok for o in outcomes)
    events = [e for e in dispatcher._retry.events if isinstance(e.error, anthropic.RateLimitError)]
    assert len(events) >= 5
    assert all(e.delay_s >= e.retry_after_s for e in events)
    extra = {round(e.delay_s - e.retry_after_s, 9) for e in events}
    if backoff_s:
        assert len(extra) == len(events) and max(extra) <= backoff_s * 2**29  # every one its own draw
    else:
        assert extra == {0.0}  # the herd: every refused request comes back at retry-after exactly


def test_estimate_demand():
    assert estimate_demand(BODY) == Demand(1, count_request(BODY), 0)  # max_tokens is not a reservation
    assert estimate_demand(BODY, expected_output=3.2) == Demand(1, count_request(BODY), 4)
    capped = estimate_demand(BODY, expected_output=BODY["max_tokens"] + 99)
    assert capped == Demand(1, count_request(BODY), BODY["max_tokens"])


# ----- workload and progress ----------------------------------------------------------------------
def test_workload_tickets_and_bodies():
    tickets = load_tickets(8)
    assert list(tickets.columns) == ["ticket_id", "text", "label", "difficulty"]
    assert set(load_tickets()["label"]) == set(LABELS) and len(load_tickets()) == 2000
    body = classify_body(tickets["text"][0])
    assert all(label in body["messages"][0]["content"] for label in LABELS)
    assert label_of(SimpleNamespace(content=[SimpleNamespace(type="text", text=" Billing\n")])) == "billing"
    # Read by type: a reply that starts with a thinking block still yields its label.
    thinking = SimpleNamespace(type="thinking", thinking="The customer mentions an invoice.", signature="s")
    assert label_of(SimpleNamespace(content=[thinking, SimpleNamespace(type="text", text="billing")])) == "billing"


def test_the_progress_bar_takes_a_pool(capsys):
    bar = ProgressBar(label="pool", every=100, widget=False)

    async def main():
        clock = SYSTEM_CLOCK
        await run_pool(Tracker(clock), range(4), workers=2, clock=clock, on_progress=bar)

    run_virtual(main())
    assert capsys.readouterr().out.splitlines() == ["pool: 4/4 (100%) after 2.0 s"]
    assert bar.last.done == 4 and bar.last.total == 4


# ----- approaches side by side on virtual time (the notebook's section 3) ------------------------
def _simulated(burst_s):
    from course_utils.concurrency.simulate import simulate_runs

    bodies = [classify_body(t) for t in load_tickets(30)["text"]]

    async def sdk_retries(client):
        retrying = client.with_options(max_retries=2)
        return await asyncio.gather(*(retrying.messages.create(**b) for b in bodies), return_exceptions=True)

    async def dispatcher(client):
        outcomes = await RateLimitedDispatcher(client, limits=None, max_concurrency=16).run(bodies)
        return [o.value if o.ok else o.error for o in outcomes]

    return simulate_runs({"gather + SDK retries": sdk_retries, "dispatcher": dispatcher}, rpm=120, burst_s=burst_s)


def test_simulated_runs_compare_approaches_deterministically_within_the_limit():
    runs = _simulated(1.0)
    naive, paced = runs["gather + SDK retries"], runs["dispatcher"]
    assert paced.succeeded == 30 and paced.rate_limited == 0 and paced.retries == 0
    assert naive.rate_limited > 0 and naive.failed > 0  # retries into a per-second limit lose requests
    assert naive.retries == len(naive.ledger) - 30
    for run_ in runs:
        assert 0 < run_.limit_used <= 1.0  # the provider admits at most burst + rate * span
    assert paced.burst == 2.0 and paced.limit_used == pytest.approx(30 / (2 + 2 * paced.span_s))
    frame = runs.frame()
    assert list(frame.index) == ["gather + SDK retries", "dispatcher"]
    assert list(frame.columns) == [
        "succeeded",
        "failed",
        "rate_limited_429",
        "retries",
        "virtual_s",
        "span_s",
        "limit_used_pct",
    ]
    assert list(paced.frame().columns) == ["arrival_s", "finish_s", "status", "output_tokens"]
    assert paced.arrivals()[0] > 0  # connection set-up and transit before the first arrival
    # Virtual time: the same figures on every run, whatever the machine is doing.
    assert _simulated(1.0).frame().equals(frame)


def test_a_lenient_provider_admits_the_naive_burst_that_short_interval_enforcement_refuses():
    lenient = _simulated(60)["gather + SDK retries"]
    assert lenient.succeeded == 30 and lenient.rate_limited == 0


def test_a_pause_shorter_than_the_virtual_clock_resolution_does_not_spin():
    # A virtual loop's clock moves in whole microseconds, and asyncio.sleep(1e-12) does not move it:
    # a waiter whose pause ends a float's hair later would sleep and wake at the same instant forever
    # (seen with retry-after pauses under a storm of 429s).
    import threading

    from course_utils.clock import run_virtual

    async def main():
        loop = asyncio.get_running_loop()
        budget = RateBudget(BIG, BIG, BIG)
        budget.pause_until(loop.time() + 1e-12)
        await budget.acquire(Demand())
        return loop.time()

    box = {}
    worker = threading.Thread(target=lambda: box.update(t=run_virtual(main())), daemon=True)
    worker.start()
    worker.join(30)  # a safety net for the spin, not a timing assertion: it takes milliseconds
    assert "t" in box, "acquire() spun on a pause shorter than the clock's resolution"
    assert box["t"] < 1e-5


def test_simulated_runs_report_progress_per_approach():
    from course_utils.concurrency.simulate import simulate_runs

    events = []

    async def one(client):
        return [await client.messages.create(**BODY)]

    simulate_runs({"a": one, "b": one}, rpm=60, on_progress=events.append)
    assert [(e.done, e.total, e.latest.approach) for e in events] == [(1, 2, "a"), (2, 2, "b")]


def test_asimulate_runs_keeps_the_callers_loop_free_and_matches_the_blocking_form():
    from course_utils.concurrency.simulate import asimulate_runs, simulate_runs

    async def one(client):
        return [await client.messages.create(**BODY)]

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        events = []
        runs = await asimulate_runs({"a": one}, rpm=60, on_progress=events.append)
        task.cancel()
        return runs, events, ticks

    runs, events, ticks = asyncio.run(main())
    assert ticks > 1 and [e.done for e in events] == [1]  # the caller's loop ran while the run did
    assert runs.frame().equals(simulate_runs({"a": one}, rpm=60).frame())


@settings(max_examples=40, deadline=None)
@given(delays=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5]), max_size=25), limit=st.integers(1, 8))
def test_bounded_gather_and_run_all_keep_input_order_within_the_limit_for_any_delays(delays, limit):
    async def main():
        clock = SYSTEM_CLOCK
        fn = Tracker(clock, delays=dict(enumerate(delays)))
        gathered = await bounded_gather(fn, range(len(delays)), limit=limit)
        peak = fn.peak
        fn2 = Tracker(clock, delays=dict(enumerate(delays)))
        outcomes = await run_all(fn2, range(len(delays)), concurrency=limit, clock=clock)
        return gathered, peak, outcomes, fn2.peak

    gathered, peak, outcomes, peak2 = run_virtual(main())
    expected = [i * 10 for i in range(len(delays))]
    assert gathered == expected and [o.value for o in outcomes] == expected
    assert [o.index for o in outcomes] == list(range(len(delays)))
    assert peak == peak2 == min(limit, len(delays))
    assert outcomes.summary()["items"] == len(delays) and len(outcomes.frame()) == len(delays)
