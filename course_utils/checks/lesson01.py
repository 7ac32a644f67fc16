"""Checks for lesson 01 (Context management at scale).

1.1 ``count_request_tokens(body)``, 1.2 ``sliding_window(body, budget)``,
1.3 ``compact(client, summary, messages, threshold)``, 1.4 ``place_breakpoints(body)``.
1.3 and 1.4 grade behaviour through the check simulator's ledger.
"""

from __future__ import annotations

import copy
import random
from decimal import Decimal
from typing import Any, Callable

import anthropic

from .. import models, pricing, tokens
from ..context import accounting, strategies
from ..context import compose_request, group_turns, is_correct, load_conversation, sliding_window as reference_window
from ..context.turns import validity_problems
from .forbid import COUNT_TOKENS, ApiEndpoint, forbid
from .framework import CaseFailed, Exercise, call, expect, expect_equal
from .sim import probe

MODEL = "sim-teaching-4k"
"""The 4,096-token teaching model every check of this lesson talks to."""
CONTEXT_WINDOW = models.get_model(MODEL).context_window
MAX_TOKENS = 150
COMPACT_THRESHOLD = 2_500
"""Exercise 1.3's threshold, in input tokens of the whole request."""
COMPACT_TURNS = 60
STATE_TEMPLATE = "Session state: turn {turn}, queue position {queue}, agent shift {shift}."
"""Exercise 1.4's volatile system block: it changes on every turn."""

_CONVERSATION = load_conversation()
SYSTEM = _CONVERSATION.system


def _unlimited(p: Any) -> Any:
    # The checks make dozens of requests in a second; rate limits are not this lesson's topic.
    p.server.set_rate_limits(p.api_key, "unlimited")
    return p


def _strip_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_cache_control(v) for v in value]
    return value


def _expect_unmodified(given: Any, original: Any, what: str) -> None:
    """Both contracts say the body is not modified: ``given`` (what the answer got) must still equal ``original``."""
    if given != original:
        changed = (
            sorted(k for k in set(given) | set(original) if given.get(k) != original.get(k))
            if isinstance(given, dict) and isinstance(original, dict)
            else "the body"
        )
        raise CaseFailed(
            f"{what}: your function modified the body it was given (changed: {changed})",
            expected="the body left as it was",
            got=f"changed {changed}",
            hint="Do not write to body: build a new dict ({**body, 'messages': kept}) and leave the "
            "caller's request, its messages list and its system prompt untouched.",
        )


# The library functions an exercise must not delegate to: exercise 1.1 is to count, 1.2 to trim.
_COUNTERS: dict[str, Callable[..., Any]] = {
    "tokens.count_request": tokens.count_request,
    "context.request_tokens": accounting.request_tokens,
    "context.account": accounting.account,
    "context.message_tokens": accounting.message_tokens,
    "context.system_tokens": accounting.system_tokens,
    "context.tools_tokens": accounting.tools_tokens,
}
_WINDOWS: dict[str, Callable[..., Any]] = {"context.sliding_window": strategies.sliding_window}


def _call_without(
    fn: Any, forbidden: dict[str, Callable[..., Any]], task: str, *args: Any, endpoints: tuple[ApiEndpoint, ...] = ()
) -> Any:
    """``call(fn, *args)`` with the ``forbidden`` library functions (and API ``endpoints``) refused."""
    with forbid(fn, forbidden, task=task, endpoints=endpoints):
        return call(fn, *args)


# ---------------------------------------------------------------------------------------------
# Shared test conversations: real turns from the data set, replies of varied length, tool rounds.
# ---------------------------------------------------------------------------------------------
TOOL = {
    "name": "order_status",
    "description": "Look up the delivery status of an order by its number.",
    "input_schema": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
}
TOOLS = [
    TOOL,
    {
        "name": "book_technician",
        "description": "Book a technician visit for a customer's address and a time slot.",
        "input_schema": {
            "type": "object",
            "properties": {
                "address": {"type": "string", "description": "Street address of the installation."},
                "slot": {"type": "string", "enum": ["morning", "afternoon", "evening"]},
            },
            "required": ["address", "slot"],
        },
    },
    {
        "name": "line_test",
        "description": "Run a remote line test on the customer's connection.",
        "input_schema": {"type": "object", "properties": {"line_id": {"type": "string"}}, "required": ["line_id"]},
    },
]
"""More than one tool: each is counted on its own (``tokens.count_tool``), on top of one ``TOOLS_OVERHEAD``."""


