"""Rate limits: continuously refilling token buckets, per organisation and model group, with the API's headers."""

from __future__ import annotations

import math
import re
import threading
from datetime import datetime, timezone

import pytest

from course_utils.mock_provider.errors import RateLimited
from course_utils.mock_provider.ratelimit import (
    TIERS,
    RateLimiter,
    RateLimits,
    LimitBucket,
    get_tier,
    reset_timestamp,
)

MODEL = "claude-sonnet-5-5"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


# ----- LimitBucket ---------------------------------------------------------------------------------
def test_bucket_starts_full_and_refills_continuously(clock):
    bucket = LimitBucket(60, 1.0, clock)
    assert bucket.available() == 60
    assert bucket.try_take(60)
    assert bucket.available() == pytest.approx(0)
    clock.advance_sync(0.5)
    assert bucket.available() == pytest.approx(0.5)  # no waiting for a window boundary
    clock.advance_sync(10)
    assert bucket.available() == pytest.approx(10.5)
    clock.advance_sync(1000)
    assert bucket.available() == 60  # never beyond capacity


def test_try_take_is_all_or_nothing(clock):
    bucket = LimitBucket.per_minute(60, clock)
    assert bucket.try_take(50)
    assert not bucket.try_take(11)
    assert bucket.available() == pytest.approx(10)


def test_time_until(clock):
    bucket = LimitBucket(100, 2.0, clock)
    assert bucket.time_until(100) == 0
    bucket.try_take(100)
    assert bucket.time_until(10) == pytest.approx(5.0)
    assert bucket.time_until(101) == math.inf
    clock.advance_sync(5)
    assert bucket.time_until(10) == 0
    assert bucket.try_take(10)


def test_take_unchecked_overdraws_and_refunds_cap_at_capacity(clock):
    bucket = LimitBucket(10, 1.0, clock)
    bucket.take_unchecked(15)
    assert bucket.available() == pytest.approx(-5)
    assert bucket.remaining() == 0
    assert bucket.time_until(1) == pytest.approx(6)
    bucket.take_unchecked(-100)
    assert bucket.available() == 10


def test_reset_at_is_wall_time_when_full(clock):
    bucket = LimitBucket(60, 1.0, clock)
    assert bucket.reset_at() == clock.time()
    bucket.try_take(30)
    assert bucket.reset_at() == pytest.approx(clock.time() + 30)
    assert bucket.reset_at(40) == pytest.approx(clock.time() + 10)


def test_bucket_rejects_negative_configuration(clock):
    with pytest.raises(ValueError):
        LimitBucket(-1, 1, clock)


# ----- tiers ---------------------------------------------------------------------------------------
def test_tiers():
    assert {"default", "tier-1", "tier-2", "tier-3", "tier-4", "unlimited"} <= set(TIERS)
    assert TIERS["tier-1"] == RateLimits(50, 30_000, 8_000, count_tokens_rpm=100, batch_rpm=50, batch_queue=100_000)
    assert TIERS["tier-4"] == RateLimits(
        4_000, 2_000_000, 400_000, count_tokens_rpm=8_000, batch_rpm=4_000, batch_queue=500_000
    )
    for a, b in zip(["tier-1", "tier-2", "tier-3"], ["tier-2", "tier-3", "tier-4"]):
        assert TIERS[a].input_tokens_per_minute < TIERS[b].input_tokens_per_minute
    # The current tiers (rate-limits page): Start, Build, Scale (Opus 4.x row; batches RPM and queue).
    assert TIERS["start"] == RateLimits(1_000, 2_000_000, 400_000, batch_rpm=1_000, batch_queue=200_000)
    assert TIERS["build"] == RateLimits(5_000, 5_000_000, 1_000_000, batch_rpm=2_000, batch_queue=300_000)
    assert TIERS["scale"] == RateLimits(10_000, 10_000_000, 2_000_000, batch_rpm=4_000, batch_queue=500_000)
    custom = RateLimits(1, 2, 3)
    assert get_tier(custom) is custom
    with pytest.raises(ValueError, match="tier-1"):
        get_tier("platinum")
    with pytest.raises(ValueError):
        RateLimits(0, 1, 1)


