"""Lesson 05's measurements: workloads run on virtual time against an in-process simulator.

Every figure the notebook prints comes from here and from the simulator's ledger. The runs are on
virtual time (:func:`on_virtual_time`): minutes of outage, backoff and timeouts cost a second of
CPU, and the same code gives the same numbers on any machine, so the notebook's prose can quote them.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar


from ..lab import on_virtual_time, percentile, sim
from ..mock_provider.faults import Capacity, Outage, Scenario
from ..retries import AdaptiveThrottle, RetryBudget, RetryPolicy, ThrottledLocally, is_retryable
from .breaker import CircuitBreaker, CircuitOpenError

__all__ = [
    "on_virtual_time",
    "sim",
    "STRATEGIES",
    "strategy_run",
    "StrategyRun",
    "storm_run",
    "STORM_VARIANTS",
    "stacked_run",
    "timeout_run",
    "TIMEOUT_MODES",
    "breaker_run",
    "rps",
    "percentile",
]

T = TypeVar("T")
MODEL = "claude-haiku-5-5"


def body(n: int, model: str = MODEL) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 30,
        "messages": [{"role": "user", "content": f"Write a 15-word status note for order #{n}."}],
    }


def rps(arrivals: Any, *, bin_s: float = 1.0, start: float | None = None) -> Any:
    """Requests per second at the provider: a pandas Series indexed by seconds since ``start``."""
    import pandas as pd

    t = pd.Series(arrivals, dtype=float)
    if len(t) == 0:
        return pd.Series(dtype=float)
    t0 = t.min() if start is None else start
    bins = ((t - t0) // bin_s).astype(int)
    counts = bins.value_counts().sort_index()
    full = counts.reindex(range(0, int(counts.index.max()) + 1), fill_value=0)
    full.index = full.index * bin_s
    return full / bin_s


# ---------------------------------------------------------------------------------------------
# Retry strategies under the flaky scenario
# ---------------------------------------------------------------------------------------------
STRATEGIES = ("no retries", "SDK defaults", "fixed 1 s delay", "exponential, no jitter", "full policy")


@dataclass
class StrategyRun:
    name: str
    ok: list[bool]
    latency_s: list[float]
    ledger: Any

    def summary(self) -> dict[str, Any]:
        n = len(self.ok)
        return {
            "strategy": self.name,
            "success_rate": sum(self.ok) / n,
            "attempts_per_request": len(self.ledger) / n,
            "p50_latency_s": percentile(self.latency_s, 0.5),
            "p99_latency_s": percentile(self.latency_s, 0.99),
            "peak_rps": float(rps(self.ledger["arrival"]).max()) if len(self.ledger) else 0.0,
        }


async def _fixed(make: Callable[[], Awaitable[Any]], attempts: int, delay: Callable[[int], float]) -> Any:
    for attempt in range(1, attempts + 1):
        try:
            return await make()
        except Exception as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            await asyncio.sleep(delay(attempt))


async def strategy_run(
    name: str,
    n: int,
    *,
    rate_per_s: float = 20.0,
    scenario: Any = "flaky",
    seed: int = 0,
    on_progress: Callable[[Any], Any] | None = None,
    **policy: Any,
) -> StrategyRun:
    """``n`` requests arriving at ``rate_per_s`` under ``scenario``, each made with strategy ``name``
    (``policy`` overrides the full policy's settings, e.g. ``base_s``)."""
    with sim(scenario, seed=seed) as server:
        client = server.async_client(max_retries=2 if name == "SDK defaults" else 0)
        policy = RetryPolicy(
            **{"max_attempts": 4, "base_s": 0.5, "cap_s": 8.0, "deadline_s": 30.0, "seed": seed, **policy}
        )
        loop = asyncio.get_running_loop()
        ok: list[bool] = []
        latency: list[float] = []

        async def one(i: int) -> None:
            started = loop.time()

            def make() -> Awaitable[Any]:
                return client.messages.create(**body(i))

            try:
                if name in ("no retries", "SDK defaults"):
                    await make()
                elif name == "fixed 1 s delay":
                    await _fixed(make, 4, lambda a: 1.0)
                elif name == "exponential, no jitter":
                    await _fixed(make, 4, lambda a: 0.5 * 2 ** (a - 1))
                else:
                    await policy.acall(make)
                ok.append(True)
                latency.append(loop.time() - started)
            except Exception:  # noqa: BLE001 - counted as a failed request
                ok.append(False)
            if on_progress is not None:
                from ..progress import ProgressEvent

                on_progress(ProgressEvent(len(ok), n, loop.time() - t0))

        t0 = loop.time()
        tasks = []
        for i in range(n):
            tasks.append(asyncio.ensure_future(one(i)))
            await asyncio.sleep(1.0 / rate_per_s)
        await asyncio.gather(*tasks)
        await client.close()
        rows = server.ledger()
        return StrategyRun(name, ok, latency, rows[rows["endpoint"] == "/v1/messages"].reset_index(drop=True))


# ---------------------------------------------------------------------------------------------
# A retry storm: an outage at a provider whose capacity sheds load above it
# ---------------------------------------------------------------------------------------------
STORM_CAPACITY = Capacity(25.0, shed_cost=0.5)
"""The storm's default provider: 25 requests/s, a shed request costing half a served one."""
STORM_VARIANTS = ("no jitter", "full jitter", "retry budget", "adaptive throttling")
"""How the storm's callers retry: exponential without jitter; full jitter; full jitter with a shared
per-client :class:`RetryBudget` (10%, the SRE book's per-client figure); full jitter behind the SRE
book's client-side :class:`AdaptiveThrottle` (K = 2)."""


async def storm_run(
    variant: str,
    *,
    clients: int = 0,
    rate_per_s: float = 0.0,
    duration_s: float = 0.0,
    outage: tuple[float, float] = (0.0, 10.0),
    capacity: Capacity = STORM_CAPACITY,
    max_attempts: int = 6,
    base_s: float = 1.0,
    cap_s: float = 16.0,
    deadline_s: float = 60.0,
    budget_ratio: float = 0.1,
    k: float = 2.0,
    throttle_window_s: float = 10.0,
    seed: int = 0,
    on_progress: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Callers retrying (``variant``, one of :data:`STORM_VARIANTS`) through an outage of every model
    (``outage`` = (start, length) in seconds) at a provider with ``capacity`` (above it, it sheds 529s,
    and each shed request costs it ``shed_cost`` of a served one).

    Callers: ``clients`` sent together at 0 s (a crowd that fails together), then ``rate_per_s`` new
    ones a second until ``duration_s`` (steady traffic). The budget and the throttle are shared by all
    callers (one service, one client). Returns the ledger's arrivals and statuses and the outcome counts;
    ``on_progress`` gets a :class:`~course_utils.progress.ProgressEvent` as each caller finishes."""
    if variant not in STORM_VARIANTS:
        raise ValueError(f"variant must be one of {STORM_VARIANTS}")
    with sim(Scenario(name="storm", outages=(Outage(*outage),), capacity=capacity), seed=seed) as server:
        client = server.async_client(max_retries=0)
        budget = RetryBudget(ratio=budget_ratio, initial=0) if variant == "retry budget" else None
        throttle = (
            AdaptiveThrottle(k, window_s=throttle_window_s, seed=seed) if variant == "adaptive throttling" else None
        )
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        total = clients + round(rate_per_s * duration_s)
        answered: list[float] = []
        latency: list[float] = []
        finished = [0]

        def retry_if(exc: BaseException) -> bool:
            # A refusal by our own throttle never reached the provider: the caller may try again later.
            return isinstance(exc, ThrottledLocally) or is_retryable(exc)

        async def one(i: int) -> None:
            sent = loop.time()
            policy = RetryPolicy(
                max_attempts=max_attempts,
                base_s=base_s,
                cap_s=cap_s,
                deadline_s=deadline_s,
                jitter=variant != "no jitter",
                budget=budget,
                retry_if=retry_if,
                seed=seed * 100_000 + i,
            )

            def make() -> Awaitable[Any]:
                return client.messages.create(**body(i))

            try:
                await policy.acall((lambda: throttle.acall(make)) if throttle is not None else make)
                answered.append(loop.time() - t0)
                latency.append(loop.time() - sent)
            except Exception:  # noqa: BLE001 - any failure of a caller counts as a caller not answered
                pass
            finally:
                finished[0] += 1
                if on_progress is not None:
                    from ..progress import ProgressEvent

                    on_progress(ProgressEvent(finished[0], total, loop.time() - t0))

        tasks = [asyncio.ensure_future(one(i)) for i in range(clients)]
        for i in range(clients, total):
            tasks.append(asyncio.ensure_future(one(i)))
            await asyncio.sleep(1.0 / rate_per_s)
        await asyncio.gather(*tasks)
        await client.close()
        rows = server.ledger()
        rows = rows[rows["endpoint"] == "/v1/messages"]
        arrivals = list(rows["arrival"] - rows["arrival"].min())  # the first request goes at 0 s
        statuses = list(rows["status"])
        end = outage[0] + outage[1]
        shed_after = [t for t, s in zip(arrivals, statuses) if s == 529 and t >= end]
        refused = throttle.refused if throttle is not None else (budget.stats().refused if budget is not None else 0)
        return {
            "variant": variant,
            "callers": total,
            "answered": len(answered),
            "requests": len(rows),
            "served": statuses.count(200),
            "shed_529": statuses.count(529),
            "shed_after_outage": len(shed_after),
            "overloaded_until_s": max(shed_after) if shed_after else end,
            "refused_by_client": refused,
            "last_answer_s": max(answered) if answered else math.nan,
            "p50_latency_s": percentile(latency, 0.5),
            "arrivals": arrivals,
            "statuses": statuses,
            "outage_start_s": outage[0],
            "outage_end_s": end,
            "capacity_rps": capacity.rps,
        }


# ---------------------------------------------------------------------------------------------
# A breaker during an outage where the dead provider never answers
# ---------------------------------------------------------------------------------------------
async def breaker_run(
    use_breaker: bool,
    *,
    duration_s: float = 60.0,
    every_s: float = 0.5,
    outage=(10.0, 25.0),
    timeout_s: float = 5.0,
    seed: int = 0,
) -> dict[str, Any]:
    """One request every ``every_s`` for ``duration_s``; the provider hangs (no answer) during ``outage``.

    Each request has a ``timeout_s`` client timeout. Returns the time callers spent waiting on failed
    requests, the requests sent during the outage, how long after the outage's end the first answer
    arrived (answer time, not send time), and the breaker's events."""
    start, length = outage
    with sim(Scenario(name="hang", outages=(Outage(start, length, kind="timeout"),)), seed=seed) as server:
        client = server.async_client(max_retries=0)
        breaker = CircuitBreaker(MODEL, failure_rate=0.5, min_calls=5, window_s=10.0, cooldown_s=5.0, half_open_calls=1)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        wasted = 0.0
        outcomes: list[tuple[float, str]] = []
        answers: list[float] = []  # when each successful request was answered

        async def one(i: int) -> None:
            nonlocal wasted
            sent = loop.time()

            async def call() -> Any:
                return await asyncio.wait_for(client.messages.create(**body(i)), timeout_s)

            try:
                if use_breaker:
                    await breaker.acall(call)
                else:
                    await call()
                outcomes.append((sent - t0, "ok"))
                answers.append(loop.time() - t0)
            except CircuitOpenError:
                outcomes.append((sent - t0, "refused"))
            except Exception:  # noqa: BLE001 - any failure of a request counts as a failed request in the measurement
                wasted += loop.time() - sent
                outcomes.append((sent - t0, "failed"))

        tasks = []
        i = 0
        while loop.time() - t0 < duration_s:
            tasks.append(asyncio.ensure_future(one(i)))
            i += 1
            await asyncio.sleep(every_s)
        await asyncio.gather(*tasks)
        await client.close()
        rows = server.ledger()
        arrivals = rows["arrival"] - rows["arrival"].min()
        during = int(((arrivals >= start) & (arrivals < start + length)).sum())
        after_ok = [t for t in answers if t >= start + length]
        return {
            "breaker": use_breaker,
            "requests": len(outcomes),
            "sent_to_provider": len(rows),
            "sent_during_outage": during,
            "seconds_waited_on_failures": round(wasted, 1),
            "first_answer_after_outage_s": round(min(after_ok) - (start + length), 2) if after_ok else math.nan,
            "refused_by_breaker": sum(o == "refused" for _, o in outcomes),
            "events": [(e.at_s - t0, e.new) for e in breaker.events],
        }


# ---------------------------------------------------------------------------------------------
# Retries stacked at several layers multiply
# ---------------------------------------------------------------------------------------------
async def stacked_run(
    *,
    app_attempts: int = 1,
    policy_attempts: int = 1,
    links: int = 1,
    sdk_max_retries: int = 0,
    app_pause_s: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    """One user request through a stack of retry layers while every model is down (529 to everything).

    From the outside in: the app makes ``app_attempts`` attempts (``app_pause_s`` apart); the service runs a
    :class:`~.fallback.FallbackChain` of ``links`` models; each link retries with a :class:`RetryPolicy` of
    ``policy_attempts`` attempts; the SDK client has ``max_retries=sdk_max_retries``. Returns the attempts
    that reached the provider (from the ledger) and the seconds until the user got the final error."""
    from .fallback import FallbackChain, Link

    with sim(Scenario(name="all-down", outages=(Outage(0.0, 86_400.0),)), seed=seed) as server:
        client = server.async_client(max_retries=sdk_max_retries)
        policy = RetryPolicy(max_attempts=policy_attempts, base_s=0.25, cap_s=2.0, deadline_s=None, seed=seed)
        models = ("claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5")[:links]

        def link(model: str) -> Link:
            async def call(payload: dict[str, Any]) -> Any:
                return await policy.acall(lambda: client.messages.create(**{**payload, "model": model}))

            return Link(model, call)

        chain = FallbackChain([link(m) for m in models], deadline_s=None)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for attempt in range(app_attempts):
            try:
                await chain.acall(body(0))
                break
            except Exception:  # noqa: BLE001 - the app retries whatever the service answered with
                if attempt + 1 < app_attempts:
                    await asyncio.sleep(app_pause_s)
        waited = loop.time() - t0
        await client.close()
        rows = server.ledger()
        return {
            "app attempts": app_attempts,
            "policy attempts": policy_attempts,
            "fallback links": links,
            "SDK max_retries": sdk_max_retries,
            "attempts at the provider": int((rows["endpoint"] == "/v1/messages").sum()),
            "seconds until the user hears": round(waited, 1),
        }


# ---------------------------------------------------------------------------------------------
# Timeouts: a total timeout on a non-streamed call against a response-start timeout on a stream
# ---------------------------------------------------------------------------------------------
TIMEOUT_MODES = ("total 5 s, not streamed", "total 60 s, not streamed", "response start 5 s, streamed")


async def timeout_run(
    mode: str,
    n: int = 24,
    *,
    long_every: int = 4,
    long_tokens: int = 1000,
    p_hang: float = 0.1,
    seed: int = 0,
) -> dict[str, Any]:
    """``n`` requests to Sonnet, every ``long_every``-th asking for a long answer (``long_tokens``), while
    ``p_hang`` of responses never start (the provider holds them); each retried by a :class:`RetryPolicy`
    (3 attempts) with the timeout ``mode`` (one of :data:`TIMEOUT_MODES`). Returns the callers answered,
    the attempts and dollars at the provider (ledger), and the median and worst latency."""
    from .timeouts import stream_with_start_timeout

    if mode not in TIMEOUT_MODES:
        raise ValueError(f"mode must be one of {TIMEOUT_MODES}")
    with sim(Scenario(name="hangs", p_timeout=p_hang), seed=seed) as server:
        client = server.async_client(max_retries=0)
        loop = asyncio.get_running_loop()
        latency: list[float] = []
        answered = [0]

        def request(i: int) -> dict[str, Any]:
            tokens = long_tokens if i % long_every == 0 else 150
            return {
                "model": "claude-sonnet-5-5",
                "max_tokens": tokens,
                "messages": [
                    {"role": "user", "content": f"Write a {tokens // 2}-word report on account #{i}, in detail."}
                ],
            }

        async def one(i: int) -> None:
            sent = loop.time()
            policy = RetryPolicy(max_attempts=3, base_s=0.5, cap_s=4.0, deadline_s=120.0, seed=seed * 1000 + i)

            async def attempt() -> Any:
                if mode == TIMEOUT_MODES[2]:
                    return await stream_with_start_timeout(client, start_timeout_s=5.0, **request(i))
                total = 5.0 if mode == TIMEOUT_MODES[0] else 60.0
                return await asyncio.wait_for(client.messages.create(**request(i)), total)

            try:
                await policy.acall(attempt)
                answered[0] += 1
            except Exception:  # noqa: BLE001 - a caller not answered
                pass
            latency.append(loop.time() - sent)

        await asyncio.gather(*(one(i) for i in range(n)))
        await client.close()
        rows = server.ledger()
        rows = rows[rows["endpoint"] == "/v1/messages"]
        return {
            "timeout": mode,
            "answered": f"{answered[0]}/{n}",
            "attempts": len(rows),
            "cost_usd": round(float(rows["cost_usd"].astype(float).sum()), 4),
            "p50_latency_s": round(percentile(latency, 0.5), 1),
            "worst_latency_s": round(max(latency), 1),
        }
