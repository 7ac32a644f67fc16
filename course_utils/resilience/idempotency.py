"""Idempotency at your own API boundary: one ``Idempotency-Key``, one model call, one charge.

The Messages API takes no idempotency key: a retried ``POST /v1/messages`` is a new request, run and
billed again. So the service in front of it must make *its* endpoint idempotent, the way Stripe's
API does and the IETF draft "The Idempotency-Key HTTP Header Field" specifies:

- the client sends a unique ``Idempotency-Key`` with each logical operation and reuses it on retries;
- the server stores, per key, a **fingerprint** of the request, its **state** (``in_progress`` or
  ``completed``), the **stored response** and an expiry (**TTL**; Stripe keeps keys 24 hours);
- a replay of a completed key returns the stored response without doing the work again;
- the same key with a different request is a client error (the draft: 422 Unprocessable Content);
- a duplicate that arrives while the first is still running gets a conflict (the draft: 409) or,
  here by default, waits for the first one's answer;
- a failed attempt is **not** stored as the final answer: the record is released so a retry can
  do the work. This deviates from Stripe's API v1 (which replays a stored 500) and the draft (which
  replays "success or an error"): the failures of a model call (529, 5xx, timeouts) are transient by
  definition, and replaying one would make a blip permanent (Stripe's API v2 also retries failed work).

:class:`IdempotencyStore` keeps the records in SQLite (``":memory:"`` or a file shared by processes):
claiming a key is one ``INSERT`` inside ``BEGIN IMMEDIATE``, so two threads or two processes can
never both believe they own it (no check-then-act race). An in-progress record has a lease: if its
owner crashed, another caller may take it over after ``lease_s``. :class:`Idempotent` wraps a
handler with all of the above, sync and async, on the injected clock.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..clock import SYSTEM_CLOCK, Clock
from ..sqlite_store import connect, migrate, transaction
from .errors import ResilienceError

__all__ = [
    "IdempotencyStore",
    "Idempotent",
    "Claim",
    "IdempotencyError",
    "KeyReused",
    "InProgress",
    "fingerprint",
    "encode_response",
    "decode_response",
    "IN_PROGRESS",
    "COMPLETED",
]

IN_PROGRESS, COMPLETED = "in_progress", "completed"


class IdempotencyError(ResilienceError):
    """Base of the store's client errors; ``status`` is the HTTP status the draft gives it."""

    status = 400


class KeyReused(IdempotencyError):
    """The key was used before with a different request body (IETF draft: 422)."""

    status = 422


class InProgress(IdempotencyError):
    """A request with this key is still being processed (IETF draft: 409 Conflict)."""

    status = 409


def fingerprint(body: Any) -> str:
    """SHA-256 of the request's canonical JSON (sorted keys): equal bodies, equal fingerprints."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def encode_response(value: Any) -> str:
    """JSON text for the store: an SDK ``Message`` (any pydantic model) or a JSON-ready value."""
    if hasattr(value, "model_dump"):
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        return json.dumps({"kind": kind, "data": value.model_dump(mode="json")})
    return json.dumps({"kind": "json", "data": value})


def decode_response(text: str) -> Any:
    """The value :func:`encode_response` stored (an ``anthropic.types.Message`` comes back as one)."""
    record = json.loads(text)
    if record["kind"] == "json":
        return record["data"]
    module, _, name = record["kind"].rpartition(".")
    import importlib

    cls = getattr(importlib.import_module(module), name)
    return cls.model_validate(record["data"])


@dataclass(frozen=True)
class Claim:
    """What :meth:`IdempotencyStore.begin` found: ``new`` (you own the key: do the work), ``replay``
    (``response`` holds the stored answer) or ``in_progress`` (someone else is doing it)."""

    status: str
    response: str | None = None


MIGRATIONS: tuple[str, ...] = (
    # 1: the original schema (IF NOT EXISTS: a file written before versions opens as version 1).
    """
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    response TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    locked_until REAL NOT NULL
)
""",
)
"""The store's schema, one migration per entry (see :func:`course_utils.sqlite_store.migrate`)."""


