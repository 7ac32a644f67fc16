"""The dual write made safe: the transactional outbox on the producer side, the inbox on the consumers'."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from course_utils.architecture.bus import MESSAGE_RECEIVED, InMemoryBus
from course_utils.architecture.outbox import OutboxRelay
from course_utils.architecture.store import DeskStore
from course_utils.architecture.vectors import VectorIndex
from course_utils.architecture.workers import Pipeline, WorkerCrash
from course_utils.clock import run_virtual
from course_utils.mock_provider.inprocess import InProcessServer

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def index() -> VectorIndex:
    idx = VectorIndex()
    for line in (DATA / "lesson08_kb.jsonl").read_text(encoding="utf-8").splitlines():
        a = json.loads(line)
        if a["tenant"] == "acme":
            idx.add(a["tenant"], [(a["doc_id"], f"{a['title']}. {a['text']}")])
    return idx


def _billed(server: InProcessServer) -> int:
    ledger = server.ledger()
    return int(((ledger["endpoint"] == "/v1/messages") & (ledger["status"] == 200)).sum())


async def _until(predicate, *, limit: float = 600.0) -> None:
    waited = 0.0
    while not predicate():
        await asyncio.sleep(0.5)
        waited += 0.5
        assert waited <= limit, "the pipeline did not finish in time"


def test_a_crash_between_the_commit_and_the_publish_delays_the_event_but_never_loses_it(index, make_server):
    """The dual write's window: the API process dies after storing the message, before publishing. The
    event is in the outbox, committed with the message; the relay loop publishes it and it is answered once."""
    server = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    bus, store = InMemoryBus(idle_timeout_s=30.0), DeskStore()

    async def crash() -> None:
        raise WorkerCrash("the API process died after the commit")

    api = Pipeline(bus, store, index, lambda t: server.tenant(t).async_client(), faults={"submit:after_commit": crash})
    workers = Pipeline(bus, store, index, lambda t: server.tenant(t).async_client())

    async def scenario() -> None:
        with pytest.raises(WorkerCrash):
            await api.submit("acme", "c1", "I forgot my password", message_id="m1")
        assert await bus.length(MESSAGE_RECEIVED) == 0  # not published: without the outbox it would be lost
        stop = asyncio.Event()
        runner = asyncio.create_task(workers.run(stop, relay_poll_s=1.0))
        await _until(lambda: workers.finished("m1"))
        stop.set()
        await runner
        await workers.aclose()

    run_virtual(scenario(), limit=3600)
    assert store.answer_for("acme", "m1") is not None
    assert _billed(server) == 1 and len(store.usage("acme")) == 1
    assert store.unpublished() == []


def test_a_relay_that_dies_after_publishing_publishes_again_and_the_inbox_absorbs_it(index, make_server):
    """The relay's own window (published, not yet marked): the event goes out twice, under two bus ids.
    Each consumer group's inbox acknowledges the second without the work: one model call, one charge."""
    server = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    bus, store = InMemoryBus(idle_timeout_s=30.0), DeskStore()
    pipeline = Pipeline(bus, store, index, lambda t: server.tenant(t).async_client())
    deaths = [1]

    async def die_once() -> None:
        if deaths[0]:
            deaths[0] -= 1
            raise WorkerCrash("the relay died before marking the event published")

    pipeline.relay.fault = die_once

    async def scenario() -> None:
        with pytest.raises(WorkerCrash):
            await pipeline.submit("acme", "c1", "I forgot my password", message_id="m1")
        pipeline.relay = OutboxRelay(store, bus)  # the restarted process's relay
        stop = asyncio.Event()
        runner = asyncio.create_task(pipeline.run(stop, relay_poll_s=1.0))
        await _until(lambda: pipeline.finished("m1"))
        await asyncio.sleep(5)  # the duplicate has reached every group by now
        stop.set()
        await runner
        await pipeline.aclose()

    run_virtual(scenario(), limit=3600)
    assert len(asyncio.run(bus.events(MESSAGE_RECEIVED))) == 2  # published twice ...
    assert _billed(server) == 1 and len(store.usage("acme")) == 1  # ... answered and charged once
    assert pipeline.inbox_skipped >= 1
