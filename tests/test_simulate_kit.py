"""The measuring kit of course_utils.concurrency.simulate, which lessons 03 and 07 share: one
simulator per run (simulator_session) and one virtual loop per variant (run_each / arun_each;
that arun_each leaves the caller's loop free is tested through asimulate_runs in test_concurrency.py)."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from course_utils import pricing
from course_utils.concurrency import classify_body, run_each, simulator_session
from course_utils.mock_provider.ratelimit import RateLimits

BODY = classify_body("I was charged twice for my invoice.")


def test_a_session_times_its_requests_from_its_start_and_bills_exactly():
    async def main():
        async with simulator_session(seed=0, api_key="sim-key-kit", limits=RateLimits(60, 10**6, 10**6)) as session:
            await asyncio.sleep(5.0)
            message = await session.client.messages.create(**BODY)
            elapsed = session.elapsed_s()
        return session, message, elapsed

    session, message, elapsed = run_each({"one": main})[0]
    rows = session.requests()
    assert list(rows["status"]) == [200]
    # virtual seconds from the session's start (the ledger stamps epoch floats: ~1e-7 s of rounding)
    assert 5.0 <= rows["arrival"][0] < rows["finish"][0] <= elapsed + 1e-6
    assert session.billed_usd() == pricing.cost(message.usage, BODY["model"]) > Decimal(0)


def test_a_session_closes_its_client_however_the_block_ends():
    async def main():
        with pytest.raises(RuntimeError, match="boom"):
            async with simulator_session(seed=0) as session:
                raise RuntimeError("boom")
        return session

    session = run_each({"fails": main})[0]
    assert session.client.is_closed()


def test_run_each_runs_variants_in_order_on_virtual_time_and_reports_progress():
    events = []

    def variant(label):
        async def run():
            await asyncio.sleep(3600)  # an hour of virtual time: free
            return label, random.random()

        return run

    results = run_each({"a": variant("a"), "b": variant("b")}, seed=7, on_progress=events.append)
    assert [label for label, _ in results] == ["a", "b"]
    assert results[0][1] == results[1][1] == random.Random(7).random()  # seeded before each variant
    assert [(e.done, e.total, e.latest) for e in events] == [(1, 2, results[0]), (2, 2, results[1])]
    unseeded = run_each({"a": variant("a"), "b": variant("b")})
    assert unseeded[0][1] != unseeded[1][1]
