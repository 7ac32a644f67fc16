"""The support desk's conversation store (:class:`DeskStore`): SQLite, tenant-scoped, migrated, and it
survives a restart. (Lesson 07's ``tenancy.ConversationStore`` is the small isolation demo; this one
adds what an event-driven service needs: idempotent writes, answers, usage, migrations.)

Every method takes the tenant and every query filters on it: there is no call that reads across
tenants, so a bug elsewhere cannot leak one customer's conversation into another's prompt. The
database is a file (``":memory:"`` only for throw-away use); a new process opening the same file
finds every conversation where the last one left it.

Writes are idempotent on their business keys, because the pipeline's events are delivered at
least once: :meth:`DeskStore.add_message` with a ``message_id`` it already holds returns the
stored message; :meth:`save_answer` stores one answer per user message (a second answer to the same
message returns the first); :meth:`record_usage` stores one usage row per message.

The dual write (store the message, then publish its event) is made safe by a **transactional
outbox**: :meth:`add_message` with ``outbox=`` writes the event in the same SQLite transaction, and a
relay publishes it afterwards, so a crash between the two can only delay the event, never lose it.
The consumers' **inbox** (:meth:`processed`, :meth:`mark_processed`) records which message each
consumer group has finished, so a redelivered or re-published event is acknowledged without the work.

The history sent to the model is built by lesson 01's strategies (:mod:`course_utils.context`):
:meth:`history_within` returns whole answered turns, newest first, within a token budget.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..clock import SYSTEM_CLOCK, Clock
from ..context import ContextStrategy, SlidingWindow
from ..sqlite_store import connect, migrate, schema_version, transaction
from .errors import ArchitectureError

__all__ = ["StoreError", "StoredMessage", "Usage", "DeskStore", "MIGRATIONS"]

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations and their messages; an assistant message answers one user message.
    """
    CREATE TABLE conversations (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        reply_to TEXT,
        created_at REAL NOT NULL,
        UNIQUE (tenant, message_id),
        FOREIGN KEY (tenant, conversation_id) REFERENCES conversations (tenant, id)
    );
    CREATE UNIQUE INDEX one_answer_per_message ON messages (tenant, reply_to) WHERE reply_to IS NOT NULL;
    CREATE INDEX messages_by_conversation ON messages (tenant, conversation_id, seq);
    """,
    # 2: usage per answered message (what metering reads back; one row per message: one charge).
    """
    CREATE TABLE usage (
        tenant TEXT NOT NULL,
        message_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (tenant, message_id)
    );
    """,
    # 3: the provider's request-id of the call that answered (what billing reconciles against).
    """
    ALTER TABLE usage ADD COLUMN request_id TEXT;
    """,
    # 4: the transactional outbox (events written in the same transaction as the message they announce,
    # relayed to the bus afterwards) and the consumers' inbox (which message each group has processed).
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        message_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at REAL NOT NULL,
        published_at REAL,
        event_id TEXT
    );
    CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
    CREATE TABLE inbox (
        consumer_group TEXT NOT NULL,
        tenant TEXT NOT NULL,
        message_id TEXT NOT NULL,
        processed_at REAL NOT NULL,
        PRIMARY KEY (consumer_group, tenant, message_id)
    );
    """,
    # 5: money is exact: ``cost_usd`` holds the Decimal's text. (A REAL column would turn '0.1' back into a
    # float: SQLite converts text to a REAL column's type, so the table is rebuilt, columns in the same order.)
    # Rows of versions 2-4 were floats of a Decimal price (at most 15 significant digits): CAST gives them back.
    """
    CREATE TABLE usage_v5 (
        tenant TEXT NOT NULL,
        message_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        model TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        request_id TEXT,
        PRIMARY KEY (tenant, message_id)
    );
    INSERT INTO usage_v5 SELECT tenant, message_id, conversation_id, model, input_tokens, output_tokens,
        cache_read_input_tokens, CAST(cost_usd AS TEXT), recorded_at, request_id FROM usage ORDER BY rowid;
    DROP TABLE usage;
    ALTER TABLE usage_v5 RENAME TO usage;
    """,
)
"""The schema, one migration per entry (see :func:`course_utils.sqlite_store.migrate`); append, never edit a
released one."""


