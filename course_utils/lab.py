"""The lab bench the lessons measure on: a private virtual-time run, a quiet simulator, a percentile.

Lessons 05 to 08 run their notebook workloads the same way: on a fresh virtual-time loop (so a run
gives the same figures on any machine under any load), against an in-process simulator without rate
limits, summarised by nearest-rank percentiles. These helpers are the foundation's, not one lesson's.
"""

from __future__ import annotations

import math
import random
from typing import Any, Awaitable, Callable, Iterable, TypeVar

from .clock import run_virtual
from .mock_provider.inprocess import InProcessServer

__all__ = ["on_virtual_time", "sim", "percentile", "NOOP_CYCLES"]

T = TypeVar("T")


def on_virtual_time(make: Callable[[], Awaitable[T]], *, seed: int | None = 0) -> T:
    """Run ``make()`` to completion on a fresh virtual-time loop in a helper thread, and return its result.

    A notebook's kernel already runs a loop in its thread; this one is private, so the kernel just
    waits the CPU time it takes (virtual seconds cost nothing). ``seed`` seeds Python's ``random``
    first (the SDK's own retry jitter draws from it), so a run gives the same figures every time.
    (:func:`~course_utils.clock.run_virtual` does the threading.)"""
    if seed is not None:
        random.seed(seed)
    return run_virtual(_awaited(make), noop_cycles=NOOP_CYCLES)


NOOP_CYCLES = 8
"""Idle cycles the measurement loop runs before each jump of virtual time.

looptime runs 42 by default, so that a coroutine between two awaits can still schedule its timer
before time moves; that idling is half the CPU time of these workloads (a request through the SDK,
httpx and the ASGI app is about 200 loop cycles). 8 gives the same figures in every section of
lesson 05 (``tests/test_resilience_measure.py`` compares them with the default) at half the cost.
"""


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def sim(scenario: Any = "calm", *, seed: int = 0) -> InProcessServer:
    """An in-process simulator with realistic latency and no rate limits (faults come from ``scenario``).

    A context manager, as :class:`InProcessServer` is: ``with sim(...) as server:`` closes it after use.
    """
    server = InProcessServer(seed=seed, time_scale=1.0, rate_limit_tier="unlimited")
    try:
        server.set_scenario(scenario)
    except BaseException:  # a scenario it refuses: the caller never gets the server to close
        server.close()
        raise
    return server


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0-1) by the nearest-rank method, ignoring NaN; NaN for no values."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
