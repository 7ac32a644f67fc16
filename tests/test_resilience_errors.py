"""What is retryable, what a breaker counts, and what retry-after says: on the SDK's real exception types."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from course_utils.clock import run_virtual
from course_utils.resilience import counts_as_outage, failure_kind, is_retryable, is_spend_limit, retry_after_s
from course_utils.resilience.fakes import connection_error, spend_limit_error, status_error, timeout_error


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retryable(status):
    assert is_retryable(status_error(status))


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413, 422])
def test_client_errors_are_not_retryable(status):
    assert not is_retryable(status_error(status))


def test_spend_limit_429_is_not_retryable_even_when_a_header_says_so():
    assert is_spend_limit(spend_limit_error())
    assert not is_retryable(spend_limit_error())
    forced = status_error(429, {"x-should-retry": "true"}, details={"error_code": "enforced_spend_limit_reached"})
    assert not is_retryable(forced)
    assert not is_spend_limit(status_error(429))


def test_x_should_retry_overrides_the_status():
    assert not is_retryable(status_error(529, {"x-should-retry": "false"}))
    assert is_retryable(status_error(409, {"x-should-retry": "true"}))
    assert not is_retryable(status_error(409))


def test_connection_errors_and_timeouts_are_retryable_other_exceptions_not():
    assert is_retryable(connection_error()) and is_retryable(timeout_error())
    assert is_retryable(asyncio.TimeoutError())
    assert not is_retryable(ValueError("bug")) and not is_retryable(KeyError("x"))


def test_retry_after_prefers_milliseconds_and_ignores_garbage():
    assert retry_after_s(status_error(429, {"retry-after": "7"})) == 7.0
    assert retry_after_s(status_error(429, {"retry-after": "7", "retry-after-ms": "1500"})) == 1.5
    assert retry_after_s(status_error(429, {"retry-after": "soon"})) is None
    assert retry_after_s(status_error(529)) is None
    assert retry_after_s(ValueError()) is None


def test_breaker_counts_outages_not_rate_limits_or_bad_requests():
    assert counts_as_outage(status_error(529)) and counts_as_outage(status_error(500))
    assert counts_as_outage(timeout_error()) and counts_as_outage(connection_error())
    assert not counts_as_outage(status_error(429)) and not counts_as_outage(status_error(400))
    assert not counts_as_outage(spend_limit_error())


def test_failure_kinds():
    assert [
        failure_kind(e) for e in (None, status_error(529), spend_limit_error(), timeout_error(), connection_error())
    ] == ["ok", "529", "spend_limit", "timeout", "connection"]


def test_classification_of_what_the_simulator_really_sends(make_server):
    """The forced faults of the simulator, through the SDK: the classifier agrees with the docs' table."""
    server = make_server(seed=0, time_scale=0.0)
    verdicts = {}

    async def run():
        client = server.async_client(max_retries=0)
        for fault in (
            "overloaded",
            "api_error",
            "rate_limit",
            "timeout_error",
            "spend_limit",
            "permission_error",
            "billing_error",
        ):
            try:
                await client.messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=5,
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"x-mock-fault": fault},
                )
            except anthropic.APIStatusError as exc:
                verdicts[fault] = (exc.status_code, is_retryable(exc), retry_after_s(exc))
        await client.close()

    run_virtual(run())
    assert verdicts["overloaded"][:2] == (529, True)
    assert verdicts["api_error"][:2] == (500, True)
    assert verdicts["rate_limit"][:2] == (429, True) and verdicts["rate_limit"][2] is not None
    assert verdicts["timeout_error"][:2] == (504, True)
    assert verdicts["spend_limit"][:2] == (429, False)
    assert verdicts["permission_error"][:2] == (403, False)
    assert verdicts["billing_error"][:2] == (402, False)


def test_an_error_event_inside_a_stream_is_classified_by_its_type(make_server):
    """After the 200 the SDK raises APIStatusError with status 200 (api-notes §2 STREAM): an
    overloaded_error there is as retryable as a 529, and counts against the breaker, through the SDK."""
    server = make_server(seed=0, time_scale=0.0)
    caught: list[BaseException] = []

    async def run():
        client = server.async_client(max_retries=0)
        try:
            async with client.messages.stream(
                model="claude-haiku-4-5",
                max_tokens=200,
                messages=[{"role": "user", "content": "Tell me a long story about a lighthouse."}],
                extra_headers={"x-mock-fault": "stream_error"},
            ) as stream:
                async for _ in stream:
                    pass
        except anthropic.APIStatusError as exc:
            caught.append(exc)
        await client.close()

    run_virtual(run())
    [exc] = caught
    assert exc.status_code == 200  # the stream had started: the status cannot say what went wrong
    assert is_retryable(exc) and counts_as_outage(exc)
    assert failure_kind(exc) == "stream overloaded_error"


def test_an_invalid_request_inside_a_stream_is_not_retried():
    import httpx2

    response = httpx2.Response(200, request=httpx2.Request("POST", "http://sim/v1/messages"))
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
    exc = anthropic.APIStatusError("bad", response=response, body=body)
    assert not is_retryable(exc) and not counts_as_outage(exc)
