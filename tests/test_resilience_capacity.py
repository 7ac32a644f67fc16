"""Load-dependent overload in the simulator (``Capacity``) and the SRE book's client-side adaptive
throttling (``AdaptiveThrottle``): the two halves of lesson 05's retry storm."""

from __future__ import annotations

import pytest

from course_utils.clock import VirtualClock
from course_utils.lab import on_virtual_time
from course_utils.mock_provider.config import SimulatorConfig
from course_utils.mock_provider.faults import Capacity, FaultInjector, Scenario
from course_utils.resilience.fakes import status_error
from course_utils.resilience.measure import STORM_VARIANTS, storm_run
from course_utils.retries import AdaptiveThrottle, ThrottledLocally


def _injector(capacity: Capacity, clock: VirtualClock) -> FaultInjector:
    return FaultInjector(Scenario(name="cap", capacity=capacity), SimulatorConfig(seed=0, time_scale=1.0), clock=clock)


def _offer(inj: FaultInjector, n: int, model: str = "m") -> list[bool]:
    """``n`` requests at the same instant; True for each one shed."""
    return [inj.decide(f"req-{i}", model=model) is not None for i in range(n)]


def test_capacity_sheds_the_excess_with_529_and_serves_again_when_the_window_passes():
    clock = VirtualClock()
    inj = _injector(Capacity(10), clock)
    shed = _offer(inj, 15)
    assert shed == [False] * 10 + [True] * 5
    fault = inj.decide("one-more", model="m")
    assert fault is not None and fault.status == 529 and fault.error_type == "overloaded_error"
    assert fault.cause == "capacity"
    clock.sleep_sync(1.01)
    assert _offer(inj, 10) == [False] * 10


def test_shed_requests_cost_work_so_retries_above_capacity_crowd_out_the_servable_ones():
    """30 requests every half second against a capacity of 10/s: without shed cost, 10 a second are
    still served; at shed_cost 0.5 the shed half-second's 30 fill the window (15 units) and none is."""
    for cost, served in ((0.0, 10), (0.5, 0)):
        clock = VirtualClock()
        inj = _injector(Capacity(10, shed_cost=cost), clock)
        assert _offer(inj, 30).count(False) == 10
        clock.sleep_sync(0.5)
        assert _offer(inj, 30).count(False) == 0  # the first 10 are still in the window
        clock.sleep_sync(0.51)  # they leave it; the shed half-second stays
        assert _offer(inj, 30).count(False) == served
        assert inj.load("m") == pytest.approx(10 + 30 * cost if served else 30 * cost + 30 * cost)


def test_capacity_per_model_keeps_one_window_per_model():
    clock = VirtualClock()
    inj = _injector(Capacity(5, per_model=True), clock)
    assert _offer(inj, 6, "a").count(True) == 1
    assert _offer(inj, 5, "b").count(True) == 0
    shared = _injector(Capacity(5), VirtualClock())
    assert _offer(shared, 6, "a").count(True) == 1 and _offer(shared, 5, "b").count(True) == 5


def test_capacity_round_trips_through_a_scenario_body_and_rejects_bad_values():
    sc = Scenario.from_dict({"capacity": {"rps": 40, "shed_cost": 0.25}})
    assert sc.capacity == Capacity(40, shed_cost=0.25)
    assert Scenario.from_dict(sc.to_dict()).capacity == sc.capacity
    assert Scenario.from_dict({"capacity": None}).capacity is None
    for bad in ({"rps": 0}, {"rps": 5, "shed_cost": 2}, {"window_s": 1}, {"rps": 5, "speed": 1}):
        with pytest.raises(ValueError):
            Scenario.from_dict({"capacity": bad})


# ----- adaptive throttling --------------------------------------------------------------------------------
def test_a_healthy_backend_is_never_throttled():
    t = AdaptiveThrottle(2.0, clock=VirtualClock())
    for _ in range(1000):
        assert t.allow()
        t.record_accept()
    assert t.refused == 0 and t.reject_probability() == 0.0


