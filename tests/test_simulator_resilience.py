"""End to end through the SDK: rate limits, faults, prompt caching, batches and the ledger."""

from __future__ import annotations

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
        srv.set_rate_limits("tight", RateLimits(3, 100_000, 100_000, burst_s=60.0))
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


def test_other_keys_and_models_have_their_own_buckets(limited):
    tight = limited.client(api_key="tight", max_retries=0)
    for _ in range(3):
        tight.messages.create(model=HAIKU, max_tokens=20, messages=ASK)
    assert tight.messages.create(model=SONNET, max_tokens=20, messages=ASK).content  # other model
    assert limited.client(api_key="roomy", max_retries=0).messages.create(model=HAIKU, max_tokens=20, messages=ASK)


# ----------------------------------------------------------------------------------------- faults
@pytest.mark.parametrize(
    "fault, exc, status",
    [
        ("overloaded", anthropic.OverloadedError, 529),
        ("api_error", anthropic.InternalServerError, 500),
        ("rate_limit", anthropic.RateLimitError, 429),
    ],
)
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
        with client.messages.stream(
            model=HAIKU,
            max_tokens=300,
            extra_headers={"x-mock-fault": "stream_error"},
            messages=[{"role": "user", "content": "Write a long essay about queues."}],
        ) as s:
            for text in s.text_stream:
                got.append(text)
    assert got, "some text arrives before the error"
    assert err.value.body["error"]["type"] == "overloaded_error"


def test_disconnect_without_streaming(client):
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model=HAIKU, max_tokens=20, messages=ASK, extra_headers={"x-mock-fault": "disconnect"})


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


def test_scenario_endpoint(sim):
    with httpx2.Client(base_url=sim.base_url) as http:
        assert http.get("/mock/scenario").json()["scenario"]["name"] == "calm"
        assert http.post("/mock/scenario", json={"scenario": "overloaded"}).json()["scenario"]["name"] == "overloaded"
        bad = http.post("/mock/scenario", json={"scenario": "nope"})
        assert bad.status_code == 400 and bad.json()["type"] == "error"
    sim.set_scenario("calm")


# --------------------------------------------------------------------------------- prompt caching
def _cached_body(question: str) -> dict:
    policy = " ".join(
        f"Policy clause {i}: refunds within 30 days need a receipt and the original packaging." for i in range(300)
    )
    return dict(
        model=SONNET,
        max_tokens=50,
        system=[{"type": "text", "text": policy, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": question}],
    )


def test_second_request_reads_the_cache_and_costs_less(client, sim):
    first = client.messages.create(**_cached_body("How long is the refund window?")).usage
    second = client.messages.create(**_cached_body("Do I need a receipt?")).usage
    assert first.cache_creation_input_tokens > 2048 and first.cache_read_input_tokens == 0
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    costs = list(sim.ledger()["cost_usd"])
    assert costs[1] < costs[0] / 3
    counted = client.messages.count_tokens(
        **{k: v for k, v in _cached_body("Do I need a receipt?").items() if k != "max_tokens"}
    )
    assert counted.input_tokens == second.input_tokens + second.cache_read_input_tokens


# --------------------------------------------------------------------------------------- batches
def test_batch_create_rejects_duplicates(client):
    req = {"custom_id": "same", "params": {"model": HAIKU, "max_tokens": 5, "messages": ASK}}
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.batches.create(requests=[req, req])
    assert "same" in err.value.body["error"]["message"]


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


def test_batch_create_accepts_bodies_over_the_messages_limit(make_server):
    # 32 MB caps /v1/messages; a batch may be up to 256 MB. In-process: the batch is only created,
    # not processed (tokenising 36 MB in the background would outlast the test).

    text = "word " * 400_000  # ~2 MB per request
    reqs = [
        {
            "custom_id": f"big{i}",
            # A 200k-context model: each ~400k-token item then errors at once ("prompt is too long")
            # instead of being answered over a 2 MB prompt (~50 s of CPU the test does not need).
            "params": {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": text}]},
        }
        for i in range(18)
    ]
    batch = make_server(time_scale=0).client().messages.batches.create(requests=reqs)
    assert batch.request_counts.processing == 18
