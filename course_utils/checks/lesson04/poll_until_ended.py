"""Checks for exercise 4.2 ``poll_until_ended``: the poller runs against a private simulator that shares a virtual clock with it,
so the ledger's arrival times of ``GET /v1/messages/batches/{id}`` are the poller's own schedule."""

from __future__ import annotations

from typing import Any


from ...batch.virtual import SimulatorClock
from ..framework import CaseFailed, Exercise, call, expect, expect_equal
from ...mock_provider.inprocess import InProcessServer

from .common import ABSENT, make_params


# =============================================================================================
# 4.2 poll_until_ended(client, batch_id, *, clock, deadline_s, on_progress=None) -> MessageBatch
# =============================================================================================
poll = Exercise(
    "4.2",
    "Poll with growing intervals and a deadline",
    points=3,
    signature="poll_until_ended(client, batch_id, *, clock, deadline_s, on_progress=None) -> MessageBatch",
    hints=[
        "Loop: retrieve, report, return if ended; otherwise check the deadline and sleep with clock.sleep_sync, "
        "making each wait longer than the last (up to a cap).",
        "start = clock.monotonic(); wait = 1.0; loop: batch = client.messages.batches.retrieve(batch_id); "
        "on_progress(batch) if given; if ended return it; left = deadline_s - (clock.monotonic() - start); "
        "if left <= 0: raise TimeoutError; clock.sleep_sync(min(wait, left)); wait = min(wait * 2, 60).",
    ],
    time_limit=60,
)


class _RanAway(BaseException):
    """Raised inside the student's sleep when it polls far past its deadline (BaseException: not swallowed)."""


class _TooManyPolls(BaseException):
    """Raised inside the student's sleep after more polls than any schedule the contract allows needs."""


class LockstepClock(SimulatorClock):
    """The poller's clock is the private simulator's own virtual-time loop.

    ``sleep_sync`` (the poller's) runs the simulator for exactly that long, so batch processing
    due meanwhile happens before the next retrieve, and polling costs no wall time. A sleep that
    would carry the poller past ``limit_s`` stops it (it has no working deadline).
    """

    def __init__(self, server: InProcessServer, *, limit_s: float | None = None, max_sleeps: int | None = None) -> None:
        super().__init__(server)
        self.limit_s = limit_s
        self.max_sleeps = max_sleeps
        self.sleeps: list[float] = []

    def sleep_sync(self, seconds: float) -> None:
        self.sleeps.append(float(seconds))
        if self.max_sleeps is not None and len(self.sleeps) > self.max_sleeps:
            raise _TooManyPolls(len(self.sleeps), self.monotonic())
        if self.limit_s is not None and self.monotonic() + max(0.0, float(seconds)) > self.limit_s:
            raise _RanAway(self.monotonic() + max(0.0, float(seconds)))
        super().sleep_sync(seconds)


