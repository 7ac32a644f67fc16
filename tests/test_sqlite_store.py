"""The stores' shared SQLite foundation: connection settings, transactions, migrations across processes,
and every store opening a file its pre-migration code wrote."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from course_utils.architecture.bus.consumer import ProcessedLog
from course_utils.batch.jobstore import MIGRATIONS as JOB_MIGRATIONS
from course_utils.batch.jobstore import JobStore
from course_utils.cost.exact_cache import MIGRATIONS as CACHE_MIGRATIONS
from course_utils.errors import CourseError
from course_utils.grading.ledger import MIGRATIONS as LEDGER_MIGRATIONS
from course_utils.grading.ledger import Ledger
from course_utils.mock_provider.batches.store import MIGRATIONS as BATCH_MIGRATIONS
from course_utils.resilience.idempotency import MIGRATIONS as IDEMPOTENCY_MIGRATIONS
from course_utils.resilience.idempotency import IdempotencyStore
from course_utils.sqlite_store import SchemaTooNew, connect, migrate, schema_version, transaction
from course_utils.tenancy.isolation import MIGRATIONS as CONVERSATION_MIGRATIONS


def test_a_file_connection_is_autocommit_wal_with_a_busy_timeout(tmp_path):
    db = connect(tmp_path / "a.db")
    assert db.isolation_level is None and not db.in_transaction
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 0
    db.close()
    memory = connect(":memory:", busy_timeout_s=2.5, foreign_keys=True, synchronous="NORMAL")
    assert memory.execute("PRAGMA journal_mode").fetchone()[0] == "memory"  # no journal file to put in WAL
    assert memory.execute("PRAGMA busy_timeout").fetchone()[0] == 2_500
    assert memory.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert memory.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_shared_is_what_lets_another_thread_use_the_connection(tmp_path):
    import threading

    errors: list[BaseException] = []
    own, shared = connect(tmp_path / "a.db", shared=False), connect(tmp_path / "a.db")

    def use(db: sqlite3.Connection) -> None:
        try:
            db.execute("SELECT 1").fetchone()
        except sqlite3.ProgrammingError as exc:
            errors.append(exc)

    for db in (own, shared):
        thread = threading.Thread(target=use, args=(db,))
        thread.start()
        thread.join()
    assert len(errors) == 1 and "same thread" in str(errors[0])


def test_a_transaction_commits_at_the_end_and_rolls_back_on_an_exception(tmp_path):
    db = connect(tmp_path / "a.db")
    db.execute("CREATE TABLE t (x INTEGER)")
    with transaction(db) as tx:
        tx.execute("INSERT INTO t VALUES (1)")
        assert db.in_transaction
    assert not db.in_transaction
    with pytest.raises(ZeroDivisionError):
        with transaction(db):
            db.execute("INSERT INTO t VALUES (2)")
            1 / 0
    assert not db.in_transaction
    other = connect(tmp_path / "a.db")  # what another connection (process) sees: the commit, not the rollback
    assert other.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_a_transaction_holds_the_write_lock_from_its_start(tmp_path):
    """BEGIN IMMEDIATE: a second writer waits (here, with no patience, fails) until the first commits."""
    first, second = connect(tmp_path / "a.db"), connect(tmp_path / "a.db", busy_timeout_s=0)
    first.execute("CREATE TABLE t (x INTEGER)")
    with transaction(first):
        first.execute("SELECT COUNT(*) FROM t").fetchone()  # only read so far: the lock is held all the same
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            with transaction(second):
                pass
    with transaction(second):
        second.execute("INSERT INTO t VALUES (1)")


def test_a_transaction_holds_the_callers_lock():
    import threading

    lock = threading.Lock()
    db = connect(":memory:")
    with transaction(db, lock):
        assert lock.locked()
    assert not lock.locked()


def test_schema_too_new_is_a_course_error_and_still_a_runtime_error():
    db = connect(":memory:")
    db.execute("PRAGMA user_version = 3")
    with pytest.raises(SchemaTooNew) as caught:
        migrate(db, ["CREATE TABLE a (x)"])
    assert isinstance(caught.value, CourseError) and isinstance(caught.value, RuntimeError)
    assert schema_version(db) == 3


_RACING_MIGRATIONS = (
    "CREATE TABLE runs (n INTEGER)",
    "INSERT INTO runs VALUES (1); CREATE TABLE items (x TEXT)",
    "INSERT INTO runs VALUES (2)",
)


def _open_and_migrate(path: str, start, results) -> None:  # type: ignore[no-untyped-def]
    db = connect(path)
    start.wait()
    results.put(migrate(db, _RACING_MIGRATIONS))
    db.close()


def test_two_processes_opening_a_new_file_migrate_it_once(tmp_path):
    path = str(tmp_path / "new.db")
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_open_and_migrate, args=(path, start, results)) for _ in range(2)]
    for p in procs:
        p.start()
    applied = sorted([results.get(timeout=60) for _ in procs])
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert applied == [[], [1, 2, 3]]
    db = connect(path)
    assert schema_version(db) == 3 and db.execute("SELECT n FROM runs ORDER BY n").fetchall() == [(1,), (2,)]


# ----- files written before the stores had schema versions --------------------------------------------
def _old_file(path: Path, schema: str) -> None:
    """A database as the pre-migration code left it: its tables, user_version 0."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(schema)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    db.close()


