"""course_utils.cost routing (cascade on agreement, Pareto), right-sizing and the spend guard."""

from __future__ import annotations

import asyncio
from typing import Callable
from decimal import Decimal

import anthropic
import httpx
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.clock import run_virtual
from course_utils.concurrency import LABELS
from course_utils.cost import (
    BudgetExceeded,
    CascadeRouter,
    SingleModel,
    SpendGuard,
    evaluate,
    label_request,
    pareto_front,
    parse_label,
    suggest_max_tokens,
    truncation_rate,
    worst_case_cost,
)
from course_utils.mock_provider.inprocess import InProcessServer
from course_utils.pricing import cost
from course_utils.tokens import count_request

CHEAP, MID = "claude-haiku-5-5", "claude-sonnet-5-5"


def _server(make_server: Callable[..., InProcessServer]) -> InProcessServer:
    srv = make_server(seed=0, time_scale=1.0)
    srv.set_rate_limits("k", "unlimited")
    return srv


def test_phrasings_ask_the_same_question_and_labels_are_validated():
    bodies = [label_request("My card was charged twice.", LABELS, model=CHEAP, phrasing=i) for i in range(3)]
    assert len({b["messages"][0]["content"] for b in bodies}) == 3
    assert all("billing, bug, account, shipping" in b["messages"][0]["content"] for b in bodies)
    with pytest.raises(ValueError):
        label_request("x", [], model=CHEAP)
    # parse_label reads text blocks by type (a thinking block first is fine):
    msg = {"content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": " Billing. "}]}
    assert parse_label(msg, LABELS) == "billing"
    assert parse_label({"content": [{"type": "text", "text": "I cannot help with that"}]}, LABELS) is None


def test_pareto_front():
    assert pareto_front([(1, 0.8), (2, 0.9), (3, 0.85), (2, 0.9)]) == [True, True, False, True]


def test_router_matches_the_mid_tier_within_a_point_at_under_40_percent_of_its_cost(make_server):
    items = pd.read_csv("data/lesson06_labelled.csv").query("split == 'dev'").head(150)
    srv = _server(make_server)

    async def run():
        client = srv.async_client(api_key="k", max_retries=0)
        mid = await evaluate(SingleModel(MID, LABELS), client, items)
        cheap = await evaluate(SingleModel(CHEAP, LABELS), client, items)
        routed = await evaluate(CascadeRouter(CHEAP, MID, LABELS), client, items)
        return mid, cheap, routed

    mid, cheap, routed = run_virtual(run())
    assert cheap["accuracy"] < mid["accuracy"] - 0.05
    assert routed["accuracy"] >= mid["accuracy"] - 0.01
    assert routed["cost"] <= Decimal("0.4") * mid["cost"]
    assert 0 < routed["escalation_rate"] < 0.4
    # The ledger agrees with the router's own accounting.
    total = float(mid["cost"] + cheap["cost"] + routed["cost"])
    assert srv.ledger()["cost_usd"].sum() == pytest.approx(total, rel=1e-6)


def test_invalid_cheap_answers_escalate(make_server):
    srv = _server(make_server)
    srv.script(r"Pick the category", "I am not sure, maybe billing?")

    async def run():
        client = srv.async_client(api_key="k", max_retries=0)
        return await CascadeRouter(CHEAP, MID, LABELS).classify(client, "My card was charged twice for my plan.")

    routed = run_virtual(run())
    assert routed.calls == [CHEAP, CHEAP, MID]
    assert routed.escalated and routed.label == "billing"


def test_max_tokens_from_observed_lengths():
    lengths = list(range(1, 101))
    assert suggest_max_tokens(lengths, quantile=0.99, margin=1.2) == 119
    assert suggest_max_tokens([3], floor=16) == 16
    assert truncation_rate(lengths, 90) == 0.10
    with pytest.raises(ValueError):
        suggest_max_tokens([])


# --- spend guard -------------------------------------------------------------------------------


def body(n: int) -> dict:
    return {"model": CHEAP, "max_tokens": 300, "messages": [{"role": "user", "content": f"Write a short note #{n}."}]}


