"""Checks for exercise 7.1 ``TenantRateLimiter``: a token bucket per tenant, exact waits, on a virtual clock."""

from __future__ import annotations

from typing import Any

from ... import tenancy
from ...clock import VirtualClock
from ..framework import CaseFailed, Exercise, expect


# =============================================================================================
# 7.1 TenantRateLimiter(rpm, clock).acquire(tenant_id) -> float
# =============================================================================================
limiter = Exercise(
    "7.1",
    "A per-tenant rate limiter",
    points=3,
    signature="TenantRateLimiter(rpm, clock); limiter.acquire(tenant_id) -> float",
    reference={"tenancy.MemoryLimiter": tenancy.MemoryLimiter, "tenancy.RedisLimiter": tenancy.RedisLimiter},
    task="limit each tenant's rate",
    hints=[
        "One token bucket per tenant (a dict keyed by tenant id), each holding at most rpm requests and "
        "refilling at rpm / 60 per second of clock.monotonic(). acquire returns 0.0 and takes one token, or "
        "takes nothing and returns the seconds until one token is there.",
        "level = min(rpm, level + (now - last) * rpm / 60); last = now; if level >= 1: level -= 1; return 0.0; "
        "return (1 - level) / (rpm / 60).",
    ],
)


def _make_limiter(cls: Any, rpm: int, clock: VirtualClock) -> Any:
    try:
        return cls(rpm, clock)
    except TypeError as err:
        raise CaseFailed(
            f"TenantRateLimiter({rpm}, clock) could not be built: {err}",
            hint="The constructor takes the requests per minute and the clock: __init__(self, rpm, clock).",
        ) from None


def _acquire(lim: Any, tenant: str) -> float:
    got = lim.acquire(tenant)
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise CaseFailed(
            f"acquire({tenant!r}) returned {got!r}",
            expected="0.0 when admitted, else the seconds to wait",
            got=got,
            hint="Return a number: 0.0 when the request may go, otherwise how long until it could.",
        )
    return float(got)


@limiter.case("tenant A's flood does not delay tenant B")
def _flood(cls) -> None:
    clock = VirtualClock()
    lim = _make_limiter(cls, 10, clock)
    admitted = sum(_acquire(lim, "acme") == 0 for _ in range(40))
    expect(
        admitted == 10,
        f"a flood of 40 requests admitted {admitted} of tenant acme's at once, with 10 per minute",
        expected=10,
        got=admitted,
        hint="A fresh tenant's bucket holds rpm requests: the first rpm go, the rest wait.",
    )
    wait = _acquire(lim, "globex")
    expect(
        wait == 0,
        f"tenant globex, which had sent nothing, was told to wait {wait:.2f} s after acme's flood",
        expected=0.0,
        got=wait,
        hint="One bucket shared by every tenant is the noisy neighbour again: keep a bucket per tenant id.",
    )


@limiter.case("refills continuously at rpm / 60 per second and says exactly how long to wait")
def _refill(cls) -> None:
    clock = VirtualClock()
    lim = _make_limiter(cls, 12, clock)  # one request every 5 s
    for _ in range(12):
        _acquire(lim, "acme")
    wait = _acquire(lim, "acme")
    expect(
        abs(wait - 5.0) < 0.01,
        f"with 12 per minute spent, the next request was told to wait {wait:.3f} s",
        expected=5.0,
        got=round(wait, 3),
        hint="A bucket refilling at rpm / 60 tokens per second has one token again after 60 / rpm seconds.",
    )
    clock.advance_sync(5.0)
    wait = _acquire(lim, "acme")
    expect(
        wait == 0,
        f"5 s after the bucket ran dry (the wait it announced), acme was still refused ({wait:.2f} s more)",
        expected=0.0,
        got=wait,
        hint="Refill from the clock on every call: level += (now - last) * rpm / 60. A bucket that never "
        "refills locks a tenant out forever.",
    )


def _retry_after_matches(wait: float, exact: float) -> bool:
    """The announced wait is the exact fractional time, as the statement says (not rounded up)."""
    return abs(wait - exact) < 0.01


@limiter.case("a partly empty bucket: the wait is what is missing, and a refused call loses no refill")
def _partial(cls) -> None:
    clock = VirtualClock()
    lim = _make_limiter(cls, 12, clock)  # 0.2 tokens per second
    for _ in range(12):
        _acquire(lim, "acme")
    clock.advance_sync(2.5)  # the bucket holds 0.5 of a token: neither full nor empty
    wait = _acquire(lim, "acme")
    expect(
        _retry_after_matches(wait, 2.5),
        f"with half a token in the bucket (2.5 s of refill at 12 per minute), acme was told to wait {wait:.3f} s",
        expected="2.5 s (or 3 s, rounded up to whole seconds)",
        got=f"{wait:.3f} s",
        hint="The wait is what is missing divided by the refill rate: (1 - level) / (rpm / 60), not a full "
        "60 / rpm period.",
    )
    clock.advance_sync(2.5)  # the wait it announced: now exactly one token
    wait = _acquire(lim, "acme")
    expect(
        wait == 0,
        f"after waiting the 2.5 s it was told, acme was refused again ({wait:.3f} s more): the refused call "
        "threw away the refill up to it",
        expected=0.0,
        got=wait,
        hint="On every call first add the refill since the last call (level += (now - last) * rpm / 60; "
        "last = now), then decide: a refusal keeps the level it computed.",
    )
    lim7 = _make_limiter(cls, 7, clock)  # 60 / 7 = 8.571... s per token: not a whole number
    for _ in range(7):
        _acquire(lim7, "initech")
    wait = _acquire(lim7, "initech")
    expect(
        _retry_after_matches(wait, 60 / 7),
        f"with 7 per minute spent, initech was told to wait {wait:.3f} s",
        expected="8.571 s (or 9 s, rounded up)",
        got=f"{wait:.3f} s",
        hint="One token takes 60 / rpm seconds at rpm / 60 per second; don't round it down.",
    )


@limiter.case("a refusal takes nothing, and an idle tenant banks at most one bucket")
def _idle(cls) -> None:
    clock = VirtualClock()
    lim = _make_limiter(cls, 12, clock)
    for _ in range(12):
        _acquire(lim, "acme")
    for _ in range(20):
        _acquire(lim, "acme")  # refused: must not take tokens
    clock.advance_sync(5.0)
    wait = _acquire(lim, "acme")
    expect(
        wait == 0,
        f"after 20 refused requests and one refill period, acme was still refused ({wait:.2f} s more)",
        expected=0.0,
        got=wait,
        hint="Take a token only when one is there; a refused request changes nothing.",
    )
    clock.advance_sync(3600.0)
    admitted = sum(_acquire(lim, "acme") == 0 for _ in range(40))
    expect(
        admitted == 12,
        f"after an idle hour, {admitted} requests went at once with 12 per minute",
        expected=12,
        got=admitted,
        hint="Cap the level at rpm: level = min(rpm, level + elapsed * rpm / 60).",
    )
