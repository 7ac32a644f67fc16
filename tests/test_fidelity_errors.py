"""Issue 13 item 7: errors production code has to tell apart, each in the API's envelope with a request-id.

401 for a revoked key, 402/403/504 and the spend-limit 429 as forceable faults (``x-mock-fault``), at the
HTTP level and through the SDK (which must map each to its typed exception, and must not retry the
spend-limit 429). See docs/api-notes.md §8 rows 7a-7d.
"""

from __future__ import annotations

import anthropic
import httpx2
import pytest

HAIKU = "claude-haiku-5-5"
BODY = {"model": HAIKU, "max_tokens": 10, "messages": [{"role": "user", "content": "Say hello."}]}


def _post(sim, key: str = "errs", **headers: str) -> httpx2.Response:
    h = {"x-api-key": key, "anthropic-version": "2023-06-01", **headers}
    with httpx2.Client(base_url=sim.base_url, headers=h, timeout=10) as c:
        return c.post("/v1/messages", json=BODY)


def _envelope(r: httpx2.Response, status: int, error_type: str) -> dict:
    assert r.status_code == status, r.text
    env = r.json()
    assert env["type"] == "error" and env["error"]["type"] == error_type and env["error"]["message"]
    assert env["request_id"] == r.headers["request-id"] and env["request_id"].startswith("req_")
    return env


def test_revoked_key_gets_401_others_unaffected(sim):
    sim.simulator.revoke_key("sk-revoked")
    _envelope(_post(sim, key="sk-revoked"), 401, "authentication_error")
    assert _post(sim, key="sk-fine").status_code == 200
    with pytest.raises(anthropic.AuthenticationError):
        sim.client(api_key="sk-revoked", max_retries=0).messages.create(**BODY)
    # Every endpoint authenticates the same way.
    with pytest.raises(anthropic.AuthenticationError):
        sim.client(api_key="sk-revoked", max_retries=0).models.list()


@pytest.mark.parametrize(
    "kind,status,error_type,exc",
    [
        ("billing_error", 402, "billing_error", anthropic.APIStatusError),
        ("permission_error", 403, "permission_error", anthropic.PermissionDeniedError),
        ("timeout_error", 504, "timeout_error", anthropic.InternalServerError),
    ],
)
def test_forced_error_kinds(sim, kind, status, error_type, exc):
    _envelope(_post(sim, **{"x-mock-fault": kind}), status, error_type)
    with pytest.raises(exc) as err:
        sim.client(max_retries=0).messages.create(**BODY, extra_headers={"x-mock-fault": kind})
    assert err.value.status_code == status


def test_spend_limit_429_has_the_documented_shape_and_is_not_retried(sim):
    r = _post(sim, **{"x-mock-fault": "spend_limit"})
    env = _envelope(r, 429, "rate_limit_error")
    assert env["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}
    assert env["error"]["message"].startswith("You have reached your API usage limits")
    assert "retry-after" not in r.headers
    # The SDK must not retry it like a rate limit: one request reaches the server, not 1 + max_retries.
    sim.reset()
    with pytest.raises(anthropic.RateLimitError) as err:
        sim.client(max_retries=3).messages.create(**BODY, extra_headers={"x-mock-fault": "spend_limit"})
    assert err.value.body["error"]["details"]["error_code"] == "enforced_spend_limit_reached"
    assert len(sim.ledger()) == 1


def test_ordinary_rate_limit_fault_still_has_retry_after(sim):
    r = _post(sim, **{"x-mock-fault": "rate_limit"})
    _envelope(r, 429, "rate_limit_error")
    assert r.headers["retry-after"] == "1"
