"""Clocks: the single source of time for everything time-dependent, and the course's one clock story.

Library code never reads the machine's clock itself (``tests/test_one_clock.py`` keeps it so, with a
commented allow-list for real I/O and progress bars): it takes a :class:`Clock`, by default
:data:`SYSTEM_CLOCK`, which reads the *running event loop's* time. So the same code runs on the time of
whatever loop runs it, and the question "which clock is this line on?" has one answer: its loop's.

Which loop each part of the course runs on, and why:

* **Notebooks: real time.** A cell runs on the kernel's loop; the shared simulator
  (``course_utils.client()``) is a real server in a thread. ``time_scale`` shrinks the simulator's
  latency and batch processing (1.0 = realistic); ``COURSE_FORCE_TIME_SCALE`` (the CI cap, 0.02, set by
  authoring and nbval) caps it so a notebook written for students at 1.0 runs in seconds in CI.
* **A notebook's measurements: a private virtual loop.** Lessons 05-08 measure workloads with
  :func:`course_utils.lab.on_virtual_time` (:func:`run_virtual` in a helper thread) against an
  in-process simulator at realistic latency: hours of simulated traffic in seconds, the same figures
  on any machine under any load.
* **Checks and tests: virtual loops.** Every async check case runs on :func:`virtual_loop` (with a
  time limit in virtual seconds); async tests use :func:`run_virtual`. ``asyncio.sleep``,
  ``wait_for``, the SDK's retry sleeps, tenacity's deadlines and the in-process simulator's latency
  all move together. Only tests of real servers (an HTTP server thread, a subprocess, a browser) run
  on real time: they wait for a condition with a deadline (``tests/_wait.py``) and never assert on
  how long anything took.
* **The in-process simulator: the loop of its requests.** ``InProcessServer`` lives on its caller's
  loop (virtual in checks), or, for synchronous clients, on its own virtual loop (``sync_loop``); it
  takes ``time_scale`` as given (latency is free on virtual time, so the CI cap does not apply).
* **Synchronous pollers (lesson 04): the simulator's loop, stepped.** ``batch.SimulatorClock``'s
  ``sleep_sync(s)`` runs that loop ``s`` seconds on, so a blocking poller sees batches progress on the
  real schedule at no wall-time cost; ``VirtualSimulator`` does it from a notebook cell. Lesson 04's
  check uses ``LockstepClock``: a ``SimulatorClock`` plus a guard (a cap on sleeps and on time, a
  record of sleeps), nothing more.
* **Synchronous units: a manual clock.** :class:`VirtualClock` is moved by hand (``advance_sync``,
  ``sleep_sync``) for code without a loop: token buckets, breakers, caches stepped in a test or a check.

So three mechanisms remain: the running loop's time (real, or virtual on a :func:`virtual_loop`),
the simulator's loop stepped by a synchronous sleep (``SimulatorClock``), and the manual
``VirtualClock``; ``time_scale`` and the CI cap only scale the simulator's latency on real time.
Virtual time comes from the loop (``looptime``, used by kopf), not from a clock object, because a
clock object moves only for the code that sleeps on it, while the loop moves every timer at once,
including those of code we do not own (the SDK, httpx, tenacity). That is why ``VirtualClock`` has
no async mode: ``await clock.sleep`` on it raises and names the virtual loop to use instead.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Awaitable, Protocol, TypeVar, runtime_checkable

import looptime

__all__ = [
    "Clock",
    "SystemClock",
    "VirtualClock",
    "SYSTEM_CLOCK",
    "VIRTUAL_EPOCH",
    "virtual_loop",
    "run_virtual",
    "is_virtual",
    "shutdown_loop",
    "TICK",
    "LOOP_TIME_MODULE",
]

T = TypeVar("T")

VIRTUAL_EPOCH = 1_800_000_000.0
"""The epoch time at which every virtual loop starts (2027-01-15T08:00:00Z), on every machine."""


@runtime_checkable
class Clock(Protocol):
    """What time-dependent code needs from a clock."""

    def time(self) -> float:
        """Wall-clock time in seconds since the epoch (for timestamps, TTLs, rate-limit resets)."""

    def monotonic(self) -> float:
        """A monotonic reading in seconds, for measuring durations."""

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` of this clock's time."""

    def sleep_sync(self, seconds: float) -> None:
        """Blocking sleep for synchronous code (threads, sync clients)."""


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def is_virtual(loop: asyncio.AbstractEventLoop | None) -> bool:
    """True if ``loop`` runs on virtual time (made by :func:`virtual_loop`)."""
    return isinstance(loop, looptime.LoopTimeEventLoop) and loop.looptime_on


