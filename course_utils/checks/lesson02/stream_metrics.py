"""Checks for exercise 2.2 ``stream_metrics(events, clock)``: a simulator stream's events delivered on a
virtual schedule (one or several tokens per delta, an empty first delta); the figures are compared with
the schedule and ``output_tokens`` with what the ledger billed."""

from __future__ import annotations

from typing import Any, Iterator

from ...clock import VirtualClock
from ..framework import CaseFailed, Exercise, expect, expect_equal
from ..sim import Probe, probe
from .common import MODEL


# ---------------------------------------------------------------------------------------------
# 2.2 stream_metrics(events, clock) -> dict
# ---------------------------------------------------------------------------------------------
metrics = Exercise(
    "2.2",
    "Stream metrics: time to first token and tokens per second",
    points=2,
    signature="stream_metrics(events, clock) -> dict",
    hints=[
        "Read clock.monotonic() at the start and as each event arrives. The first token is the first "
        "content_block_delta with text, not message_start; the token count is in the usage of message_delta.",
        "ttft_s = time of the first text delta - start; total_s = time the loop ends - start; "
        "output_tokens = the last message_delta's usage.output_tokens; tokens_per_s = output_tokens / (total_s - ttft_s).",
    ],
)


def _sdk_events(p: Probe, prompt: str, max_tokens: int = 200) -> list[Any]:
    client = p.client()
    stream = client.messages.create(
        model=MODEL, max_tokens=max_tokens, stream=True, messages=[{"role": "user", "content": prompt}]
    )
    try:
        return list(stream)
    finally:
        stream.close()


def _coalesce(events: list[Any], every: int) -> list[Any]:
    """Merge runs of ``every`` text deltas into one event, as a proxy or a fast network read does."""
    out: list[Any] = []
    run: list[Any] = []

    def flush() -> None:
        if run:
            text = "".join(e.delta.text for e in run)
            out.append(run[0].model_copy(update={"delta": run[0].delta.model_copy(update={"text": text})}))
            run.clear()

    for e in events:
        if e.type == "content_block_delta" and e.delta.type == "text_delta":
            run.append(e)
            if len(run) == every:
                flush()
        else:
            flush()
            out.append(e)
    flush()
    return out


def _timed(events: list[Any], clock: VirtualClock, *, headers_s: float, ttft_s: float, gap_s: float) -> Iterator[Any]:
    """Deliver events on a schedule: message_start after ``headers_s``, first text at ``ttft_s``."""
    t0 = clock.monotonic()
    seen_text = False
    for e in events:
        if e.type == "message_start":
            at = t0 + headers_s
        elif e.type == "content_block_delta" and not seen_text and getattr(e.delta, "text", None) == "":
            at = t0 + (headers_s + ttft_s) / 2  # an empty delta, between message_start and the first text
        elif e.type == "content_block_delta" and not seen_text:
            seen_text = True
            at = t0 + ttft_s
        else:
            at = clock.monotonic() + gap_s
        clock.advance_sync(max(0.0, at - clock.monotonic()))
        yield e


def _expected_metrics(events: list[Any], headers_s: float, ttft_s: float, gap_s: float) -> dict[str, float]:
    clock = VirtualClock()
    t0 = clock.monotonic()
    first = None
    for e in _timed(events, clock, headers_s=headers_s, ttft_s=ttft_s, gap_s=gap_s):
        if first is None and e.type == "content_block_delta" and getattr(e.delta, "text", ""):
            first = clock.monotonic() - t0
    total = clock.monotonic() - t0
    tokens = [e for e in events if e.type == "message_delta"][-1].usage.output_tokens
    return {"ttft_s": first, "total_s": total, "output_tokens": tokens, "tokens_per_s": tokens / (total - first)}


def _with_empty_first_delta(events: list[Any]) -> list[Any]:
    """``events`` with an empty text delta just before the first real one (it carries no text: not the first token)."""
    i = next(i for i, e in enumerate(events) if e.type == "content_block_delta")
    first = events[i]
    empty = first.model_copy(update={"delta": first.delta.model_copy(update={"text": ""})})
    return events[:i] + [empty] + events[i:]


