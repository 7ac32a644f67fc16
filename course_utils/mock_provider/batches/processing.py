"""Processing batches over simulated time: each request completes at its due time, a canceling
batch ends after its grace period, and a batch ends once none of its requests is pending.

Time is the store's :class:`~course_utils.clock.Clock`: tests drive hours of batch life on a
virtual clock without sleeping. :meth:`BatchProcessing.run` is one asyncio task per store.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import sqlite3
import threading
from typing import Any, Callable, ContextManager

from ...clock import Clock
from ..errors import APIError, error_body
from .limits import OnResultFn, ProcessFn

__all__ = ["BatchProcessing"]

_log = logging.getLogger("course_utils.mock_provider.batches")


class BatchProcessing:
    """The processing half of :class:`~.store.BatchStore` (which holds the database and the objects)."""

    clock: Clock
    process: ProcessFn
    on_result: OnResultFn | None
    max_concurrency: int
    _db: sqlite3.Connection
    _lock: threading.RLock
    _tick_lock: asyncio.Lock | None
    _tick_loop: asyncio.AbstractEventLoop | None
    _wake: asyncio.Event | None
    _loop: asyncio.AbstractEventLoop | None
    _tx: Callable[[], ContextManager[None]]
    _fetch_rows: Callable[..., list[dict[str, Any]]]

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
