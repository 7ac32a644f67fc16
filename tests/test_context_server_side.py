"""Lesson 01's server-side strategies through the runner: compaction and context editing on the
scripted conversation, with their cost, recall and cache behaviour measured from the ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest

import course_utils
from course_utils.context import (
    CacheLayout,
    ServerSide,
    SlidingWindow,
    context_editing,
    load_conversation,
    run_conversation,
    server_compaction,
)

MODEL = "sim-teaching-4k"


@pytest.fixture(scope="module")
def server():
    with course_utils.mock_server(seed=0, time_scale=0, rate_limit_tier="unlimited") as srv:
        yield srv


@pytest.fixture(scope="module")
def conversation():
    return load_conversation(60)


def test_unknown_edit_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown context_management edit"):
        ServerSide([{"type": "compact_2025"}])


def test_prompt_carries_the_edits_and_their_betas() -> None:
    body = context_editing(5_000).build("sys", [{"role": "user", "content": "hi"}]).body(MODEL, 10)
    assert body["betas"] == ["context-management-2025-06-27"]
    assert [e["type"] for e in body["context_management"]["edits"]] == [
        "clear_thinking_20251015",
        "clear_tool_uses_20250919",
    ]
    body = server_compaction(2_000, automatic_cache=True).build("sys", []).body(MODEL, 10)
    assert body["betas"] == ["compact-2026-01-12"] and body["cache_control"] == {"type": "ephemeral"}


def test_server_compaction_keeps_the_facts_and_bills_the_summaries(server, conversation) -> None:
    server.reset()
    result = run_conversation(server.client(), server_compaction(2_500), conversation, model=MODEL)
    assert result.error is None and result.completed == len(conversation.turns)
    df = result.frame()
    compactions = int(df["side_calls"].sum())
    assert compactions >= 1
    assert result.recall_accuracy == 1.0
    # Every request stays under the trigger once compacted, and each compaction's tokens are in the bill.
    ledger = server.ledger()
    ledger = ledger[ledger["endpoint"] == "/v1/messages"]
    assert Decimal(str(ledger["cost_usd"].sum())).quantize(Decimal("0.000001")) == result.total_cost.quantize(
        Decimal("0.000001")
    )
    assert sum(isinstance(m["content"], list) for m in result.history) == compactions


def test_context_editing_has_nothing_to_clear_in_a_plain_chat(server, conversation) -> None:
    server.reset()
    long = load_conversation(100)
    result = run_conversation(server.client(), context_editing(2_500), long, model=MODEL)
    assert result.overflowed_at is not None  # no tool results or thinking: the prompt grows as full history


def test_a_sliding_window_rewrites_the_cache_every_turn(server, conversation) -> None:
    server.reset()
    window = run_conversation(server.client(), CacheLayout(SlidingWindow(2_000)), conversation, model=MODEL).frame()
    server.reset()
    compacted = run_conversation(
        server.client(), server_compaction(2_500, automatic_cache=True), conversation, model=MODEL
    ).frame()
    late = slice(30, None)  # once the window is full and slides every turn
    assert window["cache_write_tokens"][late].mean() > 5 * compacted["cache_write_tokens"][late].mean()
    assert compacted["cache_read_tokens"][late].sum() > window["cache_read_tokens"][late].sum()
