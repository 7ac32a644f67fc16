"""Checks for exercise 8.3 ``answer_event``: the answer's own 8.1 and 8.2 around one model call (the ledger)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import tempfile
from typing import Any

from ...architecture.bus import Event
from ...architecture.help_centre import questions
from ..framework import CaseFailed, Exercise, expect
from ..sim import probe
from .common import (
    FILLER,
    GROUP,
    REFERENCES,
    TOPIC,
    CheckingBus,
    Crash,
    Process,
    articles_in,
    committed,
    desk_store,
    help_centre_index,
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
    reference=REFERENCES,
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
    """One 8.3 case: the conversation store, the inbox's database file, the bus and a probe's client
    (``async with desk.probe:`` closes it)."""

    def __init__(self, fn: Any, *, crash_before_ack: str | None = None, killed_in_work: str | None = None) -> None:
        self.fn = fn
        qs = {q["tenant"]: q["question"] for q in reversed(questions(hidden=True)) if q["tenant"] in FILLER}
        self.store = desk_store({t: f"{_ticket(t, 0)}: {qs[t]}" for t in FILLER}, turns=8)
        path = os.path.join(tempfile.mkdtemp(prefix="check-8-3-"), "inbox.db")
        self.process = Process(fn, path, schema=ANSWERS_SQL)
        self.bus = CheckingBus(path, crash_before_ack, idle_timeout_s=30)
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
                index=help_centre_index(),
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
        except (Crash, _Killed):
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
        rows = committed(self.process.path, "SELECT message_id, text FROM answers ORDER BY rowid")
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
            own, foreign = articles_in(_system_text(body), tenant)
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
    async with desk.probe:  # closes the desk's client, however the drain ends
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
    async with desk.probe:  # closes the desk's client, however the drain ends
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
    async with desk.probe:  # closes the desk's client, however the drain ends
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
