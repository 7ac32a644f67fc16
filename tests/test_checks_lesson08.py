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
KNN = "SELECT text FROM docs WHERE embedding MATCH ? AND k = ? AND tenant = ? ORDER BY distance"


def build_request(store, index, tenant, conversation_id, upto, *, budget, k):
    question = store.message(tenant, upto).content
    rows = index.db.execute(KNN, (embed_one(question).tobytes(), k, tenant)).fetchall()
    system = f"You are the support assistant of {tenant}. Answer from these articles:\n\n" + "\n\n".join(
        row[0] for row in rows
    )
    messages = sliding_window(store.history(tenant, conversation_id, upto=upto), budget, system=system)
    return {"system": system, "messages": messages}


def build_request_by_hand(store, index, tenant, conversation_id, upto, *, budget, k):
    """Written differently: numpy cosine over the tenant's rows, the SQL history by hand, turns kept while
    the whole request fits, [] when nothing does."""
    import numpy as np

    rows = store.db.execute(
        "SELECT message_id, role, content, reply_to FROM messages WHERE tenant = ? AND conversation_id = ? ORDER BY seq",
        (tenant, conversation_id),
    ).fetchall()
    answers = {r[3]: json.loads(r[2]) for r in rows if r[1] == "assistant"}
    turns = []
    for mid, role, content, _ in rows:
        if mid == upto:
            question = json.loads(content)
            break
        if role == "user" and mid in answers:
            turns.append(
                [{"role": "user", "content": json.loads(content)}, {"role": "assistant", "content": answers[mid]}]
            )
    docs = index.db.execute("SELECT text, embedding FROM docs WHERE tenant = ?", (tenant,)).fetchall()
    vectors = np.stack([np.frombuffer(d[1], dtype=np.float32) for d in docs])
    q = embed_one(question).astype(np.float32)
    similarity = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
    chosen = [docs[i][0] for i in np.argsort(-similarity, kind="stable")[:k]]
    system = "Use only these help-centre articles.\n" + "\n---\n".join(chosen)
    kept = [{"role": "user", "content": question}]
    if request_tokens({"system": system, "messages": kept}) > budget:
        return {"system": system, "messages": []}
    for turn in reversed(turns):
        if request_tokens({"system": system, "messages": turn + kept}) > budget:
            break
        kept = turn + kept
    return {"system": system, "messages": kept}


def _system(index, tenant, question, k, sql=KNN):
    rows = index.db.execute(sql, (embed_one(question).tobytes(), k, tenant)).fetchall()
    return "Articles:\n\n" + "\n\n".join(row[0] for row in rows)


def request_budget_without_system(store, index, tenant, conversation_id, upto, *, budget, k):
    """The history within the budget, the system prompt added on top: the request is over it."""
    system = _system(index, tenant, store.message(tenant, upto).content, k)
    return {"system": system, "messages": sliding_window(store.history(tenant, conversation_id, upto=upto), budget)}


def request_knn_without_tenant(store, index, tenant, conversation_id, upto, *, budget, k):
    sql = "SELECT text FROM docs WHERE embedding MATCH ? AND k = ? ORDER BY distance"
    rows = index.db.execute(sql, (embed_one(store.message(tenant, upto).content).tobytes(), k)).fetchall()
    system = "Articles:\n\n" + "\n\n".join(row[0] for row in rows)
    return {"system": system, "messages": sliding_window(store.history(tenant, conversation_id, upto=upto), budget,
                                                         system=system)}  # fmt: skip


def request_filter_after_top_k(store, index, tenant, conversation_id, upto, *, budget, k):
    sql = "SELECT text, tenant FROM docs WHERE embedding MATCH ? AND k = ? ORDER BY distance"
    rows = index.db.execute(sql, (embed_one(store.message(tenant, upto).content).tobytes(), k)).fetchall()
    system = "Articles:\n\n" + "\n\n".join(text for text, owner in rows if owner == tenant)
    return {"system": system, "messages": sliding_window(store.history(tenant, conversation_id, upto=upto), budget,
                                                         system=system)}  # fmt: skip


def request_history_without_tenant(store, index, tenant, conversation_id, upto, *, budget, k):
    system = _system(index, tenant, store.message(tenant, upto).content, k)
    rows = store.db.execute(
        "SELECT message_id, role, content FROM messages WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
    ).fetchall()
    history = [{"role": r, "content": json.loads(c)} for mid, r, c in rows if mid != upto]
    history.append({"role": "user", "content": store.message(tenant, upto).content})
    return {"system": system, "messages": history}


def request_always_three_articles(store, index, tenant, conversation_id, upto, *, budget, k):
    system = _system(index, tenant, store.message(tenant, upto).content, 3)
    return {"system": system, "messages": sliding_window(store.history(tenant, conversation_id, upto=upto), budget,
                                                         system=system)}  # fmt: skip


