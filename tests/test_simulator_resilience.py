"""End to end through the SDK: rate limits, faults, prompt caching, batches and the ledger."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

import anthropic
import httpx2
import pytest

from course_utils import mock_server
from course_utils.mock_provider.ratelimit import RateLimits

HAIKU = "claude-haiku-5-5"
SONNET = "claude-sonnet-5-5"
ASK = [{"role": "user", "content": "Say something short."}]


# ----------------------------------------------------------------------------------- rate limits
@pytest.fixture()
def limited():
    """A server whose key 'tight' may send 3 requests per minute."""
    with mock_server(seed=0, time_scale=0) as srv:
        srv.set_rate_limits("tight", RateLimits(3, 100_000, 100_000))
        yield srv


def test_rate_limit_headers_count_down(limited):
    c = limited.client(api_key="tight", max_retries=0)
    seen = []
    for _ in range(3):
        raw = c.messages.with_raw_response.create(model=HAIKU, max_tokens=20, messages=ASK)
        seen.append(int(raw.headers["anthropic-ratelimit-requests-remaining"]))
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "3"
        for family in ("input-tokens", "output-tokens", "tokens", "requests"):
            reset = raw.headers[f"anthropic-ratelimit-{family}-reset"]
            assert datetime.fromisoformat(reset.replace("Z", "+00:00")).tzinfo is not None
    assert seen == [2, 1, 0]


def test_429_retry_after_is_right_and_the_sdk_honours_it(limited):
    # 120 RPM refills one request every 0.5 s, so retry-after is 1 s (whole seconds, rounded up).
    limited.set_rate_limits("quick", RateLimits(120, 1_000_000, 1_000_000))
    c = limited.client(api_key="quick", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as err:
        for _ in range(121):
            c.messages.create(model=HAIKU, max_tokens=20, messages=ASK)
    assert err.value.body["error"]["type"] == "rate_limit_error"
    wait = int(err.value.response.headers["retry-after"])
    assert wait == 1
    # The SDK's own retry sleeps retry-after and then succeeds.
    retrying = limited.client(api_key="quick", max_retries=2)
    t0 = time.monotonic()
    assert retrying.messages.create(model=HAIKU, max_tokens=20, messages=ASK).content
    assert time.monotonic() - t0 >= wait - 0.5
    statuses = list(limited.ledger()["status"])
    assert statuses[-2:] == [429, 200]


def test_other_keys_and_models_have_their_own_buckets(limited):
    tight = limited.client(api_key="tight", max_retries=0)
    for _ in range(3):
        tight.messages.create(model=HAIKU, max_tokens=20, messages=ASK)
    assert tight.messages.create(model=SONNET, max_tokens=20, messages=ASK).content  # other model
    assert limited.client(api_key="roomy", max_retries=0).messages.create(model=HAIKU, max_tokens=20, messages=ASK)


# ----------------------------------------------------------------------------------------- faults
@pytest.mark.parametrize("fault, exc, status", [
    ("overloaded", anthropic.OverloadedError, 529),
    ("api_error", anthropic.InternalServerError, 500),
    ("rate_limit", anthropic.RateLimitError, 429),
])
def test_forced_faults_map_to_sdk_errors(client, sim, fault, exc, status):
    with pytest.raises(exc) as err:
        client.messages.create(model=HAIKU, max_tokens=20, messages=ASK, extra_headers={"x-mock-fault": fault})
    assert err.value.status_code == status
    row = sim.ledger().iloc[-1]
    assert row["fault"] == fault and row["status"] == status and row["cost_usd"] == 0
    if fault == "rate_limit":
        assert int(err.value.response.headers["retry-after"]) >= 1


def test_invalid_fault_header_is_a_400(client):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model=HAIKU, max_tokens=20, messages=ASK, extra_headers={"x-mock-fault": "gremlins"})
    assert "x-mock-fault" in err.value.body["error"]["message"]


def test_sdk_retries_a_529_then_succeeds(sim):
    sim.set_scenario({"name": "one-overload", "p_overloaded": 1.0})
    c = sim.client(max_retries=0)
    with pytest.raises(anthropic.OverloadedError):
        c.messages.create(model=HAIKU, max_tokens=20, messages=ASK)
    sim.set_scenario("calm")
    assert c.messages.create(model=HAIKU, max_tokens=20, messages=ASK).content


def test_stream_error_event_after_some_text(client):
    got = []
    with pytest.raises(anthropic.APIStatusError) as err:
        with client.messages.stream(model=HAIKU, max_tokens=300, extra_headers={"x-mock-fault": "stream_error"},
                                    messages=[{"role": "user", "content": "Write a long essay about queues."}]) as s:
            for text in s.text_stream:
                got.append(text)
    assert got, "some text arrives before the error"
    assert err.value.body["error"]["type"] == "overloaded_error"


def test_disconnect_mid_stream_is_a_connection_error(client, sim):
    got = []
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        with client.messages.stream(model=HAIKU, max_tokens=300, extra_headers={"x-mock-fault": "disconnect"},
                                    messages=[{"role": "user", "content": "Write a long essay about queues."}]) as s:
            for text in s.text_stream:
                got.append(text)
    assert got
    time.sleep(0.1)
    assert bool(sim.ledger().iloc[-1]["disconnected"])


def test_disconnect_without_streaming(client):
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model=HAIKU, max_tokens=20, messages=ASK, extra_headers={"x-mock-fault": "disconnect"})


def test_timeout_fault_trips_the_client_timeout(sim):
    c = sim.client(max_retries=0, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        c.messages.create(model=HAIKU, max_tokens=20, messages=ASK, extra_headers={"x-mock-fault": "timeout"})
    assert time.monotonic() - t0 < 3


def test_fault_timelines_are_deterministic():
    def timeline(seed: int) -> list[int]:
        with mock_server(seed=seed, time_scale=0, scenario="flaky", rate_limit_tier="unlimited") as srv:
            c = srv.client(max_retries=0)
            out = []
            for i in range(60):
                try:
                    c.messages.create(model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": f"item {i}"}])
                    out.append(200)
                except anthropic.APIStatusError as e:
                    out.append(e.status_code)
            return out

    a, b, other = timeline(3), timeline(3), timeline(4)
    assert a == b and a != other
    assert 0 < sum(s != 200 for s in a) < 30


def test_outage_window_opens_then_recovers():
    # outage preset: every request fails from 2 s to 12 s of simulated time; time_scale 0.05 makes that 0.1-0.6 s real.
    with mock_server(seed=0, time_scale=0.05, scenario="outage", rate_limit_tier="unlimited") as srv:
        c = srv.client(max_retries=0)
        statuses = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.2:
            try:
                c.messages.create(model=HAIKU, max_tokens=5, messages=ASK)
                statuses.append(200)
            except anthropic.APIStatusError as e:
                statuses.append(e.status_code)
            time.sleep(0.05)
    first_fail = statuses.index(529)
    last_fail = len(statuses) - 1 - statuses[::-1].index(529)
    assert statuses[0] == 200 and all(s == 529 for s in statuses[first_fail:last_fail + 1])
    assert statuses[-1] == 200


def test_scenario_endpoint(sim):
    with httpx2.Client(base_url=sim.base_url) as http:
        assert http.get("/mock/scenario").json()["scenario"]["name"] == "calm"
        assert http.post("/mock/scenario", json={"scenario": "overloaded"}).json()["scenario"]["name"] == "overloaded"
        bad = http.post("/mock/scenario", json={"scenario": "nope"})
        assert bad.status_code == 400 and bad.json()["type"] == "error"
    sim.set_scenario("calm")


# --------------------------------------------------------------------------------- prompt caching
def _cached_body(question: str) -> dict:
    policy = " ".join(f"Policy clause {i}: refunds within 30 days need a receipt and the original packaging." for i in range(300))
    return dict(model=SONNET, max_tokens=50,
                system=[{"type": "text", "text": policy, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": question}])


def test_second_request_reads_the_cache_and_costs_less(client, sim):
    first = client.messages.create(**_cached_body("How long is the refund window?")).usage
    second = client.messages.create(**_cached_body("Do I need a receipt?")).usage
    assert first.cache_creation_input_tokens > 2048 and first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    costs = list(sim.ledger()["cost_usd"])
    assert costs[1] < costs[0] / 3
    counted = client.messages.count_tokens(**{k: v for k, v in _cached_body("Do I need a receipt?").items() if k != "max_tokens"})
    assert counted.input_tokens == second.input_tokens + second.cache_read_input_tokens


def test_cache_reads_shorten_time_to_first_token():
    with mock_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited") as srv:
        c = srv.client(max_retries=0)
        times = []
        for q in ("How long is the refund window?", "Do I need a receipt?"):
            body = {**_cached_body(q), "max_tokens": 1}
            t0 = time.monotonic()
            with c.messages.stream(**body) as s:
                next(iter(s.text_stream), None)
            times.append(time.monotonic() - t0)
    assert times[1] < times[0]


# --------------------------------------------------------------------------------------- batches
def test_batch_lifecycle_and_results(sim):
    c = sim.client(max_retries=0, _strict_response_validation=True)
    sim.set_time_scale(0.002)
    try:
        reqs = [{"custom_id": f"r-{i}", "params": {"model": HAIKU, "max_tokens": 30,
                                                     "messages": [{"role": "user", "content": f"Summarize item {i}."}]}}
                for i in range(5)]
        reqs.append({"custom_id": "bad", "params": {"model": HAIKU, "messages": []}})
        batch = c.messages.batches.create(requests=reqs)
        assert batch.id.startswith("msgbatch_") and batch.processing_status == "in_progress"
        assert batch.request_counts.processing == 6 and batch.results_url is None
        deadline = time.monotonic() + 20
        while (batch := c.messages.batches.retrieve(batch.id)).processing_status != "ended":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        counts = batch.request_counts
        assert (counts.succeeded, counts.errored, counts.processing) == (5, 1, 0)
        results = {r.custom_id: r.result for r in c.messages.batches.results(batch.id)}
        assert set(results) == {f"r-{i}" for i in range(5)} | {"bad"}
        assert results["bad"].type == "errored"
        assert results["r-0"].type == "succeeded" and results["r-0"].message.content
        ledger = sim.ledger()
        rows = ledger[ledger["batch"]]
        assert len(rows) == 6 and rows[rows["custom_id"] == "bad"]["cost_usd"].iloc[0] == 0
        ok = rows[rows["status"] == 200].iloc[0]
        assert ok["cost_usd"] > 0
        assert [b.id for b in c.messages.batches.list()][0] == batch.id
        assert c.messages.batches.delete(batch.id).type == "message_batch_deleted"
    finally:
        sim.set_time_scale(0)


def test_batch_cancel_stops_unprocessed_requests(sim):
    c = sim.client(max_retries=0)
    sim.set_time_scale(0.05)  # 30 s + 3 s/request window -> ~2 s real
    try:
        reqs = [{"custom_id": f"c{i}", "params": {"model": HAIKU, "max_tokens": 10,
                                                    "messages": [{"role": "user", "content": "hi"}]}} for i in range(20)]
        batch = c.messages.batches.create(requests=reqs)
        time.sleep(0.3)
        assert c.messages.batches.cancel(batch.id).processing_status in ("canceling", "ended")
        deadline = time.monotonic() + 10
        while (batch := c.messages.batches.retrieve(batch.id)).processing_status != "ended":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        counts = batch.request_counts
        assert counts.canceled > 0 and counts.succeeded + counts.canceled + counts.errored + counts.expired == 20
        assert batch.cancel_initiated_at is not None
    finally:
        sim.set_time_scale(0)


def test_batch_create_rejects_duplicates(client):
    req = {"custom_id": "same", "params": {"model": HAIKU, "max_tokens": 5, "messages": ASK}}
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.batches.create(requests=[req, req])
    assert "same" in err.value.body["error"]["message"]


def test_batches_survive_a_restart(tmp_path):
    body = [{"custom_id": f"k{i}", "params": {"model": HAIKU, "max_tokens": 10, "messages": ASK}} for i in range(3)]
    with mock_server(seed=0, time_scale=0.05, state_dir=tmp_path) as srv:  # ~2 s of processing: not done at the restart
        batch_id = srv.client().messages.batches.create(requests=body).id
    with mock_server(seed=0, time_scale=0, state_dir=tmp_path) as srv:
        c = srv.client()
        deadline = time.monotonic() + 10
        while c.messages.batches.retrieve(batch_id).processing_status != "ended":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert {r.custom_id for r in c.messages.batches.results(batch_id)} == {"k0", "k1", "k2"}


# ------------------------------------------------------------------------------------ introspection
def test_mock_endpoints(client, sim):
    client.messages.create(model=HAIKU, max_tokens=20, messages=ASK)
    with httpx2.Client(base_url=sim.base_url) as http:
        rows = http.get("/mock/requests").json()
        usage = http.get("/mock/usage").json()
        health = http.get("/mock/health").json()
        assert rows[-1]["model"] == HAIKU and rows[-1]["status"] == 200
        assert usage[0]["requests"] == 1 and float(usage[0]["cost_usd"]) > 0
        assert health["status"] == "ok"
        assert http.post("/mock/reset").json() == {"status": "reset"}
        assert http.get("/mock/requests").json() == []


def test_a_scenario_can_make_batch_requests_expire(sim):
    c = sim.client(max_retries=0)
    sim.set_scenario({"name": "expiring", "batch_expire_fraction": 0.5})
    sim.set_time_scale(0.002)
    try:
        reqs = [{"custom_id": f"e{i}", "params": {"model": HAIKU, "max_tokens": 10, "messages": ASK}} for i in range(20)]
        batch = c.messages.batches.create(requests=reqs)
        deadline = time.monotonic() + 10
        while (batch := c.messages.batches.retrieve(batch.id)).processing_status != "ended":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        counts = batch.request_counts
        assert 3 <= counts.expired <= 17 and counts.succeeded + counts.expired == 20
        ledger = sim.ledger()
        expired = ledger[ledger["error_type"] == "expired"]
        assert len(expired) == counts.expired and expired["cost_usd"].sum() == 0
    finally:
        sim.set_scenario("calm")
        sim.set_time_scale(0)


def test_mid_stream_error_is_recorded_with_its_type(client, sim):
    with pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(model=HAIKU, max_tokens=100, extra_headers={"x-mock-fault": "stream_error"},
                                    messages=[{"role": "user", "content": "Write a long essay about queues."}]) as s:
            for _ in s.text_stream:
                pass
    time.sleep(0.1)
    row = sim.ledger().iloc[-1]
    assert row["status"] == 529 and row["error_type"] == "overloaded_error" and row["fault"] == "stream_error"


def test_batch_create_accepts_bodies_over_the_messages_limit(client):
    # 32 MB caps /v1/messages; a batch may be up to 256 MB.
    text = "word " * 400_000  # ~2 MB per request
    reqs = [{"custom_id": f"big{i}", "params": {"model": HAIKU, "max_tokens": 5,
                                                 "messages": [{"role": "user", "content": text}]}} for i in range(18)]
    batch = client.with_options(timeout=120).messages.batches.create(requests=reqs)
    assert batch.request_counts.processing == 18


def test_a_scenario_can_make_batch_requests_fail_transiently(sim):
    c = sim.client(max_retries=0)
    sim.set_scenario({"name": "erroring", "batch_error_fraction": 0.5})
    sim.set_time_scale(0.002)
    try:
        reqs = [{"custom_id": f"t{i}", "params": {"model": HAIKU, "max_tokens": 10, "messages": ASK}} for i in range(20)]
        reqs.append({"custom_id": "invalid", "params": {"model": HAIKU, "max_tokens": 10, "messages": []}})
        batch = c.messages.batches.create(requests=reqs)
        deadline = time.monotonic() + 10
        while (batch := c.messages.batches.retrieve(batch.id)).processing_status != "ended":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        results = {r.custom_id: r.result for r in c.messages.batches.results(batch.id)}
        transient = [k for k, r in results.items() if r.type == "errored" and r.error.error.type == "overloaded_error"]
        assert 3 <= len(transient) <= 17
        assert results["invalid"].error.error.type == "invalid_request_error"  # validation comes first
    finally:
        sim.set_scenario("calm")
        sim.set_time_scale(0)