def _history(turns: int, *, tool_every: int = 4, offset: int = 0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    scripted = _CONVERSATION.turns[offset : offset + turns]
    for i, t in enumerate(scripted):
        messages.append({"role": "user", "content": t.user})
        if tool_every and i % tool_every == tool_every - 1:
            tid = f"toolu_check{offset + i:04d}"
            messages.append(
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me look that order up."},
                        {"type": "tool_use", "id": tid, "name": "order_status", "input": {"order": "4417"}},
                    ],
                }
            )
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": tid,
                            "content": "Order 4417: shipped, arriving Friday. " * (1 + i % 3),
                        }
                    ],
                }
            )
        if i < len(scripted) - 1:
            reply = "Restart it from the app, wait two minutes, then check the lights. " * (1 + (i * 7) % 5)
            messages.append({"role": "assistant", "content": reply.strip()})
    return messages


# ---------------------------------------------------------------------------------------------
# 1.1 count_request_tokens(body) -> int
# ---------------------------------------------------------------------------------------------
count_request_tokens = Exercise(
    "1.1",
    "Count a whole request's tokens",
    points=2,
    signature="count_request_tokens(body) -> int",
    hints=[
        "A request is more than its text: add REQUEST_OVERHEAD once, SYSTEM_OVERHEAD plus the system "
        "text when there is a system prompt, TOOLS_OVERHEAD plus each tool when there are tools, and "
        "MESSAGE_OVERHEAD plus the content for every message.",
        "total = tokens.REQUEST_OVERHEAD; if body.get('system'): total += tokens.SYSTEM_OVERHEAD + "
        "tokens.count_blocks(body['system']); if body.get('tools'): total += tokens.TOOLS_OVERHEAD + "
        "sum(tokens.count_tool(t) for t in body['tools']); for m in body['messages']: total += "
        "tokens.MESSAGE_OVERHEAD + tokens.count_blocks(m['content']).",
    ],
)


def _expect_count(fn: Any, body: dict[str, Any], what: str, hint: str) -> None:
    p = _unlimited(probe())
    params = {k: v for k, v in body.items() if k != "max_tokens"}
    expected = p.client().messages.count_tokens(**params).input_tokens  # before the library is swapped out
    given = copy.deepcopy(body)
    got = _call_without(fn, _COUNTERS, "count a request's tokens", given, endpoints=(COUNT_TOKENS,))
    _expect_unmodified(given, body, what)
    if not isinstance(got, int) or isinstance(got, bool):
        raise CaseFailed(
            f"{what}: not an int", expected=expected, got=got, hint="Return the number of tokens as an int."
        )
    expect_equal(got, expected, f"{what}: your count differs from count_tokens by {got - expected:+d}", hint=hint)


@count_request_tokens.case("one user message, no system prompt")
def _count_one(fn: Any) -> None:
    _expect_count(
        fn,
        {"model": MODEL, "messages": [{"role": "user", "content": "Where is my parcel?"}]},
        "a single message",
        "Even the smallest request pays REQUEST_OVERHEAD once and MESSAGE_OVERHEAD per message.",
    )


@count_request_tokens.case("counts the per-message overhead of a long conversation")
def _count_many(fn: Any) -> None:
    _expect_count(
        fn,
        {"model": MODEL, "messages": _history(12, tool_every=0)},
        "a 12-turn conversation",
        "Each message costs tokens.MESSAGE_OVERHEAD on top of its text: it adds up over many short turns.",
    )


@count_request_tokens.case("counts the system prompt, as a string and as text blocks")
def _count_system(fn: Any) -> None:
    messages = [{"role": "user", "content": "What does a blinking orange light mean?"}]
    _expect_count(
        fn,
        {"model": MODEL, "system": SYSTEM, "messages": messages},
        "a string system prompt",
        "A system prompt costs tokens.SYSTEM_OVERHEAD plus its text (tokens.count_blocks works for both forms).",
    )
    blocks = [{"type": "text", "text": SYSTEM}, {"type": "text", "text": "Session state: turn 3."}]
    _expect_count(
        fn,
        {"model": MODEL, "system": blocks, "messages": messages},
        "a system prompt of text blocks",
        "system may be a list of text blocks: count every block (tokens.count_blocks).",
    )


@count_request_tokens.case("counts tools and tool_use / tool_result blocks")
def _count_tools(fn: Any) -> None:
    _expect_count(
        fn,
        {"model": MODEL, "system": SYSTEM, "tools": [TOOL], "messages": _history(4)},
        "a request with a tool and a tool round trip",
        "Tools cost tokens.TOOLS_OVERHEAD once plus tokens.count_tool(t) each; content blocks are "
        "counted by tokens.count_blocks (tool_use and tool_result included).",
    )
    _expect_count(
        fn,
        {"model": MODEL, "system": SYSTEM, "tools": TOOLS, "messages": _history(8, offset=3)},
        f"a request with {len(TOOLS)} tools",
        "Every tool costs tokens.count_tool(tool), summed over all of them; TOOLS_OVERHEAD is paid once "
        "for the tools parameter, not once per tool.",
    )


