"""The API's error envelope and the error types the simulator can return.

Every error response has the real shape::

    {"type": "error", "error": {"type": "invalid_request_error", "message": "..."}, "request_id": "req_..."}
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "InvalidRequest",
    "AuthenticationFailed",
    "PermissionDenied",
    "NotFound",
    "RequestTooLarge",
    "RateLimited",
    "InternalError",
    "Overloaded",
    "error_body",
]


class APIError(Exception):
    """An error the simulator answers with, as the API would."""

    status: int = 500
    type: str = "api_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})

    def body(self, request_id: str) -> dict[str, Any]:
        return error_body(self.type, self.message, request_id)


def error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    """The JSON envelope the API uses for every error (also used inside batch results and SSE)."""
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


class InvalidRequest(APIError):
    status, type = 400, "invalid_request_error"


class AuthenticationFailed(APIError):
    status, type = 401, "authentication_error"


class PermissionDenied(APIError):
    status, type = 403, "permission_error"


class NotFound(APIError):
    status, type = 404, "not_found_error"


class RequestTooLarge(APIError):
    status, type = 413, "request_too_large"


class RateLimited(APIError):
    status, type = 429, "rate_limit_error"


class InternalError(APIError):
    status, type = 500, "api_error"


class Overloaded(APIError):
    status, type = 529, "overloaded_error"
