"""The one way the course's SQLite stores open a database, migrate it and write to it.

Every store (the simulator's batches, lesson 04's job record, lesson 05's idempotency keys, lesson
06's exact cache, lesson 07's conversations, lesson 08's desk store and processed log, the grader's
ledger) needs the same four things, and each used to write them out by hand:

* :func:`connect`: a connection in **autocommit** mode (``isolation_level=None``: Python opens no
  transaction behind our back, so a transaction is exactly what :func:`transaction` says), with a
  **busy timeout** (a writer waits for another process's write lock instead of failing at once),
  and for a file **WAL** (readers never block the writer, and a crash mid-write leaves every
  committed transaction intact). ``check_same_thread=False`` is for stores that share one
  connection between threads behind a lock of their own.
* :func:`migrate`: the schema as a list of numbered SQL scripts, applied once. SQLite already keeps
  an integer schema version in the file header (``PRAGMA user_version``); :func:`migrate` applies,
  in order, every script above the file's version and bumps the version, all in one transaction: a
  failure (or a crash) in the middle rolls the whole run back (SQLite DDL is transactional), so a
  database is always at exactly one known version, and two processes opening a new file cannot
  both migrate it. A file *newer* than the code is refused (:class:`SchemaTooNew`) instead of being
  misread. A store's first migration is its original ``CREATE TABLE IF NOT EXISTS`` schema, so a
  file written before the stores had versions (version 0, tables present) opens unchanged.
* :func:`transaction`: ``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception. The
  write lock is taken first, so no other writer (thread or process) can slip in between what the
  transaction reads and what it writes: check-then-act is safe inside it.

Why not Alembic, yoyo or sqlite-utils: the stores are embedded single-file databases with a handful
of tables; what they need is the thirty lines below, and every lesson and the simulator may use
them (this is the foundation: it imports no lesson).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import ContextManager, Iterator, Sequence

from .errors import CourseError

__all__ = ["BUSY_TIMEOUT_S", "SchemaTooNew", "connect", "migrate", "schema_version", "transaction"]

BUSY_TIMEOUT_S = 30.0
"""How long a write waits for another connection's write lock before ``database is locked``."""


class SchemaTooNew(CourseError, RuntimeError):
    """The database was written by a newer version of the code than this one."""


def connect(
    path: str | Path,
    *,
    wal: bool = True,
    busy_timeout_s: float = BUSY_TIMEOUT_S,
    shared: bool = True,
    synchronous: str | None = None,
    foreign_keys: bool = False,
) -> sqlite3.Connection:
    """Open ``path`` (``":memory:"`` for a private in-memory database) in autocommit mode.

    ``wal``: journal in WAL mode (a file only; an in-memory database has no journal file).
    ``shared``: allow use from any thread (``check_same_thread=False``): the caller then serialises
    use with a lock of its own. ``synchronous``: e.g. ``"NORMAL"`` (safe in WAL; a power loss may
    drop the last commits, never corrupt). ``foreign_keys``: enforce ``REFERENCES`` clauses.
    """
    db = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=not shared)
    if wal and str(path) != ":memory:":
        db.execute("PRAGMA journal_mode=WAL")
    if synchronous is not None:
        db.execute(f"PRAGMA synchronous={synchronous}")
    if foreign_keys:
        db.execute("PRAGMA foreign_keys=ON")
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, lock: ContextManager[object] | None = None) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` on ``db`` (holding ``lock`` if given), ``COMMIT`` at the end of the block,
    ``ROLLBACK`` if it raises (the exception propagates). ``db`` must be in autocommit mode."""
    with lock if lock is not None else contextlib.nullcontext():
        db.execute("BEGIN IMMEDIATE")  # the write lock first: no other writer between our read and our write
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def schema_version(db: sqlite3.Connection) -> int:
    """The database's schema version (0 for a new file)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, migrations: Sequence[str]) -> list[int]:
    """Bring ``db`` to version ``len(migrations)``: migration *i* (1-based) is ``migrations[i - 1]``.

    ``db`` must be in autocommit mode (``isolation_level=None``). Returns the versions applied.
    Raises :class:`SchemaTooNew` if the file's version is above ``len(migrations)``.
    """
    applied: list[int] = []
    with transaction(db):  # one migrator at a time, even across processes
        current = schema_version(db)
        if current > len(migrations):
            raise SchemaTooNew(
                f"the database is at schema version {current}, this code knows {len(migrations)}: upgrade the code"
            )
        for version in range(current + 1, len(migrations) + 1):
            for statement in _statements(migrations[version - 1]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {version:d}")
            applied.append(version)
    return applied


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction first; split on complete statements instead.
    statements, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.rstrip(";").strip():
        statements.append(buffer.rstrip(";").strip())
    return [s for s in statements if s.rstrip(";").strip()]
