"""Checks for exercise 3.1 ``bounded_map(fn, items, limit)``: results in input order, at most ``limit``
requests in flight and really concurrent (from the ledger's arrival and finish times), a slot refilled
as soon as it frees, an empty input, and seeded random workloads."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from ...content import text_of
from ...concurrency.fanout import max_in_flight
from ...concurrency.workload import classify_body
from ..framework import CaseFailed, Exercise, expect, expect_equal, expect_unchanged
from ..sim import Probe, probe
from .common import await_answer, on_empty, sample_tickets


def latency_probe() -> Probe:
    """A probe with realistic latency and no rate limits, so requests in flight overlap as they would."""
    return probe(tier="unlimited", tag="check03")


# ---------------------------------------------------------------------------------------------
# 3.1 bounded_map(fn, items, limit) -> list
# ---------------------------------------------------------------------------------------------
fanout = Exercise(
    "3.1",
    "Bounded fan-out that keeps the order",
    points=3,
    signature="await bounded_map(fn, items, limit) -> list",
    hints=[
        "Start one task per item but let at most `limit` of them call fn at once (an asyncio.Semaphore), "
        "and write each result into its item's slot so the order survives.",
        "sem = asyncio.Semaphore(limit); results = [None] * len(items); async def one(i, x): async with sem: "
        "results[i] = await fn(x); then await asyncio.gather(*(one(i, x) for i, x in enumerate(items))) "
        "and return results.",
    ],
)


@fanout.case("returns fn(item) for every item, in input order")
async def _order(fn) -> None:
    items = list(range(12))
    rng = random.Random(3)
    delays = {i: rng.uniform(0.0, 0.05) for i in items}  # finish order differs from input order
    calls: list[int] = []

    async def work(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(delays[x])
        return x * x

    given = list(items)
    got = await await_answer(fn, work, given, 4, limit=10, what="bounded_map")
    expect_unchanged(items, given, "items", "bounded_map")
    if not isinstance(got, list):
        raise CaseFailed(
            "not a list",
            expected="a list of results",
            got=type(got).__name__,
            hint="Return a list with one result per item.",
        )
    if sorted(got) == sorted(x * x for x in items) and got != [x * x for x in items]:
        raise CaseFailed(
            "the results are in completion order, not input order",
            expected=[x * x for x in items],
            got=got,
            hint="asyncio.as_completed yields in finishing order; store each result at "
            "its item's index instead (or use gather, which keeps the order).",
        )
    expect_equal(got, [x * x for x in items], "wrong results", hint="Return fn(item) for each item, in order.")
    expect(
        sorted(calls) == items,
        "fn was not called exactly once per item",
        expected=items,
        got=sorted(calls),
        hint="Call fn once per item; retries are not this function's job.",
    )


@fanout.case("never more than `limit` requests in flight, and really concurrent (ledger)")
async def _in_flight(fn) -> None:
    p = latency_probe()
    client = p.async_client()
    tickets = sample_tickets(16)

    async def classify(ticket: str) -> str:
        message = await client.messages.create(**classify_body(ticket))
        return text_of(message)

    async with p:
        got = await await_answer(fn, classify, tickets, 4, limit=20, what="bounded_map")
    rows = p.requests()
    expect(
        len(rows) == len(tickets),
        f"the ledger shows {len(rows)} requests for {len(tickets)} tickets",
        expected=len(tickets),
        got=len(rows),
        hint="Send exactly one request per item.",
    )
    peak = max_in_flight(zip(rows["arrival"], rows["finish"]))
    expect(
        peak <= 4,
        f"up to {peak} requests were in flight at once with limit=4",
        expected="at most 4",
        got=peak,
        hint="Unbounded gather starts every request at once; acquire a semaphore (or use a fixed pool "
        "of `limit` workers) around each call.",
    )
    expect(
        peak >= 2,
        "the requests ran one at a time (never more than 1 in flight)",
        expected="up to 4 at once",
        got=peak,
        hint="Awaiting each call in a loop is sequential; start tasks (gather / TaskGroup) so that "
        "`limit` requests overlap.",
    )
    expect(
        isinstance(got, list) and len(got) == len(tickets),
        "one label per ticket expected",
        expected=len(tickets),
        got=got,
    )


@fanout.case("an empty list gives [] without calling fn; random workloads match the reference")
async def _empty_and_random(fn) -> None:
    calls: list[Any] = []

    async def never(x: Any) -> Any:
        calls.append(x)
        return x

    got = await on_empty(fn, never, [], 3, what="bounded_map")
    expect(
        got == [] and isinstance(got, list),
        "bounded_map of an empty list should be []",
        expected=[],
        got=got,
        hint="With no items there is nothing to run: return an empty list (asyncio.wait on an empty set "
        "raises ValueError; gather of nothing returns []).",
    )
    expect(not calls, "fn was called for an empty list", expected="no calls", got=calls)
    rng = random.Random(31)
    for trial in range(6):  # seeded: the same workloads on every machine
        n, limit = rng.randint(1, 14), rng.randint(1, 6)
        delays = [rng.choice([0.0, 0.01, 0.03, 0.05]) for _ in range(n)]
        values = [rng.randint(-50, 50) for _ in range(n)]  # results not sorted by input position
        running = peak = 0

        async def work(i: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            try:
                await asyncio.sleep(delays[i])
                return values[i]
            finally:
                running -= 1

        got = await await_answer(fn, work, list(range(n)), limit, limit=10, what="bounded_map")
        expect_equal(
            got,
            values,
            f"wrong results for {n} items with limit={limit}",
            hint="One result per item, at the item's position, whatever order the calls finish in.",
        )
        expect(
            peak <= limit,
            f"{peak} calls ran at once with limit={limit} ({n} items)",
            expected=f"at most {limit}",
            got=peak,
            hint="Acquire a semaphore of `limit` around each call.",
        )
        expect(
            peak == min(limit, n),
            f"at most {peak} of {n} calls ran at once with limit={limit}",
            expected=min(limit, n),
            got=peak,
            hint="Start every item at once behind a semaphore of `limit`: with fewer items than the limit, "
            "all of them run together.",
        )


REFILL_HOLD_S = 2.0
"""How long the first call of the refill case waits for a call beyond the first ``limit`` to start.

