"""The batch store: every Message Batch of one simulator in SQLite, and its objects as the API
returns them (create, retrieve, cancel, delete, list, results). Processing over simulated time is
in :mod:`.processing`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

from ...clock import Clock
from ...sqlite_store import connect, migrate, transaction
from ..config import SimulatorConfig
from ..errors import InvalidRequest, NotFound
from .limits import (
    BATCH_EXPIRY_SECONDS,
    CANCEL_GRACE_SECONDS,
    BatchOptions,
    OnResultFn,
    ProcessFn,
    batch_timestamp,
    validate_requests,
)
from .processing import BatchProcessing

__all__ = ["BatchStore"]

MIGRATIONS: tuple[str, ...] = (
    # 1: the original schema (IF NOT EXISTS: a state_dir written before versions opens as version 1).
    """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    api_key TEXT NOT NULL,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    ended_at REAL,
    cancel_initiated_at REAL,
    cancel_deadline REAL,
    archived_at REAL
);
CREATE TABLE IF NOT EXISTS requests (
    batch_id TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    order_key TEXT NOT NULL,
    params TEXT NOT NULL,
    due_at REAL NOT NULL,
    planned TEXT NOT NULL,
    result_type TEXT,
    result TEXT,
    PRIMARY KEY (batch_id, custom_id)
);
CREATE INDEX IF NOT EXISTS requests_pending ON requests (due_at) WHERE result_type IS NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""",
)
"""The store's schema, one migration per entry (see :func:`course_utils.sqlite_store.migrate`)."""


