"""course_utils.cost.measure: the shipped data loaders and the simulator measurements the notebook uses."""

from __future__ import annotations

from decimal import Decimal

from course_utils.clock import run_virtual
from course_utils.concurrency import LABELS
from course_utils.cost import (
    CascadeRouter,
    SingleModel,
    compress,
    keep_head,
    keep_tail,
    load_cache_pairs,
    load_labelled,
    load_ledger,
    load_recall,
    policy_table,
    recall_eval,
)
from course_utils.progress import ProgressEvent
from course_utils.tokens import count_text


def client(make_server):
    server = make_server(seed=0, time_scale=0)
    server.set_rate_limits("k", "unlimited")
    return server, server.async_client(api_key="k", max_retries=0)


def test_loaders_shapes_and_splits():
    assert len(load_ledger()) == 27_550 and isinstance(load_ledger()["cost"].iloc[0], Decimal)
    assert len(load_recall(5)) == 5 and len(load_recall()) == 60
    assert set(load_cache_pairs()["kind"]) == {"paraphrase", "near_miss"}
    dev, hidden = load_labelled(), load_labelled(split="hidden")
    assert len(hidden) == 400 and not set(dev["ticket_id"]) & set(hidden["ticket_id"])
    assert len(load_labelled(10)) == 10


def test_naive_cuts_keep_the_ends_within_budget():
    text = " ".join(f"word{i}" for i in range(200))
    head, tail = keep_head(text, "q", 20), keep_tail(text, "q", 20)
    assert text.startswith(head) and text.endswith(tail)
    assert count_text(head) <= 21 and count_text(tail) <= 21
    assert keep_tail(text, "q", 0) == ""


def test_recall_eval_measures_answers_tokens_and_cost_from_replies(make_server):
    server, c = client(make_server)
    items = load_recall(6)

    async def run():
        full = await recall_eval(c, items, method="full", shrink=None, budget=0)
        small = await recall_eval(c, items, method="bm25", shrink=compress, budget=40)
        head = await recall_eval(c, items, method="head", shrink=keep_head, budget=40)
        return full, small, head

    full, small, head = run_virtual(run())
    assert full["recall"] == small["recall"] == 1.0
    assert head["recall"] < 1.0  # the 6 items put the fact at head, middle and tail in turn
    assert small["input_tokens"] < full["input_tokens"] / 3
    assert full["budget"] is None and small["budget"] == 40
    assert Decimal(str(round(server.ledger()["cost_usd"].sum(), 9))) == full["cost"] + small["cost"] + head["cost"]


def test_policy_table_rows_and_progress(make_server):
    _, c = client(make_server)
    events = []
    policies = [SingleModel("claude-haiku-5-5", LABELS), CascadeRouter("claude-haiku-5-5", "claude-sonnet-5-5", LABELS)]
    table = run_virtual(policy_table(c, load_labelled(20), policies, on_progress=events.append))
    assert list(table.index) == [p.name for p in policies]
    assert [(e.done, e.total) for e in events] == [(1, 2), (2, 2)] and isinstance(events[0], ProgressEvent)
    assert table.loc[policies[1].name, "calls_per_item"] >= 2
