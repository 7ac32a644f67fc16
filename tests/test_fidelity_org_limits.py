"""Issue 26 §1 and §3: limits belong to the organisation; caches and batches to the workspace.

Each test cites the documentation it checks (see docs/api-notes.md §9).
"""

from __future__ import annotations

from typing import Callable

import anthropic
import pytest

from course_utils.mock_provider import InProcessServer
from course_utils.mock_provider.ratelimit import RateLimits
from course_utils.mock_provider.ratelimit.groups import group_of

BIG = 10**9
HAIKU = "claude-haiku-5-5"
ASK = [{"role": "user", "content": "hello"}]


def _server(make_server: Callable[..., InProcessServer], org: RateLimits | None = None) -> InProcessServer:
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    if org is not None:
        srv.set_org_limits(org)
    return srv


def _admitted(client: anthropic.Anthropic, n: int, model: str = HAIKU) -> int:
    ok = 0
    for _ in range(n):
        try:
            client.messages.create(model=model, max_tokens=5, messages=ASK)
            ok += 1
        except anthropic.RateLimitError:
            pass
    return ok


def test_a_second_key_of_the_organisation_adds_no_capacity(make_server):
    # Rate-limits page: "Limits are set at the organization level."
    srv = _server(make_server, RateLimits(4, BIG, BIG, burst_s=60))
    first, second = srv.tenant("a").client(max_retries=0), srv.tenant("b").client(max_retries=0)
    assert _admitted(first, 3) == 3
    assert _admitted(second, 3) == 1  # the organisation's 4 requests per minute, not 4 per key
    assert _admitted(first, 1) == 0


def test_another_organisation_has_limits_of_its_own(make_server):
    srv = _server(make_server, RateLimits(2, BIG, BIG, burst_s=60))
    assert _admitted(srv.tenant("ours").client(max_retries=0), 3) == 2
    other = srv.tenant("their-account", tier=RateLimits(2, BIG, BIG, burst_s=60))
    assert _admitted(other.client(max_retries=0), 3) == 2


def test_pooled_models_share_one_limit_and_other_models_do_not(make_server):
    # "Opus rate limit is a total limit that applies to combined traffic across Claude Opus 4.8,
    # Opus 4.7, Opus 4.6, and Opus 4.5." / "Claude Sonnet 5 has a separate rate limit".
    assert group_of("claude-opus-4-6") == group_of("claude-opus-4-7") == group_of("claude-opus-4-5-20251101")
    assert group_of("claude-opus-4-6").display_name == "Claude Opus 4.x"
    assert group_of("claude-sonnet-4-6") == group_of("claude-sonnet-4-5")
    assert group_of("claude-sonnet-5") != group_of("claude-sonnet-4-6")
    assert group_of("claude-haiku-4-5") == group_of("claude-haiku-4-5-20251001")
    srv = _server(make_server, RateLimits(2, BIG, BIG, burst_s=60))
    c = srv.client(api_key="k", max_retries=0)
    assert _admitted(c, 1, "claude-opus-4-6") == 1
    assert _admitted(c, 2, "claude-opus-4-7") == 1  # the same Opus 4.x bucket
    assert _admitted(c, 2, "claude-sonnet-5") == 2  # a separate limit


def test_workspace_limits_apply_on_top_of_the_organisations(make_server):
    # "Organization-wide limits always apply, even if Workspace limits add up to more."
    srv = _server(make_server, RateLimits(5, BIG, BIG, burst_s=60))
    srv.workspace("bulk", RateLimits(3, BIG, BIG, burst_s=60))
    srv.workspace("chat", RateLimits(4, BIG, BIG, burst_s=60))  # 3 + 4 > 5
    bulk = srv.tenant("importer", workspace="bulk").client(max_retries=0)
    chat = srv.tenant("assistant", workspace="chat").client(max_retries=0)
    assert _admitted(bulk, 5) == 3  # its workspace's limit stops it first
    assert _admitted(chat, 4) == 2  # then the organisation's 5


