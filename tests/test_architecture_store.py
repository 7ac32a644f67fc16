"""The conversation store: tenant isolation, idempotent writes, migrations, restarts, budgets."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from course_utils.sqlite_store import SchemaTooNew, migrate, schema_version
from course_utils.architecture.store import MIGRATIONS, DeskStore, StoreError
from course_utils.context import ContextBudgetExceeded, request_tokens


def _turns(store: DeskStore, tenant: str, conv: str, n: int, words: int = 5) -> list[str]:
    ids = []
    for i in range(n):
        user = store.add_message(tenant, conv, "user", f"question {i} " + "word " * words, message_id=f"{conv}-{i}")
        store.save_answer(tenant, conv, user.message_id, f"answer {i} " + "word " * words)
        ids.append(user.message_id)
    return ids


def test_history_is_the_tenants_own_conversation_in_order():
    store = DeskStore()
    _turns(store, "acme", "c1", 2)
    store.add_message("globex", "c1", "user", "globex secret", message_id="g-1")
    history = store.history("acme", "c1")
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    assert history[0]["content"].startswith("question 0") and history[3]["content"].startswith("answer 1")
    assert "globex secret" not in str(history)
    assert store.history("globex", "c1", upto="g-1") == [{"role": "user", "content": "globex secret"}]
    assert store.conversations("acme") == ["c1"] and store.conversations("initech") == []


def test_no_call_reads_across_tenants():
    store = DeskStore()
    (mid,) = _turns(store, "acme", "c1", 1)
    assert store.message("globex", mid) is None
    assert store.answer_for("globex", mid) is None
    assert store.messages("globex", "c1") == []
    with pytest.raises(StoreError, match="no user message"):
        store.history("globex", "c1", upto=mid)
    with pytest.raises(StoreError, match="has no message"):
        store.save_answer("globex", "c1", mid, "cross-tenant answer")
    for bad in ("", "  ", None):
        with pytest.raises(StoreError, match="needs a tenant"):
            store.history(bad, "c1")  # type: ignore[arg-type]


def test_writes_are_idempotent_on_their_business_keys():
    store = DeskStore()
    first = store.add_message("acme", "c1", "user", "hello", message_id="m1")
    again = store.add_message("acme", "c1", "user", "hello", message_id="m1")
    assert again == first and len(store.messages("acme", "c1")) == 1
    answer = store.save_answer("acme", "c1", "m1", "first answer")
    assert store.save_answer("acme", "c1", "m1", "a redelivered, different answer") == answer
    assert store.answer_for("acme", "m1").content == "first answer"
    cost = Decimal("0.01")
    assert store.record_usage("acme", "c1", "m1", model="m", input_tokens=10, output_tokens=5, cost_usd=cost)
    assert not store.record_usage("acme", "c1", "m1", model="m", input_tokens=10, output_tokens=5, cost_usd=cost)
    assert [u.cost_usd for u in store.usage("acme")] == [cost] and store.usage("globex") == []


def test_bad_input_gets_a_clear_error_and_loses_nothing():
    store = DeskStore()
    store.add_message("acme", "c1", "user", "hello", message_id="m1")
    with pytest.raises(StoreError, match="different role or content"):
        store.add_message("acme", "c1", "user", "something else", message_id="m1")
    with pytest.raises(StoreError, match="already belongs to conversation"):
        store.add_message("acme", "c2", "user", "hello", message_id="m1")
    with pytest.raises(StoreError, match="role must be"):
        store.add_message("acme", "c1", "system", "x")
    with pytest.raises(StoreError, match="non-empty"):
        store.add_message("acme", "c1", "user", "   ")
    assert [m.content for m in store.messages("acme", "c1")] == ["hello"]


def test_conversations_survive_a_restart(tmp_path):
    path = tmp_path / "conversations.db"
    with DeskStore(path) as store:
        _turns(store, "acme", "c1", 3)
        before = store.history("acme", "c1")
        assert store.applied_migrations == [1, 2, 3, 4, 5]
    with DeskStore(path) as reopened:  # a new process would see the same file
        assert reopened.history("acme", "c1") == before
        assert reopened.applied_migrations == [] and reopened.schema_version == len(MIGRATIONS)


def test_migrations_upgrade_an_old_file_and_refuse_a_newer_one(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, MIGRATIONS[:1]) == [1]  # a file written by version-1 code
    db.execute("INSERT INTO conversations VALUES ('acme', 'c1', 0)")
    db.close()
    with DeskStore(path) as store:
        assert store.applied_migrations == [2, 3, 4, 5]
        assert store.conversations("acme") == ["c1"]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaTooNew, match="schema version 99"):
        migrate(db, MIGRATIONS)
    db.close()


def test_a_failing_migration_rolls_back_entirely():
    db = sqlite3.connect(":memory:", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y INTEGER); CREATE TABLE a (oops);"])
    assert schema_version(db) == 0
    assert db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == []


def test_history_within_keeps_the_newest_whole_turns_under_the_budget():
    store = DeskStore()
    ids = _turns(store, "acme", "c1", 8, words=30)
    current = store.add_message("acme", "c1", "user", "the newest question", message_id="now")
    budget = 400
    kept = store.history_within("acme", "c1", budget, upto=current.message_id, system="You help.")
    assert request_tokens({"system": "You help.", "messages": kept}) <= budget
    assert kept[-1] == {"role": "user", "content": "the newest question"}
    assert 1 < len(kept) < 2 * len(ids) + 1  # something dropped, something kept
    full = store.history("acme", "c1", upto="now")
    assert kept == full[len(full) - len(kept) :]  # the newest, whole turns
    assert kept[0]["role"] == "user"
    with pytest.raises(ContextBudgetExceeded):
        store.history_within("acme", "c1", 5, upto="now")


def test_history_upto_an_old_message_is_the_history_it_had():
    store = DeskStore()
    ids = _turns(store, "acme", "c1", 3)
    history = store.history("acme", "c1", upto=ids[1])
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[-1]["content"].startswith("question 1")


def test_the_outbox_commits_with_the_message_and_only_for_a_new_one():
    """The transactional outbox: the event is written in the message's transaction; a retried add of the same
    message writes no second event; a failed transaction writes neither."""
    store = DeskStore()
    store.add_message("acme", "c1", "user", "hi", message_id="m1", outbox=("message.received", {"message_id": "m1"}))
    store.add_message("acme", "c1", "user", "hi", message_id="m1", outbox=("message.received", {"message_id": "m1"}))
    assert [(topic, data) for _, topic, data in store.unpublished()] == [("message.received", {"message_id": "m1"})]
    with pytest.raises(StoreError):  # a bad role: the transaction rolls back, the event with it
        store.add_message("acme", "c1", "robot", "x", message_id="m2", outbox=("message.received", {}))
    assert len(store.unpublished()) == 1
    seq = store.unpublished()[0][0]
    assert store.mark_published(seq, "7-0") and not store.mark_published(seq, "8-0")
    assert store.unpublished() == [] and store.outbox_event_id("acme", "m1") == "7-0"


def test_the_inbox_is_per_group_and_tenant_and_survives_a_reopen(tmp_path):
    path = tmp_path / "desk.db"
    with DeskStore(path) as store:
        assert store.mark_processed("model", "acme", "m1") and not store.mark_processed("model", "acme", "m1")
    with DeskStore(path) as store:
        assert store.processed("model", "acme", "m1")
        assert not store.processed("metering", "acme", "m1") and not store.processed("model", "globex", "m1")


def test_money_is_stored_and_summed_exactly(tmp_path):
    """0.1 + 0.2 is 0.30000000000000004 in floats; the store keeps the Decimal's text, so it is 0.3."""
    with DeskStore(tmp_path / "desk.db") as store:
        for mid, cost in (("m1", Decimal("0.1")), ("m2", "0.2"), ("m3", Decimal("0.000000375"))):
            store.record_usage("acme", "c1", mid, model="m", input_tokens=1, output_tokens=1, cost_usd=cost)
    with DeskStore(tmp_path / "desk.db") as reopened:
        costs = [u.cost_usd for u in reopened.usage("acme")]
        assert all(isinstance(c, Decimal) for c in costs)
        assert costs[0] + costs[1] == Decimal("0.3") and costs[2] == Decimal("0.000000375")
        assert reopened.db.execute("SELECT typeof(cost_usd) FROM usage").fetchall() == [("text",)] * 3


