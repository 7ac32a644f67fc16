"""The contract every simulated-model skill follows.

A skill looks at a validated request and, if it applies, returns a :class:`Reply`: a list of
content blocks. The generation stage (not the skill) then applies ``max_tokens`` and
``stop_sequences``, assigns ids and counts tokens, so skills stay small and pure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...models import ModelSpec
from ..request import MessagesRequest

__all__ = ["SkillContext", "TextOut", "ToolUseOut", "Reply", "Skill"]


@dataclass(frozen=True)
class TextOut:
    """A text block the model will emit."""

    text: str


@dataclass(frozen=True)
class ToolUseOut:
    """A tool_use block the model will emit (``id`` is assigned later, deterministically)."""

    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """What a skill answers: blocks in order. ``stop_reason`` is 'tool_use' when a tool is called."""

    blocks: tuple[TextOut | ToolUseOut, ...]
    skill: str
    thinking: Any = None
    """A :class:`.thinking.ThinkingPlan` when the reply starts with a thinking block (set by ``respond``)."""

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(isinstance(b, ToolUseOut) for b in self.blocks) else "end_turn"


@dataclass
class SkillContext:
    """Everything a skill may use: the request, the model's profile and a seeded RNG.

    ``rng`` is seeded from (server seed, model, request body), so the same request gives the same
    answer every run. ``scripted`` holds notebook-registered ``(pattern, reply)`` pairs.
    """

    request: MessagesRequest
    model: ModelSpec
    rng: random.Random
    seed: int = 0
    scripted: list[tuple[Any, str]] = field(default_factory=list)


class Skill(Protocol):
    """A simulated capability. ``respond`` returns None when the skill does not apply."""

    name: str

    def respond(self, ctx: SkillContext) -> Reply | None: ...
