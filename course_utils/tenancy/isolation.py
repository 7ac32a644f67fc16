"""Context isolation: a tenant-scoped conversation store and tenant-scoped cache keys.

The leak this prevents: a response cache keyed on the prompt alone serves tenant B the answer
computed for tenant A's identical prompt, and that answer can contain A's data (retrieved
documents, tool results, A's system prompt). Two rules close it:

* **The tenant is part of every key.** :func:`cache_key` hashes the tenant id together with the
  canonical request, so equal prompts of different tenants can never meet.
* **The tenant comes from authentication.** Every method takes a
  :class:`~.registry.TenantContext` (made only by ``TenantRegistry.authenticate``), never a
  tenant id string, and never reads one from the request body. A ``str`` is refused with a
  ``TypeError``. There is no method that reads across tenants: a conversation id of another
  tenant is simply not found (the same answer as an id that does not exist).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections import OrderedDict
from typing import Any, Mapping

from ..sqlite_store import connect, migrate, transaction
from .registry import TenantContext
from .errors import TenancyError

__all__ = ["cache_key", "TenantCache", "ConversationStore", "ConversationNotFound"]


def _ctx(tenant: Any) -> TenantContext:
    if not isinstance(tenant, TenantContext):
        raise TypeError(
            f"tenant-scoped data needs the TenantContext from TenantRegistry.authenticate(), "
            f"not {type(tenant).__name__} (a tenant id from a request is not proof of anything)"
        )
    return tenant


def cache_key(tenant: TenantContext, body: Mapping[str, Any]) -> str:
    """A cache key for ``body`` that belongs to ``tenant`` only: SHA-256 over the tenant id and the
    request as canonical JSON (sorted keys), so the same prompt of two tenants gets two keys."""
    ctx = _ctx(tenant)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    digest = hashlib.sha256(f"{ctx.tenant_id}\x00{canonical}".encode()).hexdigest()
    return f"t:{ctx.tenant_id}:{digest}"


class TenantCache:
    """A response cache (LRU, ``max_entries``) whose every entry belongs to one tenant.

    Thread-safe. ``hits`` and ``misses`` count lookups.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, tenant: TenantContext, body: Mapping[str, Any]) -> Any | None:
        """The cached response to ``body`` for ``tenant``, or ``None``."""
        key = cache_key(tenant, body)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
            self.misses += 1
            return None

    def put(self, tenant: TenantContext, body: Mapping[str, Any], response: Any) -> None:
        """Cache ``response`` to ``body`` for ``tenant`` only."""
        key = cache_key(tenant, body)
        with self._lock:
            self._entries[key] = response
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self, tenant: TenantContext) -> int:
        """Drop every entry of ``tenant`` (e.g. when it leaves); returns how many."""
        prefix = f"t:{_ctx(tenant).tenant_id}:"
        with self._lock:
            doomed = [k for k in self._entries if k.startswith(prefix)]
            for k in doomed:
                del self._entries[k]
            return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class ConversationNotFound(TenancyError, KeyError):
    """No conversation with that id for this tenant (which includes: it is another tenant's)."""


MIGRATIONS: tuple[str, ...] = (
    # 1: the original schema (IF NOT EXISTS: a file written before versions opens as version 1).
    """
CREATE TABLE IF NOT EXISTS messages (
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS conversations (
    tenant_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);
""",
)
"""The schema, one migration per entry (see :func:`course_utils.sqlite_store.migrate`)."""


class ConversationStore:
    """Conversations in SQLite, every row and every query scoped by the authenticated tenant.

    ``path``: a database file (``":memory:"`` for a private in-memory one). Thread-safe (one
    connection behind a lock). The tenant id is in the primary key of every table, and every
    statement filters on it, so a query cannot return another tenant's rows.
    """

    def __init__(self, path: str = ":memory:") -> None:
        self._db = connect(path)
        migrate(self._db, MIGRATIONS)
        self._lock = threading.Lock()

    def create(self, tenant: TenantContext) -> str:
        """A new, empty conversation of ``tenant``; returns its id."""
        ctx = _ctx(tenant)
        conversation_id = "conv_" + secrets.token_hex(8)
        with self._lock:
            self._db.execute(
                "INSERT INTO conversations (tenant_id, conversation_id) VALUES (?, ?)", (ctx.tenant_id, conversation_id)
            )
        return conversation_id

    def _check(self, tenant_id: str, conversation_id: str) -> None:
        row = self._db.execute(
            "SELECT 1 FROM conversations WHERE tenant_id = ? AND conversation_id = ?", (tenant_id, conversation_id)
        ).fetchone()
        if row is None:
            raise ConversationNotFound(conversation_id)

    def append(self, tenant: TenantContext, conversation_id: str, role: str, content: Any) -> None:
        """Add a message (``content`` a string or a list of content blocks) to a conversation of ``tenant``."""
        ctx = _ctx(tenant)
        if role not in ("user", "assistant"):
            raise ValueError(f"role must be 'user' or 'assistant', not {role!r}")
        encoded = json.dumps(content)
        with transaction(self._db, self._lock):
            self._check(ctx.tenant_id, conversation_id)
            (seq,) = self._db.execute(
                "SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE tenant_id = ? AND conversation_id = ?",
                (ctx.tenant_id, conversation_id),
            ).fetchone()
            self._db.execute(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?)", (ctx.tenant_id, conversation_id, seq, role, encoded)
            )

    def messages(self, tenant: TenantContext, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's messages in order, ready for ``messages.create(messages=...)``."""
        ctx = _ctx(tenant)
        with self._lock:
            self._check(ctx.tenant_id, conversation_id)
            rows = self._db.execute(
                "SELECT role, content FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq",
                (ctx.tenant_id, conversation_id),
            ).fetchall()
        return [{"role": role, "content": json.loads(content)} for role, content in rows]

    def conversations(self, tenant: TenantContext) -> list[str]:
        """The ids of ``tenant``'s conversations."""
        ctx = _ctx(tenant)
        with self._lock:
            rows = self._db.execute(
                "SELECT conversation_id FROM conversations WHERE tenant_id = ? ORDER BY rowid", (ctx.tenant_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def delete_tenant(self, tenant: TenantContext) -> int:
        """Erase every conversation of ``tenant`` (offboarding); returns how many."""
        ctx = _ctx(tenant)
        with transaction(self._db, self._lock):  # both tables or neither
            self._db.execute("DELETE FROM messages WHERE tenant_id = ?", (ctx.tenant_id,))
            return self._db.execute("DELETE FROM conversations WHERE tenant_id = ?", (ctx.tenant_id,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
