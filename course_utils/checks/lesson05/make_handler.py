"""Checks for exercise 5.5 ``make_handler`` (the chaos exercise): the replayed incident is run against the
answer's handler once, and four cases read its summary (success, duplicate charges, p99 latency, load)."""

from __future__ import annotations

import inspect
import random
import threading
from typing import Any

from ..framework import CaseFailed, Exercise, expect
from ..sim import probe


# =============================================================================================
# 5.5 make_handler(client) -> async handle(key, body)   (the chaos exercise)
# =============================================================================================
chaos = Exercise(
    "5.5",
    "Chaos: survive the replayed incident",
    points=5,
    signature="make_handler(client) -> async handle(key, body) -> Message",
    time_limit=240,
    hints=[
        "Compose the lesson: an idempotent boundary (5.4) so the app's retries join the work in flight; retries "
        "at one layer, with jitter (5.2) and a response-start timeout shorter than the app's 6 s; a breaker per model (5.3) so the "
        "dead primary only gets probes; and a fallback to claude-haiku-5-5 while it is down.",
        "With the library: policy = RetryPolicy(max_attempts=4, base_s=0.25, cap_s=2, deadline_s=20, "
        "budget=RetryBudget(0.2)); board = BreakerBoard(min_calls=5, cooldown_s=5, half_open_calls=1); each Link "
        "calls policy.acall(lambda: board[model].acall(lambda: stream_with_start_timeout(client, start_timeout_s=5, "
        "**{**body, 'model': model}))); FallbackChain([primary, fallback]); handle = Idempotent(IdempotencyStore()).acall(key, body, generate).",
    ],
)

CHAOS_MIN_SUCCESS = 0.95
CHAOS_P99_S = 15.0
CHAOS_MAX_LOAD = 1.3
_chaos_runs: dict[Any, Any] = {}
_chaos_lock = threading.Lock()


async def _incident(fn: Any) -> Any:
    """The incident replayed against the answer once; the four cases read the same run."""
    from ...resilience.chaos import run_incident

    with _chaos_lock:
        if fn in _chaos_runs:
            return _chaos_runs[fn]
    random.seed(11)
    p = probe(tier="unlimited", tag="check05-chaos")
    async with p:
        client = p.async_client()
        handle = fn(client)
        if inspect.isawaitable(handle):
            handle = await handle
        if not callable(handle):
            raise CaseFailed(
                f"make_handler returned {type(handle).__name__}, not a function",
                hint="Return the `async def handle(key, body)` you defined inside make_handler.",
            )
        report = await run_incident(p.server, handle, api_key=p.api_key)
    summary = report.summary()
    with _chaos_lock:
        if len(_chaos_runs) > 4:
            _chaos_runs.clear()
        _chaos_runs[fn] = summary
    return summary


def _judgeable(s: dict, what: str) -> None:
    """Duplicates and load mean little when almost nothing was answered (a handler that fails at once sends
    nothing and charges nobody): those cases need at least half the reports answered."""
    expect(
        s["success_ratio"] >= 0.5,
        f"only {s['success_ratio']:.0%} of the reports were answered: too few to judge {what} ({_figures(s)})",
        expected="at least 50% answered",
        got=f"{s['success_ratio']:.0%}",
        hint="Make the handler answer first (the success case's hint).",
    )


def _figures(s: dict) -> str:
    return (
        f"success {s['success_ratio']:.0%}, duplicate charges {s['duplicate_charges']}, p99 {s['p99_latency_s']:.1f} s, "
        f"load {s['load_amplification']:.2f}x ({s['provider_requests']} requests for {s['reports']} reports)"
    )


@chaos.case(f"success ratio at least {CHAOS_MIN_SUCCESS:.0%} through flaky, outage and slow phases")
async def _chaos_success(fn) -> None:
    s = await _incident(fn)
    expect(
        s["success_ratio"] >= CHAOS_MIN_SUCCESS,
        f"{s['success_ratio']:.0%} of the reports were answered ({_figures(s)})",
        expected=f">= {CHAOS_MIN_SUCCESS:.0%}",
        got=f"{s['success_ratio']:.0%}",
        hint="Retry transient failures with backoff, and fall back to another model while the primary is down "
        "(the app gives up after 4 attempts of 6 s).",
    )


@chaos.case("no customer is charged twice for one report")
async def _chaos_duplicates(fn) -> None:
    s = await _incident(fn)
    _judgeable(s, "duplicate charges")
    expect(
        s["duplicate_charges"] == 0,
        f"{s['duplicate_charges']} report(s) were produced more than once for the same Idempotency-Key ({_figures(s)})",
        expected=0,
        got=s["duplicate_charges"],
        hint="The app retries with the same key while your first handler run is still working: make handle "
        "idempotent per key, so the retry waits for (or replays) the first run instead of generating again.",
    )


@chaos.case(f"p99 latency the app sees within {CHAOS_P99_S:g} s")
async def _chaos_latency(fn) -> None:
    s = await _incident(fn)
    expect(
        s["p99_latency_s"] <= CHAOS_P99_S,
        f"p99 latency {s['p99_latency_s']:.1f} s ({_figures(s)})",
        expected=f"<= {CHAOS_P99_S:g} s",
        got=f"{s['p99_latency_s']:.1f} s",
        hint="Some answers are held 30 s by the slow provider: time out when a response has not started within a "
        "few seconds (stream_with_start_timeout, or asyncio.wait_for around a short call) and retry, instead of "
        "waiting for an answer that comes too late.",
    )


@chaos.case(f"load amplification at the provider at most {CHAOS_MAX_LOAD:g}x (ledger)")
async def _chaos_load(fn) -> None:
    s = await _incident(fn)
    _judgeable(s, "the load")
    expect(
        s["load_amplification"] <= CHAOS_MAX_LOAD,
        f"the provider received {s['load_amplification']:.2f} requests per report ({_figures(s)})",
        expected=f"<= {CHAOS_MAX_LOAD:g}x",
        got=f"{s['load_amplification']:.2f}x",
        hint="During the outage every retry to the dead primary is load it cannot serve: a breaker per model "
        "sends only probes there, and a retry budget caps retries at a fraction of requests.",
    )
