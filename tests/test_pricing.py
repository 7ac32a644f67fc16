"""Price table and cost arithmetic (course_utils.pricing)."""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest
from anthropic.types import CacheCreation, Usage

from course_utils.models import DATA_DIR, catalog
from course_utils.pricing import (
    PRICES,
    ModelPrice,
    UnknownPriceError,
    cost,
    cost_breakdown,
    format_usd,
    price,
    resolve_model,
)

M = 1_000_000


def test_every_catalog_model_has_exactly_one_price_row():
    # Every model that can answer has a price (snapshot ids through their alias); retired ones need none.
    served = {m for m, spec in catalog().items() if spec.tier != "retired"}
    assert {resolve_model(m) for m in served} == set(PRICES())
    for m in served:
        assert price(m).model == resolve_model(m)
    with open(DATA_DIR / "pricing.csv", encoding="utf-8") as fh:
        rows = list(csv.reader(line for line in fh if line.strip() and not line.startswith("#")))
    ids = [r[0] for r in rows[1:]]
    assert len(ids) == len(set(ids))


def test_price_rows_are_decimal_and_frozen():
    p = price("claude-sonnet-5-5")
    assert isinstance(p, ModelPrice)
    assert all(isinstance(getattr(p, f), Decimal) for f in ("input_per_mtok", "output_per_mtok", "batch_discount"))
    with pytest.raises(Exception):
        p.input_per_mtok = Decimal(0)  # type: ignore[misc]


def test_published_multipliers_hold_for_cache_writes():
    for p in PRICES().values():
        assert p.cache_write_5m_per_mtok == p.input_per_mtok * Decimal("1.25")
        assert p.cache_write_1h_per_mtok == p.input_per_mtok * 2
        assert p.batch_discount == Decimal("0.5")


def test_teaching_model_is_priced_like_haiku_4_5():
    a, b = price("sim-teaching-4k"), price("claude-haiku-4-5")
    assert (
        a.input_per_mtok,
        a.cache_write_5m_per_mtok,
        a.cache_write_1h_per_mtok,
        a.cache_read_per_mtok,
        a.output_per_mtok,
    ) == (
        b.input_per_mtok,
        b.cache_write_5m_per_mtok,
        b.cache_write_1h_per_mtok,
        b.cache_read_per_mtok,
        b.output_per_mtok,
    )


@pytest.mark.parametrize(
    "field, expected",
    [
        ("input_tokens", Decimal(4)),
        ("output_tokens", Decimal(20)),
        ("cache_read_input_tokens", Decimal("0.20")),
        ("cache_creation_input_tokens", Decimal(5)),  # no TTL breakdown -> 5m write
    ],
)
def test_one_million_of_each_field(field, expected):
    usage = {"input_tokens": 0, "output_tokens": 0, field: M}
    assert cost(usage, "claude-opus-5-5") == expected


def test_all_fields_sum_exactly():
    usage = {
        "input_tokens": 1234,
        "output_tokens": 567,
        "cache_read_input_tokens": 89_000,
        "cache_creation_input_tokens": 3000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    }
    # haiku 4.5: 1 / 1.25 / 2 / 0.10 / 5 per MTok
    expected = (
        Decimal(1234) * 1
        + Decimal(1000) * Decimal("1.25")
        + Decimal(2000) * 2
        + Decimal(89_000) * Decimal("0.10")
        + Decimal(567) * 5
    ) / M
    assert cost(usage, "claude-haiku-4-5") == expected == Decimal("0.018219")
    parts = cost_breakdown(usage, "claude-haiku-4-5")
    assert sum(parts.values()) == expected
    assert parts["cache_write_1h"] == Decimal("0.004")


def test_5m_and_1h_writes_are_priced_differently():
    five = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": M,
        "cache_creation": {"ephemeral_5m_input_tokens": M, "ephemeral_1h_input_tokens": 0},
    }
    hour = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": M,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": M},
    }
    assert cost(five, "claude-sonnet-5-5") == Decimal("2.50")
    assert cost(hour, "claude-sonnet-5-5") == Decimal(4)


def test_unbroken_down_remainder_is_a_5m_write():
    usage = {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 3000,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1000},
    }
    parts = cost_breakdown(usage, "claude-haiku-4-5")
    assert parts["cache_write_1h"] == Decimal(1000) * 2 / M
    assert parts["cache_write_5m"] == Decimal(2000) * Decimal("1.25") / M


