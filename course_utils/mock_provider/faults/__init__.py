"""Fault injection: the failures a client of the real API must survive, on demand and reproducibly.

A :class:`Scenario` says how often things go wrong; a :class:`FaultInjector` decides, request by
request, whether this one fails and how. Decisions are a pure function of
``(seed, scenario name, request key, n)``, where ``n`` counts earlier requests with the same key
(the same body): the same seed and the same requests give the same faults on every run, and a
retry of a failed body draws afresh, so it can succeed. Outages are the exception by design: they
follow the clock, because a circuit breaker can only be taught against time.

Fault kinds are declared once each, in :data:`FAULT_SPECS` (a :class:`FaultKind` says the status, the error
the response carries, whether it strikes mid-stream, holds the response, and which scenario probability draws
it); adding a kind is one declaration there. The forceable ones are the values of the ``x-mock-fault`` header:

================== ==================================================================================
kind               how the pipeline applies it
================== ==================================================================================
overloaded         answer 529 ``overloaded_error``
api_error          answer 500 ``api_error``
rate_limit         answer 429 ``rate_limit_error`` with ``retry-after``
stream_error       streaming: HTTP 200, then an ``event: error`` (``overloaded_error``) after
                   ``after_tokens`` text deltas; non-streaming: a plain 529
disconnect         streaming: drop the connection after ``after_tokens`` text deltas;
                   non-streaming: close the connection without any response
timeout            await ``delay_s`` *real* seconds (beyond the SDKs' 600 s default timeout), then
                   answer normally: the client's timeout is what the student should see fire
timeout_error      answer 504 ``timeout_error`` (the API timed out while processing)
billing_error      answer 402 ``billing_error``
permission_error   answer 403 ``permission_error``
spend_limit        answer the spend-cap 429: ``rate_limit_error`` with
                   ``details.error_code = "enforced_spend_limit_reached"``, no ``retry-after``
lost_response      the provider generates the whole reply and bills it (ledger: status 200, cost,
                   ``delivered`` False), then the connection drops: the client sees a connection
                   error and never the answer
late_response      the provider generates the whole reply and bills it, then holds it ``late_s``
                   seconds (scenario field, default 30) before sending: a client whose read timeout
                   is shorter gives up (ledger: ``delivered`` False); one that waits gets the answer
slow               (scenarios only, not forceable) await ``delay_s`` real seconds, then answer normally
================== ==================================================================================

Capacity (:class:`Capacity`) makes overload depend on the offered load: above ``rps`` requests per
simulated second the provider sheds the excess with 529 ``overloaded_error``, and a shed request still
costs ``shed_cost`` of a served one, so a crowd of retries keeps the provider overloaded (a retry storm)
until the offered load falls.

Outages (:class:`Outage`) are windows of simulated time during which every request, or every request
to some models only, fails with one kind (``overloaded`` by default; see :data:`OUTAGE_KINDS`).

Times: ``delay_s`` and ``retry_after`` are real seconds, never scaled, because they are what a
client's timeouts and sleeps act on. Outage windows are in *simulated* seconds since the scenario
was set, where simulated time = real elapsed time / ``time_scale`` (``time_scale`` 0 means
simulated time is infinitely fast, so every outage is already over). All of them are read from the
simulator's one clock: on an in-process simulator on a virtual loop, virtual time.
"""

from .injector import FaultInjector
from .kinds import FAULT_KINDS, FAULT_SPECS, TIMEOUT_DELAY_S, Fault, FaultKind, InvalidFault, validate_forced
from .scenarios import OUTAGE_KINDS, SCENARIOS, Burst, Capacity, Outage, Scenario, get_scenario

__all__ = [
    "FAULT_KINDS",
    "FAULT_SPECS",
    "FaultKind",
    "TIMEOUT_DELAY_S",
    "Fault",
    "Burst",
    "Capacity",
    "Outage",
    "OUTAGE_KINDS",
    "Scenario",
    "SCENARIOS",
    "get_scenario",
    "InvalidFault",
    "validate_forced",
    "FaultInjector",
]