def test_token_headers_are_rounded_and_sum_input_and_output(make_server):
    # "The number of tokens remaining (rounded to the nearest thousand)"; without workspace limits
    # tokens-* is "the sum of input and output tokens".
    srv = _server(make_server, RateLimits(50, 20_000, 8_000, burst_s=60))
    raw = srv.client(api_key="k").messages.with_raw_response.create(model=HAIKU, max_tokens=5, messages=ASK)
    h = raw.headers
    assert h["anthropic-ratelimit-tokens-limit"] == "28000"
    for name in ("tokens", "input-tokens", "output-tokens"):
        assert int(h[f"anthropic-ratelimit-{name}-remaining"]) % 1000 == 0
    assert h["anthropic-ratelimit-requests-remaining"] == "49"


def test_rate_limits_api_lists_the_organisations_groups_through_the_sdk(make_server):
    srv = _server(make_server, RateLimits(7, 70_000, 7_000, burst_s=60, count_tokens_rpm=9, batch_rpm=8))
    entries = list(srv.client(api_key="k").organization.rate_limits.list())
    by_name = {e.group.display_name: e for e in entries if e.group.type == "model_group"}
    opus = by_name["Claude Opus 4.x"]
    assert {"claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8"} <= set(opus.models or [])
    assert {v.type: v.value for v in opus.limits} == {
        "requests_per_minute": 7,
        "input_tokens_per_minute_cache_aware": 70_000,
        "output_tokens_per_minute": 7_000,
    }
    assert opus.type == "rate_limit" and opus.group.id.startswith("rlg_")
    kinds = {e.group.type for e in entries}
    assert {"model_group", "batch", "token_count"} <= kinds
    batch = next(e for e in entries if e.group.type == "batch")
    assert batch.models is None and [(v.type, v.value) for v in batch.limits] == [("requests_per_minute", 8)]
    only = list(srv.client(api_key="k").organization.rate_limits.list(model="claude-opus-4-7"))
    assert [e.id for e in only] == [opus.id]
    groups = list(srv.client(api_key="k").organization.rate_limits.list(group_type="batch"))
    assert [e.group.type for e in groups] == ["batch"]
    page = srv.client(api_key="k").organization.rate_limits.list(limit=2)
    assert len(page.data) == 2 and page.next_page
    assert len(list(page)) == len(entries)  # the SDK follows next_page
    with pytest.raises(anthropic.NotFoundError):
        srv.client(api_key="k").organization.rate_limits.list(model="claude-nonexistent-9")
    with pytest.raises(anthropic.BadRequestError):
        srv.client(api_key="k").organization.rate_limits.list(group_type="nope")  # type: ignore[arg-type]


def test_rate_limits_api_lists_a_workspaces_overrides_and_what_it_inherits(make_server):
    srv = _server(make_server, RateLimits(100, 100_000, 10_000, burst_s=60))
    srv.workspace("bulk", RateLimits(10, 500_000, 1_000))  # ITPM above the organisation's: stored
    client = srv.client(api_key="k")
    own = list(client.organization.workspaces.rate_limits.list("bulk"))
    assert own and all(e.group.type == "model_group" for e in own)
    values = {v.type: (v.value, v.org_limit, v.source.type) for v in own[0].limits}
    assert values["requests_per_minute"] == (10, 100, "workspace")
    assert values["input_tokens_per_minute_cache_aware"] == (500_000, 100_000, "workspace")
    assert own[0].workspace_id == "bulk" and own[0].type == "workspace_rate_limit"
    srv.workspace("plain")
    assert list(client.organization.workspaces.rate_limits.list("plain")) == []
    inherited = list(client.organization.workspaces.rate_limits.list("wrkspc_plain", include_inherited=True))
    assert inherited and all(v.source.type == "organization" for e in inherited for v in e.limits)
    with pytest.raises(anthropic.NotFoundError):
        client.organization.workspaces.rate_limits.list("nowhere")


def test_rate_limits_api_shapes_pass_the_sdks_strict_validation(make_server):
    # _strict_response_validation: the SDK checks every field against its OrganizationRateLimit /
    # WorkspaceRateLimit types instead of accepting what it cannot parse.
    srv = _server(make_server, RateLimits(7, 70_000, 7_000, burst_s=60, count_tokens_rpm=9, batch_rpm=8))
    srv.workspace("w", RateLimits(3, 30_000, 3_000))
    strict = srv.client(api_key="k", _strict_response_validation=True)
    assert len(list(strict.organization.rate_limits.list())) > 3
    assert list(strict.organization.rate_limits.list(group_type="token_count", limit=1))[0].group.type == "token_count"
    inherited = list(strict.organization.workspaces.rate_limits.list("w", include_inherited=True))
    assert {e.group.type for e in inherited} >= {"model_group", "batch", "token_count"}


