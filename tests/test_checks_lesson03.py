"""Lesson 03 checks: the solutions pass, plausible wrong answers are rejected, stubs are not attempted."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

import course_utils.checks as checks
from _checks import assert_rejected, assert_not_attempted
from course_utils import text_of
from course_utils.concurrency import RateLimitedDispatcher, TokenBucket, bounded_gather
from course_utils.mock_provider.ratelimit import RateLimits
from course_utils.retries import retry_after_s, retry_delay


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
        out.extend(await asyncio.gather(*(fn(item) for item in items[start : start + limit + 2])))
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
        out.extend(await asyncio.gather(*(fn(item) for item in items[start : start + limit])))
    return out


async def bounded_map_with_workers(fn, items, limit):
    """Correct, written differently: `limit` workers pull the next index from a shared iterator."""
    items = list(items)
    results = [None] * len(items)
    indexes = iter(range(len(items)))

    async def worker():
        for index in indexes:  # the iterator is shared: each index goes to exactly one worker
            results[index] = await fn(items[index])

    async with asyncio.TaskGroup() as group:
        for _ in range(min(limit, len(items))):
            group.create_task(worker())
    return results


async def waits_on_a_set(fn, items, limit):
    """Right for any non-empty list; asyncio.wait() raises ValueError on an empty set."""
    slots = asyncio.Semaphore(limit)

    async def one(item):
        async with slots:
            return await fn(item)

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    await asyncio.wait(tasks)
    return [t.result() for t in tasks]


async def semaphore_per_call(fn, items, limit):
    """The semaphore is created inside each call, so every call has its own: nothing is bounded."""

    async def one(item):
        async with asyncio.Semaphore(limit):
            return await fn(item)

    return await asyncio.gather(*(one(item) for item in items))


async def limit_minus_one(fn, items, limit):
    slots = asyncio.Semaphore(max(1, limit - 1))

    async def one(item):
        async with slots:
            return await fn(item)

    return await asyncio.gather(*(one(item) for item in items))


async def consumes_items(fn, items, limit):
    """Workers pop from the caller's list: bounded and ordered, but the caller's list ends up empty."""
    results = [None] * len(items)
    pending = items  # not a copy
    total = len(items)

    async def worker():
        while pending:
            index = total - len(pending)
            item = pending.pop(0)
            results[index] = await fn(item)

    await asyncio.gather(*(worker() for _ in range(limit)))
    return results


async def sorted_results(fn, items, limit):
    """Bounded and concurrent, then sorted "to restore the order": right only when results sort like items."""
    return sorted(await bounded_map(fn, items, limit))


async def warms_up_with_the_first_item(fn, items, limit):
    """Calls fn on the first item alone "to check it works", then on every item: one call too many."""
    items = list(items)
    if items:
        await fn(items[0])
    return await bounded_map(fn, items, limit)


async def stub_3_1(fn, items, limit):
    raise NotImplementedError("Exercise 3.1: Use a semaphore.")


@pytest.mark.parametrize("answer", [bounded_map, bounded_map_reference, bounded_map_with_workers])
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
        (waits_on_a_set, "bounded_map of an empty list raised ValueError"),
        (semaphore_per_call, "requests were in flight at once with limit=4"),
        (limit_minus_one, "only 3 calls ran at once with limit=4"),
        (consumes_items, "bounded_map changed `items`"),
        (sorted_results, "wrong results for"),
        (warms_up_with_the_first_item, "fn was not called exactly once per item"),
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


async def collect_outcomes_task_group(fn, items, timeout):
    """Correct, written differently: a TaskGroup, asyncio.timeout() and a dict of pairs by index."""
    pairs = {}

    async def one(index, item):
        try:
            async with asyncio.timeout(timeout):
                pairs[index] = (await fn(item), None)
        except Exception as exc:
            pairs[index] = (None, exc)

    async with asyncio.TaskGroup() as group:
        for index, item in enumerate(items):
            group.create_task(one(index, item))
    return [pairs[index] for index in range(len(pairs))]


async def errors_as_strings(fn, items, timeout):
    """Keeps the message, not the exception: callers can no longer tell a timeout from a bug."""

    async def one(item):
        try:
            return (await asyncio.wait_for(fn(item), timeout), None)
        except Exception as exc:
            return (None, str(exc))

    return await asyncio.gather(*(one(item) for item in items))


async def one_timeout_for_all(fn, items, timeout):
    """One timeout around the whole gather: a single slow item times out everything."""

    async def one(item):
        try:
            return (await fn(item), None)
        except Exception as exc:
            return (None, exc)

    return await asyncio.wait_for(asyncio.gather(*(one(item) for item in items)), timeout)


async def return_exceptions_as_values(fn, items, timeout):
    """gather(return_exceptions=True), then every result treated as a value."""
    results = await asyncio.gather(*(asyncio.wait_for(fn(item), timeout) for item in items), return_exceptions=True)
    return [(r, None) for r in results]


async def pairs_in_completion_order(fn, items, timeout):
    async def one(item):
        try:
            return (await asyncio.wait_for(fn(item), timeout), None)
        except Exception as exc:
            return (None, exc)

    return [await f for f in asyncio.as_completed([one(item) for item in items])]


async def waits_on_a_set_3_2(fn, items, timeout):
    async def one(item):
        try:
            return (await asyncio.wait_for(fn(item), timeout), None)
        except Exception as exc:
            return (None, exc)

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    await asyncio.wait(tasks)
    return [t.result() for t in tasks]


async def stub_3_2(fn, items, timeout):
    raise NotImplementedError("Exercise 3.2: Catch each item's error.")


@pytest.mark.parametrize("answer", [collect_outcomes, collect_outcomes_task_group])
def test_3_2_solution_passes(answer):
    result = checks.check("3.2", answer)
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
        (errors_as_strings, "item 1 failed but its error is 'bad item 1'"),
        (one_timeout_for_all, "collect_outcomes raised TimeoutError"),
        (return_exceptions_as_values, "item 1 failed but its error is None"),
        # Which item differs first, and so the message, depends on the tie order of as_completed (a
        # set of futures, so memory layout); the failing case is always the input-order one.
        (pairs_in_completion_order, "✗ keeps every value and every error, in input order"),
        (waits_on_a_set_3_2, "collect_outcomes of an empty list raised ValueError"),
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


async def run_workers_with_stop_markers(fn, items, workers):
    """Correct, written differently: one stop marker per worker, and the workers are awaited."""
    queue: asyncio.Queue = asyncio.Queue()
    results = {}
    for index, item in enumerate(items):
        queue.put_nowait((index, item))
    for _ in range(workers):
        queue.put_nowait(None)

    async def worker():
        while (job := await queue.get()) is not None:
            index, item = job
            try:
                results[index] = await fn(item)
            except Exception as exc:
                results[index] = exc

    await asyncio.gather(*(worker() for _ in range(workers)))
    return [results[index] for index in range(len(results))]


async def results_in_completion_order(fn, items, workers):
    queue: asyncio.Queue = asyncio.Queue()
    results = []
    for item in items:
        queue.put_nowait(item)

    async def worker():
        while True:
            item = await queue.get()
            try:
                results.append(await fn(item))
            except Exception as exc:
                results.append(exc)
            finally:
                queue.task_done()

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await queue.join()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def one_worker_per_item(fn, items, workers):
    return await run_workers(fn, items, max(1, len(items)))


async def waits_for_a_count(fn, items, workers):
    """Waits for an event the worker that finishes the last item sets: never set for an empty list."""
    queue: asyncio.Queue = asyncio.Queue()
    results = [None] * len(items)
    done = asyncio.Event()
    finished = 0
    for pair in enumerate(items):
        queue.put_nowait(pair)

    async def worker():
        nonlocal finished
        while True:
            index, item = await queue.get()
            try:
                results[index] = await fn(item)
            except Exception as exc:
                results[index] = exc
            finished += 1
            if finished == len(items):
                done.set()

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await done.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def errors_become_none(fn, items, workers):
    queue: asyncio.Queue = asyncio.Queue()
    results = [None] * len(items)
    for pair in enumerate(items):
        queue.put_nowait(pair)

    async def worker():
        while True:
            index, item = await queue.get()
            try:
                results[index] = await fn(item)
            except Exception:
                pass  # leave None in the failed slot
            finally:
                queue.task_done()

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await queue.join()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def cancels_when_the_queue_is_empty(fn, items, workers):
    """Stops the workers as soon as the queue is empty, while the last jobs are still running."""
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

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    while not queue.empty():
        await asyncio.sleep(0.001)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return results


async def stub_3_3(fn, items, workers):
    raise NotImplementedError("Exercise 3.3: Use an asyncio.Queue.")


@pytest.mark.parametrize("answer", [run_workers, run_workers_with_stop_markers])
def test_3_3_solution_passes(answer):
    result = checks.check("3.3", answer)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (leaves_workers_pending, "still pending after run_workers returned"),
        (task_per_item, "jobs ran at once with workers=3"),
        (worker_dies_on_error, "did not finish within 5 s when two jobs raised"),
        (one_worker, "only 1 job(s) ran at once"),
        (semaphore_not_a_pool, "20 different tasks ran the 20 jobs with workers=3"),
        (results_in_completion_order, "the results are in the order the jobs finished"),
        (one_worker_per_item, "20 jobs ran at once with workers=3"),
        (waits_for_a_count, "run_workers (empty input) did not finish within 30 s"),
        (errors_become_none, "a failed job's slot should hold its exception"),
        (cancels_when_the_queue_is_empty, "wrong results"),
    ],
)
def test_3_3_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("3.3", answer, phrase)


def test_3_3_stub_is_not_attempted():
    assert_not_attempted("3.3", stub_3_3)


# ----- 3.4 ------------------------------------------------------------------------------------
async def dispatch(client, bodies, rpm):
    """The notebook's solution: a bucket of one request (no burst to bet on) refilled at 95% of the
    limit (headroom), several requests in flight, and retry-after plus jitter if a 429 still comes."""
    bucket = TokenBucket(1, 0.95 * rpm / 60)

    async def send(body):
        attempt = 0
        while True:
            await bucket.acquire(1)
            try:
                return await client.messages.create(**body)
            except anthropic.RateLimitError as exc:
                attempt += 1
                await asyncio.sleep(retry_delay(attempt, retry_after_s(exc)))

    return await bounded_gather(send, bodies, limit=32)


async def dispatch_reference(client, bodies, rpm):
    big = 10**9
    dispatcher = RateLimitedDispatcher(client, limits=RateLimits(rpm, big, big), max_concurrency=32)
    return [o.unwrap() for o in await dispatcher.run(bodies)]


async def dispatch_with_a_schedule(client, bodies, rpm):
    """Correct, written differently: each request gets its own send time on a schedule at 97% of the
    limit (no bucket object), and all of them are started at once as tasks."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    interval = 60 / rpm / 0.97

    async def send(index, body):
        await asyncio.sleep(max(0.0, start + index * interval - loop.time()))
        while True:
            try:
                return await client.messages.create(**body)
            except anthropic.RateLimitError as exc:
                await asyncio.sleep(float(exc.response.headers["retry-after"]))

    return list(await asyncio.gather(*(send(i, body) for i, body in enumerate(bodies))))