def request_sends_older_turns_when_nothing_fits(store, index, tenant, conversation_id, upto, *, budget, k):
    system = _system(index, tenant, store.message(tenant, upto).content, k)
    history = store.history(tenant, conversation_id, upto=upto)
    try:
        return {"system": system, "messages": sliding_window(history, budget, system=system)}
    except Exception:
        return {"system": system, "messages": history[-3:]}


def request_through_the_library(store, index, tenant, conversation_id, upto, *, budget, k):
    hits = index.search(tenant, store.message(tenant, upto).content, k=k)
    system = "\n\n".join(h.text for h in hits)
    return {"system": system, "messages": store.history_within(tenant, conversation_id, budget, upto=upto,
                                                                system=system)}  # fmt: skip


def request_as_a_list(store, index, tenant, conversation_id, upto, *, budget, k):
    return store.history(tenant, conversation_id, upto=upto)


def test_8_2_solution_and_an_alternative_pass():
    passes("8.2", build_request)
    passes("8.2", build_request_by_hand)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (request_budget_without_system, "the system prompt counts too"),
        (request_knn_without_tenant, "carries other tenants' articles"),
        (request_filter_after_top_k, "the tenant filter ran after the top-k"),
        (request_history_without_tenant, "messages of tenant 'globex'"),
        (request_always_three_articles, "for k=1"),
        (request_sends_older_turns_when_nothing_fits, "one less than the system prompt and the new message"),
        (request_through_the_library, "your function called"),
        (request_as_a_list, "must return a dict with 'system'"),
    ],
)
def test_8_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("8.2", answer, phrase)


def test_8_2_stub_is_not_attempted():
    def stub(store, index, tenant, conversation_id, upto, *, budget, k):
        raise NotImplementedError

    assert_not_attempted("8.2", stub)


# ----- 8.3 ------------------------------------------------------------------------------------
MODEL = "claude-sonnet-5-5"


def _text(reply):
    return "".join(block.text for block in reply.content if block.type == "text")


async def answer_event(event, *, bus, group, db, store, index, client, budget, k):
    tenant, conversation_id, message_id = (event.data[f] for f in ("tenant", "conversation_id", "message_id"))

    async def work(event, db):
        request = build_request(store, index, tenant, conversation_id, message_id, budget=budget, k=k)
        reply = await client.messages.create(model=MODEL, max_tokens=300, **request)
        db.execute("INSERT INTO answers VALUES (?, ?)", (message_id, _text(reply)))

    await handle_event(event, bus=bus, group=group, db=db, work=work)


async def answer_event_streamed(event, *, bus, group, db, store, index, client, budget, k):
    """Written differently: the other 8.1 and 8.2 answers, a streamed call, the work as a partial."""
    import functools

    async def work(event, db, *, tenant, conversation_id, message_id):
        request = build_request_by_hand(store, index, tenant, conversation_id, message_id, budget=budget, k=k)
        async with client.messages.stream(model=MODEL, max_tokens=300, **request) as stream:
            reply = await stream.get_final_message()
        db.execute("INSERT INTO answers (message_id, text) VALUES (?, ?)", (message_id, _text(reply)))

    await handle_event_claim_first(event, bus=bus, group=group, db=db, work=functools.partial(work, **event.data))


async def model_call_outside_the_inbox(event, *, bus, group, db, store, index, client, budget, k):
    """Calls the model first, then hands only the write to the consumer: a redelivery calls it again."""
    d = event.data
    request = build_request(store, index, d["tenant"], d["conversation_id"], d["message_id"], budget=budget, k=k)
    reply = await client.messages.create(model=MODEL, max_tokens=300, **request)

    async def work(event, db):
        db.execute("INSERT INTO answers VALUES (?, ?)", (d["message_id"], _text(reply)))

    await handle_event(event, bus=bus, group=group, db=db, work=work)


async def adds_a_house_style(event, *, bus, group, db, store, index, client, budget, k):
    """Prepends an instruction after the request was fitted to the budget: it is over the budget."""
    d = event.data
    style = (
        "House style: be warm, name the customer's product, give numbered steps, and end by offering more help. " * 4
    )

    async def work(event, db):
        request = build_request(store, index, d["tenant"], d["conversation_id"], d["message_id"], budget=budget, k=k)
        request["system"] = style + request["system"]
        reply = await client.messages.create(model=MODEL, max_tokens=300, **request)
        db.execute("INSERT INTO answers VALUES (?, ?)", (d["message_id"], _text(reply)))

    await handle_event(event, bus=bus, group=group, db=db, work=work)


async def no_budget(event, *, bus, group, db, store, index, client, budget, k):
    """Leaves the budget to 8.2's check: sends the whole history."""
    d = event.data

    async def work(event, db):
        request = build_request(store, index, d["tenant"], d["conversation_id"], d["message_id"], budget=10**6, k=k)
        reply = await client.messages.create(model=MODEL, max_tokens=300, **request)
        db.execute("INSERT INTO answers VALUES (?, ?)", (d["message_id"], _text(reply)))

    await handle_event(event, bus=bus, group=group, db=db, work=work)