@count_request_tokens.case("an empty system prompt and an empty tools list cost nothing")
def _count_empty(fn: Any) -> None:
    messages = [{"role": "user", "content": "Is there an outage in my area?"}]
    _expect_count(
        fn,
        {"model": MODEL, "system": "", "tools": [], "messages": messages},
        "system='' and tools=[]",
        "An empty system prompt or tools list is no system prompt or tools: add SYSTEM_OVERHEAD and "
        "TOOLS_OVERHEAD only when there is something (if body.get('system'): ...).",
    )
    _expect_count(
        fn,
        {"model": MODEL, "system": [], "messages": messages},
        "system=[] (no blocks)",
        "A system prompt with no blocks is no system prompt: no SYSTEM_OVERHEAD.",
    )


def random_bodies(n: int = 12, seed: int = 11) -> list[dict[str, Any]]:
    """``n`` seeded request bodies: any mix of system (string, blocks or none), tools (0 to 3) and a
    conversation of 1 to 14 turns with and without tool rounds."""
    rng = random.Random(seed)
    bodies = []
    for _ in range(n):
        body: dict[str, Any] = {
            "model": MODEL,
            "messages": _history(rng.randint(1, 14), tool_every=rng.choice([0, 2, 3]), offset=rng.randint(0, 200)),
        }
        system = rng.choice([None, "short", "policy", "blocks"])
        if system == "short":
            body["system"] = "You are a support assistant."
        elif system == "policy":
            body["system"] = SYSTEM
        elif system == "blocks":
            body["system"] = [
                {"type": "text", "text": SYSTEM[: rng.randint(10, 400)]},
                {"type": "text", "text": STATE_TEMPLATE.format(turn=1, queue=2, shift="A")},
            ]
        k = rng.randint(0, len(TOOLS))
        if k:
            body["tools"] = TOOLS[:k]
        bodies.append(body)
    return bodies


@count_request_tokens.case("agrees with count_tokens on 12 random requests")
def _count_random(fn: Any) -> None:
    for i, body in enumerate(random_bodies()):
        parts = [
            f"{len(body['messages'])} messages",
            f"{len(body.get('tools') or [])} tools",
            "a system prompt" if body.get("system") else "no system prompt",
        ]
        _expect_count(
            fn,
            body,
            f"random request #{i} ({', '.join(parts)})",
            "Count every part: overheads, system, each tool and each message's content.",
        )


# ---------------------------------------------------------------------------------------------
# 1.2 sliding_window(body, budget) -> dict
# ---------------------------------------------------------------------------------------------
window = Exercise(
    "1.2",
    "Token-budgeted sliding window",
    points=3,
    signature="sliding_window(body, budget) -> dict",
    hints=[
        "Work in whole turns (a user message that is not only tool results, up to the next one), newest "
        "first, and count the whole request (system, tools and overheads) against the budget.",
        "turns = group_turns(body['messages']); walk reversed(turns), adding sum(MESSAGE_OVERHEAD + "
        "count_blocks(m['content'])) per turn to count_request({**body, 'messages': []}) and stop before the "
        "budget is passed; return {**body, 'messages': [m for t in kept_turns_oldest_first for m in t]}.",
    ],
)

_WINDOW_CASES = [
    # (description, body, budget)
    (
        "20 turns, no tools",
        {"model": MODEL, "max_tokens": MAX_TOKENS, "system": SYSTEM, "messages": _history(20, tool_every=0)},
        1_200,
    ),
    (
        "30 turns with tool rounds",
        {"model": MODEL, "max_tokens": MAX_TOKENS, "system": SYSTEM, "tools": [TOOL], "messages": _history(30)},
        1_600,
    ),
    (
        "a tight budget",
        {"model": MODEL, "max_tokens": MAX_TOKENS, "system": SYSTEM, "messages": _history(16, tool_every=3, offset=20)},
        800,
    ),
    (
        "a roomy budget",
        {"model": MODEL, "max_tokens": MAX_TOKENS, "system": SYSTEM, "messages": _history(40, tool_every=5, offset=5)},
        3_000,
    ),
]


