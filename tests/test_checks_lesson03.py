"""Lesson 03 checks: the solutions pass, plausible wrong answers are rejected, stubs are not attempted."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

import course_utils.checks as checks
from _checks import assert_rejected, assert_not_attempted
from course_utils.concurrency import RateLimitedDispatcher, TokenBucket, bounded_gather
from course_utils.mock_provider.ratelimit import RateLimits


# ----- 3.1 ------------------------------------------------------------------------------------
async def bounded_map(fn, items, limit):
    slots = asyncio.Semaphore(limit)

    async def one(item):
        async with slots:
            return await fn(item)

    return await asyncio.gather(*(one(item) for item in items))


async def bounded_map_reference(fn, items, limit):
    return await bounded_gather(fn, items, limit=limit)


async def unbounded_gather(fn, items, limit):
    return await asyncio.gather(*(fn(item) for item in items))


async def sequential(fn, items, limit):
    return [await fn(item) for item in items]


async def completion_order(fn, items, limit):
    slots = asyncio.Semaphore(limit)

    async def one(item):
        async with slots:
            return await fn(item)

    return [await f for f in asyncio.as_completed([one(item) for item in items])]


async def batches_of_limit_plus_one(fn, items, limit):
    out = []
    for start in range(0, len(items), limit + 2):
        out.extend(await asyncio.gather(*(fn(item) for item in items[start:start + limit + 2])))
    return out


async def half_the_limit(fn, items, limit):
    """Bounded, ordered, concurrent, but a semaphore of limit // 2: half the throughput it may have."""
    slots = asyncio.Semaphore(max(2, limit // 2))

    async def one(item):
        async with slots:
            return await fn(item)

    return await asyncio.gather(*(one(item) for item in items))


async def batches_of_limit(fn, items, limit):
    """Never more than `limit` in flight, but each batch waits for its slowest call."""
    out = []
    items = list(items)
    for start in range(0, len(items), limit):
        out.extend(await asyncio.gather(*(fn(item) for item in items[start:start + limit])))
    return out


async def stub_3_1(fn, items, limit):
    raise NotImplementedError("Exercise 3.1: Use a semaphore.")


@pytest.mark.parametrize("answer", [bounded_map, bounded_map_reference])
def test_3_1_solution_passes(answer):
    result = checks.check("3.1", answer)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (unbounded_gather, "requests were in flight at once with limit=4"),
        (batches_of_limit_plus_one, "requests were in flight at once with limit=4"),
        (sequential, "one at a time"),
        (completion_order, "completion order"),
        (half_the_limit, "only 2 calls ran at once with limit=4"),
        (batches_of_limit, "no new call started"),
    ],
)
def test_3_1_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("3.1", answer, phrase)


def test_3_1_stub_is_not_attempted():
    assert_not_attempted("3.1", stub_3_1)


# ----- 3.2 ------------------------------------------------------------------------------------
async def collect_outcomes(fn, items, timeout):
    async def one(item):
        try:
            return (await asyncio.wait_for(fn(item), timeout), None)
        except Exception as exc:
            return (None, exc)

    return await asyncio.gather(*(one(item) for item in items))


async def plain_gather(fn, items, timeout):
    values = await asyncio.gather(*(asyncio.wait_for(fn(item), timeout) for item in items))
    return [(v, None) for v in values]


async def swallows_errors(fn, items, timeout):
    async def one(item):
        try:
            return (await asyncio.wait_for(fn(item), timeout), None)
        except Exception:
            return (None, None)

    return await asyncio.gather(*(one(item) for item in items))


async def drops_failures(fn, items, timeout):
    return [pair for pair in await collect_outcomes(fn, items, timeout) if pair[1] is None]


async def no_timeout(fn, items, timeout):
    async def one(item):
        try:
            return (await fn(item), None)
        except Exception as exc:
            return (None, exc)

    return await asyncio.gather(*(one(item) for item in items))


