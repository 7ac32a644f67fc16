"""Fair scheduling of many tenants' requests onto one shared provider key: deficit round robin.

First come, first served lets one tenant's bulk import fill the queue, and every other tenant
waits behind it. Deficit round robin (Shreedhar & Varghese, 1995) keeps one queue per tenant and
visits the tenants with work in turn; on each visit a tenant earns ``quantum * weight`` of
credit (its *deficit*) and sends requests from the head of its queue while their estimated
size (estimated tokens) fits the credit. So over any stretch where tenants have work waiting, each gets
a share of the tokens proportional to its weight, whatever the size or number of its requests,
and every tenant with work is visited every round: none starves.

:class:`FairQueue` is the pure, synchronous queue (easy to test); :class:`FairScheduler` feeds
it into lesson 03's :class:`~course_utils.concurrency.RateLimitedDispatcher`, releasing at most
``max_in_flight`` requests at a time so the order is decided here, not in the dispatcher's own
first-come, first-served wait for rate-limit capacity.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, Mapping, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..tokens import count_request

__all__ = ["FairQueue", "FairScheduler", "Queued", "estimated_tokens"]

T = TypeVar("T")


def estimated_tokens(body: Mapping[str, Any]) -> int:
    """A request's size for fair queueing, in tokens, before sending: its input (counted offline) plus ``max_tokens``."""
    return count_request(body) + int(body.get("max_tokens") or 0)


@dataclass
class Queued(Generic[T]):
    """One queued item: its tenant, its size in tokens, and when it was queued (clock seconds)."""

    tenant_id: str
    item: T
    size: float
    enqueued_at: float
    seq: int = field(default=0)


class FairQueue(Generic[T]):
    """Deficit round robin over per-tenant FIFO queues (not thread-safe; one event loop).

    ``weights`` per tenant (default ``default_weight``); ``quantum`` is the credit, in size units
    (tokens), a weight-1 tenant earns per round. A quantum near the typical request size keeps
    the rounds short; any positive quantum gives the same long-run shares.
    """

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        quantum: float = 1000.0,
        default_weight: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if quantum <= 0 or default_weight <= 0:
            raise ValueError("quantum and default_weight must be positive")
        self.weights = dict(weights or {})
        for tenant, w in self.weights.items():
            if not w > 0:
                raise ValueError(f"the weight of {tenant!r} must be positive, not {w!r}")
        self.quantum = float(quantum)
        self.default_weight = float(default_weight)
        self._clock = clock
        self._queues: dict[str, deque[Queued[T]]] = {}
        self._active: deque[str] = deque()  # tenants with work, in visiting order
        self._deficit: dict[str, float] = {}
        self._credited = False  # whether the tenant at the head of _active got this visit's quantum
        self._idle_visits = 0  # visits in a row that sent nothing
        self._seq = itertools.count()

    def weight(self, tenant_id: str) -> float:
        return float(self.weights.get(tenant_id, self.default_weight))

    def push(self, tenant_id: str, item: T, size: float) -> Queued[T]:
        """Queue ``item`` for ``tenant_id``; ``size`` is its estimated tokens (> 0)."""
        if not size > 0:
            raise ValueError(f"a queued item's size must be positive, not {size!r}")
        entry = Queued(tenant_id, item, float(size), self._clock.monotonic(), next(self._seq))
        queue = self._queues.setdefault(tenant_id, deque())
        if not queue:
            self._active.append(tenant_id)
            self._deficit[tenant_id] = 0.0
        queue.append(entry)
        return entry

    def pop(self) -> Queued[T]:
        """The next item in deficit-round-robin order (``IndexError`` when empty)."""
        if not self._active:
            raise IndexError("pop from an empty FairQueue")
        while True:
            tenant = self._active[0]
            queue = self._queues[tenant]
            if not self._credited:
                self._deficit[tenant] += self.quantum * self.weight(tenant)
                self._credited = True
            head = queue[0]
            if head.size <= self._deficit[tenant] + 1e-9:
                self._deficit[tenant] -= head.size
                queue.popleft()
                self._idle_visits = 0
                if not queue:
                    # An idle tenant keeps no credit: it cannot save up a burst while away.
                    self._deficit[tenant] = 0.0
                    self._active.popleft()
                    self._credited = False
                return head
            # Not enough credit this round: the next tenant's turn (the credit carries over).
            self._active.rotate(-1)
            self._credited = False
            self._idle_visits += 1
            if self._idle_visits >= len(self._active):
                self._skip_empty_rounds()

    def _skip_empty_rounds(self) -> None:
        """A whole round sent nothing (every head is larger than its credit): add at once the credit
        of the rounds that would only have added credit, so a huge request costs no busy loop."""
        rounds = min(
            math.ceil((self._queues[t][0].size - self._deficit[t]) / (self.quantum * self.weight(t)))
            for t in self._active
        )
        if rounds > 1:
            for t in self._active:
                self._deficit[t] += (rounds - 1) * self.quantum * self.weight(t)
        self._idle_visits = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def pending(self) -> dict[str, int]:
        """Queued items per tenant."""
        return {t: len(q) for t, q in self._queues.items() if q}