def test_the_reject_probability_is_the_sre_formula():
    clock = VirtualClock()
    t = AdaptiveThrottle(2.0, window_s=120.0, clock=clock, seed=1)
    for _ in range(10):
        t.allow()
        t.record_accept()
    for _ in range(90):  # the backend rejects everything from here on
        t.allow()
    # requests 100 (every attempt counts, refused or not), accepts 10
    assert t.reject_probability() == pytest.approx((100 - 2 * 10) / 101)
    refused_before = t.refused
    sent = sum(t.allow() for _ in range(2000))
    assert t.refused - refused_before == 2000 - sent and sent < 200  # p climbs toward 1 as requests pile up
    clock.sleep_sync(121.0)  # the history leaves the window: a fresh start
    assert t.reject_probability() == 0.0


def test_k_sets_how_much_over_the_accepts_reaches_the_backend():
    def sent_with(k: float) -> int:
        t = AdaptiveThrottle(k, window_s=1e9, clock=VirtualClock(), seed=3)
        sent = 0
        for i in range(4000):
            if t.allow():
                sent += 1
                if i % 4 == 0:  # the backend accepts about a quarter of what it is sent
                    t.record_accept()
        return sent

    assert sent_with(1.1) < sent_with(2.0) < sent_with(4.0)


def test_acall_refuses_locally_and_counts_rejections_and_accepts():
    t = AdaptiveThrottle(1.0, window_s=1e9, clock=VirtualClock(), seed=0)

    async def overloaded():
        raise status_error(529)

    async def bad_request():
        raise status_error(400)

    async def run():
        outcomes = []
        for fn in [bad_request] * 5 + [overloaded] * 200:
            try:
                await t.acall(fn)
            except ThrottledLocally:
                outcomes.append("local")
            except Exception as exc:  # noqa: BLE001 - the outcome is the status the SDK raised with
                outcomes.append(getattr(exc, "status_code", None))
        return outcomes

    outcomes = on_virtual_time(run)
    assert outcomes[:5] == [400] * 5  # a 400 is an answer: the backend accepted it
    assert "local" in outcomes and outcomes.count(529) < 50


# ----- the storm the notebook shows ---------------------------------------------------------------------
def test_a_synchronised_crowd_keeps_the_provider_overloaded_without_jitter_and_not_with_it():
    crowd = dict(clients=40, outage=(0.0, 6.0), capacity=Capacity(10, shed_cost=0.5), max_attempts=6, cap_s=16.0)
    flat, jit = (on_virtual_time(lambda v=v: storm_run(v, **crowd)) for v in STORM_VARIANTS[:2])
    assert flat["shed_after_outage"] > 0 and flat["overloaded_until_s"] > flat["outage_end_s"] + 5
    assert jit["shed_after_outage"] < flat["shed_after_outage"] / 4 and jit["answered"] > flat["answered"]
    assert jit["overloaded_until_s"] < flat["overloaded_until_s"]


def test_budgets_and_throttling_end_an_overload_that_retries_alone_prolong():
    steady = dict(
        rate_per_s=5,
        duration_s=24.0,
        outage=(4.0, 4.0),
        capacity=Capacity(6.5, shed_cost=0.5),
        max_attempts=5,
        cap_s=8.0,
        deadline_s=30.0,
    )
    plain, budget, throttle = (on_virtual_time(lambda v=v: storm_run(v, **steady)) for v in STORM_VARIANTS[1:])
    assert plain["overloaded_until_s"] > plain["outage_end_s"] + 5
    for capped in (budget, throttle):
        assert capped["requests"] < plain["requests"] / 2
        assert capped["answered"] > plain["answered"]
        assert capped["shed_after_outage"] < plain["shed_after_outage"] / 4
        assert capped["refused_by_client"] > 0


def test_storm_variants_are_checked():
    with pytest.raises(ValueError):
        on_virtual_time(lambda: storm_run("jitter + budget", clients=1))


def test_a_new_client_does_not_throttle_itself_on_its_first_requests_in_flight():
    t = AdaptiveThrottle(2.0, min_requests=20, clock=VirtualClock(), seed=0)
    assert all(t.allow() for _ in range(20))  # 20 requests sent, none answered yet: no evidence of overload
    assert t.reject_probability() == pytest.approx((20 - 0) / 21)
    bare = AdaptiveThrottle(2.0, min_requests=0, clock=VirtualClock(), seed=0)
    assert not all(bare.allow() for _ in range(20))
