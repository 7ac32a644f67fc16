"""Grounded answers: when the request supplies reference passages, answer from them.

Retrieval-augmented requests put the retrieved documents in the system prompt, one per line or
paragraph, each starting with its source id in square brackets (``[doc-7] Reset your password
under ...``). This skill scores each passage by the content-word stems it shares with the user's
last turn, and answers with the sentences of the best passage that share the most, naming the
source: what a model told to answer from the supplied documents does, and what a groundedness
evaluation can check (the answer carries the passage's facts). A request without such passages,
a question about the user's own facts (recall's), or one that shares no word with any passage, is
left to the next skill.
"""

from __future__ import annotations

import re

from .base import Reply, SkillContext, TextOut
from .text import split_sentences, stems

__all__ = ["GroundedSkill", "passages"]

_PASSAGE = re.compile(r"^\[([^\]\s]{1,80})\]\s+(\S.*)$")
_ABOUT_THE_USER = re.compile(r"(?i)^\W*(what|who|where|when|which)('s|\s+is|\s+are|\s+was|\s+were)\s+my\b")


def passages(system: str) -> list[tuple[str, str]]:
    """``(source id, text)`` of every line of ``system`` that starts with ``[id]``, in order."""
    out = []
    for line in (system or "").splitlines():
        m = _PASSAGE.match(line.strip())
        if m:
            out.append((m.group(1), m.group(2).strip()))
    return out


class GroundedSkill:
    """Answers the last user turn from the bracketed passages of the system prompt (see the module)."""

    name = "grounded"

    def respond(self, ctx: SkillContext) -> Reply | None:
        docs = passages(ctx.request.system_text)
        last = ctx.request.last_user_text
        question = stems(last)
        if not docs or not question or _ABOUT_THE_USER.match(last):  # "what is my name?" is recall's, from the turns
            return None
        scored = [(len(question & stems(text)), -i, source, text) for i, (source, text) in enumerate(docs)]
        score, _, source, text = max(scored)
        if score == 0:
            return None
        sentences = split_sentences(text)
        ranked = sorted(sentences, key=lambda s: (-len(question & stems(s)), sentences.index(s)))
        chosen = [s for s in sentences if s in ranked[:2]]  # the two most relevant, in the passage's order
        answer = " ".join(chosen)
        opener = ctx.rng.choice(("According to", "From", "As described in"))
        return Reply(blocks=(TextOut(f"{opener} [{source}]: {answer}"),), skill=self.name)