class IdempotencyStore:
    """Idempotency records in SQLite (see the module docstring). Thread-safe; safe across processes on a file."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        ttl_s: float = 24 * 3600.0,
        lease_s: float = 120.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = str(path)
        self.ttl_s = float(ttl_s)
        self.lease_s = float(lease_s)
        self.clock = clock
        self._lock = threading.Lock()
        self._db = connect(self.path)
        migrate(self._db, MIGRATIONS)

    def _tx(self, fn: Callable[[sqlite3.Connection, float], Any]) -> Any:
        with transaction(self._db, self._lock):  # the write lock first: no other writer between read and write
            return fn(self._db, self.clock.time())

    def begin(self, key: str, fp: str) -> Claim:
        """Claim ``key`` for a request with fingerprint ``fp``, atomically.

        Raises :class:`KeyReused` when the key holds a different fingerprint (and has not expired).
        """
        if not key:
            raise IdempotencyError("an Idempotency-Key is required (a non-empty string)")

        def claim(db: sqlite3.Connection, now: float) -> Claim:
            row = db.execute(
                "SELECT fingerprint, state, response, expires_at, locked_until FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
            if row is not None and row[3] <= now:  # expired: as if never seen
                db.execute("DELETE FROM idempotency WHERE key = ?", (key,))
                row = None
            if row is None:
                db.execute(
                    "INSERT INTO idempotency VALUES (?, ?, ?, NULL, ?, ?, ?)",
                    (key, fp, IN_PROGRESS, now, now + self.ttl_s, now + self.lease_s),
                )
                return Claim("new")
            stored_fp, state, response, _, locked_until = row
            if stored_fp != fp:
                raise KeyReused(f"Idempotency-Key {key!r} was already used with a different request body")
            if state == COMPLETED:
                return Claim("replay", response)
            if locked_until <= now:  # the owner's lease ran out (it crashed): take the key over
                db.execute("UPDATE idempotency SET locked_until = ? WHERE key = ?", (now + self.lease_s, key))
                return Claim("new")
            return Claim(IN_PROGRESS)

        return self._tx(claim)

    def complete(self, key: str, response: str) -> None:
        """Store the final response of ``key`` (its owner calls this once the work succeeded)."""
        self._tx(
            lambda db, now: db.execute(
                "UPDATE idempotency SET state = ?, response = ?, locked_until = 0 WHERE key = ?",
                (COMPLETED, response, key),
            )
        )

    def release(self, key: str) -> None:
        """Forget an in-progress ``key`` whose work failed, so that a retry can do it (never stores a failure)."""
        self._tx(lambda db, now: db.execute("DELETE FROM idempotency WHERE key = ? AND state = ?", (key, IN_PROGRESS)))

    def get(self, key: str) -> dict[str, Any] | None:
        """The record of ``key`` (``fingerprint``, ``state``, ``response``, times), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT key, fingerprint, state, response, created_at, expires_at, locked_until "
                "FROM idempotency WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return dict(zip(("key", "fingerprint", "state", "response", "created_at", "expires_at", "locked_until"), row))

    def purge_expired(self) -> int:
        """Delete expired records; returns how many."""
        return self._tx(lambda db, now: db.execute("DELETE FROM idempotency WHERE expires_at <= ?", (now,)).rowcount)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM idempotency").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class IdempotentStats:
    calls: int = 0
    """Times the wrapped handler really ran (model calls, charges)."""
    replays: int = 0
    waited: int = 0
    conflicts: int = 0
    failures_released: int = 0


class Idempotent:
    """Run ``handler(body)`` at most once per ``(key, body)``; replays return the stored response.

    ``wait_s``: how long a concurrent duplicate waits for the first request's answer (polling the store
    on the clock, every ``poll_s`` at first, doubling up to ``max_poll_s``) before getting
    :class:`InProgress`; 0 answers the conflict at once.
    """

    def __init__(
        self,
        store: IdempotencyStore | None = None,
        *,
        wait_s: float = 30.0,
        poll_s: float = 0.05,
        max_poll_s: float = 1.0,
        clock: Clock | None = None,
        encode: Callable[[Any], str] = encode_response,
        decode: Callable[[str], Any] = decode_response,
    ) -> None:
        self.store = store if store is not None else IdempotencyStore(clock=clock or SYSTEM_CLOCK)
        self.clock = clock or self.store.clock
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s
        self.encode = encode
        self.decode = decode
        self.stats = IdempotentStats()
        self._lock = threading.Lock()

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    async def acall(self, key: str, body: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        fp = fingerprint(body)
        deadline = self.clock.monotonic() + self.wait_s
        waited = False
        poll = self.poll_s
        while True:
            claim = self.store.begin(key, fp)
            if claim.status == "replay":
                self._count("waited" if waited else "replays")
                return self.decode(claim.response)  # type: ignore[arg-type]
            if claim.status == "new":
                return await self._run_async(key, body, handler)
            if self.clock.monotonic() >= deadline:
                self._count("conflicts")
                raise InProgress(f"a request with Idempotency-Key {key!r} is still in progress")
            waited = True
            await self.clock.sleep(poll)
            poll = min(poll * 2, self.max_poll_s)

    async def _run_async(self, key: str, body: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        self._count("calls")
        try:
            value = handler(body)
            if inspect.isawaitable(value):
                value = await value
            encoded = self.encode(value)  # a value that cannot be stored is a failure too: never leave the key stuck
        except BaseException:
            self.store.release(key)
            self._count("failures_released")
            raise
        self.store.complete(key, encoded)
        return value

    def call(self, key: str, body: Any, handler: Callable[[Any], Any]) -> Any:
        fp = fingerprint(body)
        deadline = self.clock.monotonic() + self.wait_s
        waited = False
        poll = self.poll_s
        while True:
            claim = self.store.begin(key, fp)
            if claim.status == "replay":
                self._count("waited" if waited else "replays")
                return self.decode(claim.response)  # type: ignore[arg-type]
            if claim.status == "new":
                self._count("calls")
                try:
                    value = handler(body)
                    encoded = self.encode(value)
                except BaseException:
                    self.store.release(key)
                    self._count("failures_released")
                    raise
                self.store.complete(key, encoded)
                return value
            if self.clock.monotonic() >= deadline:
                self._count("conflicts")
                raise InProgress(f"a request with Idempotency-Key {key!r} is still in progress")
            waited = True
            self.clock.sleep_sync(poll)
            poll = min(poll * 2, self.max_poll_s)