async def naive_gather_with_sdk_retries(client, bodies, rpm):
    retrying = client.with_options(max_retries=2)
    return await asyncio.gather(*(retrying.messages.create(**body) for body in bodies))


async def paced_from_the_start(client, bodies, rpm):
    """One request at a time, with a pause of 60/rpm after each: under the limit, but the request's
    own latency is added to every interval."""
    out = []
    for body in bodies:
        out.append(await client.messages.create(**body))
        await asyncio.sleep(60 / rpm)
    return out


async def bucket_started_before_connecting(client, bodies, rpm):
    """The old solution's race, made visible: a minute-sized bucket started 0.5 s before the first
    request reaches the provider. Under per-second enforcement its burst alone is refused."""
    bucket = TokenBucket(rpm, rpm / 60, level=rpm - 1)
    await asyncio.sleep(0.5)

    async def send(body):
        await bucket.acquire(1)
        return await client.messages.create(**body)

    return await bounded_gather(send, bodies, limit=32)


async def bucket_at_80_percent(client, bodies, rpm):
    """The solution's structure with a large "safety margin": the bucket refills at 80% of the limit."""
    bucket = TokenBucket(1, rpm / 60 * 0.8)

    async def send(body):
        await bucket.acquire(1)
        return await client.messages.create(**body)

    return await bounded_gather(send, bodies, limit=32)


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