async def retries_failures(fn, items, timeout):
    async def one(item):
        for _ in range(2):
            try:
                return (await asyncio.wait_for(fn(item), timeout), None)
            except Exception as exc:
                error = exc
        return (None, error)

    return await asyncio.gather(*(one(item) for item in items))


async def sequential_with_timeouts(fn, items, timeout):
    """Every pair right, each item with its own timeout, but one item at a time."""
    out = []
    for item in items:
        try:
            out.append((await asyncio.wait_for(fn(item), timeout), None))
        except Exception as exc:
            out.append((None, exc))
    return out


async def stub_3_2(fn, items, timeout):
    raise NotImplementedError("Exercise 3.2: Catch each item's error.")


def test_3_2_solution_passes():
    result = checks.check("3.2", collect_outcomes)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (plain_gather, "Plain gather raises the first error"),
        (swallows_errors, "Don't swallow errors"),
        (drops_failures, "expected a list of 10 (value, error) pairs"),
        (no_timeout, "the slow item did not time out"),
        (retries_failures, "the ledger shows 10 requests for 8 items"),
        (sequential_with_timeouts, "the items ran one at a time"),
    ],
)
def test_3_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("3.2", answer, phrase)


def test_3_2_stub_is_not_attempted():
    assert_not_attempted("3.2", stub_3_2)


# ----- 3.3 ------------------------------------------------------------------------------------
async def run_workers(fn, items, workers):
    queue: asyncio.Queue = asyncio.Queue()
    results = [None] * len(items)
    for pair in enumerate(items):
        queue.put_nowait(pair)

    async def worker():
        while True:
            index, item = await queue.get()
            try:
                results[index] = await fn(item)
            except Exception as exc:
                results[index] = exc
            finally:
                queue.task_done()

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await queue.join()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def leaves_workers_pending(fn, items, workers):
    queue: asyncio.Queue = asyncio.Queue()
    results = [None] * len(items)
    for pair in enumerate(items):
        queue.put_nowait(pair)

    async def worker():
        while True:
            index, item = await queue.get()
            try:
                results[index] = await fn(item)
            except Exception as exc:
                results[index] = exc
            finally:
                queue.task_done()

    for _ in range(workers):
        asyncio.create_task(worker())
    await queue.join()
    return results


async def task_per_item(fn, items, workers):
    async def one(item):
        try:
            return await fn(item)
        except Exception as exc:
            return exc

    return await asyncio.gather(*(one(item) for item in items))


async def worker_dies_on_error(fn, items, workers):
    queue: asyncio.Queue = asyncio.Queue()
    results = [None] * len(items)
    for pair in enumerate(items):
        queue.put_nowait(pair)

    async def worker():
        while True:
            index, item = await queue.get()
            results[index] = await fn(item)  # an exception kills the worker before task_done()
            queue.task_done()

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await queue.join()
    for task in tasks:
        task.cancel()
    return results


async def semaphore_not_a_pool(fn, items, workers):
    """At most `workers` at once and errors kept, but one task per item: no queue, no workers."""
    slots = asyncio.Semaphore(workers)

    async def one(item):
        async with slots:
            try:
                return await fn(item)
            except Exception as exc:
                return exc

    return await asyncio.gather(*(one(item) for item in items))


async def one_worker(fn, items, workers):
    return await run_workers(fn, items, 1)


async def stub_3_3(fn, items, workers):
    raise NotImplementedError("Exercise 3.3: Use an asyncio.Queue.")


def test_3_3_solution_passes():
    result = checks.check("3.3", run_workers)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (leaves_workers_pending, "still pending after run_workers returned"),
        (task_per_item, "jobs ran at once with workers=3"),
        (worker_dies_on_error, "did not finish within 5 s when two jobs raised"),
        (one_worker, "only 1 job(s) ran at once"),
        (semaphore_not_a_pool, "20 different tasks ran the 20 jobs with workers=3"),
    ],
)
def test_3_3_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("3.3", answer, phrase)


def test_3_3_stub_is_not_attempted():
    assert_not_attempted("3.3", stub_3_3)


