"""Evaluating retrieval-augmented answers: recall@k of the retrieval, groundedness of the answer.

recall@k asks whether the right article was retrieved; it says nothing of the answer. Groundedness
(the RAG literature's *faithfulness*) asks whether the answer's statements are supported by the
retrieved context: here, the share of the answer's sentences whose content words are at least
``support`` (80%) found in the retrieved articles. An answer that ignores the context (generic prose)
scores near 0 even when retrieval was perfect. :func:`evaluate_answers` runs both on labelled
questions through the pipeline's prompt, against an in-process simulator on virtual time, and also
reports whether the answer carries the labelled article's facts (grounded in the *right* article).
Word overlap is a cheap proxy; production adds an LLM judge or NLI model, calibrated on human labels.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Iterable, Sequence

from ..clock import run_virtual
from ..content import text_of
from ..mock_provider.inprocess import InProcessServer
from .vectors import VectorIndex
from .workers import SYSTEM_TEMPLATE

__all__ = ["groundedness", "evaluate_answers"]

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
_STOP = frozenset(
    "a an and are as at be by can do does for from has have how i if in is it its me my of on or our so "
    "that the their then there this to under was we what when where which who will with you your".split()
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _words(text: str) -> set[str]:
    return {w.lower().strip("'-") for w in _WORD.findall(text or "")} - _STOP


def groundedness(answer: str, contexts: Iterable[str], *, support: float = 0.8) -> float:
    """Share (0-1) of ``answer``'s sentences whose content words are at least ``support`` found in
    ``contexts``. Attributions (``According to [acme/x]:``), source tags and sentences without content
    words are not statements; an answer without statements scores 0."""
    known = set().union(*(_words(c) for c in contexts)) if contexts else set()
    # An attribution ("According to [acme/x]:") names the source; it is not a statement to support.
    body = re.sub(r"[^.!?\n]*\[[^\]]*\]\s*:", " ", answer or "")
    statements = [s for s in _SENTENCE.split(re.sub(r"\[[^\]]*\]", " ", body)) if _words(s)]
    if not statements:
        return 0.0
    return sum(len(_words(s) & known) / len(_words(s)) >= support for s in statements) / len(statements)


async def _answers(index: VectorIndex, items: Sequence[dict[str, Any]], k: int, model: str, seed: int):
    with InProcessServer(seed=seed, time_scale=1.0, rate_limit_tier="unlimited") as server:
        clients: dict[str, Any] = {}
        gate = asyncio.Semaphore(16)

        async def one(item: dict[str, Any]) -> dict[str, Any]:
            tenant = item["tenant"]
            hits = index.search(tenant, item["question"], k)
            articles = "\n\n".join(f"[{h.doc_id}] {h.text}" for h in hits)
            client = clients.get(tenant) or clients.setdefault(tenant, server.tenant(tenant).async_client())
            async with gate:
                reply = await client.messages.create(
                    model=model,
                    max_tokens=300,
                    system=SYSTEM_TEMPLATE.format(tenant=tenant, articles=articles),
                    messages=[{"role": "user", "content": item["question"]}],
                )
            answer = text_of(reply)
            gold = [index.text(tenant, item["doc_id"]) or ""]
            return {
                "tenant": tenant,
                "question": item["question"],
                "retrieved_gold": item["doc_id"] in [h.doc_id for h in hits],
                "grounded": groundedness(answer, [h.text for h in hits]),
                "grounded_in_gold": groundedness(answer, gold),
                "answer": answer,
            }

        try:
            return await asyncio.gather(*(one(item) for item in items))
        finally:
            for client in clients.values():
                await client.close()


def evaluate_answers(
    index: VectorIndex,
    items: Sequence[dict[str, Any]],
    *,
    k: int = 3,
    model: str = "claude-sonnet-5-5",
    seed: int = 0,
) -> Any:
    """One row per labelled question (``tenant``, ``question``, ``doc_id``): whether retrieval found the
    labelled article in the top ``k`` (recall@k), the answer's groundedness in the retrieved articles
    and in the labelled one, and the answer. On virtual time, against a fresh in-process simulator."""
    import pandas as pd

    rows = run_virtual(_answers(index, list(items), k, model, seed), limit=24 * 3600)
    return pd.DataFrame(rows)
