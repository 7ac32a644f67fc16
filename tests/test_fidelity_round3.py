"""Issue 26 §3 and §4: cache minimums, automatic caching's TTL rule, one cache-read price, thinking rules.

Each test cites the documentation it checks (docs/api-notes.md §9).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterator

import anthropic
import pytest

from course_utils.mock_provider.inprocess import InProcessServer
from course_utils.models import catalog
from course_utils.pricing import price
from course_utils.tokens import count_request

ASK = [{"role": "user", "content": "Summarise the policy."}]


@pytest.fixture(scope="module")
def client() -> Iterator[anthropic.Anthropic]:
    with InProcessServer(seed=0, time_scale=0, rate_limit_tier="unlimited") as server:
        yield server.client(max_retries=0)


def _cached_body(model: str, words: int, **extra) -> dict:
    text = " ".join(f"clause{i} applies" for i in range(words))
    return {
        "model": model,
        "max_tokens": 20,
        "system": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}],
        "messages": ASK,
        **extra,
    }


@pytest.mark.parametrize(
    "model, minimum",
    [
        # Prompt-caching page, cache limitations (as read 2026-10): "512 tokens for Claude Opus 5.5,
        # Sonnet 5.5, Opus 5, Fable 5 ...; 1,024 for Opus 4.8, Sonnet 5, Sonnet 4.6 and Sonnet 4.5;
        # 2,048 for Opus 4.7 and Mythos Preview; and 4,096 for Opus 4.6, Opus 4.5 and Haiku 4.5".
        ("claude-opus-5-5", 512),
        ("claude-sonnet-5-5", 512),
        ("claude-sonnet-4-6", 1024),
        ("claude-opus-4-8", 1024),
        ("claude-opus-4-7", 2048),
        ("claude-opus-4-6", 4096),
        ("claude-haiku-4-5", 4096),
    ],
)
def test_minimum_cacheable_lengths_are_the_pages(model, minimum):
    assert catalog()[model].min_cache_tokens == minimum


@pytest.mark.parametrize("model, words", [("claude-opus-5-5", 260), ("claude-sonnet-4-6", 430)])
def test_prompts_above_the_documented_minimum_are_written_to_the_cache(client, model, words):
    body = _cached_body(model, words)
    total = count_request(body)
    assert catalog()[model].min_cache_tokens < total < 2048  # below the old (wrong) minimums
    usage = client.messages.create(**body).usage
    assert usage.cache_creation_input_tokens > 0
    assert client.messages.create(**body).usage.cache_read_input_tokens > 0


def test_automatic_caching_onto_a_block_with_another_ttl_is_a_400(client):
    # Prompt-caching page, automatic caching edge cases: "If the last block has an explicit
    # cache_control with a different TTL, the API returns a 400 error."
    def body(ttl: str) -> dict:
        last = {"type": "text", "text": "Summarise the policy.", "cache_control": {"type": "ephemeral", "ttl": ttl}}
        return {"model": "claude-opus-5-5", "max_tokens": 20, "messages": [{"role": "user", "content": [last]}]}

    with pytest.raises(anthropic.BadRequestError, match="ttl"):
        client.messages.create(**body("1h"), cache_control={"type": "ephemeral"})  # automatic: 5m
    with pytest.raises(anthropic.BadRequestError, match="ttl"):
        client.messages.create(**body("5m"), cache_control={"type": "ephemeral", "ttl": "1h"})
    # "If the last block already has an explicit cache_control with the same TTL, automatic caching is a no-op."
    assert client.messages.create(**body("5m"), cache_control={"type": "ephemeral"}).stop_reason
    assert client.messages.create(**body("1h"), cache_control={"type": "ephemeral", "ttl": "1h"}).stop_reason


def test_automatic_caching_with_four_explicit_breakpoints_is_a_400(client):
    # "If 4 explicit block-level breakpoints already exist, the API returns a 400 error."
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(4)]
    body = {"model": "claude-opus-5-5", "max_tokens": 20, "system": blocks, "messages": ASK}
    assert client.messages.create(**body).stop_reason  # four alone are fine
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):
        client.messages.create(**body, cache_control={"type": "ephemeral"})


def test_cache_reads_on_the_55_models_cost_005x_as_the_pricing_page_reads():
    # Pricing page, note 2: "Cache hits and refreshes on Claude Opus 5.5 and Claude Sonnet 5.5 are
    # priced at 0.05x the base input price"; other models 0.1x.
    for model in ("claude-opus-5-5", "claude-sonnet-5-5"):
        p = price(model)
        assert p.cache_read_per_mtok == p.input_per_mtok * Decimal("0.05")
    for model in ("claude-haiku-5-5", "claude-sonnet-4-6", "claude-haiku-4-5"):
        p = price(model)
        assert p.cache_read_per_mtok == p.input_per_mtok * Decimal("0.1")


def test_a_thinking_budget_below_1024_is_a_400(client):
    # SDK ThinkingConfigEnabledParam.budget_tokens: "Must be ≥1024 and less than `max_tokens`."
    with pytest.raises(anthropic.BadRequestError, match="greater than or equal to 1024"):
        client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=4000,
            messages=ASK,
            thinking={"type": "enabled", "budget_tokens": 1023},
        )


def test_a_thinking_budget_not_below_max_tokens_is_a_400(client):
    # Extended-thinking page: "budget_tokens must be set to a value less than max_tokens."
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=2000, messages=ASK, thinking={"type": "enabled", "budget_tokens": 2000}
        )
    ok = client.messages.create(
        model="claude-haiku-4-5", max_tokens=2001, messages=ASK, thinking={"type": "enabled", "budget_tokens": 2000}
    )
    assert ok.stop_reason


# (Sonnet 4.5 is retired since 2026-11-30: it answers 404.)
@pytest.mark.parametrize("model", ["claude-haiku-4-5", "claude-opus-4-5"])
def test_adaptive_thinking_on_the_45_models_is_a_400(client, model):
    # Thinking troubleshooting page: "On earlier models, including Claude Sonnet 4.5, Claude Opus 4.5,
    # and Claude Haiku 4.5, extended thinking is the only thinking mode."
    with pytest.raises(anthropic.BadRequestError, match="adaptive thinking is not supported"):
        client.messages.create(model=model, max_tokens=50, messages=ASK, thinking={"type": "adaptive"})


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-5-5"])
def test_adaptive_thinking_is_accepted_where_the_model_has_it(client, model):
    assert client.messages.create(model=model, max_tokens=200, messages=ASK, thinking={"type": "adaptive"}).stop_reason


@pytest.mark.parametrize("model", ["claude-opus-4-7", "claude-opus-4-8", "claude-sonnet-5", "claude-fable-5"])
def test_extended_thinking_on_the_models_that_removed_it_is_a_400(client, model):
    # Thinking troubleshooting page: "Claude Opus 4.7, Claude Opus 4.8, Claude Sonnet 5, Claude Fable
    # 5, and Claude Mythos 5 do not support it and reject requests that use it, returning a 400 error."
    with pytest.raises(anthropic.BadRequestError, match="thinking.type.enabled"):
        client.messages.create(
            model=model, max_tokens=4000, messages=ASK, thinking={"type": "enabled", "budget_tokens": 2000}
        )


@pytest.mark.parametrize("model", ["claude-opus-4-6", "claude-sonnet-4-6", "claude-opus-5-5", "claude-haiku-5-5"])
def test_prefill_on_the_models_that_refuse_it_is_a_400(client, model):
    # Claude 4.6 migration notes: "Prefilling assistant messages returns a 400 error on Claude 4.6 models".
    with pytest.raises(anthropic.BadRequestError, match="prefill"):
        client.messages.create(
            model=model, max_tokens=50, messages=[*ASK, {"role": "assistant", "content": "The policy"}]
        )


def _forced(client, fault: str, **kw):
    return client.messages.create(
        model="claude-haiku-5-5", max_tokens=20, messages=ASK, extra_headers={"x-mock-fault": fault}, **kw
    )


@pytest.mark.parametrize(
    "fault, words", [("user_spend_limit", "API usage limits"), ("workspace_spend_limit", "workspace")]
)
def test_a_spend_limit_you_set_is_a_400_not_a_429(client, fault, words):
    # Errors page: "The API also returns a 400 when usage reaches an organization or workspace spend
    # limit you set"; a usage tier's cap is the 429 (test_fidelity_errors.py).
    with pytest.raises(anthropic.BadRequestError) as err:
        _forced(client, fault)
    assert err.value.status_code == 400 and err.value.body["error"]["type"] == "invalid_request_error"
    assert "You have reached your specified" in err.value.message and words in err.value.message


def test_a_409_conflict_error_is_retried_by_the_sdk(make_server):
    # Errors page: "409 - conflict_error: The request conflicts with the current state of a resource";
    # the SDK retries 409 as it retries 429 and 5xx.
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    with pytest.raises(anthropic.ConflictError) as err:
        _forced(srv.client(max_retries=0), "conflict_error")
    assert err.value.status_code == 409 and err.value.body["error"]["type"] == "conflict_error"
    with pytest.raises(anthropic.ConflictError):
        _forced(srv.client(max_retries=2), "conflict_error")
    assert int((srv.ledger().status == 409).sum()) == 1 + 3  # one plain call, then 1 + 2 retries


def test_reaching_a_spend_limit_you_set_is_a_400_for_that_scope_only(make_server):
    # Errors page: "The API also returns a 400 when usage reaches an organization or workspace spend
    # limit you set"; rate-limits page: "You can't set limits on the default Workspace".
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    srv.workspace("capped")
    srv.workspace("free")
    srv.set_spend_limit("0.000001", workspace="capped")
    capped = srv.tenant("c", workspace="capped").client(max_retries=0)
    free = srv.tenant("f", workspace="free").client(max_retries=0)
    body = {"model": "claude-haiku-5-5", "max_tokens": 20, "messages": ASK}
    assert capped.messages.create(**body).stop_reason  # spent 0: admitted, then billed past the limit
    with pytest.raises(anthropic.BadRequestError, match="specified workspace API usage limits"):
        capped.messages.create(**body)
    assert free.messages.create(**body).stop_reason  # another workspace is not limited
    srv.set_spend_limit("0.000001")  # now the organisation's own limit: every key of it
    with pytest.raises(anthropic.BadRequestError, match="specified API usage limits"):
        free.messages.create(**body)
    other = srv.tenant("other-account", tier="unlimited").client(max_retries=0)
    assert other.messages.create(**body).stop_reason  # another organisation
    srv.set_spend_limit(None)
    assert free.messages.create(**body).stop_reason
    with pytest.raises(KeyError):
        srv.set_spend_limit(1, workspace="nowhere")
