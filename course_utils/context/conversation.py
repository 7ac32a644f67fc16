"""Lesson 01's scripted long conversation (``data/lesson01_*``): user turns, planted facts, questions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ScriptedTurn", "Conversation", "load_conversation", "is_correct", "DATA_DIR"]

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


@dataclass(frozen=True)
class ScriptedTurn:
    """One user turn: ``kind`` is "fact" (plants one), "question" (asks about one) or "chat"."""

    turn: int
    kind: str
    user: str
    fact: str | None = None
    expected: str | None = None


@dataclass(frozen=True)
class Conversation:
    """The assistant's system prompt and the user's turns, in order."""

    system: str
    turns: tuple[ScriptedTurn, ...]

    def head(self, n: int) -> "Conversation":
        """The first ``n`` turns."""
        return Conversation(self.system, self.turns[:n])

    @property
    def questions(self) -> tuple[ScriptedTurn, ...]:
        return tuple(t for t in self.turns if t.kind == "question")


def load_conversation(turns: int | None = None, data_dir: Path = DATA_DIR) -> Conversation:
    """Read the data set (made by ``data/make_lesson01_conversation.py``), optionally its first ``turns``."""
    system = (data_dir / "lesson01_system_prompt.md").read_text(encoding="utf-8")
    rows = []
    with open(data_dir / "lesson01_conversation.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                r = json.loads(line)
                rows.append(ScriptedTurn(r["turn"], r["kind"], r["user"], r.get("fact"), r.get("expected")))
    conversation = Conversation(system, tuple(rows))
    return conversation.head(turns) if turns is not None else conversation


def is_correct(answer: str, expected: str) -> bool:
    """Whether a reply answers a fact question: it states the expected value, as a whole word.

    Judged by the value alone, so the same rule holds for any model's wording: a reply that declines
    ("I don't have that information", "You haven't told me your order number") cannot state a value
    it does not have, and a value inside another word ("Ada" in "Canada", "4417" in "44170") does
    not count.
    """
    return re.search(rf"(?<!\w){re.escape(expected.strip())}(?!\w)", answer, re.IGNORECASE) is not None
