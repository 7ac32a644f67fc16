"""Lesson 06's chat-history policies, thinking as a cost (effort), the what-ifs they feed and the cache scope."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from course_utils.concurrency import LABELS
from course_utils.cost import (
    CHAT_POLICIES,
    SemanticCache,
    SingleModel,
    apply_steps,
    cache_scope,
    chat_policies,
    chat_turn_body,
    compress,
    conversations,
    effort_table,
    hidden_thinking_from,
    incident_steps,
    label_request,
    load_labelled,
    load_ledger,
    load_recall,
    total,
    with_output_tokens,
    with_prompt_caching,
)
from course_utils.mock_provider.skills.thinking import (
    OMITTED_THINKING_TOKENS,
    hidden_thinking_tokens,
    use_hidden_thinking,
)
from course_utils.resilience import on_virtual_time, sim

MID, TOP = "claude-sonnet-5-5", "claude-opus-5-5"


@pytest.fixture(scope="module")
def chat_run():
    chats = conversations(load_recall(24), 8)

    async def run():
        client = sim(seed=0).async_client(max_retries=0)
        return await chat_policies(client, chats, model=MID, shrink=compress, notes_budget=40, history_budget=1500)

    return on_virtual_time(run, seed=0)


def test_conversations_cut_items_into_equal_conversations():
    items = list(range(10))
    assert conversations(items, 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError):
        conversations(items, 0)


def test_automatic_caching_reads_the_history_and_answers_as_resending_does(chat_run):
    turns, summary = chat_run
    naive, cached = summary.loc[CHAT_POLICIES[0].name], summary.loc[CHAT_POLICIES[1].name]
    assert naive["read_share"] == 0 and naive["write_share"] == 0
    assert cached["read_share"] > 0.5  # each turn reads everything the previous one wrote
    assert cached["cost_per_conversation"] < naive["cost_per_conversation"] / 2
    assert cached["same_answer"] == 1.0  # the cache changes the bill, not the answers
    assert cached["input_per_turn"] == naive["input_per_turn"]
    # Turn n reads exactly what turn n-1 sent (the automatic breakpoint moves forward).
    rows = turns[(turns["policy"] == CHAT_POLICIES[1].name) & (turns["conversation"] == 0)].set_index("turn")
    prompt = rows["cache_read"] + rows["cache_write"] + rows["uncached"]
    assert (rows["cache_read"].iloc[1:].to_numpy() == prompt.iloc[:-1].to_numpy()).all()


def test_compressing_per_question_never_reads_the_cache(chat_run):
    turns, summary = chat_run
    per_question = summary.loc[CHAT_POLICIES[2].name]
    assert per_question["read_share"] == 0
    assert per_question["write_share"] > 0.5  # above the minimum it writes every turn, for nothing
    rows = turns[turns["policy"] == CHAT_POLICIES[2].name]
    assert rows["cache_read"].sum() == 0


def test_below_the_minimum_cacheable_length_nothing_is_cached_and_nothing_fails(chat_run):
    turns, _ = chat_run
    rows = turns[turns["policy"] == CHAT_POLICIES[3].name]
    prompt = rows["uncached"] + rows["cache_write"] + rows["cache_read"]
    short, long = rows[prompt < 512], rows[prompt >= 512]
    assert len(short) and len(long)
    assert short["cache_write"].sum() == 0 and short["cache_read"].sum() == 0
    assert (long["cache_write"] + long["cache_read"] > 0).all()


def test_compressed_notes_cost_least_and_stay_cached(chat_run):
    _, summary = chat_run
    costs = summary["cost_per_conversation"]
    assert costs.idxmin() == CHAT_POLICIES[3].name
    assert summary.loc[CHAT_POLICIES[3].name, "read_share"] > 0


def test_a_turn_body_carries_the_top_level_cache_control_only_when_caching():
    item = load_recall(1)[0]
    args = dict(model=MID, shrink=compress, notes_budget=40, history_budget=1500)
    plain = chat_turn_body(CHAT_POLICIES[0], [], [], item, **args)
    cached = chat_turn_body(CHAT_POLICIES[1], [], [], item, **args)
    assert "cache_control" not in plain and cached["cache_control"] == {"type": "ephemeral"}
    notes = chat_turn_body(CHAT_POLICIES[3], [], [], item, **args)
    assert len(notes["messages"][-1]["content"]) < len(cached["messages"][-1]["content"])


def test_hidden_thinking_length_is_billed_as_output_and_restored_after():
    body = label_request("My invoice is wrong, please fix the billing.", LABELS, model=MID)

    async def once():
        reply = await sim(seed=0).async_client(max_retries=0).messages.create(**body)
        return reply.usage.output_tokens, [b.type for b in reply.content]

    default_tokens, blocks = on_virtual_time(once)
    assert blocks[0] == "thinking" and default_tokens == OMITTED_THINKING_TOKENS + 1
    with use_hidden_thinking({"high": 300}):
        assert hidden_thinking_tokens("high") == 300
        assert hidden_thinking_tokens("medium") == OMITTED_THINKING_TOKENS
        assert on_virtual_time(once)[0] == 301
    assert hidden_thinking_tokens("high") == OMITTED_THINKING_TOKENS
    with pytest.raises(ValueError):
        with use_hidden_thinking({"high": 0}):
            pass


def test_hidden_thinking_from_the_ledger_is_its_median_output_minus_the_answer():
    ledger = load_ledger()
    lengths = hidden_thinking_from(ledger, "triage")
    assert set(lengths.values()) == {int(ledger[ledger.feature == "triage"]["output_tokens"].median()) - 1}
    with pytest.raises(ValueError):
        hidden_thinking_from(ledger, "no-such-feature")


def test_effort_low_skips_thinking_and_costs_less():
    tickets = load_labelled(20)
    policies = [SingleModel(MID, LABELS), SingleModel(MID, LABELS, effort="low")]
    table = effort_table(tickets, policies, hidden={"high": 200, "medium": 200})
    default, low = table.loc[MID], table.loc[f"{MID} @low"]
    assert default["output_per_item"] == 201 and low["output_per_item"] == 1
    assert low["cost_per_1k"] < default["cost_per_1k"] / 5
    assert low["p95_s"] < default["p95_s"]  # thinking takes generation time too


def _frame(**columns) -> pd.DataFrame:
    from course_utils.cost import cost_frame

    base = {
        "ts": "2027-01-17T10:00:00Z",
        "feature": "chat",
        "model": MID,
        "batch": False,
        "input_tokens": 1000,
        "cache_creation_5m": 0,
        "cache_creation_1h": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 300,
        "request_hash": "x",
    }
    return cost_frame(pd.DataFrame([{**base, **columns}]))


def test_with_prompt_caching_resplits_the_prompt_and_is_idempotent():
    frame = _frame()
    cached = with_prompt_caching(frame, "chat", read_share=0.8, write_share=0.15)
    row = cached.iloc[0]
    assert (row["cache_read_input_tokens"], row["cache_creation_5m"], row["input_tokens"]) == (800, 150, 50)
    assert total(cached) < total(frame)
    again = with_prompt_caching(cached, "chat", read_share=0.8, write_share=0.15)
    assert total(again) == total(cached)
    half = with_prompt_caching(frame, "chat", read_share=0.0, write_share=0.0, scale=0.5)
    assert half.iloc[0]["input_tokens"] == 500
    with pytest.raises(ValueError):
        with_prompt_caching(frame, "chat", read_share=0.9, write_share=0.2)
    assert total(with_prompt_caching(frame, "faq", read_share=0.8, write_share=0.1)) == total(frame)


def test_with_output_tokens_caps_only_that_feature():
    frame = pd.concat([_frame(), _frame(feature="faq")], ignore_index=True)
    capped = with_output_tokens(frame, "chat", 1)
    assert capped["output_tokens"].tolist() == [1, 300]
    assert capped["cost"].iloc[1] == frame["cost"].iloc[1] and capped["cost"].iloc[0] < frame["cost"].iloc[0]


def test_apply_steps_reports_each_alone_and_cumulatively():
    frame = _frame()
    steps = [("cap", lambda f: with_output_tokens(f, "chat", 100), "q1"), ("none", lambda f: f, "q2")]
    table, final = apply_steps(frame, steps)
    assert table.loc["none", "saved_alone_usd"] == 0
    assert table.loc["cap", "total_after_usd"] == table.loc["none", "total_after_usd"] == float(total(final))
    assert total(final) < total(frame)


def test_incident_steps_use_the_measured_factors(chat_run):
    _, summary = chat_run
    effort = pd.DataFrame(
        [
            {"policy": TOP, "accuracy": 0.9, "output_per_item": 30.0},
            {"policy": f"{TOP} @low", "accuracy": 0.9, "output_per_item": 1.0},
        ]
    ).set_index("policy")
    ledger = load_ledger()
    day = ledger[ledger["day"] == ledger["day"].max()]
    table, final = apply_steps(day, incident_steps(summary, effort, triage_model=TOP))
    assert list(table.index)[0] == "chat: automatic caching"
    assert (table["saved_alone_usd"] > 0).all()
    assert (final[final.feature == "triage"]["output_tokens"] == 1).all()
    assert total(final) < total(day) * Decimal("0.5")


def test_a_semantic_cache_never_answers_across_scopes():
    cache = SemanticCache(threshold=0.7)
    cache.store("How do I reset my password?", "link", scope=cache_scope("acme", MID, "v3"))
    asked = "How can I reset my password?"
    assert cache.lookup(asked, scope=cache_scope("acme", MID, "v3")) is not None
    for other in (("globex", MID, "v3"), ("acme", TOP, "v3"), ("acme", MID, "v4")):
        assert cache.lookup(asked, scope=cache_scope(*other)) is None
    assert cache.lookup(asked) is None  # the unscoped default is a scope of its own
    with pytest.raises(ValueError):
        cache_scope("", MID, "v3")