def test_sdk_usage_object_matches_dict():
    sdk = Usage(
        input_tokens=2048,
        output_tokens=512,
        cache_read_input_tokens=10_000,
        cache_creation_input_tokens=4096,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=4096, ephemeral_1h_input_tokens=0),
    )
    assert cost(sdk, "claude-sonnet-4-6") == cost(sdk.model_dump(), "claude-sonnet-4-6")
    assert (
        cost(sdk, "claude-sonnet-4-6")
        == (Decimal(2048) * 3 + Decimal(4096) * Decimal("3.75") + Decimal(10_000) * Decimal("0.30") + Decimal(512) * 15)
        / M
    )


def test_none_and_missing_fields_count_as_zero():
    sdk = Usage(input_tokens=100, output_tokens=10)  # cache fields None
    assert sdk.cache_creation is None and sdk.cache_read_input_tokens is None
    assert cost(sdk, "claude-haiku-5-5") == (Decimal(100) * Decimal("0.10") + Decimal(10) * Decimal("0.50")) / M
    assert cost(
        {"output_tokens": 1000, "cache_creation": None, "cache_read_input_tokens": None}, "claude-haiku-5-5"
    ) == Decimal("0.0005")


def test_batch_discount_halves_every_token_type():
    usage = {
        "input_tokens": 1000,
        "output_tokens": 1000,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 2000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 1000},
    }
    full = cost_breakdown(usage, "claude-opus-5-5")
    half = cost_breakdown(usage, "claude-opus-5-5", batch=True)
    for key in full:
        assert half[key] * 2 == full[key]
    assert cost(usage, "claude-opus-5-5", batch=True) * 2 == cost(usage, "claude-opus-5-5")


def test_unknown_model_error_lists_known_models():
    with pytest.raises(KeyError) as info:
        price("claude-nonexistent-9")
    err = info.value
    assert isinstance(err, UnknownPriceError)
    assert "claude-nonexistent-9" in str(err) and "claude-haiku-5-5" in str(err)
    with pytest.raises(UnknownPriceError):
        cost({"input_tokens": 1, "output_tokens": 1}, "gpt-4o")


def test_exact_ids_only_but_documented_snapshot_alias_maps():
    assert price("claude-haiku-4-5-20251001") == price("claude-haiku-4-5")
    for near_miss in ("claude-haiku-4.5", "Claude-Haiku-4-5", "claude-haiku-4-5-latest", "claude-opus-5-5-20261014"):
        with pytest.raises(UnknownPriceError):
            price(near_miss)


def test_bad_counts_are_rejected():
    with pytest.raises(ValueError):
        cost({"input_tokens": -1, "output_tokens": 0}, "claude-haiku-4-5")
    with pytest.raises(TypeError):
        cost({"input_tokens": "12", "output_tokens": 0}, "claude-haiku-4-5")


@pytest.mark.parametrize(
    "amount, text",
    [
        (Decimal("0.0123"), "$0.0123"),
        (Decimal("0.01234"), "$0.0123"),
        (Decimal("0.00005"), "$0.000050"),
        (Decimal("0.0000153"), "$0.000015"),
        (Decimal(0), "$0.0000"),
        (Decimal("1234.5"), "$1,234.5000"),
        (Decimal("-0.5"), "-$0.5000"),
    ],
)
def test_format_usd(amount, text):
    assert format_usd(amount) == text


def test_haiku_5_5_long_prompt_tier_prices_every_token_higher():
    short = cost({"input_tokens": 100_000, "output_tokens": 1_000}, "claude-haiku-5-5")
    long = cost({"input_tokens": 100_001, "output_tokens": 1_000}, "claude-haiku-5-5")
    assert short == Decimal("0.0105")  # 100k * 0.10 + 1k * 0.50, per million
    assert long == (Decimal(100_001) * Decimal("0.10") + Decimal(1_000) * Decimal("0.50")) * 5 / 1_000_000
    # cache reads count toward the prompt length that decides the tier
    tiered = cost({"input_tokens": 10, "cache_read_input_tokens": 100_000, "output_tokens": 0}, "claude-haiku-5-5")
    assert tiered == (Decimal(10) * Decimal("0.10") + Decimal(100_000) * Decimal("0.01")) * 5 / 1_000_000
    # other models have no tier
    assert cost({"input_tokens": 500_000}, "claude-sonnet-5-5") == Decimal(1)