class BatchStore(BatchProcessing):
    """All Message Batches of one simulator, in SQLite (on disk with ``state_dir``, else in memory).

    Methods are synchronous and thread-safe except :meth:`tick` and :meth:`run`, which must run
    on one event loop (start ``asyncio.create_task(store.run())`` once per store).
    """

    def __init__(
        self,
        clock: Clock,
        settings: SimulatorConfig,
        process: ProcessFn,
        *,
        on_result: OnResultFn | None = None,
        options: BatchOptions | None = None,
        base_url: str = "https://api.anthropic.com",
        max_concurrency: int = 16,
        scope_of: Callable[[str], str] | None = None,
    ) -> None:
        self.clock = clock
        # Batches "are scoped to the workspace": every key of the creating key's workspace sees them.
        # ``scope_of(api_key)`` names a key's workspace (default: each key is its own).
        self.scope_of: Callable[[str], str] = scope_of or (lambda key: key)
        # The simulator's settings, read when used: seed and time scale are never copied here.
        self.settings = settings
        state_dir = settings.state_dir
        self.process = process
        self.on_result = on_result
        self.options = options or BatchOptions()
        self.base_url = base_url.rstrip("/")
        self.max_concurrency = max(1, max_concurrency)
        self._lock = threading.RLock()
        if state_dir is not None:
            state_dir = Path(state_dir)
            state_dir.mkdir(parents=True, exist_ok=True)
            self._db = connect(state_dir / "batches.sqlite3", synchronous="NORMAL")
        else:
            self._db = connect(":memory:")
        migrate(self._db, MIGRATIONS)
        self._tick_lock: asyncio.Lock | None = None
        self._tick_loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ public API

    def create(
        self,
        api_key: str,
        requests: list[dict[str, Any]],
        *,
        options: BatchOptions | None = None,
        body_bytes: int | None = None,
    ) -> dict[str, Any]:
        """Validate and enqueue a batch; returns the new MessageBatch object.

        ``body_bytes`` is the HTTP body size if known (else the requests' JSON size is used).
        """
        validate_requests(requests, body_bytes)
        opts = options or self.options
        now = self.clock.time()
        expires = now + BATCH_EXPIRY_SECONDS
        window = opts.window(len(requests), self.time_scale)
        with self._tx():
            seq = self._next_seq()
            batch_id = self._make_id(seq)
            rng = random.Random(f"{self.seed}:{batch_id}")
            n = len(requests)
            n_expire = min(n, round(max(0.0, min(1.0, opts.expire_fraction)) * n))
            expiring = set(rng.sample(range(n), n_expire))
            rows = []
            for pos, item in enumerate(requests):
                # Completion times are spread over the window in random order (not positional).
                due = now + window * (rng.random() if pos not in expiring else 1.0)
                planned = "expire" if pos in expiring else "process"
                if due > expires:
                    due, planned = expires, "expire"
                order_key = hashlib.sha256(f"{batch_id}:{item['custom_id']}".encode()).hexdigest()
                rows.append((batch_id, item["custom_id"], pos, order_key, json.dumps(item["params"]), due, planned))
            self._db.execute(
                "INSERT INTO batches (id, seq, api_key, status, total, created_at, expires_at) VALUES (?,?,?,?,?,?,?)",
                (batch_id, seq, api_key, "in_progress", n, now, expires),
            )
            self._db.executemany(
                "INSERT INTO requests (batch_id, custom_id, position, order_key, params, due_at, planned) "
                "VALUES (?,?,?,?,?,?,?)",
                rows,
            )
        self._notify()
        return self.retrieve(batch_id)

    def retrieve(self, batch_id: str, *, api_key: str | None = None) -> dict[str, Any]:
        """The MessageBatch object (NotFound for an unknown id or another key's batch)."""
        with self._lock:
            return self._to_object(self._row(batch_id, api_key))

    def cancel(self, batch_id: str, *, api_key: str | None = None) -> dict[str, Any]:
        """Start cancellation: ``canceling`` now, ``ended`` shortly after (idempotent once ended)."""
        with self._tx():
            row = self._row(batch_id, api_key)
            if row["status"] == "in_progress":
                now = self.clock.time()
                deadline = now + CANCEL_GRACE_SECONDS * max(0.0, self.time_scale)
                self._db.execute(
                    "UPDATE batches SET status='canceling', cancel_initiated_at=?, cancel_deadline=? WHERE id=?",
                    (now, deadline, batch_id),
                )
        self._notify()
        return self.retrieve(batch_id, api_key=api_key)

    def delete(self, batch_id: str, *, api_key: str | None = None) -> dict[str, Any]:
        """Delete an ended batch and its results."""
        with self._tx():
            row = self._row(batch_id, api_key)
            if row["status"] != "ended":
                raise InvalidRequest(
                    f"Message Batch {batch_id} cannot be deleted while it is {row['status']}: Message Batches can "
                    "only be deleted once they've finished processing. If you'd like to delete an in-progress "
                    "batch, you must first cancel it."
                )
            self._db.execute("DELETE FROM requests WHERE batch_id=?", (batch_id,))
            self._db.execute("DELETE FROM batches WHERE id=?", (batch_id,))
        return {"id": batch_id, "type": "message_batch_deleted"}

    def list(
        self, api_key: str, limit: int = 20, before_id: str | None = None, after_id: str | None = None
    ) -> dict[str, Any]:
        """One page of this key's batches, newest first: ``{data, has_more, first_id, last_id}``.

        ``after_id`` pages towards older batches, ``before_id`` towards newer ones.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise InvalidRequest("limit: Input should be greater than or equal to 1 and less than or equal to 1000")
        if before_id is not None and after_id is not None:
            raise InvalidRequest("Only one of before_id and after_id may be provided.")
        with self._lock:
            keys = self._keys_in_scope(api_key)
            marks = ",".join("?" * len(keys))
            if after_id is not None:
                cursor = self._row(after_id, api_key)["seq"]
                rows = self._fetch_rows(
                    f"SELECT * FROM batches WHERE api_key IN ({marks}) AND seq<? ORDER BY seq DESC LIMIT ?",
                    (*keys, cursor, limit + 1),
                )
            elif before_id is not None:
                cursor = self._row(before_id, api_key)["seq"]
                rows = self._fetch_rows(
                    f"SELECT * FROM batches WHERE api_key IN ({marks}) AND seq>? ORDER BY seq ASC LIMIT ?",
                    (*keys, cursor, limit + 1),
                )
            else:
                rows = self._fetch_rows(
                    f"SELECT * FROM batches WHERE api_key IN ({marks}) ORDER BY seq DESC LIMIT ?", (*keys, limit + 1)
                )
            has_more = len(rows) > limit
            rows = rows[:limit]
            if before_id is not None:
                rows.reverse()
            data = [self._to_object(r) for r in rows]
        return {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def results(self, batch_id: str, *, api_key: str | None = None) -> Iterator[str]:
        """JSONL lines ``{"custom_id", "result"}`` of an ended batch, in a stable non-positional order."""
        with self._lock:
            row = self._row(batch_id, api_key)
            if row["status"] != "ended":
                raise InvalidRequest(
                    f"Message Batch {batch_id} has not finished processing (processing_status: {row['status']}); "
                    "results are available once processing_status is 'ended'."
                )
            lines = [
                json.dumps({"custom_id": cid, "result": json.loads(result)}, separators=(",", ":"))
                for cid, result in self._db.execute(
                    "SELECT custom_id, result FROM requests WHERE batch_id=? ORDER BY order_key", (batch_id,)
                )
            ]
        return iter(lines)

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def time_scale(self) -> float:
        return self.settings.time_scale

    def close(self) -> None:
        """Close the database (the store is unusable afterwards)."""
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ internals

    def _tx(self) -> ContextManager[object]:
        # The connection is in autocommit mode; multi-statement changes get an explicit transaction
        # so a crash mid-way never leaves a half-created or half-finalized batch on disk.
        return transaction(self._db, self._lock)

    def _next_seq(self) -> int:
        # Kept in meta (not MAX(seq)) so ids of deleted batches are never reissued after a restart.
        row = self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
        seq = int(row[0]) + 1 if row else 1
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('seq', ?)", (str(seq),))
        return seq

    def _make_id(self, seq: int) -> str:
        digest = hashlib.sha256(f"msgbatch:{self.seed}:{seq}".encode()).digest()
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        num = int.from_bytes(digest[:18], "big")
        chars = []
        for _ in range(22):
            num, r = divmod(num, 62)
            chars.append(alphabet[r])
        return "msgbatch_01" + "".join(chars)

    def owner_of(self, batch_id: str) -> str | None:
        """The API key that created ``batch_id`` (whose prompt cache its requests use), or None."""
        with self._lock:
            rows = self._fetch_rows("SELECT api_key FROM batches WHERE id=?", (batch_id,))
        return rows[0]["api_key"] if rows else None

    def queued_by_key(self) -> dict[str, int]:
        """Requests not yet processed (no result), counted per API key that created their batch."""
        with self._lock:
            rows = self._fetch_rows(
                "SELECT b.api_key AS api_key, COUNT(*) AS n FROM requests r JOIN batches b ON r.batch_id = b.id "
                "WHERE r.result_type IS NULL GROUP BY b.api_key",
                (),
            )
        return {r["api_key"]: int(r["n"]) for r in rows}

    def _fetch_rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        cur = self._db.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def _keys_in_scope(self, api_key: str) -> list[str]:
        """Every key that created a batch in ``api_key``'s workspace (``api_key`` included)."""
        scope = self.scope_of(api_key)
        owners = {r["api_key"] for r in self._fetch_rows("SELECT DISTINCT api_key FROM batches", ())}
        return sorted({api_key} | {k for k in owners if self.scope_of(k) == scope})

    def _row(self, batch_id: str, api_key: str | None) -> dict[str, Any]:
        rows = self._fetch_rows("SELECT * FROM batches WHERE id=?", (batch_id,))
        if not rows or (api_key is not None and self.scope_of(rows[0]["api_key"]) != self.scope_of(api_key)):
            raise NotFound(f"Message batch {batch_id} not found.")
        return rows[0]

    def _counts(self, row: dict[str, Any]) -> dict[str, int]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if row["status"] != "ended":
            counts["processing"] = row["total"]
            return counts
        for kind, n in self._db.execute(
            "SELECT result_type, COUNT(*) FROM requests WHERE batch_id=? GROUP BY result_type", (row["id"],)
        ):
            counts[kind] += n
        return counts

    def _to_object(self, row: dict[str, Any]) -> dict[str, Any]:
        ended = row["status"] == "ended"
        return {
            "id": row["id"],
            "type": "message_batch",
            "processing_status": row["status"],
            "request_counts": self._counts(row),
            "ended_at": batch_timestamp(row["ended_at"]),
            "created_at": batch_timestamp(row["created_at"]),
            "expires_at": batch_timestamp(row["expires_at"]),
            "archived_at": batch_timestamp(row["archived_at"]),
            "cancel_initiated_at": batch_timestamp(row["cancel_initiated_at"]),
            "results_url": f"{self.base_url}/v1/messages/batches/{row['id']}/results" if ended else None,
        }
