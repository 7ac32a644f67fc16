"""Checks for lesson 03 (Async LLM calls): 3.1 ``bounded_map``, 3.2 ``collect_outcomes``,
3.3 ``run_workers`` and 3.4 ``dispatch``.

3.1 and 3.4 grade through the simulator's ledger: how many requests were really in flight at
once (overlap of arrival/finish), how many 429s, how close to the rate limit the requests came.
Every case runs on virtual time against a simulator with realistic latency, so durations and
overlaps are exact and the same on any machine.

Every exercise also gets an empty input, a check that its inputs are left as they were, and
seeded random workloads compared with the reference (the contract holds for all inputs).
3.4's key is limited the way the API may enforce a limit, over about a second (``burst_s=1``):
a dispatcher must pace, and cannot pass by spending a minute's quota at once.
"""

from __future__ import annotations

import asyncio
import copy
import random
from typing import Any

from ..content import text_of
from ..concurrency.fanout import max_in_flight
from ..concurrency.workload import classify_body, load_tickets
from ..mock_provider.ratelimit import RateLimits
from ..mock_provider import use_reply_scenario
from .framework import CaseFailed, Exercise, case_now, expect, expect_equal, expect_unchanged, track_tasks
from .sim import Probe, probe

BIG = 10**9


def latency_probe() -> Probe:
    """A probe with realistic latency and no rate limits, so requests in flight overlap as they would."""
    return probe(tier="unlimited", tag="check03")


def _tickets(n: int) -> list[str]:
    return list(load_tickets(n)["text"])


async def _await_answer(fn: Any, *args: Any, limit: float, what: str) -> Any:
    result = fn(*args)
    if not asyncio.iscoroutine(result) and not isinstance(result, asyncio.Future):
        raise CaseFailed(
            f"{what} returned {type(result).__name__}, not a coroutine",
            hint="Define the function with `async def` so callers can `await` it.",
        )
    scope = asyncio.timeout(limit)
    try:
        async with scope:
            return await result
    except TimeoutError:
        if not scope.expired():  # the answer's own TimeoutError: the case reports it as the answer's
            raise
        raise CaseFailed(f"{what} did not finish within {limit:g} s", hint=None) from None


