"""Checks for exercise 1.2 ``sliding_window(body, budget)``: the whole request is counted against the
budget, the trimmed conversation stays valid (whole turns, tool pairs intact) and keeps the newest
turns; the library's own window is refused to the answer."""

from __future__ import annotations

import copy
from typing import Any, Callable

import anthropic

from ... import tokens
from ...context import group_turns, sliding_window as reference_window, strategies
from ...context.turns import validity_problems
from ..framework import CaseFailed, Exercise, expect
from ..sim import probe
from .common import MAX_TOKENS, MODEL, SYSTEM, TOOL, call_without, expect_body_unmodified, sample_history

# The library function exercise 1.2 must not delegate to: the exercise is to trim.
_WINDOWS: dict[str, Callable[..., Any]] = {"context.sliding_window": strategies.sliding_window}


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
        {"model": MODEL, "max_tokens": MAX_TOKENS, "system": SYSTEM, "messages": sample_history(20, tool_every=0)},
        1_200,
    ),
    (
        "30 turns with tool rounds",
        {"model": MODEL, "max_tokens": MAX_TOKENS, "system": SYSTEM, "tools": [TOOL], "messages": sample_history(30)},
        1_600,
    ),
    (
        "a tight budget",
        {
            "model": MODEL,
            "max_tokens": MAX_TOKENS,
            "system": SYSTEM,
            "messages": sample_history(16, tool_every=3, offset=20),
        },
        800,
    ),
    (
        "a roomy budget",
        {
            "model": MODEL,
            "max_tokens": MAX_TOKENS,
            "system": SYSTEM,
            "messages": sample_history(40, tool_every=5, offset=5),
        },
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
    got = call_without(fn, _WINDOWS, "trim the conversation", given, budget)
    expect_body_unmodified(given, body, what)
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
    p = probe(tier="unlimited")
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
        "messages": sample_history(12, tool_every=3),
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