A bounded map refills a slot as soon as a fast call ends (a few tens of milliseconds); batches of
``limit`` start nothing new while the batch's slowest call runs, so they wait the whole hold."""


@fanout.case("keeps exactly `limit` calls running and refills a slot as soon as it frees")
async def _refill(fn) -> None:
    limit, items = 4, list(range(12))
    running: set[int] = set()
    started: list[int] = []
    peak = 0
    more_than_limit_started = asyncio.Event()
    refilled: list[bool] = []

    async def work(x: int) -> int:
        # Structure, not timing: item 0 is slow until a call beyond the first `limit` starts,
        # which a bounded map does as soon as one of the fast calls 1..3 ends.
        nonlocal peak
        started.append(x)
        running.add(x)
        peak = max(peak, len(running))
        if len(started) > limit:
            more_than_limit_started.set()
        try:
            if x == 0:
                try:
                    await asyncio.wait_for(more_than_limit_started.wait(), REFILL_HOLD_S)
                except asyncio.TimeoutError:
                    pass
                refilled.append(more_than_limit_started.is_set())
            else:
                await asyncio.sleep(0.02)
        finally:
            running.discard(x)
        return x * 3

    got = await await_answer(fn, work, items, limit, limit=REFILL_HOLD_S + 10, what="bounded_map")
    expect_equal(got, [x * 3 for x in items], "wrong results", hint="Return fn(item) for each item, in order.")
    expect(
        peak <= limit,
        f"{peak} calls ran at once with limit={limit}",
        expected=f"at most {limit}",
        got=peak,
        hint="Acquire a semaphore of `limit` around each call.",
    )
    expect(
        peak == limit,
        f"only {peak} calls ran at once with limit={limit}",
        expected=limit,
        got=peak,
        hint="Use the whole limit: asyncio.Semaphore(limit), not a smaller one; every slot left idle "
        "is throughput lost.",
    )
    expect(
        bool(refilled) and refilled[0],
        f"while the first call of a batch was slow, no new call started: {len(started)} of {len(items)} "
        f"had started after {REFILL_HOLD_S:g} s",
        expected=f"a new call as soon as one of the {limit} running calls ends",
        got="a batch waiting for its slowest call",
        hint="Gathering batches of `limit` makes every batch wait for its slowest call. Start one task per "
        "item and let a semaphore admit the next call the moment any running call ends.",
    )
