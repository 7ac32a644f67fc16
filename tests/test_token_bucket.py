"""The course's one token bucket (course_utils.token_bucket) and the three buckets built on it.

Everything runs on a manual VirtualClock: the tests move time by hand and never sleep.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from course_utils.clock import VirtualClock
from course_utils.concurrency import Demand, TokenBucket
from course_utils.mock_provider.ratelimit import LimitBucket
from course_utils.tenancy import MemoryLimiter, Plan
from course_utils.token_bucket import LEVEL_SLACK, TIME_SLACK_S, Bucket, refilled, seconds_until


# ----- the arithmetic ---------------------------------------------------------------------------
def test_refilled_adds_fractional_refill_and_stops_at_capacity():
    assert refilled(0.0, 10.0, 0.5, 1.5) == 0.75  # a fractional refill is kept, not rounded to whole tokens
    assert refilled(-3.0, 10.0, 2.0, 1.0) == -1.0  # an overdraft recovers at the same rate
    assert refilled(9.5, 10.0, 2.0, 1.0) == 10.0  # never beyond capacity
    assert refilled(4.0, 10.0, 2.0, -5.0) == 4.0  # a clock read out of order refills nothing


def test_seconds_until_is_the_deficit_over_the_rate():
    assert seconds_until(5.0, 2.0, 0.5) == 6.0
    assert seconds_until(5.0, 5.0, 0.5) == 0.0
    assert seconds_until(5.0, 5.0 - LEVEL_SLACK / 2, 0.5) == 0.0  # a float rounding error is not a wait
    assert seconds_until(5.0, 5.0 - 1e-6, 0.5, slack=LEVEL_SLACK) == pytest.approx(2e-6)
    assert seconds_until(5.0, 2.0, 0.0) == math.inf  # a bucket that never refills


# ----- the bucket on a virtual clock --------------------------------------------------------------
def test_a_bucket_starts_full_and_refills_continuously(clock):
    bucket = Bucket(10, 2.0, clock)
    assert bucket.level == 10
    bucket.take(10)
    clock.advance_sync(0.25)
    assert bucket.level == 0.5  # half a token: refill is continuous, not per whole token
    assert bucket.time_until(1) == pytest.approx(0.25)
    assert not bucket.try_take(1)
    assert bucket.level == 0.5  # a refused take takes nothing and loses none of the refill
    clock.advance_sync(0.25)
    assert bucket.try_take(1)
    assert bucket.level == pytest.approx(0.0)
    clock.advance_sync(100)
    assert bucket.level == 10


def test_a_demand_larger_than_the_capacity_never_fits_but_can_be_charged(clock):
    bucket = Bucket(10, 1.0, clock)
    assert bucket.time_until(11) == math.inf
    assert not bucket.try_take(11)
    assert bucket.level == 10
    bucket.take(15)  # charged after the fact (output known only when the reply ends): overdraws
    assert bucket.level == -5
    assert bucket.time_until(10) == 15.0  # the overdraft is paid back before the bucket is full again
    bucket.take(-100)  # a refund never fills it beyond its capacity
    assert bucket.level == 10


def test_a_demand_within_float_slack_of_the_capacity_fits(clock):
    bucket = Bucket(0.3, 1.0, clock)
    n = 0.1 + 0.2  # 0.30000000000000004
    assert n > bucket.capacity and bucket.time_until(n) == 0.0 and bucket.try_take(n)


def test_a_deficit_that_refills_within_the_time_slack_is_no_wait(clock):
    bucket = Bucket(100, 10.0, clock, level=50)
    assert bucket.slack() == 10.0 * TIME_SLACK_S + LEVEL_SLACK
    assert bucket.time_until(50 + 10.0 * TIME_SLACK_S / 2) == 0.0  # else a waiter would sleep 0 s for ever
    assert bucket.time_until(51) == pytest.approx(0.1)


def test_the_clock_going_back_refills_nothing_and_is_not_counted_twice():
    clock = VirtualClock()
    clock.advance_sync(10)
    bucket = Bucket(10, 1.0, clock, level=0)
    clock._now -= 5  # a clock read out of order (white-box: VirtualClock never goes back by itself)
    assert bucket.level == 0
    clock._now += 6  # one second after the bucket's last reading, not six
    assert bucket.level == 1.0


def test_reset_starts_afresh_at_a_level_no_higher_than_capacity(clock):
    bucket = Bucket(10, 1.0, clock)
    bucket.take(25)
    bucket.reset(4)
    assert bucket.level == 4
    bucket.reset(99)
    assert bucket.level == 10


# ----- the three buckets of the course agree ------------------------------------------------------
STEPS = [(0.0, 1), (0.0, 1), (0.0, 1), (0.4, 1), (0.25, 1), (1.7, 2), (0.0, 1), (3.05, 3), (0.5, 1)]


def test_the_lesson_simulator_and_tenant_buckets_follow_one_trajectory(clock):
    """Lesson 03's TokenBucket, the simulator's LimitBucket and lesson 07's MemoryLimiter (requests
    dimension) admit and refuse the same requests with the same waits, step by step."""
    rpm, burst_s = 60, 3.0  # 3 requests of capacity, 1 back per second
    plan = Plan("p", rpm, 10**9, 10**9, Decimal("1"), frozenset({"claude-haiku-5-5"}))
    lesson = TokenBucket(3, 1.0, clock=clock)
    simulator = LimitBucket(3, 1.0, clock)
    tenants = MemoryLimiter(burst_s=burst_s, clock=clock)
    trace = []
    for advance, n in STEPS:
        clock.advance_sync(advance)
        waits = (lesson.time_until(n), simulator.time_until(n))
        decision = tenants.try_acquire("t", plan, Demand(n, 0, 0))
        admitted = (lesson.try_take(n), simulator.try_take(n), decision.allowed)
        assert len(set(admitted)) == 1, (advance, n, admitted)
        assert waits[0] == pytest.approx(waits[1]) and (decision.retry_after_s or 0.0) == pytest.approx(waits[0])
        assert lesson.level == pytest.approx(simulator.available())
        assert lesson.level == pytest.approx(tenants.remaining("t", plan)["requests"])
        trace.append((admitted[0], round(waits[0], 6)))
    assert trace == [
        (True, 0.0),
        (True, 0.0),
        (True, 0.0),
        (False, 0.6),
        (False, 0.35),
        (True, 0.0),  # 0.65 + 1.7 = 2.35 tokens: two fit
        (False, 0.65),
        (True, 0.0),
        (False, 0.5),  # 3.05 s refilled the bucket to its 3 (not 3.4), all taken
    ]