@pytest.mark.parametrize("bad", [0.01, float("nan"), True, None])
def test_a_float_cost_is_refused_and_nothing_is_recorded(bad):
    store = DeskStore()
    with pytest.raises(TypeError, match="money is exact"):
        store.record_usage("acme", "c1", "m1", model="m", input_tokens=1, output_tokens=1, cost_usd=bad)
    with pytest.raises(StoreError, match="finite"):
        store.record_usage("acme", "c1", "m1", model="m", input_tokens=1, output_tokens=1, cost_usd="NaN")
    assert store.usage("acme") == []


def test_a_version_4_file_with_float_costs_opens_with_exact_costs(tmp_path):
    """The file of the code before money was exact: cost_usd REAL. Migration 5 keeps every row, in order."""
    path = tmp_path / "v4.db"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, MIGRATIONS[:4]) == [1, 2, 3, 4]
    rows = [("m1", 0.1, "req_1"), ("m2", 0.2, None), ("m3", 0.000375, "req_3")]
    for mid, cost, request_id in rows:
        db.execute("INSERT INTO usage VALUES ('acme', ?, 'c1', 'm', 10, 5, 0, ?, 0, ?)", (mid, float(cost), request_id))
    db.close()
    with DeskStore(path) as store:
        assert store.applied_migrations == [5]
        usage = store.usage("acme")
        assert [(u.message_id, u.cost_usd, u.request_id) for u in usage] == [
            ("m1", Decimal("0.1"), "req_1"),
            ("m2", Decimal("0.2"), None),
            ("m3", Decimal("0.000375"), "req_3"),
        ]
        assert usage[0].cost_usd + usage[1].cost_usd == Decimal("0.3")
        assert (usage[0].input_tokens, usage[0].output_tokens, usage[0].model) == (10, 5, "m")
