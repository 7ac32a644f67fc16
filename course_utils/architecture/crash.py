"""Crash recovery, shown on virtual time: kill the model worker in the middle of an answer.

:func:`crash_mid_stream` submits one message, kills every worker (cancels them: nothing is finished,
nothing acknowledged) as soon as the first text delta is on the bus, starts new workers on the same
bus and store, and lets at-least-once delivery do the rest: after the idle timeout the new model
consumer claims the unacknowledged event, tells the client to restart the answer, and answers it.
:class:`CrashReport` holds what each layer recorded: the provider's ledger, the store, the client's
delta stream. The same crash across processes, with SIGKILL on a real Redis, is
``tests/test_architecture_crash.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..clock import SYSTEM_CLOCK, run_virtual
from ..mock_provider.inprocess import InProcessServer
from .bus import MESSAGE_RECEIVED, InMemoryBus
from .loadtest import LOAD_NOOP_CYCLES
from .store import DeskStore
from .vectors import VectorIndex
from .workers import Pipeline, WorkerCrash, deltas_topic

__all__ = ["CrashReport", "crash_mid_stream", "DualWriteReport", "crash_after_commit"]


@dataclass
class CrashReport:
    """What the crash left behind, layer by layer."""

    ledger: Any
    """The provider's rows for the message (pandas): the killed stream and the answer."""
    messages: list[dict[str, Any]]
    """The conversation in the store: role and text."""
    charges: int
    """Usage rows the store recorded for the message (what the tenant is charged)."""
    deltas: list[str]
    """The kinds of the client's delta events, in order (``delta``, ``restart``, ``end``)."""
    killed_at_s: float
    answered_at_s: float
    """Seconds after the submit: the kill, and the end of the redelivered answer."""


async def _crash(index: VectorIndex, tenant: str, question: str, idle_timeout_s: float, seed: int) -> CrashReport:
    """The crash on a fresh in-process simulator, made on this (virtual) loop and closed after it."""
    with InProcessServer(seed=seed, time_scale=1.0, rate_limit_tier="unlimited") as server:
        return await _crash_on(server, index, tenant, question, idle_timeout_s)


async def _crash_on(
    server: InProcessServer, index: VectorIndex, tenant: str, question: str, idle_timeout_s: float
) -> CrashReport:
    bus, store = InMemoryBus(idle_timeout_s=idle_timeout_s), DeskStore()
    pipelines: list[Pipeline] = []
    runners: list[asyncio.Task] = []
    stops: list[asyncio.Event] = []

    def start_workers() -> None:
        pipeline = Pipeline(bus, store, index, lambda t: server.tenant(t).async_client())
        stop = asyncio.Event()
        pipelines.append(pipeline)
        stops.append(stop)
        runners.append(asyncio.create_task(pipeline.run(stop, block_s=1.0)))

    topic, mid = deltas_topic(tenant, "c1"), "m-crash"
    start_workers()
    t0 = SYSTEM_CLOCK.monotonic()
    await pipelines[0].submit(tenant, "c1", question, message_id=mid)
    while not any(e.data.get("type") == "delta" for e in await bus.events(topic)):
        await asyncio.sleep(0.01)
    runners[0].cancel()  # kill -9: no handler finishes, no event is acknowledged
    await asyncio.gather(runners[0], return_exceptions=True)
    await pipelines[0].aclose()
    killed_at = SYSTEM_CLOCK.monotonic() - t0
    start_workers()
    while not pipelines[1].finished(mid):
        await asyncio.sleep(0.1)
    answered_at = SYSTEM_CLOCK.monotonic() - t0
    stops[1].set()
    await runners[1]
    await pipelines[1].aclose()
    ledger = server.ledger()
    ledger = ledger[ledger["endpoint"] == "/v1/messages"][
        ["model", "status", "disconnected", "output_tokens", "cost_usd"]
    ]
    kinds = [e.data["type"] for e in await bus.events(topic)]
    return CrashReport(
        ledger=ledger.reset_index(drop=True),
        messages=[{"role": m.role, "text": m.content} for m in store.messages(tenant, "c1")],
        charges=sum(1 for u in store.usage(tenant) if u.message_id == mid),
        deltas=kinds,
        killed_at_s=killed_at,
        answered_at_s=answered_at,
    )


