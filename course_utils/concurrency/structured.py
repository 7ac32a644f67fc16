"""Structured concurrency: run every item, keep every result and every error, lose nothing.

``asyncio.gather`` without ``return_exceptions`` raises the first error and drops the results
of every request that already succeeded (they were paid for). :func:`run_all` runs the items in
an :class:`asyncio.TaskGroup`, gives each a timeout, and returns one :class:`Outcome` per item,
in input order, holding either its value or its error (an :class:`Outcomes` list, whose
``.frame()`` is the table of them). Only cancellation (and other
``BaseException``\\s such as ``KeyboardInterrupt``) propagates: then the task group cancels
every child and waits for it, so no request is left running in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Iterable, TypeVar

from ..clock import SYSTEM_CLOCK, Clock, SystemClock
from ..progress import ProgressCallback, ProgressEvent

__all__ = ["Outcome", "Outcomes", "run_all", "with_timeout", "partition"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What happened to one item: its value, or the exception it raised (never both)."""

    index: int
    """Position of the item in the input."""
    item: Any
    value: R | None = None
    error: BaseException | None = None
    seconds: float = 0.0
    """Time from start to finish of this item (its own clock reading, waiting for a slot excluded)."""

    @property
    def ok(self) -> bool:
        """True when the item produced a value."""
        return self.error is None

    def unwrap(self) -> R:
        """The value, or raise the item's error."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class Outcomes(list):
    """One :class:`Outcome` per item, in input order: a plain ``list`` that also gives its table.

    ``.frame()`` has one row per item (``index``, ``ok``, ``value``, ``error_type``, ``error``,
    ``seconds``); ``.summary()`` the counts a sentence quotes (``items``, ``succeeded``, ``failed``,
    ``slowest_s``). See :mod:`course_utils.tables`.
    """

    def frame(self) -> Any:
        """One row per item, in input order."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "index": o.index,
                    "ok": o.ok,
                    "value": o.value,
                    "error_type": type(o.error).__name__ if o.error is not None else None,
                    "error": str(o.error) if o.error is not None else None,
                    "seconds": o.seconds,
                }
                for o in self
            ],
            columns=["index", "ok", "value", "error_type", "error", "seconds"],
        )

    def summary(self) -> dict[str, Any]:
        """``items``, ``succeeded``, ``failed`` and ``slowest_s`` (0.0 when empty)."""
        succeeded = sum(o.ok for o in self)
        return {
            "items": len(self),
            "succeeded": succeeded,
            "failed": len(self) - succeeded,
            "slowest_s": max((o.seconds for o in self), default=0.0),
        }


async def with_timeout(awaitable: Awaitable[T], seconds: float | None, clock: Clock = SYSTEM_CLOCK) -> T:
    """Await ``awaitable`` for at most ``seconds`` of ``clock`` time; ``TimeoutError`` after that.

    On the system clock (which on a virtual loop is the loop's virtual time) this is
    ``asyncio.timeout``; on another async clock (lesson 04's ``SimulatorClock``) the awaitable races
    a ``clock.sleep`` and is cancelled if the sleep wins.
    """
    if seconds is None:
        return await awaitable
    if isinstance(clock, SystemClock):
        async with asyncio.timeout(seconds):
            return await awaitable
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Reached on success, timeout and cancellation of the caller alike: never leave either behind.
        for task in (work, timer):
            if not task.done():
                task.cancel()
        for task in (work, timer):
            with contextlib.suppress(BaseException):
                await task
    if work.cancelled() or not work.done():
        raise TimeoutError(f"timed out after {seconds:g} s")
    return work.result()


async def run_all(
    fn: Callable[[Any], Awaitable[R]],
    items: Iterable[Any],
    *,
    concurrency: int | None = None,
    timeout: float | None = None,
    on_done: Callable[[Outcome[R]], Any] | None = None,
    on_progress: ProgressCallback | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Outcomes:
    """Run ``fn(item)`` for every item and return one :class:`Outcome` per item, in input order.

    ``concurrency`` caps how many run at once (``None``: all); ``timeout`` caps each item's own
    run time (its wait for a slot does not count), and a timed-out item's error is a
    ``TimeoutError``. An ``Exception`` from ``fn`` becomes that item's error and the others carry
    on. ``on_done`` is called with each outcome as it finishes, so callers can save results
    incrementally; if ``run_all`` itself is cancelled, what ``on_done`` saw is all that finished.
    ``on_progress`` (a :data:`~course_utils.progress.ProgressCallback`, e.g. a ``ProgressBar``) gets
    ``ProgressEvent(done, total=len(items), elapsed_s, latest=outcome)`` after each, right after ``on_done``.
    """
    pending = list(items)
    started_all = clock.monotonic()
    finished = 0
    if concurrency is not None and concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    outcomes: list[Outcome[R] | None] = [None] * len(pending)
    slots = asyncio.Semaphore(concurrency) if concurrency else None

    async def run_one(index: int, item: Any) -> None:
        nonlocal finished
        async with slots if slots is not None else contextlib.nullcontext():
            started = clock.monotonic()
            try:
                value = await with_timeout(fn(item), timeout, clock)
            except Exception as exc:  # noqa: BLE001 - every error belongs to its item
                outcome: Outcome[R] = Outcome(index, item, error=exc, seconds=clock.monotonic() - started)
            else:
                outcome = Outcome(index, item, value=value, seconds=clock.monotonic() - started)
        outcomes[index] = outcome
        finished += 1
        if on_done is not None:
            on_done(outcome)
        if on_progress is not None:
            on_progress(ProgressEvent(finished, len(pending), clock.monotonic() - started_all, latest=outcome))

    # Every child catches its own Exceptions, so the group only ever aborts on cancellation.
    async with asyncio.TaskGroup() as group:
        for index, item in enumerate(pending):
            group.create_task(run_one(index, item))
    return Outcomes(o for o in outcomes if o is not None)


def partition(outcomes: Iterable[Outcome[R]]) -> tuple[list[Outcome[R]], list[Outcome[R]]]:
    """Split outcomes into (succeeded, failed), each keeping input order."""
    done, failed = [], []
    for outcome in outcomes:
        (done if outcome.ok else failed).append(outcome)
    return done, failed
