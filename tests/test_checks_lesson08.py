"""Lesson 08 checks: the solutions and correct alternatives pass, plausible wrong answers are rejected."""

from __future__ import annotations

import json
import math

import pytest

from _checks import assert_not_attempted, assert_rejected, passes
from course_utils.architecture.workers import PipelineConfig
from course_utils.context import request_tokens, sliding_window
from course_utils.embeddings import embed_one


# ----- 8.1 ------------------------------------------------------------------------------------
SEEN = "SELECT 1 FROM processed WHERE consumer_group = ? AND message_id = ?"


async def handle_event(event, *, bus, group, db, work):
    key = event.data["message_id"]
    if db.execute(SEEN, (group, key)).fetchone() is None:
        try:
            await work(event, db)
            db.execute("INSERT INTO processed VALUES (?, ?)", (group, key))
            db.commit()
        except BaseException:
            db.rollback()
            raise
    await bus.ack(event.topic, group, event.id)


async def handle_event_claim_first(event, *, bus, group, db, work):
    """Written differently: claim with INSERT OR IGNORE inside `with db:` (the claim rolls back with the work)."""
    with db:
        claimed = db.execute(
            "INSERT OR IGNORE INTO processed VALUES (?, ?)", (group, event.data["message_id"])
        ).rowcount
        if claimed:
            await work(event, db)
    await bus.ack(event.topic, group, event.id)


async def handle_event_with_explicit_begin(event, *, bus, group, db, work):
    """Written differently: an explicit BEGIN IMMEDIATE, a separate inbox check, early return for a duplicate."""
    db.execute("BEGIN IMMEDIATE")
    if db.execute(SEEN, (group, event.data["message_id"])).fetchone():
        db.execute("ROLLBACK")
        return await bus.ack(event.topic, group, event.id)
    try:
        await work(event, db)
    except Exception:
        db.execute("ROLLBACK")
        raise
    db.execute("INSERT INTO processed (consumer_group, message_id) VALUES (?, ?)", (group, event.data["message_id"]))
    db.execute("COMMIT")
    await bus.ack(event.topic, group, event.id)


processed_in_memory = set()


async def in_memory_set(event, *, bus, group, db, work):
    """The old exercise's answer: a Python set, which a restart empties."""
    key = event.data["message_id"]
    if key not in processed_in_memory:
        await work(event, db)
        db.commit()
        processed_in_memory.add(key)
    await bus.ack(event.topic, group, event.id)


async def in_memory_default(event, *, bus, group, db, work, _seen={}):  # noqa: B006 - the wrong answer itself
    """A set hidden in a default argument: still process memory."""
    key = event.data["message_id"]
    if key not in _seen:
        await work(event, db)
        db.commit()
        _seen[key] = True
    await bus.ack(event.topic, group, event.id)


async def table_and_set(event, *, bus, group, db, work):
    """Writes the table but trusts a Python set to skip duplicates: the restart still does the work twice."""
    key = event.data["message_id"]
    if key not in processed_in_memory:
        try:
            await work(event, db)
            db.execute("INSERT OR IGNORE INTO processed VALUES (?, ?)", (group, key))
            db.commit()
        except BaseException:
            db.rollback()
            raise
        processed_in_memory.add(key)
    await bus.ack(event.topic, group, event.id)


async def no_rollback(event, *, bus, group, db, work):
    """Lets the failure propagate but leaves its partial write in the open transaction."""
    key = event.data["message_id"]
    if db.execute(SEEN, (group, key)).fetchone() is None:
        await work(event, db)
        db.execute("INSERT INTO processed VALUES (?, ?)", (group, key))
        db.commit()
    await bus.ack(event.topic, group, event.id)


async def record_before_work(event, *, bus, group, db, work):
    """Commits the inbox row first, then works: a failed work is never retried."""
    key = event.data["message_id"]
    if db.execute(SEEN, (group, key)).fetchone() is None:
        db.execute("INSERT INTO processed VALUES (?, ?)", (group, key))
        db.commit()
        try:
            await work(event, db)
            db.commit()
        except BaseException:
            db.rollback()
            raise
    await bus.ack(event.topic, group, event.id)


async def ack_first(event, *, bus, group, db, work):
    await bus.ack(event.topic, group, event.id)
    await handle_event_body(event, group, db, work)


async def handle_event_body(event, group, db, work):
    key = event.data["message_id"]
    if db.execute(SEEN, (group, key)).fetchone() is None:
        try:
            await work(event, db)
            db.execute("INSERT INTO processed VALUES (?, ?)", (group, key))
            db.commit()
        except BaseException:
            db.rollback()
            raise