def test_a_gateway_can_read_its_limits_instead_of_hard_coding_them(make_server):
    srv = _server(make_server, RateLimits(3, BIG, BIG, burst_s=60))
    client = srv.client(api_key="k", max_retries=0)
    entry = next(iter(client.organization.rate_limits.list(model=HAIKU)))
    rpm = next(v.value for v in entry.limits if v.type == "requests_per_minute")
    assert _admitted(client, rpm + 2) == rpm


def _cacheable(text: str) -> dict:
    return {
        "model": "sim-teaching-4k",
        "max_tokens": 5,
        "system": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}],
        "messages": ASK,
    }


def test_keys_of_one_workspace_share_a_cache_and_workspaces_do_not(make_server):
    # Prompt-caching page: "Caches will be isolated per workspace".
    srv = _server(make_server)
    srv.workspace("w1")
    srv.workspace("w2")
    body = _cacheable("policy text " * 400)
    a = srv.tenant("a", workspace="w1").client()
    b = srv.tenant("b", workspace="w1").client()
    c = srv.tenant("c", workspace="w2").client()
    assert a.messages.create(**body).usage.cache_creation_input_tokens > 0
    assert b.messages.create(**body).usage.cache_read_input_tokens > 0  # same workspace: a hit
    assert c.messages.create(**body).usage.cache_read_input_tokens == 0  # another workspace: a miss


def test_batches_are_visible_to_every_key_of_the_workspace(make_server):
    # Batch-processing page: batches are scoped to the workspace of the API key that created them.
    srv = _server(make_server)
    srv.workspace("w1")
    srv.workspace("w2")
    maker = srv.tenant("maker", workspace="w1").client()
    colleague = srv.tenant("colleague", workspace="w1").client()
    stranger = srv.tenant("stranger", workspace="w2").client()
    params = {"model": HAIKU, "max_tokens": 5, "messages": ASK}
    batch = maker.messages.batches.create(requests=[{"custom_id": "a", "params": params}])
    assert colleague.messages.batches.retrieve(batch.id).id == batch.id
    assert batch.id in [b.id for b in colleague.messages.batches.list()]
    with pytest.raises(anthropic.NotFoundError):
        stranger.messages.batches.retrieve(batch.id)
    assert batch.id not in [b.id for b in stranger.messages.batches.list()]


def test_acceleration_limits_refuse_a_sharp_increase_and_allow_a_gradual_ramp():
    # Rate-limits page: "You might also encounter 429 errors because of acceleration limits on the API
    # if your organization has a sharp increase in usage. To avoid hitting acceleration limits, ramp up
    # your traffic gradually". The figures are the simulator's own (the page publishes none).
    from course_utils.clock import VirtualClock
    from course_utils.mock_provider.errors import RateLimited
    from course_utils.mock_provider.ratelimit import Acceleration, RateLimiter

    def limiter() -> tuple[RateLimiter, VirtualClock]:
        clock = VirtualClock(start=1_800_000_000.0)
        rl = RateLimiter(clock, "unlimited", burst_s=60)
        rl.set_acceleration(Acceleration(factor=2.0, window_s=60, baseline_s=600, floor=10))
        return rl, clock

    def minute(rl: RateLimiter, clock: VirtualClock, n: int) -> int:
        ok = 0
        for _ in range(n):
            try:
                rl.admit("k", HAIKU, 10)
                ok += 1
            except RateLimited as exc:
                assert "acceleration" in str(exc) and int(exc.headers["retry-after"]) >= 1
            clock.advance_sync(60 / n)
        return ok

    sharp, clock = limiter()
    assert minute(sharp, clock, 100) == 10  # a quiet organisation jumps to 100/min: the floor, then 429s
    ramp, clock = limiter()
    sent = [minute(ramp, clock, n) for n in [10] * 10 + [20, 20]]
    assert sent[-2:] == [20, 20]  # after ten steady minutes, twice the baseline rate is admitted
    jump, clock = limiter()
    sent = [minute(jump, clock, n) for n in [10] * 10 + [40]]
    assert sent[-1] == 20  # four times the baseline: half of it refused
    off = RateLimiter(VirtualClock(start=1_800_000_000.0), "unlimited", burst_s=60)
    assert all(off.admit("k", HAIKU, 10) for _ in range(500))  # off by default
