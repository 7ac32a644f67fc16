"""The event bus: the same contract, tested against both backends (in-process and a REAL Redis)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Awaitable, Callable

import pytest

from course_utils.architecture.bus import (
    BusError,
    Event,
    EventBus,
    IdempotentHandler,
    InMemoryBus,
    ProcessedLog,
    RedisStreamsBus,
    consume,
    dead_letter_topic,
)
from course_utils.clock import run_virtual

BACKENDS = ["memory", "redis"]
T = "message.received"


@pytest.fixture(params=BACKENDS)
def make_bus(request) -> Callable[..., EventBus]:
    """A factory of buses of one backend; the Redis ones share one flushed database and a prefix."""
    if request.param == "memory":
        return lambda **kw: InMemoryBus(**kw)
    redis_url = request.getfixturevalue("redis_url")
    request.getfixturevalue("redis_client")  # flushed before and after the test
    prefix = f"test:{uuid.uuid4().hex[:8]}"

    def make(**kw: Any) -> EventBus:
        return RedisStreamsBus(redis_url, prefix=prefix, **kw)

    return make


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)


async def _idle(bus: EventBus) -> None:
    """Wait (real time) past the bus's idle timeout: Redis measures idleness on its own clock."""
    await asyncio.sleep(bus.idle_timeout_s + 0.05)


def test_every_group_sees_every_event_and_each_event_goes_to_one_consumer(make_bus):
    async def scenario() -> None:
        bus = make_bus()
        ids = [await bus.publish(T, {"n": n}) for n in range(6)]
        await bus.ensure_group(T, "a")
        await bus.ensure_group(T, "b")  # created after the publishes: still sees them all
        first = await bus.read(T, "a", "a1", count=4)
        second = await bus.read(T, "a", "a2", count=4)
        assert [e.data["n"] for e in first] == [0, 1, 2, 3]
        assert [e.data["n"] for e in second] == [4, 5]
        assert [e.id for e in first + second] == ids
        assert all(e.deliveries == 1 and e.topic == T for e in first + second)
        other = await bus.read(T, "b", "b1", count=10)
        assert [e.data["n"] for e in other] == list(range(6))
        assert await bus.read(T, "a", "a1", count=10) == []
        await bus.close()

    run(scenario())


def test_ids_increase_and_events_keep_their_data(make_bus):
    async def scenario() -> None:
        bus = make_bus()
        payload = {"tenant": "acme", "text": "héllo ✓", "nested": {"k": [1, 2.5, None, True]}}
        a = await bus.publish(T, payload)
        b = await bus.publish(T, {"n": 1})
        assert tuple(map(int, a.split("-"))) < tuple(map(int, b.split("-")))
        events = await bus.events(T)
        assert [e.data for e in events] == [payload, {"n": 1}]
        assert await bus.length(T) == 2
        await bus.close()

    run(scenario())


def test_an_acked_event_is_never_redelivered(make_bus):
    async def scenario() -> None:
        bus = make_bus(idle_timeout_s=0.05)
        await bus.ensure_group(T, "g")
        await bus.publish(T, {"n": 1})
        (event,) = await bus.read(T, "g", "c1")
        assert await bus.pending(T, "g") == 1
        assert await bus.ack(T, "g", event.id) is True
        assert await bus.ack(T, "g", event.id) is False  # acking twice is harmless, and says so
        assert await bus.pending(T, "g") == 0
        await _idle(bus)
        assert await bus.read(T, "g", "c2") == []
        await bus.close()

    run(scenario())


def test_an_unacked_event_is_redelivered_to_another_consumer_after_the_idle_timeout(make_bus):
    async def scenario() -> None:
        bus = make_bus(idle_timeout_s=0.05)
        await bus.ensure_group(T, "g")
        await bus.publish(T, {"n": 1})
        (first,) = await bus.read(T, "g", "crashed")
        await _idle(bus)
        (again,) = await bus.read(T, "g", "survivor")
        assert (again.id, again.data, again.deliveries, again.redelivered) == (first.id, {"n": 1}, 2, True)
        assert await bus.pending(T, "g") == 1
        await bus.ack(T, "g", again.id)
        assert await bus.pending(T, "g") == 0
        await bus.close()

    run(scenario())


