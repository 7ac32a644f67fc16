"""The simulated model's skills, tried in a fixed priority order; prose always answers.

Order matters: an explicit script beats everything, tools and JSON are output *formats* the
request demands, summarize/classify are tasks named in the prompt, recall answers questions from
the context window, and prose is the fallback.
"""

from __future__ import annotations

from .base import Reply, Skill, SkillContext, TextOut, ToolUseOut
from .classify import ClassifySkill, true_label
from .prose import ProseSkill
from .recall import RecallSkill
from .scripted import ScriptedSkill
from .structured import StructuredSkill
from .summarize import SummarizeSkill
from .tool_use import ToolUseSkill

__all__ = [
    "SKILLS",
    "respond",
    "true_label",
    "Reply",
    "Skill",
    "SkillContext",
    "TextOut",
    "ToolUseOut",
]

SKILLS: list[Skill] = [
    ScriptedSkill(),
    ToolUseSkill(),
    StructuredSkill(),
    SummarizeSkill(),
    ClassifySkill(),
    RecallSkill(),
    ProseSkill(),
]
"""Skills in priority order; the first that returns a Reply answers."""

_FALLBACK = SKILLS[-1]


def respond(ctx: SkillContext) -> Reply:
    """The reply of the first skill (in :data:`SKILLS` order) that applies; prose if none does."""
    for skill in SKILLS:
        reply = skill.respond(ctx)
        if reply is not None:
            return reply
    return _FALLBACK.respond(ctx)  # unreachable while prose is last; kept for custom SKILLS lists
