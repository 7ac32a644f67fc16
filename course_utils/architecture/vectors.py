"""The vector store: a real index (sqlite-vec's ``vec0``) with the tenant filter inside the KNN query.

Why sqlite-vec: it is an index in the same embedded SQLite world as the conversation store (one
file, no server, transactions), and its ``vec0`` virtual table has **partition keys**: declaring
``tenant TEXT PARTITION KEY`` shards the index by tenant, and ``WHERE tenant = ?`` in the KNN query
searches that tenant's vectors only. The filter applies *before* top-k, so a tenant always gets
its own ``k`` nearest articles. Filtering after a global top-k returns fewer than ``k`` (often none)
when other tenants' articles crowd the top; no filter at all leaks other customers' documents.
(hnswlib and usearch would need a filter callback or one index per tenant to do the same.)

Python's ``sqlite3`` may be built without extension loading (it is on the course's Python), so the
index runs on ``apsw``, which ships its own SQLite that loads the sqlite-vec extension.
Embeddings come from :mod:`course_utils.embeddings` (WordLlama, offline, unit vectors), and the
distance is cosine.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .. import embeddings
from .errors import ArchitectureError

__all__ = ["Hit", "VectorIndex", "VectorIndexError", "recall_at_k"]


class VectorIndexError(ArchitectureError, ValueError):
    """A bad call to the index (a missing tenant, k out of range, a vector of the wrong size)."""


@dataclass(frozen=True)
class Hit:
    """One search result: the document, its text and its cosine distance (0 = same direction)."""

    tenant: str
    doc_id: str
    text: str
    distance: float

    @property
    def similarity(self) -> float:
        """Cosine similarity, ``1 - distance``."""
        return 1.0 - self.distance


def _connect(path: str):
    import apsw
    import sqlite_vec

    db = apsw.Connection(path)
    db.enable_load_extension(True)
    db.load_extension(sqlite_vec.loadable_path())
    db.enable_load_extension(False)
    return db


def _tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not tenant.strip():
        raise VectorIndexError("every index call needs a tenant (a non-empty string)")
    return tenant


class VectorIndex:
    """Documents of many tenants in one sqlite-vec index; every search is filtered to one tenant.

    ``path``: a file (survives restarts) or ``":memory:"``. Thread-safe (one lock around the
    connection). ``k`` is capped at 4096 by sqlite-vec.
    """

    MAX_K = 4096

    def __init__(self, path: str | Path = ":memory:", *, dim: int = embeddings.DIM) -> None:
        self.path = str(path)
        self.dim = int(dim)
        self._lock = threading.Lock()
        self._db = _connect(self.path)
        self._db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS docs USING vec0("
            f"tenant TEXT PARTITION KEY, embedding float[{self.dim}] distance_metric=cosine, "
            "+doc_id TEXT, +text TEXT)"
        )

    def add(self, tenant: str, docs: Iterable[tuple[str, str]], *, vectors: np.ndarray | None = None) -> int:
        """Index ``(doc_id, text)`` pairs for ``tenant`` (embedding the texts unless ``vectors`` is given).

        Re-adding a ``doc_id`` replaces it. Returns how many documents were written.
        """
        tenant = _tenant(tenant)
        docs = list(docs)
        if not docs:
            return 0
        if any(not isinstance(d, str) or not d or not isinstance(t, str) or not t.strip() for d, t in docs):
            raise VectorIndexError("each document is a (doc_id, text) pair of non-empty strings")
        vecs = embeddings.embed([t for _, t in docs]) if vectors is None else np.asarray(vectors, dtype=np.float32)
        if vecs.shape != (len(docs), self.dim):
            raise VectorIndexError(f"expected {len(docs)} vectors of {self.dim} floats, got shape {vecs.shape}")
        with self._lock, self._db:
            for (doc_id, text), vec in zip(docs, vecs):
                self._db.execute("DELETE FROM docs WHERE tenant = ? AND doc_id = ?", (tenant, doc_id))
                self._db.execute(
                    "INSERT INTO docs (tenant, embedding, doc_id, text) VALUES (?, ?, ?, ?)",
                    (tenant, vec.astype(np.float32).tobytes(), doc_id, text),
                )
        return len(docs)

    def search(self, tenant: str, query: str | np.ndarray, k: int = 3) -> list[Hit]:
        """The ``k`` documents of ``tenant`` nearest to ``query`` (text or vector), nearest first.

        The tenant filter is part of the KNN query (a partition key), so it is exact before top-k.
        """
        tenant = _tenant(tenant)
        if not 1 <= int(k) <= self.MAX_K:
            raise VectorIndexError(f"k must be between 1 and {self.MAX_K}, not {k}")
        vec = embeddings.embed_one(query) if isinstance(query, str) else np.asarray(query, dtype=np.float32)
        if vec.shape != (self.dim,):
            raise VectorIndexError(f"the query vector must have {self.dim} floats, not shape {vec.shape}")
        with self._lock:
            rows = self._db.execute(
                "SELECT doc_id, text, distance FROM docs WHERE embedding MATCH ? AND k = ? AND tenant = ? "
                "ORDER BY distance",
                (vec.tobytes(), int(k), tenant),
            ).fetchall()
        return [Hit(tenant, doc_id, text, float(distance)) for doc_id, text, distance in rows]

    @property
    def db(self) -> Any:
        """The underlying ``apsw`` connection, for your own SQL (lesson 08's exercise): the table is
        ``docs(tenant TEXT PARTITION KEY, embedding float[dim] distance_metric=cosine, +doc_id, +text)``."""
        return self._db

    def text(self, tenant: str, doc_id: str) -> str | None:
        """The text of the tenant's document ``doc_id``, or None."""
        tenant = _tenant(tenant)
        with self._lock:
            rows = self._db.execute(
                "SELECT text FROM docs WHERE tenant = ? AND doc_id = ?", (tenant, doc_id)
            ).fetchall()
        return rows[0][0] if rows else None

    def count(self, tenant: str) -> int:
        """How many documents ``tenant`` has."""
        tenant = _tenant(tenant)
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM docs WHERE tenant = ?", (tenant,)).fetchall()[0][0])

    def close(self) -> None:
        """Close the index (idempotent)."""
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"VectorIndex({self.path!r}, dim={self.dim})"


def recall_at_k(retrieved: Sequence[Sequence[str]], relevant: Sequence[str], k: int) -> float:
    """The fraction of questions whose relevant ``doc_id`` is among the first ``k`` retrieved ids."""
    if len(retrieved) != len(relevant):
        raise VectorIndexError(f"{len(retrieved)} result lists for {len(relevant)} questions")
    if not relevant:
        raise VectorIndexError("recall of an empty question set is undefined")
    return sum(gold in list(ids)[:k] for ids, gold in zip(retrieved, relevant)) / len(relevant)
