"""Checks for exercise 7.5 ``tenant_charges``: exact Decimal charges per tenant that sum to the provider's ledger."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from ... import tenancy
from ... import pricing
from ...pricing import price
from ...tenancy import tenant_tag
from ..framework import CaseFailed, Exercise, expect
from ..sim import probe
from .common import MODEL, money, request_body


# =============================================================================================
# 7.5 tenant_charges(usage_rows) -> dict[str, Decimal]
# =============================================================================================
reconciliation = Exercise(
    "7.5",
    "Reconcile tenants with the provider's ledger",
    points=3,
    signature="tenant_charges(rows) -> dict[str, Decimal]",
    # pricing.cost is allowed (the hint invites it); the tenancy package's own reconciliation is not.
    reference={"tenancy.reconcile": tenancy.reconcile, "tenancy.invoice_lines": tenancy.invoice_lines},
    task="charge each tenant",
    hints=[
        "Price each row with course_utils.pricing.cost(usage, row['model'], batch=row['batch']): it prices "
        "uncached input, cache writes, cache reads and output at their own rates and applies the batch discount.",
        "Sum Decimals per tenant, and never round per row: the provider bills each request exactly, and "
        "float or per-row cent rounding leaves the total off.",
    ],
)

_LONG_SYSTEM = "You answer questions about the account's contracts. " + "Clause text. " * 2600


async def _month(p: Any, tags: dict[str, str]) -> None:
    """A small month of three tenants behind one key: cached prompts (writes, then reads) and a batch."""
    client = p.async_client()
    system = [{"type": "text", "text": _LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    async with p:
        for round_ in range(2):
            for tenant, tag in tags.items():
                await client.messages.create(
                    model="claude-sonnet-5-5",
                    max_tokens=300,
                    system=system,
                    messages=[{"role": "user", "content": f"{tenant}: question {round_}"}],
                    metadata={"user_id": tag},
                )
        batch = await client.messages.batches.create(
            requests=[
                {
                    "custom_id": f"r{i}",
                    "params": {
                        "model": "claude-opus-5-5",
                        "max_tokens": 400,
                        "messages": [{"role": "user", "content": f"Summarise contract {i} in detail."}],
                        "metadata": {"user_id": tags["globex"]},
                    },
                }
                for i in range(4)
            ]
        )
        while (await client.messages.batches.retrieve(batch.id)).processing_status != "ended":
            await asyncio.sleep(10)
        for i in range(3):
            await client.messages.create(**request_body(f"short question {i}", tags["initech"]))


def _usage_rows(p: Any, tags: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Decimal]]:
    tenant_of = {tag: t for t, tag in tags.items()}
    rows, expected = [], {}
    for r in p.server.simulator.ledger.records():
        if Decimal(r["cost_usd"]) == 0:
            continue
        tenant = tenant_of[r["tenant_tag"]]
        rows.append(
            {
                "tenant": tenant,
                "model": r["model"],
                "batch": bool(r["batch"]),
                "input_tokens": r["input_tokens"],
                "cache_creation_input_tokens": r["cache_creation_input_tokens"],
                "cache_read_input_tokens": r["cache_read_input_tokens"],
                "output_tokens": r["output_tokens"],
            }
        )
        expected[tenant] = expected.get(tenant, Decimal(0)) + Decimal(r["cost_usd"])
    return rows, expected


def _charges(fn: Any, rows: list[dict[str, Any]]) -> dict[str, Decimal]:
    got = fn([dict(r) for r in rows])
    if not isinstance(got, dict):
        raise CaseFailed(
            "tenant_charges must return a dict",
            expected="{tenant: Decimal}",
            got=type(got).__name__,
            hint="Return {tenant: Decimal}.",
        )
    for tenant, amount in got.items():
        if not isinstance(amount, Decimal):
            raise CaseFailed(
                f"tenant {tenant}'s charge is a {type(amount).__name__}, not a Decimal",
                expected="Decimal",
                got=amount,
                hint="Money must stay exact: floats add up to a total the provider never billed. Use Decimal "
                "throughout (course_utils.pricing.cost returns one).",
            )
    return got


@reconciliation.case("the tenants' charges sum exactly to the provider ledger (cache and batch pricing)")
async def _exact(fn) -> None:
    p = probe(tier="unlimited", time_scale=0.0, tag="check07")
    tags = {t: tenant_tag(t) for t in ("acme", "globex", "initech")}
    await _month(p, tags)
    rows, expected = _usage_rows(p, tags)
    got = _charges(fn, rows)
    ledger_total = sum(expected.values(), Decimal(0))
    total = sum(got.values(), Decimal(0))
    kinds = []
    if any(r["cache_read_input_tokens"] or r["cache_creation_input_tokens"] for r in rows):
        kinds.append("cache reads/writes")
    if any(r["batch"] for r in rows):
        kinds.append("batch requests")
    expect(
        total == ledger_total,
        f"the tenants' charges sum to {money(total)} but the provider billed {money(ledger_total)} "
        f"(off by {money(total - ledger_total)}; this month has {' and '.join(kinds)})",
        expected=money(ledger_total),
        got=money(total),
        hint="Cache reads cost 0.1x input, cache writes 1.25x (5 min) or 2x (1 h), and batch requests half "
        "price: pricing.cost(row, row['model'], batch=row['batch']) prices them all. Never round per row.",
    )
    for tenant, amount in expected.items():
        expect(
            got.get(tenant) == amount,
            f"tenant {tenant} was charged {money(got.get(tenant, Decimal(0)))}; its requests cost {money(amount)}",
            expected=money(amount),
            got=money(got.get(tenant, Decimal(0))),
            hint="Charge each row to its own row['tenant'].",
        )


LONG_PROMPT_TIER_STATED = True
"""Exercise 7.5's statement names Haiku 5.5's long-prompt tier, so a charge priced without it fails."""


def _untiered(row: dict[str, Any]) -> Decimal:
    """A row priced as the statement reads today: every class at its rate, the batch discount, no tier."""
    p = price(row["model"])
    total = (
        row["input_tokens"] * p.input_per_mtok
        + row["cache_creation_input_tokens"] * p.cache_write_5m_per_mtok
        + row["cache_read_input_tokens"] * p.cache_read_per_mtok
        + row["output_tokens"] * p.output_per_mtok
    ) / Decimal(1_000_000)
    return total * p.batch_discount if row["batch"] else total


@reconciliation.case("a prompt over Haiku 5.5's 100,000 tokens is billed at its long-prompt tier")
def _long_prompt(fn) -> None:
    def row(tenant: str, batch: bool = False, **tokens: int) -> dict[str, Any]:
        counts = {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        return {"tenant": tenant, "model": MODEL, "batch": batch, **counts, "output_tokens": 700, **tokens}

    rows = [
        row("acme", input_tokens=120_000),
        row("acme", input_tokens=100_000),  # at the threshold, not over it
        row("globex", input_tokens=30_000, cache_read_input_tokens=80_000),  # reads are prompt tokens
        row("initech", batch=True, cache_creation_input_tokens=101_000),
        row("initech", input_tokens=2_000),
    ]
    provider: dict[str, Decimal] = {}
    plain: dict[str, Decimal] = {}
    for r in rows:
        billed = pricing.cost({k: v for k, v in r.items() if k.endswith("tokens")}, r["model"], batch=r["batch"])
        provider[r["tenant"]] = provider.get(r["tenant"], Decimal(0)) + billed
        plain[r["tenant"]] = plain.get(r["tenant"], Decimal(0)) + _untiered(r)
    got = _charges(fn, rows)
    if got == provider or (not LONG_PROMPT_TIER_STATED and got == plain):
        return
    wrong = next(t for t in provider if got.get(t) != provider[t])
    expect(
        False,
        f"tenant {wrong} was charged {money(got.get(wrong, Decimal(0)))} for long prompts; the provider bills "
        f"{money(provider[wrong])}",
        expected=money(provider[wrong]),
        got=money(got.get(wrong, Decimal(0))),
        hint="Haiku 5.5 bills a request whose prompt (input + cache writes + cache reads) is over 100,000 tokens "
        "at 5x on every token class (price(model).long_prompt_threshold and .long_prompt_multiplier); "
        "pricing.cost applies it.",
    )


@reconciliation.case("an empty month charges nobody, and the rows are not modified")
def _empty(fn) -> None:
    got = _charges(fn, [])
    expect(
        got == {} or all(v == 0 for v in got.values()),
        "an empty month produced charges",
        got=got,
        hint="No rows, no charges: start from an empty dict.",
    )
    row = {
        "tenant": "acme",
        "model": MODEL,
        "batch": False,
        "input_tokens": 1234,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 56,
    }
    original = dict(row)
    fn([row])
    expect(
        row == original,
        "tenant_charges modified its input rows",
        expected=original,
        got=row,
        hint="Read the rows; keep your sums in a dict of your own.",
    )
