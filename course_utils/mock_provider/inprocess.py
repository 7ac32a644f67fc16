"""A simulator served inside the caller's process and event loop: no thread, no socket, no port.

SDK clients reach it through :mod:`course_utils.asgi_transport`. On a virtual-time loop
(:func:`course_utils.clock.virtual_loop`) it therefore shares the caller's clock: simulated
latency, rate-limit refill, ``retry-after``, outages and batch processing cost no wall time, and
what the code under test observes cannot depend on how fast or busy the machine is. Checks and
tests use it; notebooks use :class:`~course_utils.mock_provider.server.MockServer`, whose latency
students can watch.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import weakref
from pathlib import Path
from typing import Any

from ..asgi_transport import StreamingASGITransport, SyncASGITransport
from ..clock import shutdown_loop, virtual_loop
from .config import SimulatorConfig
from .controls import SimulatorControls
from .app import create_app
from .simulator import Simulator

__all__ = ["InProcessServer", "BASE_URL"]

_BATCHES = "/v1/messages/batches"

BASE_URL = "http://simulator.invalid"
"""The base URL in-process clients use (never resolved: no request leaves the process)."""


class InProcessServer(SimulatorControls):
    """A :class:`Simulator` that SDK clients call in-process.

    ``time_scale`` is taken as given (the CI cap of ``COURSE_FORCE_TIME_SCALE`` does not apply:
    on virtual time, realistic latency is free). The batch processor runs as a task on the loop of
    the first async request; a sync client's requests run on the server's own virtual loop.

    Each request spends a seeded, jittered transit time on the network before it reaches the
    provider (median ``transit_s``), and a client's first request also sets up its connection
    (``connect_s``, TCP and TLS handshakes), both scaled by ``time_scale``. A client-side limiter
    started before its first request arrives, or kept with no headroom, then meets the provider's
    limit the way it does in production, reproducibly.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        scenario: str = "calm",
        rate_limit_tier: str = "default",
        state_dir: str | Path | None = None,
        transit_s: float = 0.02,
        connect_s: float = 0.15,
    ) -> None:
        config = SimulatorConfig(
            seed=seed,
            time_scale=time_scale,
            scenario=scenario,
            rate_limit_tier=rate_limit_tier,
            state_dir=Path(state_dir) if state_dir else None,
        )
        self.simulator = Simulator(config)
        self.transit_s = transit_s
        self.connect_s = connect_s
        self._network = random.Random(f"transit-{seed}")
        self._app = create_app(self.simulator)
        self._processors: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._sync_loop: asyncio.AbstractEventLoop | None = None

    def _connection(self) -> Any:
        """The ASGI app as one client's connection pool reaches it.

        A request takes an idle connection if the pool has one and otherwise opens a new one,
        paying ``connect_s``; the connection goes back to the pool when the response is done.
        """
        idle = 0

        async def serve(scope: Any, receive: Any, send: Any) -> None:
            nonlocal idle
            if scope["path"].startswith(_BATCHES):
                self._process_batches()
            delay = self.transit_s * self._network.lognormvariate(0.0, 0.5)
            if idle > 0:
                idle -= 1
            else:
                delay += self.connect_s
            try:
                if delay > 0 and self.config.time_scale > 0:
                    await asyncio.sleep(delay * self.config.time_scale)
                await self._app(scope, receive, send)
            finally:
                idle += 1

        return serve

    def _process_batches(self) -> None:
        # The batch processor a real server starts in its lifespan, started on this loop once a
        # client uses batches (a background task on every loop would outlive short-lived loops).
        loop = asyncio.get_running_loop()
        task = self._processors.get(loop)
        if task is None or task.done():
            self.simulator.loop = loop
            self._processors[loop] = loop.create_task(self.simulator.run_batches(), name="simulator-batches")

    def async_client(self, api_key: str = "sim-key-default", **kwargs: Any) -> Any:
        """An ``anthropic.AsyncAnthropic`` client served by this simulator on the running loop."""
        import httpx2

        http = httpx2.AsyncClient(transport=StreamingASGITransport(self._connection()), base_url=BASE_URL)
        return _async_client_class()(base_url=BASE_URL, api_key=api_key, http_client=http, **kwargs)

    def client(self, api_key: str = "sim-key-default", **kwargs: Any) -> Any:
        """An ``anthropic.Anthropic`` client; each request runs the simulator on a private virtual loop."""
        import anthropic
        import httpx2

        http = httpx2.Client(transport=SyncASGITransport(self._connection(), loop=self.sync_loop), base_url=BASE_URL)
        return anthropic.Anthropic(base_url=BASE_URL, api_key=api_key, http_client=http, **kwargs)

    @property
    def sync_loop(self) -> asyncio.AbstractEventLoop:
        """The virtual-time loop sync clients' requests run on (running it longer lets time pass)."""
        if self._sync_loop is None:
            self._sync_loop = virtual_loop()
            # Also when the server is simply dropped, as checks do: stop its tasks, close the loop.
            # The finalizer holds the tasks itself: collected with the server, they would already be
            # gone from asyncio.all_tasks() when it runs, and die pending.
            self._finalizer = weakref.finalize(self, _close_loop, self._sync_loop, self._processors)
        return self._sync_loop

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass on the sync side: the simulator's own loop runs that
        long (batches progress, buckets refill), at no wall-time cost. Not for use inside a loop."""
        self.sync_loop.run_until_complete(asyncio.sleep(max(0.0, float(seconds))))

    def close(self) -> None:
        """Stop the batch processors and release the private loop (the ledger stays readable)."""
        for task in self._processors.values():
            task.cancel()
        self._processors.clear()
        if self._sync_loop is not None:
            self._finalizer()
            self._sync_loop = None

    def __enter__(self) -> "InProcessServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        """``with InProcessServer(...) as server:`` closes the server however the block ends."""
        self.close()

    def __repr__(self) -> str:
        return f"InProcessServer(seed={self.config.seed}, time_scale={self.config.time_scale})"


def _close_loop(loop: asyncio.AbstractEventLoop, tasks: dict[Any, asyncio.Task[None]]) -> None:
    """Shut a private loop down (``tasks`` kept alive until then), whatever thread the finalizer runs in."""
    if loop.is_closed() or loop.is_running():
        return
    # A finalizer may run while another loop runs in this thread; a loop that is not running can
    # be run from any thread, so shut it down on a helper thread.
    helper = threading.Thread(target=shutdown_loop, args=(loop,), name="close-simulator-loop")
    helper.start()
    helper.join()


@functools.cache
def _async_client_class() -> type:
    """``anthropic.AsyncAnthropic`` whose platform headers are resolved when it is made, copies included.

    The SDK resolves them on a client's first request, in a worker thread (``asyncify(get_platform)``).
    A virtual loop cannot wait for a thread: while one runs, looptime moves virtual time in step with
    real time, so how long the thread took (how busy the machine was) moved that request's latency
    and the figures measured from it. Resolving them in ``__init__`` covers ``with_options`` and
    ``copy`` too: they build a new client of the same class, which the SDK leaves unresolved.
    """
    import anthropic
    from anthropic._base_client import get_platform

    class InProcessAsyncAnthropic(anthropic.AsyncAnthropic):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._platform = get_platform()  # the value the SDK would compute, without a thread

    InProcessAsyncAnthropic.__qualname__ = "InProcessAsyncAnthropic"
    return InProcessAsyncAnthropic
