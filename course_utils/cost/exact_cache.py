"""An exact response cache: identical requests are answered once, from SQLite, for a TTL.

The key is a SHA-256 of the *normalised request*: every body field that can change the answer
(model, system, messages, tools, tool_choice, sampling parameters, ``max_tokens``, thinking, ...),
serialised as canonical JSON (sorted keys, no whitespace), so dict order does not matter. Fields
that cannot change the answer (``stream``, ``metadata``) are left out, and the API key never enters
it: keys rotate, and a secret has no business in a cache table. Tenants are kept apart with an
explicit ``namespace`` instead.

Only cacheable answers are stored: a complete reply (``stop_reason`` ``end_turn`` or
``stop_sequence``), never a refusal, a truncated reply or an error.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import anthropic

from ..clock import SYSTEM_CLOCK, Clock
from ..sqlite_store import connect, migrate

__all__ = ["NON_SEMANTIC_FIELDS", "cache_key", "ExactCache", "CacheStats"]

NON_SEMANTIC_FIELDS = frozenset({"stream", "metadata", "api_key", "extra_headers", "timeout"})
"""Request fields that never change the answer (or are secrets): left out of the key."""

CACHEABLE_STOPS = frozenset({"end_turn", "stop_sequence"})

MIGRATIONS: tuple[str, ...] = (
    # 1: the original schema (IF NOT EXISTS: a file written before versions opens as version 1).
    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, stored_at REAL NOT NULL, response TEXT NOT NULL)",
)
"""The cache's schema, one migration per entry (see :func:`course_utils.sqlite_store.migrate`)."""


def _plain(value: Any) -> Any:
    """JSON-ready form of SDK objects (pydantic models) inside a body."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def cache_key(body: Mapping[str, Any], namespace: str = "") -> str:
    """Hex SHA-256 of ``body``'s answer-relevant fields as canonical JSON (plus ``namespace``).

    Raises ``ValueError`` when ``model`` or ``max_tokens`` is missing: a key without them would
    serve one model's (or one length's) answer for another.
    """
    for required in ("model", "max_tokens", "messages"):
        if required not in body:
            raise ValueError(f"request body has no {required!r}; refusing to build a cache key")
    relevant = {k: _plain(v) for k, v in body.items() if k not in NON_SEMANTIC_FIELDS}
    canonical = json.dumps([namespace, relevant], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class CacheStats:
    """Lookups answered from the cache (``hits``) and sent to the API (``misses``)."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class ExactCache:
    """SQLite-backed exact cache with a TTL, an injectable clock and an optional tenant namespace.

    ``path`` is a file (shared by processes on one machine) or ``":memory:"`` (the default).
    ``await cache.create(client, **body)`` is a drop-in for ``client.messages.create``.
    Identical requests that miss *concurrently* each call the API (there is no single flight);
    where duplicates arrive together, put :class:`course_utils.resilience.Idempotent` in front.
    """

    def __init__(
        self, path: str | Path = ":memory:", *, ttl_s: float = 3600.0, clock: Clock = SYSTEM_CLOCK, namespace: str = ""
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self.ttl_s = ttl_s
        self.clock = clock
        self.namespace = namespace
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._db = connect(path)
        migrate(self._db, MIGRATIONS)

    def key(self, body: Mapping[str, Any]) -> str:
        """This cache's key for ``body`` (see :func:`cache_key`)."""
        return cache_key(body, self.namespace)

    def get(self, body: Mapping[str, Any]) -> anthropic.types.Message | None:
        """The stored reply to ``body`` if younger than the TTL, else None (expired rows are deleted)."""
        key = self.key(body)
        with self._lock:
            row = self._db.execute("SELECT stored_at, response FROM responses WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            if self.clock.time() - row[0] >= self.ttl_s:
                self._db.execute("DELETE FROM responses WHERE key = ?", (key,))
                return None
        return anthropic.types.Message.model_validate_json(row[1])

    def put(self, body: Mapping[str, Any], message: anthropic.types.Message) -> bool:
        """Store ``message`` as the reply to ``body`` if it is complete; returns whether it was stored."""
        if message.stop_reason not in CACHEABLE_STOPS:
            return False
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, stored_at, response) VALUES (?, ?, ?)",
                (self.key(body), self.clock.time(), message.model_dump_json()),
            )
        return True

    async def create(self, client: anthropic.AsyncAnthropic, **body: Any) -> anthropic.types.Message:
        """``client.messages.create(**body)``, answered from the cache when an identical request is fresh."""
        cached = self.get(body)
        if cached is not None:
            self.stats.hits += 1
            return cached
        self.stats.misses += 1
        message = await client.messages.create(**body)
        self.put(body, message)
        return message

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()
