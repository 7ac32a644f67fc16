"""Checks for exercise 1.1 ``count_request_tokens(body)``: every request is compared with the API's
own ``count_tokens``, with the library's counters (and the endpoint) refused to the answer."""

from __future__ import annotations

import copy
import random
from typing import Any, Callable

from ... import tokens
from ...context import accounting
from ..forbid import COUNT_TOKENS
from ..framework import CaseFailed, Exercise, expect_equal
from ..sim import probe
from .common import MODEL, STATE_TEMPLATE, SYSTEM, TOOL, TOOLS, call_without, expect_body_unmodified, sample_history

# The library functions exercise 1.1 must not delegate to: the exercise is to count.
_COUNTERS: dict[str, Callable[..., Any]] = {
    "tokens.count_request": tokens.count_request,
    "context.request_tokens": accounting.request_tokens,
    "context.account": accounting.account,
    "context.message_tokens": accounting.message_tokens,
    "context.system_tokens": accounting.system_tokens,
    "context.tools_tokens": accounting.tools_tokens,
}


# ---------------------------------------------------------------------------------------------
# 1.1 count_request_tokens(body) -> int
# ---------------------------------------------------------------------------------------------
counting = Exercise(
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
    p = probe(tier="unlimited")
    params = {k: v for k, v in body.items() if k != "max_tokens"}
    expected = p.client().messages.count_tokens(**params).input_tokens  # before the library is swapped out
    given = copy.deepcopy(body)
    got = call_without(fn, _COUNTERS, "count a request's tokens", given, endpoints=(COUNT_TOKENS,))
    expect_body_unmodified(given, body, what)
    if not isinstance(got, int) or isinstance(got, bool):
        raise CaseFailed(
            f"{what}: not an int", expected=expected, got=got, hint="Return the number of tokens as an int."
        )
    expect_equal(got, expected, f"{what}: your count differs from count_tokens by {got - expected:+d}", hint=hint)


@counting.case("one user message, no system prompt")
def _count_one(fn: Any) -> None:
    _expect_count(
        fn,
        {"model": MODEL, "messages": [{"role": "user", "content": "Where is my parcel?"}]},
        "a single message",
        "Even the smallest request pays REQUEST_OVERHEAD once and MESSAGE_OVERHEAD per message.",
    )


@counting.case("counts the per-message overhead of a long conversation")
def _count_many(fn: Any) -> None:
    _expect_count(
        fn,
        {"model": MODEL, "messages": sample_history(12, tool_every=0)},
        "a 12-turn conversation",
        "Each message costs tokens.MESSAGE_OVERHEAD on top of its text: it adds up over many short turns.",
    )


@counting.case("counts the system prompt, as a string and as text blocks")
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


@counting.case("counts tools and tool_use / tool_result blocks")
def _count_tools(fn: Any) -> None:
    _expect_count(
        fn,
        {"model": MODEL, "system": SYSTEM, "tools": [TOOL], "messages": sample_history(4)},
        "a request with a tool and a tool round trip",
        "Tools cost tokens.TOOLS_OVERHEAD once plus tokens.count_tool(t) each; content blocks are "
        "counted by tokens.count_blocks (tool_use and tool_result included).",
    )
    _expect_count(
        fn,
        {"model": MODEL, "system": SYSTEM, "tools": TOOLS, "messages": sample_history(8, offset=3)},
        f"a request with {len(TOOLS)} tools",
        "Every tool costs tokens.count_tool(tool), summed over all of them; TOOLS_OVERHEAD is paid once "
        "for the tools parameter, not once per tool.",
    )


@counting.case("an empty system prompt and an empty tools list cost nothing")
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
            "messages": sample_history(
                rng.randint(1, 14), tool_every=rng.choice([0, 2, 3]), offset=rng.randint(0, 200)
            ),
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


@counting.case("agrees with count_tokens on 12 random requests")
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
