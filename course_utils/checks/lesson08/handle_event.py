"""Checks for exercise 8.1 ``handle_event``: an idempotent consumer with a durable inbox, under crashes."""

from __future__ import annotations

import asyncio
import inspect
import os
import sqlite3
import tempfile
from typing import Any

from ...architecture.bus import Event
from ..framework import CaseFailed, Exercise, expect, expect_equal
from .common import GROUP, TOPIC, CheckingBus, Crash, Process, committed


# =============================================================================================
# 8.1 handle_event(event, *, bus, group, db, work) -> None
# =============================================================================================
class _ModelError(Exception):
    """The work failed (a model call that errored): the process lives on and handles the next event."""


class _Work:
    """The side effect (the answer, stored in the caller's transaction): counts committed answers.

    ``fail_on_first``: the first run for that message id writes a partial row, then raises."""

    def __init__(self, path: str, fail_on_first: str | None = None) -> None:
        self.path = path
        self.fail_on_first = fail_on_first
        self.calls: dict[str, int] = {}

    async def __call__(self, event: Event, db: sqlite3.Connection) -> None:
        mid = event.data["message_id"]
        self.calls[mid] = self.calls.get(mid, 0) + 1
        if mid == self.fail_on_first:
            self.fail_on_first = None
            db.execute("INSERT INTO answers VALUES (?, 'partial')", (mid,))
            raise _ModelError("the model call failed after the work's first write")
        db.execute("INSERT INTO answers VALUES (?, 'answer')", (mid,))

    def done(self) -> dict[str, int]:
        """Committed answers per message id (what the customer sees and is charged for)."""
        sql = "SELECT message_id, COUNT(*) FROM answers WHERE state = ? GROUP BY message_id ORDER BY 1"
        return dict(committed(self.path, sql, ("answer",)))

    def partial(self) -> int:
        """Committed rows of a failed attempt."""
        return len(committed(self.path, "SELECT 1 FROM answers WHERE state = 'partial'"))


async def _handle(process: Process, event: Event, bus: Any, work: Any) -> bool:
    """Run the answer on one event; True if it returned, False if the check's crash went through it."""
    try:
        result = process.fn(event, bus=bus, group=GROUP, db=process.db, work=work)
        if not inspect.isawaitable(result):
            raise CaseFailed(
                f"handle_event returned {type(result).__name__}, not a coroutine",
                hint="Define it with `async def`: bus.ack and work are coroutines to await.",
            )
        await result
    except Crash:
        process.restart()  # the worker died: a new process takes over, with only what was committed
        return False
    except _ModelError:
        return False  # the consumer loop logs it and goes on; the event stays pending
    return True


async def _drain(process: Process, bus: CheckingBus, work: _Work, *, rounds: int = 3) -> None:
    """Deliver everything, wait past the idle timeout for redeliveries, and deliver again."""
    await bus.ensure_group(TOPIC, GROUP)
    for _ in range(rounds):
        for event in await bus.read(TOPIC, GROUP, "worker", count=100):
            bus.events_by_id[event.id] = event.data["message_id"]
            await _handle(process, event, bus, work)
        await asyncio.sleep(bus.idle_timeout_s + 1)  # virtual time: the idle timeout costs nothing


def _setup(fn: Any, *, fail_in_work: str | None = None, crash_before_ack: str | None = None):
    path = os.path.join(tempfile.mkdtemp(prefix="check-8-1-"), "inbox.db")
    return Process(fn, path), CheckingBus(path, crash_before_ack, idle_timeout_s=30), _Work(path, fail_in_work)


consumer = Exercise(
    "8.1",
    "An idempotent consumer with a durable inbox under at-least-once delivery",
    points=3,
    signature="async handle_event(event, *, bus, group, db, work) -> None",
    hints=[
        "In one transaction: look the message id up in `processed`; if it is not there, await work(event, db) "
        "and insert (group, message_id); commit. Only then ack. On an exception: roll back and re-raise.",
        "key = event.data['message_id']; if db.execute('SELECT 1 FROM processed WHERE consumer_group = ? AND "
        "message_id = ?', (group, key)).fetchone() is None: try: await work(event, db); db.execute('INSERT INTO "
        "processed VALUES (?, ?)', (group, key)); db.commit() except BaseException: db.rollback(); raise. "
        "Then await bus.ack(event.topic, group, event.id).",
    ],
)