async def _on_empty(fn: Any, *args: Any, what: str) -> Any:
    """Call the answer with an empty input; an exception is a failure of this case, named as such."""
    try:
        return await _await_answer(fn, *args, limit=30, what=f"{what} (empty input)")
    except (CaseFailed, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001 - the answer's own error on an empty input
        raise CaseFailed(
            f"{what} of an empty list raised {type(exc).__name__}: {exc}",
            expected="[]",
            got=f"{type(exc).__name__} raised",
            hint="An empty input is a normal input: return [] before doing anything that needs an item "
            "(asyncio.wait on an empty set raises ValueError; bodies[0] raises IndexError).",
        ) from None


def _still_running(created: list) -> list[asyncio.Task[Any]]:
    """The tasks of ``created`` (:func:`~.framework.track_tasks`, strong references) not done yet."""
    return [t for t in created if not t.done()]


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------------
# 3.1 bounded_map(fn, items, limit) -> list
# ---------------------------------------------------------------------------------------------
bounded_map = Exercise(
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


@bounded_map.case("returns fn(item) for every item, in input order")
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
    got = await _await_answer(fn, work, given, 4, limit=10, what="bounded_map")
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


@bounded_map.case("never more than `limit` requests in flight, and really concurrent (ledger)")
async def _in_flight(fn) -> None:
    p = latency_probe()
    client = p.async_client()
    tickets = _tickets(16)

    async def classify(ticket: str) -> str:
        message = await client.messages.create(**classify_body(ticket))
        return text_of(message)

    async with p:
        got = await _await_answer(fn, classify, tickets, 4, limit=20, what="bounded_map")
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


@bounded_map.case("an empty list gives [] without calling fn; random workloads match the reference")
async def _empty_and_random(fn) -> None:
    calls: list[Any] = []

    async def never(x: Any) -> Any:
        calls.append(x)
        return x

    got = await _on_empty(fn, never, [], 3, what="bounded_map")
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

        got = await _await_answer(fn, work, list(range(n)), limit, limit=10, what="bounded_map")
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


@bounded_map.case("keeps exactly `limit` calls running and refills a slot as soon as it frees")
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

    got = await _await_answer(fn, work, items, limit, limit=REFILL_HOLD_S + 10, what="bounded_map")
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


# ---------------------------------------------------------------------------------------------
# 3.2 collect_outcomes(fn, items, timeout) -> list[tuple[value, error]]
# ---------------------------------------------------------------------------------------------
collect_outcomes = Exercise(
    "3.2",
    "Error isolation: every result and every error",
    points=3,
    signature="await collect_outcomes(fn, items, timeout) -> list[(value, error)]",
    hints=[
        "Run the items concurrently, but catch each item's exception inside its own task, so one "
        "failure cannot throw away the others' results. Give each call its own timeout.",
        "async def one(x): try: return (await asyncio.wait_for(fn(x), timeout), None) except Exception as "
        "exc: return (None, exc); then return await asyncio.gather(*(one(x) for x in items)).",
    ],
)


def _pairs(got: Any, n: int) -> list[tuple[Any, Any]]:
    if not isinstance(got, list) or len(got) != n:
        count = len(got) if isinstance(got, list) else type(got).__name__
        raise CaseFailed(
            f"expected a list of {n} (value, error) pairs",
            expected=n,
            got=count,
            hint="Return one pair per item, failed items included: dropping a failure hides it.",
        )
    for pair in got:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise CaseFailed(
                "each entry must be a (value, error) tuple",
                got=pair,
                hint="Use (value, None) for a success and (None, exception) for a failure.",
            )
    return got


async def _answer_or_failure(fn: Any, *args: Any, limit: float) -> Any:
    try:
        return await _await_answer(fn, *args, limit=limit, what="collect_outcomes")
    except (CaseFailed, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001 - the classic mistake, named
        raise CaseFailed(
            f"collect_outcomes raised {type(exc).__name__}: {exc}",
            expected="a (value, error) pair for every item",
            got=f"{type(exc).__name__} raised",
            hint="Plain gather raises the first error and the finished results are lost; catch "
            "each item's exception inside its own task (or gather(..., return_exceptions=True)).",
        )


@collect_outcomes.case("keeps every value and every error, in input order")
async def _values_and_errors(fn) -> None:
    async def work(x: int) -> int:
        await asyncio.sleep(0.01 * (x % 3))
        if x % 4 == 1:
            raise ValueError(f"bad item {x}")
        return x + 100

    items = list(range(10))
    given = list(items)
    got = _pairs(await _answer_or_failure(fn, work, given, 5.0, limit=10), len(items))
    expect_unchanged(items, given, "items", "collect_outcomes")
    for x, (value, error) in zip(items, got):
        if x % 4 == 1:
            expect(
                isinstance(error, ValueError),
                f"item {x} failed but its error is {error!r}",
                expected="ValueError('bad item ...')",
                got=(value, error),
                hint="Don't swallow errors: return the exception object as the pair's second element.",
            )
            expect(value is None, f"item {x} failed, so its value should be None", got=(value, error))
        else:
            expect_equal(value, x + 100, f"item {x}: wrong value", hint="Successful items keep their value, in order.")
            expect(error is None, f"item {x} succeeded but has an error", got=(value, error))


@collect_outcomes.case("API errors stay with their item; nothing is sent twice (ledger)")
async def _api_errors(fn) -> None:
    import anthropic

    p = probe(tier="unlimited")
    client = p.async_client()
    tickets = _tickets(8)
    failing = {2, 5}

    async def classify(i: int) -> str:
        headers = {"x-mock-fault": "api_error"} if i in failing else None
        message = await client.messages.create(**classify_body(tickets[i]), extra_headers=headers)
        return text_of(message)

    async with p:
        got = _pairs(await _answer_or_failure(fn, classify, list(range(8)), 5.0, limit=15), 8)
    for i, (value, error) in enumerate(got):
        if i in failing:
            expect(
                isinstance(error, anthropic.APIStatusError),
                f"item {i} got a 500 but its error is {error!r}",
                expected="anthropic.InternalServerError",
                got=(value, error),
                hint="Keep the exception the call raised: callers decide from its type whether to retry.",
            )
        else:
            expect(
                isinstance(value, str) and error is None,
                f"item {i} succeeded but its result is missing",
                expected="(label, None)",
                got=(value, error),
                hint="A failure elsewhere must not cost the successful items their results.",
            )
    sent = len(p.requests())
    expect(
        sent == 8,
        f"the ledger shows {sent} requests for 8 items",
        expected=8,
        got=sent,
        hint="Call fn once per item: a result already paid for should not be requested again.",
    )


@collect_outcomes.case("a slow item times out without holding up the rest; items run concurrently")
async def _timeout(fn) -> None:
    running = peak = 0

    async def work(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(3.0 if x == 3 else 0.05)
            return x
        finally:
            running -= 1

    started = case_now()
    got = _pairs(await _answer_or_failure(fn, work, list(range(6)), 0.3, limit=10), 6)
    elapsed = case_now() - started
    value, error = got[3]
    expect(
        isinstance(error, (TimeoutError, asyncio.TimeoutError)),
        "the slow item did not time out",
        expected="(None, TimeoutError())",
        got=(value, error),
        hint="Wrap each call in asyncio.wait_for(fn(x), timeout) (or `async with asyncio.timeout(...)`).",
    )
    expect(
        elapsed < 2.0,
        f"collect_outcomes took {elapsed:.1f} s with timeout=0.3",
        expected="< 2 s",
        got=f"{elapsed:.1f} s",
        hint="Run the items concurrently and give each one its own timeout.",
    )
    expect([v for v, _ in got[:3]] == [0, 1, 2], "the fast items lost their values", got=got)
    # Counted, not timed: a loop that awaits one wait_for after another also beats a loose time limit.
    expect(
        peak >= 2,
        "the items ran one at a time (never more than 1 running)",
        expected="several at once",
        got=peak,
        hint="Awaiting each item in a loop is sequential: a slow item then delays all the items "
        "after it. Start every item as its own task (gather / TaskGroup).",
    )


@collect_outcomes.case("an empty list gives []; random failures and timeouts stay with their items")
async def _empty_and_random_outcomes(fn) -> None:
    async def unused(x: Any) -> Any:
        raise AssertionError("not called")

    got = await _on_empty(fn, unused, [], 1.0, what="collect_outcomes")
    expect(
        got == [] and isinstance(got, list),
        "collect_outcomes of an empty list should be []",
        expected=[],
        got=got,
        hint="With no items, return an empty list (asyncio.wait on an empty set raises ValueError).",
    )
    rng = random.Random(32)
    for trial in range(5):
        n = rng.randint(1, 10)
        kinds = [rng.choice(["ok", "ok", "error", "slow"]) for _ in range(n)]

        async def work(i: int) -> int:
            await asyncio.sleep(0.5 if kinds[i] == "slow" else rng.choice([0.0, 0.01, 0.02]))
            if kinds[i] == "error":
                raise KeyError(i)
            return i * 7

        got = _pairs(await _answer_or_failure(fn, work, list(range(n)), 0.2, limit=10), n)
        for i, (value, error) in enumerate(got):
            if kinds[i] == "ok":
                expect(
                    value == i * 7 and error is None,
                    f"item {i} of {n} succeeded, but its pair is wrong",
                    expected=(i * 7, None),
                    got=(value, error),
                    hint="Pairs go in input order: (value, None) for a success.",
                )
            else:
                kind = KeyError if kinds[i] == "error" else (TimeoutError, asyncio.TimeoutError)
                expect(
                    value is None and isinstance(error, kind),
                    f"item {i} of {n} "
                    f"{'raised KeyError' if kinds[i] == 'error' else 'timed out'}, but its pair is wrong",
                    expected=f"(None, {'KeyError' if kinds[i] == 'error' else 'TimeoutError'}(...))",
                    got=(value, error),
                    hint="(None, exception) for a failure, in the failed item's position.",
                )


# ---------------------------------------------------------------------------------------------
# 3.3 run_workers(fn, items, workers) -> list
# ---------------------------------------------------------------------------------------------
run_workers = Exercise(
    "3.3",
    "A worker pool over a queue",
    points=3,
    signature="await run_workers(fn, items, workers) -> list",
    hints=[
        "Put (index, item) pairs on an asyncio.Queue, start exactly `workers` tasks that loop taking from "
        "it, and stop them when the queue is empty: no task may be left waiting after you return.",
        "Each worker: while True: i, x = await queue.get(); try: results[i] = await fn(x) except Exception "
        "as exc: results[i] = exc finally: queue.task_done(). Then await queue.join(), cancel the workers "
        "and await asyncio.gather(*workers, return_exceptions=True) (or send one stop marker per worker).",
    ],
)


class _Gauge:
    """A job that counts how many run at once and which tasks run them.

    Jobs take different times (item ``x`` sleeps ``0.01 * (1 + 3x mod 5)``), so they finish in
    another order than they were given: results in completion order are visible."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.now = self.peak = 0
        self.fail = fail or set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.finished: list[int] = []

    async def __call__(self, x: int) -> int:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.01 * (1 + (3 * x) % 5))
            if x in self.fail:
                raise ValueError(f"bad item {x}")
            return x * 2
        finally:
            self.now -= 1
            self.finished.append(x)


@run_workers.case("exactly `workers` jobs at a time, results in input order")
async def _pool(fn) -> None:
    gauge = _Gauge()
    given = list(range(20))
    got = await _await_answer(fn, gauge, given, 3, limit=10, what="run_workers")
    expect_unchanged(list(range(20)), given, "items", "run_workers")
    expected = [x * 2 for x in range(20)]
    if isinstance(got, list) and sorted(got, key=str) == sorted(expected, key=str) and got != expected:
        raise CaseFailed(
            "the results are in the order the jobs finished, not the order of the items",
            expected=expected,
            got=got,
            hint="Jobs take different times; put (index, item) on the queue and store each result at results[index].",
        )
    expect_equal(got, expected, "wrong results", hint="Store each result at its item's index.")
    expect(
        gauge.peak <= 3,
        f"{gauge.peak} jobs ran at once with workers=3",
        expected="3",
        got=gauge.peak,
        hint="Start exactly `workers` tasks that take jobs from the queue, not one task per item.",
    )
    expect(
        gauge.peak == 3,
        f"only {gauge.peak} job(s) ran at once with workers=3",
        expected="3",
        got=gauge.peak,
        hint="Start all the workers before waiting for the queue to empty.",
    )
    expect(
        len(gauge.tasks) == 3,
        f"{len(gauge.tasks)} different tasks ran the 20 jobs with workers=3",
        expected="exactly 3 worker tasks",
        got=len(gauge.tasks),
        hint="A semaphore with one task per item bounds concurrency but is not a pool: start exactly "
        "`workers` tasks that each loop taking items from the queue and await fn(item) themselves.",
    )


@run_workers.case("clean shutdown: no worker left pending")
async def _shutdown(fn) -> None:
    created = track_tasks()
    await _await_answer(fn, _Gauge(), list(range(8)), 4, limit=10, what="run_workers")
    await _settle()
    left = _still_running(created)
    expect(
        not left,
        f"{len(left)} task(s) were still pending after run_workers returned",
        expected="0 pending tasks",
        got=len(left),
        hint="Workers blocked in `await queue.get()` wait forever: cancel them (and await them) or send each "
        "one a stop marker once the queue is drained.",
    )


@run_workers.case("an empty list, and more workers than items: results, and no worker left pending")
async def _edges(fn) -> None:
    created = track_tasks()
    try:
        got = await _on_empty(fn, _Gauge(), [], 3, what="run_workers")
        expect(
            got == [] and isinstance(got, list),
            "run_workers of an empty list should be []",
            expected=[],
            got=got,
            hint="With nothing queued, the workers have nothing to do: return [] (and stop them).",
        )
        gauge = _Gauge()
        got = await _await_answer(fn, gauge, [4, 1], 5, limit=5, what="run_workers (2 items, 5 workers)")
        expect_equal(
            got, [8, 2], "wrong results for 2 items and 5 workers", hint="Store each result at its item's index."
        )
        await _settle()
        left = _still_running(created)
        expect(
            not left,
            f"{len(left)} task(s) were still pending after run_workers returned (2 items, 5 workers)",
            expected="0 pending tasks",
            got=len(left),
            hint="Workers that found no job still wait in `await queue.get()`: stop every worker, not only the "
            "ones that ran a job.",
        )
    finally:
        for task in _still_running(created):
            task.cancel()


@run_workers.case("a failing job does not stop the pool")
async def _failure(fn) -> None:
    gauge = _Gauge(fail={2, 7})
    created = track_tasks()
    try:
        got = await _await_answer(fn, gauge, list(range(10)), 3, limit=5, what="run_workers")
    except NotImplementedError:
        raise
    except CaseFailed as failed:
        raise CaseFailed(
            f"{failed.message} when two jobs raised",
            hint="A worker that dies on an exception never calls task_done(), so queue.join() waits "
            "forever: catch the job's exception inside the worker and store it.",
        ) from None
    except Exception as exc:
        raise CaseFailed(
            f"run_workers raised {type(exc).__name__}: {exc}",
            hint="Catch each job's exception inside the worker and store it as that job's result.",
        )
    finally:
        for task in _still_running(created):
            task.cancel()
    expect(isinstance(got, list) and len(got) == 10, "expected 10 results", got=got)
    expect(
        isinstance(got[2], ValueError) and isinstance(got[7], ValueError),
        "a failed job's slot should hold its exception",
        expected="ValueError at indexes 2 and 7",
        got=(got[2], got[7]),
        hint="results[i] = exc in the worker's except clause.",
    )
    expect(got[3] == 6 and got[9] == 18, "the other jobs' results are missing", got=got)


# ---------------------------------------------------------------------------------------------
# 3.4 dispatch(client, bodies, rpm) -> list of messages
# ---------------------------------------------------------------------------------------------
DISPATCH_RPM = 600
DISPATCH_N = 100
"""The check's workload: 100 requests on a key limited to 600 RPM, enforced over one second (a burst
of at most 10, then 10 per second), so pacing them takes about 10 s (virtual). At 10 requests a
second with about 0.3 s of latency each, requests must overlap: one at a time reaches a third of it."""
MIN_EFFICIENCY = 0.9
"""The least share of the allowed rate a dispatcher must reach: ``(n - 1) / (rpm / 60)`` seconds is
what pacing at exactly the limit takes from the first request to the last."""

dispatch = Exercise(
    "3.4",
    "A dispatcher that paces at the limit, never over it",
    points=4,
    signature="await dispatch(client, bodies, rpm) -> list",
    time_limit=60,
    hints=[
        "Don't count on a burst: the provider may enforce `rpm` over about a second. Keep a client-side "
        "token bucket that holds one request and refills a little below rpm/60 per second (headroom), take "
        "a token before each request, and keep several requests in flight. If a 429 still comes, wait its "
        "retry-after plus a random jitter (course_utils.retries.retry_delay) and send that request again.",
        "bucket = TokenBucket(1, 0.95 * rpm / 60); async def send(body): while True: await bucket.acquire(1); "
        "try: return await client.messages.create(**body) except anthropic.RateLimitError as exc: await "
        "asyncio.sleep(retry_delay(1, retry_after_s(exc))); then return await "
        "bounded_gather(send, bodies, limit=32) (results in input order).",
    ],
)


def _rate_probe(rpm: int) -> Probe:
    # Short-interval enforcement, stated here so the check does not depend on the simulator's default.
    return probe(tier=RateLimits(rpm, BIG, BIG, burst_s=1.0))


def _tagged_bodies(p: Probe, n: int) -> tuple[list[dict[str, Any]], list[str]]:
    """``n`` classification bodies whose replies name their ticket, so order and content can be checked."""
    bodies, replies = [], []
    for i, text in enumerate(_tickets(n)):
        tag = f"[ticket {i:03d}]"
        p.script(tag, f"reply {i:03d}")
        bodies.append(classify_body(f"{tag} {text}"))
        replies.append(f"reply {i:03d}")
    return bodies, replies


def _result_text(result: Any) -> Any:
    try:
        return text_of(result).strip()
    except Exception:  # noqa: BLE001 - anything that is not a Message
        return repr(result)[:60]


async def _run_dispatch(fn: Any, p: Probe, bodies: list[dict[str, Any]]) -> Any:
    """Run the answer on ``p``'s key; failures name what the ledger shows."""
    import anthropic

    client = p.async_client()
    async with p:
        try:
            # Virtual seconds cost nothing: a slow answer finishes and is told how slow, rather than cut off.
            return await _await_answer(fn, client, bodies, DISPATCH_RPM, limit=600.0, what="dispatch")
        except anthropic.RateLimitError:
            rows = p.requests()
            raise CaseFailed(
                f"dispatch raised RateLimitError; the ledger shows {int((rows['status'] == 429).sum())} x 429",
                expected="0 x 429",
                got=f"{int((rows['status'] == 429).sum())} x 429",
                hint="The SDK's own retries don't know the limit: they retry into the same wall. Take a "
                "token from a client-side bucket before each request instead.",
            ) from None
        except CaseFailed as failed:
            rows = p.requests()
            raise CaseFailed(
                f"{failed.message}; the ledger shows {int((rows['status'] == 429).sum())} x 429 and "
                f"{int((rows['status'] == 200).sum())} of {len(bodies)} done",
                hint="Send as soon as the bucket has a token, several requests in flight; a fixed pause "
                "after a 429 (or one request at a time) is too slow.",
            ) from None


@dispatch.case(
    f"{DISPATCH_N} requests at {DISPATCH_RPM} RPM enforced per second: no 429, every body once, "
    "at least 90% of the allowed rate (ledger)"
)
async def _full_rate(fn) -> None:
    p = _rate_probe(DISPATCH_RPM)
    n = DISPATCH_N
    bodies = [classify_body(t) for t in _tickets(n)]
    await _run_dispatch(fn, p, bodies)
    rows = p.requests()
    refused = int((rows["status"] == 429).sum())
    expect(
        refused == 0,
        f"the provider answered {refused} request(s) with 429",
        expected="0 x 429",
        got=refused,
        hint="The provider enforces the limit over about a second: a burst bigger than rpm/60 is refused even "
        "under the per-minute limit. Pace from the first request: a bucket of one request, refilled a "
        "little below rpm/60 per second.",
    )
    ok = rows[rows["status"] == 200]
    expect(
        len(ok) == n,
        f"{len(ok)} requests succeeded for {n} bodies",
        expected=n,
        got=len(ok),
        hint="Every body must be sent and succeed once.",
    )
    # Pacing at exactly the limit takes (n - 1) / rate from the first arrival to the last.
    ideal = (n - 1) / (DISPATCH_RPM / 60)
    span = float(ok["arrival"].max() - ok["arrival"].min())
    efficiency = ideal / span if span > 0 else 1.0
    expect(
        efficiency >= MIN_EFFICIENCY,
        f"the last request went out after {span:.1f} s; pacing at the limit takes {ideal:.1f} s "
        f"({efficiency:.0%} of the allowed rate)",
        expected=f"at least {MIN_EFFICIENCY:.0%} of the allowed rate",
        got=f"{efficiency:.0%}",
        hint="Keep several requests in flight and send each as soon as the bucket has a token; keep the "
        "headroom small (about 5%), and don't add pauses the bucket does not ask for.",
    )


@dispatch.case("the message of each body, in input order; the bodies are left unchanged")
async def _order_and_content(fn) -> None:
    p = _rate_probe(DISPATCH_RPM)
    n = 30
    bodies, replies = _tagged_bodies(p, n)
    original = copy.deepcopy(bodies)
    # The verdict compares reply texts: replies are plain here whatever reply scenario
    # (thinking blocks, refusals) the environment asks the simulator for.
    with use_reply_scenario("plain"):
        got = await _run_dispatch(fn, p, bodies)
    expect(
        isinstance(got, list) and len(got) == n,
        f"expected a list of {n} messages",
        expected=n,
        got=len(got) if isinstance(got, list) else type(got).__name__,
        hint="Return one message per body.",
    )
    texts = [_result_text(r) for r in got]
    if sorted(texts) == sorted(replies) and texts != replies:
        first = next(i for i, (a, b) in enumerate(zip(texts, replies)) if a != b)
        raise CaseFailed(
            f"the messages are not in input order: result {first} answers another body",
            expected=replies[first],
            got=texts[first],
            hint="Collect the messages by index (gather / bounded_gather keep the order), not as they finish.",
        )
    wrong = [i for i, (a, b) in enumerate(zip(texts, replies)) if a != b]
    expect(
        not wrong,
        f"{len(wrong)} of {n} results are not the message for their body",
        expected=replies[wrong[0]] if wrong else None,
        got=texts[wrong[0]] if wrong else None,
        hint="Return the Message objects client.messages.create gave, one per body, in input order.",
    )
    expect_unchanged(original, bodies, "bodies", "dispatch")


@dispatch.case("an empty list of bodies: [] and no request")
async def _empty(fn) -> None:
    p = _rate_probe(DISPATCH_RPM)
    async with p:
        client = p.async_client()
        got = await _on_empty(fn, client, [], DISPATCH_RPM, what="dispatch")
    expect(
        got == [] and isinstance(got, list),
        "dispatch of no bodies should return []",
        expected=[],
        got=got,
        hint="Nothing to send: return an empty list (and don't index bodies[0]).",
    )
    sent = len(p.requests())
    expect(sent == 0, f"dispatch sent {sent} request(s) for no bodies", expected=0, got=sent)


EXERCISES = [bounded_map, collect_outcomes, run_workers, dispatch]
