"""Lesson 00 checks: the solutions pass, plausible wrong answers are rejected, stubs are not attempted."""

from __future__ import annotations

from decimal import Decimal

import pytest
from anthropic.types import Usage
from hypothesis import given, settings
from hypothesis import strategies as st

import course_utils.checks as checks
from _checks import assert_rejected
from course_utils import pricing, text_of
from course_utils.checks.lesson00 import MAX_TOKENS, MODEL, PRICED_MODELS, random_usages
from course_utils.checks.sim import probe
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


def glued_instruction(client, question):
    message = client.messages.create(
        model=MODEL,
        max_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": "Answer in one short sentence. " + question}],
    )
    return text_of(message)


def priming_turns(client, question):
    message = client.messages.create(
        model=MODEL,
        max_tokens=MAX_TOKENS,
        messages=[
            {"role": "user", "content": "You are a helpful assistant for engineers."},
            {"role": "assistant", "content": "Understood."},
            {"role": "user", "content": question},
        ],
    )
    return text_of(message)


def with_system_prompt(client, question):
    message = client.messages.create(
        model=MODEL, max_tokens=MAX_TOKENS, system="Be concise.", messages=[{"role": "user", "content": question}]
    )
    return text_of(message)


def counts_tokens_first(client, question):
    messages = [{"role": "user", "content": question}]
    client.messages.count_tokens(model=MODEL, messages=messages)  # "log the size first"
    return text_of(client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=messages))


def own_client(client, question):
    mine = probe(tier="unlimited").client()  # ignores the client it was given
    return text_of(
        mine.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": question}])
    )


def strips_the_question(client, question):
    return first_request(client, question.strip())


def echoes_question(client, question):
    return f"Q: {question}\nA: {first_request(client, question)}"


_replies: dict = {}


def memoizes(client, question):
    """Caches replies per question ("the same question costs nothing the second time")."""
    key = (id(client), question)
    if key not in _replies:
        _replies[key] = first_request(client, question)
    return _replies[key]


def stub_0_1(client, question):
    raise NotImplementedError("Exercise 0.1: Call client.messages.create once.")


def text_block_content(client, question):
    # A correct alternative: the content as a list of one text block, the text read by type by hand.
    message = client.with_options(timeout=60).messages.create(
        **{
            "model": MODEL,
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": [{"type": "text", "text": question}]}],
        }
    )
    return "".join(block.text for block in message.content if block.type == "text")


@pytest.mark.parametrize("answer", [first_request, streamed, text_block_content])
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
        (glued_instruction, "the question alone, as one user message, is"),
        (priming_turns, "no earlier or primed turns"),
        (with_system_prompt, "no system prompt"),
        (counts_tokens_first, "/v1/messages/count_tokens x1"),
        (own_client, "not the model's reply"),
        (strips_the_question, "don't strip"),
        (echoes_question, "not the model's reply"),
        (memoizes, "don't cache replies"),
    ],
)
def test_0_1_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("0.1", answer, phrase)


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


def float_arithmetic(usage, model):
    # Looks careful (returns a Decimal), but the sum went through floats.
    p = pricing.price(model)
    total = (
        float(usage.input_tokens) * float(p.input_per_mtok)
        + float(usage.output_tokens) * float(p.output_per_mtok)
        + float(usage.cache_creation_input_tokens or 0) * float(p.cache_write_5m_per_mtok)
        + float(usage.cache_read_input_tokens or 0) * float(p.cache_read_per_mtok)
    ) / 1e6
    return Decimal(str(total))


def rounds_to_six_places(usage, model):
    return request_cost(usage, model).quantize(Decimal("0.000001"))


def cache_writes_at_1h_rate(usage, model):
    p = pricing.price(model)
    writes = _count(usage, "cache_creation_input_tokens")
    return request_cost(usage, model) + writes * (p.cache_write_1h_per_mtok - p.cache_write_5m_per_mtok) / Decimal(
        1_000_000
    )


def cache_writes_at_input_rate(usage, model):
    p = pricing.price(model)
    writes = _count(usage, "cache_creation_input_tokens")
    return request_cost(usage, model) - writes * (p.cache_write_5m_per_mtok - p.input_per_mtok) / Decimal(1_000_000)


def fills_in_the_nones(usage, model):
    # Fixes the record up "for later" before pricing it.
    if usage.cache_creation_input_tokens is None:
        usage.cache_creation_input_tokens = 0
    if usage.cache_read_input_tokens is None:
        usage.cache_read_input_tokens = 0
    return request_cost(usage, model)


def per_thousand(usage, model):
    return request_cost(usage, model) * Decimal(1_000)


def rates_through_float(usage, model):
    p = pricing.price(model)
    rates = [
        Decimal(float(r))
        for r in (p.input_per_mtok, p.cache_write_5m_per_mtok, p.cache_read_per_mtok, p.output_per_mtok)
    ]
    counts = [
        _count(usage, n)
        for n in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    ]
    return sum((c * r for c, r in zip(counts, rates)), Decimal(0)) / Decimal(1_000_000)


def integer_division(usage, model):
    p = pricing.price(model)
    total = (
        _count(usage, "input_tokens") * p.input_per_mtok
        + _count(usage, "output_tokens") * p.output_per_mtok
        + _count(usage, "cache_creation_input_tokens") * p.cache_write_5m_per_mtok
        + _count(usage, "cache_read_input_tokens") * p.cache_read_per_mtok
    )
    return total // 1_000 / Decimal(1_000)


