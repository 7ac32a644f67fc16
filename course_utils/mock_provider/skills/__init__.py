"""The simulated model's skills, tried in a fixed priority order; prose always answers.

Order matters: an explicit script beats everything, tools and JSON are output *formats* the
request demands, summarize/classify are tasks named in the prompt, recall answers questions from
the context window (after grounded answers from the passages a request supplies), and prose is the fallback.
"""

from __future__ import annotations

from dataclasses import replace

from .base import Reply, Skill, SkillContext, TextOut, ToolUseOut
from .classify import ClassifySkill, true_label
from .grounded import GroundedSkill
from .prose import ProseSkill
from .recall import RecallSkill
from .scripted import ScriptedSkill
from .structured import StructuredSkill
from .summarize import SummarizeSkill
from .thinking import plan_thinking, reply_scenario
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
    GroundedSkill(),
    RecallSkill(),
    ProseSkill(),
]
"""Skills in priority order; the first that returns a Reply answers."""

_FALLBACK = SKILLS[-1]


def respond(ctx: SkillContext) -> Reply:
    """The reply of the first skill (in :data:`SKILLS` order) that applies; prose if none does,
    with the thinking the model starts with (:func:`.thinking.plan_thinking`)."""
    for skill in SKILLS:
        reply = skill.respond(ctx)
        if reply is not None:
            return _with_thinking_plan(ctx, reply)
    return _with_thinking_plan(ctx, _FALLBACK.respond(ctx))  # unreachable while prose is last


def _with_thinking_plan(ctx: SkillContext, reply: Reply) -> Reply:
    """The reply with its thinking plan: per model and request, as the documentation describes."""
    plan = plan_thinking(ctx.request, ctx.model, scenario=reply_scenario())
    return replace(reply, thinking=plan) if plan is not None else reply
