"""Approaches side by side under a rate limit, on the simulator and on virtual time.

A demo whose conclusion depends on timing ("the dispatcher meets no 429") must not depend on how
busy the machine is. :func:`simulate_runs` runs each approach against its own fresh in-process
simulator (:class:`~course_utils.mock_provider.inprocess.InProcessServer`) on a virtual-time loop
(:func:`course_utils.clock.virtual_loop`), the way the checks do: realistic latency, network jitter
and rate-limit refill all cost no wall time, and the same code gives the same figures on any
machine, under any load. Figures come from the simulator's ledger.

The kit, which lesson 07's measurements use too: :func:`simulator_session` (a fresh simulator, a
client, and the ledger's rows timed from the start) and :func:`run_each` / :func:`arun_each` (each
variant on its own virtual loop, in order, with progress).

Each approach is ``async def run(client) -> results``: it gets an ``AsyncAnthropic`` (SDK retries
off; ``client.with_options(max_retries=2)`` turns them back on) on a key with the given limits,
and returns one result per item, an exception for an item it lost.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping, TypeVar

from ..clients import AsyncClient
from ..clock import DEFAULT_NOOP_CYCLES, VIRTUAL_EPOCH, run_virtual
from ..progress import ProgressCallback, ProgressEvent

__all__ = [
    "SimulatedRun",
    "RunComparison",
    "simulate_runs",
    "asimulate_runs",
    "NO_LIMIT",
    "SimulatorSession",
    "simulator_session",
    "run_each",
    "arun_each",
]

T = TypeVar("T")

NO_LIMIT = 10**9
"""A per-minute limit so high it never binds (for the limits a demo is not about)."""

Approach = Callable[[AsyncClient], Awaitable[Iterable[Any]]]


@dataclass
class SimulatedRun:
    """One approach's run: its results and the ledger rows of every attempt it made.

    ``ledger`` times are virtual seconds from the run's start. ``burst`` is the provider's burst
    capacity in requests (``rpm * burst_s / 60``, at least 1): in any interval of ``s`` seconds the
    provider admits at most ``burst + rpm / 60 * s`` requests, which bounds :attr:`limit_used`.
    """

    approach: str
    results: list[Any]
    ledger: Any = field(repr=False)
    rpm: float
    burst: float
    virtual_s: float

    @property
    def items(self) -> int:
        return len(self.results)

    @property
    def succeeded(self) -> int:
        return sum(not isinstance(r, BaseException) for r in self.results)

    @property
    def failed(self) -> int:
        return self.items - self.succeeded

    @property
    def rate_limited(self) -> int:
        """429 responses the provider sent (every attempt counts)."""
        return int((self.ledger["status"] == 429).sum())

    @property
    def retries(self) -> int:
        """Attempts beyond one per item (the ledger's rows minus the items)."""
        return max(0, len(self.ledger) - self.items)

    def arrivals(self) -> list[float]:
        """Arrival times of the admitted requests (status 200), sorted, in seconds from the run's start."""
        ok = self.ledger[self.ledger["status"] == 200]
        return sorted(float(t) for t in ok["arrival"])

    @property
    def span_s(self) -> float:
        """Seconds from the first admitted arrival to the last."""
        times = self.arrivals()
        return times[-1] - times[0] if times else 0.0

    @property
    def limit_used(self) -> float:
        """Admitted requests / what the limit allows over their span (``burst + rpm / 60 * span``).

        At most 1.0: the provider's bucket never admits more than that in any interval.
        """
        admitted = len(self.arrivals())
        return admitted / (self.burst + self.rpm / 60.0 * self.span_s) if admitted else 0.0

    def frame(self) -> Any:
        """One row per attempt: ``arrival_s``, ``finish_s``, ``status``, ``output_tokens``."""
        df = self.ledger[["arrival", "finish", "status", "output_tokens"]]
        return df.rename(columns={"arrival": "arrival_s", "finish": "finish_s"}).reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """The figures a sentence quotes."""
        return {
            "approach": self.approach,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "rate_limited_429": self.rate_limited,
            "retries": self.retries,
            "virtual_s": round(self.virtual_s, 2),
            "span_s": round(self.span_s, 2),
            "limit_used_pct": round(100 * self.limit_used, 1),
        }


class RunComparison(list):
    """The :class:`SimulatedRun` of each approach, in the order given; ``.frame()`` has one row each."""

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([run.summary() for run in self]).set_index("approach")

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for run in self:
                if run.approach == key:
                    return run
            raise KeyError(key)
        return super().__getitem__(key)


def simulate_runs(
    approaches: Mapping[str, Approach],
    *,
    rpm: float,
    itpm: float = NO_LIMIT,
    otpm: float = NO_LIMIT,
    burst_s: float = 1.0,
    seed: int = 0,
    time_scale: float = 1.0,
    acceleration: Any | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunComparison:
    """Run each approach on its own fresh simulator and organisation, on virtual time; return their figures.

    ``rpm``, ``itpm``, ``otpm``: the organisation's limits per minute (its key's, as every key of it shares them). ``burst_s``: the provider's burst
    capacity in seconds of each rate (1: enforced over about a second, as the API may; ``60``: the
    lenient minute-sized burst), stated here so a demo does not depend on the simulator's default. ``time_scale`` 1.0 is realistic latency,
    free here. Blocks until every run is done (it runs on a private thread, so it can be called
    from a notebook cell whose event loop is busy running the cell; ``await asyncio.to_thread(simulate_runs,
    ...)`` keeps that loop free). ``on_progress`` gets a ``ProgressEvent`` after each approach
    (``elapsed_s`` in wall seconds, ``latest`` the :class:`SimulatedRun`), on the caller's thread.
    """
    limits = dict(rpm=rpm, itpm=itpm, otpm=otpm, burst_s=burst_s, seed=seed, time_scale=time_scale)
    return RunComparison(run_each(_variants(approaches, limits, acceleration), on_progress=on_progress))


async def asimulate_runs(
    approaches: Mapping[str, Approach],
    *,
    rpm: float,
    itpm: float = NO_LIMIT,
    otpm: float = NO_LIMIT,
    burst_s: float = 1.0,
    seed: int = 0,
    time_scale: float = 1.0,
    acceleration: Any | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunComparison:
    """:func:`simulate_runs` for a running event loop (``await`` it in a notebook cell).

    Each approach runs on its own virtual loop in a worker thread, so the caller's loop stays free
    (widgets update, other tasks run); ``on_progress`` is called on the caller's loop.
    """
    limits = dict(rpm=rpm, itpm=itpm, otpm=otpm, burst_s=burst_s, seed=seed, time_scale=time_scale)
    return RunComparison(await arun_each(_variants(approaches, limits, acceleration), on_progress=on_progress))


def _variants(
    approaches: Mapping[str, Approach], limits: dict[str, Any], acceleration: Any | None
) -> dict[str, Callable[[], Awaitable[SimulatedRun]]]:
    return {
        name: (lambda name=name, approach=approach: _one(name, approach, acceleration=acceleration, **limits))
        for name, approach in approaches.items()
    }


async def _one(
    name: str,
    approach: Approach,
    *,
    rpm: float,
    itpm: float,
    otpm: float,
    burst_s: float,
    seed: int,
    time_scale: float,
    acceleration: Any | None = None,
) -> SimulatedRun:
    from ..mock_provider.ratelimit import RateLimits

    key = f"sim-key-l03-{''.join(c if c.isalnum() else '-' for c in name.lower())}"
    # The key stands for an organisation of its own with these limits (limits belong to the organisation).
    limits = RateLimits(int(rpm), int(itpm), int(otpm), burst_s=burst_s)
    async with simulator_session(seed=seed, time_scale=time_scale, api_key=key, limits=limits) as session:
        if acceleration is not None:
            session.server.simulator.limiter.set_acceleration(acceleration)
        burst = max(1.0, rpm * session.server.simulator.limiter.burst_for(key) / 60.0)
        results = list(await approach(session.client))
    return SimulatedRun(name, results, session.requests(), float(rpm), burst, session.elapsed_s())


# ----- the measuring kit: one simulator per run, one virtual loop per variant ----------------------
@dataclass
class SimulatorSession:
    """A fresh in-process simulator on the running (virtual) loop, an SDK client of one key (SDK
    retries off), and the loop time the session opened: what a measured run records."""

    server: Any
    client: AsyncClient
    api_key: str
    started: float

    def elapsed_s(self) -> float:
        """Virtual seconds since the session opened."""
        return asyncio.get_running_loop().time() - self.started

    def requests(self) -> Any:
        """The ledger's Messages API rows of this session's key (every attempt), ``arrival`` and ``finish``
        in seconds from the start. (The ledger stamps epoch time: on a virtual loop ``VIRTUAL_EPOCH`` plus
        the loop's clock.)"""
        ledger = self.server.ledger()
        rows = ledger[(ledger["api_key"] == self.api_key) & (ledger["endpoint"] == "/v1/messages")].copy()
        origin = VIRTUAL_EPOCH + self.started
        rows["arrival"] = rows["arrival"] - origin
        rows["finish"] = rows["finish"] - origin
        return rows.reset_index(drop=True)

    def billed_usd(self) -> Decimal:
        """What the simulator's ledger billed, every key and endpoint, exactly."""
        return sum((Decimal(r["cost_usd"]) for r in self.server.simulator.ledger.records()), Decimal(0))


@asynccontextmanager
async def simulator_session(
    *,
    seed: int,
    time_scale: float = 1.0,
    api_key: str = "sim-key-default",
    limits: Any | None = None,
    rate_limit_tier: str = "default",
) -> AsyncIterator[SimulatorSession]:
    """``async with simulator_session(...) as session``: a fresh :class:`~course_utils.mock_provider.InProcessServer`
    on the running loop (``limits``: the key's organisation's :class:`~course_utils.mock_provider.ratelimit.RateLimits`),
    and a client of ``api_key``; the client and the server are closed however the block ends, and
    the session's figures stay readable after it."""
    from ..mock_provider.inprocess import InProcessServer

    with InProcessServer(seed=seed, time_scale=time_scale, rate_limit_tier=rate_limit_tier) as server:
        if limits is not None:
            server.set_rate_limits(api_key, limits)
        client = server.async_client(api_key=api_key, max_retries=0)
        session = SimulatorSession(server, client, api_key, asyncio.get_running_loop().time())
        try:
            yield session
        finally:
            await client.close()


class _Variants:
    """The one loop over named variants: each runs on a fresh virtual loop in a helper thread, and
    is recorded (with a progress event) in order. :func:`run_each` and :func:`arun_each` only wait."""

    def __init__(
        self,
        variants: Mapping[str, Callable[[], Awaitable[T]]],
        seed: int | None,
        noop_cycles: int,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.jobs = [(lambda make=make: self._run(make)) for make in variants.values()]
        self.results: list[T] = []
        self._seed, self._noop_cycles, self._on_progress = seed, noop_cycles, on_progress
        self._started = time.monotonic()

    def _run(self, make: Callable[[], Awaitable[T]]) -> T:
        if self._seed is not None:
            random.seed(self._seed)  # the SDK's retry jitter draws from it: the same figures every run
        return run_virtual(make(), noop_cycles=self._noop_cycles)

    def record(self, result: T) -> None:
        self.results.append(result)
        if self._on_progress is not None:
            event = ProgressEvent(len(self.results), len(self.jobs), time.monotonic() - self._started, latest=result)
            self._on_progress(event)


def run_each(
    variants: Mapping[str, Callable[[], Awaitable[T]]],
    *,
    seed: int | None = None,
    noop_cycles: int = DEFAULT_NOOP_CYCLES,
    on_progress: ProgressCallback | None = None,
) -> list[T]:
    """Run each variant (``name -> async factory``) to completion on a fresh virtual loop of its own,
    one after another, in a helper thread; return their results in order. Blocks; ``on_progress``
    gets a ``ProgressEvent`` after each, on the caller's thread. ``seed`` seeds ``random`` before
    each variant; ``noop_cycles`` as in :func:`~course_utils.clock.virtual_loop`."""
    loop = _Variants(variants, seed, noop_cycles, on_progress)
    for job in loop.jobs:
        loop.record(_in_thread(job))
    return loop.results


async def arun_each(
    variants: Mapping[str, Callable[[], Awaitable[T]]],
    *,
    seed: int | None = None,
    noop_cycles: int = DEFAULT_NOOP_CYCLES,
    on_progress: ProgressCallback | None = None,
) -> list[T]:
    """:func:`run_each` for a running event loop: the caller's loop stays free while each variant
    runs in a worker thread; ``on_progress`` is called on it."""
    loop = _Variants(variants, seed, noop_cycles, on_progress)
    for job in loop.jobs:
        loop.record(await asyncio.to_thread(job))
    return loop.results


def _in_thread(fn: Callable[[], Any]) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="simulate-runs", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
