"""Lesson 00 checks: the solutions pass, plausible wrong answers are rejected, stubs are not attempted."""

from __future__ import annotations

from decimal import Decimal

import pytest

import course_utils.checks as checks
from course_utils import pricing
from course_utils.checks.lesson00 import MAX_TOKENS, MODEL
from course_utils.pricing import cost_breakdown


# ----- 0.1 ------------------------------------------------------------------------------------
def first_request(client, question):
    message = client.messages.create(
        model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": question}]
    )
    return message.content[0].text


def streamed(client, question):
    with client.messages.stream(
        model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": question}]
    ) as stream:
        return stream.get_final_text()


def hard_coded(client, question):
    return "429 means the client sent too many requests; slow down and retry later."


def two_requests(client, question):
    first_request(client, question)  # e.g. a "warm-up" call
    return first_request(client, question)


def returns_message(client, question):
    return client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": question}])


def returns_blocks(client, question):
    return returns_message(client, question).content


def wrong_model(client, question):
    message = client.messages.create(
        model="claude-opus-5-5", max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": question}]
    )
    return message.content[0].text


def wrong_budget(client, question):
    message = client.messages.create(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": question}])
    return message.content[0].text


def stub_0_1(client, question):
    raise NotImplementedError("Exercise 0.1: Call client.messages.create once.")


@pytest.mark.parametrize("answer", [first_request, streamed])
def test_0_1_solution_passes(answer):
    result = checks.check("0.1", answer)
    assert result.status == "passed", result.feedback
    assert result.points == 2


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (hard_coded, "not the model's reply"),
        (two_requests, "ledger shows 2 request(s)"),
        (returns_message, "whole Message object"),
        (returns_blocks, "list of content blocks"),
        (wrong_model, "wrong model"),
        (wrong_budget, "wrong max_tokens"),
    ],
)
def test_0_1_wrong_answers_are_rejected(answer, phrase):
    result = checks.check("0.1", answer)
    assert result.status == "failed", result.feedback
    assert result.points < result.max_points
    assert phrase in result.feedback


def test_0_1_stub_is_not_attempted():
    result = checks.check("0.1", stub_0_1)
    assert result.status == "not_attempted" and result.points == 0


# ----- 0.2 ------------------------------------------------------------------------------------
def _count(usage, name):
    return getattr(usage, name, None) or 0


def request_cost(usage, model):
    p = pricing.price(model)
    total = (
        _count(usage, "input_tokens") * p.input_per_mtok
        + _count(usage, "cache_creation_input_tokens") * p.cache_write_5m_per_mtok
        + _count(usage, "cache_read_input_tokens") * p.cache_read_per_mtok
        + _count(usage, "output_tokens") * p.output_per_mtok
    )
    return Decimal(total) / Decimal(1_000_000)


def ignores_cache(usage, model):
    p = pricing.price(model)
    return (usage.input_tokens * p.input_per_mtok + usage.output_tokens * p.output_per_mtok) / Decimal(1_000_000)


def uses_float(usage, model):
    return float(request_cost(usage, model))


def output_at_input_price(usage, model):
    p = pricing.price(model)
    tokens = usage.input_tokens + usage.output_tokens
    cached = _count(usage, "cache_creation_input_tokens") * p.cache_write_5m_per_mtok
    read = _count(usage, "cache_read_input_tokens") * p.cache_read_per_mtok
    return (tokens * p.input_per_mtok + cached + read) / Decimal(1_000_000)


def one_model_prices(usage, model):
    return request_cost(usage, "claude-haiku-5-5")


def cache_reads_at_input_price(usage, model):
    p = pricing.price(model)
    reads = _count(usage, "cache_read_input_tokens")
    return request_cost(usage, model) + reads * (p.input_per_mtok - p.cache_read_per_mtok) / Decimal(1_000_000)


def stub_0_2(usage, model):
    raise NotImplementedError("Exercise 0.2: Multiply each token class by its rate.")


def test_0_2_solution_passes():
    result = checks.check("0.2", request_cost)
    assert result.status == "passed", result.feedback


def test_0_2_calling_pricing_cost_is_rejected():
    # The exercise says "without calling pricing.cost"; the check enforces it.
    result = checks.check("0.2", lambda usage, model: pricing.cost(usage, model))
    assert result.status == "failed" and "pricing.cost" in result.feedback
    assert pricing.cost({"input_tokens": 1_000_000}, "claude-haiku-5-5") > 0  # restored afterwards


def imports_cost_breakdown(usage, model):
    # ``from course_utils.pricing import cost_breakdown`` in the notebook: a name in the answer's globals.
    return sum(cost_breakdown(usage, model).values(), Decimal(0))


def binds_cost_breakdown_as_default(usage, model, _breakdown=pricing.cost_breakdown):
    return sum(_breakdown(usage, model).values(), Decimal(0))


def _closes_over_cost():
    price_it = pricing.cost

    def request_cost_(usage, model):
        return price_it(usage, model)

    return request_cost_


def swallows_the_refusal(usage, model):
    try:
        return pricing.cost(usage, model)
    except Exception:
        return request_cost(usage, model)


@pytest.mark.parametrize(
    "answer",
    [imports_cost_breakdown, binds_cost_breakdown_as_default, _closes_over_cost(), swallows_the_refusal],
    ids=["from pricing import cost_breakdown", "default argument", "closure", "swallowed"],
)
def test_0_2_reaching_the_library_by_any_route_is_rejected(answer):
    result = checks.check("0.2", answer)
    assert result.status == "failed" and result.points == 0, result.feedback
    assert "write it yourself" in result.feedback and "pricing.cost" in result.feedback
    assert cost_breakdown is pricing.cost_breakdown  # restored afterwards
    assert binds_cost_breakdown_as_default.__defaults__ == (pricing.cost_breakdown,)


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (ignores_cache, "cache"),
        (uses_float, "not a Decimal"),
        (output_at_input_price, "output"),
        (one_model_prices, "pricing.price(model)"),
        (cache_reads_at_input_price, "cache-read rate"),
    ],
)
def test_0_2_wrong_answers_are_rejected(answer, phrase):
    result = checks.check("0.2", answer)
    assert result.status == "failed", result.feedback
    assert result.points < result.max_points
    assert phrase in result.feedback


def test_0_2_stub_is_not_attempted():
    result = checks.check("0.2", stub_0_2)
    assert result.status == "not_attempted" and result.points == 0


def test_lesson00_exercises_are_listed():
    assert [(e.id, e.points) for e in checks.exercises(0)] == [("0.1", 2), ("0.2", 2)]
