"""RetryBudget: retries bounded by a fraction of requests, thread-safe, refilling on the clock."""

from __future__ import annotations

import threading

import pytest

from course_utils.clock import VirtualClock
from course_utils.resilience import RetryBudget


def test_retries_are_bounded_by_initial_plus_ratio_times_requests():
    budget = RetryBudget(ratio=0.2, initial=3, clock=VirtualClock())
    granted = 0
    for _ in range(100):
        budget.deposit()
        granted += sum(budget.try_spend() for _ in range(3))  # every request wants 3 retries
    assert granted == 3 + 20
    assert budget.stats().retries == 23 and budget.stats().refused == 300 - 23
    assert budget.stats().retry_ratio == pytest.approx(0.23)


def test_a_healthy_service_never_notices_the_budget():
    budget = RetryBudget(ratio=0.1, initial=0, clock=VirtualClock())
    refused = 0
    for i in range(1000):
        budget.deposit()
        if i % 20 == 19:  # 5% of requests fail once
            refused += not budget.try_spend()
    assert refused == 0


def test_capacity_bounds_saved_up_retries():
    budget = RetryBudget(ratio=1.0, initial=0, capacity=5, clock=VirtualClock())
    for _ in range(100):
        budget.deposit()
    assert budget.tokens == 5


def test_min_retries_per_second_refills_on_the_clock():
    clock = VirtualClock()
    budget = RetryBudget(ratio=0.0, initial=0, min_retries_per_s=0.5, clock=clock)
    assert not budget.try_spend()
    clock.advance_sync(4)
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]


def test_thread_safe_under_contention():
    budget = RetryBudget(ratio=0.5, initial=0, capacity=10_000, clock=VirtualClock())
    granted = []

    def worker():
        n = 0
        for _ in range(2000):
            budget.deposit()
            n += budget.try_spend()
            n += budget.try_spend()
        granted.append(n)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.stats().requests == 16_000
    assert sum(granted) == budget.stats().retries == 8_000


def test_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        RetryBudget(ratio=-1)
