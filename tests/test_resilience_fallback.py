"""FallbackChain and the stream rule, on virtual time."""

from __future__ import annotations

import asyncio

import pytest

from course_utils.clock import VirtualClock, run_virtual
from course_utils.resilience import (
    AllLinksFailed,
    BreakerBoard,
    FallbackChain,
    Link,
    StreamInterrupted,
    stream_with_fallback,
)
from course_utils.resilience.fakes import spend_limit_error, status_error


def failing(error, calls):
    def fn(prompt):
        calls.append(prompt)
        raise error

    return fn


def answering(text, calls):
    def fn(prompt):
        calls.append(prompt)
        return f"{text}: {prompt}"

    return fn


def test_falls_back_on_retryable_failures_and_records_the_link():
    calls = []
    chain = FallbackChain(
        [
            Link("opus", failing(status_error(529), calls)),
            Link("haiku", answering("haiku", calls)),
            Link("cached", answering("cached", calls)),
        ],
        clock=VirtualClock(),
    )
    result = chain.call("q")
    assert (result.value, result.link, result.index, result.degraded) == ("haiku: q", "haiku", 1, True)
    assert result.errors == [("opus", "529")]
    assert calls == ["q", "q"]
    assert dict(zip(chain.frame()["link"], chain.frame()["answered"]))["haiku"] == 1


@pytest.mark.parametrize("error", [status_error(400), spend_limit_error(), ValueError("bug")])
def test_does_not_fall_back_on_permanent_failures(error):
    calls = []
    chain = FallbackChain(
        [Link("opus", failing(error, calls)), Link("haiku", answering("haiku", calls))], clock=VirtualClock()
    )
    with pytest.raises(type(error)):
        chain.call("q")
    assert calls == ["q"]


def test_stops_when_the_deadline_has_passed():
    clock = VirtualClock()
    calls = []

    def slow_fail(prompt):
        calls.append("opus")
        clock.advance_sync(6)
        raise status_error(529)

    chain = FallbackChain(
        [Link("opus", slow_fail), Link("haiku", answering("haiku", calls))], deadline_s=5, clock=clock
    )
    with pytest.raises(AllLinksFailed) as info:
        chain.call("q")
    assert calls == ["opus"] and "opus: 529" in str(info.value)


def test_async_links_and_open_breakers_are_skipped_without_a_call():
    calls = []

    async def opus(prompt):
        calls.append("opus")
        raise status_error(529)

    async def haiku(prompt):
        calls.append("haiku")
        return "fine"

    async def run():
        board = BreakerBoard(min_calls=2, failure_rate=1.0, cooldown_s=30)
        chain = FallbackChain([Link("opus", opus), Link("haiku", haiku)], breakers=board)
        results = [await chain.acall("q") for _ in range(5)]
        return results, board

    results, board = run_virtual(run())
    assert [r.link for r in results] == ["haiku"] * 5
    assert calls.count("opus") == 2  # then its breaker is open: no more calls to a dead model
    assert results[-1].errors == [("opus", "CircuitOpenError")]


def test_all_links_failing_raises_with_every_error():
    chain = FallbackChain(
        [Link("a", failing(status_error(529), [])), Link("b", failing(status_error(500), []))], clock=VirtualClock()
    )
    with pytest.raises(AllLinksFailed) as info:
        chain.call("q")
    assert [name for name, _ in info.value.errors] == ["a", "b"] and chain.failed == 1


def stream(chunks, error=None, fail_after=None):
    async def open_stream():
        for i, chunk in enumerate(chunks):
            if fail_after is not None and i == fail_after:
                raise error
            await asyncio.sleep(0.01)
            yield chunk
        if error is not None and fail_after is None:
            raise error

    return open_stream


async def collect(agen):
    return [chunk async for chunk in agen]


def test_stream_switches_links_before_the_first_chunk():
    owners = []
    links = [("opus", stream(["x"], status_error(529), fail_after=0)), ("haiku", stream(["Hel", "lo"]))]
    assert run_virtual(collect(stream_with_fallback(links, on_link=owners.append))) == ["Hel", "lo"]
    assert owners == ["haiku"]


def test_stream_never_switches_after_text_reached_the_user():
    shown = []

    async def run():
        links = [
            ("opus", stream(["The answer ", "is", " 4"], status_error(529), fail_after=2)),
            ("haiku", stream(["Something else"])),
        ]
        async for chunk in stream_with_fallback(links):
            shown.append(chunk)

    with pytest.raises(StreamInterrupted) as info:
        run_virtual(run())
    assert shown == ["The answer ", "is"]
    assert info.value.link == "opus" and info.value.partial == "The answer is"


def test_stream_does_not_switch_on_a_permanent_error():
    links = [("opus", stream(["x"], status_error(400), fail_after=0)), ("haiku", stream(["fine"]))]
    with pytest.raises(Exception) as info:
        run_virtual(collect(stream_with_fallback(links)))
    assert getattr(info.value, "status_code", None) == 400