def _edge_case() -> tuple[str, dict[str, Any], int]:
    """A budget that ends exactly between a tool_use and its tool_result, where trimming per message breaks."""
    messages = [
        {"role": "user", "content": "My router model is XR-500 and it keeps dropping the connection."},
        {"role": "assistant", "content": "Restart it and wait two minutes before turning it back on."},
        {"role": "user", "content": "Did my replacement order ship yet?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check the delivery system for your replacement order. " * 6},
                {"type": "tool_use", "id": "toolu_check_edge", "name": "order_status", "input": {"order": "4417"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_check_edge",
                    "content": "Order 4417: shipped, arriving Friday.",
                }
            ],
        },
        {"role": "assistant", "content": "It shipped and arrives on Friday."},
        {"role": "user", "content": "Great. What should I do with the old router?"},
    ]
    body = {"model": MODEL, "max_tokens": MAX_TOKENS, "system": SYSTEM, "tools": [TOOL], "messages": messages}
    budget = tokens.count_request({**body, "messages": messages[4:]}) + 2
    return "a budget that ends inside a tool round", body, budget


_WINDOW_CASES.append(_edge_case())


def _window(fn: Any, body: dict[str, Any], budget: int, what: str) -> dict[str, Any]:
    given = copy.deepcopy(body)
    got = _call_without(fn, _WINDOWS, "trim the conversation", given, budget)
    _expect_unmodified(given, body, what)
    if not isinstance(got, dict) or not isinstance(got.get("messages"), list):
        raise CaseFailed(
            "not a request body",
            expected="a dict like body, with a trimmed 'messages' list",
            got=got,
            hint="Return a new body: {**body, 'messages': kept}.",
        )
    return got


@window.case("keeps the system prompt and the tools")
def _window_system(fn: Any) -> None:
    for what, body, budget in _WINDOW_CASES:
        got = _window(fn, body, budget, what)
        expect(
            got.get("system") == body["system"],
            f"{what}: the system prompt was changed or dropped",
            expected="the same system prompt",
            got=got.get("system"),
            hint="Only messages are trimmed: the system prompt carries the instructions and must stay.",
        )
        expect(
            got.get("tools") == body.get("tools"),
            f"{what}: the tools were changed or dropped",
            expected=body.get("tools"),
            got=got.get("tools"),
            hint="Keep the body's tools as they are.",
        )


@window.case("never exceeds the budget (the whole request, counted)")
def _window_budget(fn: Any) -> None:
    for what, body, budget in _WINDOW_CASES:
        got = _window(fn, body, budget, what)
        used = tokens.count_request(got)
        expect(
            used <= budget,
            f"{what}: the trimmed request counts {used} tokens, over the budget of {budget}",
            expected=f"<= {budget} tokens",
            got=f"{used} tokens",
            hint="Count the whole request: system prompt, tools and per-message overheads, not only the text.",
        )


@window.case("stays valid: starts with a user turn, roles alternate, tool pairs intact")
def _window_valid(fn: Any) -> None:
    p = _unlimited(probe())
    client = p.client()
    for what, body, budget in _WINDOW_CASES:
        got = _window(fn, body, budget, what)
        problems = validity_problems(got["messages"])
        expect(
            not problems,
            f"{what}: the trimmed messages are not a valid conversation: {'; '.join(problems[:2])}",
            expected="a valid message list",
            got=f"{len(got['messages'])} messages",
            hint="Drop whole turns: a turn starts at a user message that is not only tool_result blocks, so a "
            "tool_use and its tool_result always stay or go together.",
        )
        try:
            client.messages.count_tokens(**{k: v for k, v in got.items() if k != "max_tokens"})
        except anthropic.BadRequestError as exc:
            raise CaseFailed(
                f"{what}: the API rejects the trimmed request: {exc.message}",
                hint="Keep whole turns so every tool_result follows its tool_use.",
            ) from None


def _fit_exactly(body: dict[str, Any], turns: int) -> int:
    """The budget that the request with the newest ``turns`` whole turns fits exactly (not a token to spare)."""
    kept = [m for t in group_turns(body["messages"])[-turns:] for m in t]
    return tokens.count_request({**body, "messages": kept})


