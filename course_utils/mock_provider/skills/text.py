"""Small text helpers shared by the skills: words, stems, sentences and overlap.

Everything here is deliberately crude (no NLP libraries): the simulator only needs matching that
is predictable enough for lessons to rely on, and cheap enough to run on every request.
"""

from __future__ import annotations

import re
from typing import Iterable

from ..request import MessagesRequest

__all__ = [
    "STOPWORDS",
    "words",
    "stem",
    "stems",
    "content_words",
    "split_sentences",
    "overlap",
    "prefill_text",
    "earlier_turns",
    "strip_question_sentences",
]

STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does doing for from had has have having
    he her here hers him his how i i'm if in into is it it's its just me might more most must my myself
    no nor not of off on once only or other our ours out over own please same she should so some such
    than that that's the their theirs them then there these they this those through to too under until
    up very was we were what what's whats when where which while who whom why will with would you your
    yours yourself also any all about again against because before below between both each few further
    let let's may shall us ok okay hi hello hey thanks thank tell know want need get got like really
    one two""".split()
)

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'_-]*")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (keeps inner apostrophes, hyphens and digits)."""
    return [w.lower().strip("'-_") for w in _WORD.findall(text or "")]


def stem(word: str) -> str:
    """A very small suffix-stripper so 'refunds'/'refunded'/'refunding' all match 'refund'."""
    w = word.lower()
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s"):
        # Keep at least 3 letters so short words ('bus', 'yes') survive intact.
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
            break
    # 'charge'/'charged' and 'arrive'/'arrives' meet at 'charg'/'arriv'.
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


def content_words(text: str) -> list[str]:
    """Words of ``text`` that carry meaning (stopwords and 1-letter words removed), in order."""
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 1]


def stems(text: str) -> set[str]:
    """The set of stems of the content words of ``text``."""
    return {stem(w) for w in content_words(text)}


_SENT_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9\-*•])|\n+")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences and lines (newlines always end a sentence), trimmed, non-empty."""
    parts = _SENT_SPLIT.split(text or "")
    return [p.strip() for p in parts if p and p.strip()]


def overlap(a: Iterable[str], b: Iterable[str]) -> int:
    """How many distinct items two word collections share."""
    return len(set(a) & set(b))


def prefill_text(req: MessagesRequest) -> str:
    """The assistant prefill (text of a final assistant turn), or '' when the last turn is the user's."""
    if req.messages and req.messages[-1].role == "assistant":
        return req.messages[-1].text
    return ""


def earlier_turns(req: MessagesRequest) -> list[tuple[str, str]]:
    """(role, text) of every turn before the last user turn: what the conversation already holds."""
    msgs = list(req.messages)
    # Drop a trailing prefill, then the question turn itself.
    if msgs and msgs[-1].role == "assistant":
        msgs.pop()
    if msgs and msgs[-1].role == "user":
        msgs.pop()
    return [(m.role, m.text) for m in msgs if m.text]


def strip_question_sentences(text: str) -> str:
    """``text`` without its questions: what a user turn *states* besides what it asks."""
    return " ".join(s for s in split_sentences(text) if not s.rstrip().endswith("?"))
