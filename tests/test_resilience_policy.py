"""RetryPolicy (tenacity) on virtual time: what it retries, how long it waits, when it stops."""

from __future__ import annotations

import asyncio
import logging
import random

import anthropic
import pytest

from course_utils.clock import SYSTEM_CLOCK, VirtualClock, run_virtual
from course_utils.resilience import RetryBudget, RetryPolicy, backoff_delay, retry_delay
from course_utils.resilience.fakes import spend_limit_error, status_error


class Script:
    """A callable that raises the scripted errors in order, then returns ``"ok"``; records call times."""

    def __init__(self, *errors, clock=SYSTEM_CLOCK):
        self.errors = list(errors)
        self.times: list[float] = []
        self.clock = clock

    def __call__(self):
        self.times.append(self.clock.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def acall(self):
        return self()


def gaps(times):
    return [round(b - a, 6) for a, b in zip(times, times[1:])]


def test_backoff_delay_is_exponential_capped_and_jittered_below_the_ceiling():
    assert [backoff_delay(n, base_s=1, cap_s=10, jitter=False) for n in range(1, 6)] == [1, 2, 4, 8, 10]
    rng = random.Random(1)
    draws = [backoff_delay(4, base_s=1, cap_s=10, rng=rng) for _ in range(500)]
    assert all(0 <= d <= 8 for d in draws) and max(draws) > 7 and min(draws) < 1


def test_sync_policy_retries_transient_errors_then_returns():
    clock = VirtualClock()
    fn = Script(status_error(529), status_error(500), clock=clock)
    policy = RetryPolicy(max_attempts=5, base_s=1, cap_s=8, clock=clock)
    assert policy.call(fn) == "ok"
    assert len(fn.times) == 3
    assert [e.kind for e in policy.events] == ["529", "500"]
    assert all(0 <= g <= c for g, c in zip(gaps(fn.times), [1, 2]))


@pytest.mark.parametrize(
    "error", [status_error(400), status_error(413), status_error(401), spend_limit_error(), ValueError("bug")]
)
def test_never_retries_permanent_errors(error):
    fn = Script(error)
    with pytest.raises(type(error)):
        RetryPolicy(clock=VirtualClock()).call(fn)
    assert len(fn.times) == 1


def test_async_policy_waits_at_least_retry_after():
    async def run():
        fn = Script(status_error(429, {"retry-after": "5"}), status_error(429, {"retry-after": "5"}))
        policy = RetryPolicy(max_attempts=4, base_s=0.1, cap_s=1)
        assert await policy.acall(fn.acall) == "ok"
        return fn.times

    times = run_virtual(run())
    assert len(times) == 3 and all(g >= 5 for g in gaps(times))


def test_without_retry_after_the_backoff_applies_and_with_it_ignored_the_wait_is_short():
    async def run(respect):
        fn = Script(status_error(429, {"retry-after": "5"}))
        await RetryPolicy(base_s=0.1, cap_s=1, respect_retry_after=respect).acall(fn.acall)
        return gaps(fn.times)[0]

    assert run_virtual(run(False)) <= 0.1
    assert run_virtual(run(True)) >= 5


def test_stops_at_max_attempts_and_reraises_the_last_error():
    clock = VirtualClock()
    fn = Script(*[status_error(529) for _ in range(10)], clock=clock)
    with pytest.raises(anthropic.InternalServerError):
        RetryPolicy(max_attempts=3, base_s=0.01, clock=clock).call(fn)
    assert len(fn.times) == 3


def test_stops_before_a_wait_that_would_end_past_the_deadline():
    async def run():
        fn = Script(*[status_error(429, {"retry-after": "4"}) for _ in range(10)])
        started = asyncio.get_running_loop().time()
        with pytest.raises(anthropic.RateLimitError):
            await RetryPolicy(max_attempts=100, deadline_s=10, base_s=0.1).acall(fn.acall)
        return len(fn.times), asyncio.get_running_loop().time() - started

    attempts, elapsed = run_virtual(run())
    assert attempts == 3  # at 0, 4 and 8 s; a wait to 12 s would pass the 10 s deadline
    assert elapsed < 10


def test_jitter_spreads_clients_that_failed_together():
    """100 clients fail at the same instant: with jitter their retries spread, without they coincide."""

    async def crowd(jitter):
        firsts = []

        async def client(i):
            fn = Script(status_error(529))
            await RetryPolicy(base_s=2, cap_s=2, jitter=jitter, seed=i).acall(fn.acall)
            firsts.append(round(fn.times[1], 3))

        await asyncio.gather(*(client(i) for i in range(100)))
        return firsts

    assert len(set(run_virtual(crowd(False)))) == 1
    assert len(set(run_virtual(crowd(True)))) > 90


def test_retry_after_plus_jitter_spreads_a_crowd_that_got_the_same_retry_after():
    """100 clients get the same 429 with ``retry-after: 5`` and a backoff cap below it.

    ``max(retry-after, backoff)`` would bring all 100 back at exactly 5 s; retry-after *plus* jitter
    keeps every retry at or after 5 s and spreads them over the backoff window."""

    async def crowd():
        seconds = []

        async def client(i):
            fn = Script(status_error(429, {"retry-after": "5"}))
            await RetryPolicy(base_s=1, cap_s=1, seed=i).acall(fn.acall)
            seconds.append(round(fn.times[1] - fn.times[0], 6))

        await asyncio.gather(*(client(i) for i in range(100)))
        return seconds

    waits = run_virtual(crowd())
    assert all(5 <= w <= 6 for w in waits)
    assert len(set(waits)) > 90 and max(waits) - min(waits) > 0.8


def test_retry_delay_is_retry_after_plus_the_backoff_draw():
    assert retry_delay(3, 5.0, base_s=1, cap_s=10, jitter=False) == 9.0
    assert retry_delay(3, None, base_s=1, cap_s=10, jitter=False) == 4.0
    rng = random.Random(3)
    draws = [retry_delay(2, 5.0, base_s=1, cap_s=10, rng=rng) for _ in range(300)]
    assert all(5 <= d <= 7 for d in draws) and max(draws) > 6.9 and min(draws) < 5.1


def test_same_seed_same_delays():
    a, b = RetryPolicy(seed=7), RetryPolicy(seed=7)
    assert [a.delay(n) for n in range(1, 6)] == [b.delay(n) for n in range(1, 6)]


def test_budget_caps_retries_across_calls():
    clock = VirtualClock()
    budget = RetryBudget(ratio=0.1, initial=2, clock=clock)
    policy = RetryPolicy(max_attempts=5, base_s=0.01, budget=budget, clock=clock)
    attempts = 0
    for _ in range(50):
        fn = Script(*[status_error(529) for _ in range(10)], clock=clock)
        with pytest.raises(anthropic.InternalServerError):
            policy.call(fn)
        attempts += len(fn.times)
    stats = budget.stats()
    assert stats.requests == 50
    assert stats.retries <= 2 + 0.1 * 50 + 1e-9
    assert attempts == 50 + stats.retries
    assert stats.refused > 0


def test_each_retry_is_logged_and_reported(caplog):
    seen = []
    clock = VirtualClock()
    policy = RetryPolicy(base_s=0.01, clock=clock, on_retry=seen.append)
    with caplog.at_level(logging.INFO, logger="course_utils.resilience"):
        policy.call(Script(status_error(529), clock=clock))
    assert len(seen) == 1 and seen[0].attempt == 1 and seen[0].kind == "529"
    assert "attempt 1 failed (529)" in caplog.text


def test_decorator_form_sync_and_async():
    clock = VirtualClock()
    fn = Script(status_error(500), clock=clock)
    wrapped = RetryPolicy(base_s=0.01, clock=clock).wraps(fn)
    assert wrapped() == "ok"

    async def run():
        script = Script(status_error(500))

        @RetryPolicy(base_s=0.01).wraps
        async def call():
            return script()

        return await call()

    assert run_virtual(run()) == "ok"


def test_against_the_simulator_honours_retry_after_between_ledger_attempts(make_server):
    """Forced 429s: the ledger's attempt times are at least retry-after apart; the third attempt succeeds."""
    server = make_server(seed=0, time_scale=1.0)
    faults = iter(["rate_limit", "rate_limit"])

    async def run():
        client = server.async_client(max_retries=0)

        async def create():
            fault = next(faults, None)
            return await client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=5,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-mock-fault": fault} if fault else None,
            )

        try:
            return await RetryPolicy(base_s=0.05, cap_s=0.1).acall(create)
        finally:
            await client.close()

    message = run_virtual(run())
    assert message.stop_reason is not None
    rows = server.ledger()
    assert list(rows["status"]) == [429, 429, 200]
    assert all(g >= 1.0 for g in gaps(list(rows["arrival"])))  # the simulator's retry-after is 1 s


def test_async_policy_awaits_what_a_lambda_returns():
    async def run():
        fn = Script(status_error(529))
        return await RetryPolicy(base_s=0.01).acall(lambda: fn.acall())

    assert run_virtual(run()) == "ok"