@window.case("edge budgets: an exact fit keeps the turn, a roomy one keeps everything, no turns gives none")
def _window_edges(fn: Any) -> None:
    body = {
        "model": MODEL,
        "max_tokens": MAX_TOKENS,
        "system": SYSTEM,
        "tools": [TOOL],
        "messages": _history(12, tool_every=3),
    }
    for k in (1, 3, 5):
        budget = _fit_exactly(body, k)
        got = _window(fn, body, budget, f"a budget of exactly {budget} tokens")
        kept = len(group_turns(got["messages"]))
        if kept != k:
            newest = got["messages"] == [
                m for t in group_turns(body["messages"])[len(group_turns(body["messages"])) - kept :] for m in t
            ]
            raise CaseFailed(
                f"the newest {k} turns make a request of exactly {budget} tokens, the budget; you kept {kept}",
                expected=f"{k} turns",
                got=f"{kept} turns",
                hint=(
                    "Keep the newest turns: walk group_turns(messages) from the end."
                    if not newest
                    else "A request that counts exactly the budget fits it: stop only when adding a turn "
                    "would go *over* the budget (used + cost > budget, not >=)."
                    if kept < k
                    else "Count the whole request, system prompt, tools and overheads included."
                ),
            )
        if k > 1:  # one token short: the k-th newest turn no longer fits
            got = _window(fn, body, budget - 1, f"a budget of {budget - 1} tokens")
            kept = len(group_turns(got["messages"]))
            if kept != k - 1:
                raise CaseFailed(
                    f"the newest {k} turns need {budget} tokens, one more than the budget of {budget - 1}; "
                    f"you kept {kept} turns",
                    expected=f"{k - 1} turns",
                    got=f"{kept} turns",
                    hint="Count the whole request against the budget: REQUEST_OVERHEAD, the system "
                    "prompt, the tools and each message's overhead, not only the text."
                    if kept > k - 1
                    else "Keep every turn that fits.",
                )
    everything = tokens.count_request(body)
    got = _window(fn, body, everything + 500, "a budget the whole conversation fits")
    expect(
        got["messages"] == body["messages"],
        "a budget the whole conversation fits in, yet messages were dropped "
        f"({len(got['messages'])} of {len(body['messages'])} kept)",
        expected=f"all {len(body['messages'])} messages",
        got=f"{len(got['messages'])} messages",
        hint="When everything fits, keep everything: trim only what the budget forces out.",
    )
    empty = {**body, "messages": []}
    got = _window(fn, empty, 1_000, "an empty conversation")
    expect(
        got["messages"] == [] and got.get("system") == SYSTEM and got.get("tools") == [TOOL],
        "an empty conversation should come back as it is (no messages, same system prompt and tools)",
        expected="{..., 'messages': []}",
        got=got,
        hint="With no turns there is nothing to keep: return the body with an empty messages list.",
    )


@window.case("keeps the newest whole turns that fit, dropping oldest first")
def _window_newest(fn: Any) -> None:
    for what, body, budget in _WINDOW_CASES:
        got = _window(fn, body, budget, what)
        expected = reference_window(body["messages"], budget, system=body["system"], tools=body.get("tools"))
        if got["messages"] != expected:
            kept, want = len(group_turns(got["messages"])), len(group_turns(expected))
            if kept != want:
                raise CaseFailed(
                    f"{what}: kept {len(got['messages'])} messages ({kept} turns), "
                    f"expected the newest {len(expected)} messages ({want} turns)",
                    expected=f"{want} newest turns",
                    got=f"{kept} turns",
                    hint="Trim by tokens, not by message count: keep adding the next older whole turn "
                    "while the request still fits, and keep the turns in their original order.",
                )
            mine = got["messages"]
            first = next((i for i, (g, e) in enumerate(zip(mine, expected)) if g != e), min(len(mine), len(expected)))
            raise CaseFailed(
                f"{what}: kept as many turns as expected ({want}), but not the newest ones in their "
                f"order: message {first} differs",
                expected=expected[first] if first < len(expected) else "no more messages",
                got=mine[first] if first < len(mine) else "no more messages",
                hint="Keep a contiguous run of the newest turns: stop at the first older turn that does "
                "not fit (break, not continue), and keep the turns in their original order.",
            )


# ---------------------------------------------------------------------------------------------
# 1.3 compact(client, summary, messages, threshold) -> (summary, messages)
# ---------------------------------------------------------------------------------------------
compaction = Exercise(
    "1.3",
    "Summarizing compaction",
    points=3,
    signature="compact(client, summary, messages, threshold) -> tuple[str, list]",
    time_limit=60,
    hints=[
        "Only when count_request(compose_request(SYSTEM, summary, messages, ...)) is over the threshold: send "
        "ONE request asking to summarize the previous summary plus the oldest turns, and keep the newest "
        "turn(s) verbatim.",
        "turns = group_turns(messages); fold = turns[:-1] (keep at least the current turn); prompt = "
        "'Summarize ... Keep all facts ...\\n\\nPrevious summary:\\n' + summary + '\\n\\nNew turns:\\n' + "
        "transcript(folded messages); return (reply text, the messages of the kept turns).",
    ],
)


_played: dict[int, tuple[Any, tuple[Any, list[dict[str, Any]], str | None]]] = {}
"""The conversation played by the current 1.3 check, shared by its cases (cleared by the first case)."""


