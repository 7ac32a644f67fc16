"""Checks for exercise 7.3 ``tenant_cache_key``: keys from the authenticated tenant and the whole request."""

from __future__ import annotations

import copy
import random
from typing import Any

from ... import tenancy
from ...tenancy import TenantRegistry, tenant_tag
from ..another_process import another_process
from ..framework import CaseFailed, Exercise, expect
from .common import request_body


# =============================================================================================
# 7.3 tenant_cache_key(tenant, body) -> str
# =============================================================================================
isolation = Exercise(
    "7.3",
    "Tenant-scoped cache keys",
    points=3,
    signature="tenant_cache_key(tenant: TenantContext, body: dict) -> str",
    reference={"tenancy.cache_key": tenancy.cache_key, "tenancy.TenantCache": tenancy.TenantCache},
    task="key a tenant's cache",
    hints=[
        "Hash the authenticated tenant's id together with the whole request: json.dumps(body, sort_keys=True) "
        "makes equal requests equal strings.",
        "Take the tenant from tenant.tenant_id (authentication), never from the body: a user controls the body, "
        "including metadata.user_id.",
    ],
)

_PROMPTS = [f"Summarise the open tickets of account {i}." for i in range(12)]


def _registry(n: int) -> tuple[TenantRegistry, list[Any]]:
    reg = TenantRegistry()
    for i in range(n):
        reg.register(f"t{i:02d}", "pro")
    return reg, [reg.context(t) for t in reg]


def _key(fn: Any, tenant: Any, body: dict) -> str:
    given = copy.deepcopy(body)
    key = fn(tenant, given)
    if given != body:
        raise CaseFailed(
            "tenant_cache_key changed the request body it was given",
            expected=body,
            got=given,
            hint="Key a serialisation of the body; never write the tenant (or anything) into the caller's dict: "
            "the same body is sent to the provider next.",
        )
    if not isinstance(key, str) or not key:
        raise CaseFailed(
            "tenant_cache_key must return a non-empty str",
            expected="a str",
            got=key,
            hint="Return a string, e.g. a sha256 hex digest.",
        )
    return key


@isolation.case("colliding prompts of many tenants never meet (randomized attack)")
def _collide(fn) -> None:
    _, tenants = _registry(30)
    rng = random.Random(11)
    cache: dict[str, tuple[str, str]] = {}
    for n in range(3000):
        tenant = rng.choice(tenants)
        prompt = rng.choice(_PROMPTS)
        body = request_body(prompt)  # the same questions, word for word, from every tenant
        key = _key(fn, tenant, body)
        owner, answered = cache.setdefault(key, (tenant.tenant_id, prompt))
        if owner != tenant.tenant_id:
            raise CaseFailed(
                f"request {n + 1}: tenant {tenant.tenant_id} was served the answer cached for tenant {owner} "
                f"(same prompt, same key)",
                expected=f"a key of {tenant.tenant_id}'s own",
                got=key,
                hint="The prompt alone is not a key: two customers ask the same question and get answers built "
                "from their own data. Put tenant.tenant_id in the key.",
            )
        if answered != prompt:
            raise CaseFailed(
                f"request {n + 1}: tenant {tenant.tenant_id} asking {prompt!r} was served the answer to {answered!r}",
                expected="one key per request",
                got=key,
                hint="The key must cover the whole request as well as the tenant.",
            )


@isolation.case("the tenant comes from authentication, not from the request body")
def _forged(fn) -> None:
    _, (victim, attacker) = _registry(2)
    stolen = request_body(_PROMPTS[0], tenant_tag(victim.tenant_id))
    stolen["tenant_id"] = victim.tenant_id
    victim_key = _key(fn, victim, dict(stolen))
    attack_key = _key(fn, attacker, dict(stolen))  # the attacker copies the victim's body, tag and all
    expect(
        attack_key != victim_key,
        f"tenant {attacker.tenant_id}, sending tenant {victim.tenant_id}'s tag and tenant_id in the body, got "
        f"{victim.tenant_id}'s cache key",
        expected="a key of the authenticated tenant's own",
        got=attack_key,
        hint="Anything in the body is under the user's control, metadata.user_id included. Use tenant.tenant_id, "
        "which came from the API key the request was authenticated with.",
    )


@isolation.case("a cache still works: same tenant and request, same key; anything else, another key")
def _works(fn) -> None:
    _, (a, b) = _registry(2)
    body = request_body(_PROMPTS[1])
    reordered = dict(reversed(list(body.items())))
    first, again = _key(fn, a, body), _key(fn, a, reordered)
    expect(
        first == again,
        "the same tenant sending the same request (keys in another order) got a different key",
        expected="the same key both times",
        got="two different keys",
        hint="Keys must be deterministic: json.dumps(body, sort_keys=True), then a hash (hashlib.sha256), never "
        "uuid4 or id().",
    )
    nested = {**body, "tools": [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}],
              "metadata": {"user_id": "u-1"}}  # fmt: skip
    renested = {
        "metadata": {"user_id": "u-1"},
        "tools": [{"input_schema": {"properties": {}, "type": "object"}, "name": "lookup"}],
        **{k: body[k] for k in reversed(list(body))},
    }
    expect(
        _key(fn, a, nested) == _key(fn, a, renested),
        "the same request with the keys of its nested dicts (tools, metadata) in another order got another key",
        expected=_key(fn, a, nested),
        got=_key(fn, a, renested),
        hint="Sort the keys at every depth: json.dumps(body, sort_keys=True) does; sorting body.items() does not.",
    )
    with another_process(fn):
        elsewhere = _key(fn, a, body)
    expect(
        elsewhere == first,
        "the key changes from one process to the next (it depends on Python's hash())",
        expected="the same key in every process",
        got="another key in another process",
        hint="hash() of a str is salted per process (PYTHONHASHSEED): a cache shared by several workers, or "
        "restarted, would never hit. Use hashlib (sha256) for a stable digest.",
    )
    other = _key(fn, a, request_body(_PROMPTS[2]))
    expect(
        other != first,
        "two different prompts of the same tenant got the same key",
        expected="two keys",
        got=first,
        hint="Hash the whole request (model, system, messages, max_tokens ...), not the tenant alone.",
    )
    expect(
        _key(fn, b, body) != first,
        "two tenants got the same key for one request",
        got=first,
        hint="Put tenant.tenant_id in the key.",
    )
