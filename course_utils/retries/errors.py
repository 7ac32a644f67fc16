"""Which failures are worth another attempt, and what the response says about waiting.

One module decides it for the whole course, from the official SDK's exception types
(``anthropic.APIStatusError`` and its subclasses, ``APIConnectionError``, ``APITimeoutError``):

- retryable: 429 ``rate_limit_error`` (except the spend limit), 529 ``overloaded_error``, 500
  ``api_error``, 502/503/504 (``timeout_error``), 408, connection errors and timeouts (the SDK's
  ``APITimeoutError``, and a plain ``TimeoutError`` from ``asyncio.wait_for`` around a call);
- never retried: 400, 401, 402, 403, 404, 413 and every other 4xx, the spend-limit 429
  (``error.details.error_code == "enforced_spend_limit_reached"``: it lasts until the month turns),
  and anything that is not an API failure (a bug in our own code is not fixed by trying again);
- ``x-should-retry: true | false`` on a response overrides the status code, as the official SDKs do;
- an error *inside a stream* arrives after the HTTP 200 (api-notes §2, ``STREAM``): the SDK raises
  ``APIStatusError`` with the response's status, 200, so the body's ``error.type`` decides
  (``overloaded_error``, ``api_error``, ``timeout_error``, ``rate_limit_error``: retryable).

A circuit breaker asks a different question (:func:`counts_as_outage`): is the *provider* failing?
Overloads, 5xx, timeouts and connection errors say yes. A 429 says "you are sending too fast": the
provider is healthy, so it must not open a breaker (that would turn a rate limit into an outage).
"""

from __future__ import annotations

from typing import Any

import anthropic

from ..errors import CourseError

__all__ = [
    "RetriesError",
    "RETRYABLE_STATUSES",
    "RETRYABLE_STREAM_ERRORS",
    "SPEND_LIMIT_CODE",
    "is_retryable",
    "is_spend_limit",
    "retry_after_s",
    "counts_as_outage",
    "failure_kind",
]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
"""HTTP statuses worth retrying (429 only when it is not the spend limit)."""


class RetriesError(CourseError):
    """Base of the exceptions raised on purpose by ``course_utils.retries`` (:class:`~.throttle.ThrottledLocally`)."""


SPEND_LIMIT_CODE = "enforced_spend_limit_reached"
"""``error.details.error_code`` of the monthly spend-limit 429."""

RETRYABLE_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "timeout_error", "rate_limit_error"})
"""``error.type`` values of an error event inside a stream (after the 200) worth another attempt."""

_OUTAGE_STREAM_ERRORS = RETRYABLE_STREAM_ERRORS - {"rate_limit_error"}


def _header(exc: BaseException, name: str) -> str | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        return headers.get(name)
    except Exception:  # noqa: BLE001 - a malformed response is not a reason to crash the classifier
        return None


def _error_type(exc: BaseException) -> str | None:
    """``error.type`` of an API error's body (``{"type": "error", "error": {"type": ...}}``), or None."""
    body: Any = getattr(exc, "body", None)
    error = body.get("error", body) if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


def _in_stream(exc: BaseException) -> bool:
    """An error event that arrived inside a stream: the HTTP status was a success."""
    return isinstance(exc, anthropic.APIStatusError) and exc.status_code < 400


def is_spend_limit(exc: BaseException) -> bool:
    """True for the 429 that means "monthly spend limit reached" (retrying cannot help)."""
    if not isinstance(exc, anthropic.APIStatusError) or exc.status_code != 429:
        return False
    code = getattr(exc, "error_code", None)
    if code is None:  # older SDKs: read the body
        body: Any = getattr(exc, "body", None)
        error = body.get("error", body) if isinstance(body, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        code = details.get("error_code") if isinstance(details, dict) else None
    return code == SPEND_LIMIT_CODE


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt of the same request can succeed (see the module docstring)."""
    if isinstance(exc, anthropic.APIStatusError):
        if is_spend_limit(exc):
            return False
        should = (_header(exc, "x-should-retry") or "").strip().lower()
        if should == "true":
            return True
        if should == "false":
            return False
        if _in_stream(exc):
            return _error_type(exc) in RETRYABLE_STREAM_ERRORS
        return exc.status_code in RETRYABLE_STATUSES or exc.status_code >= 500
    if isinstance(exc, anthropic.APIConnectionError):  # includes APITimeoutError
        return True
    return isinstance(exc, TimeoutError)  # asyncio.wait_for / asyncio.timeout around a call


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds the response asks us to wait (``retry-after-ms``, else ``retry-after``), or None.

    Only numeric values are read; an HTTP date is rare on this API and ignored (the backoff applies).
    """
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = _header(exc, name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def counts_as_outage(exc: BaseException) -> bool:
    """Whether a failure says the provider is unhealthy (what a circuit breaker counts).

    529, 5xx, timeouts and connection errors: yes. 429 (slow down), spend limit and every other
    4xx (our request was wrong; the provider answered it fine): no.
    """
    if isinstance(exc, anthropic.APIStatusError):
        if _in_stream(exc):
            return _error_type(exc) in _OUTAGE_STREAM_ERRORS
        return exc.status_code >= 500 or exc.status_code == 408
    return isinstance(exc, (anthropic.APIConnectionError, TimeoutError))


def failure_kind(exc: BaseException | None) -> str:
    """A short label for tables: ``ok``, ``429``, ``529``, ``500``, ``timeout``, ``connection``, ``spend_limit``, ..."""
    if exc is None:
        return "ok"
    if is_spend_limit(exc):
        return "spend_limit"
    if _in_stream(exc):
        return f"stream {_error_type(exc) or 'error'}"
    if isinstance(exc, anthropic.APIStatusError):
        return str(exc.status_code)
    if isinstance(exc, (anthropic.APITimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection"
    return type(exc).__name__