async def tenantless_retrieval(event, *, bus, group, db, store, index, client, budget, k):
    d = event.data

    async def work(event, db):
        request = request_knn_without_tenant(store, index, d["tenant"], d["conversation_id"], d["message_id"],
                                             budget=budget, k=k)  # fmt: skip
        reply = await client.messages.create(model=MODEL, max_tokens=300, **request)
        db.execute("INSERT INTO answers VALUES (?, ?)", (d["message_id"], _text(reply)))

    await handle_event(event, bus=bus, group=group, db=db, work=work)


async def answers_the_latest_message(event, *, bus, group, db, store, index, client, budget, k):
    """Answers the conversation's latest user message, not the event's: a redelivery sends another request."""
    d = event.data
    latest = [m for m in store.messages(d["tenant"], d["conversation_id"]) if m.role == "user"][-1].message_id

    async def work(event, db):
        request = build_request(store, index, d["tenant"], d["conversation_id"], latest, budget=budget, k=k)
        reply = await client.messages.create(model=MODEL, max_tokens=300, **request)
        db.execute("INSERT INTO answers VALUES (?, ?)", (d["message_id"], _text(reply)))

    await handle_event(event, bus=bus, group=group, db=db, work=work)


async def dedupes_in_memory(event, *, bus, group, db, store, index, client, budget, k):
    """The 8.1 answer with a Python set, composed: the restart calls the model again."""
    d = event.data

    async def work(event, db):
        request = build_request(store, index, d["tenant"], d["conversation_id"], d["message_id"], budget=budget, k=k)
        reply = await client.messages.create(model=MODEL, max_tokens=300, **request)
        db.execute("INSERT INTO answers VALUES (?, ?)", (d["message_id"], _text(reply)))

    await in_memory_set(event, bus=bus, group=group, db=db, work=work)


async def stores_the_whole_reply(event, *, bus, group, db, store, index, client, budget, k):
    d = event.data

    async def work(event, db):
        request = build_request(store, index, d["tenant"], d["conversation_id"], d["message_id"], budget=budget, k=k)
        reply = await client.messages.create(model=MODEL, max_tokens=300, **request)
        db.execute("INSERT INTO answers VALUES (?, ?)", (d["message_id"], reply.model_dump_json()))

    await handle_event(event, bus=bus, group=group, db=db, work=work)


async def reads_the_first_block(event, *, bus, group, db, store, index, client, budget, k):
    """content[0].text: the reply starts with a thinking block, so every attempt fails and nothing is stored."""
    d = event.data

    async def work(event, db):
        request = build_request(store, index, d["tenant"], d["conversation_id"], d["message_id"], budget=budget, k=k)
        reply = await client.messages.create(model=MODEL, max_tokens=300, **request)
        db.execute("INSERT INTO answers VALUES (?, ?)", (d["message_id"], reply.content[0].text))

    await handle_event(event, bus=bus, group=group, db=db, work=work)


async def fixed_k(event, *, bus, group, db, store, index, client, budget, k):
    """Three articles whatever k says."""
    d = event.data

    async def work(event, db):
        request = build_request(store, index, d["tenant"], d["conversation_id"], d["message_id"], budget=budget, k=3)
        reply = await client.messages.create(model=MODEL, max_tokens=300, **request)
        db.execute("INSERT INTO answers VALUES (?, ?)", (d["message_id"], _text(reply)))

    await handle_event(event, bus=bus, group=group, db=db, work=work)


def test_8_3_solution_and_an_alternative_pass():
    passes("8.3", answer_event)
    passes("8.3", answer_event_streamed)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (model_call_outside_the_inbox, "it was charged twice"),
        (adds_a_house_style, "over the budget of 600 input tokens"),
        (no_budget, "over the budget of 600 input tokens"),
        (tenantless_retrieval, "carried other tenants' articles"),
        (answers_the_latest_message, "the conversation's latest message, not the event's"),
        (dedupes_in_memory, "it was charged twice"),
        (stores_the_whole_reply, "the answers table holds"),
        (fixed_k, "carried 3 help-centre articles, with k=2"),
        (reads_the_first_block, "'ThinkingBlock' object has no attribute 'text'"),
    ],
)
def test_8_3_wrong_answers_are_rejected(answer, phrase):
    processed_in_memory.clear()
    assert_rejected("8.3", answer, phrase)


def test_8_3_stub_is_not_attempted():
    async def stub(event, *, bus, group, db, store, index, client, budget, k):
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
    from course_utils.checks.lesson08.conversations_per_minute import PLANS

    assert {name: binding_limit(p) for name, p in PLANS.items()} == {name: name for name in PLANS}


def test_8_5_stub_is_not_attempted():
    def stub(p):
        raise NotImplementedError

    assert_not_attempted("8.5", stub)
