"""The same fan-out with threads and the synchronous client, for comparison with asyncio.

A thread per request in flight works (the SDK's sync client is thread-safe and releases the GIL
while it waits on the network), and is the right tool inside synchronous code. Each thread costs
memory and a slot in a fixed pool, so it scales to tens of requests in flight, where asyncio
scales to thousands on one thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable, Iterable, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..progress import ProgressCallback, ProgressEvent
from .structured import Outcome, Outcomes

__all__ = ["run_threaded"]

R = TypeVar("R")


def run_threaded(
    fn: Callable[[Any], R],
    items: Iterable[Any],
    *,
    workers: int,
    on_done: Callable[[Outcome[R]], Any] | None = None,
    on_progress: ProgressCallback | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Outcomes:
    """Call ``fn(item)`` on a pool of ``workers`` threads; one :class:`Outcome` per item, in input order.

    ``on_done(outcome)`` runs in the worker thread that finished the item; ``on_progress`` (a
    :data:`~course_utils.progress.ProgressCallback`) runs on the caller's thread, once per finished item.
    Each outcome's ``seconds`` and the progress times are read from ``clock`` (on worker threads, where no
    loop runs, :data:`~course_utils.clock.SYSTEM_CLOCK` is real time).
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")

    def run_one(indexed: tuple[int, Any]) -> Outcome[R]:
        index, item = indexed
        started = clock.monotonic()
        try:
            value = fn(item)
        except Exception as exc:  # noqa: BLE001 - every error belongs to its item
            outcome: Outcome[R] = Outcome(index, item, error=exc, seconds=clock.monotonic() - started)
        else:
            outcome = Outcome(index, item, value=value, seconds=clock.monotonic() - started)
        if on_done is not None:
            on_done(outcome)
        return outcome

    pending = list(enumerate(items))
    outcomes: list[Outcome[R] | None] = [None] * len(pending)
    started = clock.monotonic()
    # The with-block joins every thread before returning; results are placed by index (input order).
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm") as pool:
        futures = [pool.submit(run_one, pair) for pair in pending]
        for done, future in enumerate(as_completed(futures), start=1):
            outcome = future.result()
            outcomes[outcome.index] = outcome
            if on_progress is not None:
                on_progress(ProgressEvent(done, len(pending), clock.monotonic() - started, latest=outcome))
    return Outcomes(o for o in outcomes if o is not None)