def _play(fn: Any) -> tuple[Any, list[dict[str, Any]], str | None]:
    """The scripted conversation played through ``fn`` once per check, shared by the cases that grade it."""
    hit = _played.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    outcome = _play_once(fn)
    _played.clear()
    _played[id(fn)] = (fn, outcome)
    return outcome


def _whole_turn_suffix(kept: list[Any], messages: list[Any]) -> bool:
    """Is ``kept`` the newest whole turns of ``messages`` (at least the newest one)?"""
    turns = group_turns(messages)
    return any(kept == [m for t in turns[-k:] for m in t] for k in range(1, len(turns) + 1))


def _play_once(fn: Any, turns: int = COMPACT_TURNS) -> tuple[Any, list[dict[str, Any]], str | None]:
    """Run the scripted conversation through the student's compaction; (probe, records, error).

    Each record also says whether the request was over the threshold before ``compact`` ran
    (``over``) and how many requests ``compact`` itself made (``made``, from the ledger).
    """
    p = _unlimited(probe())
    client = p.client()
    summary, history = "", []
    records: list[dict[str, Any]] = []
    for t in _CONVERSATION.turns[:turns]:
        history.append({"role": "user", "content": t.user})
        over = (
            tokens.count_request(compose_request(SYSTEM, summary, history, model=MODEL, max_tokens=MAX_TOKENS))
            > COMPACT_THRESHOLD
        )
        given, before = copy.deepcopy(history), len(p.requests(endpoint=None))
        out = call(fn, client, summary, given, COMPACT_THRESHOLD)
        made = len(p.requests(endpoint=None)) - before
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], str) and isinstance(out[1], list)):
            raise CaseFailed(
                "compact must return a (summary, messages) tuple",
                expected="(str, list)",
                got=out,
                hint="Return the (possibly unchanged) summary string and the messages to keep.",
            )
        if given != history:
            raise CaseFailed(
                f"turn {t.turn}: compact modified the messages list it was given",
                expected="the caller's messages left as they were",
                got="changed",
                hint="Build the list of remaining messages as a new list (e.g. the newest turns of "
                "group_turns(messages)); the caller keeps its own history.",
            )
        if not _whole_turn_suffix(list(out[1]), history):
            return (
                p,
                records,
                (
                    f"turn {t.turn}: the messages compact kept are not the newest whole turns "
                    f"({len(out[1])} messages kept of {len(history)})"
                ),
            )
        records_made = {"turn": t.turn, "over": over, "made": made}
        summary, history = out[0], list(out[1])
        body = compose_request(SYSTEM, summary, history, model=MODEL, max_tokens=MAX_TOKENS)
        try:
            reply = client.messages.create(**body)
        except anthropic.BadRequestError as exc:
            return p, records, f"turn {t.turn}: {exc.message}"
        text = "".join(getattr(b, "text", "") for b in reply.content)
        records.append(
            {
                **records_made,
                "kind": t.kind,
                "expected": t.expected,
                "answer": text,
                "tokens": tokens.count_request(body),
            }
        )
        history.append({"role": "assistant", "content": text})
    return p, records, None


@compaction.case("leaves a short conversation alone (no request under the threshold)")
def _compact_idle(fn: Any) -> None:
    _played.clear()  # this case runs first: a new check plays the conversation afresh
    p = _unlimited(probe())
    messages = _history(5, tool_every=0)
    before = copy.deepcopy(messages)
    out = call(fn, p.client(), "", messages, COMPACT_THRESHOLD)
    made = len(p.requests(endpoint=None))
    expect(
        made == 0,
        f"a {tokens.count_request(compose_request(SYSTEM, '', messages, model=MODEL, max_tokens=1))}-token "
        f"request is under the threshold of {COMPACT_THRESHOLD}, yet compact made {made} request(s)",
        expected="0 requests",
        got=f"{made} request(s)",
        hint="Summarizing costs a request: only compact when the whole request is over the threshold.",
    )
    expect(
        isinstance(out, tuple) and len(out) == 2 and out[0] == "" and list(out[1]) == before,
        "under the threshold the summary and messages must come back unchanged",
        expected=("", f"{len(before)} messages"),
        got=out,
        hint="Return (summary, messages) as they were.",
    )
    # The edge the contract names: "more than threshold". A request of exactly the threshold is not over it.
    exact = tokens.count_request(compose_request(SYSTEM, "", messages, model=MODEL, max_tokens=MAX_TOKENS))
    for threshold, want in ((exact, 0), (exact - 1, 1)):
        q = _unlimited(probe())
        call(fn, q.client(), "", copy.deepcopy(messages), threshold)
        made = len(q.requests(endpoint=None))
        if made != want:
            raise CaseFailed(
                f"a request of exactly {exact} tokens with threshold={threshold}: compact made {made} request(s)",
                expected=f"{want} request(s)",
                got=f"{made} request(s)",
                hint="Compact only when the request counts MORE than the threshold (> threshold): a "
                "request of exactly the threshold is within it."
                if made > want
                else "One token over the threshold is over it: compact (one summarization request).",
            )


