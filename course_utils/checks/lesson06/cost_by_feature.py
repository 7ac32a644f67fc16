"""Checks for exercise 6.1 ``cost_by_feature``: a cost report from a ledger slice, exact to the last digit
(every token class at its rate, the batch discount, the long-prompt tier, 200 seeded random rows)."""

from __future__ import annotations

import copy
import random
from decimal import Decimal
from typing import Any

from ... import pricing
from ...cost import attribution
from ..forbid import forbid
from ..framework import CaseFailed, Exercise, expect

from .common import CHEAP, MID


# =============================================================================================
# 6.1 cost_by_feature(rows) -> dict[str, Decimal]
# =============================================================================================
report = Exercise(
    "6.1",
    "A cost report from a ledger slice",
    points=3,
    signature="cost_by_feature(rows) -> dict[str, Decimal]",
    hints=[
        "Per row: p = pricing.price(row['model']); input at p.input_per_mtok, cache_read_input_tokens at "
        "p.cache_read_per_mtok, cache_creation_5m at p.cache_write_5m_per_mtok, cache_creation_1h at "
        "p.cache_write_1h_per_mtok, output at p.output_per_mtok; all / Decimal(1_000_000); times p.batch_discount "
        "when row['batch'] is true. Sum per row['feature'].",
        "Keep every step in Decimal (rates are Decimal, counts int) and do not round: return the exact sums.",
    ],
)

_COST_SHORTCUTS = {
    "pricing.cost": pricing.cost,
    "pricing.cost_breakdown": pricing.cost_breakdown,
    "cost.row_cost": attribution.row_cost,
    "cost.cost_frame": attribution.cost_frame,
    "cost.cost_report": attribution.cost_report,
}
_COST_HINT = (
    "This exercise asks you to price each token class yourself with pricing.price(model); {name} does it for you."
)


def _row(feature: str, model: str, batch: bool = False, **tokens: int) -> dict[str, Any]:
    base = dict.fromkeys(attribution.LEDGER_COLUMNS[4:], 0)
    return {"ts": "2027-01-15T10:00:00Z", "feature": feature, "model": model, "batch": batch, **base, **tokens}


