"""Simulator support for lesson 07: workspaces under an organization's limits, and the tenant tag
(``metadata.user_id``) on the ledger, reconciled per tenant with metering."""

from __future__ import annotations

import time
from decimal import Decimal

import anthropic
import pytest

from course_utils.clock import VirtualClock
from course_utils.mock_provider.errors import RateLimited
from course_utils.mock_provider.ratelimit import RateLimiter, RateLimits
from course_utils.tenancy import Meter, TenantRegistry, reconcile, tenant_tag

MODEL = "claude-haiku-5-5"
BODY = {"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}


def _limiter(org: RateLimits) -> RateLimiter:
    rl = RateLimiter(VirtualClock(start=1_800_000_000.0), default_tier="unlimited", burst_s=60)
    rl.set_org_limits(org)
    return rl


def _admitted(rl: RateLimiter, key: str, n: int) -> int:
    ok = 0
    for _ in range(n):
        try:
            rl.settle(rl.admit(key, MODEL, input_tokens=10), 5)
            ok += 1
        except RateLimited:
            pass
    return ok


def test_workspaces_share_the_organizations_limit():
    rl = _limiter(RateLimits(10, 10**6, 10**6))
    rl.set_workspace("bulk")
    rl.set_workspace("interactive")
    rl.assign_workspace("k-bulk", "bulk")
    rl.assign_workspace("k-chat", "interactive")
    assert _admitted(rl, "k-bulk", 50) == 10
    with pytest.raises(RateLimited, match="organization's rate limit of 10 requests"):
        rl.admit("k-chat", MODEL, input_tokens=10)  # the noisy neighbour, provider side


def test_a_workspace_limit_protects_the_other_workspaces():
    rl = _limiter(RateLimits(10, 10**6, 10**6))
    rl.set_workspace("bulk", RateLimits(6, 10**6, 10**6))
    rl.set_workspace("interactive")
    rl.assign_workspace("k-bulk", "bulk")
    rl.assign_workspace("k-chat", "interactive")
    assert _admitted(rl, "k-bulk", 50) == 6
    with pytest.raises(RateLimited, match=r"workspace's rate limit of 6 requests .*workspace: bulk") as info:
        rl.admit("k-bulk", MODEL, input_tokens=10)
    assert info.value.headers["retry-after"] == "10"  # 6 per minute: one every 10 s
    assert _admitted(rl, "k-chat", 50) == 4  # what the organization has left


def test_a_workspace_limit_above_the_organizations_is_capped_at_it():
    rl = _limiter(RateLimits(10, 10**6, 10**6))
    rl.set_workspace("big", RateLimits(1000, 10**6, 10**6))
    rl.assign_workspace("k", "big")
    assert _admitted(rl, "k", 50) == 10
    assert rl.headers("k", MODEL)["anthropic-ratelimit-requests-limit"] == "10"


def test_headers_report_the_tighter_of_workspace_and_organization():
    rl = _limiter(RateLimits(10, 10**6, 10**6))
    rl.set_workspace("a", RateLimits(8, 10**6, 10**6))
    rl.set_workspace("b")
    rl.assign_workspace("ka", "a")
    rl.assign_workspace("kb", "b")
    _admitted(rl, "kb", 5)  # the organization has 5 left; workspace a still has 8
    headers = rl.headers("ka", MODEL)
    assert headers["anthropic-ratelimit-requests-remaining"] == "5"
    assert headers["anthropic-ratelimit-requests-limit"] == "10"


def test_unknown_workspace_and_bad_names_are_refused():
    rl = _limiter(RateLimits(10, 10**6, 10**6))
    with pytest.raises(KeyError, match="no workspace 'nope'"):
        rl.assign_workspace("k", "nope")
    with pytest.raises(ValueError, match="workspace name"):
        rl.set_workspace("a b")


def test_keys_outside_workspaces_share_the_organisations_limits():
    # Limits belong to the organisation: a key in the default workspace draws on the same buckets.
    rl = _limiter(RateLimits(10, 10**6, 10**6))
    rl.set_workspace("w")
    rl.assign_workspace("in", "w")
    _admitted(rl, "in", 10)
    assert _admitted(rl, "outside", 20) == 0
    rl.set_tier("other-org", RateLimits(20, 10**6, 10**6))  # another organisation (account)
    assert _admitted(rl, "other-org", 20) == 20


def test_served_workspaces_and_tenant_tags_reach_the_ledger(sim):
    sim.set_org_limits(RateLimits(100, 10**7, 10**7, burst_s=60))
    sim.workspace("bulk", RateLimits(3, 10**7, 10**7, burst_s=60))
    sim.workspace("interactive")
    bulk = sim.tenant("importer", workspace="bulk").client(max_retries=0)
    chat = sim.tenant("chat", workspace="interactive").client(max_retries=0)
    for _ in range(3):
        bulk.messages.create(**BODY, metadata={"user_id": "tnt_a"})
    with pytest.raises(anthropic.RateLimitError, match="workspace's rate limit"):
        bulk.messages.create(**BODY, metadata={"user_id": "tnt_a"})
    chat.messages.create(**BODY, metadata={"user_id": "tnt_b"})
    chat.messages.create(**BODY)
    df = sim.ledger()
    assert list(df["workspace"]) == ["bulk"] * 4 + ["interactive"] * 2
    assert list(df["tenant_tag"].fillna("-")) == ["tnt_a"] * 4 + ["tnt_b", "-"]
    assert list(df["status"]) == [200, 200, 200, 429, 200, 200]


def test_with_tiers_a_key_cannot_also_join_a_workspace(sim):
    with pytest.raises(ValueError, match="workspace"):
        sim.tenant("x", "tier-1", workspace="bulk")


def _wait_ended(client, batch_id: str) -> None:
    for _ in range(500):  # the simulator runs batches at time_scale 0: this polls, it measures nothing
        if client.messages.batches.retrieve(batch_id).processing_status == "ended":
            return
        time.sleep(0.01)
    raise AssertionError("the batch did not end")


def test_metering_reconciles_exactly_with_the_ledger_per_tenant(sim, client):
    """Three tenants behind one provider key: sync calls, prompt-cache reads and writes, and a batch.
    Their charges sum exactly to the ledger's cost; a response the service never metered is
    attributed by its tag; without the tag it is reported unattributed."""
    reg = TenantRegistry()
    for name in ("acme", "globex", "initech"):
        reg.register(name, "pro")
    tenants = {name: reg.context(name) for name in reg}
    meter = Meter()
    long_system = [{"type": "text", "text": "policy " * 8000, "cache_control": {"type": "ephemeral"}}]
    for i, (name, ctx) in enumerate(tenants.items()):
        for j in range(2):
            body = {**BODY, "system": long_system, "metadata": {"user_id": tenant_tag(name)}}
            body["messages"] = [{"role": "user", "content": f"question {i}-{j}"}]
            meter.record(ctx, client.messages.create(**body))
    batch = client.messages.batches.create(
        requests=[
            {"custom_id": f"r{i}", "params": {**BODY, "metadata": {"user_id": tenant_tag("globex")}}} for i in range(3)
        ]
    )
    _wait_ended(client, batch.id)
    for result in client.messages.batches.results(batch.id):
        meter.record(tenants["globex"], result.result.message, batch_id=batch.id, custom_id=result.custom_id)
    # One response "lost": the provider billed it, the service never metered it.
    client.messages.create(**{**BODY, "metadata": {"user_id": tenant_tag("initech")}})
    rows = sim.simulator.ledger.records()
    assert any(r["cache_read_input_tokens"] > 0 for r in rows) and any(
        r["cache_creation_input_tokens"] > 0 for r in rows
    )
    ledger_total = sum(Decimal(r["cost_usd"]) for r in rows)

    tags = {tenant_tag(t): t for t in tenants}
    rec = reconcile(meter.records(), rows, tenant_of_tag=tags)
    assert rec.balanced and rec.ledger_total == ledger_total
    assert sum(rec.per_tenant.values()) == ledger_total
    assert len(rec.attributed_by_tag) == 1 and set(rec.per_tenant) == set(tenants)
    batch_rows = [r for r in rows if r["batch"]]
    assert len(batch_rows) == 3 and all(Decimal(r["cost_usd"]) > 0 for r in batch_rows)

    untagged = reconcile(meter.records(), rows)
    assert not untagged.balanced and len(untagged.unattributed) == 1
    assert (
        untagged.attributed_total
        + Decimal(next(r["cost_usd"] for r in rows if r["request_id"] == untagged.unattributed[0]))
        == ledger_total
    )


def test_metering_without_the_batch_discount_does_not_reconcile(sim, client):
    reg = TenantRegistry()
    reg.register("acme")
    acme = reg.context("acme")
    meter = Meter()
    batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": BODY}])
    _wait_ended(client, batch.id)
    (result,) = list(client.messages.batches.results(batch.id))
    meter.record(acme, result.result.message, request_id="not-the-batch-key")
    rec = reconcile(meter.records(), sim.simulator.ledger.records())
    assert not rec.balanced and rec.unattributed and rec.not_in_ledger == ["not-the-batch-key"]
    with pytest.raises(TypeError, match="exact"):
        reconcile([], [{"endpoint": "/v1/messages", "request_id": "r", "cost_usd": 0.1}])


def test_the_ledger_has_a_per_tenant_view(sim, client):
    for tag, n in (("tnt_a", 2), ("tnt_b", 1)):
        for _ in range(n):
            client.messages.create(**BODY, metadata={"user_id": tag})
    client.messages.create(**BODY)
    by_tag = {row["tenant_tag"]: row for row in sim.simulator.ledger.usage_summary(("tenant_tag",))}
    assert {k: v["requests"] for k, v in by_tag.items()} == {"tnt_a": 2, "tnt_b": 1, None: 1}
    total = sum(Decimal(r["cost_usd"]) for r in sim.simulator.ledger.records())
    assert sum(Decimal(v["cost_usd"]) for v in by_tag.values()) == total
    import httpx

    served = httpx.get(sim.base_url + "/mock/usage", params={"by": "tenant_tag,model"}).json()
    assert sorted((r["tenant_tag"] or "-", r["requests"]) for r in served) == [("-", 1), ("tnt_a", 2), ("tnt_b", 1)]
    assert httpx.get(sim.base_url + "/mock/usage", params={"by": "password"}).status_code == 400
    with pytest.raises(ValueError, match="ledger columns"):
        sim.simulator.ledger.usage_summary(("extra",))
