"""Metering without a simulator: exact prices per token class, dedupe, invoice CSV, reconciliation's failure modes."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from course_utils.pricing import cost
from course_utils.tenancy import Meter, TenantRegistry, invoice_csv, invoice_lines, reconcile, tenant_tag, usage_key

MODEL = "claude-haiku-5-5"


@pytest.fixture()
def tenants():
    reg = TenantRegistry()
    for t in ("acme", "globex"):
        reg.register(t, "pro")
    return reg.context("acme"), reg.context("globex")


def _msg(rid, inp=100, out=50, write=0, read=0, model=MODEL):
    return {
        "_request_id": rid,
        "model": model,
        "usage": {
            "input_tokens": inp,
            "output_tokens": out,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
        },
    }


def _row(key, amount, tag=None, batch=False):
    row = {"request_id": key, "endpoint": "/v1/messages", "batch": batch, "cost_usd": str(amount), "tenant_tag": tag}
    if batch:
        batch_id, custom_id = key.split("/")
        row.update(endpoint="/v1/messages/batches", batch_id=batch_id, custom_id=custom_id, request_id="req_x")
    return row


def test_records_price_every_token_class_and_the_batch_discount(tenants):
    acme, _ = tenants
    meter = Meter()
    r = meter.record(acme, _msg("req_1", write=1000, read=5000))
    assert r.cost_usd == cost(_msg("req_1", write=1000, read=5000)["usage"], MODEL)
    assert r.cache_write_tokens == 1000 and r.cache_read_tokens == 5000
    b = meter.record(acme, _msg(None), batch_id="msgbatch_1", custom_id="a")
    assert b.batch and b.key == "msgbatch_1/a"
    assert b.cost_usd == cost(_msg(None)["usage"], MODEL, batch=True) == cost(_msg(None)["usage"], MODEL) / 2


def test_recording_twice_bills_once_and_bad_input_is_refused(tenants):
    acme, _ = tenants
    meter = Meter()
    meter.record(acme, _msg("req_1"))
    meter.record(acme, _msg("req_1"))
    assert len(meter.records()) == 1
    with pytest.raises(TypeError, match="TenantContext"):
        meter.record("acme", _msg("req_2"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="request-id"):
        meter.record(acme, _msg(None))
    with pytest.raises(ValueError, match="usage and model"):
        meter.record(acme, {"_request_id": "req_3"})
    assert len(meter.records()) == 1  # the refusals recorded nothing


def test_invoice_lines_and_csv_are_exact(tenants):
    acme, globex = tenants
    meter = Meter()
    for i in range(3):
        meter.record(acme, _msg(f"a{i}", inp=333, out=77))
    meter.record(globex, _msg("g0", read=10_000), batch_id="b", custom_id="c")
    lines = invoice_lines(meter.records())
    assert [line.tenant_id for line in lines] == ["acme", "globex"]
    assert lines[0].requests == 3 and lines[0].cost_usd == 3 * cost(_msg("x", inp=333, out=77)["usage"], MODEL)
    assert lines[1].batch_requests == 1
    rows = list(csv.DictReader(io.StringIO(invoice_csv(lines))))
    assert Decimal(rows[0]["cost_usd"]) == lines[0].cost_usd
    assert rows[0]["amount_usd"] == str(lines[0].cost_usd.quantize(Decimal("0.01")))
    assert meter.totals() == {"acme": lines[0].cost_usd, "globex": lines[1].cost_usd}


def test_reconcile_reports_every_kind_of_difference(tenants):
    acme, globex = tenants
    meter = Meter()
    meter.record(acme, _msg("req_a"))
    meter.record(globex, _msg("req_g"))
    meter.record(globex, _msg("req_phantom"))  # metered, never billed
    right = cost(_msg("x")["usage"], MODEL)
    rows = [
        _row("req_a", right),
        _row("req_g", right + Decimal("0.000001")),  # the provider billed something else
        _row("req_lost", Decimal("0.002"), tag=tenant_tag("acme")),
        _row("req_orphan", Decimal("0.003")),
        {"request_id": "req_count", "endpoint": "/v1/messages/count_tokens", "cost_usd": "0"},
    ]
    rec = reconcile(meter.records(), rows, tenant_of_tag={tenant_tag("acme"): "acme"})
    assert not rec.balanced
    assert rec.attributed_by_tag == ["req_lost"] and rec.unattributed == ["req_orphan"]
    assert rec.cost_mismatches == [("req_g", right, right + Decimal("0.000001"))]
    assert rec.not_in_ledger == ["req_phantom"]
    assert rec.ledger_total == 2 * right + Decimal("0.000001") + Decimal("0.005")
    assert rec.per_tenant["acme"] == right + Decimal("0.002")


def test_a_clean_month_balances(tenants):
    acme, globex = tenants
    meter = Meter()
    meter.record(acme, _msg("req_a", read=4000))
    meter.record(globex, _msg(None), batch_id="b1", custom_id="n0")
    rows = [_row("req_a", cost(_msg("x", read=4000)["usage"], MODEL)),
            _row("b1/n0", cost(_msg("x")["usage"], MODEL, batch=True), batch=True)]  # fmt: skip
    rec = reconcile(meter.records(), rows)
    assert rec.balanced and rec.attributed_total == rec.ledger_total


def test_tags_are_opaque_and_keys_are_named_alike():
    assert tenant_tag("acme") != tenant_tag("globex") and "acme" not in tenant_tag("acme")
    assert tenant_tag("acme") == tenant_tag("acme")
    assert usage_key("req_1") == "req_1" and usage_key(batch_id="b", custom_id="c") == "b/c"
    with pytest.raises(ValueError):
        usage_key()
