"""The SDK's own exceptions, built without a network: for tests, checks and the lesson's tables.

:func:`status_error` builds exactly what ``anthropic`` raises for a response (the SDK picks the
subclass from the status and body, e.g. ``OverloadedError`` for 529), so classification code is
tested against the real types, headers and bodies.
"""

from __future__ import annotations

import functools
from typing import Any

import anthropic
import httpx2

__all__ = ["status_error", "connection_error", "timeout_error", "ERROR_TYPES", "spend_limit_error"]

_URL = "http://simulator.invalid/v1/messages"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""The ``error.type`` the API's documentation gives each status."""


def status_error(
    status: int,
    headers: dict[str, str] | None = None,
    *,
    error_type: str | None = None,
    message: str = "simulated",
    details: dict[str, Any] | None = None,
) -> anthropic.APIStatusError:
    """The ``anthropic.APIStatusError`` subclass the SDK raises for this response."""
    error: dict[str, Any] = {"type": error_type or ERROR_TYPES.get(status, "api_error"), "message": message}
    if details is not None:
        error["details"] = details
    response = httpx2.Response(
        status, headers=headers or {}, json={"type": "error", "error": error}, request=httpx2.Request("POST", _URL)
    )
    return _client()._make_status_error_from_response(response)


@functools.lru_cache(maxsize=1)
def _client() -> anthropic.Anthropic:
    # Only its error factory is used (no request is ever sent); building a client is slow, so once.
    return anthropic.Anthropic(api_key="sim-key-fakes", base_url="http://simulator.invalid")


def spend_limit_error() -> anthropic.APIStatusError:
    """The monthly spend-limit 429 (``enforced_spend_limit_reached``, ``x-should-retry: false``)."""
    return status_error(
        429,
        {"x-should-retry": "false"},
        message="You have reached your API usage limits.",
        details={"error_code": "enforced_spend_limit_reached"},
    )


def connection_error() -> anthropic.APIConnectionError:
    return anthropic.APIConnectionError(request=httpx2.Request("POST", _URL))


def timeout_error() -> anthropic.APITimeoutError:
    return anthropic.APITimeoutError(request=httpx2.Request("POST", _URL))
