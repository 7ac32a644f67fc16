"""Per-tenant concurrency caps: the counter itself, and the measured claim that with long answers the
cap binds where the RPM does not (virtual time, an in-process simulator)."""

from __future__ import annotations

import asyncio

import pytest

from course_utils.tenancy import LIMITERS, ConcurrencyCap, TenantBusy, stream_caps


def test_a_cap_admits_up_to_its_size_per_tenant_and_gives_slots_back():
    cap = ConcurrencyCap(2)
    assert cap.try_enter("a") and cap.try_enter("a") and not cap.try_enter("a")
    assert cap.try_enter("b")  # another tenant's slots are its own
    cap.leave("a")
    assert cap.in_flight("a") == 1 and cap.try_enter("a")
    for _ in range(2):
        cap.leave("a")
    assert cap.in_flight("a") == 0
    with pytest.raises(RuntimeError):
        cap.leave("a")
    with pytest.raises(ValueError):
        ConcurrencyCap(0)


def test_a_slot_is_released_when_the_request_fails_or_is_cancelled():
    cap = ConcurrencyCap(1)

    async def go():
        with pytest.raises(ValueError):
            async with cap.slot("a"):
                raise ValueError("boom")
        assert cap.in_flight("a") == 0

        async def hold():
            async with cap.slot("a"):
                await asyncio.sleep(10)

        task = asyncio.create_task(hold())
        await asyncio.sleep(0)
        with pytest.raises(TenantBusy):
            async with cap.slot("a"):
                pass
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cap.in_flight("a") == 0

    asyncio.run(go())


def test_with_long_answers_the_cap_binds_and_the_rpm_does_not():
    runs = {(r.streams, r.limiter): r for r in stream_caps(rpm=60, cap=3, requests=30)}
    rpm_only, capped = LIMITERS
    short, long_ = runs[("short", rpm_only)], runs[("long", rpm_only)]
    # At exactly its RPM, the rate limit refuses nothing, short or long.
    assert short.refused_by_rpm == long_.refused_by_rpm == 0 and long_.admitted == 30
    # Little's law: long answers pile up in flight under the RPM alone.
    assert long_.mean_stream_s > 10 * short.mean_stream_s
    assert long_.peak_in_flight > 3 * short.peak_in_flight and long_.peak_in_flight > 3
    # The cap never binds on short answers, and holds long ones to 3 at once.
    assert runs[("short", capped)].refused_by_cap == 0
    held = runs[("long", capped)]
    assert held.peak_in_flight == 3 and held.refused_by_cap > 0
    assert held.admitted + held.refused_by_cap == 30
    assert held.output_tokens < long_.output_tokens


def test_stream_caps_refuses_bad_parameters():
    with pytest.raises(ValueError):
        stream_caps(cap=0)
