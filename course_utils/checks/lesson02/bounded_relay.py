"""Checks for exercise 2.3 ``bounded_relay(source, send, maxsize)``: fast and slow clients (no text lost,
the upstream never more than ``maxsize`` ahead), a paced upstream (reading overlaps sending, on virtual
time), a client that leaves (the reader stops, no task left) and an upstream that fails (the error
reaches the caller)."""

from __future__ import annotations

import asyncio
from typing import Any

from ...clock import SYSTEM_CLOCK, Clock
from ..framework import CaseFailed, Exercise, expect, run_awaitable, track_tasks


# ---------------------------------------------------------------------------------------------
# 2.3 bounded_relay(source, send, maxsize) -> None
# ---------------------------------------------------------------------------------------------
relay = Exercise(
    "2.3",
    "A bounded relay: memory stays bounded, no text is lost",
    points=3,
    signature="async bounded_relay(source, send, maxsize) -> None",
    hints=[
        "Put an asyncio.Queue(maxsize=maxsize) between a reader task (source -> queue) and the sender "
        "(queue -> send). await queue.put(...) pauses the reader when the queue is full.",
        "reader: async for text in source: await queue.put(text); then await queue.put(None) as the end marker "
        "(if the source raises, put the exception instead, and raise it in the sender). Sender: while "
        "(item := await queue.get()) is not None: await send(item). In a finally, cancel the reader task and "
        "await it, so a client that left also stops the upstream. Don't put the end marker in the reader's "
        "finally: cancelled while the queue is full, that put waits forever.",
    ],
    time_limit=30.0,
)


class _Upstream:
    """A fast upstream that counts how far its reader has got ahead of the client."""

    def __init__(self, n: int) -> None:
        self.deltas = [f"w{i} " for i in range(n)]
        self.pulled = 0
        self.sent = 0
        self.sent_text: list[str] = []
        self.max_ahead = 0

    async def source(self) -> Any:
        for text in self.deltas:
            self.pulled += 1
            self.max_ahead = max(self.max_ahead, self.pulled - self.sent)
            yield text

    def sender(self, delay: float) -> Any:
        async def send(text: str) -> None:
            if delay:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            self.sent_text.append(text)
            self.sent += text.count(" ")

        return send


def _run_relay(fn: Any, up: _Upstream, maxsize: int, delay: float) -> None:
    async def go() -> None:
        await asyncio.wait_for(fn(up.source(), up.sender(delay), maxsize), timeout=20)

    try:
        run_awaitable(go())
    except asyncio.TimeoutError:
        raise CaseFailed(
            "bounded_relay did not finish",
            expected="return after the last delta was sent",
            got="still running after 20 s",
            hint="Put an end marker (None) in the queue when the source is exhausted, and stop at it.",
        ) from None


def _no_text_lost(up: _Upstream, what: str) -> None:
    sent = "".join(up.sent_text)
    want = "".join(up.deltas)
    if sent != want:
        missing = len(want) - len(sent)
        raise CaseFailed(
            f"{what}: the client did not get exactly the upstream text",
            expected=f"{len(want)} characters ending {want[-12:]!r}",
            got=f"{len(sent)} characters ending {sent[-12:]!r}",
            hint="Never drop a delta when the queue is full (wait for room instead), and send everything "
            "still queued after the source ends."
            if missing > 0
            else "Send each delta once, in order.",
        )


@relay.case("a fast client gets all the text, in order; an empty upstream sends nothing")
def _fast(fn) -> None:
    up = _Upstream(120)
    _run_relay(fn, up, maxsize=8, delay=0.0)
    _no_text_lost(up, "fast client")
    empty = _Upstream(0)
    _run_relay(fn, empty, maxsize=8, delay=0.0)
    expect(
        empty.sent_text == [],
        "an upstream with no deltas, yet send was called",
        expected="no send call",
        got=f"{len(empty.sent_text)} send call(s): {empty.sent_text[:3]}",
        hint="Send only what the source produced: the end marker is not a delta.",
    )