async def swallow_and_ack(event, *, bus, group, db, work):
    try:
        await handle_event_body(event, group, db, work)
    except Exception:  # noqa: BLE001 - the plausible wrong answer: "never crash the consumer"
        pass
    await bus.ack(event.topic, group, event.id)


async def ack_before_commit(event, *, bus, group, db, work):
    """Does the work and the inbox row, acks, then commits."""
    key = event.data["message_id"]
    if db.execute(SEEN, (group, key)).fetchone() is None:
        try:
            await work(event, db)
            db.execute("INSERT INTO processed VALUES (?, ?)", (group, key))
        except BaseException:
            db.rollback()
            raise
    await bus.ack(event.topic, group, event.id)
    db.commit()


async def dedupe_on_event_id(event, *, bus, group, db, work):
    if db.execute(SEEN, (group, event.id)).fetchone() is None:
        try:
            await work(event, db)
            db.execute("INSERT INTO processed VALUES (?, ?)", (group, event.id))
            db.commit()
        except BaseException:
            db.rollback()
            raise
    await bus.ack(event.topic, group, event.id)


async def stub(event, *, bus, group, db, work):
    raise NotImplementedError


def test_8_1_solution_and_alternatives_pass():
    passes("8.1", handle_event)
    passes("8.1", handle_event_claim_first)
    passes("8.1", handle_event_with_explicit_begin)


def test_8_1_rejects_a_processed_set_in_process_memory():
    """The incident's own state: a set (module-level, or a default argument) that the restart empties."""
    processed_in_memory.clear()
    assert_rejected("8.1", in_memory_set, "the restarted process did not know it was done")
    processed_in_memory.clear()
    assert_rejected("8.1", in_memory_default, "the restarted process did not know it was done")
    processed_in_memory.clear()
    assert_rejected("8.1", table_and_set, "the restarted process did not know it was done")


def test_8_1_rejects_a_transaction_that_is_not_one():
    assert_rejected("8.1", no_rollback, "half-written answer for m1 was committed")
    assert_rejected("8.1", record_before_work, "message m1 was lost")
    assert_rejected("8.1", ack_before_commit, "acknowledged before it was committed")


def test_8_1_rejects_acking_before_processing():
    assert_rejected("8.1", ack_first, "acknowledged before it was committed")
    assert_rejected("8.1", swallow_and_ack, "message m1 was lost")


def test_8_1_rejects_deduplicating_on_the_event_id():
    assert_rejected("8.1", dedupe_on_event_id, "deduplicated by the event id")


def test_8_1_stub_is_not_attempted():
    assert_not_attempted("8.1", stub)


# ----- 8.2 ------------------------------------------------------------------------------------
def history_within(store, tenant, conversation_id, upto, budget):
    return sliding_window(store.history(tenant, conversation_id, upto=upto), budget)


def history_within_sql(store, tenant, conversation_id, upto, budget):
    """Written differently: the SQL by hand, then whole turns from the newest while they fit."""
    rows = store.db.execute(
        "SELECT message_id, role, content, reply_to FROM messages WHERE tenant = ? AND conversation_id = ? ORDER BY seq",
        (tenant, conversation_id),
    ).fetchall()
    answers = {r[3]: json.loads(r[2]) for r in rows if r[1] == "assistant"}
    turns = []
    for mid, role, content, _ in rows:
        if mid == upto:
            current = [{"role": "user", "content": json.loads(content)}]
            break
        if role == "user" and mid in answers:
            turns.append(
                [{"role": "user", "content": json.loads(content)}, {"role": "assistant", "content": answers[mid]}]
            )
    kept = current
    for turn in reversed(turns):
        if request_tokens({"messages": turn + kept}) > budget:
            break
        kept = turn + kept
    return kept


def history_without_tenant(store, tenant, conversation_id, upto, budget):
    rows = store.db.execute(
        "SELECT message_id, role, content FROM messages WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
    ).fetchall()
    out = [{"role": role, "content": json.loads(content)} for mid, role, content in rows if mid != upto]
    return out + [{"role": "user", "content": store.message(tenant, upto).content}]


def history_over_budget(store, tenant, conversation_id, upto, budget):
    return store.history(tenant, conversation_id, upto=upto)


def history_within_returning_empty(store, tenant, conversation_id, upto, budget):
    """Written differently: turns by index arithmetic over store.history, [] when nothing fits."""
    msgs = store.history(tenant, conversation_id, upto=upto)
    for start in range(0, len(msgs), 2):  # msgs[start:] keeps whole turns and ends with `upto`
        if request_tokens({"messages": msgs[start:]}) <= budget:
            return msgs[start:]
    return []