@compaction.case(f"every request of a {COMPACT_TURNS}-turn conversation fits the {CONTEXT_WINDOW:,}-token window")
def _compact_fits(fn: Any) -> None:
    p, records, error = _play(fn)
    expect(
        error is None,
        f"the conversation crashed at {error}",
        expected="all turns answered",
        got=f"{len(records)} turns answered",
        hint="Compact before every request: when the request passes the threshold, fold old turns into the "
        "summary so what is left (system + summary + recent turns) fits; keep the messages starting with a user turn.",
    )
    failed = p.requests()
    failed = failed[failed["status"] != 200]
    expect(
        len(failed) == 0,
        f"{len(failed)} request(s) failed, e.g. {failed['error_type'].iloc[0] if len(failed) else ''}",
        hint="Your summarization requests must be valid too (one user message, a max_tokens of a few hundred).",
    )


@compaction.case("the planted facts are still answered correctly")
def _compact_facts(fn: Any) -> None:
    _, records, error = _play(fn)
    expect(error is None, f"the conversation crashed at {error}", hint="See the previous case.")
    questions = [r for r in records if r["kind"] == "question"]
    wrong = [r for r in questions if not is_correct(r["answer"], r["expected"])]
    expect(
        not wrong,
        f"{len(wrong)} of {len(questions)} fact questions were answered wrongly, e.g. turn "
        f"{wrong[0]['turn'] if wrong else ''}: {wrong[0]['answer'] if wrong else ''!r}",
        expected=f"{len(questions)} correct",
        got=f"{len(questions) - len(wrong)} correct",
        hint="Facts survive only if each new summary is made from the previous summary plus the folded turns "
        "(never from the new turns alone), and if the summary is placed where compose_request puts it.",
    )


@compaction.case("exactly one request when over the threshold, none under it")
def _compact_one(fn: Any) -> None:
    _, records, error = _play(fn)
    expect(error is None, f"the conversation crashed at {error}", hint="See the earlier cases.")
    for r in records:
        want = 1 if r["over"] else 0
        if r["made"] != want:
            where = "over" if r["over"] else "under"
            raise CaseFailed(
                f"turn {r['turn']}: the request was {where} the threshold of {COMPACT_THRESHOLD} "
                f"and compact made {r['made']} request(s)",
                expected=f"{want} request(s)",
                got=f"{r['made']} request(s)",
                hint="Fold everything old into the summary in ONE messages.create call (the previous "
                "summary plus the folded turns in one prompt), and no count_tokens call: count "
                "locally with count_request_tokens."
                if r["over"]
                else "Under the threshold compact returns (summary, messages) as they are, with no request.",
            )


@compaction.case("the ledger shows summarization calls, but not one per turn")
def _compact_ledger(fn: Any) -> None:
    p, records, error = _play(fn)
    expect(error is None, f"the conversation crashed at {error}", hint="See the earlier cases.")
    rows = p.requests()
    summaries = int((rows["skill"] == "summarize").sum())
    others = sorted(set(rows["model"]) - {MODEL})
    expect(
        not others,
        f"compact sent requests to {', '.join(others)}",
        expected=f"every request on {MODEL}",
        got=", ".join(others),
        hint=f"Summarize with MODEL ({MODEL}), as the exercise says: the check's costs and "
        "the lesson's figures assume it.",
    )
    if summaries == 0:
        extra = len(rows) - len(records)  # the check's own requests are one per answered turn
        raise CaseFailed(
            "the ledger shows no summarization request"
            + (
                f": compact made {extra} request(s), none of which the model took as a request to summarize"
                if extra > 0
                else ": compact made no request at all"
            ),
            expected="at least 1",
            got=f"{extra} request(s), 0 summaries",
            hint="Your compaction request must ask for a summary in so many words: start the prompt (or "
            "the system prompt) with 'Summarize ...'; 'Here is what we discussed' is not a request."
            if extra > 0
            else "When the request passes the threshold, call client.messages.create once to summarize.",
        )
    most = COMPACT_TURNS // 5
    expect(
        summaries <= most,
        f"the ledger shows {summaries} summarization requests in {COMPACT_TURNS} turns",
        expected=f"at most {most}",
        got=summaries,
        hint="Fold many turns at once, and only when the request is over the threshold: a summary per turn "
        "doubles the requests and the latency.",
    )


