"""Lesson 07's budget race on virtual time: what each guard let through, and what the ledger billed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from course_utils.tenancy import GUARDS, budget_race

NAIVE, GUARD = GUARDS


@pytest.fixture(scope="module")
def burst():
    return budget_race(budget=Decimal("0.005"), start_share=Decimal("0.5"), requests=60, spread_s=0.0)


@pytest.fixture(scope="module")
def steady():
    return budget_race(budget=Decimal("0.005"), start_share=Decimal("0.5"), requests=100, spread_s=30.0)


def test_a_burst_overshoots_the_naive_guard_and_never_the_reserving_one(burst):
    naive, guarded = burst.runs[NAIVE], burst.runs[GUARD]
    assert naive.sent == 60 and naive.refused == 0  # every request passed the same check
    assert naive.spent_usd > burst.budget  # the race: billed past the budget
    assert guarded.spent_usd <= burst.budget
    # The guard admits exactly the worst cases that fit the headroom.
    assert guarded.sent == int((burst.budget - burst.start_usd) // burst.estimate)
    assert guarded.sent + guarded.refused == 60
    # The naive alert fired with requests still in flight: too late to stop anything.
    assert naive.alert_spent_usd is not None and naive.in_flight_at_alert > 0


def test_over_reservation_is_measured_from_the_run(burst):
    assert burst.actual_costs and all(a <= burst.estimate for a in burst.actual_costs)
    assert burst.over_reservation > 1
    left = burst.budget - burst.runs[GUARD].spent_usd
    assert burst.unspent_fits() == int(left // burst.mean_actual) > 0


def test_under_steady_traffic_the_guard_reaches_the_alert_and_stops_at_the_budget(steady):
    guarded = steady.runs[GUARD]
    assert guarded.alert_spent_usd is not None
    assert guarded.alert_spent_usd >= steady.budget * Decimal("0.8")
    assert guarded.refused > 0 and guarded.spent_usd <= steady.budget
    assert steady.budget - guarded.spent_usd < steady.estimate  # settled holds were given back
    timeline = steady.timeline()
    mine = timeline[timeline.guard == GUARD]
    assert (mine.committed <= steady.budget).all() and (mine.spent <= mine.committed).all()


def test_the_ledger_is_the_truth(steady):
    for run in steady.runs.values():
        assert run.spent_usd >= steady.start_usd
        assert run.spent_usd == run.timeline[-1]["spent"]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        budget_race(budget=Decimal(0))
    with pytest.raises(ValueError):
        budget_race(start_share=Decimal("1.2"))
    with pytest.raises(ValueError):
        budget_race(requests=0)
