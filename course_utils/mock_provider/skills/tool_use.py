"""Tool use: pick a tool (honouring ``tool_choice``), build a schema-valid ``input`` from the text,
and, once the user sends ``tool_result`` blocks, answer with a final text that uses them.

Tool choice follows the API: ``{"type": "tool", "name": X}`` always calls X, ``any`` calls the best
match, ``auto`` (or absent) calls a tool only when its name/description overlaps the request
enough, and ``none`` never calls. After tool results the skill always answers in text (the brief
for the lessons' agent loops), so a loop that forgets to switch ``tool_choice`` still terminates.

Inputs are built from the JSON schema (:mod:`.tool_input`): required properties always, optional ones only when the
text supplies a value. Values come from the user's words where possible (a place after "in", the
numbers in the text, an enum value that is mentioned) and otherwise are type-correct defaults.
"""

from __future__ import annotations

from typing import Any

from ..request import MessagesRequest, text_of
from .base import Reply, SkillContext, TextOut, ToolUseOut
from .text import stem, stems
from .tool_input import build_input, name_words

__all__ = ["ToolUseSkill", "tool_score", "pick_tool", "build_input", "AUTO_THRESHOLD"]

AUTO_THRESHOLD = 2.0
"""Minimum match score for ``auto`` to call a tool: one name word, or two description words."""


_VERBS = {"get", "set", "fetch", "find", "lookup", "look", "run", "do", "make", "create", "list", "call", "use", "tool"}


def tool_score(tool: dict[str, Any], text: str) -> float:
    """How well a tool matches ``text``: 2 per shared name word, 1 per shared description word."""
    user = stems(text)
    name = {stem(w) for w in name_words(str(tool.get("name", ""))) if w not in _VERBS}
    desc_text = tool.get("description")
    desc = stems(desc_text) if isinstance(desc_text, str) else set()
    # Generic verbs ('get', 'find') match almost any request; they should not decide.
    desc -= {stem(v) for v in _VERBS} | name
    return 2.0 * len(user & name) + 1.0 * len(user & desc)


def pick_tool(req: MessagesRequest, text: str) -> dict[str, Any] | None:
    """The tool to call for ``text`` under the request's ``tool_choice`` (None: answer in text)."""
    tools = [t for t in req.tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
    if not tools:
        return None
    choice = req.tool_choice or {"type": "auto"}
    kind = choice.get("type", "auto")
    if kind == "none":
        return None
    if kind == "tool":
        return next((t for t in tools if t["name"] == choice.get("name")), None)
    scored = [(tool_score(t, text), -i, t) for i, t in enumerate(tools)]
    best_score, _, best = max(scored, key=lambda x: (x[0], x[1]))
    if kind == "any":
        return best
    return best if best_score >= AUTO_THRESHOLD else None


# ---------------------------------------------------------------------------------------------
# Building an input that validates against the tool's schema.


def _tool_results(req: MessagesRequest) -> list[tuple[str, str, bool]]:
    """(tool name, result text, is_error) for tool_result blocks in the last user turn."""
    if not req.messages:
        return []
    msgs = list(req.messages)
    i = len(msgs) - 1
    if msgs[i].role == "assistant":
        i -= 1
    if i < 0 or msgs[i].role != "user":
        return []
    names: dict[str, str] = {}
    if i > 0:
        for b in msgs[i - 1].content:
            if b.get("type") == "tool_use":
                names[str(b.get("id"))] = str(b.get("name"))
    out = []
    for b in msgs[i].content:
        if b.get("type") == "tool_result":
            c = b.get("content", "")
            text = (
                c
                if isinstance(c, str)
                else text_of([x for x in c if isinstance(x, dict)])
                if isinstance(c, list)
                else ""
            )
            out.append((names.get(str(b.get("tool_use_id")), "the tool"), text.strip(), bool(b.get("is_error"))))
    return out


def _question_before_tools(req: MessagesRequest) -> str:
    """The user's request the tools were called for (the last user text that is not only results)."""
    for m in reversed(req.messages):
        if m.role == "user":
            plain = " ".join(str(b.get("text", "")) for b in m.content if b.get("type") == "text").strip()
            if plain:
                return plain
    return ""


_PREFACES = (
    "I'll look that up.",
    "Let me check that for you.",
    "I'll use a tool to find out.",
    "Let me look into that.",
)


class ToolUseSkill:
    """Calls a tool when the request's tools and ``tool_choice`` say so; answers from tool results."""

    name = "tool_use"

    def respond(self, ctx: SkillContext) -> Reply | None:
        """A tool_use block (maybe after a short preface), a final answer from results, or None."""
        req = ctx.request
        if not req.tools:
            return None
        results = _tool_results(req)
        if results:
            return Reply(blocks=(TextOut(self._final_answer(results)),), skill=self.name)
        text = _question_before_tools(req)
        tool = pick_tool(req, text)
        if tool is None:
            return None
        call = ToolUseOut(name=tool["name"], input=build_input(tool.get("input_schema"), text))
        kind = (req.tool_choice or {}).get("type", "auto")
        if kind in ("any", "tool"):
            # A forced tool choice makes the API start the turn with the tool call: no preface.
            return Reply(blocks=(call,), skill=self.name)
        return Reply(blocks=(TextOut(ctx.rng.choice(_PREFACES)), call), skill=self.name)

    @staticmethod
    def _final_answer(results: list[tuple[str, str, bool]]) -> str:
        parts = []
        for name, text, is_error in results:
            shown = text if len(text) <= 400 else text[:400].rsplit(" ", 1)[0] + " ..."
            if is_error:
                parts.append(
                    f"The {name} tool reported an error: {shown or 'no details'}. I could not complete that step."
                )
            else:
                parts.append(f"Based on the result of {name}: {shown or '(empty result)'}")
        return "\n\n".join(parts)
