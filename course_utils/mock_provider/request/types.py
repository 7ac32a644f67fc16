"""A validated request: :class:`MessagesRequest` and its turns (:class:`Message`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Message", "MessagesRequest", "text_of"]


@dataclass(frozen=True)
class Message:
    """One turn, with its content normalised to a tuple of block dicts."""

    role: str
    content: tuple[dict[str, Any], ...]

    @property
    def text(self) -> str:
        """The concatenated text of this turn (text blocks and tool results)."""
        return text_of(self.content)


@dataclass(frozen=True)
class MessagesRequest:
    """A validated ``POST /v1/messages`` (or count_tokens) body."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None
    system: tuple[dict[str, Any], ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: dict[str, Any] | None = None
    stop_sequences: tuple[str, ...] = ()
    stream: bool = False
    temperature: float | None = None
    cache_control: dict[str, Any] | None = None
    top_p: float | None = None
    top_k: int | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def prefill(self) -> bool:
        """Whether the conversation ends with an assistant turn (a prefill the model continues)."""
        return bool(self.messages) and self.messages[-1].role == "assistant"

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """The JSON schema of ``output_config.format`` (structured outputs), or None."""
        fmt = (self.output_config or {}).get("format")
        return fmt.get("schema") if isinstance(fmt, dict) else None

    @property
    def system_text(self) -> str:
        return "\n".join(b.get("text", "") for b in self.system)

    @property
    def last_user_text(self) -> str:
        """Text of the final user turn (what the simulated model is asked), or ''."""
        for m in reversed(self.messages):
            if m.role == "user":
                return m.text
        return ""


def text_of(blocks: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> str:
    """Plain text of a list of content blocks (tool_result content included)."""
    parts: list[str] = []
    for b in blocks:
        t = b.get("type")
        if t == "text":
            parts.append(str(b.get("text", "")))
        elif t == "tool_result":
            c = b.get("content")
            if isinstance(c, str):
                parts.append(c)
            elif isinstance(c, list):
                parts.append(text_of([x for x in c if isinstance(x, dict)]))
    return "\n".join(p for p in parts if p)
