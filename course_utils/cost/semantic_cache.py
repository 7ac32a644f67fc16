"""A semantic response cache: answer a new question with the stored answer of a similar one.

Similarity is the cosine of offline WordLlama embeddings (:mod:`course_utils.embeddings`). The
honest finding of lesson 06: embeddings measure *topic*, not *identity*. "Refund for order 123"
and "refund for order 124" are closer (about 0.9) than two true paraphrases of one question
(about 0.7), so no threshold separates them. The fix is a guard before similarity: the
identifiers a question names (numbers, order ids, emails) must match exactly
(:func:`identifiers`), and only then does the threshold decide.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..clock import SYSTEM_CLOCK, Clock
from ..embeddings import embed, embed_one

__all__ = ["identifiers", "same_identifiers", "SemanticCache", "SemanticHit", "cache_scope", "threshold_curve"]

_IDENT = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|\b[\w-]*\d[\w-]*\b")


def identifiers(text: str) -> frozenset[str]:
    """Tokens that name one specific thing: anything with a digit (``123``, ``INV-77``, ``v2``) and emails."""
    return frozenset(m.group(0).lower().strip(".-") for m in _IDENT.finditer(text))


def same_identifiers(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name exactly the same identifiers (both none counts as the same)."""
    return identifiers(a) == identifiers(b)


@dataclass(frozen=True)
class SemanticHit:
    """A cache hit: the stored question it matched, its answer and the similarity."""

    question: str
    answer: Any
    similarity: float


class SemanticCache:
    """Stored (question, answer) pairs looked up by embedding similarity, with an identifier guard and a TTL.

    ``threshold``: the lowest cosine that counts as "the same question". ``guard(new, stored)``
    must also hold (default :func:`same_identifiers`; pass ``None`` to trust similarity alone, the
    unsafe setting the lesson measures).
    """

    def __init__(
        self,
        threshold: float = 0.8,
        *,
        guard: Callable[[str, str], bool] | None = same_identifiers,
        ttl_s: float = 3600.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a cosine in [-1, 1], got {threshold}")
        self.threshold = threshold
        self.guard = guard
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._questions: list[str] = []
        self._answers: list[Any] = []
        self._stored_at: list[float] = []
        self._scopes: list[tuple[str, ...]] = []
        self._vectors = np.zeros((0, 0), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._questions)

    def store(self, question: str, answer: Any, *, scope: Sequence[str] = ()) -> None:
        """Remember ``answer`` for ``question`` within ``scope`` (see :func:`cache_scope`)."""
        vector = embed_one(question)[None, :]
        with self._lock:
            self._vectors = vector if len(self._questions) == 0 else np.vstack([self._vectors, vector])
            self._questions.append(question)
            self._answers.append(answer)
            self._stored_at.append(self.clock.time())
            self._scopes.append(tuple(scope))

    def lookup(self, question: str, *, scope: Sequence[str] = ()) -> SemanticHit | None:
        """The most similar fresh stored question of the same ``scope`` passing the guard and the threshold, or None.

        An answer never crosses scopes: another tenant's answer may hold that tenant's data, and an
        answer from another model or an older prompt version is not the answer this request would get.
        """
        with self._lock:
            if not self._questions:
                return None
            sims = self._vectors @ embed_one(question)
            now = self.clock.time()
            for i in np.argsort(-sims, kind="stable"):
                if sims[i] < self.threshold:
                    return None
                if now - self._stored_at[i] >= self.ttl_s or self._scopes[i] != tuple(scope):
                    continue
                if self.guard is None or self.guard(question, self._questions[i]):
                    return SemanticHit(self._questions[i], self._answers[i], float(sims[i]))
        return None


def cache_scope(tenant: str, model: str, prompt_version: str) -> tuple[str, str, str]:
    """The scope a cached answer belongs to: the tenant, the model and the version of the prompt that made it."""
    for name, value in (("tenant", tenant), ("model", model), ("prompt_version", prompt_version)):
        if not value:
            raise ValueError(f"{name} must be non-empty: an empty part would let answers cross scopes")
    return (tenant, model, prompt_version)


def threshold_curve(
    pairs: pd.DataFrame,
    thresholds: Sequence[float],
    guard: Callable[[str, str], bool] | None = None,
) -> pd.DataFrame:
    """Hit rate on paraphrases and false-hit rate on near misses at each threshold.

    ``pairs`` has columns ``stored``, ``asked`` and ``kind`` (``paraphrase`` should hit,
    ``near_miss`` should not). A pair "hits" when its cosine is >= the threshold and ``guard``
    (if any) accepts it.
    """
    if pairs.empty:
        raise ValueError("threshold_curve needs at least one pair")
    a, b = embed(pairs["stored"].tolist()), embed(pairs["asked"].tolist())
    sims = np.einsum("ij,ij->i", a, b)
    allowed = np.array([guard(x, y) if guard else True for x, y in zip(pairs["asked"], pairs["stored"])])
    para = (pairs["kind"] == "paraphrase").to_numpy()
    near = (pairs["kind"] == "near_miss").to_numpy()
    rows = []
    for t in thresholds:
        hit = (sims >= t) & allowed
        rows.append(
            {
                "threshold": float(t),
                "paraphrase_hit_rate": float(hit[para].mean()) if para.any() else float("nan"),
                "near_miss_false_hit_rate": float(hit[near].mean()) if near.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows)