def test_an_unacked_event_is_not_redelivered_before_the_idle_timeout(make_bus):
    async def scenario() -> None:
        bus = make_bus(idle_timeout_s=60.0)
        await bus.ensure_group(T, "g")
        await bus.publish(T, {"n": 1})
        await bus.read(T, "g", "slow")
        assert await bus.read(T, "g", "other") == []
        assert await bus.pending(T, "g") == 1
        await bus.close()

    run(scenario())


def test_a_poison_event_goes_to_the_dead_letter_topic_after_max_deliveries(make_bus):
    async def scenario() -> None:
        bus = make_bus(idle_timeout_s=0.02, max_deliveries=2)
        await bus.ensure_group(T, "g")
        event_id = await bus.publish(T, {"n": 7})
        assert [e.deliveries for e in await bus.read(T, "g", "c")] == [1]
        await _idle(bus)
        assert [e.deliveries for e in await bus.read(T, "g", "c")] == [2]
        await _idle(bus)
        assert await bus.read(T, "g", "c") == []
        assert await bus.pending(T, "g") == 0
        (dead,) = await bus.events(dead_letter_topic(T))
        assert dead.data == {"group": "g", "event_id": event_id, "deliveries": 2, "data": {"n": 7}}
        await bus.close()

    run(scenario())


def test_read_blocks_until_an_event_is_published(make_bus):
    async def scenario() -> None:
        bus = make_bus()
        await bus.ensure_group(T, "g")

        async def later() -> None:
            await asyncio.sleep(0.05)
            await bus.publish(T, {"n": 1})

        task = asyncio.create_task(later())
        events = await bus.read(T, "g", "c", block_s=10.0)
        await task
        assert [e.data for e in events] == [{"n": 1}]
        await bus.close()

    run(scenario())


def test_bad_calls_get_clear_errors_and_lose_nothing(make_bus):
    async def scenario() -> None:
        bus = make_bus()
        with pytest.raises(BusError, match="must be a mapping"):
            await bus.publish(T, ["not", "an", "object"])  # type: ignore[arg-type]
        with pytest.raises(BusError, match="not JSON-serialisable"):
            await bus.publish(T, {"when": object()})
        await bus.publish(T, {"n": 1})
        with pytest.raises(BusError, match="call ensure_group first"):
            await bus.read(T, "nobody", "c")
        with pytest.raises(BusError, match="at least 1"):
            await bus.read(T, "nobody", "c", count=0)
        assert [e.data for e in await bus.events(T)] == [{"n": 1}]
        await bus.close()

    run(scenario())


def test_consume_acks_after_the_handler_and_leaves_failures_pending(make_bus):
    async def scenario() -> None:
        bus = make_bus(idle_timeout_s=0.05)
        for n in range(4):
            await bus.publish(T, {"n": n})
        seen: list[int] = []
        failed_once: set[int] = set()
        stop = asyncio.Event()

        async def handler(event: Event) -> None:
            n = event.data["n"]
            if n == 2 and n not in failed_once:
                failed_once.add(n)
                raise RuntimeError("transient")
            seen.append(n)
            if len(seen) == 4:
                stop.set()

        stats = await asyncio.wait_for(consume(bus, T, "g", "c", handler, stop=stop, block_s=0.05), 10)
        assert sorted(seen) == [0, 1, 2, 3]
        assert (stats.acked, stats.failed, stats.redelivered) == (4, 1, 1)
        assert await bus.pending(T, "g") == 0
        await bus.close()

    run(scenario())


