"""Capacity planning: the formula names the binding limit, and a simulation on virtual time agrees with it."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.architecture.capacity import (
    CapacityInputs,
    binding_limit,
    conversations_per_minute,
    simulate_conversations_per_minute,
    turn_limits,
)

KEY = CapacityInputs(
    rpm=1_000,
    itpm=400_000,
    otpm=80_000,
    input_tokens_per_turn=2_000,
    output_tokens_per_turn=400,
    turns_per_conversation=4,
    latency_s=3.0,
    workers=50,
)


def test_each_limit_caps_the_turns_per_minute():
    assert turn_limits(KEY) == {"rpm": 1_000, "itpm": 200, "otpm": 200, "workers": 1_000}
    assert conversations_per_minute(KEY) == 50


BINDING = {
    "rpm": ({"rpm": 40}, 10),
    "itpm": ({"itpm": 100_000}, 12.5),
    "otpm": ({"otpm": 40_000}, 25),
    "workers": ({"workers": 5}, 25),  # 5 calls in flight of 3 s each: 100 turns a minute
}
"""A change to KEY that makes each limit bind, and the conversations per minute it leaves."""


@pytest.mark.parametrize("limit", BINDING)
def test_the_smallest_limit_binds(limit):
    change, expected = BINDING[limit]
    p = dataclasses.replace(KEY, **change)
    assert binding_limit(p) == limit
    assert conversations_per_minute(p) == pytest.approx(expected)


@pytest.mark.parametrize("limit", BINDING)
def test_the_simulation_measures_the_formula(limit):
    p = dataclasses.replace(KEY, **BINDING[limit][0])
    assert binding_limit(p) == limit
    assert simulate_conversations_per_minute(p) == pytest.approx(conversations_per_minute(p), rel=0.01)


@settings(max_examples=8, deadline=None)
@given(
    rpm=st.integers(10, 600),
    itpm=st.integers(20_000, 1_000_000),
    otpm=st.integers(5_000, 200_000),
    tin=st.integers(200, 8_000),
    tout=st.integers(50, 1_000),
    turns=st.integers(1, 8),
    latency=st.floats(0.5, 10.0),
    workers=st.integers(1, 20),
)
def test_the_simulation_agrees_on_any_key(rpm, itpm, otpm, tin, tout, turns, latency, workers):
    p = CapacityInputs(rpm, itpm, otpm, tin, tout, turns, latency, workers)
    # 10 minutes: the completions cut at the window's edges are at most `workers` turns of many.
    expected = conversations_per_minute(p)
    slack = p.workers / 10 / p.turns_per_conversation
    assert abs(simulate_conversations_per_minute(p) - expected) <= 0.01 * expected + slack


def test_a_starting_burst_does_not_count():
    """The buckets start empty: a minute's quota spent at once is not a sustainable rate."""
    p = dataclasses.replace(KEY, rpm=10)
    assert simulate_conversations_per_minute(p, minutes=2, warmup_minutes=0) <= 10 / 4 + 0.5


def test_bad_inputs_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="latency_s"):
        dataclasses.replace(KEY, latency_s=0)
    with pytest.raises(ValueError, match="minutes"):
        simulate_conversations_per_minute(KEY, minutes=0)


def test_workers_for_uses_a_percentile_latency_and_leaves_headroom():
    from course_utils.architecture.capacity import workers_for

    # 600 turns/min = 10/s; a p95 of 3 s: 30 in flight at 100%, 43 at 70% utilisation.
    assert workers_for(600, 3.0, utilisation=1.0) == 30
    assert workers_for(600, 3.0) == 43
    assert workers_for(0, 3.0) == 1
    with pytest.raises(ValueError):
        workers_for(600, 3.0, utilisation=0)
