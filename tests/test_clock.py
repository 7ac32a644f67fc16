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
