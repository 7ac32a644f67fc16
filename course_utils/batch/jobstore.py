"""The job record: which batches a job submitted, their state, and every custom_id's outcome.

The poller is the fragile part of a batch job (it runs for hours); the batches themselves live on
the API's side. Writing the batch ids down *before* polling, in SQLite on disk, lets a restarted
process pick the job up where it was instead of losing track of batches that are still running
(and billing). Every change is one transaction, so a crash never leaves half a record.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, ContextManager, Iterable, Mapping

import pandas as pd

from ..clock import SYSTEM_CLOCK, Clock
from ..sqlite_store import connect, migrate, transaction

__all__ = ["JobStore", "OUTCOMES", "RETRYABLE_OUTCOMES"]

OUTCOMES = ("pending", "succeeded", "invalid", "retry", "canceled", "missing")
"""Item states: submitted and not yet collected, or the triage of its latest result."""
RETRYABLE_OUTCOMES = ("retry",)
"""Resubmitted without asking: expired requests and transient errors. ``missing`` is not among them: its
request may have succeeded (and been billed) with only the result line lost, so it is downloaded again
and, if still missing, reported; resubmitting it is a decision (``include_missing``)."""
"""Outcomes that a resubmission picks up (``invalid`` never: it would fail again, and cost again)."""

MIGRATIONS: tuple[str, ...] = (
    # 1: the original schema (IF NOT EXISTS: a job file written before versions opens as version 1).
    """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    counts TEXT
);
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    custom_id TEXT NOT NULL,
    batch_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    error_type TEXT,
    PRIMARY KEY (job_id, custom_id)
);
""",
)
"""The job record's schema, one migration per entry (see :func:`course_utils.sqlite_store.migrate`)."""


