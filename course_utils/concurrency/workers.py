"""A fixed pool of workers over an ``asyncio.Queue``: steady concurrency for a stream of jobs.

Where :func:`~.structured.run_all` needs every item up front, a pool takes jobs as they come
(from a file, a database cursor, another stage) and keeps exactly ``workers`` of them running.
Shutdown is graceful: :meth:`WorkerPool.close` lets the queue drain, then sends each worker a
stop marker and waits for it; on an error or cancellation inside the ``async with`` block the
workers are cancelled and awaited. Either way no task is left pending.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, Iterable, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..progress import ProgressCallback, ProgressEvent
from .structured import Outcome, Outcomes, with_timeout

__all__ = ["WorkerPool", "run_pool"]

R = TypeVar("R")

_STOP = object()  # the marker that tells one worker to exit


class WorkerPool(Generic[R]):
    """``workers`` tasks that take jobs from a queue and call ``handler(job)``.

    Use as ``async with WorkerPool(handler, workers=8) as pool: await pool.submit(job)``; after
    the block, :attr:`outcomes` holds one :class:`Outcome` per job in submission order. A
    handler's exception is recorded as that job's error and the worker carries on.

    ``on_progress`` (a :data:`~course_utils.progress.ProgressCallback`) gets
    ``ProgressEvent(done, total, elapsed_s, latest=outcome)`` after every finished job: ``total`` is
    the ``total`` given (how many jobs the caller will submit), else ``None`` until :meth:`close`,
    then the number submitted; ``elapsed_s`` counts from :meth:`start`.
    """

    def __init__(
        self,
        handler: Callable[[Any], Awaitable[R]],
        *,
        workers: int,
        maxsize: int = 0,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        total: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._handler = handler
        self._workers = workers
        # A bounded queue (maxsize > 0) makes submit() wait: backpressure on the producer.
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._timeout = timeout
        self._on_progress = on_progress
        self._total = total
        self._clock = clock
        self._started_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._outcomes: dict[int, Outcome[R]] = {}
        self._submitted = 0
        self._closed = False

    @property
    def outcomes(self) -> Outcomes:
        """Outcomes of the finished jobs, in submission order."""
        return Outcomes(self._outcomes[i] for i in sorted(self._outcomes))

    @property
    def done(self) -> int:
        """How many jobs have finished (value or error)."""
        return len(self._outcomes)

    def start(self) -> "WorkerPool[R]":
        """Start the workers (``async with`` does this)."""
        if not self._tasks:
            self._started_at = self._clock.monotonic()
            self._tasks = [asyncio.create_task(self._work(), name=f"worker-{n}") for n in range(self._workers)]
        return self

    async def submit(self, job: Any) -> int:
        """Queue ``job`` (waits while a bounded queue is full) and return its index."""
        if self._closed:
            raise RuntimeError("the pool is closed")
        index = self._submitted
        self._submitted += 1
        await self._queue.put((index, job))
        return index

    async def close(self) -> Outcomes:
        """Graceful shutdown: finish every queued job, stop the workers, return the outcomes."""
        self._closed = True
        # The queue is FIFO, so each stop marker comes after every job submitted before it.
        for _ in self._tasks:
            await self._queue.put(_STOP)
        await asyncio.gather(*self._tasks)
        return self.outcomes

    async def cancel(self) -> None:
        """Abrupt shutdown: cancel the workers (jobs in progress are abandoned) and wait for them."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> "WorkerPool[R]":
        return self.start()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.cancel()

    async def _work(self) -> None:
        while True:
            entry = await self._queue.get()
            try:
                if entry is _STOP:
                    return
                index, job = entry
                started = self._clock.monotonic()
                try:
                    value = await with_timeout(self._handler(job), self._timeout, self._clock)
                except Exception as exc:  # noqa: BLE001 - a job's error must not kill its worker
                    outcome: Outcome[R] = Outcome(index, job, error=exc, seconds=self._clock.monotonic() - started)
                else:
                    outcome = Outcome(index, job, value=value, seconds=self._clock.monotonic() - started)
                self._outcomes[index] = outcome
                if self._on_progress is not None:
                    total = self._total if self._total is not None else (self._submitted if self._closed else None)
                    self._on_progress(
                        ProgressEvent(
                            len(self._outcomes), total, self._clock.monotonic() - self._started_at, latest=outcome
                        )
                    )
            finally:
                self._queue.task_done()


async def run_pool(
    handler: Callable[[Any], Awaitable[R]],
    jobs: Iterable[Any],
    *,
    workers: int,
    timeout: float | None = None,
    on_progress: ProgressCallback | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Outcomes:
    """Run every job through a :class:`WorkerPool` of ``workers`` and return the outcomes in order.

    ``on_progress`` events carry ``total=len(jobs)`` (the jobs are listed first).
    """
    jobs = list(jobs)
    async with WorkerPool(
        handler, workers=workers, timeout=timeout, on_progress=on_progress, total=len(jobs), clock=clock
    ) as pool:
        for job in jobs:
            await pool.submit(job)
    return pool.outcomes
