"""The API's error envelope and the error types the simulator can return.

Every error response has the real shape::

    {"type": "error", "error": {"type": "invalid_request_error", "message": "..."}, "request_id": "req_..."}

Some errors also carry ``error.details`` (the spend-limit 429's ``{"error_code": "enforced_spend_limit_reached"}``,
https://platform.claude.com/docs/api/rate-limits). Types and statuses follow
https://platform.claude.com/docs/en/api/errors.
"""

from __future__ import annotations

from typing import Any

from ..errors import CourseError

__all__ = [
    "SimulatorError",
    "APIError",
    "InvalidRequest",
    "AuthenticationFailed",
    "PermissionDenied",
    "BillingError",
    "NotFound",
    "RequestTooLarge",
    "Conflict",
    "UserSpendLimitReached",
    "RateLimited",
    "InternalError",
    "Overloaded",
    "GatewayTimeout",
    "SpendLimitReached",
    "error_body",
]


class SimulatorError(CourseError):
    """Base of what the simulator raises to its caller: a bad fault header or reply scenario, a dropped connection.

    Not :class:`APIError`: that one is what the simulator *answers* (the HTTP error envelope the SDK turns
    into ``anthropic.APIStatusError``), as the real API would, so it models the server, not a library failure.
    """


class APIError(Exception):
    """An error the simulator answers with, as the API would."""

    status: int = 500
    type: str = "api_error"

    def __init__(
        self, message: str, *, headers: dict[str, str] | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})
        self.details = dict(details) if details else None

    def body(self, request_id: str) -> dict[str, Any]:
        return error_body(self.type, self.message, request_id, details=self.details)


def error_body(
    error_type: str, message: str, request_id: str, *, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON envelope the API uses for every error (also used inside batch results and SSE)."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details:
        error["details"] = dict(details)
    return {"type": "error", "error": error, "request_id": request_id}


class InvalidRequest(APIError):
    status, type = 400, "invalid_request_error"


class AuthenticationFailed(APIError):
    status, type = 401, "authentication_error"


class BillingError(APIError):
    status, type = 402, "billing_error"


class PermissionDenied(APIError):
    status, type = 403, "permission_error"


class NotFound(APIError):
    status, type = 404, "not_found_error"


class Conflict(APIError):
    """409: "The request conflicts with the current state of a resource. For example, the resource was
    modified concurrently" (errors page). The official SDKs retry it, like 408, 429 and 5xx."""

    status, type = 409, "conflict_error"


class UserSpendLimitReached(InvalidRequest):
    """A spend limit the organisation or a workspace set for itself: "The API also returns a 400 when
    usage reaches an organization or workspace spend limit you set" (errors page), unlike the 429 of
    a usage tier's cap (:class:`SpendLimitReached`). The message "begins 'You have reached your
    specified API usage limits' (or '... workspace API usage limits')" (as reported, not verbatim
    from the official page)."""

    def __init__(self, regain_access: str, *, workspace: bool = False) -> None:
        scope = "workspace API usage limits" if workspace else "API usage limits"
        super().__init__(
            f"You have reached your specified {scope}. You will regain access on {regain_access}. "
            "To raise or remove the limit, visit the Limits page of the Claude Console."
        )


class RequestTooLarge(APIError):
    status, type = 413, "request_too_large"


class RateLimited(APIError):
    status, type = 429, "rate_limit_error"


class InternalError(APIError):
    status, type = 500, "api_error"


class Overloaded(APIError):
    status, type = 529, "overloaded_error"


class GatewayTimeout(APIError):
    """504: "The request timed out while processing" (the API's, not the client's, timeout)."""

    status, type = 504, "timeout_error"


class SpendLimitReached(RateLimited):
    """The 429 of a usage tier's monthly spend cap: ``rate_limit_error`` like a rate limit, but with
    ``details.error_code = "enforced_spend_limit_reached"`` and no ``retry-after``, because retrying
    fails until the month turns. ``x-should-retry: false`` keeps the official SDKs from retrying it.
    """

    def __init__(self, regain_access: str = "the first day of next month at 00:00 UTC") -> None:
        super().__init__(
            "You have reached your API usage limits: your organization has crossed its monthly API usage "
            f"threshold, set based on your organization's API tier. You will regain access on {regain_access}.",
            headers={"x-should-retry": "false"},
            details={"error_code": "enforced_spend_limit_reached"},
        )
