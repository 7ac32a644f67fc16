"""The noisy neighbour, measured: one flooding tenant and small ones sharing one organisation's limit.

Three gateways in front of the same provider organisation, each on its own fresh in-process simulator and on
virtual time (the figures are the same on any machine, under any load):

* ``fifo``: every request goes straight to the provider, first come, first served. The bulk import
  (10 workers) keeps the organisation's limit full, and everyone's requests meet 429s.
* ``per-tenant limits``: a :class:`~.memory.MemoryLimiter` per tenant's plan admits or refuses
  (429 with ``retry-after``) before the provider is called. The flood is held to its plan; the
  small tenants' requests fit in what is left.
* ``fair queueing``: a :class:`~.fair.FairScheduler` (deficit round robin by estimated tokens)
  feeds lesson 03's :class:`~course_utils.concurrency.RateLimitedDispatcher`, which paces all traffic
  below the organisation's limit: nobody gets a 429, and a small tenant waits about one round, not behind the flood.

Every client, the import's and the small tenants', retries each 429 after its ``retry-after`` until it
has an answer (or until ``patience_s`` has passed: then it gives up, status 429). So the figure that
compares the gateways is the **time to an answer, retries included** (``wait_s``: submission to
answer), and a fast 429 is not counted as a short wait. ``refusals`` counts the 429s a request met.

:func:`noisy_neighbour` runs them and returns a :class:`NoisyNeighbour` with one row per request
(``frame()``) and per tenant and gateway (``summary()``: p95 time to an answer, 429s per request,
share of requests given up).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

import anthropic

from ..clock import SYSTEM_CLOCK
from ..concurrency import Demand, RateLimitedDispatcher, SimulatorSession, estimate_demand, run_each, simulator_session
from ..progress import ProgressCallback, ProgressEvent
from ..lab import NOOP_CYCLES
from .fair import FairScheduler
from .memory import MemoryLimiter
from .plans import Plan

__all__ = ["GATEWAYS", "NoisyNeighbour", "noisy_neighbour", "tenant_mix"]

GATEWAYS = ("fifo", "per-tenant limits", "fair queueing")
BULK_WORKERS = 10
"""Concurrent workers of the bulk import (tenant ``bulk``)."""
MODEL = "claude-haiku-5-5"


def tenant_mix(
    flood: int = 60, small_tenants: int = 9, small_each: int = 5, interval_s: float = 20.0
) -> list[tuple[float, str]]:
    """The workload: ``(submit time in s, tenant)`` pairs. Tenant ``bulk`` submits ``flood``
    requests at once (an import); ``small_tenants`` tenants each submit ``small_each`` requests,
    one every ``interval_s`` seconds, staggered so they do not arrive together."""
    if flood < 0 or small_tenants < 0 or small_each < 0 or interval_s <= 0:
        raise ValueError("counts must be >= 0 and interval_s > 0")
    plan = [(0.0, "bulk")] * flood
    for k in range(small_tenants):
        offset = interval_s * k / max(1, small_tenants)
        plan += [(offset + i * interval_s, f"t{k + 1}") for i in range(small_each)]
    return sorted(plan, key=lambda p: p[0])


def _body(tenant: str, n: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 150,
        "messages": [{"role": "user", "content": f"[{tenant}] Classify support ticket #{n}: 'cannot log in'."}],
    }


@dataclass
class NoisyNeighbour:
    """Every request of every gateway: ``frame()`` (one row per request), ``summary()`` (per gateway
    and tenant: requests, p95 time to an answer in s (retries included), 429s met per request, and
    the share of requests given up)."""

    rows: list[dict[str, Any]]
    provider_rpm: int

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            self.rows, columns=["gateway", "tenant", "submitted_s", "finished_s", "wait_s", "refusals", "status"]
        )

    def summary(self) -> Any:
        df = self.frame()
        if df.empty:
            return df
        g = df.groupby(["gateway", "tenant"], sort=False)
        out = g.agg(requests=("status", "size"))
        out["p95_answer_s"] = g["wait_s"].quantile(0.95).round(2)
        out["refusals_per_request"] = g["refusals"].mean().round(2)
        out["share_given_up"] = g["status"].apply(lambda s: float((s == 429).mean())).round(3)
        return out.reset_index()

    def small_tenants(self) -> Any:
        """:meth:`summary` without the flooding tenant (``bulk``)."""
        s = self.summary()
        return s[s["tenant"] != "bulk"].reset_index(drop=True)


async def _run_gateway(
    gateway: str,
    mix: list[tuple[float, str]],
    *,
    provider_rpm: int,
    seed: int,
    time_scale: float,
    patience_s: float,
) -> list[dict[str, Any]]:
    async with simulator_session(seed=seed, time_scale=time_scale, api_key="sim-key-l07-shared") as session:
        return await _through_gateway(session, gateway, mix, provider_rpm=provider_rpm, patience_s=patience_s)


async def _through_gateway(
    session: SimulatorSession, gateway: str, mix: list[tuple[float, str]], *, provider_rpm: int, patience_s: float
) -> list[dict[str, Any]]:
    from ..mock_provider.ratelimit import RateLimits

    # The organisation's limit, which every key of it shares (one key or forty: the same buckets).
    limits = RateLimits(provider_rpm, 10**8, 10**8, burst_s=1.0)
    session.server.set_org_limits(limits)
    client = session.client
    loop = asyncio.get_running_loop()
    start = session.started
    rows: list[dict[str, Any]] = []

    # Plans for the per-tenant gateway: the import may use a third of the limit; small tenants a tenth each.
    share = Decimal(1)
    plans = {
        "bulk": Plan("bulk", max(1, provider_rpm // 3), 10**8, 10**8, share, frozenset({MODEL})),
        "small": Plan("small", max(1, provider_rpm // 10), 10**8, 10**8, share, frozenset({MODEL})),
    }
    limiter = MemoryLimiter(burst_s=2.0, clock=SYSTEM_CLOCK)
    dispatcher = RateLimitedDispatcher(client, limits=limits, max_concurrency=8, clock=SYSTEM_CLOCK)
    import_workers = asyncio.Semaphore(BULK_WORKERS)

    async def persistent(body: dict[str, Any], deadline: float) -> tuple[int, int]:
        """A client that retries every 429 after its retry-after until it has an answer (or the deadline)."""
        refusals = 0
        while True:
            try:
                await client.messages.create(**body)
                return 200, refusals
            except anthropic.RateLimitError as exc:
                refusals += 1
                wait = float(exc.response.headers.get("retry-after", "1"))
                if loop.time() + wait > deadline:
                    return 429, refusals
                await asyncio.sleep(wait)

    async def limited(tenant: str, body: dict[str, Any], deadline: float) -> tuple[int, int]:
        plan = plans["bulk" if tenant == "bulk" else "small"]
        demand = Demand(1, 0, 0)
        refusals = 0
        while True:  # the tenant's client honours our retry-after too
            decision = limiter.try_acquire(tenant, plan, demand)
            if decision.allowed:
                status, more = await persistent(body, deadline)
                return status, refusals + more
            refusals += 1
            wait = max(1, math.ceil(decision.retry_after_s))
            if loop.time() + wait > deadline:
                return 429, refusals
            await asyncio.sleep(wait)

    async def one(at: float, tenant: str, n: int, sched: FairScheduler | None) -> None:
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        submitted = loop.time() - start
        body = _body(tenant, n)
        deadline = loop.time() + patience_s
        refusals = 0
        if gateway == "fifo":
            if tenant == "bulk":
                async with import_workers:
                    status, refusals = await persistent(body, deadline)
            else:
                status, refusals = await persistent(body, deadline)
        elif gateway == "per-tenant limits":
            if tenant == "bulk":
                async with import_workers:
                    status, refusals = await limited(tenant, body, deadline)
            else:
                status, refusals = await limited(tenant, body, deadline)
        else:
            assert sched is not None
            while True:  # the dispatcher paces below the limit; a 429 would be retried like any other
                try:
                    await sched.submit(tenant, body)
                    status = 200
                    break
                except anthropic.RateLimitError:
                    refusals += 1
                    if loop.time() + 1 > deadline:
                        status = 429
                        break
                    await asyncio.sleep(1)
        finished = loop.time() - start
        rows.append(
            {
                "gateway": gateway,
                "tenant": tenant,
                "submitted_s": round(submitted, 3),
                "finished_s": round(finished, 3),
                "wait_s": round(finished - submitted, 3),
                "refusals": refusals,
                "status": status,
            }
        )

    if gateway == "fair queueing":
        async with FairScheduler(
            lambda body: dispatcher.create(**body),
            max_in_flight=2,
            quantum=100,
            size=lambda b: estimate_demand(b, 20).input_tokens + 20,
        ) as sched:
            await asyncio.gather(*(one(at, t, i, sched) for i, (at, t) in enumerate(mix)))
    elif gateway in GATEWAYS:
        await asyncio.gather(*(one(at, t, i, None) for i, (at, t) in enumerate(mix)))
    else:
        raise ValueError(f"unknown gateway {gateway!r}; choose from {', '.join(GATEWAYS)}")
    return rows


def noisy_neighbour(
    gateways: Iterable[str] = GATEWAYS,
    *,
    mix: list[tuple[float, str]] | None = None,
    provider_rpm: int = 60,
    seed: int = 0,
    time_scale: float = 1.0,
    patience_s: float = 900.0,
    on_progress: ProgressCallback | None = None,
) -> NoisyNeighbour:
    """Run the workload ``mix`` (default :func:`tenant_mix`) through each gateway, on virtual time.

    The shared key allows ``provider_rpm`` requests per minute, enforced over about a second (the
    rate-limits page's "60 RPM might be enforced as 1 request per second"). A client gives a
    request up after ``patience_s`` seconds of 429s. Blocks until done (each
    gateway runs on its own thread and virtual loop, so a notebook cell's loop is not involved);
    ``on_progress`` gets a ``ProgressEvent`` per gateway (``latest``: its name).
    """
    workload = tenant_mix() if mix is None else list(mix)
    names = list(gateways)
    for name in names:
        if name not in GATEWAYS:
            raise ValueError(f"unknown gateway {name!r}; choose from {', '.join(GATEWAYS)}")
    variants = {
        f"{i}: {name}": (  # keyed by position: a gateway named twice runs twice
            lambda name=name: _run_gateway(
                name, workload, provider_rpm=provider_rpm, seed=seed, time_scale=time_scale, patience_s=patience_s
            )
        )
        for i, name in enumerate(names)
    }

    def progress(event: ProgressEvent) -> None:
        if on_progress is not None:
            on_progress(dataclasses.replace(event, latest=names[event.done - 1]))

    runs = run_each(variants, seed=seed, noop_cycles=NOOP_CYCLES, on_progress=progress)
    return NoisyNeighbour([row for rows in runs for row in rows], provider_rpm)
