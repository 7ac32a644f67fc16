"""Fault kinds, declared once each in :data:`FAULT_SPECS`, and the :class:`Fault` a request gets.

A :class:`FaultKind` says the status, the error the response carries, whether it strikes
mid-stream, holds the response, and which scenario probability draws it; adding a kind is one
declaration here (see the table in :mod:`course_utils.mock_provider.faults`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from ...clock import SYSTEM_CLOCK
from ..spend import regain_access_date
from ..errors import (
    APIError,
    BillingError,
    GatewayTimeout,
    InternalError,
    Overloaded,
    PermissionDenied,
    RateLimited,
    SpendLimitReached,
    Conflict,
    UserSpendLimitReached,
)
from ..errors import SimulatorError

__all__ = [
    "FAULT_KINDS",
    "FAULT_SPECS",
    "FaultKind",
    "Fault",
    "TIMEOUT_DELAY_S",
    "InvalidFault",
    "validate_forced",
    "make_fault",
    "DRAWN",
    "PROBABILITIES",
]

TIMEOUT_DELAY_S = 900.0
"""Real seconds a ``timeout`` fault holds the response: past the official SDKs' 10-minute default."""

_RATE_LIMIT_MESSAGE = (
    "Number of request tokens has exceeded your per-minute rate limit "
    "(https://docs.claude.com/en/api/rate-limits); see the response headers for current usage. "
    "Please reduce the prompt length or the maximum tokens requested, or try again later. "
    "You may also contact sales at https://claude.com/contact-sales to discuss your options for a "
    "rate limit increase."
)


@dataclass(frozen=True)
class Fault:
    """One injected failure. ``status`` is None when the fault produces no error response itself."""

    kind: str
    status: int | None
    error_type: str | None
    message: str
    after_tokens: int | None = None
    """For ``disconnect``/``stream_error`` on a stream: text deltas sent before the fault strikes."""
    retry_after: int | None = None
    """For ``rate_limit``: whole seconds the client should wait before retrying."""
    delay_s: float | None = None
    """For ``timeout``/``slow``/``late_response``: seconds to hold the response."""
    cause: str = "scenario"
    """Why it happened: ``forced`` (header), ``outage``, ``burst`` or ``scenario`` (random draw)."""
    at: float | None = field(default=None, compare=False)
    """Epoch time on the injector's clock when the fault was decided (a spend cap dates its regain
    from it); None: read :data:`~course_utils.clock.SYSTEM_CLOCK` when the error is built."""

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers the fault's error response carries."""
        return {"retry-after": str(self.retry_after)} if self.retry_after is not None else {}

    def error(self) -> APIError | None:
        """The error response to send instead of a reply, or None (delays, disconnects, mid-stream)."""
        make = FAULT_SPECS[self.kind].error
        return make(self) if make is not None else None

    @property
    def spec(self) -> "FaultKind":
        """The declaration of this fault's kind."""
        return FAULT_SPECS[self.kind]

    def for_non_streaming(self) -> "Fault":
        """The same fault as a non-streaming request experiences it (no mid-stream position)."""
        return replace(self, after_tokens=None) if FAULT_SPECS[self.kind].mid_stream else self


@dataclass(frozen=True)
class FaultKind:
    """The one declaration of a fault kind: what it answers and how it is drawn.

    ``error`` builds the response that replaces the reply (None: the fault acts later, by holding,
    dropping, or erroring mid-stream). ``probability`` names the :class:`Scenario` field that draws
    it at random (None: it can only be forced with the header).
    """

    name: str
    status: int | None
    error_type: str | None
    message: str
    error: Callable[[Fault], APIError] | None = None
    forceable: bool = True
    mid_stream: bool = False
    """Streams carry it as an ``after_tokens`` position (a non-streaming request gets it up front)."""
    retry_after: bool = False
    """The response carries ``retry-after`` (the scenario's ``retry_after_s``)."""
    hold_s: float | None = None
    """Seconds the response is held (a fixed hold)."""
    hold_from: str | None = None
    """The :class:`Scenario` field giving the seconds the response is held (``slow_s``, ``late_s``)."""
    billed: bool = False
    """The provider finishes the request and bills it before the fault strikes (a lost response)."""
    drops: bool = False
    """The connection is dropped instead of delivering the response."""
    probability: str | None = None


def _spend_cap_regain_date(fault: Fault) -> str:
    """When a paused organisation regains access: 00:00 UTC on the first day of the next month.

    "Now" is the fault's own time (the injector's clock), so on a virtual loop the date follows virtual time.
    """
    return regain_access_date(fault.at if fault.at is not None else SYSTEM_CLOCK.time())


