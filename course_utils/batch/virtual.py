"""A night of batch processing in seconds: an in-process simulator on virtual time, driven from a notebook.

Message Batches take minutes to hours, and a poller spends that time asleep. What a lesson shows
about them (the poll schedule, a crash and a resume, the triage, the cost) does not need a student
to sit through the waiting, and on a busy machine real waits would change what the lesson prints.
So lesson 04's batches run on :class:`VirtualSimulator`: the simulator of
:class:`~course_utils.mock_provider.inprocess.InProcessServer`, whose clock is its own virtual
loop, and a :class:`SimulatorClock` whose ``sleep_sync`` lets that loop run for the time asked.
A poller that sleeps on that clock sees batches progress exactly as at realistic speed (the same
windows, the same request counts, the same ledger), at no wall-time cost, with the same result on
every machine.

A notebook's cells run inside the kernel's event loop, where another loop cannot be run; the
simulator's loop therefore runs on one private worker thread, and every request and every
``advance`` is handed to it. Clients are ordinary ``anthropic.Anthropic`` clients.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, TypeVar

import httpx2

from ..asgi_transport import SyncASGITransport
from ..clients import SyncClient
from ..clock import VIRTUAL_EPOCH
from ..mock_provider.inprocess import BASE_URL, InProcessServer

__all__ = ["SimulatorClock", "VirtualSimulator"]

T = TypeVar("T")


class SimulatorClock:
    """The :class:`~course_utils.clock.Clock` of an in-process simulator's virtual time.

    ``sleep_sync(s)`` runs the simulator ``s`` seconds further (batches progress meanwhile), so a
    synchronous poller given this clock polls on the simulator's schedule; ``monotonic()`` counts
    from the clock's creation and ``time()`` is the epoch time the simulator stamps its batches with.
    Works with any server that has ``sync_loop`` and ``advance(seconds)`` (an ``InProcessServer``
    driven from a thread without a running loop, or a :class:`VirtualSimulator` from anywhere).
    """

    def __init__(self, server: Any) -> None:
        self.server = server
        self._start = server.sync_loop.time()

    def time(self) -> float:
        return VIRTUAL_EPOCH + self.server.sync_loop.time()

    def monotonic(self) -> float:
        return self.server.sync_loop.time() - self._start

    def sleep_sync(self, seconds: float) -> None:
        self.server.advance(max(0.0, float(seconds)))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return f"SimulatorClock(monotonic={self.monotonic():.3f})"


class VirtualSimulator(InProcessServer):
    """An :class:`InProcessServer` a notebook cell can use directly: its loop runs on a worker thread.

    ``client()`` returns an ``anthropic.Anthropic`` whose requests are served on virtual time,
    ``clock`` is the :class:`SimulatorClock` to sleep on, ``advance(s)`` lets ``s`` seconds pass,
    and ``run(coro)`` runs async code (an ``AsyncAnthropic`` fan-out, say) on the same virtual time.
    Everything else (``ledger()``, ``set_scenario``, ``set_rate_limits``, ``script``) is the
    simulator's usual controls. ``close()`` releases the loop and the thread.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="virtual-simulator")
        self._worker_ident: int | None = None
        self.clock = SimulatorClock(self)

    def _on_worker(self, fn: Callable[..., T], *args: Any) -> T:
        if threading.get_ident() == self._worker_ident:  # already there (a request made from run())
            return fn(*args)

        def call() -> T:
            self._worker_ident = threading.get_ident()
            return fn(*args)

        return self._worker.submit(call).result()

    def client(self, api_key: str = "sim-key-default", **kwargs: Any) -> SyncClient:
        """An ``anthropic.Anthropic`` client served on this simulator's virtual time."""
        import anthropic

        inner = SyncASGITransport(self._connection(), loop=self.sync_loop)
        http = httpx2.Client(transport=_OnWorker(inner, self._on_worker), base_url=BASE_URL)
        return anthropic.Anthropic(base_url=BASE_URL, api_key=api_key, http_client=http, **kwargs)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass: batches progress, at no wall-time cost."""
        self._on_worker(super().advance, seconds)

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` to completion on the simulator's virtual time (use :meth:`async_client` inside)."""

        async def wrapped() -> T:
            return await awaitable

        return self._on_worker(self.sync_loop.run_until_complete, wrapped())

    def close(self) -> None:
        """Stop the batch processor, release the virtual loop and the worker thread (the ledger stays)."""
        try:
            self._on_worker(lambda: None)  # let a request in flight finish first
        except RuntimeError:  # the worker already stopped (at interpreter exit): nothing is in flight
            pass
        super().close()
        self._worker.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"VirtualSimulator(seed={self.config.seed}, time_scale={self.config.time_scale})"


class _OnWorker(httpx2.BaseTransport):
    """A transport that serves each request on the simulator's worker thread."""

    def __init__(self, inner: httpx2.BaseTransport, on_worker: Callable[..., Any]) -> None:
        self._inner = inner
        self._on_worker = on_worker

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._on_worker(self._inner.handle_request, request)

    def close(self) -> None:
        self._inner.close()
