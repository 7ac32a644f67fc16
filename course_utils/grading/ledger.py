"""The grading ledger: every finished grade, keyed by the submission's content hash, in SQLite.

``graded/ledger.sqlite`` beside the gradebook. The grader writes a row the moment a grade comes
back from a worker (one transaction per grade), so a run interrupted at any point — Ctrl-C, the
instructor's laptop sleeping, the scheduler lost — keeps everything that finished, and the next
run grades only what is missing.

A grade is reused only for the same bytes (``content_hash``, sha256 of the file) graded under the
same conditions (``fingerprint``: the simulator parameters, the limits and the official notebooks'
contents); change any of them, or pass ``--regrade``, and it is graded again. Grades that are the
grader's own failure ("grader error": a lost worker, a crash of the grader) are never recorded, so
they are retried.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..sqlite_store import connect, migrate

__all__ = ["Ledger", "LEDGER_FILE"]

LEDGER_FILE = "ledger.sqlite"

MIGRATIONS: tuple[str, ...] = (
    # 1: the original schema (IF NOT EXISTS: a ledger written before versions opens as version 1).
    """
CREATE TABLE IF NOT EXISTS grades (
    content_hash TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    grade        TEXT NOT NULL,   -- SubmissionGrade.to_dict() as JSON
    executed     TEXT,            -- the executed notebook's file name in executed/, if any
    graded_at    REAL NOT NULL,
    PRIMARY KEY (content_hash, fingerprint)
)
""",
)
"""The ledger's schema, one migration per entry (see :func:`course_utils.sqlite_store.migrate`)."""


class Ledger:
    """Grades already computed, by (content hash, fingerprint). Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # WAL: a crash mid-write leaves earlier grades intact. One thread uses it (the grader's).
        self._db = connect(self.path, shared=False)
        migrate(self._db, MIGRATIONS)

    def get(self, content_hash: str, fingerprint: str) -> tuple[dict[str, Any], str | None] | None:
        """The recorded grade (as a dict) and executed-notebook file name, or ``None``."""
        row = self._db.execute(
            "SELECT grade, executed FROM grades WHERE content_hash = ? AND fingerprint = ?",
            (content_hash, fingerprint),
        ).fetchone()
        return (json.loads(row[0]), row[1]) if row else None

    def put(self, content_hash: str, fingerprint: str, grade: dict[str, Any], executed: str | None) -> None:
        """Record one grade (replacing an older record of the same key) and commit at once."""
        # Autocommit: the one statement is its own transaction, committed when it returns.
        self._db.execute(
            "INSERT OR REPLACE INTO grades (content_hash, fingerprint, grade, executed, graded_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (content_hash, fingerprint, json.dumps(grade, default=str), executed, time.time()),
        )

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM grades").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
