"""The clocks: virtual loops that run hours of simulated time instantly, and the manual clock for synchronous code."""

from __future__ import annotations

import asyncio
import time

import pytest

from course_utils.clock import SYSTEM_CLOCK, VIRTUAL_EPOCH, SystemClock, VirtualClock, run_virtual


def test_a_virtual_loop_wakes_concurrent_sleepers_in_deadline_order():
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await SYSTEM_CLOCK.sleep(seconds)
        woke.append((name, SYSTEM_CLOCK.time()))

    async def main() -> None:
        await asyncio.gather(sleeper("b", 2.0), sleeper("a", 1.0), sleeper("c", 30.0))

    run_virtual(main())
    assert [n for n, _ in woke] == ["a", "b", "c"]
    at = VIRTUAL_EPOCH
    assert [t for _, t in woke] == [at + 1.0, at + 2.0, at + 30.0]  # concurrent: max, not sum


def test_a_sleeper_wakes_only_once_its_deadline_has_passed():
    async def main() -> list[str]:
        done: list[str] = []

        async def s(name: str, secs: float) -> None:
            await SYSTEM_CLOCK.sleep(secs)
            done.append(name)

        tasks = [asyncio.create_task(s("one", 1)), asyncio.create_task(s("five", 5))]
        await asyncio.sleep(2)
        first = list(done)
        await asyncio.gather(*tasks)
        return first + ["|"] + done

    assert run_virtual(main()) == ["one", "|", "one", "five"]


def test_a_manual_clock_refuses_an_async_sleep_and_names_the_virtual_loop():
    """``await sleep`` on a VirtualClock would move time only for its own sleeper: it raises instead."""
    clock = VirtualClock()

    async def main() -> None:
        await clock.sleep(1.0)

    with pytest.raises(TypeError, match="run_virtual"):
        run_virtual(main())
    assert clock.monotonic() == 0.0


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


# ---------------------------------------------------------------------------------------------
# Virtual time covers every positive sleep, and the clocks tenacity reads (issue 27, class 3)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [1e-15, 1e-12, 5e-10, 1e-9, 1e-7, 4e-7, 6e-7, 1.4e-6])
def test_any_positive_sleep_advances_virtual_time(seconds):
    from course_utils.clock import TICK, run_virtual

    async def main() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.3333337)  # an odd offset, away from whole ticks
        before = loop.time()
        await asyncio.sleep(seconds)
        return loop.time() - before

    moved = run_virtual(main())
    assert TICK * 0.5 < moved < seconds + 2 * TICK


def test_a_pacer_whose_remainder_is_below_a_nanosecond_finishes():
    """The home-made pacer of issue 27: sleep (1 - level) / rate until the level reaches 1."""
    from course_utils.clock import run_virtual

    async def pacer(level: float, rate: float) -> int:
        loop = asyncio.get_running_loop()
        last, sleeps = loop.time(), 0
        while level < 1.0:
            await asyncio.sleep((1.0 - level) / rate)
            now = loop.time()
            level, last, sleeps = level + (now - last) * rate, now, sleeps + 1
            assert sleeps < 1000, "the pacer spins: its sleeps do not move the clock"
        return sleeps

    for level in (1 - 1e-7, 1 - 1e-12, 1 - 2**-52):
        assert run_virtual(pacer(level, 10.0), limit=60) == 1


def test_tenacity_stop_before_delay_sees_virtual_time():
    """Idiomatic tenacity for exercise 5.2 stops on its deadline on virtual time, as on a real loop."""
    import tenacity

    from course_utils.clock import run_virtual

    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        attempts = 0
        started = loop.time()
        with pytest.raises(ValueError):
            async for attempt in tenacity.AsyncRetrying(
                stop=tenacity.stop_after_attempt(100) | tenacity.stop_before_delay(10),
                wait=tenacity.wait_fixed(4),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    raise ValueError("still failing")
        return attempts, loop.time() - started

    attempts, elapsed = run_virtual(main())
    assert attempts == 3 and elapsed == pytest.approx(8.0, abs=1e-3)  # 0, 4, 8 s; waiting to 12 s passes 10


def test_outside_a_virtual_loop_tenacity_reads_real_time():
    import tenacity

    from course_utils.clock import LOOP_TIME_MODULE, virtual_loop

    virtual_loop().close()  # installs the loop-aware module
    assert tenacity.time is LOOP_TIME_MODULE
    before = time.monotonic()
    assert before <= LOOP_TIME_MODULE.monotonic() <= time.monotonic()
    before_epoch = time.time()
    assert before_epoch <= LOOP_TIME_MODULE.time() <= time.time()  # the real clock itself, read in order
    assert LOOP_TIME_MODULE.sleep is time.sleep


def test_property_every_positive_sleep_moves_time_and_never_goes_back():
    """hypothesis: for any offset and any positive sleep, virtual time moves forward by at least a tick
    and by no more than the sleep plus a tick (seeded: the same examples on every run)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from course_utils.clock import TICK, run_virtual

    @settings(max_examples=60, derandomize=True, deadline=None)
    @given(
        offset=st.floats(min_value=0.0, max_value=1000.0, allow_nan=False),
        seconds=st.floats(min_value=1e-18, max_value=5.0, allow_nan=False, allow_subnormal=False),
    )
    def moves(offset, seconds):
        async def main() -> float:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(offset)
            before = loop.time()
            await asyncio.sleep(seconds)
            return loop.time() - before

        moved = run_virtual(main())
        assert moved >= TICK * 0.5
        assert moved <= seconds + 2 * TICK

    moves()