# ----- 3.4 ------------------------------------------------------------------------------------
async def dispatch(client, bodies, rpm):
    """The notebook's solution: the first request alone, then a bucket that starts after it with one
    token of headroom (without it, a pause before the burst leaves both buckets full, and the requests
    in transit then put ours a fraction of a token ahead: an occasional 429 at the end of the run)."""
    if not bodies:
        return []
    bucket = None

    async def send(body):
        while True:
            if bucket is not None:
                await bucket.acquire(1)
            try:
                return await client.messages.create(**body)
            except anthropic.RateLimitError as exc:
                await asyncio.sleep(float(exc.response.headers.get("retry-after", 1)))

    first = await send(bodies[0])
    bucket = TokenBucket(rpm - 1, rpm / 60, level=rpm - 2)
    return [first, *await bounded_gather(send, bodies[1:], limit=32)]


async def dispatch_reference(client, bodies, rpm):
    big = 10**9
    dispatcher = RateLimitedDispatcher(client, limits=RateLimits(rpm, big, big), max_concurrency=32)
    return [o.unwrap() for o in await dispatcher.run(bodies)]


async def naive_gather_with_sdk_retries(client, bodies, rpm):
    retrying = client.with_options(max_retries=2)
    return await asyncio.gather(*(retrying.messages.create(**body) for body in bodies))


async def paced_from_the_start(client, bodies, rpm):
    out = []
    for body in bodies:
        out.append(await client.messages.create(**body))
        await asyncio.sleep(60 / rpm)
    return out


async def bucket_started_before_connecting(client, bodies, rpm):
    """The old solution's race, made visible: its bucket starts, then connection setup takes 0.5 s
    before the first request reaches the provider, so the bucket runs 0.5 s ahead of the provider's."""
    bucket = TokenBucket(rpm, rpm / 60, level=rpm - 1)
    await asyncio.sleep(0.5)

    async def send(body):
        await bucket.acquire(1)
        return await client.messages.create(**body)

    return await bounded_gather(send, bodies, limit=32)


async def bucket_at_80_percent(client, bodies, rpm):
    """The solution's structure with a "safety margin": the bucket refills at 80% of the limit."""
    first = await client.messages.create(**bodies[0])
    bucket = TokenBucket(rpm - 1, rpm / 60 * 0.8, level=rpm - 2)

    async def send(body):
        await bucket.acquire(1)
        return await client.messages.create(**body)

    return [first, *await bounded_gather(send, bodies[1:], limit=32)]


async def cookbook_fixed_pause(client, bodies, rpm):
    """The well-known cookbook processor: fire away, and after a 429 pause everything 15 s."""
    pause = {"until": 0.0}
    slots = asyncio.Semaphore(64)
    loop = asyncio.get_running_loop()

    async def send(body):
        while True:
            wait = pause["until"] - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            async with slots:
                try:
                    return await client.messages.create(**body)
                except anthropic.RateLimitError:
                    pause["until"] = loop.time() + 15

    return await asyncio.gather(*(send(body) for body in bodies))


async def stub_3_4(client, bodies, rpm):
    raise NotImplementedError("Exercise 3.4: Keep a token bucket.")


@pytest.mark.parametrize("answer", [dispatch, dispatch_reference])
def test_3_4_solution_passes(answer):
    result = checks.check("3.4", answer)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (naive_gather_with_sdk_retries, "429"),
        (paced_from_the_start, "wastes the burst allowance"),
        (bucket_started_before_connecting, "429"),
        (bucket_at_80_percent, "of the allowed rate"),
        (cookbook_fixed_pause, "429"),
    ],
)
def test_3_4_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("3.4", answer, phrase)


def test_3_4_stub_is_not_attempted():
    assert_not_attempted("3.4", stub_3_4)


def test_lesson03_exercises_are_listed():
    assert [(e.id, e.points) for e in checks.exercises(3)] == [("3.1", 3), ("3.2", 3), ("3.3", 3), ("3.4", 4)]