def test_a_crashed_consumer_loses_nothing_and_the_idempotent_handler_processes_once(make_bus):
    """The consumer dies after doing the work but before the ack: redelivered, skipped as a duplicate."""

    async def scenario() -> None:
        bus = make_bus(idle_timeout_s=0.05)
        await bus.publish(T, {"message_id": "m1"})
        processed = ProcessedLog()
        effects: list[str] = []
        crash = asyncio.Event()

        async def work(event: Event) -> None:
            effects.append(event.data["message_id"])

        handler = IdempotentHandler(work, processed, "g")

        async def crashing(event: Event) -> None:
            await handler(event)
            crash.set()
            await asyncio.sleep(3600)  # killed here, between the work and the ack

        task = asyncio.create_task(consume(bus, T, "g", "doomed", crashing, block_s=0.05))
        await asyncio.wait_for(crash.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert await bus.pending(T, "g") == 1
        await _idle(bus)
        stop = asyncio.Event()

        async def survivor(event: Event) -> None:
            await handler(event)
            stop.set()

        stats = await asyncio.wait_for(consume(bus, T, "g", "survivor", survivor, stop=stop, block_s=0.05), 10)
        assert effects == ["m1"]  # processed once
        assert (handler.calls, handler.duplicates, stats.redelivered, stats.acked) == (1, 1, 1, 1)
        assert await bus.pending(T, "g") == 0
        await bus.close()

    run(scenario())


def test_in_memory_redelivery_runs_on_the_injected_clock():
    """A 30-minute idle timeout on virtual time: no wall time, and not one second early."""

    async def scenario() -> tuple[list[Event], list[Event]]:
        bus = InMemoryBus(idle_timeout_s=1800.0)
        await bus.ensure_group(T, "g")
        await bus.publish(T, {"n": 1})
        await bus.read(T, "g", "c1")
        await asyncio.sleep(1799.0)
        early = await bus.read(T, "g", "c2")
        late = await bus.read(T, "g", "c2", block_s=5.0)  # wakes when the event becomes claimable
        return early, late

    early, late = run_virtual(scenario(), limit=3600)
    assert early == [] and [e.deliveries for e in late] == [2]


def test_redis_events_survive_the_bus_object_and_are_shared_by_processes(redis_url, redis_client):
    """A second client (another process's view) sees the first one's events and pending entries."""

    async def scenario() -> None:
        writer = RedisStreamsBus(redis_url, prefix="shared", idle_timeout_s=0.05)
        await writer.ensure_group(T, "g")
        await writer.publish(T, {"n": 1})
        await writer.read(T, "g", "c1")
        await writer.close()
        reader = RedisStreamsBus(redis_url, prefix="shared", idle_timeout_s=0.05)
        assert await reader.pending(T, "g") == 1
        await _idle(reader)
        assert [e.data for e in await reader.read(T, "g", "c2")] == [{"n": 1}]
        await reader.close()

    run(scenario())
    assert redis_client.xlen("shared:message.received") == 1


def test_tail_reads_after_an_id_without_a_group_and_waits_for_new_events(make_bus):
    async def scenario() -> None:
        bus = make_bus()
        first = await bus.publish("deltas", {"text": "Hel"})
        await bus.publish("deltas", {"text": "lo"})
        assert [e.data["text"] for e in await bus.tail("deltas")] == ["Hel", "lo"]
        assert [e.data["text"] for e in await bus.tail("deltas", first)] == ["lo"]
        last = (await bus.tail("deltas"))[-1].id
        assert await bus.tail("deltas", last) == []

        async def later() -> None:
            await asyncio.sleep(0.05)
            await bus.publish("deltas", {"text": "!"})

        task = asyncio.create_task(later())
        assert [e.data["text"] for e in await bus.tail("deltas", last, block_s=10.0)] == ["!"]
        await task
        with pytest.raises(BusError, match="not an event id"):
            await bus.tail("deltas", "yesterday")
        await bus.close()

    run(scenario())


def test_a_slow_handler_keeps_its_event_by_renewing_the_lease(make_bus):
    """Processing for 4 idle timeouts: no other consumer gets the event meanwhile."""

    async def scenario() -> None:
        bus = make_bus(idle_timeout_s=0.1)
        await bus.publish(T, {"n": 1})
        stop = asyncio.Event()
        stolen: list[Event] = []

        async def slow(event: Event) -> None:
            for _ in range(4):
                await asyncio.sleep(0.1)
                stolen.extend(await bus.read(T, "g", "thief"))
            stop.set()

        stats = await asyncio.wait_for(consume(bus, T, "g", "slow", slow, stop=stop, block_s=0.05), 10)
        assert stolen == [] and stats.acked == 1 and stats.redelivered == 0
        assert await bus.pending(T, "g") == 0
        await bus.close()

    run(scenario())


# ----- issue 29: ids per topic, strict ids, bounded memory --------------------------------------------
@pytest.mark.parametrize(
    "bad", ["18446744073709551616-0", "1-18446744073709551616", " 1-0", "1-0-0", "-1", "1e3", "\u0661-0", ""]
)
def test_a_malformed_or_out_of_range_id_is_a_bus_error_on_both_backends(make_bus, bad):
    """Before Redis is asked (it would answer a cryptic ResponseError, a 500 for the service)."""

    async def scenario() -> None:
        bus = make_bus()
        await bus.publish("deltas", {"n": 1})
        with pytest.raises(BusError, match="not an event id"):
            await bus.tail("deltas", bad)
        assert [e.data for e in await bus.tail("deltas", "18446744073709551615-18446744073709551615")] == []
        await bus.close()

    run(scenario())


def test_in_memory_ids_count_their_own_topic_only():
    """Like Redis, which numbers entries per stream: a topic's ids say nothing of other topics' traffic."""

    async def scenario() -> None:
        bus = InMemoryBus()
        assert await bus.publish("answer.delta.globex.c1", {"n": 1}) == "1-0"
        for n in range(100):
            await bus.publish("answer.delta.acme.c1", {"n": n})
            await bus.publish(T, {"n": n})
        assert await bus.publish("answer.delta.globex.c1", {"n": 2}) == "2-0"
        assert [e.id for e in await bus.events("answer.delta.globex.c1")] == ["1-0", "2-0"]

    run(scenario())


def test_in_memory_topics_keep_about_maxlen_events_and_ids_keep_increasing():
    async def scenario() -> None:
        bus = InMemoryBus(maxlen=100)
        ids = [await bus.publish("deltas", {"n": n}) for n in range(1_000)]
        assert 100 <= await bus.length("deltas") <= 110  # trimmed in steps, as Redis' MAXLEN ~
        kept = await bus.events("deltas")
        assert [e.id for e in kept] == ids[-len(kept) :] and kept[-1].data == {"n": 999}
        assert [e.id for e in await bus.tail("deltas", "0", count=1)] == [kept[0].id]  # from the oldest kept
        assert await bus.publish("deltas", {"n": 1_000}) == "1001-0"

    run(scenario())


def test_in_memory_trimming_never_drops_what_a_group_has_not_processed():
    async def scenario() -> None:
        bus = InMemoryBus(maxlen=100)
        await bus.ensure_group(T, "g")
        for n in range(500):
            await bus.publish(T, {"n": n})
        assert await bus.length(T) == 500  # nothing delivered yet: all of it is work, none is history
        taken = await bus.read(T, "g", "c", count=500)
        assert [e.data["n"] for e in taken] == list(range(500))
        for event in taken[:400]:
            await bus.ack(T, "g", event.id)
        await bus.publish(T, {"n": 500})
        assert [e.data["n"] for e in await bus.events(T)][:1] == [400]  # the pending 100 stay, acked ones go
        for n in range(501, 620):
            await bus.publish(T, {"n": n})
        for event in taken[400:] + await bus.read(T, "g", "c", count=500):
            await bus.ack(T, "g", event.id)
        assert await bus.length(T) == 220  # 100 pending, then 120 not yet given to the group
        await bus.publish(T, {"n": 620})  # everything processed: trimmed to maxlen
        assert await bus.length(T) == 100 and (await bus.events(T))[-1].data == {"n": 620}

    run(scenario())


def test_in_memory_waits_leave_no_state_behind():
    """Streams opened on many topics (even ones never written) hold a condition only while they wait."""

    async def scenario() -> None:
        bus = InMemoryBus()
        await bus.publish("answer.delta.acme.c0", {"n": 0})
        waits = [bus.tail(f"answer.delta.acme.c{i}", "1-0", block_s=0.05) for i in range(200)]
        assert await asyncio.gather(*waits) == [[]] * 200
        assert bus.waiting_topics() == 0
        assert bus.topics() == ["answer.delta.acme.c0"]

    run(scenario())