def crash_mid_stream(
    index: VectorIndex, tenant: str, question: str, *, idle_timeout_s: float = 10.0, seed: int = 0
) -> CrashReport:
    """Kill the workers mid-answer and recover (see the module docstring); runs on a fresh virtual loop."""
    return run_virtual(_crash(index, tenant, question, idle_timeout_s, seed), limit=3600, noop_cycles=LOAD_NOOP_CYCLES)


@dataclass
class DualWriteReport:
    """What a crash between storing a message and publishing its event left, and what the relay did."""

    stored: bool
    """The message was in the store after the crash."""
    on_bus_after_crash: int
    """``message.received`` events on the bus right after the crash (0: without the outbox, lost)."""
    in_outbox_after_crash: int
    """Events waiting in the outbox right after the crash."""
    relayed_after_s: float
    """Seconds after the crash when the relay loop published the event."""
    answers: int
    charges: int


async def _dual_write(
    index: VectorIndex, tenant: str, question: str, relay_poll_s: float, seed: int
) -> DualWriteReport:
    """The dual write's crash on a fresh in-process simulator, made on this (virtual) loop and closed after it."""
    with InProcessServer(seed=seed, time_scale=1.0, rate_limit_tier="unlimited") as server:
        return await _dual_write_on(server, index, tenant, question, relay_poll_s)


async def _dual_write_on(
    server: InProcessServer, index: VectorIndex, tenant: str, question: str, relay_poll_s: float
) -> DualWriteReport:
    bus, store = InMemoryBus(idle_timeout_s=30.0), DeskStore()

    async def die() -> None:
        raise WorkerCrash("the API process died between the commit and the publish")

    api = Pipeline(bus, store, index, lambda t: server.tenant(t).async_client(), faults={"submit:after_commit": die})
    mid = "m-dual-write"
    try:
        await api.submit(tenant, "c1", question, message_id=mid)
    except WorkerCrash:
        pass
    t0 = SYSTEM_CLOCK.monotonic()
    stored, on_bus = store.message(tenant, mid) is not None, len(await bus.events(MESSAGE_RECEIVED))
    waiting = len(store.unpublished())
    workers = Pipeline(bus, store, index, lambda t: server.tenant(t).async_client())
    stop = asyncio.Event()
    runner = asyncio.create_task(workers.run(stop, block_s=1.0, relay_poll_s=relay_poll_s))
    while not await bus.events(MESSAGE_RECEIVED):
        await asyncio.sleep(0.05)
    relayed = SYSTEM_CLOCK.monotonic() - t0
    while not workers.finished(mid):
        await asyncio.sleep(0.1)
    stop.set()
    await runner
    await workers.aclose()
    return DualWriteReport(
        stored=stored,
        on_bus_after_crash=on_bus,
        in_outbox_after_crash=waiting,
        relayed_after_s=relayed,
        answers=sum(1 for m in store.messages(tenant, "c1") if m.reply_to == mid),
        charges=sum(1 for u in store.usage(tenant) if u.message_id == mid),
    )


def crash_after_commit(
    index: VectorIndex, tenant: str, question: str, *, relay_poll_s: float = 1.0, seed: int = 0
) -> DualWriteReport:
    """The dual write's crash: the API stores the message (and, in the same transaction, its event in the
    outbox) and dies before publishing; a worker process's relay publishes it. On a fresh virtual loop."""
    return run_virtual(
        _dual_write(index, tenant, question, relay_poll_s, seed), limit=3600, noop_cycles=LOAD_NOOP_CYCLES
    )