@pytest.mark.parametrize(
    "migrations",
    [JOB_MIGRATIONS, CACHE_MIGRATIONS, LEDGER_MIGRATIONS, BATCH_MIGRATIONS, IDEMPOTENCY_MIGRATIONS]
    + [CONVERSATION_MIGRATIONS, ProcessedLog.MIGRATIONS],
    ids=["jobstore", "exact_cache", "ledger", "batches", "idempotency", "conversations", "processed_log"],
)
def test_every_store_opens_an_old_file_without_changing_its_tables(tmp_path, migrations):
    path = tmp_path / "old.db"
    _old_file(path, migrations[0])
    before = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    db = connect(path)
    assert migrate(db, migrations) == list(range(1, len(migrations) + 1))
    assert db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == before
    assert migrate(db, migrations) == []


def test_old_files_keep_their_rows(tmp_path):
    jobs = tmp_path / "jobs.db"
    _old_file(jobs, JOB_MIGRATIONS[0])
    raw = sqlite3.connect(jobs, isolation_level=None)
    raw.execute("INSERT INTO jobs VALUES ('job', 0)")
    raw.execute("INSERT INTO items (job_id, custom_id) VALUES ('job', 'a')")
    raw.close()
    with JobStore(jobs) as store:
        assert store.jobs() == ["job"] and store.summary("job") == {"never_submitted": 1}

    keys = tmp_path / "keys.db"
    _old_file(keys, IDEMPOTENCY_MIGRATIONS[0])
    raw = sqlite3.connect(keys, isolation_level=None)
    raw.execute("INSERT INTO idempotency VALUES ('k', 'fp', 'completed', '\"done\"', 0, 1e18, 0)")
    raw.close()
    idempotency = IdempotencyStore(keys)
    assert idempotency.begin("k", "fp").response == '"done"'
    idempotency.close()

    ledger_path = tmp_path / "ledger.sqlite"
    _old_file(ledger_path, LEDGER_MIGRATIONS[0])
    raw = sqlite3.connect(ledger_path, isolation_level=None)
    raw.execute("INSERT INTO grades VALUES ('h', 'f', '{\"score\": 3}', NULL, 0)")
    raw.close()
    with Ledger(ledger_path) as ledger:
        assert ledger.get("h", "f") == ({"score": 3}, None) and ledger.count() == 1

    processed = tmp_path / "processed.db"
    _old_file(processed, ProcessedLog.MIGRATIONS[0])
    raw = sqlite3.connect(processed, isolation_level=None)
    raw.execute("INSERT INTO processed VALUES ('g', 'm1')")
    raw.close()
    log = ProcessedLog(processed)
    assert log.seen("g", "m1") and not log.mark("g", "m1")
    log.close()
