"""Lesson 05's measurements (course_utils.resilience.measure, chaos): what the notebook quotes.

``on_virtual_time`` runs on a loop with fewer idle cycles than ``clock.virtual_loop`` (to halve the
notebook's CPU time); these tests hold it to the same figures as the default loop, so the speed-up
cannot change a number the lesson prints.
"""

from __future__ import annotations

import math
import random

import pytest

from course_utils.clock import run_virtual
from course_utils.mock_provider.inprocess import InProcessServer
from course_utils.resilience import (
    STRATEGIES,
    Idempotent,
    IdempotencyStore,
    breaker_run,
    on_virtual_time,
    run_incident,
    storm_run,
    strategy_run,
)
from course_utils.resilience.chaos import IncidentReport, OpRecord
from course_utils.clock import DEFAULT_NOOP_CYCLES
from course_utils.lab import NOOP_CYCLES


def _default_loop(make):
    """The same run on ``clock.run_virtual``'s loop (looptime's default 42 idle cycles)."""
    random.seed(0)
    return run_virtual(make())


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


def test_the_measurement_loop_idles_less_than_the_default():
    assert 1 <= NOOP_CYCLES < DEFAULT_NOOP_CYCLES


@pytest.mark.parametrize("name", [STRATEGIES[1], STRATEGIES[-1]])
def test_strategy_figures_do_not_depend_on_the_idle_cycles(name):
    fast = on_virtual_time(lambda: strategy_run(name, 80, seed=0)).summary()
    default = _default_loop(lambda: strategy_run(name, 80, seed=0)).summary()
    assert _same(fast, default), (fast, default)
    assert fast["attempts_per_request"] > 1.0  # the flaky scenario made it retry: the comparison saw retries


def test_storm_and_breaker_figures_do_not_depend_on_the_idle_cycles():
    fast = on_virtual_time(lambda: storm_run("no jitter", clients=30, seed=0))
    default = _default_loop(lambda: storm_run("no jitter", clients=30, seed=0))
    assert fast == default
    fast = on_virtual_time(lambda: breaker_run(True, duration_s=40.0, seed=0))
    default = _default_loop(lambda: breaker_run(True, duration_s=40.0, seed=0))
    assert fast == default
    assert fast["refused_by_breaker"] > 0 and fast["events"]


def _incident(handler_factory):
    async def go():
        with InProcessServer(seed=0, time_scale=1.0, rate_limit_tier="unlimited") as server:
            client = server.async_client(max_retries=0)
            try:
                return (await run_incident(server, handler_factory(client), ops_per_phase=8)).summary()
            finally:
                await client.close()

    return go


def _naive(client):
    sdk = client.with_options(max_retries=2, timeout=5.0)

    async def handle(key, body):
        return await sdk.messages.create(**body)

    return handle


def _idempotent(client):
    sdk = client.with_options(max_retries=2, timeout=5.0)
    guard = Idempotent(IdempotencyStore(":memory:"))

    async def handle(key, body):
        return await guard.acall(key, body, lambda b: sdk.messages.create(**b))

    return handle


def test_incident_figures_do_not_depend_on_the_idle_cycles():
    fast = on_virtual_time(_incident(_naive))
    assert _same(fast, _default_loop(_incident(_naive))), fast


def test_customer_charges_count_reports_produced_not_reports_asked_for():
    """Customer charges are distinct reports produced per key: 0 for a report never produced, 2 for one
    produced twice; the notebook's charges per report divide this by the reports asked for."""
    ops = [OpRecord("a", "flaky", 0.0), OpRecord("b", "flaky", 0.5), OpRecord("c", "slow", 1.0)]
    ops[0].answer_ids = {"msg_1"}
    ops[1].answer_ids = {"msg_2", "msg_3"}  # produced twice: one duplicate charge
    summary = IncidentReport(ops, provider_requests=5, provider_billed=3).summary()
    assert summary["customer_charges"] == 3 and summary["duplicate_charges"] == 1
    assert summary["reports"] == 3 and summary["load_amplification"] == 5 / 3


def test_an_idempotent_service_never_charges_a_customer_twice_in_the_incident():
    summary = on_virtual_time(_incident(_idempotent))
    assert summary["duplicate_charges"] == 0
    assert summary["customer_charges"] <= summary["reports"]


def test_storm_reports_progress_per_client_without_changing_its_figures():
    events = []
    with_bar = on_virtual_time(lambda: storm_run("full jitter", clients=20, seed=0, on_progress=events.append))
    without = on_virtual_time(lambda: storm_run("full jitter", clients=20, seed=0))
    assert with_bar == without
    assert [e.done for e in events] == list(range(1, 21)) and {e.total for e in events} == {20}
    # elapsed_s is the virtual loop's time here: the last client finished after the 10 s outage.
    assert events[-1].elapsed_s >= 10.0
