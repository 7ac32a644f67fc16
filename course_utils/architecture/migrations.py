"""A minimal, explicit schema migration runner for SQLite, on ``PRAGMA user_version``.

Why not Alembic or yoyo: the stores are embedded single-file databases with a handful of tables,
and SQLite already keeps an integer schema version in the file header (``PRAGMA user_version``).
A migration is a numbered SQL script; :func:`migrate` applies, in order, every script above the
file's version, and bumps the version, all in one transaction: a failure (or a crash) in the
middle rolls the whole run back (SQLite DDL is transactional), so a database is always at exactly
one known version, and two processes opening a new file cannot both migrate it. A file *newer* than the code is refused instead of being misread.
"""

from __future__ import annotations

import sqlite3
from typing import Sequence
from .errors import ArchitectureError

__all__ = ["SchemaTooNew", "migrate", "schema_version"]


class SchemaTooNew(ArchitectureError, RuntimeError):
    """The database was written by a newer version of the code than this one."""


def schema_version(db: sqlite3.Connection) -> int:
    """The database's schema version (0 for a new file)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, migrations: Sequence[str]) -> list[int]:
    """Bring ``db`` to version ``len(migrations)``: migration *i* (1-based) is ``migrations[i - 1]``.

    ``db`` must be in autocommit mode (``isolation_level=None``). Returns the versions applied.
    Raises :class:`SchemaTooNew` if the file's version is above ``len(migrations)``.
    """
    applied: list[int] = []
    db.execute("BEGIN IMMEDIATE")  # one migrator at a time, even across processes
    try:
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
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
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
