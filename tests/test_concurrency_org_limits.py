"""Reading the organisation's limits from the Rate Limits API (``course_utils.concurrency.org_limits``)."""

from __future__ import annotations

import asyncio

import pytest

from course_utils.concurrency import RateBudget, aread_rate_limits, read_rate_limits
from course_utils.mock_provider.ratelimit import RateLimits


def test_reads_the_groups_limits_and_members(make_server):
    srv = make_server(seed=0, time_scale=0)
    srv.set_org_limits(RateLimits(70, 7_000, 700))
    limits = read_rate_limits(srv.tenant("gateway").client(), "claude-opus-4-7")
    assert limits.group == "Claude Opus 4.x"
    assert {"claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8"} <= set(limits.models)
    assert (limits.requests_per_minute, limits.input_tokens_per_minute, limits.output_tokens_per_minute) == (
        70,
        7_000,
        700,
    )
    budget = RateBudget.from_limits(limits)
    assert budget.per_minute["requests"] == 70


def test_async_and_another_organisation(make_server):
    srv = make_server(seed=0, time_scale=0)
    other = srv.tenant("other", tier=RateLimits(5, 500, 50))
    limits = asyncio.run(aread_rate_limits(other.async_client(), "claude-haiku-5-5"))
    assert (limits.requests_per_minute, limits.input_tokens_per_minute) == (5, 500)


def test_an_unknown_model_is_an_error(make_server):
    import anthropic

    srv = make_server(seed=0, time_scale=0)
    with pytest.raises(anthropic.NotFoundError):
        read_rate_limits(srv.client(), "claude-nonexistent")