class SystemClock:
    """Time as the current event loop sees it: real time, except inside a :func:`virtual_loop`.

    ``monotonic()`` is the running loop's ``time()`` (which asyncio's own loops take from
    ``time.monotonic()``), so durations measured here agree with the loop's timers;
    ``time()`` is the epoch time, virtual inside a virtual loop. Outside any loop both are real.
    """

    def time(self) -> float:
        loop = _running_loop()
        return VIRTUAL_EPOCH + loop.time() if is_virtual(loop) else time.time()

    def monotonic(self) -> float:
        loop = _running_loop()
        return loop.time() if loop is not None else time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def sleep_sync(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


DEFAULT_NOOP_CYCLES = 42
"""looptime's own default: idle loop cycles run before each jump of virtual time."""


def virtual_loop(*, limit: float | None = None, noop_cycles: int = DEFAULT_NOOP_CYCLES) -> asyncio.AbstractEventLoop:
    """A new event loop on virtual time; :data:`SYSTEM_CLOCK` reads it as starting at :data:`VIRTUAL_EPOCH`.

    Time moves only when every task waits on a timer, straight to the next timer. With ``limit``
    (virtual seconds), every task still waiting when the loop's time reaches the end gets
    ``asyncio.TimeoutError`` (``looptime.LoopTimeoutError``): a deterministic time limit.
    Real I/O (sockets, threads) does not belong on it: the clock does not wait for it.

    ``noop_cycles``: idle cycles before each time jump, so a coroutine between two awaits can still
    set its timer first. Fewer save CPU (a request through the SDK and the in-process app is about
    200 cycles, half of them idle); a caller that lowers it tests that its figures do not change.
    """
    if noop_cycles < 1:
        raise ValueError(f"noop_cycles must be at least 1, got {noop_cycles}")
    _virtualise_library_clocks()
    # The loop's own clock starts at 0: looptime's integer microseconds lose asyncio's float
    # comparisons near 1.8e9 (a loop started there never wakes its timers).
    loop = looptime.new_event_loop(start=0.0, end=limit, noop_cycles=noop_cycles)
    _every_wait_moves_time(loop)
    return loop


TICK = 1e-6
"""looptime's resolution: virtual time moves in whole microseconds."""


def _every_wait_moves_time(loop: asyncio.AbstractEventLoop) -> None:
    """Make any timer in the future fire at least one tick after now.

    asyncio runs a timer as soon as it is due within the clock's resolution (1 ns), so a sleep of
    less than a nanosecond (a pacer's ``(1 - level) / rate`` when ``level`` is 0.9999999999) fires
    without the virtual clock moving, and code that waits until the clock has moved spins for
    ever; on a real loop the same sleep takes real time and the code finishes. Rounding such a
    timer up to the next tick keeps the promise "any positive sleep advances time" on both.
    """
    call_at = loop.call_at

    def call_at_least_a_tick_ahead(when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        now = loop.time()
        if now < when < now + TICK:
            when = now + TICK
        return call_at(when, callback, *args, context=context)

    call_later = loop.call_later

    def call_later_at_least_a_tick(delay: float, callback: Any, *args: Any, context: Any = None) -> Any:
        # A delay below the float resolution of the loop's time (1e-18 s at 1.0 s) vanishes in
        # ``time() + delay`` before call_at could see it: round it up here.
        if 0 < delay < TICK:
            delay = TICK
        return call_later(delay, callback, *args, context=context)

    loop.call_at = call_at_least_a_tick_ahead  # type: ignore[method-assign]
    loop.call_later = call_later_at_least_a_tick  # type: ignore[method-assign]


class _LoopTimeModule:
    """The ``time`` module as a library sees it: its clocks read the running loop's virtual time.

    tenacity measures ``stop_before_delay``/``stop_after_delay`` with ``time.monotonic()``, which
    a virtual loop does not move: on virtual time a deadline would never pass, although on a real
    loop the same code stops in time. Outside a virtual loop (notebooks, other threads) every
    attribute is the real ``time`` module's, so nothing changes there.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def monotonic(self) -> float:
        loop = _running_loop()
        return loop.time() if is_virtual(loop) else time.monotonic()

    def time(self) -> float:
        loop = _running_loop()
        return VIRTUAL_EPOCH + loop.time() if is_virtual(loop) else time.time()

    def __repr__(self) -> str:
        return "<time module, virtual inside a virtual loop>"


LOOP_TIME_MODULE = _LoopTimeModule()


def _virtualise_library_clocks() -> None:
    """Point the ``time`` of the timing libraries a statement invites (tenacity) at :data:`LOOP_TIME_MODULE`."""
    try:
        import tenacity
    except ImportError:  # pragma: no cover - tenacity is a dependency
        return
    if getattr(tenacity, "time", None) is time:
        tenacity.time = LOOP_TIME_MODULE  # type: ignore[attr-defined]


def run_virtual(awaitable: Awaitable[T], *, limit: float | None = None, noop_cycles: int = DEFAULT_NOOP_CYCLES) -> T:
    """Run ``awaitable`` to completion on a fresh :func:`virtual_loop`; like ``asyncio.run``.

    Called where a loop is already running (a notebook cell: the kernel's loop runs in its thread),
    it runs the virtual loop in a helper thread and waits for it: the caller blocks for the CPU time.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_virtual_here(awaitable, limit=limit, noop_cycles=noop_cycles)
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = _run_virtual_here(awaitable, limit=limit, noop_cycles=noop_cycles)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=run, name="virtual-time")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _run_virtual_here(awaitable: Awaitable[T], *, limit: float | None, noop_cycles: int) -> T:
    loop = virtual_loop(limit=limit, noop_cycles=noop_cycles)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(_wrap(awaitable))
    finally:
        asyncio.set_event_loop(None)
        shutdown_loop(loop)


def shutdown_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every task still on ``loop`` (and those their cancellation starts), then close it.

    ``loop`` must not be running. Idempotent.
    """
    if loop.is_closed():
        return
    try:
        for _ in range(10):  # cancelling a task can start others (cleanup waiters); drain those too
            pending = asyncio.all_tasks(loop)
            if not pending:
                break
            for task in pending:
                task.cancel()
            loop.run_until_complete(_gather(pending))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


async def _gather(tasks: Any) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


async def _wrap(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class VirtualClock:
    """A manual clock for synchronous code: it moves only when told to (``advance_sync``, ``sleep_sync``).

    ``time()`` starts at :data:`VIRTUAL_EPOCH` and ``monotonic()`` at 0, as on a :func:`virtual_loop`.
    Async code runs on a virtual loop instead (see the module docstring): ``await sleep`` raises
    ``TypeError``, since a clock object cannot move the timers of the code around it.
    """

    def __init__(self, start: float = VIRTUAL_EPOCH) -> None:
        self._now = float(start)
        self._start = float(start)

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    def sleep_sync(self, seconds: float) -> None:
        """Move time forward by ``seconds``, as a blocking sleep would."""
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        """Refused: a manual clock has no timers to wake. Run async code with :func:`run_virtual`."""
        raise TypeError(
            "VirtualClock is a manual clock for synchronous code; run async code on a virtual loop "
            "(course_utils.clock.run_virtual) and let it read SYSTEM_CLOCK"
        )

    def advance_sync(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (a test or a check stepping a synchronous unit)."""
        self._now += max(0.0, seconds)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now:.3f})"
