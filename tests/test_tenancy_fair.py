"""Deficit round robin: weighted shares, no starvation, and the scheduler in front of a sender."""

from __future__ import annotations

import asyncio
import collections
import random
from collections import Counter

import pytest

from course_utils.clock import SYSTEM_CLOCK, run_virtual
from course_utils.tenancy import FairQueue, FairScheduler


def _served_tokens(q: FairQueue, n: int) -> Counter:
    served: Counter = Counter()
    for _ in range(n):
        e = q.pop()
        served[e.tenant_id] += e.size
    return served


def test_shares_follow_the_weights_whatever_the_request_sizes():
    rng = random.Random(3)
    q: FairQueue = FairQueue({"a": 1, "b": 2, "c": 4}, quantum=500)
    for t in "abc":
        for i in range(2000):
            q.push(t, i, rng.choice([100, 400, 1600]) if t != "c" else 50)
    served = _served_tokens(q, 1500)
    total = sum(served.values())
    for t, w in {"a": 1, "b": 2, "c": 4}.items():
        assert served[t] / total == pytest.approx(w / 7, rel=0.10)


def test_a_flooding_tenant_does_not_delay_a_quiet_one():
    q: FairQueue = FairQueue(quantum=1000)
    for i in range(500):
        q.push("flood", i, 1000)
    q.push("quiet", "hello", 1000)
    order = [q.pop().tenant_id for _ in range(3)]
    assert "quiet" in order[:2]


def test_every_tenant_with_work_is_served_each_round():
    q: FairQueue = FairQueue({"big": 100, "small": 1}, quantum=100)
    for i in range(1000):
        q.push("big", i, 100)
    q.push("small", "x", 100)
    order = [q.pop().tenant_id for _ in range(102)]
    assert "small" in order  # served within one round of the heavy tenant


def test_a_request_larger_than_the_quantum_waits_rounds_but_goes():
    q: FairQueue = FairQueue(quantum=100)
    q.push("a", "big", 450)
    for i in range(10):
        q.push("b", i, 100)
    order = [q.pop().item for _ in range(11)]
    assert "big" in order and order.index("big") <= 5


def test_fifo_within_a_tenant_and_empty_pop():
    q: FairQueue = FairQueue()
    for i in range(5):
        q.push("a", i, 10)
    assert [q.pop().item for _ in range(5)] == list(range(5))
    with pytest.raises(IndexError):
        q.pop()
    with pytest.raises(ValueError):
        q.push("a", 1, 0)
    with pytest.raises(ValueError):
        FairQueue({"a": 0})


def test_scheduler_releases_in_fair_order_and_returns_results():
    clock = SYSTEM_CLOCK  # run_virtual's loop: its time is virtual

    async def send(body):
        await clock.sleep(1.0)
        return body["id"]

    async def main():
        async with FairScheduler(send, max_in_flight=1, size=lambda b: 100, quantum=100, clock=clock) as sched:
            flood = [asyncio.ensure_future(sched.submit("flood", {"id": f"f{i}"})) for i in range(50)]
            await asyncio.sleep(0)
            quiet = await sched.submit("quiet", {"id": "q0"})
            results = await asyncio.gather(*flood)
        return quiet, results, sched

    quiet, results, sched = run_virtual(main())
    assert quiet == "q0" and results == [f"f{i}" for i in range(50)]
    assert sched.order.index("quiet") <= 2
    assert max(sched.waits["quiet"]) <= 2.0  # virtual seconds: two requests ahead at most


def test_scheduler_passes_errors_to_the_submitter():
    async def send(body):
        raise RuntimeError("provider down")

    async def main():
        async with FairScheduler(send) as sched:
            with pytest.raises(RuntimeError, match="provider down"):
                await sched.submit("a", {"model": "m", "max_tokens": 5, "messages": []})

    run_virtual(main())


def test_submit_needs_a_running_scheduler():
    async def main():
        with pytest.raises(RuntimeError, match="not running"):
            await FairScheduler(lambda b: None).submit("a", {"max_tokens": 1, "messages": []})

    run_virtual(main())


def test_huge_requests_cost_no_busy_loop_and_keep_the_order():
    q: FairQueue = FairQueue({"a": 1, "b": 3}, quantum=1)
    q.push("a", "a-huge", 10**9)
    q.push("b", "b-huge", 10**9)
    q.push("b", "b-small", 1)
    # b earns 3x the credit per round, so its huge request fits first, then a's, then b's small one.
    assert [q.pop().item for _ in range(3)] == ["b-huge", "b-small", "a-huge"]


def _naive_drr_order(weights, quantum, items):
    """Textbook DRR that visits every round, even the ones that send nothing."""
    queues = {t: collections.deque() for t in weights}
    active, deficit = collections.deque(), dict.fromkeys(weights, 0.0)
    for t, i, c in items:
        if not queues[t]:
            active.append(t)
        queues[t].append((i, c))
    out = []
    while active:
        t = active[0]
        deficit[t] += quantum * weights[t]
        while queues[t] and queues[t][0][1] <= deficit[t] + 1e-9:
            i, c = queues[t].popleft()
            deficit[t] -= c
            out.append(i)
        active.rotate(-1)
        if not queues[t]:
            deficit[t] = 0.0
            active.remove(t)
    return out


def test_skipping_empty_rounds_gives_the_textbook_order():
    rng = random.Random(5)
    weights = {"a": 1, "b": 2, "c": 3}
    items = [(rng.choice("abc"), i, rng.choice([50, 300, 2000])) for i in range(300)]
    q: FairQueue = FairQueue(weights, quantum=7)  # most rounds send nothing: they are skipped
    for t, i, c in items:
        q.push(t, i, c)
    assert [q.pop().item for _ in range(len(items))] == _naive_drr_order(weights, 7, items)


def test_closing_the_scheduler_cancels_what_is_still_queued():
    clock = SYSTEM_CLOCK  # run_virtual's loop: its time is virtual
    sent = []

    async def send(body):
        sent.append(body["id"])
        await clock.sleep(10.0)
        return body["id"]

    async def main():
        sched = FairScheduler(send, max_in_flight=1, size=lambda b: 1, clock=clock).start()
        waiting = [asyncio.ensure_future(sched.submit("a", {"id": i})) for i in range(5)]
        await clock.sleep(1.0)
        await sched.aclose()
        return await asyncio.gather(*waiting, return_exceptions=True)

    results = run_virtual(main())
    assert sent == [0]  # one was in flight; the other four never reached the provider
    assert all(isinstance(r, asyncio.CancelledError) for r in results[1:])