# ---------------------------------------------------------------------------------------------
# 1.4 place_breakpoints(body) -> dict
# ---------------------------------------------------------------------------------------------
breakpoints = Exercise(
    "1.4",
    "Cache breakpoints on the stable prefix",
    points=2,
    signature="place_breakpoints(body) -> dict",
    hints=[
        "The cache key is the exact prefix up to a breakpoint. Which system block is the same on every turn, "
        "and which one changes?",
        "Copy the body and put 'cache_control': {'type': 'ephemeral'} on system[0] (the long, stable policy), "
        "never on the block that changes every turn.",
    ],
)

CACHE_TURNS = 6
_RATES = pricing.price(MODEL)
_WRITE_X = float(_RATES.cache_write_5m_per_mtok / _RATES.input_per_mtok)
_READ_X = float(_RATES.cache_read_per_mtok / _RATES.input_per_mtok)


def _cache_bodies() -> list[dict[str, Any]]:
    """The requests of a 6-turn chat whose system prompt ends with a block that changes every turn."""
    bodies, history = [], []
    for i, t in enumerate(_CONVERSATION.turns[12 : 12 + CACHE_TURNS]):
        history.append({"role": "user", "content": t.user})
        state = STATE_TEMPLATE.format(turn=i + 1, queue=7 - i, shift=("A", "B")[i % 2])
        bodies.append(
            {
                "model": MODEL,
                "max_tokens": MAX_TOKENS,
                "messages": copy.deepcopy(history),
                "system": [{"type": "text", "text": SYSTEM}, {"type": "text", "text": state}],
            }
        )
        history.append({"role": "assistant", "content": f"Understood, step {i + 1}: restart it from the app."})
    return bodies


def _run_cached(fn: Any | None) -> tuple[Any, list[dict[str, Any]]]:
    p = _unlimited(probe())
    client = p.client()
    sent = []
    for body in _cache_bodies():
        laid_out = call(fn, copy.deepcopy(body)) if fn else body
        if not isinstance(laid_out, dict):
            raise CaseFailed(
                "not a request body",
                expected="a dict",
                got=laid_out,
                hint="Return the body (a dict) with cache_control added.",
            )
        try:
            client.messages.create(**laid_out)
        except anthropic.BadRequestError as exc:
            raise CaseFailed(
                f"the API rejects your request: {exc.message}",
                hint="At most 4 blocks may carry cache_control, each {'type': 'ephemeral'}.",
            ) from None
        sent.append(laid_out)
    return p, sent


@breakpoints.case("keeps the request's content (adds only cache_control)")
def _cache_content(fn: Any) -> None:
    for body in _cache_bodies():
        given = copy.deepcopy(body)
        got = call(fn, given)
        _expect_unmodified(given, body, "the body given to place_breakpoints")
        expect(
            isinstance(got, dict) and _strip_cache_control(got) == _strip_cache_control(body),
            "the request changed beyond cache_control markers",
            hint="Only add cache_control to blocks; keep the text, order and messages as they are.",
        )


@breakpoints.case("reads the system prompt from the cache from the second turn on")
def _cache_reads(fn: Any) -> None:
    p, _ = _run_cached(fn)
    reads = [int(x) for x in p.requests()["cache_read_input_tokens"]]
    expect(
        all(n > 0 for n in reads[1:]),
        f"cache reads per turn: {reads}",
        expected="> 0 on every turn after the first",
        got=reads,
        hint="A breakpoint caches the exact prefix up to it: put it on the stable policy block, not on the "
        "block that changes every turn, or each turn writes a new entry that is never read.",
    )


@breakpoints.case("costs less than the same conversation without caching")
def _cache_cost(fn: Any) -> None:
    p, _ = _run_cached(fn)
    with_cache = sum((Decimal(str(x)) for x in p.requests()["cost_usd"]), Decimal(0))
    q, _ = _run_cached(None)
    without = sum((Decimal(str(x)) for x in q.requests()["cost_usd"]), Decimal(0))
    mine, plain = pricing.format_usd(with_cache, places=6), pricing.format_usd(without, places=6)
    expect(
        with_cache < without,
        f"{CACHE_TURNS} turns cost {mine} with your breakpoints, {plain} without",
        expected=f"less than {plain}",
        got=mine,
        hint=f"Cache writes cost {_WRITE_X:g}x input; only reads ({_READ_X:g}x) save money, and only a stable "
        "prefix is read back.",
    )


EXERCISES = [count_request_tokens, window, compaction, breakpoints]