def drops_single_messages(store, tenant, conversation_id, upto, budget):
    """Trims one message at a time from the oldest: a history can start with an assistant message."""
    msgs = store.history(tenant, conversation_id, upto=upto)
    while msgs and request_tokens({"messages": msgs}) > budget:
        msgs = msgs[1:]
    return msgs


def keeps_the_oldest_turns(store, tenant, conversation_id, upto, budget):
    msgs = store.history(tenant, conversation_id, upto=upto)
    kept = [msgs[-1]]
    for i in range(0, len(msgs) - 1, 2):
        if request_tokens({"messages": kept[:-1] + msgs[i : i + 2] + kept[-1:]}) > budget:
            break
        kept = kept[:-1] + msgs[i : i + 2] + kept[-1:]
    return kept


def off_by_one_budget(store, tenant, conversation_id, upto, budget):
    """Keeps turns while they stay strictly under the budget: a history that fits exactly loses a turn."""
    msgs = store.history(tenant, conversation_id, upto=upto)
    try:
        return sliding_window(msgs, budget - 1)
    except Exception:
        return msgs[-1:]


def sends_older_turns_when_nothing_fits(store, tenant, conversation_id, upto, budget):
    msgs = store.history(tenant, conversation_id, upto=upto)
    try:
        return sliding_window(msgs, budget)
    except Exception:
        return msgs[-3:]


def through_the_store(store, tenant, conversation_id, upto, budget):
    return store.history_within(tenant, conversation_id, budget, upto=upto)


def test_8_2_solution_and_an_alternative_pass():
    passes("8.2", history_within)
    passes("8.2", history_within_sql)
    passes("8.2", history_within_returning_empty)


def test_8_2_rejects_a_missing_tenant_filter_and_going_over_the_budget():
    assert_rejected("8.2", history_without_tenant, "messages of tenant 'globex'")
    assert_rejected("8.2", history_over_budget, "over the budget of")


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (drops_single_messages, "with a budget of"),
        (keeps_the_oldest_turns, "with a budget of"),
        (off_by_one_budget, "with a budget of"),
        (sends_older_turns_when_nothing_fits, "one less than the new message alone"),
        (through_the_store, "your function called DeskStore.history_within"),
    ],
)
def test_8_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("8.2", answer, phrase)


# ----- 8.3 ------------------------------------------------------------------------------------
SQL = "SELECT doc_id FROM docs WHERE embedding MATCH ? AND k = ? AND tenant = ? ORDER BY distance"


def retrieve(index, tenant, question, k):
    rows = index.db.execute(SQL, (embed_one(question).tobytes(), k, tenant)).fetchall()
    return [row[0] for row in rows]


def retrieve_with_the_library(index, tenant, question, k):
    """The shortcut: the reference index's own search."""
    return [hit.doc_id for hit in index.search(tenant, question, k=k)]


def retrieve_with_numpy(index, tenant, question, k):
    """Written differently, with a well-known library: the tenant's vectors out of sqlite-vec, cosine by numpy."""
    import numpy as np

    rows = index.db.execute("SELECT doc_id, embedding FROM docs WHERE tenant = ?", (tenant,)).fetchall()
    ids = [r[0] for r in rows]
    vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
    q = embed_one(question).astype(np.float32)
    similarity = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
    return [ids[i] for i in np.argsort(-similarity, kind="stable")[:k]]


def retrieve_with_a_full_scan(index, tenant, question, k):
    """Written differently: no KNN index, sqlite-vec's distance function over the tenant's rows."""
    rows = index.db.execute(
        "SELECT doc_id, vec_distance_cosine(embedding, ?) AS d FROM docs WHERE tenant = ? ORDER BY d, doc_id LIMIT ?",
        (embed_one(question).tobytes(), tenant, k),
    ).fetchall()
    return [row[0] for row in rows]


def alphabetical(index, tenant, question, k):
    return sorted(retrieve(index, tenant, question, k))


def returns_the_texts(index, tenant, question, k):
    rows = index.db.execute(
        "SELECT text FROM docs WHERE embedding MATCH ? AND k = ? AND tenant = ? ORDER BY distance",
        (embed_one(question).tobytes(), k, tenant),
    ).fetchall()
    return [row[0] for row in rows]


def one_extra(index, tenant, question, k):
    return retrieve(index, tenant, question, k + 1)