@relay.case("a slow client: the upstream never runs more than maxsize deltas ahead")
def _slow(fn) -> None:
    for maxsize in (4, 1):
        up = _Upstream(60)
        _run_relay(fn, up, maxsize=maxsize, delay=0.003)
        _no_text_lost(up, f"slow client, maxsize={maxsize}")
        # In flight beyond the queue: one delta in the reader's hand, one in the sender's.
        limit = maxsize + 2
        expect(
            up.max_ahead <= limit,
            f"with maxsize={maxsize} the upstream was read {up.max_ahead} deltas ahead of the client",
            expected=f"at most {limit}",
            got=up.max_ahead,
            hint="Bound the queue (asyncio.Queue(maxsize=maxsize)) and `await queue.put(...)`, so reading "
            "pauses while the client is behind; an unbounded buffer grows with every slow client.",
        )


class _PacedUpstream(_Upstream):
    """An upstream producing a delta every ``gap`` s and a client taking ``delay`` s per write, both on
    the case's virtual loop: the relay's own code only hands items over, so its virtual duration is exact."""

    def __init__(self, n: int, clock: Clock, gap: float) -> None:
        super().__init__(n)
        self.clock, self.gap = clock, gap

    async def source(self) -> Any:
        for text in self.deltas:
            await self.clock.sleep(self.gap)
            self.pulled += 1
            self.max_ahead = max(self.max_ahead, self.pulled - self.sent)
            yield text

    def sender(self, delay: float) -> Any:
        async def send(text: str) -> None:
            await self.clock.sleep(delay)
            self.sent_text.append(text)
            self.sent += 1

        return send


@relay.case("a paced upstream and a slow client: reading overlaps sending")
def _overlap(fn) -> None:
    n, gap, delay, maxsize = 40, 0.01, 0.02, 4
    clock = SYSTEM_CLOCK  # the case runs on a virtual loop: its time is the loop's
    up = _PacedUpstream(n, clock, gap)

    async def go() -> float:
        t0 = clock.monotonic()
        await asyncio.wait_for(fn(up.source(), up.sender(delay), maxsize), timeout=20)
        return clock.monotonic() - t0

    try:
        took = run_awaitable(go())
    except asyncio.TimeoutError:
        raise CaseFailed(
            "bounded_relay did not finish",
            expected="return after the last delta was sent",
            got="still running after 20 s",
            hint="Stop at the end marker.",
        ) from None
    _no_text_lost(up, "paced upstream")
    upstream_s, client_s = n * gap, n * delay
    # Overlapped, the client's own time dominates (plus one gap); in turn, the two times add up.
    limit = client_s + upstream_s / 2
    expect(
        took <= limit + 1e-9,
        f"the relay took {took:.2f} s (virtual) to pass {n} deltas: the upstream "
        f"({upstream_s:.2f} s) and the client ({client_s:.2f} s) took turns instead of overlapping",
        expected=f"at most {limit:.2f} s (about the client's {client_s:.2f} s)",
        got=f"{took:.2f} s; the upstream was at most {up.max_ahead} delta(s) ahead of the client",
        hint="Read the source in a background task that fills the queue while `await send(...)` waits on the "
        "client; reading a delta, sending it, then reading the next one makes the user wait for both.",
    )


def _pending(created: list) -> list:
    """The tasks of ``created`` (see :func:`~.framework.track_tasks`) that are still running."""
    return [t for t in created if not t.done()]


def _quiet_leaks() -> None:
    """A wrong answer's abandoned task may die with an exception nobody retrieves; the verdict already
    says what went wrong, so keep asyncio's "never retrieved" log off the student's output."""
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)


