"""Checks for exercise 3.3 ``run_workers(fn, items, workers)``: exactly ``workers`` tasks run the jobs,
results in input order, a failing job does not stop the pool, and no worker is left pending (an empty
input and more workers than items included)."""

from __future__ import annotations

import asyncio
from typing import Any

from ..framework import CaseFailed, Exercise, expect, expect_equal, expect_unchanged, track_tasks
from .common import await_answer, on_empty


def _still_running(created: list) -> list[asyncio.Task[Any]]:
    """The tasks of ``created`` (:func:`~.framework.track_tasks`, strong references) not done yet."""
    return [t for t in created if not t.done()]


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------------
# 3.3 run_workers(fn, items, workers) -> list
# ---------------------------------------------------------------------------------------------
pool = Exercise(
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


@pool.case("exactly `workers` jobs at a time, results in input order")
async def _pool(fn) -> None:
    gauge = _Gauge()
    given = list(range(20))
    got = await await_answer(fn, gauge, given, 3, limit=10, what="run_workers")
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


@pool.case("clean shutdown: no worker left pending")
async def _shutdown(fn) -> None:
    created = track_tasks()
    await await_answer(fn, _Gauge(), list(range(8)), 4, limit=10, what="run_workers")
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


@pool.case("an empty list, and more workers than items: results, and no worker left pending")
async def _edges(fn) -> None:
    created = track_tasks()
    try:
        got = await on_empty(fn, _Gauge(), [], 3, what="run_workers")
        expect(
            got == [] and isinstance(got, list),
            "run_workers of an empty list should be []",
            expected=[],
            got=got,
            hint="With nothing queued, the workers have nothing to do: return [] (and stop them).",
        )
        gauge = _Gauge()
        got = await await_answer(fn, gauge, [4, 1], 5, limit=5, what="run_workers (2 items, 5 workers)")
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


@pool.case("a failing job does not stop the pool")
async def _failure(fn) -> None:
    gauge = _Gauge(fail={2, 7})
    created = track_tasks()
    try:
        got = await await_answer(fn, gauge, list(range(10)), 3, limit=5, what="run_workers")
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