def _lockstep(
    limit_s: float | None = None, scenario: dict[str, Any] | None = None, max_sleeps: int | None = None
) -> tuple[Any, LockstepClock, str]:
    # Batch processing at its real schedule (time_scale 1): the schedule is part of what is graded.
    server = InProcessServer(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    if scenario:
        server.set_scenario(scenario)
    return server, LockstepClock(server, limit_s=limit_s, max_sleeps=max_sleeps), "sim-key-check-poll"


def _submit(server: Any, key: str, n: int) -> str:
    reqs = [{"custom_id": f"r{i}", "params": make_params({"text": f"review {i}"})} for i in range(n)]
    return server.client(api_key=key, max_retries=0).messages.batches.create(requests=reqs).id


def _poll_times(server: Any, key: str) -> list[float]:
    df = server.ledger()
    rows = df[(df["api_key"] == key) & (df["endpoint"] == "/v1/messages/batches/{id}") & (df["method"] == "GET")]
    return sorted(float(t) for t in rows["arrival"])


def _run_poller(
    fn: Any,
    server: Any,
    clock: LockstepClock,
    key: str,
    batch_id: str,
    deadline_s: float,
    on_progress: Any = None,
    *,
    should_end: bool = True,
) -> Any:
    client = server.client(api_key=key, max_retries=0)
    kwargs: dict[str, Any] = {"clock": clock, "deadline_s": deadline_s}
    if on_progress is not None:
        kwargs["on_progress"] = on_progress
    try:
        return call(fn, client, batch_id, **kwargs)
    except TimeoutError:
        if not should_end:
            raise
        raise CaseFailed(
            f"raised TimeoutError after {clock.monotonic():,.0f} s of the clock, before the batch "
            f"ended (deadline_s={deadline_s:g}; it needs a few minutes)",
            expected="the ended batch",
            got="TimeoutError",
            hint="Sleep between polls with clock.sleep_sync(seconds): the check's clock only moves when "
            "you sleep on it, and the deadline is measured with clock.monotonic().",
        ) from None
    except _TooManyPolls as stop:
        raise CaseFailed(
            f"{stop.args[0]:,} polls in the first {stop.args[1]:,.0f} s of a batch",
            expected="waits that grow to a cap of one to ten minutes",
            got=f"{stop.args[0]:,} polls",
            hint="Every poll is a request against your rate limit: let the waits grow by a factor "
            "up to a cap of one to ten minutes, instead of polling every few seconds.",
        ) from None
    except _RanAway as stop:
        raise CaseFailed(
            f"still polling {stop.args[0]:,.0f} s after the start, with deadline_s={deadline_s:g}",
            expected=f"TimeoutError by {deadline_s:g} s",
            got="no deadline",
            hint="Keep track of the time since the start (clock.monotonic()) and raise TimeoutError "
            "once deadline_s has passed: a poller without a deadline hides a stuck job.",
        ) from None


@poll.case("returns the batch once it has ended")
def _returns_ended(fn) -> None:
    server, clock, key = _lockstep(limit_s=20_000, max_sleeps=60)
    try:
        batch_id = _submit(server, key, 10)
        batch = _run_poller(fn, server, clock, key, batch_id, deadline_s=3_600)
        status = getattr(batch, "processing_status", None)
        expect(
            status == "ended",
            "did not return the ended batch",
            expected="a MessageBatch with status ended",
            got=status if status else type(batch).__name__,
            hint="Return the MessageBatch from the retrieve that showed processing_status == 'ended'.",
        )
        expect_equal(batch.id, batch_id, "returned another batch", hint="Retrieve the batch_id you were given.")
        polls = _poll_times(server, key)
        expect(
            len(polls) >= 2,
            "the ledger shows fewer than two polls of an in-progress batch",
            got=len(polls),
            hint="Retrieve, and while it is not ended sleep (clock.sleep_sync) and retrieve again.",
        )
        expect(
            len(polls) <= 40,
            f"{len(polls)} polls for a batch that takes about a minute",
            expected="a few polls",
            got=len(polls),
            hint="Sleep between polls with clock.sleep_sync(...): every poll is a request against your rate limit.",
        )
    finally:
        server.close()


@poll.case("intervals between polls grow (the ledger's spacing of GET requests)")
def _growing(fn) -> None:
    server, clock, key = _lockstep(limit_s=20_000, max_sleeps=150)
    try:
        batch_id = _submit(server, key, 60)  # 210 s of processing: room for several polls
        _run_poller(fn, server, clock, key, batch_id, deadline_s=3_600)
        polls = _poll_times(server, key)
        gaps = [b - a for a, b in zip(polls, polls[1:])]
        expect(
            len(gaps) >= 3,
            "too few polls to see the schedule",
            got=len(polls),
            hint="Start with a short wait (a second or a few) so short batches are noticed quickly.",
        )
        third = max(1, len(gaps) // 3)
        early = sorted(gaps[:third])[third // 2]
        late = sorted(gaps[-third:])[third // 2]
        shown = ", ".join(f"{g:.1f}" for g in gaps[:8]) + (" ..." if len(gaps) > 8 else "")
        expect(
            late >= 1.8 * max(early, 1e-9) and late > 0,
            "the polls are evenly spaced, not growing",
            expected="gaps that grow (e.g. 1, 2, 4, 8 s ...)",
            got=f"gaps of {shown} s",
            hint="A fixed interval polls a four-hour batch thousands of times; multiply the wait by a factor "
            "(e.g. 1.5 or 2) after every poll, with a cap.",
        )
    finally:
        server.close()


@poll.case("gives up at the deadline with TimeoutError")
def _deadline(fn) -> None:
    deadline = 900.0
    server, clock, key = _lockstep(
        limit_s=3 * deadline, scenario={"name": "slow-batches", "batch_slow_factor": 1000}, max_sleeps=200
    )
    try:
        batch_id = _submit(server, key, 5)  # 45 s x 1000: far past the deadline
        raised = ABSENT
        try:
            got = _run_poller(fn, server, clock, key, batch_id, deadline_s=deadline, should_end=False)
        except TimeoutError:
            got = raised
        expect(
            got is raised,
            "returned instead of raising TimeoutError when the deadline passed",
            expected="TimeoutError",
            got=f"returned {getattr(got, 'processing_status', got)!r}",
            hint="When deadline_s has passed and the batch is still in progress, raise TimeoutError.",
        )
        polls = _poll_times(server, key)
        last = polls[-1] - polls[0] if polls else 0.0
        expect(
            last <= deadline * 1.25,
            f"kept polling until {last:,.0f} s with deadline_s={deadline:g}",
            expected=f"<= {deadline:g} s",
            got=f"{last:,.0f} s",
            hint="Clip the last sleep to the time left (min(wait, deadline - elapsed)).",
        )
        expect(
            last >= deadline * 0.5,
            f"gave up after {last:,.0f} s of a {deadline:g} s deadline",
            expected=f"about {deadline:g} s",
            got=f"{last:,.0f} s",
            hint="Use the deadline: keep polling (with growing waits) until it has passed.",
        )
    finally:
        server.close()


@poll.case("reports request_counts on every poll")
def _progress(fn) -> None:
    server, clock, key = _lockstep(limit_s=20_000, max_sleeps=60)
    try:
        batch_id = _submit(server, key, 10)
        seen: list[Any] = []
        _run_poller(fn, server, clock, key, batch_id, deadline_s=3_600, on_progress=seen.append)
        polls = _poll_times(server, key)
        expect_equal(
            len(seen),
            len(polls),
            "on_progress was not called once per poll",
            hint="Call on_progress(batch) after every retrieve, so the display shows request_counts.",
        )
        expect(
            hasattr(seen[-1], "request_counts"),
            "on_progress did not get the batch",
            got=type(seen[-1]).__name__,
            hint="Pass the MessageBatch itself; it carries request_counts.",
        )
    finally:
        server.close()


MAX_POLL_INTERVAL_S = 600.0
"""The contract's cap is one to ten minutes: no wait between two polls longer than ten minutes.

(The lower end is held by poll budgets: each lockstep case stops a poller, with a failure, after
more polls than a schedule capped at a minute or more needs; so no answer costs the grader more
than a few hundred polls, whatever the machine's load.)"""


@poll.case("waits grow to a cap of one to ten minutes (a 70-minute batch: a poll at least every ten minutes)")
def _capped(fn) -> None:
    server, clock, key = _lockstep(
        limit_s=4 * 3600, scenario={"name": "slow-batches", "batch_slow_factor": 20}, max_sleeps=150
    )
    try:
        batch_id = _submit(server, key, 60)  # 210 s x 20: seventy minutes of processing
        _run_poller(fn, server, clock, key, batch_id, deadline_s=3 * 3600)
        polls = _poll_times(server, key)
        gaps = [b - a for a, b in zip(polls, polls[1:])]
        longest = max(gaps, default=0.0)
        # A request's own transit (tens of ms) sits between a sleep and the next poll's arrival.
        expect(
            longest <= MAX_POLL_INTERVAL_S + 5,
            f"{longest:,.0f} s between two polls of a running batch",
            expected=f"at most {MAX_POLL_INTERVAL_S:,.0f} s",
            got=f"{longest:,.0f} s",
            hint="Cap the wait (wait = min(wait * factor, cap)): without a cap the waits double into hours, "
            "and a batch that ended is noticed hours late.",
        )
    finally:
        server.close()


@poll.case("a batch that has already ended is returned after one poll, with no sleep")
def _already_ended(fn) -> None:
    server, clock, key = _lockstep(limit_s=20_000, max_sleeps=60)
    try:
        batch_id = _submit(server, key, 3)
        server.advance(600)  # far past its window (39 s): it has ended before the poller starts
        clock = LockstepClock(server, limit_s=20_000, max_sleeps=60)
        seen: list[Any] = []
        batch = _run_poller(fn, server, clock, key, batch_id, deadline_s=3_600, on_progress=seen.append)
        expect(
            getattr(batch, "processing_status", None) == "ended",
            "did not return the ended batch",
            expected="a MessageBatch with status ended",
            got=getattr(batch, "processing_status", type(batch).__name__),
            hint="Return the MessageBatch whose processing_status is 'ended'.",
        )
        polls = _poll_times(server, key)
        expect(
            len(polls) == 1 and not clock.sleeps,
            f"{len(polls)} poll(s) and {len(clock.sleeps)} sleep(s) for a batch that had already ended",
            expected="1 poll, no sleep",
            got=f"{len(polls)} poll(s), sleeps of {clock.sleeps[:4]} s",
            hint="Retrieve first and return as soon as the batch has ended; sleep only between two polls.",
        )
        expect_equal(
            len(seen),
            1,
            "on_progress was not called once for the one poll",
            hint="Call on_progress(batch) after every retrieve, including the last one.",
        )
    finally:
        server.close()
