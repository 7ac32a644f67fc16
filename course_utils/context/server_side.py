"""Server-side context management as a strategy: send the whole history and let the API trim it.

The API's own strategies (docs/api-notes.md §14.1) run on the provider's side, before the prompt
reaches the model: ``compact_20260112`` summarizes the conversation into a ``compaction`` block once
the prompt reaches a trigger (the client appends that block to its history, and the API drops
everything before it on later requests), and context editing clears old tool results
(``clear_tool_uses_20250919``) or thinking blocks (``clear_thinking_20251015``). The client keeps the
full history, as the documentation asks; the request's ``usage`` is the edited prompt's.
"""

from __future__ import annotations

from typing import Any, Sequence

from .strategies import Prompt, SideCall
from .turns import Message

__all__ = ["ServerSide", "server_compaction", "context_editing", "BETA_OF_EDIT"]

BETA_OF_EDIT = {
    "compact_20260112": "compact-2026-01-12",
    "clear_tool_uses_20250919": "context-management-2025-06-27",
    "clear_thinking_20251015": "context-management-2025-06-27",
}
"""The ``anthropic-beta`` value each documented edit needs."""


class ServerSide:
    """The whole history, with ``context_management`` edits the API applies (and, with
    ``automatic_cache``, top-level ``cache_control``: the API caches up to the last block)."""

    def __init__(
        self, edits: Sequence[dict[str, Any]], *, automatic_cache: bool = False, name: str | None = None
    ) -> None:
        unknown = [e.get("type") for e in edits if e.get("type") not in BETA_OF_EDIT]
        if unknown:
            raise ValueError(f"unknown context_management edit(s): {unknown}; known: {sorted(BETA_OF_EDIT)}")
        self.edits = [dict(e) for e in edits]
        self.automatic_cache = automatic_cache
        kinds = " + ".join(e["type"].rsplit("_", 1)[0] for e in self.edits)
        self.name = name or f"server-side {kinds}" + (" + cache" if automatic_cache else "")
        self.side_calls: list[SideCall] = []

    @property
    def betas(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(BETA_OF_EDIT[e["type"]] for e in self.edits))

    def build(self, system: Any, history: Sequence[Message], tools: list[dict[str, Any]] | None = None) -> Prompt:
        return Prompt(
            system,
            list(history),
            tools,
            context_management={"edits": [dict(e) for e in self.edits]},
            betas=self.betas,
            cache_control={"type": "ephemeral"} if self.automatic_cache else None,
        )

    def reset(self) -> None:
        self.side_calls.clear()


def server_compaction(trigger: int, *, automatic_cache: bool = False, **options: Any) -> ServerSide:
    """Server-side compaction once a request reaches ``trigger`` input tokens (the API's minimum is
    50,000; the simulator's 4k teaching model accepts 1,024 and up)."""
    edit = {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": int(trigger)}, **options}
    return ServerSide(
        [edit], automatic_cache=automatic_cache, name="server compaction" + (" + cache" if automatic_cache else "")
    )


def context_editing(trigger: int, *, keep_tool_uses: int = 3, automatic_cache: bool = False) -> ServerSide:
    """Context editing: clear old thinking blocks and, past ``trigger`` input tokens, old tool results
    (keeping the newest ``keep_tool_uses``)."""
    edits = [
        {"type": "clear_thinking_20251015"},
        {
            "type": "clear_tool_uses_20250919",
            "trigger": {"type": "input_tokens", "value": int(trigger)},
            "keep": {"type": "tool_uses", "value": int(keep_tool_uses)},
        },
    ]
    return ServerSide(
        edits, automatic_cache=automatic_cache, name="context editing" + (" + cache" if automatic_cache else "")
    )