def always_three(index, tenant, question, k):
    return retrieve(index, tenant, question, 3)


def filter_after_top_k(index, tenant, question, k):
    rows = index.db.execute(
        "SELECT doc_id, tenant FROM docs WHERE embedding MATCH ? AND k = ? ORDER BY distance",
        (embed_one(question).tobytes(), k),
    ).fetchall()
    return [doc for doc, owner in rows if owner == tenant]


def no_filter(index, tenant, question, k):
    rows = index.db.execute(
        "SELECT doc_id FROM docs WHERE embedding MATCH ? AND k = ? ORDER BY distance",
        (embed_one(question).tobytes(), k),
    ).fetchall()
    return [row[0] for row in rows]


def farthest_first(index, tenant, question, k):
    return list(reversed(retrieve(index, tenant, question, 12)))[:k]


def test_8_3_solution_and_an_alternative_pass():
    passes("8.3", retrieve)
    passes("8.3", retrieve_with_numpy)
    passes("8.3", retrieve_with_a_full_scan)


def test_8_3_rejects_a_fixed_k_and_the_library_search():
    assert_rejected("8.3", always_three, "retrieve returned 3 documents for k=1")
    assert_rejected("8.3", one_extra, "retrieve returned 2 documents for k=1")
    assert_rejected("8.3", alphabetical, "Order the results by distance")
    assert_rejected("8.3", returns_the_texts, "retrieve returned other tenants' documents")
    assert_rejected("8.3", retrieve_with_the_library, "your function called VectorIndex.search")


def test_8_3_rejects_filtering_after_top_k_and_no_filter():
    assert_rejected("8.3", filter_after_top_k, "the tenant filter ran after the top-k")
    assert_rejected("8.3", no_filter, "other tenants' documents")


def test_8_3_rejects_a_wrong_order():
    assert_rejected("8.3", farthest_first, "recall@3 is")


def test_8_3_stub_is_not_attempted():
    def stub(index, tenant, question, k):
        raise NotImplementedError

    assert_not_attempted("8.3", stub)


# ----- 8.4 ------------------------------------------------------------------------------------
def wire_pipeline():
    return {"config": PipelineConfig(fallback_model="claude-haiku-5-5", max_attempts=3), "model_consumers": 8}


def wire_pipeline_alternative():
    """Written differently: more attempts, a stricter breaker, fewer but enough workers."""
    breaker = {"failure_rate": 0.4, "min_calls": 4, "window_s": 20.0, "cooldown_s": 15.0}
    return {
        "config": PipelineConfig(fallback_model="claude-haiku-5-5", max_attempts=4, breaker=breaker),
        "model_consumers": 6,
    }


def wire_without_fallback():
    return {"config": PipelineConfig(fallback_model=None, max_attempts=3), "model_consumers": 8}


def wire_without_retries():
    return {"config": PipelineConfig(fallback_model="claude-haiku-5-5", max_attempts=1), "model_consumers": 8}


def wire_too_few_workers():
    return {"config": PipelineConfig(fallback_model="claude-haiku-5-5", max_attempts=3), "model_consumers": 2}


def wire_as_kwargs():
    return {"config": {"fallback_model": "claude-haiku-5-5"}, "model_consumers": 8}


def test_8_4_solution_and_an_alternative_pass():
    passes("8.4", wire_pipeline)
    passes("8.4", wire_pipeline_alternative)


def test_8_4_rejects_no_fallback_and_no_retries():
    assert_rejected("8.4", wire_without_fallback, "failed while the primary model was down")
    assert_rejected("8.4", wire_without_retries, "failed while the primary model was down")


def test_8_4_rejects_too_few_workers():
    assert_rejected("8.4", wire_too_few_workers, "p95 time to first token is")


def test_8_4_rejects_settings_of_the_wrong_shape():
    assert_rejected("8.4", wire_as_kwargs, "is not a PipelineConfig")
    assert_rejected("8.4", lambda: {"config": PipelineConfig(), "model_consumers": 0}, "model_consumers must be")
    assert_rejected("8.4", lambda: None, "must return a dict")


def test_8_4_stub_is_not_attempted():
    def stub():
        raise NotImplementedError

    assert_not_attempted("8.4", stub)


# ----- 8.5 ------------------------------------------------------------------------------------
def capacity(p):
    return (
        min(p.rpm, p.itpm / p.input_tokens_per_turn, p.otpm / p.output_tokens_per_turn, p.workers * 60 / p.latency_s)
        / p.turns_per_conversation
    )


