"""Approaches side by side under a rate limit, on the simulator and on virtual time.

A demo whose conclusion depends on timing ("the dispatcher meets no 429") must not depend on how
busy the machine is. :func:`simulate_runs` runs each approach against its own fresh in-process
simulator (:class:`~course_utils.mock_provider.inprocess.InProcessServer`) on a virtual-time loop
(:func:`course_utils.clock.virtual_loop`), the way the checks do: realistic latency, network jitter
and rate-limit refill all cost no wall time, and the same code gives the same figures on any
machine, under any load. Figures come from the simulator's ledger.

Each approach is ``async def run(client) -> results``: it gets an ``AsyncAnthropic`` (SDK retries
off; ``client.with_options(max_retries=2)`` turns them back on) on a key with the given limits,
and returns one result per item, an exception for an item it lost.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Mapping

from ..clients import AsyncClient
from ..clock import VIRTUAL_EPOCH, run_virtual
from ..progress import ProgressCallback, ProgressEvent

__all__ = ["SimulatedRun", "RunComparison", "simulate_runs", "asimulate_runs", "NO_LIMIT"]

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
    out = RunComparison()
    started = time.monotonic()
    for name, approach in approaches.items():
        out.append(
            _in_thread(
                lambda approach=approach, name=name: run_virtual(
                    _one(
                        name,
                        approach,
                        rpm=rpm,
                        itpm=itpm,
                        otpm=otpm,
                        burst_s=burst_s,
                        seed=seed,
                        time_scale=time_scale,
                        acceleration=acceleration,
                    )
                )
            )
        )
        if on_progress is not None:
            on_progress(ProgressEvent(len(out), len(approaches), time.monotonic() - started, latest=out[-1]))
    return out


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
    import asyncio

    out = RunComparison()
    started = time.monotonic()
    for name, approach in approaches.items():
        out.append(
            await asyncio.to_thread(
                run_virtual,
                _one(
                    name,
                    approach,
                    rpm=rpm,
                    itpm=itpm,
                    otpm=otpm,
                    burst_s=burst_s,
                    seed=seed,
                    time_scale=time_scale,
                    acceleration=acceleration,
                ),
            )
        )
        if on_progress is not None:
            on_progress(ProgressEvent(len(out), len(approaches), time.monotonic() - started, latest=out[-1]))
    return out


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
    import asyncio

    from ..mock_provider.inprocess import InProcessServer
    from ..mock_provider.ratelimit import RateLimits

    server = InProcessServer(seed=seed, time_scale=time_scale)
    key = f"sim-key-l03-{''.join(c if c.isalnum() else '-' for c in name.lower())}"
    # The key stands for an organisation of its own with these limits (limits belong to the organisation).
    server.set_rate_limits(key, RateLimits(int(rpm), int(itpm), int(otpm), burst_s=burst_s))
    if acceleration is not None:
        server.simulator.limiter.set_acceleration(acceleration)
    burst = max(1.0, rpm * server.simulator.limiter.burst_for(key) / 60.0)
    client = server.async_client(api_key=key, max_retries=0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        results = list(await approach(client))
    finally:
        await client.close()
    virtual_s = loop.time() - started
    server.close()
    ledger = server.ledger()
    rows = ledger[(ledger["api_key"] == key) & (ledger["endpoint"] == "/v1/messages")].copy()
    # The ledger stamps epoch time, which on a virtual loop is VIRTUAL_EPOCH + the loop's clock.
    origin = VIRTUAL_EPOCH + started
    rows["arrival"] = rows["arrival"] - origin
    rows["finish"] = rows["finish"] - origin
    return SimulatedRun(name, results, rows.reset_index(drop=True), float(rpm), burst, virtual_s)


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
