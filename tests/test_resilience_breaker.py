"""CircuitBreaker on virtual time: opens on the failure rate, probes in half-open, ignores 429s."""

from __future__ import annotations

import asyncio

import pytest

from course_utils.clock import VirtualClock, run_virtual
from course_utils.mock_provider.faults import Scenario
from course_utils.resilience import CLOSED, HALF_OPEN, OPEN, BreakerBoard, CircuitBreaker, CircuitOpenError
from course_utils.resilience.fakes import status_error, timeout_error


def breaker(clock, **kw):
    settings = dict(failure_rate=0.5, min_calls=4, window_s=10, cooldown_s=5, half_open_calls=2, clock=clock)
    settings.update(kw)
    return CircuitBreaker("test", **settings)


def test_opens_on_the_failure_rate_only_after_min_calls():
    clock = VirtualClock()
    b = breaker(clock)
    b.record_failure(status_error(529))
    b.record_failure(status_error(529))
    b.record_failure(timeout_error())
    assert b.state == CLOSED  # 3 calls < min_calls
    b.record_success()
    assert b.state == OPEN  # 3 of 4 failed
    assert not b.allow() and b.refused == 1


def test_old_outcomes_leave_the_window():
    clock = VirtualClock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure(status_error(500))
    clock.advance_sync(11)
    b.record_success()
    b.record_failure(status_error(500))
    assert b.state == CLOSED and b.failure_stats() == (1, 2)


def test_rate_limits_do_not_open_it_and_bad_requests_count_as_answered():
    clock = VirtualClock()
    b = breaker(clock)
    for _ in range(20):
        b.record_failure(status_error(429, {"retry-after": "1"}))
    assert b.state == CLOSED and b.failure_stats() == (0, 0)
    for _ in range(20):
        b.record_failure(status_error(400))
    assert b.state == CLOSED and b.failure_stats() == (0, 20)


def test_half_open_lets_a_limited_number_of_probes_through_then_closes():
    clock = VirtualClock()
    events = []
    b = breaker(clock, on_change=events.append)
    for _ in range(4):
        b.record_failure(status_error(529))
    assert b.state == OPEN and b.retry_in_s() == 5
    clock.advance_sync(5)
    assert b.state == HALF_OPEN
    assert [b.allow() for _ in range(4)] == [True, True, False, False]
    b.record_success()
    assert b.state == HALF_OPEN
    b.record_success()
    assert b.state == CLOSED
    assert [(e.old, e.new) for e in events] == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert events[1].at_s == pytest.approx(events[0].at_s + 5)
    assert list(b.frame()["new"]) == [OPEN, HALF_OPEN, CLOSED]


def test_a_failed_probe_opens_it_again_for_a_new_cooldown():
    clock = VirtualClock()
    b = breaker(clock)
    for _ in range(4):
        b.record_failure(status_error(529))
    clock.advance_sync(5)
    assert b.allow()
    b.record_failure(status_error(529))
    assert b.state == OPEN and b.retry_in_s() == 5


def test_a_429_probe_frees_its_slot():
    clock = VirtualClock()
    b = breaker(clock, half_open_calls=1)
    for _ in range(4):
        b.record_failure(status_error(529))
    clock.advance_sync(5)
    assert b.allow() and not b.allow()
    b.record_failure(status_error(429))
    assert b.state == HALF_OPEN and b.allow()


def test_call_wrappers_refuse_fast_when_open():
    clock = VirtualClock()
    b = breaker(clock, min_calls=1, failure_rate=1.0)

    def fail():
        raise status_error(529)

    with pytest.raises(Exception):
        b.call(fail)
    calls = []
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: calls.append(1))
    assert calls == [] and info.value.retry_in_s == 5


def test_board_keeps_one_breaker_per_provider_and_model():
    board = BreakerBoard(min_calls=1, failure_rate=1.0, clock=VirtualClock())
    board[("anthropic", "opus")].record_failure(status_error(529))
    assert board.states() == {("anthropic", "opus"): OPEN}
    assert board[("anthropic", "haiku")].allow()
    assert board.get(("anthropic", "opus")) is board[("anthropic", "opus")]


def test_through_a_simulated_outage_on_virtual_time(make_server):
    """Outage 2 s to 12 s: the breaker opens during it, sends only probes, and closes after it."""
    server = make_server(seed=0, time_scale=1.0)
    server.set_scenario(Scenario(outages=((2.0, 10.0),)))
    sent = []

    async def run():
        loop = asyncio.get_running_loop()
        b = CircuitBreaker("haiku", min_calls=5, window_s=5, cooldown_s=3, half_open_calls=1)
        client = server.async_client(max_retries=0)
        for _ in range(80):
            try:
                await b.acall(
                    client.messages.create,
                    model="claude-haiku-4-5",
                    max_tokens=5,
                    messages=[{"role": "user", "content": "hi"}],
                )
                sent.append((loop.time(), "ok"))
            except CircuitOpenError:
                pass
            except Exception:
                sent.append((loop.time(), "fail"))
            await asyncio.sleep(0.25)
        await client.close()
        return b

    b = run_virtual(run())
    states = [e.new for e in b.events]
    assert states[0] == OPEN and states[-1] == CLOSED and HALF_OPEN in states
    during = [s for t, s in sent if 4 < t < 11]
    assert len(during) <= 5  # only the probes reach the dead provider
    assert b.refused > 20
