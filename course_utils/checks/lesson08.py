"""Checks for lesson 08 (AI product architecture).

8.1 ``handle_event`` (an idempotent consumer under at-least-once delivery), 8.2 ``build_request``
(the model request: the tenant's k nearest articles in the system prompt, the newest turns, the whole
request within a token budget), 8.3 ``answer_event`` (the model stage: the answer's own 8.1 and 8.2
around one model call), 8.4 ``wire_pipeline`` (the pipeline's settings, graded by the SLO table of a
chaos load test) and 8.5 ``conversations_per_minute`` (capacity planning, graded against the formula
and a simulation). The consumer cases run on virtual time against the in-process bus, with the crashes
placed where production has them (inside the work, between the work and the ack); 8.3 adds a
simulator and grades through its ledger and the request bodies its client sent; the load test and the
capacity simulation run on virtual time, so the grade is the same on any machine.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import inspect
import itertools
import json
import logging
import math
import numbers
import os
import sqlite3
import tempfile
import weakref
from typing import Any

from ..architecture import loadtest
from ..architecture.bus import Event, InMemoryBus
from ..architecture.capacity import CapacityInputs, simulate_conversations_per_minute
from ..architecture.capacity import conversations_per_minute as _reference_capacity
from ..architecture.help_centre import load_help_centre, questions
from ..architecture.store import DeskStore
from ..architecture.workers import PipelineConfig
from ..architecture.vectors import VectorIndex
from .framework import CaseFailed, Exercise, expect, expect_equal

TOPIC, GROUP = "message.received", "model"
INBOX_SQL = "CREATE TABLE IF NOT EXISTS processed (consumer_group TEXT, message_id TEXT, PRIMARY KEY (consumer_group, message_id))"
WORK_SQL = "CREATE TABLE IF NOT EXISTS answers (message_id TEXT, state TEXT)"


class _Crash(Exception):
    """The worker dies here (the check's stand-in for a kill -9)."""


class _ModelError(Exception):
    """The work failed (a model call that errored): the process lives on and handles the next event."""


class _Process:
    """One worker process of the check: its own connection to the inbox's database file.

    :meth:`restart` is what a deploy or a crash does to a process: the connection goes (an open
    transaction with it), and the module's memory starts over, so every module-level set, dict or list
    the answer uses, and its default arguments, are put back as they were when the check first ran it
    (each case also starts that way: a fresh process).
    """

    def __init__(self, fn: Any, path: str, *, schema: str = WORK_SQL) -> None:
        self.fn, self.path, self.schema = fn, path, schema
        self._memory = _memory_of(fn)
        if fn not in _FIRST_SEEN:  # the module's memory when the check first met this answer
            _FIRST_SEEN[fn] = copy.deepcopy([value for _, value in self._memory])
        self._initial = _FIRST_SEEN[fn]
        self._forget()  # each case starts as a fresh process
        self.db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=1.0)  # Python's default: a transaction opens before a write
        db.execute(INBOX_SQL)
        db.execute(self.schema)
        db.commit()
        return db

    def _forget(self) -> None:
        for (_, value), initial in zip(self._memory, copy.deepcopy(self._initial)):
            if isinstance(value, list):
                value[:] = initial
            else:
                value.clear()
                value.update(initial)

    def restart(self) -> None:
        self.db.close()
        self._forget()
        self.db = self._connect()


_FIRST_SEEN: "weakref.WeakKeyDictionary[Any, list[Any]]" = weakref.WeakKeyDictionary()


def _memory_of(fn: Any) -> list[tuple[str, Any]]:
    """The mutable state a process would lose: module-level sets, dicts and lists that ``fn``, a function
    it defines or a module-level function it calls (8.3 calls the answer's 8.1 and 8.2) names, and their
    default arguments."""
    found: dict[int, tuple[str, Any]] = {}
    functions, seen = [fn], set()
    while functions:
        f = functions.pop()
        if id(f) in seen or not inspect.isfunction(f):
            continue
        seen.add(id(f))
        names: set[str] = set()
        stack = [f.__code__]
        while stack:
            code = stack.pop()
            names.update(code.co_names)
            stack += [c for c in code.co_consts if inspect.iscode(c)]
        for n in sorted(names):
            value = f.__globals__.get(n)
            if inspect.isfunction(value) and value.__module__ == f.__module__:
                functions.append(value)
            elif type(value) in (set, dict, list):
                found.setdefault(id(value), (n, value))
        defaults = [*(f.__defaults__ or ()), *(f.__kwdefaults__ or {}).values()]
        for i, v in enumerate(defaults):
            if type(v) in (set, dict, list):
                found.setdefault(id(v), (f"default {i} of {f.__name__}", v))
    return list(found.values())


def _committed(path: str, sql: str, args: tuple = ()) -> list[tuple]:
    """What another process sees: committed rows only."""
    db = sqlite3.connect(path, timeout=1.0)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


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
        return dict(_committed(self.path, sql, ("answer",)))

    def partial(self) -> int:
        """Committed rows of a failed attempt."""
        return len(_committed(self.path, "SELECT 1 FROM answers WHERE state = 'partial'"))