def test_worst_case_is_input_plus_max_tokens_of_output():
    b = body(1)
    expected = cost({"input_tokens": count_request(b), "output_tokens": 300}, CHEAP)
    assert worst_case_cost(b) == expected
    assert worst_case_cost(b, batch=True) == expected / 2
    with pytest.raises(ValueError):
        worst_case_cost({"model": CHEAP, "messages": []})


def test_reserve_settle_release_bookkeeping():
    guard = SpendGuard(Decimal("1.00"))
    a = guard.reserve(Decimal("0.60"))
    with pytest.raises(BudgetExceeded) as info:
        guard.reserve(Decimal("0.50"))
    assert info.value.available == Decimal("0.40")
    guard.settle(a, Decimal("0.10"))
    assert (guard.spent, guard.reserved, guard.available) == (Decimal("0.10"), 0, Decimal("0.90"))
    b = guard.reserve(Decimal("0.50"))
    guard.release(b)
    with pytest.raises(ValueError, match="not open"):
        guard.settle(b, Decimal("0.1"))
    with pytest.raises(TypeError):
        SpendGuard(1.5)  # type: ignore[arg-type]


def test_fifty_concurrent_requests_never_overspend_and_settling_frees_the_budget(make_server):
    srv = _server(make_server)
    per_request = worst_case_cost(body(0))
    guard = SpendGuard(per_request * 10)

    async def run():
        client = srv.async_client(api_key="k", max_retries=0)
        results = await asyncio.gather(*(guard.create(client, **body(n)) for n in range(50)), return_exceptions=True)
        later = await guard.create(client, **body(99))  # the budget is not locked up after settling
        return results, later

    results, later = run_virtual(run())
    sent = srv.ledger()
    billed = Decimal(str(round(sent["cost_usd"].sum(), 9)))
    assert billed <= guard.budget
    assert 10 <= len(sent) < 50  # at least the reservations that fit; the rest refused before sending
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(refused) == 50 - (len(sent) - 1)
    assert guard.reserved == 0
    assert guard.spent == pytest.approx(billed, abs=Decimal("1e-9"))
    assert later.usage.output_tokens > 0


def test_an_error_response_releases_its_reservation(make_server):
    srv = _server(make_server)
    guard = SpendGuard(Decimal("1"))
    bad = {"model": CHEAP, "max_tokens": 10, "messages": []}  # the API answers 400: nothing billed, nothing held

    async def run():
        client = srv.async_client(api_key="k", max_retries=0)
        with pytest.raises(anthropic.BadRequestError):
            await guard.create(client, **bad)

    run_virtual(run())
    assert guard.reserved == 0 and guard.spent == 0
    assert len(srv.ledger()) == 1


def test_a_lost_answer_stays_charged_at_the_worst_case():
    guard = SpendGuard(Decimal("1"))

    class Lost:
        class messages:  # noqa: N801 - mimics client.messages
            @staticmethod
            async def create(**_):
                raise anthropic.APITimeoutError(request=httpx.Request("POST", "https://api.anthropic.com/v1/messages"))

    with pytest.raises(anthropic.APITimeoutError):
        run_virtual(guard.create(Lost(), **body(1)))
    assert guard.reserved == 0 and guard.spent == worst_case_cost(body(1))


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["reserve", "settle", "release"]), st.integers(0, 400), st.integers(0, 400)),
        max_size=40,
    )
)
def test_spent_plus_reserved_never_exceeds_the_budget(ops):
    """Any sequence of reservations, settlements at or below the reserve, and releases keeps the invariant."""
    guard = SpendGuard(Decimal("1.000"))
    open_ = []
    for op, a, b in ops:
        if op == "reserve":
            try:
                open_.append(guard.reserve(Decimal(a) / 1000))
            except BudgetExceeded as exc:
                assert exc.available < Decimal(a) / 1000
        elif open_:
            r = open_.pop(b % len(open_))
            if op == "settle":
                guard.settle(r, r.amount * Decimal(a % 101) / 100)
            else:
                guard.release(r)
        assert guard.spent + guard.reserved <= guard.budget
        assert guard.reserved == sum((r.amount for r in open_), Decimal(0))
