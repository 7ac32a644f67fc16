"""Context isolation: tenant-scoped cache keys and conversation store; the tenant only from authentication."""

from __future__ import annotations

import random

import pytest

from course_utils.tenancy import (
    ConversationNotFound,
    ConversationStore,
    ModelNotAllowed,
    TenantCache,
    TenantContext,
    TenantRegistry,
    Unauthenticated,
    cache_key,
    check_tenant_id,
)


@pytest.fixture()
def registry():
    reg = TenantRegistry()
    keys = {t: reg.register(t, "pro") for t in ("acme", "globex")}
    return reg, keys


def test_authentication_is_the_only_way_to_a_tenant(registry):
    reg, keys = registry
    assert reg.authenticate(keys["acme"]).tenant_id == "acme"
    for bad in (None, "", "acme", "tk_forged", keys["acme"] + "x"):
        with pytest.raises(Unauthenticated):
            reg.authenticate(bad)
    with pytest.raises(TypeError, match="authenticate"):
        TenantContext("acme", reg.plan_of("acme"))


def test_registration_errors_are_clear():
    reg = TenantRegistry()
    reg.register("acme")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("acme")
    with pytest.raises(ValueError, match="tenant id"):
        reg.register("Acme:1")
    with pytest.raises(ValueError, match="unknown plan"):
        reg.register("b", "platinum")
    assert len(reg) == 1 and "acme" in reg


def test_plans_gate_models(registry):
    reg, _ = registry
    reg.register("tiny", "free")
    reg.context("tiny").check_model("claude-haiku-5-5")
    with pytest.raises(ModelNotAllowed, match="free plan"):
        reg.context("tiny").check_model("claude-opus-5-5")


def test_same_prompt_different_tenants_different_keys(registry):
    reg, keys = registry
    body = {"model": "m", "messages": [{"role": "user", "content": "What is our refund policy?"}]}
    a, g = reg.authenticate(keys["acme"]), reg.authenticate(keys["globex"])
    assert cache_key(a, body) != cache_key(g, body)
    assert cache_key(a, body) == cache_key(a, dict(reversed(list(body.items()))))  # canonical JSON
    with pytest.raises(TypeError, match="TenantContext"):
        cache_key("acme", body)  # type: ignore[arg-type]


def test_cache_cannot_leak_under_random_traffic(registry):
    """Many tenants, colliding prompts, random order: every hit is the tenant's own answer."""
    reg = TenantRegistry()
    for i in range(30):
        reg.register(f"t{i}", "free")
    tenants = [reg.context(t) for t in reg]
    cache = TenantCache(max_entries=500)
    rng = random.Random(7)
    prompts = [f"summarise ticket {i}" for i in range(20)]  # shared across tenants on purpose
    hits = 0
    for _ in range(5000):
        t = rng.choice(tenants)
        body = {"messages": [{"role": "user", "content": rng.choice(prompts)}]}
        got = cache.get(t, body)
        if got is None:
            cache.put(t, body, {"owner": t.tenant_id, "prompt": body["messages"][0]["content"]})
        else:
            hits += 1
            assert got == {"owner": t.tenant_id, "prompt": body["messages"][0]["content"]}
    assert hits > 1000  # the cache works, it just never crosses tenants
    assert cache.clear(tenants[0]) > 0 and len(cache) <= 500


def test_conversations_are_invisible_across_tenants(registry, tmp_path):
    reg, keys = registry
    store = ConversationStore(str(tmp_path / "conv.sqlite"))
    a, g = reg.authenticate(keys["acme"]), reg.authenticate(keys["globex"])
    conv = store.create(a)
    store.append(a, conv, "user", "our Q3 numbers are 1.2M")
    store.append(a, conv, "assistant", [{"type": "text", "text": "noted"}])
    assert store.messages(a, conv)[1] == {"role": "assistant", "content": [{"type": "text", "text": "noted"}]}
    with pytest.raises(ConversationNotFound):
        store.messages(g, conv)
    with pytest.raises(ConversationNotFound):
        store.append(g, conv, "user", "inject")
    assert store.conversations(g) == [] and store.conversations(a) == [conv]
    assert len(store.messages(a, conv)) == 2  # the failed append wrote nothing
    with pytest.raises(ValueError, match="role"):
        store.append(a, conv, "system", "x")
    with pytest.raises(TypeError):
        store.messages("acme", conv)  # type: ignore[arg-type]
    assert store.delete_tenant(a) == 1 and store.conversations(a) == []
    store.close()


def test_keys_plans_and_ids():
    reg = TenantRegistry()
    first = reg.register("acme", "free")
    second = reg.issue_key("acme")
    assert first != second and reg.authenticate(second).tenant_id == "acme"
    reg.set_plan("acme", "enterprise")
    assert reg.authenticate(first).plan.name == "enterprise"
    assert first not in repr(reg.__dict__) and second not in repr(reg.__dict__)  # stored as digests only
    for missing in (lambda: reg.issue_key("nope"), lambda: reg.set_plan("nope", "pro"), lambda: reg.context("nope")):
        with pytest.raises(KeyError):
            missing()
    for bad in ("", "UPPER", "a:b", "x" * 65, 5):
        with pytest.raises(ValueError):
            check_tenant_id(bad)
    assert check_tenant_id("t-01_a") == "t-01_a"
