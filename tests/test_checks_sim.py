"""The checks' probe: an async context manager that owns its clients, and the one ledger cost."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from course_utils import pricing
from course_utils.checks.sim import probe
from course_utils.clock import run_virtual

LONG = "You are a careful support assistant for Acme Cloud. " * 200  # over every model's minimum cacheable prompt


def _body(n: int, model: str = "claude-haiku-5-5", **extra) -> dict:
    return {
        "model": model,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": f"Summarise ticket #{n} in one sentence."}],
        **extra,
    }


def _repriced(rows) -> Decimal:
    """The other definition: price each answered row's usage columns again."""
    total = Decimal(0)
    for r in rows.to_dict("records"):
        if r.get("status") != 200:
            continue
        usage = {
            k: int(r.get(k) or 0)
            for k in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        }
        total += pricing.cost(usage, r["model"], batch=bool(r.get("batch")))
    return total


async def _traffic(p) -> None:
    client = p.async_client()
    lossy = p.async_client(timeout=5.0)
    cached = {"system": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]}
    await client.messages.create(**_body(1))
    await client.messages.create(**_body(2, "claude-sonnet-5-5", **cached))  # cache write
    await client.messages.create(**_body(3, "claude-sonnet-5-5", **cached))  # cache read
    await client.messages.count_tokens(model="claude-haiku-5-5", messages=_body(4)["messages"])
    with pytest.raises(anthropic.APIStatusError):
        await client.messages.create(**_body(5), extra_headers={"x-mock-fault": "overloaded"})
    with pytest.raises(anthropic.APIConnectionError):  # billed, never delivered
        await lossy.messages.create(**_body(6), extra_headers={"x-mock-fault": "lost_response"})


def test_cost_sums_the_ledger_and_agrees_with_repricing_the_usage():
    p = probe(tier="unlimited", tag="test-cost")

    async def go():
        async with p:
            await _traffic(p)

    run_virtual(go())
    rows = p.requests(endpoint=None)
    assert set(rows["status"]) >= {200, 529}  # answered and failed requests both in the ledger
    assert int(rows["cache_read_input_tokens"].sum()) > 0 and int(rows["cache_creation_input_tokens"].sum()) > 0
    cost = p.cost()
    assert isinstance(cost, Decimal) and cost > 0
    assert cost == _repriced(p.requests())
    # Another probe's traffic on the same simulator is not this key's cost.
    assert probe(tag="other").cost() == 0


def test_the_probe_closes_every_client_it_made_however_the_case_ends():
    p = probe(tag="test-close")
    made = []

    async def go():
        async with p:
            made.extend([p.async_client(), p.async_client(), p.client()])
            raise RuntimeError("the case failed")

    with pytest.raises(RuntimeError, match="the case failed"):
        run_virtual(go())
    assert all(c.is_closed() for c in made)
    assert not p._clients  # nothing left to close twice


def test_cost_is_the_ledgers_figure_where_repricing_the_usage_cannot_see_the_price():
    """Why cost() sums cost_usd: a 1-hour cache write costs more than the usage columns say (no TTL in them)."""
    p = probe(tier="unlimited", tag="test-cost-1h")
    one_hour = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]

    async def go():
        async with p:
            await p.async_client().messages.create(**_body(1, "claude-sonnet-5-5", system=one_hour))

    run_virtual(go())
    billed = sum((Decimal(str(r["cost_usd"])) for r in p.server.simulator.ledger.records()), Decimal(0))
    assert p.cost() == billed > _repriced(p.requests())


def test_rows_are_the_requests_without_a_frame():
    """``Probe.rows`` (for polling) holds the rows ``Probe.requests`` tabulates: same requests, same order,
    per endpoint; another key's request on the same simulator is in neither."""
    p = probe(tier="unlimited", tag="test-rows")

    async def go():
        async with p:
            await _traffic(p)
            other = p.server.async_client(api_key="sim-key-someone-else")
            await other.messages.create(**_body(7))
            await other.close()

    run_virtual(go())
    for endpoint in ("/v1/messages", "/v1/messages/count_tokens", None):
        frame = p.requests(endpoint=endpoint)
        assert [r.request_id for r in p.rows(endpoint)] == list(frame["request_id"]), endpoint
    assert len(p.rows(None)) == len(p.rows()) + 1  # the count_tokens request