class JobStore:
    """A SQLite file (or ``":memory:"``) holding batch jobs; safe to share between threads.

    Batch states: ``in_progress`` (submitted, still polled), ``ended`` (processing finished,
    results not yet collected) and ``collected`` (every result triaged into ``items``).
    """

    def __init__(self, path: str | Path = ":memory:", *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = str(path)
        self.clock = clock
        self._lock = threading.RLock()
        self._db = connect(self.path)
        migrate(self._db, MIGRATIONS)

    # ----- jobs and batches ----------------------------------------------------------------------
    def create_job(self, job_id: str, custom_ids: Iterable[str]) -> bool:
        """Register a job and its items; True if the job is new.

        Idempotent: called again (a restarted run), it only adds custom_ids it has not seen, and
        never touches the state of known ones.
        """
        with self._tx():
            new = self._db.execute("SELECT 1 FROM jobs WHERE job_id=?", (job_id,)).fetchone() is None
            if new:
                self._db.execute("INSERT INTO jobs (job_id, created_at) VALUES (?, ?)", (job_id, self.clock.time()))
            self._db.executemany(
                "INSERT OR IGNORE INTO items (job_id, custom_id) VALUES (?, ?)", [(job_id, cid) for cid in custom_ids]
            )
        return new

    def jobs(self) -> list[str]:
        """Every job id, oldest first."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT job_id FROM jobs ORDER BY created_at, job_id")]

    def record_batch(self, job_id: str, batch_id: str, custom_ids: Iterable[str]) -> None:
        """Note that ``batch_id`` now carries ``custom_ids``: they become ``pending`` in it.

        Call it right after ``batches.create`` returns, before polling.
        """
        ids = list(custom_ids)
        with self._tx():
            # Read once in Python: an IN (...) list of 100,000 ids would exceed SQLite's parameter limit.
            known = dict(self._db.execute("SELECT custom_id, attempts FROM items WHERE job_id=?", (job_id,)).fetchall())
            unknown = [cid for cid in ids if cid not in known]
            if unknown:
                raise KeyError(f"custom_ids not in job {job_id!r}: {unknown[:5]}")
            attempt = 1 + max((known[cid] for cid in ids), default=0)
            self._db.execute(
                "INSERT INTO batches (batch_id, job_id, attempt, state, submitted_at) VALUES (?, ?, ?, 'in_progress', ?)",
                (batch_id, job_id, attempt, self.clock.time()),
            )
            self._db.executemany(
                "UPDATE items SET batch_id=?, attempts=attempts+1, outcome='pending', error_type=NULL "
                "WHERE job_id=? AND custom_id=?",
                [(batch_id, job_id, cid) for cid in ids],
            )

    def mark_batch(self, batch_id: str, state: str, counts: Mapping[str, int] | None = None) -> None:
        """Move a batch to ``state`` (``in_progress``, ``ended`` or ``collected``), keeping its counts."""
        if state not in ("in_progress", "ended", "collected"):
            raise ValueError(f"unknown batch state {state!r}")
        with self._tx():
            self._db.execute(
                "UPDATE batches SET state=?, counts=COALESCE(?, counts) WHERE batch_id=?",
                (state, json.dumps(dict(counts)) if counts is not None else None, batch_id),
            )

    def open_batches(self, job_id: str) -> list[str]:
        """Batches of the job whose results are not collected yet (what a resumed poller polls)."""
        with self._lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT batch_id FROM batches WHERE job_id=? AND state != 'collected' ORDER BY submitted_at, batch_id",
                    (job_id,),
                )
            ]

    def batches(self, job_id: str) -> pd.DataFrame:
        """The job's batches: batch_id, attempt, state, submitted_at, counts."""
        with self._lock:
            df = pd.read_sql_query(
                "SELECT batch_id, attempt, state, submitted_at, counts FROM batches WHERE job_id=? "
                "ORDER BY submitted_at, batch_id",
                self._db,
                params=(job_id,),
            )
        # A column of only NULLs comes back as float NaN, not None: test for text, not truthiness.
        df["counts"] = df["counts"].map(lambda s: json.loads(s) if isinstance(s, str) else None)
        return df

    # ----- items ---------------------------------------------------------------------------------
    def record_outcomes(self, batch_id: str, outcomes: Mapping[str, tuple[str, str | None]]) -> int:
        """Store ``{custom_id: (outcome, error_type)}`` from ``batch_id``'s results.

        Only items whose latest batch is ``batch_id`` change, so results of an older attempt read
        late never overwrite a newer one. Returns how many items changed.
        """
        bad = {o for o, _ in outcomes.values()} - set(OUTCOMES)
        if bad:
            raise ValueError(f"unknown outcome(s) {sorted(bad)}; use one of {OUTCOMES}")
        with self._tx():
            cur = self._db.executemany(
                "UPDATE items SET outcome=?, error_type=? WHERE batch_id=? AND custom_id=?",
                [(o, e, batch_id, cid) for cid, (o, e) in outcomes.items()],
            )
            return cur.rowcount

    def items(self, job_id: str) -> pd.DataFrame:
        """One row per custom_id: custom_id, batch_id, attempts, outcome, error_type."""
        with self._lock:
            return pd.read_sql_query(
                "SELECT custom_id, batch_id, attempts, outcome, error_type FROM items WHERE job_id=? ORDER BY rowid",
                self._db,
                params=(job_id,),
            )

    def retryable(
        self,
        job_id: str,
        *,
        include_canceled: bool = False,
        include_missing: bool = False,
        max_attempts: int | None = None,
    ) -> list[str]:
        """custom_ids whose latest result says "try again" (and, when asked, were canceled or are missing)."""
        outcomes = (
            RETRYABLE_OUTCOMES + (("canceled",) if include_canceled else ()) + (("missing",) if include_missing else ())
        )
        sql = f"SELECT custom_id FROM items WHERE job_id=? AND outcome IN ({','.join('?' * len(outcomes))})"
        args: list[Any] = [job_id, *outcomes]
        if max_attempts is not None:
            sql += " AND attempts < ?"
            args.append(max_attempts)
        with self._lock:
            return [r[0] for r in self._db.execute(sql + " ORDER BY rowid", args)]

    def summary(self, job_id: str) -> dict[str, int]:
        """How many items are in each outcome (``never_submitted`` for items with no batch yet)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT COALESCE(outcome, 'never_submitted'), COUNT(*) FROM items WHERE job_id=? GROUP BY 1",
                (job_id,),
            ).fetchall()
        return {k: int(n) for k, n in rows}

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> "JobStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _tx(self) -> ContextManager[object]:
        return transaction(self._db, self._lock)
