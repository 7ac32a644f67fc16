"""Scripted replies: notebook-registered ``(pattern, reply)`` pairs answered verbatim.

Lessons use these to stage a precise answer (an incident, a tricky output) without depending on
the other skills' heuristics. A pattern is a case-insensitive substring (``str``) or a compiled
``re.Pattern``; it is matched against the last user turn and the first match wins.
"""

from __future__ import annotations

import re
from typing import Any

from .base import Reply, SkillContext, TextOut

__all__ = ["ScriptedSkill", "matches"]


def matches(pattern: Any, text: str) -> bool:
    """Whether a scripted ``pattern`` matches ``text`` (substring, ignoring case, or regex search)."""
    if isinstance(pattern, re.Pattern):
        return pattern.search(text) is not None
    return str(pattern).lower() in text.lower()


class ScriptedSkill:
    """Answers the reply of the first scripted pattern that matches the last user turn."""

    name = "scripted"

    def respond(self, ctx: SkillContext) -> Reply | None:
        """The first matching scripted reply, verbatim, or None."""
        text = ctx.request.last_user_text
        for pattern, reply in ctx.scripted:
            if matches(pattern, text):
                return Reply(blocks=(TextOut(str(reply)),), skill=self.name)
        return None
