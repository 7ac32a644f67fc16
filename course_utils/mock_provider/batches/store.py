"""The Message Batches engine: validation, simulated-time processing, cancel, results, persistence.

Independent of HTTP: the server maps routes onto :class:`BatchStore` methods and runs
:meth:`BatchStore.run` as one asyncio task. Behaviour follows
https://platform.claude.com/docs/en/build-with-claude/batch-processing and the API reference
(https://platform.claude.com/docs/en/api/messages/batches):

* at most 100,000 requests or 256 MB per batch; ``custom_id`` matches ``^[a-zA-Z0-9_-]{1,64}$``
  and is unique within the batch; invalid ``params`` are not a create error but an ``errored``
  result;
* ``processing_status`` is ``in_progress`` -> (``canceling``) -> ``ended``; ``expires_at`` is
  created + 24 h, and requests not processed by then are ``expired``;
* ``request_counts``: requests count as ``processing`` until processing of the *whole* batch
  ends, then move to succeeded/errored/canceled/expired; the values always sum to the total;
* ``results_url`` is null until the batch ends; results come in no particular order;
* only ended batches can be deleted; listing returns the most recently created first.

Time is simulated on a :class:`~course_utils.clock.Clock`: each request has a due time spread
over the batch's processing window (30-300 s at ``time_scale=1``), so tests drive hours of
batch life on a :class:`~course_utils.clock.VirtualClock` without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import random
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

from ..api_facts import CUSTOM_ID_PATTERN
from ..clock import Clock
from .config import SimulatorConfig
from .errors import APIError, InvalidRequest, NotFound, RequestTooLarge, error_body

__all__ = [
    "BatchOptions",
    "BatchStore",
    "ProcessFn",
    "OnResultFn",
    "MAX_BATCH_REQUESTS",
    "MAX_BATCH_BYTES",
    "CUSTOM_ID_PATTERN",
    "BATCH_EXPIRY_SECONDS",
    "batch_timestamp",
]

MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
BATCH_EXPIRY_SECONDS = 24 * 3600.0
CANCEL_GRACE_SECONDS = 2.0
"""How long (at time_scale=1) a canceling batch takes to finish in-flight requests."""
_CUSTOM_ID_RE = CUSTOM_ID_PATTERN
_log = logging.getLogger(__name__)

ProcessFn = Callable[[dict[str, Any], str, str], Awaitable[dict[str, Any]]]
"""``process(params, custom_id, batch_id)`` -> the JSONL ``result`` object (succeeded or errored)."""
OnResultFn = Callable[[str, str, dict[str, Any], dict[str, Any], str], Any]
"""``on_result(api_key, custom_id, params, result, batch_id)``; may be sync or async."""


@dataclass(frozen=True)
class BatchOptions:
    """Scenario knobs for one batch (or the store's default).

    ``processing_seconds``: the window over which requests complete, at ``time_scale=1``
    (None: 30 s plus 3 s a request, capped at 300 s). ``slow_factor`` stretches it (a window
    pushed past ``expires_at`` makes the late requests expire). ``expire_fraction`` of the
    requests are never processed and come back ``expired`` when the window ends.
    """

    processing_seconds: float | None = None
    slow_factor: float = 1.0
    expire_fraction: float = 0.0

    def window(self, n_requests: int, time_scale: float) -> float:
        """Simulated seconds from creation to the last request's completion."""
        base = self.processing_seconds
        if base is None:
            base = min(300.0, 30.0 + 3.0 * n_requests)
        return max(0.0, base * max(0.0, self.slow_factor) * max(0.0, time_scale))


def batch_timestamp(ts: float | None) -> str | None:
    """An epoch timestamp as the API writes it (``2024-08-20T18:37:24.100435Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


_SCHEMA = """
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
"""


class BatchStore:
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
    ) -> None:
        self.clock = clock
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
            self._db = sqlite3.connect(state_dir / "batches.sqlite3", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        else:
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
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
        self._validate(requests, body_bytes)
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
            if after_id is not None:
                cursor = self._row(after_id, api_key)["seq"]
                rows = self._fetch_rows(
                    "SELECT * FROM batches WHERE api_key=? AND seq<? ORDER BY seq DESC LIMIT ?",
                    (api_key, cursor, limit + 1),
                )
            elif before_id is not None:
                cursor = self._row(before_id, api_key)["seq"]
                rows = self._fetch_rows(
                    "SELECT * FROM batches WHERE api_key=? AND seq>? ORDER BY seq ASC LIMIT ?",
                    (api_key, cursor, limit + 1),
                )
            else:
                rows = self._fetch_rows(
                    "SELECT * FROM batches WHERE api_key=? ORDER BY seq DESC LIMIT ?", (api_key, limit + 1)
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

    async def tick(self) -> float | None:
        """Process every request due by now and end finished batches.

        Returns the clock time of the next scheduled event, or None when nothing is pending.
        """
        loop = asyncio.get_running_loop()
        if self._tick_lock is None or self._tick_loop is not loop:
            self._tick_lock, self._tick_loop = asyncio.Lock(), loop
        async with self._tick_lock:
            now = self.clock.time()
            with self._lock:
                due = self._db.execute(
                    "SELECT r.batch_id, r.custom_id, r.params, r.planned, b.api_key FROM requests r "
                    "JOIN batches b ON b.id = r.batch_id "
                    "WHERE r.result_type IS NULL AND b.status != 'ended' AND r.due_at <= ? "
                    "AND (b.status = 'in_progress' OR r.due_at <= b.cancel_deadline) "
                    "ORDER BY r.due_at, r.order_key",
                    (now,),
                ).fetchall()
            sem = asyncio.Semaphore(self.max_concurrency)

            async def one(batch_id: str, custom_id: str, params_json: str, planned: str, api_key: str) -> None:
                params = json.loads(params_json)
                if planned == "expire":
                    result: dict[str, Any] = {"type": "expired"}
                else:
                    async with sem:
                        result = await self._safe_process(params, custom_id, batch_id)
                await self._finish(batch_id, custom_id, api_key, params, result)

            await asyncio.gather(*(one(*row) for row in due))
            await self._finalize(now)
            return self._next_event()

    async def run(self, *, stop: asyncio.Event | None = None) -> None:
        """Drive processing forever (or until ``stop`` is set): tick, then sleep until the next event."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while stop is None or not stop.is_set():
            self._wake.clear()
            next_at = await self.tick()
            waiters = [asyncio.ensure_future(self._wake.wait())]
            if stop is not None:
                waiters.append(asyncio.ensure_future(stop.wait()))
            if next_at is not None:
                waiters.append(asyncio.ensure_future(self.clock.sleep(max(0.0, next_at - self.clock.time()))))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    def pending(self) -> int:
        """Requests not yet finished, across all batches."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM requests WHERE result_type IS NULL").fetchone()[0]

    def close(self) -> None:
        """Close the database (the store is unusable afterwards)."""
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ internals

    def _validate(self, requests: Any, body_bytes: int | None) -> None:
        if not isinstance(requests, list):
            raise InvalidRequest("requests: Input should be a valid list")
        if not requests:
            raise InvalidRequest("requests: List should have at least 1 item after validation, not 0")
        if len(requests) > MAX_BATCH_REQUESTS:
            raise InvalidRequest(
                f"requests: List should have at most {MAX_BATCH_REQUESTS} items after validation, not {len(requests)}"
            )
        size = body_bytes if body_bytes is not None else len(json.dumps(requests, separators=(",", ":")).encode())
        if size > MAX_BATCH_BYTES:
            raise RequestTooLarge(
                f"Request exceeds the maximum allowed number of bytes: a Message Batch is limited to "
                f"{MAX_BATCH_BYTES} bytes (256 MB), got {size}."
            )
        seen: set[str] = set()
        for i, item in enumerate(requests):
            if not isinstance(item, dict):
                raise InvalidRequest(f"requests.{i}: Input should be a valid dictionary")
            if "custom_id" not in item:
                raise InvalidRequest(f"requests.{i}.custom_id: Field required")
            cid = item["custom_id"]
            if not isinstance(cid, str):
                raise InvalidRequest(f"requests.{i}.custom_id: Input should be a valid string")
            if not _CUSTOM_ID_RE.match(cid):
                raise InvalidRequest(f"requests.{i}.custom_id: String should match pattern '{CUSTOM_ID_PATTERN.pattern}'")
            if "params" not in item:
                raise InvalidRequest(f"requests.{i}.params: Field required")
            if not isinstance(item["params"], dict):
                raise InvalidRequest(f"requests.{i}.params: Input should be a valid dictionary")
            if cid in seen:
                raise InvalidRequest(
                    f"requests.{i}.custom_id: Duplicate custom_id '{cid}'. Each request in a Message Batch "
                    "must have a unique custom_id."
                )
            seen.add(cid)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        # The connection is in autocommit mode; multi-statement changes get an explicit transaction
        # so a crash mid-way never leaves a half-created or half-finalized batch on disk.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

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

    def _fetch_rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        cur = self._db.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def _row(self, batch_id: str, api_key: str | None) -> dict[str, Any]:
        rows = self._fetch_rows("SELECT * FROM batches WHERE id=?", (batch_id,))
        if not rows or (api_key is not None and rows[0]["api_key"] != api_key):
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

    async def _safe_process(self, params: dict[str, Any], custom_id: str, batch_id: str) -> dict[str, Any]:
        try:
            result = await self.process(params, custom_id, batch_id)
        except APIError as exc:
            return {"type": "errored", "error": error_body(exc.type, exc.message, _request_id(custom_id))}
        except Exception:  # noqa: BLE001 - one bad request must not stop the batch
            return {
                "type": "errored",
                "error": error_body("api_error", "Internal server error", _request_id(custom_id)),
            }
        if not isinstance(result, dict) or result.get("type") not in ("succeeded", "errored"):
            return {
                "type": "errored",
                "error": error_body("api_error", "Internal server error", _request_id(custom_id)),
            }
        return result

    async def _finish(
        self, batch_id: str, custom_id: str, api_key: str, params: dict[str, Any], result: dict[str, Any]
    ) -> None:
        with self._tx():
            cur = self._db.execute(
                "UPDATE requests SET result_type=?, result=? WHERE batch_id=? AND custom_id=? AND result_type IS NULL",
                (result["type"], json.dumps(result), batch_id, custom_id),
            )
            stored = cur.rowcount == 1
        if stored:
            await self._emit(api_key, custom_id, params, result, batch_id)

    async def _emit(
        self, api_key: str, custom_id: str, params: dict[str, Any], result: dict[str, Any], batch_id: str
    ) -> None:
        if self.on_result is None:
            return
        try:
            out = self.on_result(api_key, custom_id, params, result, batch_id)
            if inspect.isawaitable(out):
                await out
        except Exception:  # noqa: BLE001 - a billing bug must not stall every batch
            _log.exception("on_result failed for %s", custom_id)

    async def _finalize(self, now: float) -> None:
        canceled: list[tuple[str, str, str, dict[str, Any]]] = []
        with self._tx():
            for row in self._fetch_rows(
                "SELECT * FROM batches WHERE status='canceling' AND cancel_deadline<=?", (now,)
            ):
                for cid, params in self._db.execute(
                    "SELECT custom_id, params FROM requests WHERE batch_id=? AND result_type IS NULL", (row["id"],)
                ).fetchall():
                    canceled.append((row["api_key"], cid, row["id"], json.loads(params)))
                self._db.execute(
                    "UPDATE requests SET result_type='canceled', result=? WHERE batch_id=? AND result_type IS NULL",
                    (json.dumps({"type": "canceled"}), row["id"]),
                )
                self._db.execute(
                    "UPDATE batches SET status='ended', ended_at=? WHERE id=?", (row["cancel_deadline"], row["id"])
                )
            for (batch_id,) in self._db.execute(
                "SELECT b.id FROM batches b WHERE b.status != 'ended' AND NOT EXISTS "
                "(SELECT 1 FROM requests r WHERE r.batch_id = b.id AND r.result_type IS NULL)"
            ).fetchall():
                # ended_at is when the last request was scheduled to finish, not when a late tick noticed.
                last = self._db.execute("SELECT MAX(due_at) FROM requests WHERE batch_id=?", (batch_id,)).fetchone()[0]
                self._db.execute(
                    "UPDATE batches SET status='ended', ended_at=? WHERE id=?", (min(now, last or now), batch_id)
                )
        for api_key, cid, batch_id, params in canceled:
            await self._emit(api_key, cid, params, {"type": "canceled"}, batch_id)

    def _next_event(self) -> float | None:
        with self._lock:
            pending = self._db.execute(
                "SELECT MIN(r.due_at) FROM requests r JOIN batches b ON b.id = r.batch_id "
                "WHERE r.result_type IS NULL AND b.status != 'ended' "
                "AND (b.status = 'in_progress' OR r.due_at <= b.cancel_deadline)"
            ).fetchone()[0]
            cancel = self._db.execute("SELECT MIN(cancel_deadline) FROM batches WHERE status='canceling'").fetchone()[0]
        times = [t for t in (pending, cancel) if t is not None]
        return min(times) if times else None

    def _notify(self) -> None:
        # create/cancel may be called from the server's request threads: wake run() thread-safely.
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)


def _request_id(custom_id: str) -> str:
    return "req_" + hashlib.sha256(f"batch:{custom_id}".encode()).hexdigest()[:24]
