"""course_utils.cost exact and semantic caches, and the prompt-caching arithmetic and layout."""

from __future__ import annotations

import copy
import sqlite3
from collections import OrderedDict
from decimal import Decimal

import anthropic
import pandas as pd
import pytest

from course_utils.clock import VirtualClock, run_virtual
from course_utils.cost import (
    ExactCache,
    SemanticCache,
    break_even_from_multipliers,
    break_even_reads,
    cache_key,
    cached_layout,
    caching_cost,
    identifiers,
    same_identifiers,
    threshold_curve,
)

BODY = {
    "model": "claude-haiku-5-5",
    "max_tokens": 400,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "output_config": {"effort": "low"},
}


def message(stop_reason: str = "end_turn", text: str = "Paris.") -> anthropic.types.Message:
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-5-5",
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 2},
        }
    )


# --- cache_key ---------------------------------------------------------------------------------


def test_key_ignores_dict_order_and_non_semantic_fields():
    reordered = OrderedDict(reversed(list(BODY.items())))
    assert cache_key(reordered) == cache_key(BODY)
    assert cache_key({**BODY, "stream": True, "metadata": {"user_id": "u1"}}) == cache_key(BODY)
    assert cache_key({**BODY, "api_key": "sk-ant-secret"}) == cache_key(BODY)


@pytest.mark.parametrize(
    "change",
    [
        {"model": "claude-sonnet-5-5"},
        {"max_tokens": 401},
        {"system": "Be verbose."},
        {"temperature": 1.0},  # older models' sampling parameters (the SDK sends them via extra_body)
        {"output_config": {"effort": "high"}},
        {"thinking": {"type": "adaptive"}},
        {"top_p": 0.5},
        {"stop_sequences": ["\n"]},
        {"tools": [{"name": "t", "input_schema": {"type": "object"}}]},
        {"messages": [{"role": "user", "content": "What is the capital of Spain?"}]},
    ],
)
def test_every_answer_relevant_field_changes_the_key(change):
    assert cache_key({**BODY, **change}) != cache_key(BODY)


def test_namespace_separates_tenants_and_missing_fields_are_refused():
    assert cache_key(BODY, "tenant-a") != cache_key(BODY, "tenant-b")
    for field in ("model", "max_tokens", "messages"):
        with pytest.raises(ValueError, match=field):
            cache_key({k: v for k, v in BODY.items() if k != field})


# --- ExactCache --------------------------------------------------------------------------------


def test_ttl_expiry_on_an_injected_clock():
    clock = VirtualClock()
    cache = ExactCache(ttl_s=60, clock=clock)
    assert cache.put(BODY, message())
    clock.advance_sync(59.9)
    assert cache.get(BODY).content[0].text == "Paris."
    clock.advance_sync(0.1)
    assert cache.get(BODY) is None
    assert len(cache) == 0  # the expired row is gone, not only hidden


def test_only_complete_answers_are_stored():
    cache = ExactCache(clock=VirtualClock())
    assert not cache.put(BODY, message("max_tokens"))
    assert not cache.put(BODY, message("refusal"))
    assert cache.get(BODY) is None
    with pytest.raises(ValueError):
        ExactCache(ttl_s=0)


def test_file_cache_is_shared_between_instances_and_stores_no_key(tmp_path):
    path = tmp_path / "cache.sqlite"
    clock = VirtualClock()
    ExactCache(path, clock=clock).put({**BODY, "api_key": "sk-ant-secret"}, message())
    assert ExactCache(path, clock=clock).get(BODY) is not None
    dump = "\n".join(sqlite3.connect(path).iterdump())
    assert "sk-ant-secret" not in dump


def test_create_sends_one_request_per_distinct_body(make_server):
    server = make_server(seed=0, time_scale=0)
    server.set_rate_limits("k", "unlimited")

    async def run():
        client = server.async_client(api_key="k", max_retries=0)
        cache = ExactCache()
        first = await cache.create(client, **BODY)
        again = await cache.create(client, **copy.deepcopy(BODY))
        other = await cache.create(client, **{**BODY, "max_tokens": 500})
        return cache, first, again, other

    cache, first, again, other = run_virtual(run())
    assert first.stop_reason == "end_turn"  # complete, so cacheable
    assert len(server.ledger()) == 2
    assert again.id == first.id and other.id != first.id
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)
    assert cache.stats.hit_rate == pytest.approx(1 / 3)