def none_cache_fields_crash(usage, model):
    # Reads the cache fields as they are: None * Decimal raises on a reply without cache activity.
    p = pricing.price(model)
    return (
        usage.input_tokens * p.input_per_mtok
        + usage.output_tokens * p.output_per_mtok
        + usage.cache_creation_input_tokens * p.cache_write_5m_per_mtok
        + usage.cache_read_input_tokens * p.cache_read_per_mtok
    ) / Decimal(1_000_000)


def stub_0_2(usage, model):
    raise NotImplementedError("Exercise 0.2: Multiply each token class by its rate.")


_FIELDS = {
    "input_tokens": "input_per_mtok",
    "cache_creation_input_tokens": "cache_write_5m_per_mtok",
    "cache_read_input_tokens": "cache_read_per_mtok",
    "output_tokens": "output_per_mtok",
}


def from_model_dump(usage, model):
    # A correct alternative: a table of field -> rate, summed from the usage's dict, scaled at the end.
    rates = pricing.price(model)
    counts = usage.model_dump()
    return sum((Decimal(counts.get(f) or 0) * getattr(rates, r) for f, r in _FIELDS.items()), Decimal(0)) * Decimal(
        "1e-6"
    )


@pytest.mark.parametrize("answer", [request_cost, from_model_dump])
def test_0_2_solution_passes(answer):
    result = checks.check("0.2", answer)
    assert result.status == "passed", result.feedback
    assert result.points == 2


_counts = st.integers(min_value=0, max_value=30_000)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PRICED_MODELS), _counts, _counts, st.none() | _counts, st.none() | _counts)
def test_0_2_the_contract_holds_for_all_usages(model, inp, out, write, read):
    # The property the check samples (300 seeded usages): the contract's arithmetic is pricing.cost,
    # exactly, on every usage of the standard tier; the check's float and rounding wrong answers are not.
    usage = Usage(input_tokens=inp, output_tokens=out, cache_creation_input_tokens=write, cache_read_input_tokens=read)
    assert request_cost(usage, model) == from_model_dump(usage, model) == pricing.cost(usage, model)


def test_0_2_the_random_usages_catch_float_and_rounding():
    pairs = random_usages()
    assert sum(float_arithmetic(u, m) != pricing.cost(u, m) for u, m in pairs) >= 10
    assert sum(rounds_to_six_places(u, m) != pricing.cost(u, m) for u, m in pairs) >= 50
    assert all(
        u.input_tokens + (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0) <= 100_000
        for u, _ in pairs
    )  # the standard tier, where the contract's arithmetic is the price


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


def _late(swallow: bool):
    """From its 100th call on (inside the 300 random usages), the answer reaches pricing.cost."""
    calls = []

    def request_cost_late(usage, model):
        calls.append(1)
        if len(calls) < 100:
            return request_cost(usage, model)
        if not swallow:
            return pricing.cost(usage, model)
        try:
            pricing.cost(usage, model)
        except Exception:
            pass
        return request_cost(usage, model)

    return request_cost_late


@pytest.mark.parametrize("swallow", [False, True], ids=["raises", "swallowed"])
def test_0_2_one_guard_covers_every_random_usage(swallow):
    # The random case runs its 300 calls under one guard: a shortcut taken on a later call is still refused.
    result = checks.check("0.2", _late(swallow), quiet=True)
    random_case = result.cases[-1]
    assert random_case.name.startswith("exact on 300 random usages"), random_case.name
    assert random_case.outcome == "failed" and "write it yourself" in random_case.message, random_case.message
    assert all(c.outcome == "passed" for c in result.cases[:-1]), result.feedback
    assert pricing.cost is _SHORTCUT_COST  # restored afterwards


_SHORTCUT_COST = pricing.cost


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (ignores_cache, "cache"),
        (uses_float, "not a Decimal"),
        (output_at_input_price, "output"),
        (one_model_prices, "pricing.price(model)"),
        (cache_reads_at_input_price, "cache-read rate"),
        (float_arithmetic, "went through a float"),
        (rounds_to_six_places, "rounded"),
        (cache_writes_at_1h_rate, "cache-write rate"),
        (cache_writes_at_input_rate, "cache-write rate"),
        (fills_in_the_nones, "changed the usage it was given"),
        (per_thousand, "wrong cost"),
        (rates_through_float, "went through a float"),
        (integer_division, "wrong cost"),
    ],
)
def test_0_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("0.2", answer, phrase)


def test_0_2_a_none_cache_field_is_a_lost_point():
    # Not a wrong number but a crash on the replies without cache activity: explained, partial credit.
    result = checks.check("0.2", none_cache_fields_crash, quiet=True)
    assert result.status == "error" and 0 < result.points < result.max_points, result.feedback
    assert "TypeError" in result.feedback and "None" in result.feedback


def test_0_2_stub_is_not_attempted():
    result = checks.check("0.2", stub_0_2)
    assert result.status == "not_attempted" and result.points == 0


def test_lesson00_exercises_are_listed():
    assert [(e.id, e.points) for e in checks.exercises(0)] == [("0.1", 2), ("0.2", 2)]