class StoreError(ArchitectureError, ValueError):
    """A bad call to the store: a missing tenant, an unknown conversation, a malformed message."""


@dataclass(frozen=True)
class StoredMessage:
    """One message as stored."""

    tenant: str
    conversation_id: str
    message_id: str
    role: str
    content: Any
    reply_to: str | None
    created_at: float
    seq: int

    def as_api(self) -> dict[str, Any]:
        """The message in the Messages API's shape (``role`` and ``content``)."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Usage:
    """The usage of the model call that answered one message."""

    tenant: str
    message_id: str
    conversation_id: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cost_usd: Decimal
    """Exact dollars (stored as the Decimal's text, never a float)."""
    recorded_at: float
    request_id: str | None = None


def _tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not tenant.strip():
        raise StoreError("every store call needs a tenant (a non-empty string)")
    return tenant


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StoreError(f"{what} must be a non-empty string")
    return value


def _money(value: Decimal | str | int) -> Decimal:
    """``value`` as an exact Decimal; a float is refused (``0.1 + 0.2`` is not ``0.3`` in binary)."""
    if isinstance(value, (float, bool)) or not isinstance(value, (Decimal, str, int)):
        raise TypeError(f"money is exact: pass a Decimal (or its string), not {type(value).__name__} {value!r}")
    money = Decimal(value)
    if not money.is_finite():
        raise StoreError(f"a cost must be a finite amount, not {value!r}")
    return money


_COLUMNS = "tenant, conversation_id, message_id, role, content, reply_to, created_at, seq"


class DeskStore:
    """Conversations in SQLite (see the module docstring). Thread-safe; a file is shared by processes."""

    def __init__(self, path: str | Path = ":memory:", *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = str(path)
        self.clock = clock
        self._lock = threading.Lock()
        self._db = connect(self.path, foreign_keys=True)
        self.applied_migrations = migrate(self._db, MIGRATIONS)

    @property
    def db(self) -> sqlite3.Connection:
        """The SQLite connection, for your own queries (lesson 08's exercise). Tables: ``messages``
        (``tenant, conversation_id, message_id, role, content`` as JSON, ``reply_to``, ``seq``),
        ``conversations``, ``usage`` (``cost_usd`` as a Decimal's text: read it with ``Decimal(...)``; SQL's
        ``SUM`` would add floats). Every query you write must filter on ``tenant``."""
        return self._db

    @property
    def schema_version(self) -> int:
        """The database's schema version (``len(MIGRATIONS)`` once opened)."""
        with self._lock:
            return schema_version(self._db)

    def _row(self, row: Sequence[Any]) -> StoredMessage:
        tenant, conversation_id, message_id, role, content, reply_to, created_at, seq = row
        return StoredMessage(tenant, conversation_id, message_id, role, json.loads(content), reply_to, created_at, seq)

    def add_message(
        self,
        tenant: str,
        conversation_id: str,
        role: str,
        content: Any,
        *,
        message_id: str | None = None,
        reply_to: str | None = None,
        outbox: tuple[str, Mapping[str, Any]] | None = None,
    ) -> StoredMessage:
        """Append a message (creating the conversation on its first message) and return it.

        Idempotent on ``message_id``: adding an id the tenant already has returns the stored message.
        ``content`` is a string or a list of content blocks (stored as JSON). ``outbox=(topic, data)``
        writes that event to the outbox *in the same transaction* as a new message (the transactional
        outbox: both are stored or neither; :class:`~.outbox.OutboxRelay` publishes it afterwards).
        """
        tenant = _tenant(tenant)
        _name(conversation_id, "conversation_id")
        if role not in ("user", "assistant"):
            raise StoreError(f"role must be 'user' or 'assistant', not {role!r}")
        if not (isinstance(content, str) and content.strip()) and not (isinstance(content, list) and content):
            raise StoreError("content must be a non-empty string or a non-empty list of content blocks")
        message_id = message_id or uuid.uuid4().hex
        encoded = json.dumps(content, ensure_ascii=False)
        with transaction(self._db, self._lock):
            now = self.clock.time()
            self._db.execute("INSERT OR IGNORE INTO conversations VALUES (?, ?, ?)", (tenant, conversation_id, now))
            existing = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE tenant = ? AND "
                "(message_id = ? OR (reply_to IS NOT NULL AND reply_to = ?))",
                (tenant, message_id, reply_to),
            ).fetchone()
            if existing is None:
                self._db.execute(
                    "INSERT INTO messages (tenant, conversation_id, message_id, role, content, reply_to, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (tenant, conversation_id, message_id, role, encoded, reply_to, now),
                )
                existing = self._db.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE tenant = ? AND message_id = ?", (tenant, message_id)
                ).fetchone()
                if outbox is not None:
                    self._db.execute(
                        "INSERT INTO outbox (tenant, message_id, topic, data, created_at) VALUES (?, ?, ?, ?, ?)",
                        (tenant, message_id, outbox[0], json.dumps(dict(outbox[1]), ensure_ascii=False), now),
                    )
        stored = self._row(existing)
        if stored.conversation_id != conversation_id:
            raise StoreError(f"message {message_id!r} already belongs to conversation {stored.conversation_id!r}")
        if reply_to is None and (stored.role, stored.content) != (role, content):
            raise StoreError(f"message {message_id!r} is already stored with a different role or content")
        return stored

    def save_answer(self, tenant: str, conversation_id: str, reply_to: str, content: Any) -> StoredMessage:
        """Store the assistant's answer to user message ``reply_to``; a second answer returns the first."""
        if self.message(tenant, reply_to) is None:
            raise StoreError(f"tenant {tenant!r} has no message {reply_to!r} to answer")
        return self.add_message(
            tenant, conversation_id, "assistant", content, message_id=f"answer:{reply_to}", reply_to=reply_to
        )

    def message(self, tenant: str, message_id: str) -> StoredMessage | None:
        """The tenant's message ``message_id``, or None."""
        tenant = _tenant(tenant)
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE tenant = ? AND message_id = ?", (tenant, message_id)
            ).fetchone()
        return None if row is None else self._row(row)

    def answer_for(self, tenant: str, message_id: str) -> StoredMessage | None:
        """The stored answer to the tenant's user message ``message_id``, or None."""
        tenant = _tenant(tenant)
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE tenant = ? AND reply_to = ?", (tenant, message_id)
            ).fetchone()
        return None if row is None else self._row(row)

    def messages(self, tenant: str, conversation_id: str) -> list[StoredMessage]:
        """Every message of the tenant's conversation, oldest first (empty for an unknown one)."""
        tenant = _tenant(tenant)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE tenant = ? AND conversation_id = ? ORDER BY seq",
                (tenant, conversation_id),
            ).fetchall()
        return [self._row(row) for row in rows]

    def conversations(self, tenant: str) -> list[str]:
        """The tenant's conversation ids, oldest first."""
        tenant = _tenant(tenant)
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM conversations WHERE tenant = ? ORDER BY created_at, id", (tenant,)
            ).fetchall()
        return [row[0] for row in rows]

    def history(self, tenant: str, conversation_id: str, *, upto: str | None = None) -> list[dict[str, Any]]:
        """The conversation as API messages: every answered turn, then (with ``upto``) that user message.

        Stops before ``upto``'s position, so a redelivered old message gets the history it had.
        Unanswered user messages other than ``upto`` are left out (the roles must alternate).
        """
        stored = self.messages(tenant, conversation_id)
        answers = {m.reply_to: m for m in stored if m.role == "assistant"}
        out: list[dict[str, Any]] = []
        current: StoredMessage | None = None
        for m in stored:
            if m.message_id == upto:
                current = m
                break
            if m.role == "user" and m.message_id in answers:
                out += [m.as_api(), answers[m.message_id].as_api()]
        if upto is not None:
            if current is None or current.role != "user":
                raise StoreError(f"conversation {conversation_id!r} of tenant {tenant!r} has no user message {upto!r}")
            out.append(current.as_api())
        return out

    def history_within(
        self,
        tenant: str,
        conversation_id: str,
        budget: int,
        *,
        upto: str,
        system: Any = None,
        strategy: ContextStrategy | None = None,
    ) -> list[dict[str, Any]]:
        """The newest whole turns up to user message ``upto`` whose request fits ``budget`` input tokens.

        Uses lesson 01's strategy (default :class:`~course_utils.context.SlidingWindow` of ``budget``);
        raises :class:`~course_utils.context.ContextBudgetExceeded` if not even ``upto`` fits.
        """
        history = self.history(tenant, conversation_id, upto=upto)
        return (strategy or SlidingWindow(budget)).build(system, history).messages

    def record_usage(
        self,
        tenant: str,
        conversation_id: str,
        message_id: str,
        *,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cost_usd: Decimal | str,
        cache_read_input_tokens: int = 0,
        request_id: str | None = None,
    ) -> bool:
        """Record the usage of the call that answered ``message_id``; False if it was already recorded.

        ``cost_usd`` is exact money: a Decimal (or its string, or an int); a float raises ``TypeError``.
        """
        tenant = _tenant(tenant)
        cost = _money(cost_usd)
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant,
                    message_id,
                    conversation_id,
                    model,
                    int(input_tokens),
                    int(output_tokens),
                    int(cache_read_input_tokens),
                    str(cost),
                    self.clock.time(),
                    request_id,
                ),
            )
        return cur.rowcount == 1

    def usage(self, tenant: str, conversation_id: str | None = None) -> list[Usage]:
        """The tenant's usage rows (of one conversation, if given), in the order recorded."""
        tenant = _tenant(tenant)
        query = "SELECT * FROM usage WHERE tenant = ?"
        args: tuple[Any, ...] = (tenant,)
        if conversation_id is not None:
            query, args = query + " AND conversation_id = ?", (tenant, conversation_id)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY recorded_at, rowid", args).fetchall()
        return [Usage(*row[:7], Decimal(row[7]), *row[8:]) for row in rows]

    # ----- the transactional outbox and the consumers' inbox -------------------------------------------
    def unpublished(self, limit: int = 100) -> list[tuple[int, str, dict[str, Any]]]:
        """The outbox's events not yet published, oldest first: ``(seq, topic, data)``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, data FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(seq, topic, json.loads(data)) for seq, topic, data in rows]

    def mark_published(self, seq: int, event_id: str) -> bool:
        """Record that outbox event ``seq`` is on the bus as ``event_id``; False if it already was."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE outbox SET published_at = ?, event_id = ? WHERE seq = ? AND published_at IS NULL",
                (self.clock.time(), event_id, seq),
            )
        return cur.rowcount == 1

    def outbox_event_id(self, tenant: str, message_id: str) -> str | None:
        """The bus id the outbox event of the tenant's message was published as (None: not yet)."""
        tenant = _tenant(tenant)
        with self._lock:
            row = self._db.execute(
                "SELECT event_id FROM outbox WHERE tenant = ? AND message_id = ? ORDER BY seq LIMIT 1",
                (tenant, message_id),
            ).fetchone()
        return None if row is None else row[0]

    def processed(self, group: str, tenant: str, message_id: str) -> bool:
        """True if consumer ``group`` recorded the tenant's message as processed (the inbox)."""
        tenant = _tenant(tenant)
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM inbox WHERE consumer_group = ? AND tenant = ? AND message_id = ?",
                (group, tenant, message_id),
            ).fetchone()
        return row is not None

    def mark_processed(self, group: str, tenant: str, message_id: str) -> bool:
        """Record in the inbox that ``group`` processed the tenant's message; False if it already had."""
        tenant = _tenant(tenant)
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO inbox VALUES (?, ?, ?, ?)", (group, tenant, message_id, self.clock.time())
            )
        return cur.rowcount == 1

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> "DeskStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DeskStore({self.path!r})"