class _CheckingBus(InMemoryBus):
    """A bus that notes, at each ack, whether the message was committed as processed; with ``doomed``,
    the first ack of that message never happens: the worker dies just before it."""

    def __init__(self, path: str, doomed: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.path, self.doomed = path, doomed
        self.events_by_id: dict[str, str] = {}
        self.early_acks: list[str] = []

    async def ack(self, topic: str, group: str, event_id: str) -> bool:
        mid = self.events_by_id.get(event_id, "")
        recorded = _committed(
            self.path, "SELECT 1 FROM processed WHERE consumer_group = ? AND message_id = ?", (group, mid)
        )
        if not recorded and mid not in self.early_acks:
            self.early_acks.append(mid)
        if self.doomed is not None and mid == self.doomed:
            self.doomed = None
            raise _Crash("killed before the ack")
        return await super().ack(topic, group, event_id)


async def _handle(process: _Process, event: Event, bus: Any, work: Any) -> bool:
    """Run the answer on one event; True if it returned, False if the check's crash went through it."""
    try:
        result = process.fn(event, bus=bus, group=GROUP, db=process.db, work=work)
        if not inspect.isawaitable(result):
            raise CaseFailed(
                f"handle_event returned {type(result).__name__}, not a coroutine",
                hint="Define it with `async def`: bus.ack and work are coroutines to await.",
            )
        await result
    except _Crash:
        process.restart()  # the worker died: a new process takes over, with only what was committed
        return False
    except _ModelError:
        return False  # the consumer loop logs it and goes on; the event stays pending
    return True


async def _drain(process: _Process, bus: _CheckingBus, work: _Work, *, rounds: int = 3) -> None:
    """Deliver everything, wait past the idle timeout for redeliveries, and deliver again."""
    await bus.ensure_group(TOPIC, GROUP)
    for _ in range(rounds):
        for event in await bus.read(TOPIC, GROUP, "worker", count=100):
            bus.events_by_id[event.id] = event.data["message_id"]
            await _handle(process, event, bus, work)
        await asyncio.sleep(bus.idle_timeout_s + 1)  # virtual time: the idle timeout costs nothing


def _setup(fn: Any, *, fail_in_work: str | None = None, crash_before_ack: str | None = None):
    path = os.path.join(tempfile.mkdtemp(prefix="check-8-1-"), "inbox.db")
    return _Process(fn, path), _CheckingBus(path, crash_before_ack, idle_timeout_s=30), _Work(path, fail_in_work)


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
    recorded = [r[0] for r in _committed(process.path, "SELECT message_id FROM processed WHERE consumer_group = ? "
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


# =============================================================================================
# 8.2 build_request(store, index, tenant, conversation_id, upto, *, budget, k) -> {"system", "messages"}
# =============================================================================================
_REFERENCES = {"DeskStore.history_within": DeskStore.history_within, "VectorIndex.search": VectorIndex.search}

request = Exercise(
    "8.2",
    "The model request: the tenant's k nearest articles and the newest turns, within one token budget",
    points=3,
    signature="build_request(store, index, tenant, conversation_id, upto, *, budget, k) -> "
    '{"system": str, "messages": list[dict]}',
    reference=_REFERENCES,
    task="build the request (retrieval and history) yourself",
    hints=[
        "Two queries, each with the tenant in it: the KNN query of the vector index (`AND tenant = ?` inside it, "
        "so it returns k of the tenant's articles, never fewer) and the conversation's history up to `upto` "
        "(store.history). The articles go into the system prompt; the budget is for the whole request, so count "
        "the system prompt before you keep turns (lesson 01: sliding_window(..., system=system)).",
        "question = store.message(tenant, upto).content; rows = index.db.execute('SELECT text FROM docs WHERE "
        "embedding MATCH ? AND k = ? AND tenant = ? ORDER BY distance', (embed_one(question).tobytes(), k, "
        "tenant)).fetchall(); system = 'Answer from these articles:\\n\\n' + '\\n\\n'.join(r[0] for r in rows); "
        "messages = sliding_window(store.history(tenant, conversation_id, upto=upto), budget, system=system).",
    ],
)


@functools.cache
def _index() -> VectorIndex:
    index = VectorIndex()
    load_help_centre(index)
    return index


@functools.cache
def _articles(tenant: str) -> tuple[tuple[str, str], ...]:
    """The tenant's articles as the index stores them: (doc_id, docs.text)."""
    rows = _index().db.execute("SELECT doc_id, text FROM docs WHERE tenant = ? ORDER BY doc_id", (tenant,))
    return tuple((doc_id, text) for doc_id, text in rows.fetchall())


@functools.cache
def _all_articles() -> tuple[tuple[str, str, str], ...]:
    rows = _index().db.execute("SELECT tenant, doc_id, text FROM docs ORDER BY tenant, doc_id").fetchall()
    return tuple((t, d, x) for t, d, x in rows)


def _articles_in(text: str, tenant: str) -> tuple[list[str], list[str]]:
    """The articles whose ``docs.text`` appears in ``text``: (the tenant's own doc ids, other tenants')."""
    own_texts = {x for _, x in _articles(tenant)}
    own = [d for d, x in _articles(tenant) if x in text]
    foreign = [d for t, d, x in _all_articles() if t != tenant and x not in own_texts and x in text]
    return own, foreign


FILLER = {"acme": "router", "globex": "SECRET-GLOBEX"}
"""Two tenants whose conversation ids collide; globex's turns carry a word acme must never see."""


def _desk(new: dict[str, str] | None = None, *, turns: int = 6) -> DeskStore:
    """Both tenants' conversation ``c1``: ``turns`` answered turns, then a new message ``<tenant>-now``."""
    store = DeskStore()
    for tenant, words in FILLER.items():
        for i in range(turns):
            user = store.add_message(
                tenant, "c1", "user", f"turn {i}: my {words} " + "blinks " * 20, message_id=f"{tenant}-{i}"
            )
            store.save_answer(tenant, "c1", user.message_id, f"answer {i} about the {words} " + "restart it " * 15)
        text = (new or {}).get(tenant, "and now it is slow" if tenant == "acme" else "SECRET-GLOBEX question")
        store.add_message(tenant, "c1", "user", text, message_id=f"{tenant}-now")
    return store


def _request(fn: Any, store: DeskStore, tenant: str, budget: int, k: int, upto: str | None = None) -> dict:
    got = fn(store, _index(), tenant, "c1", upto or f"{tenant}-now", budget=budget, k=k)
    if (
        not isinstance(got, dict)
        or not isinstance(got.get("system"), str)
        or not isinstance(got.get("messages"), list)
        or not all(isinstance(m, dict) for m in got["messages"])
    ):
        raise CaseFailed(
            "build_request must return a dict with 'system' (a string) and 'messages' (a list of API messages)",
            expected='{"system": "...", "messages": [{"role": ..., "content": ...}, ...]}',
            got=type(got).__name__ if not isinstance(got, dict) else {k: type(v).__name__ for k, v in got.items()},
            hint="Return {'system': system, 'messages': messages}: what client.messages.create(**request) takes.",
        )
    return got


def _tokens(got: dict) -> int:
    from ..context import request_tokens

    return request_tokens({"system": got["system"], "messages": got["messages"]})


@request.case("only the tenant's own messages and articles, the history ending with `upto`")
def _request_tenant(fn) -> None:
    store = _desk()
    for tenant in ("acme", "globex"):
        got = _request(fn, store, tenant, 100_000, 3)
        other = next(t for t in FILLER if t != tenant)
        leaked = [m for m in got["messages"] if FILLER[other] in str(m.get("content"))]
        expect(
            not leaked,
            f"the request of tenant {tenant!r} contains {len(leaked)} messages of tenant {other!r} "
            "(same conversation id)",
            expected=f"{tenant}'s messages only",
            got=leaked[:2],
            hint="Every query filters on the tenant: conversation ids are chosen by tenants and collide.",
        )
        _, foreign = _articles_in(got["system"], tenant)
        expect(
            not foreign,
            f"the system prompt of tenant {tenant!r} carries other tenants' articles {foreign[:3]}",
            expected=f"only {tenant}/... articles",
            got=foreign[:3],
            hint="Put the tenant in the KNN query (AND tenant = ?): another company's help centre must never "
            "reach the prompt.",
        )
        expect_equal(
            got["messages"],
            store.history(tenant, "c1", upto=f"{tenant}-now"),
            f"with a budget that fits everything, the messages of tenant {tenant!r}",
            hint="Every answered turn in order, then the message `upto` (store.history(..., upto=upto)).",
        )


@request.case("the system prompt carries the text of exactly the tenant's k nearest articles (k = 1, 3, 5)")
def _request_articles(fn) -> None:
    sample = questions(hidden=True)[::40]
    store = DeskStore()
    for i, q in enumerate(sample):
        store.add_message(q["tenant"], "c1", "user", q["question"], message_id=f"q{i}")
    for i, (q, k) in enumerate(zip(sample, itertools.cycle((1, 3, 5)))):
        got = _request(fn, store, q["tenant"], 100_000, k, upto=f"q{i}")
        own, foreign = _articles_in(got["system"], q["tenant"])
        expect(
            not foreign,
            f"for tenant {q['tenant']!r} the system prompt carries other tenants' articles {foreign[:3]}",
            expected=f"only {q['tenant']}/... articles",
            got=foreign[:3],
            hint="Every query needs the tenant filter: another company's help centre must never reach the prompt.",
        )
        expect(
            len(own) == k,
            f"the system prompt carries {len(own)} of the tenant's articles for k={k}, although {q['tenant']!r} "
            "has 12" + (": the tenant filter ran after the top-k" if len(own) < k else ""),
            expected=f"{k} articles (their docs.text)",
            got=own,
            hint="Pass k to the KNN query (AND k = ?) and filter inside it (AND tenant = ?), not on its results; "
            "put each article's docs.text in the system prompt verbatim.",
        )
        nearest = [h.doc_id for h in VectorIndex.search(_index(), q["tenant"], q["question"], k)]
        expect(
            sorted(own) == sorted(nearest),
            f"for k={k}, the system prompt carries {sorted(own)}, not the tenant's {k} nearest articles to "
            f"{q['question']!r}",
            expected=sorted(nearest),
            got=sorted(own),
            hint="Rank by the embedding distance of the question (embed_one of the text of `upto`).",
        )


@request.case("the whole request (system prompt and messages) within the budget: the newest whole turns that fit")
def _request_budget(fn) -> None:
    from ..context import request_tokens, sliding_window

    store = _desk()
    full = store.history("acme", "c1", upto="acme-now")
    system = _request(fn, store, "acme", 100_000, 3)["system"]
    # Every boundary: the budget that keeps exactly j newest turns, and one token less (j - 1 turns).
    needs = [
        request_tokens({"system": system, "messages": full[len(full) - 1 - 2 * j :]}) for j in range(len(full) // 2 + 1)
    ]
    for budget in sorted({b for need in needs for b in (need, need - 1)} - {needs[0] - 1}):
        got = _request(fn, store, "acme", budget, 3)
        used = _tokens(got)
        without = request_tokens({"messages": got["messages"]})
        expect(
            used <= budget,
            f"the request needs {used} input tokens, over the budget of {budget}"
            + (" (its messages alone fit: the system prompt counts too)" if without <= budget else ""),
            expected=f"<= {budget} tokens",
            got=used,
            hint="The budget is for the whole request: count the system prompt with the history "
            "(sliding_window(messages, budget, system=system), or request_tokens of the whole body).",
        )
        expect_equal(
            got["messages"],
            sliding_window(full, budget, system=got["system"]),
            f"with a budget of {budget} tokens",
            hint="Keep the newest whole turns, as many as fit: an over-budget history is cut from the oldest "
            "end, a turn (user + assistant) at a time, and the new message always stays last.",
        )


@request.case("when not even the system prompt and the new message fit: no older turn is sent")
def _request_nothing_fits(fn) -> None:
    from ..context import request_tokens

    store = _desk()
    newest = store.history("acme", "c1", upto="acme-now")[-1:]
    system = _request(fn, store, "acme", 100_000, 3)["system"]
    alone = request_tokens({"system": system, "messages": newest})
    try:
        got = fn(store, _index(), "acme", "c1", "acme-now", budget=alone - 1, k=3)
    except (CaseFailed, NotImplementedError):
        raise
    except Exception:  # noqa: BLE001 - the library's reading: ContextBudgetExceeded
        return
    messages = got.get("messages") if isinstance(got, dict) else got
    expect(
        messages in ([], newest),
        f"with a budget of {alone - 1} tokens, one less than the system prompt and the new message alone, "
        f"build_request sent {len(messages) if isinstance(messages, list) else messages!r} messages",
        expected="an exception (ContextBudgetExceeded), or messages [] or the new message alone",
        got=messages if not isinstance(messages, list) else f"{len(messages)} messages",
        hint="Nothing fits, so no older turn may be sent: raise (sliding_window raises ContextBudgetExceeded), "
        "or send no older turn.",
    )


# =============================================================================================
# 8.3 answer_event(event, *, bus, group, db, store, index, client, budget, k): 8.1 + 8.2 + the model
# =============================================================================================
MODEL, MAX_TOKENS = "claude-sonnet-5-5", 300
ANSWER_BUDGET = 600
"""The 8.3 cases' budget: the system prompt with 3 articles, the new message and about four of its eight turns."""
ANSWER_K = 2
"""The 8.3 cases' k (not 8.2's usual 3, so a hard-coded k shows)."""
ANSWERS_SQL = "CREATE TABLE IF NOT EXISTS answers (message_id TEXT, text TEXT)"

answering = Exercise(
    "8.3",
    "The model stage: your consumer (8.1) and your request (8.2) around one model call",
    points=3,
    signature="async answer_event(event, *, bus, group, db, store, index, client, budget, k) -> None",
    reference=_REFERENCES,
    task="compose your handle_event and build_request",
    hints=[
        "Define the work inside answer_event (it closes over store, index, client, budget and k): build the request "
        "with your build_request, call the model, write the text into `answers` through db. Then hand that work "
        "to your handle_event: the inbox and the ack are already right there.",
        "async def work(event, db): request = build_request(store, index, tenant, conversation_id, message_id, "
        f"budget=budget, k=k); reply = await client.messages.create(model={MODEL!r}, max_tokens={MAX_TOKENS}, "
        "**request); db.execute('INSERT INTO answers VALUES (?, ?)', (message_id, ''.join(b.text for b in "
        "reply.content if b.type == 'text'))). Then await handle_event(event, bus=bus, group=group, db=db, work=work).",
    ],
)


class _Killed(BaseException):
    """The worker is killed after the model answered, before anything was committed (a kill -9: not an
    Exception, so neither the SDK nor a broad ``except Exception`` turns it into something else)."""


class _Recorder:
    """Wraps the SDK client's transport: keeps the body of every model call that answered, and kills
    the worker once, just after the model's response to message ``doomed`` arrived."""

    def __init__(self, inner: Any, doomed: str | None) -> None:
        self.inner, self.doomed = inner, doomed
        self.bodies: list[dict] = []

    async def handle_async_request(self, request: Any) -> Any:
        body = json.loads(request.content or b"{}") if request.url.path.endswith("/v1/messages") else None
        response = await self.inner.handle_async_request(request)
        if body is not None and response.status_code == 200:  # a model call that answered (and is billed)
            self.bodies.append(body)
        if body is not None and self.doomed is not None and self.doomed in json.dumps(body.get("messages", [])[-1:]):
            self.doomed = None
            await response.aread()  # the model answered (and billed); the worker dies before it commits
            raise _Killed("killed after the model's response")
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _ticket(tenant: str, i: int) -> str:
    return f"ticket {tenant}-{i}"


class _Desk:
    """One 8.3 case: the conversation store, the inbox's database file, the bus and a probe's client."""

    def __init__(self, fn: Any, *, crash_before_ack: str | None = None, killed_in_work: str | None = None) -> None:
        from .sim import probe

        self.fn = fn
        qs = {q["tenant"]: q["question"] for q in reversed(questions(hidden=True)) if q["tenant"] in FILLER}
        self.store = _desk({t: f"{_ticket(t, 0)}: {qs[t]}" for t in FILLER}, turns=8)
        path = os.path.join(tempfile.mkdtemp(prefix="check-8-3-"), "inbox.db")
        self.process = _Process(fn, path, schema=ANSWERS_SQL)
        self.bus = _CheckingBus(path, crash_before_ack, idle_timeout_s=30)
        self.probe = probe(tier="unlimited", tag="8-3")
        self.client = self.probe.async_client()
        self.recorder = _Recorder(self.client._client._transport, killed_in_work)
        self.client._client._transport = self.recorder
        self.replies = {}
        self.errors: dict[str, str] = {}
        """The first exception the answer raised for each message id."""
        for tenant in FILLER:
            for i in range(3):
                reply = f"Reply {i} for {tenant}: see the article on that."
                self.probe.script(_ticket(tenant, i), reply)
                self.replies[f"{tenant}-now" if i == 0 else f"{tenant}-later-{i}"] = reply

    async def publish(self, tenant: str, message_id: str) -> None:
        await self.bus.publish(TOPIC, {"tenant": tenant, "conversation_id": "c1", "message_id": message_id})

    async def handle(self, event: Event) -> None:
        process = self.process
        try:
            result = process.fn(
                event,
                bus=self.bus,
                group=GROUP,
                db=process.db,
                store=self.store,
                index=_index(),
                client=self.client,
                budget=ANSWER_BUDGET,
                k=ANSWER_K,
            )
            if not inspect.isawaitable(result):
                raise CaseFailed(
                    f"answer_event returned {type(result).__name__}, not a coroutine",
                    hint="Define it with `async def`: the model call, bus.ack and handle_event are coroutines.",
                )
            await result
        except (_Crash, _Killed):
            process.restart()
        except (CaseFailed, NotImplementedError):
            raise
        except Exception as exc:  # noqa: BLE001 - a failed message stays pending; the grade reads the ledger
            process.db.rollback()
            self.errors.setdefault(event.data["message_id"], f"{type(exc).__name__}: {exc}")

    async def drain(self, rounds: int = 3, between: Any = None) -> None:
        await self.bus.ensure_group(TOPIC, GROUP)
        for r in range(rounds):
            for event in await self.bus.read(TOPIC, GROUP, "worker", count=100):
                self.bus.events_by_id[event.id] = event.data["message_id"]
                await self.handle(event)
            if r == 0 and between is not None:
                await between()
            await asyncio.sleep(self.bus.idle_timeout_s + 1)

    def calls(self) -> dict[str, list[dict]]:
        """The requests the model received, by the message they answer (found by its ticket)."""
        by: dict[str, list[dict]] = {}
        for body in self.recorder.bodies:
            last = json.dumps(body.get("messages", [])[-1:])
            mid = next(
                (m for m in self.replies if _ticket(m.split("-")[0], self._n(m)) in last),
                "(a request for no message of the case)",
            )
            by.setdefault(mid, []).append(body)
        return by

    @staticmethod
    def _n(mid: str) -> int:
        return 0 if mid.endswith("-now") else int(mid.rsplit("-", 1)[1])

    def answers(self) -> dict[str, list[str]]:
        rows = _committed(self.process.path, "SELECT message_id, text FROM answers ORDER BY rowid")
        out: dict[str, list[str]] = {}
        for mid, text in rows:
            out.setdefault(mid, []).append(text)
        return out

    def ledger(self) -> Any:
        return self.probe.requests()


def _no_errors(desk: _Desk) -> None:
    for mid, error in desk.errors.items():
        raise CaseFailed(
            f"answer_event raised {error} for message {mid}: nothing was committed, and the event came back",
            expected="every message answered",
            got=error,
            hint="Read the reply's text blocks by type: ''.join(b.text for b in reply.content if b.type == 'text') "
            "(the reply may start with a thinking block)."
            if "thinking" in error.lower() or "attribute" in error.lower()
            else "Build the request with your build_request, call the model, and write into `answers` through db.",
        )


def _answered_once(desk: _Desk, mids: list[str], situation: str) -> None:
    _no_errors(desk)
    calls = desk.calls()
    for mid in mids:
        n = len(calls.get(mid, []))
        expect(
            n == 1,
            f"message {mid} was sent to the model {n} times {situation}"
            + (": it was charged twice" if n > 1 else ": it was never answered" if n == 0 else ""),
            expected="one model call",
            got=f"{n} calls",
            hint="Call the model inside the work you hand to your handle_event (8.1): the inbox row is committed "
            "with the answer, so a redelivered or re-published message is acknowledged without a second call."
            if n > 1
            else "Handle every event: build the request, call the model, store its text, through your handle_event.",
        )


def _system_text(body: dict) -> str:
    """The system prompt of a request body: a string, or the text of its blocks."""
    system = body.get("system") or ""
    if isinstance(system, str):
        return system
    return "\n".join(b.get("text", "") for b in system if isinstance(b, dict))


def _within_budget_and_scope(desk: _Desk) -> None:
    ledger = desk.ledger()
    over = ledger[ledger["input_tokens"] > ANSWER_BUDGET]
    expect(
        len(over) == 0,
        f"{len(over)} of the {len(ledger)} model calls were over the budget of {ANSWER_BUDGET} input tokens "
        f"(the ledger's input tokens: {sorted(over['input_tokens'].tolist())[:4]})",
        expected=f"every request <= {ANSWER_BUDGET} input tokens",
        got=f"max {int(ledger['input_tokens'].max()) if len(ledger) else 0}",
        hint="Send the request your build_request made within `budget`, unchanged: text added to it afterwards "
        "(another instruction in the system prompt) is not counted in the budget.",
    )
    models = sorted(set(ledger["model"]))
    expect(
        models == [MODEL] and set(ledger["max_tokens"]) == {MAX_TOKENS},
        f"the model calls used model {models} and max_tokens {sorted(set(ledger['max_tokens']))}",
        expected=f"model {MODEL!r}, max_tokens {MAX_TOKENS}",
        got=f"{models}, {sorted(set(ledger['max_tokens']))}",
        hint=f"client.messages.create(model={MODEL!r}, max_tokens={MAX_TOKENS}, **request)",
    )
    for mid, bodies in desk.calls().items():
        tenant = mid.split("-")[0]
        other = next((t for t in FILLER if t != tenant), "")
        for body in bodies:
            own, foreign = _articles_in(_system_text(body), tenant)
            leaked = FILLER.get(other, "\0") in json.dumps(body.get("messages", []), ensure_ascii=False)
            expect(
                not foreign and not leaked,
                f"the request answering {tenant}'s message {mid} carried "
                + (f"other tenants' articles {foreign[:3]}" if foreign else f"tenant {other!r}'s messages"),
                expected=f"only {tenant}'s articles and messages",
                got=foreign[:3] or f"{other}'s turns",
                hint="Build the request with the event's tenant in every query (your 8.2): the KNN query and the "
                "history.",
            )
            expect(
                len(own) == ANSWER_K,
                f"the request answering {mid} carried {len(own)} help-centre articles, with k={ANSWER_K}",
                expected=f"{ANSWER_K} articles",
                got=own,
                hint="Pass answer_event's own `k` (and `budget`) on to your build_request.",
            )


@answering.case(
    f"each message answered once through your inbox: {MODEL}, max_tokens {MAX_TOKENS}, the reply's text stored, "
    f"every request within the budget, with k of the tenant's articles and none of another's (ledger)"
)
async def _answer_each_once(fn) -> None:
    desk = _Desk(fn)
    for tenant in FILLER:
        await desk.publish(tenant, f"{tenant}-now")
    await desk.publish("acme", "acme-now")  # the relay published it twice: two event ids, one message
    await desk.drain()
    _answered_once(desk, ["acme-now", "globex-now"], "(published twice)")
    _within_budget_and_scope(desk)
    answers = desk.answers()
    for mid in ("acme-now", "globex-now"):
        expect(
            answers.get(mid) == [desk.replies[mid]],
            f"the answers table holds {answers.get(mid)} for message {mid}",
            expected=[desk.replies[mid]],
            got=answers.get(mid),
            hint="INSERT INTO answers VALUES (message_id, text): the text of the reply's text blocks "
            "(''.join(b.text for b in reply.content if b.type == 'text')), once, committed with the inbox row.",
        )
    pending = await desk.bus.pending(TOPIC, GROUP)
    expect(pending == 0, f"{pending} events were never acknowledged", expected=0, got=pending,
           hint="Your handle_event acks each event once it is committed.")  # fmt: skip


@answering.case("a worker killed between the commit and the ack: the restarted process makes no second call (ledger)")
async def _answer_restart(fn) -> None:
    desk = _Desk(fn, crash_before_ack="acme-now")
    for tenant in FILLER:
        await desk.publish(tenant, f"{tenant}-now")
    await desk.drain()
    _answered_once(desk, ["acme-now", "globex-now"], "after a restart between its commit and its ack")
    expect(
        not desk.bus.early_acks,
        f"message {desk.bus.early_acks[0] if desk.bus.early_acks else ''} was acknowledged before it was "
        "committed as processed",
        expected="the ack after the commit",
        got="an ack before it",
        hint="Ack after the commit: hand the work to your handle_event (8.1) rather than acking yourself.",
    )


@answering.case(
    "killed after the model answered, before the commit: the redelivery sends the same request, though the "
    "conversation has moved on (ledger)"
)
async def _answer_same_request(fn) -> None:
    desk = _Desk(fn, killed_in_work=_ticket("acme", 0))

    async def moved_on() -> None:  # while acme-now waits for its redelivery, the customer writes again
        desk.store.add_message(
            "acme", "c1", "user", f"{_ticket('acme', 1)}: hello? any news?", message_id="acme-later-1"
        )

    await desk.publish("acme", "acme-now")
    await desk.drain(between=moved_on)
    _no_errors(desk)
    by_message = desk.calls()
    calls = by_message.get("acme-now", [])
    instead = sorted(set(by_message) - {"acme-now"})
    expect(
        len(calls) == 2,
        f"message acme-now was sent to the model {len(calls)} times; expected twice: once before the kill and "
        "once on its redelivery"
        + (
            f" (the redelivery answered {instead[0]}, the conversation's latest message, not the event's)"
            if instead
            else ""
        ),
        expected="2 calls (the first one's answer was lost with the worker)",
        got=f"{len(calls)} calls",
        hint="Answer the event's own message (event.data['message_id'] as `upto`), and let the kill propagate: "
        "nothing committed, the event is redelivered.",
    )
    first, again = calls
    expect(
        again == first,
        "the redelivered message's request differs from its first one: "
        + ", ".join(f"{key} changed" for key in sorted(set(first) | set(again)) if first.get(key) != again.get(key)),
        expected="the same request body",
        got=f"{len(first.get('messages', []))} then {len(again.get('messages', []))} messages",
        hint="The request must be a function of the message: history up to `upto` (the event's message), never "
        "the conversation's latest state, and nothing that changes with the clock.",
    )
    answers = desk.answers()
    expect(
        answers.get("acme-now") == [desk.replies["acme-now"]],
        f"the answers table holds {answers.get('acme-now')} for acme-now after the redelivery",
        expected=[desk.replies["acme-now"]],
        got=answers.get("acme-now"),
        hint="The killed attempt committed nothing; the redelivery stores the answer once.",
    )


# =============================================================================================
# 8.4 wire_pipeline() -> {"config": PipelineConfig, "model_consumers": int}
# =============================================================================================
wiring = Exercise(
    "8.4",
    "Wire the pipeline so that the SLO table holds under the chaos scenario",
    points=3,
    signature='wire_pipeline() -> {"config": PipelineConfig, "model_consumers": int}',
    time_limit=120,  # a wall-clock safety net only: the load runs on virtual time (~3 s CPU, more on a busy CI)
    hints=[
        "The chaos scenario: `flaky` faults and the primary model down for a minute. A message survives an "
        "outage only with somewhere else to go (fallback_model), and a blip only with a retry (max_attempts).",
        "Each model consumer holds one streamed call for its whole latency (Little's law: in flight = rate x "
        'latency). Try {"config": PipelineConfig(fallback_model="claude-haiku-5-5", max_attempts=3), '
        '"model_consumers": 8}.',
    ],
)

CHAOS = loadtest.LoadSpec(
    tenants=4, conversations=3, turns=3, think_s=2.0, ramp_s=10.0, scenario="flaky", outage_at=5.0, outage_s=60.0
)
"""The graded load: 36 messages from 12 users of 4 tenants, with the primary model down from 5 s to 65 s."""
SLO_P95_TTFT_S = 3.0
SLO_ERROR_RATE = 0.05
MAX_MODEL_CONSUMERS = 64
"""More would only cost the check CPU: the load never has more than 12 messages in flight."""


def _settings(fn: Any) -> tuple[PipelineConfig, int]:
    got = fn()
    if not isinstance(got, dict) or set(got) != {"config", "model_consumers"}:
        raise CaseFailed(
            "wire_pipeline must return a dict with exactly the keys 'config' and 'model_consumers'",
            expected="{'config': PipelineConfig(...), 'model_consumers': int}",
            got=sorted(got) if isinstance(got, dict) else type(got).__name__,
            hint='return {"config": PipelineConfig(...), "model_consumers": 8}',
        )
    config, consumers = got["config"], got["model_consumers"]
    if not isinstance(config, PipelineConfig):
        raise CaseFailed(
            "settings['config'] is not a PipelineConfig",
            expected="PipelineConfig(...)",
            got=type(config).__name__,
            hint="Build it with PipelineConfig(field=value, ...): the workers read its fields by name.",
        )
    if isinstance(consumers, bool) or not isinstance(consumers, int) or not 1 <= consumers <= MAX_MODEL_CONSUMERS:
        raise CaseFailed(
            f"model_consumers must be a whole number from 1 to {MAX_MODEL_CONSUMERS}",
            expected=f"an int in 1..{MAX_MODEL_CONSUMERS}",
            got=consumers,
            hint="It is how many model calls the pipeline runs at once.",
        )
    return config, consumers


_runs: dict[tuple[str, int], dict[str, Any]] = {}


def _chaos_slo(fn: Any) -> dict[str, Any]:
    """The SLO row of the chaos load with the answer's settings (one run per distinct settings)."""
    config, consumers = _settings(fn)
    key = (repr(config), consumers)
    if key not in _runs:
        quiet = logging.getLogger("course_utils.architecture")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # the retries' tracebacks are the scenario's faults, not the answer's
        try:
            spec = dataclasses.replace(CHAOS, model_consumers=consumers)
            result = loadtest.run_load(spec, index=_index(), config=config)
        finally:
            quiet.setLevel(level)
        if len(_runs) > 8:
            _runs.clear()
        _runs[key] = result.slo()
    return _runs[key]


@wiring.case("the settings: a PipelineConfig and a number of model consumers")
def _wiring_shape(fn) -> None:
    _settings(fn)


@wiring.case(f"under the outage: no message lost or charged twice, error rate under {SLO_ERROR_RATE:.0%}")
def _wiring_errors(fn) -> None:
    slo = _chaos_slo(fn)
    expect(slo["lost_messages"] == 0, f"{slo['lost_messages']} of {slo['messages']} messages were lost",
           expected=0, got=slo["lost_messages"], hint="Every message needs an answer or an error.")  # fmt: skip
    expect(
        slo["duplicate_charges"] == 0,
        f"{slo['duplicate_charges']} model calls were charged twice",
        expected=0,
        got=slo["duplicate_charges"],
        hint="The model stage answers a redelivered message from the store.",
    )
    rate = slo["error_rate"]
    expect(
        rate <= SLO_ERROR_RATE,
        f"{rate:.0%} of the {slo['messages']} messages failed while the primary model was down "
        f"(answered by {slo['answered_by']})",
        expected=f"<= {SLO_ERROR_RATE:.0%}",
        got=f"{rate:.1%}",
        hint="During an outage retries of the same model only wait: give the chain a fallback_model, "
        "and keep a few attempts (max_attempts) for the flaky blips.",
    )


@wiring.case(f"p95 time to first token under {SLO_P95_TTFT_S:g} s")
def _wiring_latency(fn) -> None:
    slo = _chaos_slo(fn)
    p95 = slo["p95_ttft_s"]
    expect(
        p95 <= SLO_P95_TTFT_S,
        f"p95 time to first token is {p95:.1f} s, over the SLO of {SLO_P95_TTFT_S:g} s (p50 {slo['p50_ttft_s']:.1f} s)",
        expected=f"<= {SLO_P95_TTFT_S:g} s",
        got=f"{p95:.1f} s",
        hint="Messages wait in the queue for a free model consumer: by Little's law the workers needed are "
        "arrival rate x model latency. Add model_consumers (and a fallback, or waits for the dead model count).",
    )


# =============================================================================================
# 8.5 conversations_per_minute(p: CapacityInputs) -> float
# =============================================================================================
capacity = Exercise(
    "8.5",
    "Capacity planning: sustainable conversations per minute",
    points=3,
    signature="conversations_per_minute(p: CapacityInputs) -> float",
    reference={"architecture.conversations_per_minute": _reference_capacity},
    task="work out the capacity",
    hints=[
        "Four limits cap the turns (model calls) per minute: RPM, ITPM / input tokens per turn, OTPM / output "
        "tokens per turn, and the workers (Little's law: workers x 60 / latency_s). The smallest binds.",
        "min(p.rpm, p.itpm / p.input_tokens_per_turn, p.otpm / p.output_tokens_per_turn, "
        "p.workers * 60 / p.latency_s) / p.turns_per_conversation",
    ],
)

CAPACITY_TOLERANCE = 0.02
"""Relative: the simulation's 10 minutes measure the reference formula to well under 1%."""

PLANS = {
    "rpm": CapacityInputs(50, 200_000, 80_000, 2_000, 300, 5, 3.0, 8),
    "itpm": CapacityInputs(1_000, 100_000, 100_000, 4_000, 200, 4, 2.0, 20),
    "otpm": CapacityInputs(1_000, 1_000_000, 16_000, 1_000, 800, 3, 4.0, 50),
    "workers": CapacityInputs(4_000, 2_000_000, 400_000, 1_500, 250, 6, 5.0, 10),
}
"""One key and pool per limit that can bind (the key names it)."""

_LIMIT_NAMES = {"rpm": "RPM", "itpm": "ITPM", "otpm": "OTPM", "workers": "the worker pool (Little's law)"}


@functools.cache
def _simulated(p: CapacityInputs) -> float:
    return simulate_conversations_per_minute(p)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= CAPACITY_TOLERANCE * abs(b)


def _capacity_case(limit: str) -> Any:
    def case(fn: Any) -> None:
        p = PLANS[limit]
        got = fn(p)
        if isinstance(got, bool) or not isinstance(got, numbers.Real) or not math.isfinite(got):
            raise CaseFailed(
                "conversations_per_minute must return a finite number",
                expected="a float",
                got=got,
                hint="Return the number of conversations per minute, e.g. 6.25.",
            )
        got, reference, simulated = float(got), _reference_capacity(p), _simulated(p)
        if _close(got, reference) and _close(got, simulated):
            return
        cause = f"the binding limit here is {_LIMIT_NAMES[limit]}"
        limits = [p.rpm, p.itpm / p.input_tokens_per_turn, p.otpm / p.output_tokens_per_turn]
        per_second_workers = min(*limits, p.workers / p.latency_s) / p.turns_per_conversation
        if _close(got, reference / 60):
            cause = "60 times too few: a per-second figure, not per minute"
        elif _close(got, reference * p.turns_per_conversation):
            cause = f"that is turns per minute: a conversation is {p.turns_per_conversation:g} turns"
        elif _close(got, max(*limits, p.workers * 60 / p.latency_s) / p.turns_per_conversation):
            cause = "that is the loosest limit: the smallest one binds"
        elif _close(got, per_second_workers) and not _close(per_second_workers, reference):
            cause = "the worker pool gives workers / latency_s turns per second: times 60 per minute"
        raise CaseFailed(
            f"with {_LIMIT_NAMES[limit]} binding, the answer is {got:.4g} conversations per minute; "
            f"the simulation sustained {simulated:.4g} ({cause})",
            expected=f"{reference:.4g} (within {CAPACITY_TOLERANCE:.0%})",
            got=round(got, 4),
            hint="Every limit caps the turns per minute: rpm, itpm / input_tokens_per_turn, "
            "otpm / output_tokens_per_turn and workers * 60 / latency_s. The smallest binds; divide by "
            "turns_per_conversation.",
        )

    return case


for _limit in PLANS:
    capacity.case(f"when {_LIMIT_NAMES[_limit]} binds: within {CAPACITY_TOLERANCE:.0%} of the simulation")(
        _capacity_case(_limit)
    )


EXERCISES = [consumer, request, answering, wiring, capacity]
