"""Metering without a simulator: exact prices per token class, dedupe, invoice CSV, reconciliation's failure modes."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from course_utils.pricing import cost
from course_utils.tenancy import (
    Meter,
    TenantRegistry,
    invoice_csv,
    invoice_lines,
    reconcile,
    reconcile_report,
    tenant_tag,
    usage_key,
)

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


# --- Pending rows at reservation, reconciled against the provider's totals per key and model ---


def _totals(*groups):
    return [{"api_key": k, "model": m, "batch": b, "cost_usd": str(c)} for k, m, b, c in groups]


def test_a_lost_answer_leaves_its_pending_row_and_is_charged_the_groups_gap(tenants):
    acme, globex = tenants
    meter = Meter()
    p1 = meter.pending(acme, api_key="key-pro", model=MODEL, estimate=Decimal("0.01"))
    meter.record(acme, _msg("req_1"), pending_id=p1)
    p2 = meter.pending(globex, api_key="key-pro", model=MODEL, estimate=Decimal("0.01"))  # its answer is lost
    assert [p.pending_id for p in meter.pending_rows()] == [p2]
    lost = cost(_msg("x", inp=300)["usage"], MODEL)
    billed = cost(_msg("req_1")["usage"], MODEL) + lost
    rec = reconcile_report(meter.records(), meter.pending_rows(), _totals(("key-pro", MODEL, False, billed)))
    assert rec.balanced and rec.attributed_total == rec.provider_total == billed
    assert rec.per_tenant["globex"] == lost and rec.charged_pending == {p2: lost}
    assert [g.outcome for g in rec.groups] == ["lost answer"]
    assert meter.records()[0].api_key == "key-pro"


def test_several_lost_answers_in_a_group_are_split_by_estimate_and_flagged(tenants):
    acme, globex = tenants
    meter = Meter()
    meter.pending(acme, api_key="k", model=MODEL, estimate=Decimal("0.03"))
    meter.pending(globex, api_key="k", model=MODEL, estimate=Decimal("0.01"))
    rec = reconcile_report([], meter.pending_rows(), _totals(("k", MODEL, False, Decimal("0.0008"))))
    assert rec.per_tenant == {"acme": Decimal("0.0006"), "globex": Decimal("0.0002")}
    assert rec.balanced and len(rec.estimated) == 1


def test_uneven_splits_still_add_up_exactly(tenants):
    acme, globex = tenants
    meter = Meter()
    for t in (acme, globex, acme):
        meter.pending(t, api_key="k", model=MODEL, estimate=Decimal("0.01"))
    rec = reconcile_report([], meter.pending_rows(), _totals(("k", MODEL, False, Decimal("0.0000001"))))
    assert rec.attributed_total == Decimal("0.0000001") and rec.balanced


def test_gaps_nothing_explains_are_reported_not_absorbed(tenants):
    acme, _ = tenants
    meter = Meter()
    meter.record(acme, _msg("req_1"), api_key="k")
    one = cost(_msg("req_1")["usage"], MODEL)
    # The provider billed more, and no pending row explains it (a request sent without metering).
    rec = reconcile_report(meter.records(), [], _totals(("k", MODEL, False, one * 2)))
    assert not rec.balanced and [g.outcome for g in rec.unexplained] == ["unexplained"]
    # The meter says more than the provider billed (e.g. a key or model recorded wrongly).
    rec = reconcile_report(meter.records(), [], _totals(("k", MODEL, False, one / 2)))
    assert not rec.balanced and rec.unexplained[0].gap_usd == one / 2 - one
    # Metered under the wrong key: both groups disagree.
    rec = reconcile_report(meter.records(), [], _totals(("other", MODEL, False, one)))
    assert not rec.balanced and len(rec.unexplained) == 2


def test_pending_rows_of_a_group_with_no_gap_are_charged_nothing(tenants):
    acme, globex = tenants
    meter = Meter()
    p = meter.pending(acme, api_key="k", model=MODEL, estimate=Decimal("0.01"))
    meter.record(acme, _msg("req_1"), pending_id=p)
    q = meter.pending(globex, api_key="k", model=MODEL, estimate=Decimal("0.01"))  # failed, never billed
    rec = reconcile_report(
        meter.records(), meter.pending_rows(), _totals(("k", MODEL, False, cost(_msg("r")["usage"], MODEL)))
    )
    assert rec.balanced and rec.charged_pending == {q: Decimal(0)} and "globex" not in rec.per_tenant


def test_batch_and_standard_are_separate_groups(tenants):
    acme, _ = tenants
    meter = Meter()
    meter.record(acme, _msg(None), batch_id="b", custom_id="1", api_key="k")
    meter.record(acme, _msg("req_1"), api_key="k")
    half = cost(_msg("r")["usage"], MODEL, batch=True)
    full = cost(_msg("r")["usage"], MODEL)
    rec = reconcile_report(meter.records(), [], _totals(("k", MODEL, True, half), ("k", MODEL, False, full)))
    assert rec.balanced and [g.outcome for g in rec.groups] == ["exact", "exact"]
    with pytest.raises(TypeError):
        reconcile_report([], [], [{"api_key": "k", "model": MODEL, "batch": False, "cost_usd": 0.1}])


def test_pending_rows_are_settled_once_by_their_own_tenant(tenants):
    acme, globex = tenants
    meter = Meter()
    p = meter.pending(acme, api_key="k", model=MODEL, estimate=Decimal("0.01"))
    with pytest.raises(ValueError, match="settled as"):
        meter.record(globex, _msg("req_1"), pending_id=p)
    meter.record(acme, _msg("req_1"), pending_id=p)
    with pytest.raises(KeyError):
        meter.record(acme, _msg("req_2"), pending_id=p)
    q = meter.pending(acme, api_key="k", model=MODEL, estimate=Decimal("0.01"))
    meter.cancel(q)
    assert meter.pending_rows() == []
    with pytest.raises(ValueError):
        meter.pending(acme, api_key="k", model=MODEL, estimate=Decimal(-1))
    with pytest.raises(TypeError):
        meter.pending("acme", api_key="k", model=MODEL, estimate=Decimal(1))
