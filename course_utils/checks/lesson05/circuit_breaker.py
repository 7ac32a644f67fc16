"""Checks for exercise 5.3 ``CircuitBreaker``: the failure rate over a window, 429s ignored, the half-open
state on a virtual clock, and a simulated outage graded through the ledger."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic

from ... import resilience
from ...clock import SYSTEM_CLOCK, VirtualClock
from ...mock_provider.faults import Scenario
from ...resilience.fakes import connection_error, status_error, timeout_error
from ..framework import CaseFailed, Exercise, case_now, expect
from ..sim import probe

from .common import report_body


# =============================================================================================
# 5.3 CircuitBreaker
# =============================================================================================
breaker = Exercise(
    "5.3",
    "A circuit breaker with a half-open state",
    points=4,
    signature="CircuitBreaker(*, failure_rate, min_calls, window_s, cooldown_s, half_open_calls, clock)",
    reference={
        "resilience.CircuitBreaker": resilience.CircuitBreaker,
        "resilience.BreakerBoard": resilience.BreakerBoard,
    },
    task="write a circuit breaker",
    hints=[
        "Keep (time, failed) pairs of the last window_s seconds. Open when there are >= min_calls and the failed "
        "share >= failure_rate. Open refuses until cooldown_s has passed; then half-open admits half_open_calls "
        "probes: all succeed -> closed, one fails -> open again. A 429 is not a failure.",
        "state is computed on read: if open and clock.monotonic() >= opened_at + cooldown_s, switch to half_open "
        "with a probe counter of 0. allow(): closed -> True; half_open -> True while probes < half_open_calls "
        "(count it); else False. record_failure(exc): if exc is a RateLimitError (429), ignore it.",
    ],
)

_SETTINGS = dict(failure_rate=0.5, min_calls=4, window_s=10.0, cooldown_s=5.0, half_open_calls=2)


def _make_breaker(cls: Any, clock: Any, **kw: Any) -> Any:
    settings = {**_SETTINGS, **kw, "clock": clock}
    try:
        return cls(**settings)
    except NotImplementedError:
        raise
    except TypeError as exc:
        raise CaseFailed(
            f"CircuitBreaker({', '.join(f'{k}=...' for k in settings)}) failed: {exc}",
            hint="Take the keyword arguments of the contract: failure_rate, min_calls, window_s, "
            "cooldown_s, half_open_calls, clock.",
        ) from None


def _state(b: Any) -> str:
    state = b.state
    return state() if callable(state) else state


def _trip(b: Any, n: int = 4) -> None:
    for _ in range(n):
        b.allow()
        b.record_failure(status_error(529))


@breaker.case("opens on the failure rate once min_calls calls are in the window, then refuses")
def _opens(cls) -> None:
    clock = VirtualClock()
    b = _make_breaker(cls, clock)
    for _ in range(3):
        b.record_failure(status_error(529))
    expect(
        _state(b) == "closed",
        f"opened after 3 failures with min_calls=4 (state {_state(b)!r})",
        expected="closed",
        got=_state(b),
        hint="Don't judge a failure rate on fewer than min_calls calls.",
    )
    b.record_success()
    expect(
        _state(b) == "open",
        f"3 of 4 calls failed (75% >= 50%) but the state is {_state(b)!r}",
        expected="open",
        got=_state(b),
        hint="After each outcome, compute failures / calls over the window.",
    )
    expect(
        b.allow() is False,
        "an open breaker let a call through",
        expected=False,
        got=True,
        hint="While open, allow() must return False: no request to a provider that is down.",
    )
    at_rate = _make_breaker(cls, VirtualClock())
    for _ in range(2):
        at_rate.record_success()
        at_rate.record_failure(status_error(529))
    expect(
        _state(at_rate) == "open",
        f"2 of 4 calls failed (50%, exactly failure_rate=0.5) but the state is {_state(at_rate)!r}",
        expected="open",
        got=_state(at_rate),
        hint="Open at the failure rate, not only above it: failures / calls >= failure_rate.",
    )
    for label, make in (("timeouts", timeout_error), ("connection errors", connection_error)):
        fresh = _make_breaker(cls, VirtualClock())
        fresh.record_success()
        for _ in range(3):
            fresh.record_failure(make())
        expect(
            _state(fresh) == "open",
            f"3 {label} of 4 calls (75% >= 50%) did not open the breaker: {label} did not count as failures",
            expected="open",
            got=_state(fresh),
            hint="Timeouts and connection errors say the provider is unhealthy: they count like a 529.",
        )


@breaker.case("only outcomes of the last window_s seconds count")
def _window(cls) -> None:
    clock = VirtualClock()
    b = _make_breaker(cls, clock)
    for _ in range(3):
        b.record_failure(status_error(529))
    clock.advance_sync(11.0)  # those three are now older than window_s = 10 s
    b.record_failure(status_error(529))
    for _ in range(3):
        b.record_success()
    expect(
        _state(b) == "closed",
        f"1 failure in the last 10 s (1 of 4 calls, 25%) opened the breaker (state {_state(b)!r}): failures "
        "older than window_s were still counted",
        expected="closed",
        got=_state(b),
        hint="Keep (time, failed) pairs and drop those older than clock.monotonic() - window_s before computing "
        "the failure rate.",
    )


@breaker.case("a 429 does not open the breaker")
def _not_on_429(cls) -> None:
    b = _make_breaker(cls, VirtualClock())
    for _ in range(20):
        assert b.allow() in (True, False)
        b.record_failure(status_error(429, {"retry-after": "1"}))
    expect(
        _state(b) == "closed",
        f"20 rate-limit 429s opened the breaker (state {_state(b)!r})",
        expected="closed",
        got=_state(b),
        hint="A 429 means 'you are sending too fast', not 'the provider is down': the cure is to slow down "
        "(retry-after), and opening would stop all traffic to a healthy provider. Ignore 429s.",
    )
    expect(
        b.allow() is True,
        "a closed breaker refused a call",
        expected=True,
        got=False,
        hint="Closed means healthy: allow() returns True for every call.",
    )


@breaker.case("half-open: after the cooldown, only half_open_calls probes; success closes, failure reopens")
def _half_open(cls) -> None:
    clock = VirtualClock()
    b = _make_breaker(cls, clock)
    _trip(b)
    expect(
        _state(b) == "open",
        "did not open after 4 failures of 4",
        expected="open",
        got=_state(b),
        hint="4 of 4 calls failed, at least min_calls=4 with 100% >= failure_rate: open.",
    )
    clock.advance_sync(4.0)
    expect(
        b.allow() is False,
        "let a call through before the cooldown ended",
        expected=False,
        got=True,
        hint="Refuse everything for cooldown_s seconds after opening.",
    )
    clock.advance_sync(1.5)
    expect(
        _state(b) == "half_open",
        f"after the cooldown the state is {_state(b)!r}",
        expected="half_open",
        got=_state(b),
        hint="After cooldown_s the breaker neither trusts nor refuses the provider: it is "
        "'half_open' and lets a few probe calls test it. Going straight to 'closed' sends the "
        "full load to a provider that may still be down.",
    )
    admitted = [b.allow() for _ in range(5)]
    expect(
        admitted == [True, True, False, False, False],
        f"in half-open, allow() gave {admitted}",
        expected=[True, True, False, False, False],
        got=admitted,
        hint="Admit exactly half_open_calls probes; refuse the others until the probes have answered.",
    )
    b.record_success()
    expect(
        _state(b) == "half_open",
        f"after 1 of the 2 probes succeeded the state is {_state(b)!r}",
        expected="half_open",
        got=_state(b),
        hint="Close only when all half_open_calls probes have succeeded; one success of two proves little.",
    )
    b.record_success()
    expect(
        _state(b) == "closed",
        "both probes succeeded but the breaker did not close",
        expected="closed",
        got=_state(b),
        hint="When half_open_calls probes have succeeded, close (and clear the window).",
    )
    expect(
        b.allow() is True,
        "closed again but refused a call",
        expected=True,
        got=False,
        hint="After closing, forget the probes and the old window: a closed breaker admits everything.",
    )
    _trip(b)
    clock.advance_sync(5.5)
    expect(
        b.allow() is True,
        "no probe admitted after the second cooldown",
        expected=True,
        got=False,
        hint="Each time the breaker opens, its next cooldown ends in half-open with a fresh probe count.",
    )
    b.record_failure(status_error(529))
    expect(
        _state(b) == "open",
        "a failed probe did not reopen the breaker",
        expected="open",
        got=_state(b),
        hint="One failed probe is enough: the provider is still down. Open again for a full cooldown.",
    )
    clock.advance_sync(4.0)
    expect(
        b.allow() is False,
        "the cooldown did not restart when a probe failed",
        expected=False,
        got=True,
        hint="Reopening restarts the cooldown from the moment the probe failed.",
    )


@breaker.case("through a simulated outage: only probes reach the dead provider, and it recovers (ledger)")
async def _outage(cls) -> None:
    p = probe(tier="unlimited", tag="check05")
    p.server.set_scenario(Scenario(name="check-5.3", outages=((5.0, 20.0),)))
    client = p.async_client()
    b = _make_breaker(
        cls, SYSTEM_CLOCK, failure_rate=0.5, min_calls=5, window_s=10.0, cooldown_s=4.0, half_open_calls=1
    )
    started = case_now()
    served = refused = 0
    async with p:
        while case_now() - started < 40:
            if b.allow():
                try:
                    await client.messages.create(**report_body(3))
                    b.record_success()
                    served += 1
                except anthropic.APIStatusError as exc:
                    b.record_failure(exc)
            else:
                refused += 1
            await asyncio.sleep(0.25)
    rows = p.requests()
    t = rows["arrival"] - rows["arrival"].min()
    dead = rows[(t > 8) & (t < 25)]
    expect(
        len(dead) <= 8,
        f"{len(dead)} requests reached the provider between 8 s and 25 s of a 20 s outage",
        expected="only the probes (about one per cooldown)",
        got=len(dead),
        hint="Once open, refuse calls (allow() False) until the cooldown ends, then admit only the probes.",
    )
    after = rows[t > 30]
    expect(
        len(after) > 10 and bool((after["status"] == 200).all()),
        f"after the outage ended the breaker let {len(after)} requests through",
        expected="the full load again, all succeeding",
        got=f"{len(after)} requests",
        hint="A successful probe in half-open must close the breaker, or traffic never comes back.",
    )
    expect(
        _state(b) == "closed",
        f"the breaker ended {_state(b)!r} after the outage",
        expected="closed",
        got=_state(b),
        hint="Once the provider answers again, a successful probe in half-open closes the breaker.",
    )
