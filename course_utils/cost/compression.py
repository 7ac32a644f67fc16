"""Prompt compression: fit retrieved context and history into a token budget, keeping what the question needs.

Three steps, each cheap and explainable:

1. split the context into sentences and drop exact duplicates (after normalising case and spacing)
   and boilerplate (greetings, sign-offs, disclaimers: :data:`BOILERPLATE`);
2. rank the rest by BM25 relevance to the question (``bm25s``: a maintained, sparse-matrix BM25,
   rather than a hand-written scorer);
3. select greedily in rank order while the result, counted with :func:`course_utils.tokens.count_text`,
   stays within the budget, then restore the original order so the text still reads in sequence.

Extractive selection never invents text: whatever survives was in the context, word for word.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import bm25s
import numpy as np

from ..tokens import count_text

# bm25s sets its own logger to DEBUG when imported, so every index build would log a line into a
# notebook whose root logger has a handler; its warnings still show.
logging.getLogger("bm25s").setLevel(logging.WARNING)

__all__ = ["BOILERPLATE", "split_sentences", "dedupe", "rank_sentences", "compress", "Compression", "compress_report"]

BOILERPLATE: tuple[re.Pattern[str], ...] = tuple(
    # Each pattern must match the WHOLE sentence: a fact glued to a greeting is not boilerplate.
    re.compile(rf"^(?:{p})[.!]?$", re.I)
    for p in (
        r"(hi|hello|hey|dear|good (morning|afternoon|evening))(,? (there|all|team|everyone|[A-Z][a-z]+))?"
        r"(,? thanks for (reaching out|your message|contacting us))?",
        r"(thanks|thank you|many thanks)( so much| again| a lot| for your (help|patience|message|time))?",
        r"(cheers|regards|best regards|kind regards|best|sincerely)(,? [\w ]{0,40})?",
        r"this (e-?mail|message) (and any attachments )?(is|are) confidential[^.!?]*",
        r"let me know if (you have|there are) any (other|more|further) questions",
        r"i hope this (helps|finds you well)",
        r"is there anything else i can help( you)? with\??",
        r"sent from my \w+",
        r"please do not reply to this (e-?mail|message)",
    )
)
"""Sentences that carry no facts: greetings, sign-offs, disclaimers, assistant filler."""

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")


def split_sentences(text: str) -> list[str]:
    """Sentences (and lines) of ``text``, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def _norm(sentence: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", sentence.lower()))


def dedupe(sentences: Sequence[str]) -> list[str]:
    """``sentences`` without boilerplate and without repeats (first occurrence kept, order kept)."""
    seen: set[str] = set()
    out = []
    for s in sentences:
        key = _norm(s)
        if not key or key in seen or any(p.search(s) for p in BOILERPLATE):
            continue
        seen.add(key)
        out.append(s)
    return out


def rank_sentences(sentences: Sequence[str], question: str) -> np.ndarray:
    """BM25 score of each sentence for ``question`` (English stopwords removed), as a float array."""
    if not sentences:
        return np.zeros(0)
    corpus = bm25s.tokenize(list(sentences), stopwords="en", return_ids=False, show_progress=False)
    query = bm25s.tokenize([question], stopwords="en", return_ids=False, show_progress=False)[0]
    # bm25s cannot index a corpus whose every sentence is only stopwords; nothing to rank then.
    if not any(corpus):
        return np.zeros(len(sentences))
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    known = [t for t in query if t in retriever.vocab_dict]
    return np.asarray(retriever.get_scores(known), dtype=float) if known else np.zeros(len(sentences))


@dataclass(frozen=True)
class Compression:
    """What :func:`compress_report` kept: the text, its tokens and the sentences in and out."""

    text: str
    tokens: int
    original_tokens: int
    kept: int
    dropped_duplicates: int
    dropped_for_budget: int


def compress_report(
    context: str, question: str, budget: int, *, count: Callable[[str], int] = count_text, sep: str = "\n"
) -> Compression:
    """:func:`compress` with its accounting (tokens before and after, sentences kept and dropped)."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget must be a non-negative int of tokens, got {budget!r}")
    sentences = split_sentences(context)
    unique = dedupe(sentences)
    scores = rank_sentences(unique, question)
    # Stable sort: among equal scores the earlier sentence wins (ties broken by position, reproducibly).
    order = sorted(range(len(unique)), key=lambda i: -scores[i])
    chosen: list[int] = []
    for i in order:
        candidate = sorted([*chosen, i])
        if count(sep.join(unique[j] for j in candidate)) <= budget:
            chosen = candidate
    text = sep.join(unique[j] for j in chosen)
    return Compression(
        text=text,
        tokens=count(text),
        original_tokens=count(context),
        kept=len(chosen),
        dropped_duplicates=len(sentences) - len(unique),
        dropped_for_budget=len(unique) - len(chosen),
    )


def compress(context: str, question: str, budget: int) -> str:
    """The most relevant, non-duplicate sentences of ``context`` for ``question``, in their original
    order, joined by newlines, within ``budget`` tokens (:func:`course_utils.tokens.count_text`).

    Raises ``ValueError`` for a negative or non-integer budget; an empty context gives ``""``.
    """
    return compress_report(context, question, budget).text
