"""The virtual clock that lets tests run hours of simulated time instantly."""

from __future__ import annotations

import asyncio
import time

import pytest

from course_utils.clock import SystemClock, VirtualClock


def test_auto_advance_wakes_concurrent_sleepers_in_deadline_order():
    clock = VirtualClock(start=1000.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.time()))

    async def main() -> None:
        await asyncio.gather(sleeper("b", 2.0), sleeper("a", 1.0), sleeper("c", 30.0))

    asyncio.run(main())
    assert [n for n, _ in woke] == ["a", "b", "c"]
    assert [t for _, t in woke] == [1001.0, 1002.0, 1030.0]  # concurrent: max, not sum


def test_manual_advance_only_wakes_due_sleepers():
    clock = VirtualClock(start=0.0, auto_advance=False)

    async def main() -> list[str]:
        done: list[str] = []

        async def s(name: str, secs: float) -> None:
            await clock.sleep(secs)
            done.append(name)

        tasks = [asyncio.create_task(s("one", 1)), asyncio.create_task(s("five", 5))]
        await asyncio.sleep(0)
        await clock.advance(2)
        first = list(done)
        await clock.advance(10)
        await asyncio.gather(*tasks)
        return first + ["|"] + done

    assert asyncio.run(main()) == ["one", "|", "one", "five"]


def test_monotonic_and_sync_sleep():
    clock = VirtualClock(start=50.0)
    clock.sleep_sync(2.5)
    assert clock.time() == 52.5 and clock.monotonic() == 2.5


def test_system_clock_reads_real_time():
    c = SystemClock()
    assert c.time() == pytest.approx(time.time(), abs=1.0)  # a reading, not a duration


def test_virtual_loop_idle_cycles_are_a_parameter_and_must_be_positive():
    import asyncio

    from course_utils.clock import run_virtual, virtual_loop

    async def nap() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(30)
        return loop.time() - start

    assert run_virtual(nap(), noop_cycles=1) == pytest.approx(30)
    with pytest.raises(ValueError, match="at least 1"):
        virtual_loop(noop_cycles=0)


def test_run_virtual_from_inside_a_running_loop_uses_a_helper_thread():
    """A notebook cell already runs the kernel's loop: run_virtual must still work there, and raise
    what the coroutine raised."""
    import threading

    from course_utils.clock import SYSTEM_CLOCK, run_virtual

    async def an_hour() -> tuple[float, str]:
        start = SYSTEM_CLOCK.monotonic()
        await asyncio.sleep(3600)
        return SYSTEM_CLOCK.monotonic() - start, threading.current_thread().name

    async def failing() -> None:
        await asyncio.sleep(1)
        raise KeyError("boom")

    async def cell() -> None:  # the caller's own (real-time) loop is running here
        slept, thread = run_virtual(an_hour())
        assert slept == pytest.approx(3600, abs=1e-3) and thread == "virtual-time"
        with pytest.raises(KeyError, match="boom"):
            run_virtual(failing())

    asyncio.run(cell())
    slept, thread = run_virtual(an_hour())  # no loop running: this thread
    assert thread == threading.current_thread().name
