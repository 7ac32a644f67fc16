"""Per-tenant concurrency caps: how many of a tenant's requests may be in flight at once.

A rate limit counts requests as they *start*; a stream then holds a connection, a worker and the
organisation's output-token budget for as long as it runs. By Little's law the streams a tenant keeps
open are its rate times their length: 60 requests a minute of 30-second streams is 30 streams at
once, all within the RPM. So a gateway caps each tenant's streams in flight as well
(:class:`ConcurrencyCap`, refused with a 429 and ``retry-after`` like a rate limit), and with long
streams that cap, not the RPM, is the limit that binds. :func:`stream_caps` measures it on virtual
time against an in-process simulator whose model is scripted to answer at length.

:class:`ConcurrencyCap` keeps its counts in this process's memory (one gateway process); across
processes the same cap needs a shared counter with leases that expire (a crashed process must not hold
a slot for ever), e.g. a Redis sorted set of (lease id, expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, AsyncIterator

from ..clock import SYSTEM_CLOCK
from ..clients import AsyncClient
from ..concurrency import Demand, run_each, simulator_session
from ..lab import NOOP_CYCLES
from .memory import MemoryLimiter
from .plans import Plan
from .errors import TenancyError

__all__ = ["ConcurrencyCap", "TenantBusy", "StreamCapRun", "stream_caps", "LIMITERS"]

LIMITERS = ("RPM only", "RPM + concurrency cap")
MODEL = "claude-haiku-5-5"
LONG_REPLY_WORDS = 3000
"""The scripted long answer: about 4,000 output tokens, a report-sized stream."""


class TenantBusy(TenancyError):
    """The tenant already has ``cap`` requests in flight (answer 429 with a short ``retry-after``)."""

    def __init__(self, tenant_id: str, cap: int):
        self.tenant_id, self.cap = tenant_id, cap
        super().__init__(f"tenant {tenant_id!r} already has {cap} requests in flight (its concurrency cap)")


class ConcurrencyCap:
    """At most ``cap`` requests in flight per tenant (thread-safe; one process)."""

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError(f"a concurrency cap is at least 1, not {cap!r}")
        self.cap = cap
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def try_enter(self, tenant_id: str) -> bool:
        """Take a slot for ``tenant_id``; False (nothing taken) when it has ``cap`` in flight."""
        with self._lock:
            n = self._in_flight.get(tenant_id, 0)
            if n >= self.cap:
                return False
            self._in_flight[tenant_id] = n + 1
            return True

    def leave(self, tenant_id: str) -> None:
        """Give a slot back (the response ended, failed or was cancelled)."""
        with self._lock:
            n = self._in_flight.get(tenant_id, 0)
            if n <= 0:
                raise RuntimeError(f"tenant {tenant_id!r} has no request in flight to leave")
            if n == 1:
                del self._in_flight[tenant_id]
            else:
                self._in_flight[tenant_id] = n - 1

    def in_flight(self, tenant_id: str) -> int:
        with self._lock:
            return self._in_flight.get(tenant_id, 0)

    @contextlib.asynccontextmanager
    async def slot(self, tenant_id: str) -> AsyncIterator[None]:
        """``async with cap.slot(t):`` around the whole request, stream included; raises :class:`TenantBusy`."""
        if not self.try_enter(tenant_id):
            raise TenantBusy(tenant_id, self.cap)
        try:
            yield
        finally:
            self.leave(tenant_id)


@dataclass(frozen=True)
class StreamCapRun:
    """One run: ``requests`` streams of one tenant, one every ``60 / rpm`` s, through one limiter."""

    streams: str
    limiter: str
    requests: int
    admitted: int
    refused_by_rpm: int
    refused_by_cap: int
    peak_in_flight: int
    mean_stream_s: float
    output_tokens: int

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _long_reply() -> str:
    sentence = "Ticket volume rose in week {i}; most were login issues resolved within a day."
    return " ".join(sentence.format(i=i % 52 + 1) for i in range(LONG_REPLY_WORDS // 14))


async def _run(
    streams: str, limiter_name: str, *, rpm: int, cap: int, requests: int, seed: int, stream: bool
) -> StreamCapRun:
    async with simulator_session(seed=seed, rate_limit_tier="unlimited") as session:
        if streams == "long":
            session.server.script("quarterly support report", _long_reply())
        return await _through_limiter(
            session.client, streams, limiter_name, rpm=rpm, cap=cap, requests=requests, stream=stream
        )


async def _through_limiter(
    client: AsyncClient, streams: str, limiter_name: str, *, rpm: int, cap: int, requests: int, stream: bool
) -> StreamCapRun:
    prompt = "Write the quarterly support report." if streams == "long" else "Classify this ticket: cannot log in."
    plan = Plan("pro", rpm, 10**9, 10**9, Decimal(1000), frozenset({MODEL}))
    limiter = MemoryLimiter(burst_s=1.0, clock=SYSTEM_CLOCK)  # the plan's RPM, enforced over about a second
    caps = ConcurrencyCap(cap) if limiter_name == LIMITERS[1] else None
    loop = asyncio.get_running_loop()
    counts = {"admitted": 0, "rpm": 0, "cap": 0, "in_flight": 0, "peak": 0, "tokens": 0}
    durations: list[float] = []

    async def one(i: int) -> None:
        await asyncio.sleep(i * 60.0 / rpm)
        if not limiter.try_acquire("acme", plan, Demand(1, 0, 0)).allowed:
            counts["rpm"] += 1
            return
        try:
            async with caps.slot("acme") if caps else contextlib.nullcontext():
                counts["admitted"] += 1
                counts["in_flight"] += 1
                counts["peak"] = max(counts["peak"], counts["in_flight"])
                started = loop.time()
                try:
                    if stream:
                        async with client.messages.stream(
                            model=MODEL, max_tokens=8000, messages=[{"role": "user", "content": prompt}]
                        ) as events:
                            message = await events.get_final_message()
                    else:
                        message = await client.messages.create(
                            model=MODEL, max_tokens=8000, messages=[{"role": "user", "content": prompt}]
                        )
                finally:
                    counts["in_flight"] -= 1
                durations.append(loop.time() - started)
                counts["tokens"] += message.usage.output_tokens
        except TenantBusy:
            counts["cap"] += 1

    await asyncio.gather(*(one(i) for i in range(requests)))
    return StreamCapRun(
        streams,
        limiter_name,
        requests,
        counts["admitted"],
        counts["rpm"],
        counts["cap"],
        counts["peak"],
        round(sum(durations) / len(durations), 2) if durations else 0.0,
        counts["tokens"],
    )


def stream_caps(
    *, rpm: int = 60, cap: int = 4, requests: int = 60, seed: int = 0, stream: bool = False
) -> list[StreamCapRun]:
    """Short and long answers, each through the RPM limiter alone and with a concurrency cap of
    ``cap``: ``requests`` requests of one tenant, one every ``60 / rpm`` seconds (exactly its RPM),
    on virtual time. A refused request is counted, not retried. ``stream=True`` streams them (the SSE
    events cost far more CPU); streamed or not, a request holds its slot until its last token."""
    if rpm < 1 or cap < 1 or requests < 1:
        raise ValueError("rpm, cap and requests are at least 1")
    variants = {
        f"{streams}, {name}": (
            lambda s=streams, name=name: _run(s, name, rpm=rpm, cap=cap, requests=requests, seed=seed, stream=stream)
        )
        for streams in ("short", "long")
        for name in LIMITERS
    }
    return run_each(variants, seed=seed, noop_cycles=NOOP_CYCLES)