@relay.case("the client disconnects (send raises): the upstream stops and no task is left running")
def _send_fails(fn) -> None:
    maxsize, fail_at, timeout = 4, 3, 5.0
    up = _Upstream(500)
    calls = 0

    async def send(text: str) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls >= fail_at:
            raise ConnectionResetError("the client went away")
        up.sent_text.append(text)
        up.sent += 1

    async def go() -> list:
        _quiet_leaks()
        created = track_tasks()
        try:
            await asyncio.wait_for(fn(up.source(), send, maxsize), timeout=timeout)
        except ConnectionResetError:
            pass  # propagating the disconnect is fine, so is returning
        for _ in range(20):  # let a cancelled task finish cancelling, and a leaked one keep reading
            await asyncio.sleep(0)
        left = _pending(created)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        return left

    try:
        left = run_awaitable(go())
    except asyncio.TimeoutError:
        raise CaseFailed(
            "bounded_relay did not return after send raised",
            expected="return or raise at once",
            got=f"still running after {timeout:g} s",
            hint="Don't catch the send error and keep waiting: stop relaying when the client is gone.",
        ) from None
    # From the contract, not from what the answer did: the deltas sent before the failure and the one
    # that failed (fail_at), a full queue (maxsize), and one in the reader's hand waiting to put it.
    limit = fail_at + maxsize + 1
    expect(
        calls <= fail_at,
        f"send was called {calls - fail_at} more time(s) after it raised (the client had left)",
        expected=f"{fail_at} send calls, the last one raising",
        got=f"{calls} send calls",
        hint="A send that raises means the client is gone: stop the loop (let the error propagate, or return), "
        "don't catch it and go on to the next delta.",
    )
    expect(
        up.pulled <= limit,
        f"after the client left the upstream was read {up.pulled} deltas",
        expected=f"at most {limit} ({fail_at} sent or failed + a full queue of {maxsize} + one in the reader's hand)",
        got=up.pulled,
        hint="When send fails, cancel the reader task: every delta read for nobody is billed.",
    )
    expect(
        not left,
        f"{len(left)} task(s) still running after bounded_relay returned (the client had left)",
        expected="no task left behind",
        # By name, not repr: a coroutine's repr carries its memory address, which changes from run to run.
        got=", ".join(sorted(getattr(t.get_coro(), "__qualname__", type(t.get_coro()).__name__) for t in left))[:200],
        hint="Wrap the sending loop in try/finally and cancel the reader task there (then await it), so a "
        "client that leaves also stops the upstream reader; otherwise it waits on a full queue forever.",
    )


class _UpstreamFailed(Exception):
    """The model's stream broke mid-reply (an ``overloaded_error`` event, a dropped connection)."""


@relay.case("the upstream fails mid-stream: the error reaches the caller, nothing hangs")
def _source_fails(fn) -> None:
    up = _Upstream(5)
    timeout = 5.0

    async def source() -> Any:
        async for text in _Upstream.source(up):
            yield text
        raise _UpstreamFailed("overloaded_error after 5 deltas")

    async def go() -> tuple[BaseException | None, list]:
        _quiet_leaks()
        created = track_tasks()
        error: BaseException | None = None
        try:
            await asyncio.wait_for(fn(source(), up.sender(0.0), 4), timeout=timeout)
        except _UpstreamFailed as exc:
            error = exc
        for _ in range(20):
            await asyncio.sleep(0)
        left = _pending(created)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        return error, left

    try:
        error, left = run_awaitable(go())
    except asyncio.TimeoutError:
        raise CaseFailed(
            "bounded_relay hung when the upstream failed",
            expected="the upstream's exception raised",
            got=f"still waiting after {timeout:g} s",
            hint="If the reader dies before putting the end marker, the sender waits forever: put the "
            "marker in a `finally`, then `await` the reader task so its exception is re-raised.",
        ) from None
    expect(
        error is not None,
        "the upstream's error was swallowed",
        expected="_UpstreamFailed raised by bounded_relay",
        got="bounded_relay returned normally",
        hint="`await` the reader task after the sending loop: that re-raises its exception, so the caller can "
        "tell the client the answer is partial.",
    )
    expect(
        not left,
        f"{len(left)} task(s) still running after the upstream failed",
        expected="no task left behind",
        got=len(left),
        hint="Cancel the reader task in a `finally`.",
    )
