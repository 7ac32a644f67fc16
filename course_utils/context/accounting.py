"""Token accounting for a whole Messages request: system, tools, messages and their content blocks.

The prompt a model reads is more than the text you wrote: every request, turn, system prompt and
tool definition adds a few formatting tokens. :func:`request_tokens` adds them up part by part (the
per-part figures are what a budget needs), and :func:`compare_with_api` checks the sum against
``messages.count_tokens``. In simulation the two agree exactly; against the real API the text is
estimated with an open tokenizer, so budget with a margin of :data:`ESTIMATE_MARGIN`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .. import tokens
from ..clients import SyncClient
from ..tokens import MESSAGE_OVERHEAD, REQUEST_OVERHEAD, SYSTEM_OVERHEAD, TOOLS_OVERHEAD

__all__ = [
    "RequestTokens",
    "AccountingCheck",
    "message_tokens",
    "system_tokens",
    "tools_tokens",
    "request_tokens",
    "account",
    "compare_with_api",
    "COUNT_TOKENS_FIELDS",
    "ESTIMATE_MARGIN",
]

ESTIMATE_MARGIN = 0.20
"""Relative margin to budget for the offline estimate against the real ``count_tokens`` (English text).

An assumption, not a measurement: the open tokenizer is not Claude's. Lesson 01's real-API
section measures the actual gap (:attr:`AccountingCheck.relative_error`) and compares it with this.
"""

COUNT_TOKENS_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
"""The parts of a create body that ``count_tokens`` accepts (it takes no ``max_tokens``)."""


@dataclass(frozen=True)
class RequestTokens:
    """Where a request's input tokens go; ``total`` is what ``count_tokens`` reports."""

    request_overhead: int
    system: int
    tools: int
    messages: tuple[int, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        return self.request_overhead + self.system + self.tools + sum(self.messages)


@dataclass(frozen=True)
class AccountingCheck:
    """Our count and the API's for one request."""

    ours: int
    api: int

    @property
    def difference(self) -> int:
        return self.ours - self.api

    @property
    def relative_error(self) -> float:
        """|ours - api| / api (0.0 when both are 0)."""
        return abs(self.difference) / self.api if self.api else float(self.ours != 0)


def message_tokens(message: Mapping[str, Any]) -> int:
    """Tokens one turn adds to a request: its content plus the per-turn role header."""
    return MESSAGE_OVERHEAD + tokens.count_blocks(message.get("content", ""))


def system_tokens(system: str | Sequence[Mapping[str, Any]] | None) -> int:
    """Tokens of the system prompt (a string or text blocks); 0 when there is none."""
    if not system:
        return 0
    return SYSTEM_OVERHEAD + tokens.count_blocks(system)


def tools_tokens(tools: Sequence[Mapping[str, Any]] | None) -> int:
    """Tokens of the tool definitions, including the tool-use instructions the API adds once."""
    if not tools:
        return 0
    return TOOLS_OVERHEAD + sum(tokens.count_tool(t) for t in tools)


def account(body: Mapping[str, Any]) -> RequestTokens:
    """The per-part token breakdown of a Messages request body."""
    return RequestTokens(
        request_overhead=REQUEST_OVERHEAD,
        system=system_tokens(body.get("system")),
        tools=tools_tokens(body.get("tools")),
        messages=tuple(message_tokens(m) for m in body.get("messages") or ()),
    )


def request_tokens(body: Mapping[str, Any]) -> int:
    """Input tokens of a whole request body (what ``count_tokens`` returns, in simulation exactly)."""
    return account(body).total


def compare_with_api(client: SyncClient, body: Mapping[str, Any]) -> AccountingCheck:
    """Count ``body`` ourselves and with ``client.messages.count_tokens`` (one request, free of charge)."""
    params = {k: body[k] for k in COUNT_TOKENS_FIELDS if body.get(k)}
    api = client.messages.count_tokens(**params).input_tokens
    return AccountingCheck(ours=request_tokens(body), api=int(api))