# ----- RateLimiter ---------------------------------------------------------------------------------
def test_requests_count_down_and_refuse_with_the_api_message(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    seen = []
    for _ in range(50):
        adm = rl.admit("sk-secret", MODEL, input_tokens=10, max_tokens=10)
        rl.settle(adm, 10)
        seen.append(int(adm.headers["anthropic-ratelimit-requests-remaining"]))
    assert seen == list(range(49, -1, -1))
    with pytest.raises(RateLimited) as err:
        rl.admit("sk-secret", MODEL, input_tokens=10, max_tokens=10)
    e = err.value
    assert "sk-secret" not in e.message  # the organization is named by an id, never by the key
    assert e.status == 429 and e.type == "rate_limit_error"
    assert "would exceed your organization's rate limit of 50 requests per minute" in e.message
    assert f"model: {MODEL}" in e.message and "(org: " in e.message
    assert e.headers["retry-after"] == "2"  # one request refills in 60/50 = 1.2 s, rounded up
    assert e.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_input_tokens_count_down(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    a = rl.admit("k", MODEL, input_tokens=1_000, max_tokens=100)
    b = rl.admit("k", MODEL, input_tokens=1_000, max_tokens=100)
    assert a.headers["anthropic-ratelimit-input-tokens-remaining"] == "19000"
    assert b.headers["anthropic-ratelimit-input-tokens-remaining"] == "18000"
    assert b.headers["anthropic-ratelimit-output-tokens-remaining"] == "8000"  # max_tokens reserves nothing


@pytest.mark.parametrize(
    "kwargs,output,limit_text",
    [
        (dict(input_tokens=15_000, max_tokens=10), 10, "20,000 input tokens per minute"),
        (dict(input_tokens=10, max_tokens=10_000), 8_500, "8,000 output tokens per minute"),
    ],
)
def test_retry_exactly_after_retry_after_is_admitted(clock, kwargs, output, limit_text):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    rl.settle(rl.admit("k", MODEL, **kwargs), output)
    with pytest.raises(RateLimited) as err:
        rl.admit("k", MODEL, **kwargs)
    assert limit_text in err.value.message
    retry_after = int(err.value.headers["retry-after"])
    assert retry_after >= 1
    clock.advance_sync(retry_after - 1)
    with pytest.raises(RateLimited):  # one second early is still too early
        rl.admit("k", MODEL, **kwargs)
    clock.advance_sync(1)
    rl.admit("k", MODEL, **kwargs)


def test_retry_after_rounds_up_fractional_waits(clock):
    rl = RateLimiter(clock, default_tier=RateLimits(7, 10**6, 10**6), burst_s=60)  # 1 request per 60/7 = 8.57 s
    for _ in range(7):
        rl.admit("k", MODEL, 1, 1)
    with pytest.raises(RateLimited) as err:
        rl.admit("k", MODEL, 1, 1)
    assert err.value.headers["retry-after"] == "9"
    clock.advance_sync(9)
    rl.admit("k", MODEL, 1, 1)


def test_refused_request_consumes_nothing(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    rl.admit("k", MODEL, input_tokens=19_000, max_tokens=10)
    before = rl.headers("k", MODEL)
    with pytest.raises(RateLimited):
        rl.admit("k", MODEL, input_tokens=5_000, max_tokens=10)
    after = rl.headers("k", MODEL)
    assert after["anthropic-ratelimit-requests-remaining"] == before["anthropic-ratelimit-requests-remaining"]
    assert after["anthropic-ratelimit-output-tokens-remaining"] == before["anthropic-ratelimit-output-tokens-remaining"]


def test_cache_reads_do_not_count_against_itpm(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    adm = rl.admit("k", MODEL, input_tokens=50_000, max_tokens=10, cache_read_tokens=49_000)
    assert adm.input_tokens == 1_000
    assert adm.headers["anthropic-ratelimit-input-tokens-remaining"] == "19000"


def test_prompt_larger_than_itpm_is_refused_without_retry(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    with pytest.raises(RateLimited) as err:
        rl.admit("k", MODEL, input_tokens=25_000, max_tokens=10)
    assert "retry-after" not in err.value.headers
    assert err.value.headers["x-should-retry"] == "false"
    assert "20,000 input tokens per minute" in err.value.message and "cannot succeed" in err.value.message
    # The same prompt mostly served from the cache fits.
    rl.admit("k", MODEL, input_tokens=25_000, max_tokens=10, cache_read_tokens=24_000)


def test_otpm_counts_actual_output_not_max_tokens(clock):
    # Rate-limits page: "counting only the actual tokens generated. The max_tokens parameter does
    # not factor into OTPM rate limit calculations."
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    adm = rl.admit("k", MODEL, input_tokens=10, max_tokens=64_000)
    assert adm.output_reserved == 0
    assert rl.headers("k", MODEL)["anthropic-ratelimit-output-tokens-remaining"] == "8000"
    # Many requests with a huge max_tokens are all admitted while little output is produced.
    for _ in range(20):
        rl.settle(rl.admit("k", MODEL, input_tokens=10, max_tokens=64_000), 100)
    rl.settle(adm, 250)
    assert rl.headers("k", MODEL)["anthropic-ratelimit-output-tokens-remaining"] == str(8_000 - 2_000 - 250)
    rl.settle(adm, 4_000)  # settling twice changes nothing
    assert rl.headers("k", MODEL)["anthropic-ratelimit-output-tokens-remaining"] == "5750"


def test_output_beyond_the_bucket_overdraws_and_blocks_until_repaid(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    adm = rl.admit("k", MODEL, input_tokens=10, max_tokens=32_000)
    rl.settle(adm, 10_000)  # 2,000 more than the bucket held: the bucket goes negative
    assert rl.headers("k", MODEL)["anthropic-ratelimit-output-tokens-remaining"] == "0"
    with pytest.raises(RateLimited) as err:
        rl.admit("k", MODEL, input_tokens=10, max_tokens=1)
    assert "8,000 output tokens per minute" in err.value.message
    # Admission needs 1 output token available: 2,001 tokens at 8,000/60 per second = 15.0075 s
    assert err.value.headers["retry-after"] == "16"
    clock.advance_sync(15)
    with pytest.raises(RateLimited):
        rl.admit("k", MODEL, input_tokens=10, max_tokens=1)
    clock.advance_sync(1)
    rl.admit("k", MODEL, input_tokens=10, max_tokens=64_000)


def test_per_key_tiers_are_isolated(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    rl.set_tier("big", "tier-4")
    rl.set_tier("tiny", RateLimits(1, 100, 100))
    assert rl.limits_for("big") == TIERS["tier-4"]
    assert rl.limits_for("someone-else") == TIERS["default"]
    rl.admit("tiny", MODEL, 10, 10)
    with pytest.raises(RateLimited, match="1 requests per minute"):
        rl.admit("tiny", MODEL, 10, 10)
    for _ in range(100):
        rl.admit("big", MODEL, 10, 10)
    assert rl.headers("big", MODEL)["anthropic-ratelimit-requests-limit"] == "4000"
    assert rl.headers("big", MODEL)["anthropic-ratelimit-requests-remaining"] == "3900"
    assert rl.headers("other", MODEL)["anthropic-ratelimit-requests-remaining"] == "50"


def test_set_tier_starts_buckets_afresh(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    for _ in range(50):
        rl.admit("k", MODEL, 1, 1)
    rl.set_tier("k", "tier-2")
    assert rl.headers("k", MODEL)["anthropic-ratelimit-requests-remaining"] == "1000"


def test_per_model_buckets_are_isolated(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    for _ in range(50):
        rl.admit("k", MODEL, 1, 1)
    with pytest.raises(RateLimited):
        rl.admit("k", MODEL, 1, 1)
    rl.admit("k", "claude-haiku-5-5", 1, 1)
    assert rl.headers("k", "claude-haiku-5-5")["anthropic-ratelimit-requests-remaining"] == "49"


def test_headers_format_and_reset_timestamps(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    h = rl.headers("k", MODEL)
    for prefix in ("requests", "input-tokens", "output-tokens", "tokens"):
        for suffix in ("limit", "remaining", "reset"):
            assert f"anthropic-ratelimit-{prefix}-{suffix}" in h
    now = datetime.fromtimestamp(clock.time(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert h["anthropic-ratelimit-requests-reset"] == now  # full: resets "now"
    rl.admit("k", MODEL, input_tokens=10_000, max_tokens=10)
    h = rl.headers("k", MODEL)
    for key, value in h.items():
        if key.endswith("-reset"):
            assert RFC3339.match(value), value
    # Half the input bucket refills in 30 s; one request in 1.2 s (rounded up to the second).
    expect = datetime.fromtimestamp(clock.time() + 30, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert h["anthropic-ratelimit-input-tokens-reset"] == expect
    assert h["anthropic-ratelimit-requests-reset"] == reset_timestamp(clock.time() + 1.2)
    assert reset_timestamp(1_800_000_000.2) == "2027-01-15T08:00:01Z"


def test_tokens_headers_sum_input_and_output_when_no_workspace_limits_apply(clock):
    # Rate-limits page: "If Workspace limits do not apply, the headers will return the total tokens
    # remaining, where total is the sum of input and output tokens."
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    rl.settle(rl.admit("k", MODEL, input_tokens=100, max_tokens=10), 10)
    h = rl.headers("k", MODEL)
    assert h["anthropic-ratelimit-tokens-limit"] == "28000"  # 20,000 ITPM + 8,000 OTPM
    assert h["anthropic-ratelimit-tokens-remaining"] == str(19_900 + 7_990)


def test_tokens_headers_show_the_most_restrictive_limit_under_workspace_limits(clock):
    # "The anthropic-ratelimit-tokens-* headers display the values for the most restrictive limit
    # currently in effect. For instance, if you have exceeded the Workspace per-minute token limit,
    # the headers will contain the Workspace per-minute token rate limit values."
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    rl.set_workspace("w", RateLimits(50, 5_000, 8_000))
    rl.assign_workspace("k", "w")
    rl.settle(rl.admit("k", MODEL, input_tokens=100, max_tokens=10), 10)
    h = rl.headers("k", MODEL)
    assert h["anthropic-ratelimit-tokens-limit"] == "5000"  # the workspace's ITPM: 4,900 left
    assert h["anthropic-ratelimit-tokens-remaining"] == "4900"


def test_token_remaining_headers_are_rounded_to_the_nearest_thousand_by_default(clock):
    # Rate-limits page: "The number of tokens remaining (rounded to the nearest thousand)".
    rl = RateLimiter(clock, burst_s=60)
    rl.settle(rl.admit("k", MODEL, input_tokens=1_400, max_tokens=10), 2_600)
    h = rl.headers("k", MODEL)
    assert h["anthropic-ratelimit-input-tokens-remaining"] == "19000"  # 18,600
    assert h["anthropic-ratelimit-output-tokens-remaining"] == "5000"  # 5,400
    assert h["anthropic-ratelimit-tokens-remaining"] == "24000"  # 24,000
    assert h["anthropic-ratelimit-requests-remaining"] == "49"  # requests are never rounded
    assert h["anthropic-ratelimit-input-tokens-limit"] == "20000"
    exact = RateLimiter(clock, burst_s=60, exact_remaining=True)
    exact.settle(exact.admit("k", MODEL, input_tokens=1_400, max_tokens=10), 2_600)
    assert exact.headers("k", MODEL)["anthropic-ratelimit-input-tokens-remaining"] == "18600"


def test_refill_over_time_shows_in_headers(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    for _ in range(10):
        rl.admit("k", MODEL, 1, 1)
    assert rl.headers("k", MODEL)["anthropic-ratelimit-requests-remaining"] == "40"
    clock.advance_sync(6)  # 50/60 per second * 6 s = 5 requests
    assert rl.headers("k", MODEL)["anthropic-ratelimit-requests-remaining"] == "45"


def test_fanout_of_short_requests_hits_the_default_limit(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    admitted = refused = 0
    for _ in range(80):
        try:
            rl.admit("k", MODEL, input_tokens=200, max_tokens=100)
            admitted += 1
        except RateLimited:
            refused += 1
    assert admitted == 50 and refused == 30


def test_unlimited_and_reset(clock):
    rl = RateLimiter(clock, default_tier="unlimited", burst_s=60)
    for _ in range(1000):
        rl.admit("k", MODEL, 100_000, 64_000)
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    for _ in range(50):
        rl.admit("k", MODEL, 1, 1)
    rl.reset()
    assert rl.headers("k", MODEL)["anthropic-ratelimit-requests-remaining"] == "50"
    rl.set_default_tier("tier-1")
    assert rl.headers("k", MODEL)["anthropic-ratelimit-input-tokens-limit"] == "30000"


def test_concurrent_admissions_never_oversubscribe(clock):
    rl = RateLimiter(clock, burst_s=60, exact_remaining=True)
    admitted: list[int] = []

    def worker() -> None:
        for _ in range(20):
            try:
                rl.admit("k", MODEL, 1, 1)
                admitted.append(1)
            except RateLimited:
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 50


# ----- burst capacity (short-interval enforcement) -------------------------------------------------
def test_default_burst_is_one_constant_and_lenient_burst_spends_a_minute_at_once(clock):
    from course_utils.mock_provider import ratelimit

    rl = RateLimiter(clock, default_tier=RateLimits(60, 10**6, 10**6, burst_s=60))
    for _ in range(60):
        rl.admit("k", MODEL, 1)
    with pytest.raises(RateLimited):
        rl.admit("k", MODEL, 1)
    assert RateLimiter(clock).default_burst_s == ratelimit.DEFAULT_BURST_S


@pytest.mark.parametrize("default", [1.0, 60.0])
def test_the_module_default_is_read_when_a_limiter_is_made(clock, monkeypatch, default):
    from course_utils.mock_provider.ratelimit import tiers

    monkeypatch.setattr(tiers, "DEFAULT_BURST_S", default)
    rl = RateLimiter(clock, default_tier=RateLimits(60, 10**6, 10**6))
    assert rl.default_burst_s == default and rl.burst_for("k") == default
    admitted = 0
    for _ in range(70):
        try:
            rl.admit("k", MODEL, 1)
            admitted += 1
        except RateLimited:
            pass
    assert admitted == (1 if default == 1.0 else 60)


def test_short_interval_enforcement_admits_one_second_worth(clock):
    # "a rate of 60 requests per minute (RPM) might be enforced as 1 request per second"
    rl = RateLimiter(clock, default_tier=RateLimits(60, 10**6, 10**6, burst_s=1.0))
    rl.admit("k", MODEL, 1)
    with pytest.raises(RateLimited) as err:
        rl.admit("k", MODEL, 1)
    assert err.value.headers["retry-after"] == "1"
    assert "60 requests per minute" in err.value.message
    # The headers still report the per-minute view: 59 of 60 left, not "0 of 1".
    assert err.value.headers["anthropic-ratelimit-requests-limit"] == "60"
    assert err.value.headers["anthropic-ratelimit-requests-remaining"] == "59"
    clock.advance_sync(1.0)
    rl.admit("k", MODEL, 1)


def test_pacing_at_the_limit_is_never_refused_under_short_intervals(clock):
    rl = RateLimiter(clock, default_tier=RateLimits(120, 10**6, 10**6, burst_s=1.0))
    for _ in range(240):  # two minutes at exactly 2 requests per second
        rl.admit("k", MODEL, 1)
        clock.advance_sync(0.5)
    # ...but a burst of 3 is refused after the 2 that one second holds.
    rl.admit("k", MODEL, 1)
    rl.admit("k", MODEL, 1)
    with pytest.raises(RateLimited):
        rl.admit("k", MODEL, 1)


def test_burst_holds_at_least_one_request(clock):
    rl = RateLimiter(clock, default_tier=RateLimits(50, 10**6, 10**6, burst_s=1.0))  # 0.83 requests a second
    rl.admit("k", MODEL, 1)
    with pytest.raises(RateLimited) as err:
        rl.admit("k", MODEL, 1)
    assert err.value.headers["retry-after"] == "2"  # 1.2 s, rounded up
    clock.advance_sync(1.2)
    rl.admit("k", MODEL, 1)


def test_a_prompt_bigger_than_the_token_burst_is_admitted_when_the_bucket_is_full(clock):
    # ITPM 6,000 with a 1 s burst holds 100 tokens; a 1,000-token prompt still gets in, then
    # overdraws, so the average stays at the limit (the next one waits 1,000 / 100 per second).
    rl = RateLimiter(clock, default_tier=RateLimits(10**6, 6_000, 10**6, burst_s=1.0))
    rl.admit("k", MODEL, 1_000)
    with pytest.raises(RateLimited) as err:
        rl.admit("k", MODEL, 1_000)
    assert "6,000 input tokens per minute" in err.value.message
    assert err.value.headers["retry-after"] == "10"
    assert err.value.headers["anthropic-ratelimit-input-tokens-remaining"] == "5000"
    clock.advance_sync(9)
    with pytest.raises(RateLimited):
        rl.admit("k", MODEL, 1_000)
    clock.advance_sync(1)
    rl.admit("k", MODEL, 1_000)
    # A prompt bigger than the whole minute is still refused for good.
    with pytest.raises(RateLimited) as err:
        rl.admit("k", MODEL, 7_000)
    assert err.value.headers["x-should-retry"] == "false"


def test_set_default_burst_and_per_key_burst(clock):
    rl = RateLimiter(clock, default_tier=RateLimits(60, 10**6, 10**6), burst_s=60)
    rl.set_tier("strict", RateLimits(60, 10**6, 10**6, burst_s=1.0))
    rl.set_tier("lenient", TIERS["default"].with_burst(60))
    for _ in range(10):
        rl.admit("k", MODEL, 1)
    rl.admit("strict", MODEL, 1)
    with pytest.raises(RateLimited):
        rl.admit("strict", MODEL, 1)
    rl.set_default_burst(1.0)
    assert rl.burst_for("k") == 1.0 and rl.burst_for("strict") == 1.0 and rl.burst_for("lenient") == 60
    rl.admit("k", MODEL, 1)
    with pytest.raises(RateLimited):
        rl.admit("k", MODEL, 1)
    for _ in range(50):
        rl.admit("lenient", MODEL, 1)


@pytest.mark.parametrize("bad", [0, -1, 61, "1", True, float("nan")])
def test_burst_must_be_seconds_within_a_minute(clock, bad):
    with pytest.raises(ValueError, match="burst_s"):
        RateLimits(1, 1, 1, burst_s=bad)
    with pytest.raises(ValueError, match="burst_s"):
        RateLimiter(clock, burst_s=bad)
