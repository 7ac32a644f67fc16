"""What every lesson 01 check shares: the teaching model, the support conversation and its system
prompt, sample histories and tools, the "body left unmodified" check, and calling an answer with the
library refused.

Every probe of this lesson is ``probe(tier="unlimited")``: the checks make dozens of requests in a
second; rate limits are not this lesson's topic.
"""

from __future__ import annotations

from typing import Any, Callable

from ...context import load_conversation
from ..forbid import ApiEndpoint, forbid
from ..framework import CaseFailed, call

__all__ = [
    "MODEL",
    "MAX_TOKENS",
    "STATE_TEMPLATE",
    "CONVERSATION",
    "SYSTEM",
    "TOOL",
    "TOOLS",
    "sample_history",
    "expect_body_unmodified",
    "call_without",
]

MODEL = "sim-teaching-4k"
"""The 4,096-token teaching model every check of this lesson talks to."""
MAX_TOKENS = 150
STATE_TEMPLATE = "Session state: turn {turn}, queue position {queue}, agent shift {shift}."
"""Exercise 1.4's volatile system block: it changes on every turn."""

CONVERSATION = load_conversation()
SYSTEM = CONVERSATION.system


def expect_body_unmodified(given: Any, original: Any, what: str) -> None:
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


def call_without(
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


def sample_history(turns: int, *, tool_every: int = 4, offset: int = 0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    scripted = CONVERSATION.turns[offset : offset + turns]
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