async def minute_bucket(client, bodies, rpm):
    """The lenient-provider solution: spend a minute's quota at once (rpm tokens), then the refill."""
    first = await client.messages.create(**bodies[0]) if bodies else None
    bucket = TokenBucket(rpm - 1, rpm / 60, level=rpm - 2)

    async def send(body):
        while True:
            await bucket.acquire(1)
            try:
                return await client.messages.create(**body)
            except anthropic.RateLimitError as exc:
                await asyncio.sleep(float(exc.response.headers.get("retry-after", 1)))

    return [first, *await bounded_gather(send, bodies[1:], limit=32)] if bodies else []


async def sequential_bucket(client, bodies, rpm):
    """The right bucket, but each request awaited before the next: latency caps the rate."""
    bucket = TokenBucket(1, 0.95 * rpm / 60)
    out = []
    for body in bodies:
        await bucket.acquire(1)
        out.append(await client.messages.create(**body))
    return out


async def messages_in_completion_order(client, bodies, rpm):
    bucket = TokenBucket(1, 0.95 * rpm / 60)

    async def send(body):
        await bucket.acquire(1)
        return await client.messages.create(**body)

    return [await f for f in asyncio.as_completed([send(body) for body in bodies])]


async def concurrency_cap_only(client, bodies, rpm):
    """No pacing: at most rpm/60 requests in flight, "one second's worth" at a time."""
    return await bounded_gather(lambda body: client.messages.create(**body), bodies, limit=max(1, rpm // 60))


async def returns_the_labels(client, bodies, rpm):
    """Paced right, but returns each reply's text instead of the Message."""
    return [text_of(message) for message in await dispatch(client, bodies, rpm)]


async def pops_the_bodies(client, bodies, rpm):
    """Workers take bodies off the caller's list: the right messages, but the caller's list is emptied."""
    bucket = TokenBucket(1, 0.95 * rpm / 60)
    results = [None] * len(bodies)
    total = len(bodies)

    async def worker():
        while bodies:
            index = total - len(bodies)
            body = bodies.pop(0)
            await bucket.acquire(1)
            results[index] = await client.messages.create(**body)

    await asyncio.gather(*(worker() for _ in range(32)))
    return results


async def indexes_the_first_body(client, bodies, rpm):
    """Sends bodies[0] alone first "to learn the limits": IndexError on an empty list."""
    first = await client.messages.create(**bodies[0])
    return [first, *await dispatch(client, bodies[1:], rpm)]


async def stub_3_4(client, bodies, rpm):
    raise NotImplementedError("Exercise 3.4: Keep a token bucket.")


@pytest.mark.parametrize("answer", [dispatch, dispatch_reference, dispatch_with_a_schedule])
def test_3_4_solution_passes(answer):
    result = checks.check("3.4", answer)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (naive_gather_with_sdk_retries, "429"),
        (paced_from_the_start, "of the allowed rate"),
        (bucket_started_before_connecting, "429"),
        (bucket_at_80_percent, "81% of the allowed rate"),
        (cookbook_fixed_pause, "429"),
        (minute_bucket, "429"),
        (sequential_bucket, "of the allowed rate"),
        (messages_in_completion_order, "the messages are not in input order"),
        (concurrency_cap_only, "429"),
        (returns_the_labels, "results are not the message for their body"),
        (pops_the_bodies, "dispatch changed `bodies`"),
        (indexes_the_first_body, "dispatch of an empty list raised IndexError"),
    ],
)
def test_3_4_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("3.4", answer, phrase)


@pytest.mark.parametrize("scenario", ["realistic", "hostile"])
def test_3_4_verdict_does_not_depend_on_the_reply_scenario(monkeypatch, scenario):
    # Thinking blocks and refusals change reply texts; 3.4 compares texts, so its probe pins plain replies.
    monkeypatch.setenv("COURSE_REPLY_SCENARIO", scenario)
    assert checks.check("3.4", dispatch).status == "passed"
    assert_rejected("3.4", messages_in_completion_order, "the messages are not in input order")


def test_3_4_stub_is_not_attempted():
    assert_not_attempted("3.4", stub_3_4)


def test_lesson03_exercises_are_listed():
    assert [(e.id, e.points) for e in checks.exercises(3)] == [("3.1", 3), ("3.2", 3), ("3.3", 3), ("3.4", 4)]
