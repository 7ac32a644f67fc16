"""Checks for exercise 5.1 ``is_retryable``: which failures are worth another attempt (statuses, the
x-should-retry header, the spend-limit 429, our own bugs, and 300 seeded random failures)."""

from __future__ import annotations

import random
from typing import Any

from ... import resilience
from ...resilience.fakes import connection_error, spend_limit_error, status_error, timeout_error
from ..framework import CaseFailed, Exercise, expect


# =============================================================================================
# 5.1 is_retryable(exc) -> bool
# =============================================================================================
retryable = Exercise(
    "5.1",
    "Which failures are worth another attempt",
    points=2,
    signature="is_retryable(exc) -> bool",
    reference={"resilience.is_retryable": resilience.is_retryable},
    task="classify failures",
    hints=[
        "Retry what can succeed next time: 429 (but not the spend limit), 529, 500, 504, connection errors and "
        "timeouts. Never 400, 401, 403, 404, 413: the same request fails the same way. Honour x-should-retry.",
        "if isinstance(exc, anthropic.APIStatusError): if exc.error_code == 'enforced_spend_limit_reached': "
        "return False; h = exc.response.headers.get('x-should-retry'); if h in ('true', 'false'): return h == 'true'; "
        "return exc.status_code in (408, 429) or exc.status_code >= 500. Then return isinstance(exc, "
        "(anthropic.APIConnectionError, TimeoutError)).",
    ],
)


def _verdict(fn: Any, exc: BaseException, label: str) -> bool:
    try:
        got = fn(exc)
    except (CaseFailed, NotImplementedError):
        raise
    except Exception as err:  # noqa: BLE001 - named for the student
        raise CaseFailed(
            f"is_retryable raised {type(err).__name__} for {label}: {err}",
            hint="Classify every exception, API or not, without raising: read status_code only "
            "from anthropic.APIStatusError.",
        ) from None
    if not isinstance(got, bool):
        raise CaseFailed(
            f"is_retryable returned {got!r} for {label}",
            expected="True or False",
            got=got,
            hint="Return a bool: True or False, not None or a truthy value.",
        )
    return got


def _spend_limit_saying_retry() -> BaseException:
    """The spend-limit 429 with ``x-should-retry: true``: the statement says the spend limit wins."""
    return status_error(
        429,
        {"x-should-retry": "true"},
        message="You have reached your API usage limits.",
        details={"error_code": "enforced_spend_limit_reached"},
    )


@retryable.case("transient failures are retried: 408, 429, 529, 500, 502, 503, 504, connection errors, timeouts")
def _transient(fn) -> None:
    for label, exc in [
        ("429 rate_limit_error", status_error(429, {"retry-after": "2"})),
        ("529 overloaded_error", status_error(529)),
        ("500 api_error", status_error(500)),
        ("502 api_error", status_error(502)),
        ("503 api_error", status_error(503)),
        ("504 timeout_error", status_error(504)),
        ("408 request timeout", status_error(408)),
        ("APIConnectionError", connection_error()),
        ("APITimeoutError", timeout_error()),
        ("TimeoutError (asyncio.wait_for's)", TimeoutError()),
    ]:
        expect(
            _verdict(fn, exc, label) is True,
            f"{label} was not retried",
            expected=True,
            got=False,
            hint="Overloads, server errors, timeouts and dropped connections pass; another attempt can succeed.",
        )


@retryable.case("the request's own faults are never retried: 400, 401, 403, 404, 413")
def _permanent(fn) -> None:
    for status in (400, 401, 403, 404, 413):
        exc = status_error(status)
        expect(
            _verdict(fn, exc, f"{status} {type(exc).__name__}") is False,
            f"{status} ({type(exc).__name__}) was retried",
            expected=False,
            got=True,
            hint="A 4xx other than 429 says the request itself is wrong (or too large, or not allowed): the "
            "same request fails the same way, every time. Retry only 408, 429 and 5xx.",
        )