def _metrics_case(
    fn: Any, prompt: str, *, every: int, headers_s: float, ttft_s: float, gap_s: float, empty_first: bool = False
) -> None:
    p = probe(tier="unlimited")  # rate limits are not this exercise's topic (lessons 03, 05)
    events = _coalesce(_sdk_events(p, prompt), every)
    if empty_first:
        events = _with_empty_first_delta(events)
    expected = _expected_metrics(events, headers_s, ttft_s, gap_s)
    clock = VirtualClock()
    got = fn(_timed(events, clock, headers_s=headers_s, ttft_s=ttft_s, gap_s=gap_s), clock)
    expect(
        isinstance(got, dict),
        "stream_metrics must return a dict",
        expected="a dict",
        got=got,
        hint="Return {'ttft_s': ..., 'total_s': ..., 'output_tokens': ..., 'tokens_per_s': ...}.",
    )
    missing = {"ttft_s", "total_s", "output_tokens", "tokens_per_s"} - set(got)
    expect(
        not missing,
        f"missing keys {sorted(missing)}",
        expected=sorted(expected),
        got=sorted(got),
        hint="Return all four figures.",
    )
    rows = p.requests()
    billed = int(rows[rows["stream"].astype(bool)]["output_tokens"].sum())  # the one streamed request this case made
    expect_equal(
        int(got["output_tokens"]),
        billed,
        "output_tokens is not what the ledger billed for this stream",
        hint="Text deltas are not tokens (a delta can carry several): read usage.output_tokens from the "
        "message_delta event; it is cumulative, the last one is the total.",
    )

    def close(key: str, why: str) -> None:
        value = got[key]
        ok = isinstance(value, (int, float)) and abs(value - expected[key]) <= 1e-6 * max(1.0, abs(expected[key]))
        expect(
            ok,
            f"wrong {key}",
            expected=round(expected[key], 6),
            got=round(value, 6) if isinstance(value, float) else value,
            hint=why,
        )

    if isinstance(got["ttft_s"], (int, float)) and abs(got["ttft_s"] - headers_s) < 1e-6:
        raise CaseFailed(
            "ttft_s is the time of message_start",
            expected=round(expected["ttft_s"], 6),
            got=got["ttft_s"],
            hint="message_start arrives before the model has produced any text; the "
            "first token is the first content_block_delta with text.",
        )
    if empty_first and isinstance(got["ttft_s"], (int, float)) and abs(got["ttft_s"] - (headers_s + ttft_s) / 2) < 1e-6:
        raise CaseFailed(
            "ttft_s is the time of a content_block_delta with empty text",
            expected=round(expected["ttft_s"], 6),
            got=got["ttft_s"],
            hint="The first token is the first delta that carries text: skip a delta "
            "whose text is empty (if event.delta.text: ...).",
        )
    close("ttft_s", "Measure from the clock reading at the start to the first text delta, with the clock passed in.")
    close("total_s", "Measure from the start to when the stream is exhausted, with the clock passed in.")
    close(
        "tokens_per_s",
        "Tokens per second is the generation rate: output_tokens / (total_s - ttft_s); the time to "
        "first token is waiting, not generating.",
    )


@metrics.case("figures of a stream with one token per delta")
def _metrics_plain(fn) -> None:
    _metrics_case(
        fn,
        "Explain in a paragraph why streaming makes a chat feel faster.",
        every=1,
        headers_s=0.25,
        ttft_s=0.8,
        gap_s=0.012,
    )


@metrics.case("figures of a stream whose deltas carry several tokens")
def _metrics_coalesced(fn) -> None:
    _metrics_case(fn, "Describe the water cycle in detail.", every=3, headers_s=0.4, ttft_s=1.3, gap_s=0.05)


@metrics.case("an empty text delta before the first text is not the first token")
def _metrics_empty_delta(fn) -> None:
    _metrics_case(
        fn,
        "List three causes of slow Wi-Fi and one fix for each.",
        every=1,
        headers_s=0.3,
        ttft_s=1.1,
        gap_s=0.02,
        empty_first=True,
    )