# In the order a scenario draws them (the order is part of the reproducible fault timeline).
FAULT_SPECS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind(
            "overloaded",
            529,
            "overloaded_error",
            "Overloaded",
            lambda f: Overloaded(f.message),
            probability="p_overloaded",
        ),
        FaultKind(
            "api_error",
            500,
            "api_error",
            "Internal server error",
            lambda f: InternalError(f.message),
            probability="p_api_error",
        ),
        FaultKind(
            "rate_limit",
            429,
            "rate_limit_error",
            _RATE_LIMIT_MESSAGE,
            lambda f: RateLimited(f.message, headers=f.headers),
            retry_after=True,
            probability="p_rate_limit",
        ),
        FaultKind(
            "stream_error",
            529,
            "overloaded_error",
            "Overloaded",
            lambda f: Overloaded(f.message),
            mid_stream=True,
            probability="p_stream_error",
        ),
        FaultKind(
            "disconnect",
            None,
            None,
            "Connection dropped by the server",
            mid_stream=True,
            drops=True,
            probability="p_disconnect",
        ),
        FaultKind(
            "timeout",
            None,
            None,
            "No response before the client's timeout",
            hold_s=TIMEOUT_DELAY_S,
            probability="p_timeout",
        ),
        FaultKind("slow", None, None, "Slow response", forceable=False, hold_from="slow_s", probability="slow_p"),
        # Lost responses: the provider did the work and billed it, but the answer never reaches the client.
        FaultKind(
            "lost_response",
            None,
            None,
            "Response lost after the provider finished and billed the request",
            billed=True,
            drops=True,
            probability="p_lost_response",
        ),
        FaultKind(
            "late_response",
            None,
            None,
            "Response delivered late, after the provider finished and billed it",
            billed=True,
            hold_from="late_s",
            probability="p_late_response",
        ),
        # Errors production code must tell apart (https://platform.claude.com/docs/en/api/errors); forced only.
        FaultKind(
            "timeout_error",
            504,
            "timeout_error",
            "The request timed out while processing. Consider using streaming for long-running requests.",
            lambda f: GatewayTimeout(f.message),
        ),
        FaultKind("billing_error", 402, "billing_error", "Billing error", lambda f: BillingError(f.message)),
        FaultKind(
            "permission_error", 403, "permission_error", "Permission denied", lambda f: PermissionDenied(f.message)
        ),
        FaultKind(
            "spend_limit",
            429,
            "rate_limit_error",
            "Spend limit reached",
            lambda f: SpendLimitReached(_spend_cap_regain_date(f)),
        ),
        # A spend limit the organisation or a workspace set itself is a 400, not the tier cap's 429.
        FaultKind(
            "user_spend_limit",
            400,
            "invalid_request_error",
            "Specified spend limit reached",
            lambda f: UserSpendLimitReached(_spend_cap_regain_date(f)),
        ),
        FaultKind(
            "workspace_spend_limit",
            400,
            "invalid_request_error",
            "Specified workspace spend limit reached",
            lambda f: UserSpendLimitReached(_spend_cap_regain_date(f), workspace=True),
        ),
        FaultKind(
            "conflict_error",
            409,
            "conflict_error",
            "The request conflicts with the current state of a resource.",
            lambda f: Conflict(f.message),
        ),
    )
}
"""Every fault kind, declared once."""

FAULT_KINDS: tuple[str, ...] = tuple(k.name for k in FAULT_SPECS.values() if k.forceable)
"""The kinds a request can force with the ``x-mock-fault`` header."""


def make_fault(
    kind: str,
    *,
    after_tokens: int | None = None,
    retry_after: int = 1,
    delay_s: float | None = None,
    cause: str = "scenario",
) -> Fault:
    try:
        spec = FAULT_SPECS[kind]
    except KeyError:
        raise ValueError(f"unknown fault kind {kind!r}") from None
    return Fault(
        kind,
        spec.status,
        spec.error_type,
        spec.message,
        after_tokens=after_tokens if spec.mid_stream else None,
        retry_after=retry_after if spec.retry_after else None,
        delay_s=delay_s if spec.hold_from else spec.hold_s,
        cause=cause,
    )


class InvalidFault(SimulatorError, ValueError):
    """An ``x-mock-fault`` header value that names no fault kind (the pipeline answers 400)."""


def validate_forced(value: str | None) -> str | None:
    """Check an ``x-mock-fault`` header value; return the kind, or None when the header is absent."""
    if value is None:
        return None
    kind = value.strip()
    if kind not in FAULT_KINDS:
        raise InvalidFault(f"x-mock-fault: {value!r} is not a fault kind; valid values are: {', '.join(FAULT_KINDS)}")
    return kind


DRAWN = tuple(k for k in FAULT_SPECS.values() if k.probability)
"""The kinds a scenario draws at random, in draw order."""

PROBABILITIES = tuple(k.probability for k in DRAWN)
"""The :class:`~.scenarios.Scenario` fields holding those probabilities."""