@retryable.case("the spend-limit 429 and x-should-retry: false are not retried")
def _spend_limit(fn) -> None:
    expect(
        _verdict(fn, spend_limit_error(), "the spend-limit 429") is False,
        "the spend-limit 429 (error_code enforced_spend_limit_reached) was retried",
        expected=False,
        got=True,
        hint="It is a RateLimitError like any 429, but it lasts until the month turns and carries no "
        "retry-after: check exc.error_code == 'enforced_spend_limit_reached' (or the x-should-retry: false "
        "header it carries) before treating a 429 as retryable.",
    )
    expect(
        _verdict(fn, status_error(529, {"x-should-retry": "false"}), "529 with x-should-retry: false") is False,
        "a 529 whose response says x-should-retry: false was retried",
        expected=False,
        got=True,
        hint="The x-should-retry header overrides the status code (the official SDKs obey it).",
    )
    expect(
        _verdict(fn, _spend_limit_saying_retry(), "the spend-limit 429 with x-should-retry: true") is False,
        "the spend-limit 429 was retried because its x-should-retry said true",
        expected=False,
        got=True,
        hint="The statement: the spend-limit 429 is never retried, whatever its x-should-retry says. Test "
        "exc.error_code == 'enforced_spend_limit_reached' before reading the header.",
    )


@retryable.case("x-should-retry: true makes any status retryable (the header overrides in both directions)")
def _header_true(fn) -> None:
    for status in (400, 404, 413):
        exc = status_error(status, {"x-should-retry": "true"})
        expect(
            _verdict(fn, exc, f"{status} with x-should-retry: true") is True,
            f"a {status} whose response says x-should-retry: true was not retried",
            expected=True,
            got=False,
            hint="The header overrides the status in both directions: read exc.response.headers.get('x-should-retry') "
            "before falling back to the status code.",
        )


_NAMED_STATUSES = (400, 401, 403, 404, 408, 413, 429, 500, 501, 502, 503, 504, 520, 529, 599)
"""Statuses the statement classifies (other 4xx, 409 or 422 say, it leaves open, so none is drawn)."""


@retryable.case("300 seeded random failures (status, x-should-retry, spend limit) classified as the statement says")
def _random_failures(fn) -> None:
    rng = random.Random(51)
    for _ in range(300):
        status = rng.choice(_NAMED_STATUSES)
        header = rng.choice([None, None, "true", "false"])
        spend = status == 429 and rng.random() < 0.3
        headers = {"x-should-retry": header} if header else {}
        if status == 429 and not spend and rng.random() < 0.5:
            headers["retry-after"] = str(rng.randint(1, 30))
        details = {"error_code": "enforced_spend_limit_reached"} if spend else None
        exc = status_error(status, headers, details=details)
        label = (
            f"{status}" + (" (spend limit)" if spend else "") + (f" with x-should-retry: {header}" if header else "")
        )
        want = False if spend else (header == "true") if header else (status in (408, 429) or status >= 500)
        got = _verdict(fn, exc, label)
        expect(
            got is want,
            f"{label} was {'retried' if got else 'not retried'}",
            expected=want,
            got=got,
            hint="In order: the spend limit is never retried; then x-should-retry decides when present; then the "
            "status: 408, 429 and every 5xx are retried, 400, 401, 403, 404 and 413 are not.",
        )


@retryable.case("other exceptions (bugs in our code) are not retried")
def _bugs(fn) -> None:
    for exc in (
        ValueError("bad prompt template"),
        KeyError("text"),
        TypeError("unsupported operand"),
        RuntimeError("event loop is closed"),
        ZeroDivisionError("division by zero"),
    ):
        expect(
            _verdict(fn, exc, type(exc).__name__) is False,
            f"{type(exc).__name__} was retried",
            expected=False,
            got=True,
            hint="Retrying every exception retries our own bugs too, and hides them behind a slower failure.",
        )
