"""Lesson 03 reference implementation: fan-out, structured concurrency, worker pool, buckets, dispatcher.

Everything time-dependent runs on a VirtualClock (no sleeping); the dispatcher is tested against
the simulator's own RateLimiter on the same virtual clock, behind a fake SDK client.
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

from course_utils.clock import VirtualClock
from course_utils.concurrency import (
    Cost,
    Outcome,
    RateBudget,
    RateLimitedDispatcher,
    ExceedsBucketCapacity,
    TokenBucket,
    WorkerPool,
    bounded_gather,
    estimate_cost,
    max_in_flight,
    partition,
    retry_after_seconds,
    run_all,
    run_pool,
    run_threaded,
    with_timeout,
)
from course_utils.concurrency.progress import Progress
from course_utils.concurrency.workload import LABELS, classify_body, label_of, load_tickets
from course_utils.mock_provider.errors import RateLimited
from course_utils.mock_provider.ratelimit import RateLimiter, RateLimits
from course_utils.tokens import count_request

BIG = 10**9


def run(coro):
    return asyncio.run(coro)


def leftover_tasks() -> list:
    """Tasks still pending besides the caller (the VirtualClock's own driver task excepted)."""
    return [t for t in asyncio.all_tasks()
            if t is not asyncio.current_task() and not t.done() and t.get_coro().__qualname__ != "VirtualClock._drive"]


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
        clock = VirtualClock()
        # Later items finish first, so completion order is the reverse of input order.
        fn = Tracker(clock, delays={i: 10 - i for i in range(10)})
        got = await bounded_gather(fn, range(10), limit=3)
        return got, fn.peak

    got, peak = run(main())
    assert got == [i * 10 for i in range(10)]
    assert peak == 3


def test_bounded_gather_raises_the_first_error_itself_and_cancels_the_rest():
    async def main():
        clock = VirtualClock()
        fn = Tracker(clock, delays={0: 1.0, 1: 5.0, 2: 5.0}, fail={0})
        with pytest.raises(ValueError, match="item 0 failed"):
            await bounded_gather(fn, range(3), limit=3)
        leftovers = leftover_tasks()
        return leftovers

    assert run(main()) == []


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
        fn = Tracker(VirtualClock(), fail={1, 3})
        return await run_all(fn, range(5), concurrency=2)

    outcomes = run(main())
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
        clock = VirtualClock()
        fn = Tracker(clock, delays={0: 1.0, 1: 100.0, 2: 2.0})
        started = clock.monotonic()
        outcomes = await run_all(fn, range(3), timeout=5.0, clock=clock)
        return outcomes, clock.monotonic() - started

    outcomes, elapsed = run(main())
    assert outcomes[0].value == 0 and outcomes[2].value == 20
    assert isinstance(outcomes[1].error, TimeoutError)
    assert elapsed == pytest.approx(5.0)


def test_run_all_reports_each_outcome_as_it_finishes():
    seen: list[Outcome] = []

    async def main():
        fn = Tracker(VirtualClock(), delays={0: 3.0, 1: 1.0, 2: 2.0})
        return await run_all(fn, range(3), on_done=seen.append)

    run(main())
    assert [o.item for o in seen] == [1, 2, 0]


def test_cancelling_run_all_cancels_every_child_and_keeps_what_finished():
    seen: list[Outcome] = []

    async def main():
        clock = VirtualClock(auto_advance=False)
        fn = Tracker(clock, delays={0: 1.0, 1: 10.0, 2: 10.0})
        task = asyncio.create_task(run_all(fn, range(3), on_done=seen.append, clock=clock))
        for _ in range(5):
            await asyncio.sleep(0)
        await clock.advance(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return leftover_tasks()

    assert run(main()) == []
    assert [o.value for o in seen] == [0]


def test_with_timeout_on_the_system_clock_passes_values_through():
    async def main():
        async def quick():
            return 7

        assert await with_timeout(quick(), None) == 7
        assert await with_timeout(quick(), 1.0) == 7
        with pytest.raises(TimeoutError):
            await with_timeout(asyncio.sleep(10), 0.01)

    run(main())


# ----- worker pool --------------------------------------------------------------------------------
def test_worker_pool_runs_exactly_n_at_a_time_and_shuts_down_cleanly():
    progress: list[tuple[int, int]] = []

    async def main():
        clock = VirtualClock()
        fn = Tracker(clock, fail={4})
        outcomes = await run_pool(fn, range(12), workers=4, clock=clock,
                                  on_progress=lambda d, t: progress.append((d, t)))
        leftovers = leftover_tasks()
        return outcomes, fn.peak, leftovers

    outcomes, peak, leftovers = run(main())
    assert peak == 4
    assert leftovers == []
    assert [o.index for o in outcomes] == list(range(12))
    assert isinstance(outcomes[4].error, ValueError) and outcomes[5].value == 50
    assert progress[-1] == (12, 12) and len(progress) == 12


def test_worker_pool_cancels_its_workers_when_the_block_fails():
    async def main():
        clock = VirtualClock()
        with pytest.raises(RuntimeError):
            async with WorkerPool(Tracker(clock), workers=3, clock=clock) as pool:
                await pool.submit(1)
                raise RuntimeError("producer failed")
        await asyncio.sleep(0)
        return leftover_tasks()

    assert run(main()) == []


def test_worker_pool_refuses_jobs_after_close_and_applies_backpressure():
    async def main():
        clock = VirtualClock()
        pool = WorkerPool(Tracker(clock), workers=1, maxsize=2, clock=clock).start()
        for job in range(5):
            await pool.submit(job)  # waits while the queue holds 2
        outcomes = await pool.close()
        with pytest.raises(RuntimeError):
            await pool.submit(9)
        return outcomes

    assert [o.value for o in run(main())] == [0, 10, 20, 30, 40]


def test_worker_pool_per_job_timeout():
    async def main():
        clock = VirtualClock()
        return await run_pool(Tracker(clock, delays={1: 50.0}), range(3), workers=2, timeout=5.0, clock=clock)

    outcomes = run(main())
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
        clock = VirtualClock()
        bucket = TokenBucket(5, 1.0, clock=clock)
        waits = [await bucket.acquire(1) for _ in range(8)]
        with pytest.raises(ExceedsBucketCapacity):
            await bucket.acquire(6)
        return waits, clock.monotonic()

    waits, elapsed = run(main())
    assert waits[:5] == [0.0] * 5
    assert elapsed == pytest.approx(3.0)


@settings(max_examples=30, deadline=None)
@given(rpm=st.integers(30, 600), n=st.integers(1, 300))
def test_rate_budget_never_exceeds_what_the_limit_allows(rpm, n):
    async def main():
        clock = VirtualClock()
        budget = RateBudget(rpm, BIG, BIG, clock=clock)
        times = []
        for _ in range(n):
            await budget.acquire(Cost())
            times.append(clock.monotonic())
        return times

    times = run(main())
    for k, t in enumerate(times, start=1):
        assert k <= rpm + t * rpm / 60 + 1e-6  # never ahead of the bucket
    if n > rpm:  # and never behind it: the last one goes as soon as allowed
        assert times[-1] == pytest.approx((n - rpm) * 60 / rpm)


def test_rate_budget_tokens_bind_fifo_and_pause():
    async def main():
        clock = VirtualClock()
        budget = RateBudget(BIG, 600, BIG, clock=clock)  # 10 input tokens per second
        await budget.acquire(Cost(1, 600, 0))
        await budget.acquire(Cost(1, 100, 0))
        after_tokens = clock.monotonic()
        budget.pause_until(clock.monotonic() + 7)
        await budget.acquire(Cost(1, 0, 0))
        with pytest.raises(ExceedsBucketCapacity):
            await budget.acquire(Cost(1, 601, 0))
        return after_tokens, clock.monotonic()

    after_tokens, after_pause = run(main())
    assert after_tokens == pytest.approx(10.0)
    assert after_pause == pytest.approx(17.0)


def test_rate_budget_caps_output_reservation_and_settles():
    clock = VirtualClock()
    budget = RateBudget(BIG, BIG, 1_000, clock=clock)
    assert budget.clamp(Cost(1, 0, 5_000)).output_tokens == 1_000
    budget.take(Cost(1, 0, 400))
    budget.settle_output(400, 10)
    assert budget.output.level == pytest.approx(990)


def test_rate_budget_burst_paces_from_the_first_request():
    async def main():
        clock = VirtualClock()
        budget = RateBudget(60, 6_000, 6_000, clock=clock, burst=1)
        for _ in range(5):
            await budget.acquire(Cost(1, 10, 10))
        return clock.monotonic(), budget.input.capacity

    elapsed, input_capacity = run(main())
    assert elapsed == pytest.approx(4.0) and input_capacity == 100


# ----- dispatcher against the simulator's rate limiter on virtual time ----------------------------
class FakeProvider:
    """The simulator's RateLimiter behind a fake AsyncAnthropic: admission, headers, 429s, latency."""

    def __init__(self, clock, limits, *, latency=0.5, key="k"):
        self.clock = clock
        self.limiter = RateLimiter(clock, "unlimited")
        self.limiter.set_tier(key, limits)
        self.key = key
        self.latency = latency
        self.log: list[tuple[float, int]] = []  # (time, status)
        self.refusals: list[tuple[float, float]] = []  # (time of a 429, its retry-after in seconds)
        self.messages = SimpleNamespace(with_raw_response=SimpleNamespace(create=self._create))

    def with_options(self, **kwargs):
        assert kwargs == {"max_retries": 0}
        return self

    async def _create(self, **body):
        try:
            admission = self.limiter.admit(self.key, body["model"], count_request(body), body["max_tokens"])
        except RateLimited as exc:
            self.log.append((self.clock.monotonic(), 429))
            self.refusals.append((self.clock.monotonic(), float(exc.headers["retry-after"])))
            request = httpx2.Request("POST", "http://sim/v1/messages")
            response = httpx2.Response(429, headers=exc.headers, request=request)
            raise anthropic.RateLimitError(exc.message, response=response, body=None) from None
        self.log.append((self.clock.monotonic(), 200))
        await self.clock.sleep(self.latency)
        self.limiter.settle(admission, 1)
        message = SimpleNamespace(usage=SimpleNamespace(output_tokens=1),
                                  content=[SimpleNamespace(text="billing")])

        async def parse():
            return message

        return SimpleNamespace(headers=admission.headers, parse=parse)

    def spend(self, requests):
        """Another process on the same key."""
        for _ in range(requests):
            self.limiter.admit(self.key, "claude-haiku-5-5", 10, 1)

    def count(self, status):
        return sum(1 for _, s in self.log if s == status)

    def assert_retry_after_honoured(self):
        """After each 429 the key stays quiet for exactly its retry-after: the next request (a
        retry or another request the pause held) goes out at 429 time + retry-after, not before
        (retry-after ignored) and not later (a fixed pause such as the cookbook's 15 s)."""
        assert self.refusals, "the scenario should have met at least one 429"
        for refused_at, retry_after in self.refusals:
            later = [t for t, _ in self.log if t > refused_at + 1e-9]
            assert later, f"nothing was sent after the 429 at {refused_at:.3f} s"
            assert min(later) == pytest.approx(refused_at + retry_after, abs=1e-6), (
                f"429 at {refused_at:.3f} s with retry-after {retry_after:g} s: the next request went out at "
                f"{min(later):.3f} s")


BODY = classify_body("I was charged twice for my invoice.")


def _run_dispatcher(provider, n, **kwargs):
    async def main():
        dispatcher = RateLimitedDispatcher(provider, clock=provider.clock, **kwargs)
        started = provider.clock.monotonic()
        outcomes = await dispatcher.run([BODY] * n)
        return dispatcher, outcomes, provider.clock.monotonic() - started

    return run(main())


def test_dispatcher_spends_the_burst_then_follows_the_refill_rate_with_no_429():
    provider = FakeProvider(VirtualClock(), RateLimits(120, BIG, BIG))
    dispatcher, outcomes, elapsed = _run_dispatcher(provider, 300, limits=RateLimits(120, BIG, BIG))
    assert all(o.ok for o in outcomes) and len(outcomes) == 300
    assert provider.count(429) == 0 and dispatcher.stats.rate_limited == 0
    # 120 at once, then 2 per second: the last request can go at (300 - 120) / 2 = 90 s.
    last_send = max(t for t, s in provider.log if s == 200) - provider.log[0][0]
    assert last_send == pytest.approx(90.0, abs=1.0)
    assert elapsed == pytest.approx(90.0 + provider.latency, abs=1.5)


def test_dispatcher_learns_the_limits_from_the_first_response():
    provider = FakeProvider(VirtualClock(), RateLimits(60, BIG, BIG))
    dispatcher, outcomes, _ = _run_dispatcher(provider, 100, limits=None)
    assert all(o.ok for o in outcomes)
    assert provider.count(429) == 0
    assert dispatcher.budget is not None and dispatcher.budget.requests.capacity == 60


def test_dispatcher_syncs_with_headers_when_someone_else_spends_the_key():
    limits = RateLimits(120, BIG, BIG)
    provider = FakeProvider(VirtualClock(), limits)
    provider.spend(80)  # another process already used two thirds of the burst
    dispatcher, outcomes, _ = _run_dispatcher(provider, 150, limits=limits)
    assert all(o.ok for o in outcomes)
    assert provider.count(429) == 0
    assert dispatcher.stats.corrections >= 1


def test_without_header_sync_the_same_run_meets_429s_and_honours_retry_after():
    limits = RateLimits(120, BIG, BIG)
    provider = FakeProvider(VirtualClock(), limits)
    provider.spend(80)
    dispatcher, outcomes, _ = _run_dispatcher(provider, 150, limits=limits, sync_headers=False, max_attempts=20)
    assert all(o.ok for o in outcomes)  # every 429 was retried after retry-after
    assert provider.count(429) > 0 and dispatcher.stats.rate_limited == provider.count(429)
    provider.assert_retry_after_honoured()


def test_dispatcher_paces_on_input_tokens_estimated_before_sending():
    per_request = count_request(BODY)
    itpm = per_request * 30  # 30 requests' worth of input per minute
    provider = FakeProvider(VirtualClock(), RateLimits(BIG, itpm, BIG))
    dispatcher, outcomes, _ = _run_dispatcher(provider, 60, limits=RateLimits(BIG, itpm, BIG))
    assert all(o.ok for o in outcomes) and provider.count(429) == 0
    last_send = max(t for t, s in provider.log if s == 200) - provider.log[0][0]
    assert last_send == pytest.approx(60.0, abs=2.5)  # 30 at once, then 30 more at 0.5 per second


def test_dispatcher_output_reservation_is_refunded_after_each_reply():
    # max_tokens=5 reserved, 1 used: OTPM 50 allows 10 in flight but far more than 10 per minute.
    provider = FakeProvider(VirtualClock(), RateLimits(BIG, BIG, 50), latency=1.0)
    dispatcher, outcomes, virtual_s = _run_dispatcher(provider, 40, limits=RateLimits(BIG, BIG, 50))
    assert all(o.ok for o in outcomes) and provider.count(429) == 0
    assert virtual_s < 60  # read from the VirtualClock: the same on any machine


def test_dispatcher_gives_up_after_max_attempts_and_keeps_other_results():
    provider = FakeProvider(VirtualClock(), RateLimits(2, BIG, BIG))
    # The client believes in a higher limit than the key has, and does not look at the headers.
    dispatcher, outcomes, _ = _run_dispatcher(provider, 4, limits=RateLimits(100, BIG, BIG), sync_headers=False,
                                              max_attempts=1, max_concurrency=4)
    assert 2 <= sum(o.ok for o in outcomes) < 4  # the 429 paused the rest, so one more fit after it
    assert all(isinstance(o.error, anthropic.RateLimitError) for o in outcomes if not o.ok)
    provider.assert_retry_after_honoured()


def test_estimate_cost_and_retry_after():
    cost = estimate_cost(BODY)
    assert cost == Cost(1, count_request(BODY), BODY["max_tokens"])
    assert retry_after_seconds({"retry-after": "3"}, 1.0) == 3.0
    assert retry_after_seconds({}, 1.5) == 1.5
    assert retry_after_seconds({"retry-after": "soon"}, 2.0) == 2.0


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


def test_progress_text_fallback_prints_sparingly(capsys):
    bar = Progress(8, "classify", every=50, widget=False)
    for n in range(1, 9):
        bar(n, 8)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["classify: 4/8 (50%)", "classify: 8/8 (100%)"]