@consumer.case("processes each message once, commits it as processed, then acknowledges it")
async def _each_once(fn) -> None:
    process, bus, work = _setup(fn)
    for i in range(3):
        await bus.publish(TOPIC, {"message_id": f"m{i}"})
    await _drain(process, bus, work)
    expect_equal(work.done(), {"m0": 1, "m1": 1, "m2": 1}, hint="Call work(event, db) once for each new message "
                 "and commit its writes.")  # fmt: skip
    pending = await bus.pending(TOPIC, GROUP)
    expect(pending == 0, f"{pending} events were never acknowledged", expected=0, got=pending,
           hint="await bus.ack(event.topic, group, event.id) once the event is handled.")  # fmt: skip
    recorded = [r[0] for r in committed(process.path, "SELECT message_id FROM processed WHERE consumer_group = ? "
                                         "ORDER BY 1", (GROUP,))]  # fmt: skip
    expect(
        recorded == ["m0", "m1", "m2"],
        "the work was done, but the `processed` table does not hold exactly the handled message ids",
        expected=["m0", "m1", "m2"],
        got=recorded,
        hint="Insert (group, event.data['message_id']) into `processed`, the business key, not event.id, "
        "and commit it with the work.",
    )
    expect(
        not bus.early_acks,
        f"message {bus.early_acks[0] if bus.early_acks else ''} was acknowledged before it was committed as processed",
        expected="the ack after the commit",
        got="an ack before it",
        hint="Commit the work and the inbox row first; ack last. An ack before the commit is lost work "
        "if the process dies in between.",
    )


@consumer.case("a failure inside the work loses nothing and leaves no half-written answer")
async def _crash_in_work(fn) -> None:
    process, bus, work = _setup(fn, fail_in_work="m1")
    for i in range(3):
        await bus.publish(TOPIC, {"message_id": f"m{i}"})
    await _drain(process, bus, work)
    times = work.done().get("m1", 0)
    expect(
        times >= 1,
        "message m1 was lost: its work failed and it was never done again",
        expected="m1 answered after the redelivery",
        got=f"m1 answered {times} times",
        hint="Acking before the work, swallowing its exception or recording the message before the work "
        "tells the system it is done. Let a failure propagate, unacknowledged, with nothing recorded.",
    )
    partial = work.partial()
    expect(
        partial == 0,
        "the failed attempt's half-written answer for m1 was committed (with the next message's transaction)",
        expected="no partial row",
        got=f"{partial} partial row(s)",
        hint="When work raises, db.rollback() before re-raising (or use `with db:`), so its partial writes go with it.",
    )
    expect(
        times <= 1,
        f"message m1 was answered {times} times",
        expected="one answer",
        got=f"{times} answers",
        hint="When work raises, db.rollback() before re-raising (or use `with db:`), so its partial writes go with it.",
    )


@consumer.case("a worker killed between the commit and the ack: the new process does not do the work again")
async def _crash_before_ack(fn) -> None:
    process, bus, work = _setup(fn, crash_before_ack="m1")
    for i in range(3):
        await bus.publish(TOPIC, {"message_id": f"m{i}"})
    await _drain(process, bus, work)
    times = work.calls.get("m1", 0)
    expect(
        times == 1,
        f"message m1 was processed {times} times (one model call and one charge each): the restarted "
        "process did not know it was done",
        expected="m1 processed once",
        got=f"{times} times",
        hint="The processed set must outlive the process: keep it in the database (the `processed` table), "
        "committed with the work, not in a Python set, which a deploy or a crash empties.",
    )
    pending = await bus.pending(TOPIC, GROUP)
    expect(pending == 0, f"the redelivered event was left pending ({pending})", expected=0, got=pending,
           hint="A duplicate still needs its ack, or it comes back again and again.")  # fmt: skip


@consumer.case("the same message published twice (two bus ids) is processed once")
async def _business_key(fn) -> None:
    process, bus, work = _setup(fn)
    await bus.publish(TOPIC, {"message_id": "m7"})
    await bus.publish(TOPIC, {"message_id": "m7"})  # a relay that published twice: a new event id, the same message
    await _drain(process, bus, work)
    times = work.calls.get("m7", 0)
    expect(
        times == 1,
        f"message m7 was processed {times} times: deduplicated by the event id, which a re-publish changes",
        expected="once",
        got=f"{times} times",
        hint="Deduplicate on the business key, event.data['message_id'], not on event.id.",
    )