def _reference_report(rows: list[dict]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for r in rows:
        out[r["feature"]] = out.get(r["feature"], Decimal(0)) + attribution.row_cost(r)
    return out


def _run_report(fn: Any, rows: list[dict], what: str) -> dict:
    given = copy.deepcopy(rows)
    with forbid(fn, _COST_SHORTCUTS, task="price the ledger", hint=_COST_HINT):
        got = fn(given)
    if given != rows:
        raise CaseFailed(
            f"{what}: your function changed the rows it was given",
            expected="the ledger rows left as they were",
            got="changed rows",
            hint="Read the counts into local variables; the ledger is a record, not scratch space.",
        )
    if not isinstance(got, dict):
        raise CaseFailed(
            f"{what}: not a dict",
            expected="{feature: Decimal}",
            got=type(got).__name__,
            hint="Return a dict mapping each feature to its Decimal total.",
        )
    return got


def _compare_report(got: dict, expected: dict, what: str, hint: str) -> None:
    for feature, value in got.items():
        if not isinstance(value, Decimal):
            raise CaseFailed(
                f"{what}: the cost of {feature!r} is a {type(value).__name__}, not a Decimal",
                expected=expected.get(feature),
                got=value,
                hint="Money is Decimal end to end: pricing.price() rates are Decimal; multiply them by int counts.",
            )
    if set(got) != set(expected):
        raise CaseFailed(
            f"{what}: wrong features",
            expected=sorted(expected),
            got=sorted(got),
            hint="One entry per row['feature'] that appears in the rows, no other.",
        )
    for feature, want in expected.items():
        have = got[feature]
        if have != want:
            cause = hint
            if have == want.quantize(Decimal("0.0001")) or have == want.quantize(Decimal("0.01")):
                cause = "Your total is rounded; return it exactly and round only for display."
            elif abs(have - want) <= abs(want) * Decimal("1e-9"):
                cause = (
                    "Your total is off in its last digits: a step went through a float (float(rate), / 1e6, "
                    "Decimal(a_float)). Keep every step in Decimal and divide by Decimal(1_000_000)."
                )
            raise CaseFailed(f"{what}: the cost of {feature!r} is wrong", expected=want, got=have, hint=cause)


@report.case("uncached input and output, per feature, exact to the last digit")
def _plain_rows(fn) -> None:
    rows = [
        _row("chat", MID, input_tokens=1_234, output_tokens=567),
        _row("faq", CHEAP, input_tokens=3, output_tokens=1),
    ]
    rows += [_row("faq", CHEAP, input_tokens=7, output_tokens=3) for _ in range(999)]
    expected = _reference_report(rows)
    _compare_report(
        _run_report(fn, rows, "plain rows"), expected, "plain rows", "Price input and output at their rates."
    )


@report.case("cache reads at the read rate, 5-minute writes at 1.25x, 1-hour writes at 2x")
def _cache_rows(fn) -> None:
    rows = [
        _row("chat", MID, input_tokens=100, cache_read_input_tokens=20_000, output_tokens=200),
        _row("docs", "claude-haiku-4-5", cache_creation_5m=10_000, output_tokens=50),
        _row("docs", "claude-haiku-4-5", cache_creation_1h=10_000, output_tokens=50),
        _row("docs", "claude-haiku-4-5", input_tokens=10, cache_read_input_tokens=10_000, output_tokens=50),
    ]
    expected = _reference_report(rows)
    _compare_report(
        _run_report(fn, rows, "rows with cache reads and writes"),
        expected,
        "rows with cache reads and writes",
        "Cache tokens are not input tokens: reads cost p.cache_read_per_mtok (0.1x input on Haiku 4.5), 5-minute "
        "writes p.cache_write_5m_per_mtok (1.25x) and 1-hour writes p.cache_write_1h_per_mtok (2x).",
    )


@report.case("batch rows at the batch discount (every token class)")
def _batch_rows(fn) -> None:
    rows = [
        _row("summaries", MID, batch=True, input_tokens=2_600, output_tokens=300),
        _row("summaries", MID, batch=True, input_tokens=50, cache_creation_1h=5_000, cache_read_input_tokens=9_000),
        _row("chat", MID, batch=False, input_tokens=2_600, output_tokens=300),
    ]
    expected = _reference_report(rows)
    _compare_report(
        _run_report(fn, rows, "batch rows"),
        expected,
        "batch rows",
        "Message Batches bill every token class at p.batch_discount (0.5) of the standard price: multiply the "
        "whole row's cost when row['batch'] is true.",
    )


@report.case("200 random rows across models, cache classes and batch flags (seeded) match the reference")
def _random_rows(fn) -> None:
    rng = random.Random(61)
    models = [CHEAP, MID, "claude-opus-5-5", "claude-haiku-4-5", "claude-sonnet-4-6"]
    rows = []
    for _ in range(200):
        counts = {
            k: rng.choice([0, 0, rng.randint(1, 50_000)])
            for k in ("input_tokens", "cache_creation_5m", "cache_creation_1h", "cache_read_input_tokens")
        }
        counts["output_tokens"] = rng.randint(0, 4_000)
        rows.append(_row(rng.choice(["chat", "faq", "summaries"]), rng.choice(models), rng.random() < 0.3, **counts))
    _compare_report(
        _run_report(fn, rows, "random rows"),
        _reference_report(rows),
        "random rows",
        "Check each token class against its own rate on every model (read the rates from pricing.price(model); "
        "Opus 5.5 reads cost 0.05x input, not 0.1x), the long-prompt tier per row (each row is one request: "
        "never sum rows before the threshold test) and the batch discount on batch rows.",
    )


@report.case("the long-prompt tier: a Haiku 5.5 prompt over 100,000 tokens pays 5x on every token class")
def _long_prompt_rows(fn) -> None:
    threshold = pricing.price(CHEAP).long_prompt_threshold or 100_000
    rows = [
        _row("research", CHEAP, input_tokens=threshold + 1, output_tokens=2_000),  # just over: the tier
        _row("research", CHEAP, input_tokens=threshold, output_tokens=2_000),  # exactly at it: not over
        _row("digest", CHEAP, input_tokens=40_000, cache_read_input_tokens=70_000, output_tokens=500),  # reads count
        _row("digest", CHEAP, batch=True, cache_creation_1h=60_000, cache_creation_5m=50_000, output_tokens=100),
        _row("digest", MID, input_tokens=150_000, output_tokens=100),  # a model without the tier
    ]
    _compare_report(
        _run_report(fn, rows, "long prompts"),
        _reference_report(rows),
        "long prompts",
        "Above p.long_prompt_threshold prompt tokens (input + cache reads + both cache writes; strictly above) the "
        "whole request, output included, costs p.long_prompt_multiplier times more; models whose threshold is None "
        "have no such tier.",
    )


@report.case("an empty slice is an empty report")
def _empty(fn) -> None:
    got = _run_report(fn, [], "an empty slice")
    expect(
        got == {},
        "an empty slice gave a non-empty report",
        expected={},
        got=got,
        hint="No rows, no features: start from an empty dict and add only features that appear.",
    )