def capacity_per_second_then_scaled(p):
    """Written differently: the rates per second, the conversations' duration, then per minute."""
    turns_per_s = min(p.rpm / 60, p.itpm / 60 / p.input_tokens_per_turn, p.otpm / 60 / p.output_tokens_per_turn)
    turns_per_s = min(turns_per_s, p.workers / p.latency_s)
    seconds_per_conversation = p.turns_per_conversation / turns_per_s
    return 60 / seconds_per_conversation


def capacity_rpm_only(p):
    return min(p.rpm, p.workers * 60 / p.latency_s) / p.turns_per_conversation


def capacity_ignoring_turns(p):
    return min(p.rpm, p.itpm / p.input_tokens_per_turn, p.otpm / p.output_tokens_per_turn, p.workers * 60 / p.latency_s)


def capacity_ignoring_workers(p):
    return min(p.rpm, p.itpm / p.input_tokens_per_turn, p.otpm / p.output_tokens_per_turn) / p.turns_per_conversation


def capacity_per_second(p):
    return capacity(p) / 60


def capacity_without_output(p):
    return min(p.rpm, p.itpm / p.input_tokens_per_turn, p.workers * 60 / p.latency_s) / p.turns_per_conversation


def capacity_with_fractions(p):
    """Written differently: exact fractions for every limit, per conversation from the start."""
    from fractions import Fraction as F

    per_conversation = [
        F(p.rpm) / p.turns_per_conversation,
        F(p.itpm) / (p.input_tokens_per_turn * p.turns_per_conversation),
        F(p.otpm) / (p.output_tokens_per_turn * p.turns_per_conversation),
        F(p.workers * 60) / (F(p.latency_s) * p.turns_per_conversation),
    ]
    return float(min(per_conversation))


def capacity_loosest_limit(p):
    """Takes the largest limit instead of the smallest: the one that binds is the tightest."""
    return (
        max(p.rpm, p.itpm / p.input_tokens_per_turn, p.otpm / p.output_tokens_per_turn, p.workers * 60 / p.latency_s)
        / p.turns_per_conversation
    )


def capacity_workers_per_second(p):
    """Little's law in seconds mixed with limits per minute: the worker limit is 60 times too small."""
    return (
        min(p.rpm, p.itpm / p.input_tokens_per_turn, p.otpm / p.output_tokens_per_turn, p.workers / p.latency_s)
        / p.turns_per_conversation
    )


def capacity_rounded_down(p):
    return float(math.floor(capacity(p)))


def capacity_through_the_library(p):
    from course_utils.architecture.capacity import conversations_per_minute

    return conversations_per_minute(p)


def test_8_5_rejects_the_library_formula():
    assert_rejected("8.5", capacity_through_the_library, "your function called architecture.conversations_per_minute")


def test_8_5_rejects_a_rounded_figure():
    assert_rejected("8.5", capacity_rounded_down, "conversations per minute; the simulation sustained")
    assert_rejected("8.5", capacity_loosest_limit, "that is the loosest limit: the smallest one binds")
    assert_rejected("8.5", capacity_workers_per_second, "times 60 per minute")


def test_8_5_solution_and_an_alternative_pass():
    passes("8.5", capacity_with_fractions)
    passes("8.5", capacity)
    passes("8.5", capacity_per_second_then_scaled)


def test_8_5_rejects_ignoring_the_binding_token_limit():
    assert_rejected("8.5", capacity_rpm_only, "with ITPM binding")
    assert_rejected("8.5", capacity_without_output, "with OTPM binding")


def test_8_5_rejects_ignoring_turns_and_workers_and_a_per_second_figure():
    assert_rejected("8.5", capacity_ignoring_turns, "a conversation is 5 turns")
    assert_rejected("8.5", capacity_ignoring_workers, "with the worker pool (Little's law) binding")
    assert_rejected("8.5", capacity_per_second, "a per-second figure")


def test_8_5_accepts_a_numpy_number_and_rejects_no_number():
    import numpy as np

    passes("8.5", lambda p: np.float64(capacity(p)))
    assert_rejected("8.5", lambda p: None, "must return a finite number")
    assert_rejected("8.5", lambda p: float("inf"), "must return a finite number")


def test_8_5_plans_exercise_the_limit_they_are_named_for():
    from course_utils.architecture.capacity import binding_limit
    from course_utils.checks.lesson08 import PLANS

    assert {name: binding_limit(p) for name, p in PLANS.items()} == {name: name for name in PLANS}


def test_8_5_stub_is_not_attempted():
    def stub(p):
        raise NotImplementedError

    assert_not_attempted("8.5", stub)