class FairScheduler:
    """Per-tenant fair queueing in front of one shared sender (e.g. a ``RateLimitedDispatcher``).

    ``send(body)`` is awaited for each request in :class:`FairQueue` order, at most
    ``max_in_flight`` at once. :meth:`submit` queues a tenant's request and returns its result
    (or raises its error). Use as an async context manager, or call :meth:`start` and
    :meth:`aclose`. ``waits`` records, per tenant, the seconds each request spent queued.
    """

    def __init__(
        self,
        send: Callable[[Mapping[str, Any]], Awaitable[Any]],
        *,
        weights: Mapping[str, float] | None = None,
        quantum: float = 1000.0,
        max_in_flight: int = 4,
        size: Callable[[Mapping[str, Any]], float] = estimated_tokens,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._send = send
        self._size = size
        self._clock = clock
        self.queue: FairQueue[tuple[Mapping[str, Any], asyncio.Future[Any]]] = FairQueue(
            weights, quantum=quantum, clock=clock
        )
        self._slots = asyncio.Semaphore(max_in_flight)
        self._ready = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.waits: dict[str, list[float]] = {}
        self.order: list[str] = []
        """Tenants in the order their requests were released to ``send``."""

    def start(self) -> "FairScheduler":
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aenter__(self) -> "FairScheduler":
        return self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop releasing requests; requests still queued fail with ``asyncio.CancelledError``."""
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        while len(self.queue):
            _, fut = self.queue.pop().item
            fut.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, tenant_id: str, body: Mapping[str, Any]) -> Any:
        """Queue ``body`` for ``tenant_id`` and wait for its turn and its result."""
        if self._pump is None:
            raise RuntimeError("the scheduler is not running: use `async with FairScheduler(...)` or start()")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.push(tenant_id, (body, fut), self._size(body))
        self._ready.set()
        return await fut

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            while not len(self.queue):
                self._ready.clear()
                await self._ready.wait()
            entry = self.queue.pop()
            body, fut = entry.item
            if fut.cancelled():  # the submitter gave up while queued
                self._slots.release()
                continue
            self.waits.setdefault(entry.tenant_id, []).append(self._clock.monotonic() - entry.enqueued_at)
            self.order.append(entry.tenant_id)
            task = asyncio.get_running_loop().create_task(self._deliver(body, fut))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, body: Mapping[str, Any], fut: asyncio.Future[Any]) -> None:
        try:
            result = await self._send(body)
        except BaseException as exc:  # the submitter gets whatever went wrong
            if not fut.done():
                fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not fut.done():
                fut.set_result(result)
        finally:
            self._slots.release()