# --- SemanticCache -----------------------------------------------------------------------------


def test_identifiers_are_numbers_ids_and_emails():
    assert identifiers("Refund order 123 to ana@example.com, invoice INV-77.") == {"123", "ana@example.com", "inv-77"}
    assert same_identifiers("order 123 please", "About order 123?")
    assert not same_identifiers("refund for order 123", "refund for order 124")


def test_semantic_cache_hits_a_paraphrase_and_the_guard_stops_a_near_miss():
    clock = VirtualClock()
    guarded = SemanticCache(0.6, clock=clock, ttl_s=100)
    unguarded = SemanticCache(0.6, guard=None, clock=clock)
    for cache in (guarded, unguarded):
        cache.store("Can I get a refund for order 123?", "answer-123")
    hit = guarded.lookup("I want my money back for order 123, is that possible?")
    assert hit is not None and hit.answer == "answer-123" and 0.6 <= hit.similarity < 1
    assert guarded.lookup("Can I get a refund for order 124?") is None
    assert unguarded.lookup("Can I get a refund for order 124?").answer == "answer-123"  # the false hit
    clock.advance_sync(100)
    assert guarded.lookup("Can I get a refund for order 123?") is None  # expired
    assert SemanticCache(0.9).lookup("anything") is None
    with pytest.raises(ValueError):
        SemanticCache(1.5)


def test_threshold_curve_on_the_shipped_pairs_shows_the_finding():
    pairs = pd.read_csv("data/lesson06_cache_pairs.csv")
    plain = threshold_curve(pairs, [0.7, 0.9]).set_index("threshold")
    # Near misses are MORE similar than paraphrases: a threshold that keeps paraphrases lets them in.
    assert plain.loc[0.7, "near_miss_false_hit_rate"] > 0.5
    assert plain.loc[0.9, "paraphrase_hit_rate"] < plain.loc[0.9, "near_miss_false_hit_rate"]
    guarded = threshold_curve(pairs, [0.7], guard=same_identifiers).set_index("threshold")
    assert guarded.loc[0.7, "near_miss_false_hit_rate"] == 0
    assert guarded.loc[0.7, "paraphrase_hit_rate"] == plain.loc[0.7, "paraphrase_hit_rate"]
    with pytest.raises(ValueError):
        threshold_curve(pairs.iloc[:0], [0.5])


# --- prompt caching ----------------------------------------------------------------------------


def test_break_even_from_the_issue_multipliers():
    assert break_even_from_multipliers(Decimal("1.25"), Decimal("0.1")) == 1  # 1.25 + 0.1 < 2
    assert break_even_from_multipliers(2, Decimal("0.1")) == 2  # 2 + 0.1 > 2, 2 + 0.2 < 3
    assert break_even_from_multipliers(1, Decimal("0.1")) == 1
    assert break_even_from_multipliers(Decimal("0.5"), 0) == 0
    with pytest.raises(ValueError):
        break_even_from_multipliers(2, 1)


def test_break_even_reads_uses_each_models_prices():
    for model in ("claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-4-5"):
        for ttl in ("5m", "1h"):
            n = break_even_reads(model, ttl)
            assert caching_cost(model, 10_000, n + 1, ttl) < caching_cost(model, 10_000, n + 1, None)
            assert caching_cost(model, 10_000, n, ttl) >= caching_cost(model, 10_000, n, None)
    with pytest.raises(ValueError):
        break_even_reads("claude-haiku-5-5", "10m")


def test_layout_puts_one_breakpoint_after_the_stable_parts_and_the_simulator_reads_it(make_server):
    docs = [" ".join(f"policy{i} clause{j}" for j in range(1500)) for i in range(2)]
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    body = cached_layout(model="claude-haiku-5-5", instructions="Answer from the documents.", documents=docs,
                         history=history, question="What does clause 3 say?", max_tokens=50, ttl="1h")  # fmt: skip
    assert [("cache_control" in b) for b in body["system"]] == [False, False, True]
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert body["messages"][-1] == {"role": "user", "content": "What does clause 3 say?"}
    server = make_server(seed=0, time_scale=0)
    server.set_rate_limits("k", "unlimited")
    sync = server.client(api_key="k", max_retries=0)
    first = sync.messages.create(**body)
    second = sync.messages.create(**{**body, "messages": [*history, {"role": "user", "content": "And clause 4?"}]})
    assert first.usage.cache_creation.ephemeral_1h_input_tokens > 4096
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
