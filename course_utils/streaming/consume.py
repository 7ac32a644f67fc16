"""Consume the SDK's message stream (sync and async) and time it.

Four figures describe a streamed reply as a user feels it:

* **first event**: from sending the request to the first stream event (``message_start``): the
  request was accepted, nothing is produced yet;
* **time to first token** (TTFT): from sending the request to the first *text* arriving. Not to
  ``message_start``, and not to a ``thinking`` block: the 5.x models think by default, so a reply
  can start with a thinking block (``first_thinking_s``) long before its first text. A page should
  show "thinking…" from that moment instead of silence;
* **total**: from sending the request to the end of the stream;
* **tokens per second**: output tokens (from the final ``usage``, not the number of delta events:
  a delta can carry several tokens) over the generation time, ``total - ttft``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterable, Callable, Iterable

from ..clients import AsyncClient, SyncClient
from ..clock import SYSTEM_CLOCK, Clock

__all__ = [
    "StreamResult",
    "timing_from_events",
    "atiming_from_events",
    "consume_stream",
    "aconsume_stream",
    "complete_timed",
]


@dataclass
class StreamResult:
    """What one streamed (or blocking) reply delivered, and when."""

    text: str = ""
    ttft_s: float | None = None
    """Seconds from the request to the first text; ``None`` if no text arrived."""
    first_event_s: float | None = None
    """Seconds from the request to the first stream event (``message_start``)."""
    first_thinking_s: float | None = None
    """Seconds to the start of a ``thinking`` block; ``None`` if the reply did not think."""
    total_s: float = 0.0
    output_tokens: int = 0
    stop_reason: str | None = None
    delta_times: list[float] = field(default_factory=list)
    """Seconds since the request at which each text delta arrived."""
    delta_sizes: list[int] = field(default_factory=list)
    """Characters in each text delta."""
    message: Any = None
    """The SDK's final ``Message`` when the stream completed."""
    streamed: bool = True

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second of generation (after the first token)."""
        if self.ttft_s is None or self.total_s <= self.ttft_s:
            return None
        return self.output_tokens / (self.total_s - self.ttft_s)

    def frame(self) -> Any:
        """One row per text delta: ``delta`` (0-based), ``at_s`` (seconds since the request) and ``chars``."""
        import pandas as pd

        return pd.DataFrame(
            {"delta": range(len(self.delta_times)), "at_s": list(self.delta_times), "chars": list(self.delta_sizes)}
        )

    def summary(self) -> dict[str, Any]:
        """The figures as a flat dict (a row of a pandas table)."""
        return {
            "first_event_s": self.first_event_s,
            "first_thinking_s": self.first_thinking_s,
            "ttft_s": self.ttft_s,
            "total_s": self.total_s,
            "output_tokens": self.output_tokens,
            "tokens_per_s": self.tokens_per_s,
            "deltas": len(self.delta_times),
            "stop_reason": self.stop_reason,
        }


class _Timer:
    """Turns stream events into a :class:`StreamResult`; shared by the sync and async readers."""

    def __init__(self, clock: Clock, started: float, on_text: Callable[[str], Any] | None) -> None:
        self.clock, self.started, self.on_text = clock, started, on_text
        self.result = StreamResult()
        self._parts: list[str] = []

    def event(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        now = self.clock.monotonic() - self.started
        if self.result.first_event_s is None and kind is not None:
            self.result.first_event_s = now
        if kind == "content_block_start" and getattr(event.content_block, "type", None) == "thinking":
            if self.result.first_thinking_s is None:
                self.result.first_thinking_s = now
        elif kind == "content_block_delta" and getattr(event.delta, "type", None) == "text_delta":
            text = event.delta.text
            if not text:
                return
            if self.result.ttft_s is None:
                self.result.ttft_s = now
            self._parts.append(text)
            self.result.delta_times.append(now)
            self.result.delta_sizes.append(len(text))
            if self.on_text is not None:
                self.on_text(text)
        elif kind == "message_start":
            self.result.output_tokens = event.message.usage.output_tokens or 0
        elif kind == "message_delta":
            # Cumulative, per the API: the last one is the reply's total.
            self.result.output_tokens = event.usage.output_tokens
            self.result.stop_reason = event.delta.stop_reason
        # "text" events (the SDK's convenience copy of each text delta) and others are skipped,
        # so nothing is counted twice.

    def finish(self) -> StreamResult:
        self.result.total_s = self.clock.monotonic() - self.started
        self.result.text = "".join(self._parts)
        return self.result


def timing_from_events(
    events: Iterable[Any],
    clock: Clock = SYSTEM_CLOCK,
    *,
    started: float | None = None,
    on_text: Callable[[str], Any] | None = None,
) -> StreamResult:
    """Read SDK stream events (raw ``RawMessageStreamEvent`` or a ``MessageStream``) and time them.

    ``started`` is the clock reading when the request was sent (default: now).
    """
    timer = _Timer(clock, clock.monotonic() if started is None else started, on_text)
    for event in events:
        timer.event(event)
    return timer.finish()


async def atiming_from_events(
    events: AsyncIterable[Any],
    clock: Clock = SYSTEM_CLOCK,
    *,
    started: float | None = None,
    on_text: Callable[[str], Any] | None = None,
) -> StreamResult:
    """Async :func:`timing_from_events`."""
    timer = _Timer(clock, clock.monotonic() if started is None else started, on_text)
    async for event in events:
        timer.event(event)
    return timer.finish()


def consume_stream(
    client: SyncClient, *, clock: Clock = SYSTEM_CLOCK, on_text: Callable[[str], Any] | None = None, **request: Any
) -> StreamResult:
    """Stream ``request`` (``messages.create`` keyword arguments) with ``client`` and time it."""
    started = clock.monotonic()
    with client.messages.stream(**request) as stream:
        result = timing_from_events(stream, clock, started=started, on_text=on_text)
        result.message = stream.get_final_message()
    return result


async def aconsume_stream(
    client: AsyncClient, *, clock: Clock = SYSTEM_CLOCK, on_text: Callable[[str], Any] | None = None, **request: Any
) -> StreamResult:
    """Async :func:`consume_stream` for an ``AsyncAnthropic`` client."""
    started = clock.monotonic()
    async with client.messages.stream(**request) as stream:
        result = await atiming_from_events(stream, clock, started=started, on_text=on_text)
        result.message = await stream.get_final_message()
    return result


def _blocking_result(message: Any, elapsed: float) -> StreamResult:
    text = "".join(getattr(b, "text", "") for b in message.content)
    # Without streaming the first text reaches the user with the last: TTFT is the total.
    return StreamResult(
        text=text,
        ttft_s=elapsed,
        total_s=elapsed,
        output_tokens=message.usage.output_tokens,
        stop_reason=message.stop_reason,
        message=message,
        streamed=False,
    )


def complete_timed(client: SyncClient, *, clock: Clock = SYSTEM_CLOCK, **request: Any) -> StreamResult:
    """The naive baseline: one blocking ``messages.create``, timed the same way."""
    started = clock.monotonic()
    message = client.messages.create(**request)
    return _blocking_result(message, clock.monotonic() - started)
