"""Checks for lesson 02 (Streaming responses).

2.1 ``parse_sse`` (an incremental SSE parser), 2.2 ``stream_metrics`` (TTFT and tokens per
second), 2.3 ``bounded_relay`` (backpressure without losing text; reading overlaps sending, a
client that leaves stops the reader, an upstream error propagates), 2.4 ``relay_text``
(cancel the upstream when the client leaves; graded from the simulator's ledger).
"""

from __future__ import annotations

import asyncio
import inspect
import random
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..clock import SYSTEM_CLOCK, Clock, VirtualClock
from ..streaming.sse import format_comment, format_event, iter_sse
from .framework import CaseFailed, Exercise, expect, expect_equal, run_awaitable, track_tasks
from .sim import Probe, probe

DATA = Path(__file__).resolve().parents[2] / "data"
RECORDED = ["lesson02_stream_text.sse", "lesson02_stream_tool_use.sse", "lesson02_stream_error.sse"]
MODEL = "claude-haiku-5-5"


# ---------------------------------------------------------------------------------------------
# 2.1 parse_sse(chunks) -> iterator of (event, data)
# ---------------------------------------------------------------------------------------------
parse_sse = Exercise(
    "2.1",
    "An SSE parser that survives any chunking",
    points=3,
    signature="parse_sse(chunks) -> iterator of (event, data)",
    hints=[
        "The network decides where reads end: keep a buffer of what has not formed a complete line yet, "
        "and dispatch an event only at the blank line that ends it. Lines starting with ':' are comments.",
        "buffer += chunk; while a line ending (\\r\\n, \\n or \\r) is in the buffer: take the line; "
        "empty line -> yield (event or 'message', '\\n'.join(data_lines)) if there are data lines, then reset; "
        "':...' -> skip; 'data: x' -> data_lines.append(x); 'event: x' -> event = x. "
        "Beware a '\\r' at the very end of a chunk: its '\\n' may come in the next one.",
    ],
)


def _recorded() -> dict[str, bytes]:
    return {name: (DATA / name).read_bytes() for name in RECORDED}


def _handwritten() -> bytes:
    """Edge cases the API itself does not send but a relay or proxy may: comments, multi-line data,
    an event without a name, an id, multi-byte UTF-8, a comment-only block between events."""
    return b"".join(
        [
            format_comment("connected"),
            format_event({"text": "caf\u00e9 \u2014 \u6771\u4eac \U0001f600"}, event="delta", id="1"),
            format_comment("heartbeat"),
            b"data: line one\ndata: line two\ndata:\n\n",
            b"event: ping\n\n",  # no data: not dispatched
            b': a comment\nevent: delta\n: inside an event\ndata: {"text": "ok"}\n\n',
            format_event({"done": True}, event="end"),
        ]
    )


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\n", b"\r\n")


def _with_heartbeats(raw: bytes, rng: random.Random) -> bytes:
    parts = raw.split(b"\n\n")
    out = []
    for part in parts[:-1]:
        out.append(part + b"\n\n")
        if rng.random() < 0.3:
            out.append(format_comment("heartbeat"))
    out.append(parts[-1])
    return b"".join(out)


def _random_chunks(raw: bytes, rng: random.Random, max_size: int = 40) -> list[bytes]:
    chunks, pos = [], 0
    while pos < len(raw):
        size = rng.randint(1, max_size)
        chunks.append(raw[pos : pos + size])
        pos += size
    return chunks


def _as_pair(item: Any) -> tuple[Any, Any]:
    if isinstance(item, dict):
        return item.get("event"), item.get("data")
    if hasattr(item, "event") and hasattr(item, "data"):
        return item.event, item.data
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    raise CaseFailed(
        "each item must be an (event, data) pair",
        expected="('content_block_delta', '{...}')",
        got=item,
        hint="Yield a tuple (event_name, data_string) per event.",
    )


_SPLIT_CHARACTER_HINT = (
    "A multi-byte UTF-8 character (é, —, 東, an emoji) can be split across two reads: "
    "decoding each chunk on its own breaks it. Buffer bytes and decode whole lines, or use "
    "codecs.getincrementaldecoder('utf-8')(), which keeps a split character until its end arrives."
)


def _parse(fn: Any, chunks: Iterable[bytes]) -> list[tuple[Any, Any]]:
    try:
        out = fn(iter(list(chunks)))
        if out is None:
            raise CaseFailed(
                "parse_sse returned None",
                expected="an iterator of (event, data)",
                got=None,
                hint="Make parse_sse a generator: `yield (event, data)` for each event.",
            )
        return [_as_pair(item) for item in out]
    except UnicodeDecodeError as exc:
        raise CaseFailed(
            f"decoding failed in the middle of the stream: {exc.reason} at byte {exc.start} of a chunk",
            expected="text decoded across reads",
            got="UnicodeDecodeError",
            hint=_SPLIT_CHARACTER_HINT,
        ) from None


def _expected(raw: bytes) -> list[tuple[str, str]]:
    return [(e.event, e.data) for e in iter_sse([raw])]


_CHUNK_HINT = (
    "Read in one piece this stream parses right; cut into reads it does not, so the reads' boundaries "
    "are the bug: keep what is not a complete line in a buffer across reads, and when a read ends with \\r, "
    "wait for the next one: a \\n at its start belongs to the same line ending (\\r\\n), not a blank line."
)


def _compare(got: list, expected: list, what: str, *, whole_ok: bool = False) -> None:
    """Fail with the observed difference; ``whole_ok``: the same stream read in one piece parsed right."""
    if got == expected:
        return
    comments_as_events = [g for g in got if g not in expected and g[1] in ("", None)]
    if len(got) == len(expected) + 1 and got[:-1] == expected:
        raise CaseFailed(
            f"{what}: an extra last event, from an unterminated block at the end of the stream",
            expected="nothing more",
            got=got[-1],
            hint="An event is complete only at its blank line; a block the stream ends in the middle of "
            "(the connection dropped) is incomplete: drop it.",
        )
    if len(got) == len(expected) - 1 and got == expected[:-1]:
        raise CaseFailed(
            f"{what}: the last event is missing",
            expected=expected[-1],
            got="nothing",
            hint="An event is complete at its blank line: yield it then, not when the next event starts.",
        )
    if comments_as_events:
        raise CaseFailed(
            f"{what}: an event with empty data came out of a comment-only block (a heartbeat)",
            expected="no event for a block without data lines",
            got=comments_as_events[0],
            hint="Lines starting with ':' are comments: skip them, and dispatch nothing for a block "
            "without data lines.",
        )
    first_bad = next((i for i, (g, e) in enumerate(zip(got, expected)) if g != e), min(len(got), len(expected)))
    want = expected[first_bad] if first_bad < len(expected) else "no more events"
    have = got[first_bad] if first_bad < len(got) else "no more events"
    count = (
        f"{len(got)} events instead of {len(expected)}; first difference at event {first_bad}"
        if len(got) != len(expected)
        else f"the right number of events ({len(expected)}), but event {first_bad} differs"
    )
    hint = _cause(want, have)
    if whole_ok and hint != _SPLIT_CHARACTER_HINT:
        hint = _CHUNK_HINT
    raise CaseFailed(f"{what}: {count}", expected=want, got=have, hint=hint)


def _cause(want: Any, have: Any) -> str:
    """The hint for the first differing event, from what differs in it."""
    if isinstance(have, tuple) and isinstance(have[1], str) and "\ufffd" in have[1]:
        return _SPLIT_CHARACTER_HINT
    if isinstance(want, tuple) and isinstance(have, tuple) and isinstance(want[1], str) and isinstance(have[1], str):
        if want[0] != have[0]:
            return (
                "The event name is wrong: it is the value of the last `event:` line of the block, with one leading "
                'space dropped, and "message" when there is none; reset it after each event.'
            )
        if have[1] == want[1].lstrip(" ") or have[1].strip() == want[1].strip():
            return (
                'Drop exactly one space after the colon (`data:   x` is "  x"), never strip the value: spaces '
                "are part of the text."
            )
        if have[1].replace("\n", "") == want[1].replace("\n", ""):
            return 'Join the data lines of one event with "\\n", in order.'
        if have[1].replace("\r", "") == want[1] or "\r" in have[1]:
            return "A lone \\r ends a line too (\\r\\n, \\n and \\r are all line endings)."
    return (
        "Chunks are not events: an event can span several reads and one read can hold several events. "
        "Buffer bytes and split on line endings (\\r\\n, \\n or \\r), keeping a \\r at the end of a read until "
        "the next one shows whether a \\n follows."
    )


@parse_sse.case("parses recorded API streams read in one piece")
def _whole(fn) -> None:
    for name, raw in _recorded().items():
        _compare(_parse(fn, [raw]), _expected(raw), name)


def _whole_ok(fn: Any, raw: bytes, expected: list) -> bool:
    try:
        return _parse(fn, [raw]) == expected
    except CaseFailed:
        return False


@parse_sse.case("gives the same events when every read is one byte")
def _bytewise(fn) -> None:
    for name, raw in list(_recorded().items())[:2] + [("handwritten", _handwritten())]:
        expected = _expected(raw)
        got = _parse(fn, [raw[i : i + 1] for i in range(len(raw))])
        if got != expected:
            _compare(got, expected, f"{name}, one byte per read", whole_ok=_whole_ok(fn, raw, expected))


@parse_sse.case("gives the same events for random chunkings, \\r\\n line endings and heartbeats")
def _adversarial(fn) -> None:
    rng = random.Random(2)
    sources = {**_recorded(), "handwritten": _handwritten()}
    for name, raw in sources.items():
        for variant, data in (("\\n", _with_heartbeats(raw, rng)), ("\\r\\n", _crlf(_with_heartbeats(raw, rng)))):
            for trial in range(3):
                chunks = _random_chunks(data, rng, max_size=rng.choice([3, 17, 200]))
                expected = _expected(data)
                got = _parse(fn, chunks)
                if got != expected:
                    _compare(
                        got,
                        expected,
                        f"{name} with {variant} line endings, chunking #{trial}",
                        whole_ok=_whole_ok(fn, data, expected),
                    )


def _edges() -> bytes:
    """The contract's edge inputs: bare \\r line endings, several spaces after the colon, an event
    name reset between events, and an unterminated event at the end (dropped)."""
    return b"".join(
        [
            b"event: first\rdata:   three spaces kept as two\r\r",
            b"data: no name, so 'message'\rdata: second line\r\r",
            b":comment\revent: named\rdata:no space\rdata: \r\r",
            b"data: caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80\r\n\r\n",
            b"event: never sent\ndata: the stream ends before this blank line",
        ]
    )


@parse_sse.case("bare \\r line endings, several leading spaces, an unterminated last event, empty input")
def _edge_inputs(fn) -> None:
    raw = _edges()
    _compare(_parse(fn, [raw]), _expected(raw), "bare \\r endings and spaces, in one read")
    whole_ok = _parse(fn, [raw]) == _expected(raw)
    _compare(
        _parse(fn, [raw[i : i + 1] for i in range(len(raw))]),
        _expected(raw),
        "the same, one byte per read",
        whole_ok=whole_ok,
    )
    _compare(
        _parse(fn, [b"", raw[:7], b"", raw[7:], b""]),
        _expected(raw),
        "the same, with empty reads between",
        whole_ok=whole_ok,
    )
    _compare(_parse(fn, []), [], "a stream with no bytes at all")


@parse_sse.case("ignores comments and keeps multi-line data")
def _comments(fn) -> None:
    raw = _handwritten()
    _compare(_parse(fn, [raw]), _expected(raw), "comments, multi-line data, unicode")


class _ReadEverything(Exception):
    """Raised by the case's chunk source past the last event: the parser read the whole stream."""


@parse_sse.case("yields each event as soon as its blank line has arrived")
def _incremental(fn) -> None:
    raw = (DATA / RECORDED[0]).read_bytes()
    events = raw.split(b"\n\n")[:-1]
    pulled = 0

    def chunks() -> Iterator[bytes]:
        nonlocal pulled
        for block in events:
            pulled += 1
            yield block + b"\n\n"
        raise _ReadEverything  # never reached when the parser is lazy enough

    try:
        out = fn(chunks())
    except _ReadEverything:
        raise CaseFailed(
            "parse_sse read the whole stream before returning",
            expected="a generator of events",
            got="a finished result",
            hint="Use `yield` inside the loop over chunks, so the caller gets "
            "each event while the stream is still open.",
        ) from None
    expect(
        out is not None and hasattr(out, "__next__"),
        "parse_sse must return an iterator (a generator)",
        expected="a generator",
        got=type(out).__name__,
        hint="Use `yield` so the caller gets each event while the stream is still open.",
    )
    for n in range(1, 4):
        try:
            next(out)
        except _ReadEverything:
            raise CaseFailed(
                "parse_sse read the whole stream before yielding anything",
                expected="the first event after the first read",
                got="nothing until the stream ended",
                hint="A relay must forward each event while the stream is open: yield events from inside "
                "the loop over chunks.",
            ) from None
        expect(
            pulled <= n,
            f"event {n} was yielded only after {pulled} reads",
            expected=f"at most {n} reads",
            got=f"{pulled} reads",
            hint="Yield each event at its blank line, in the same loop iteration that read it.",
        )


# ---------------------------------------------------------------------------------------------
# 2.2 stream_metrics(events, clock) -> dict
# ---------------------------------------------------------------------------------------------
stream_metrics = Exercise(
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


@stream_metrics.case("figures of a stream with one token per delta")
def _metrics_plain(fn) -> None:
    _metrics_case(
        fn,
        "Explain in a paragraph why streaming makes a chat feel faster.",
        every=1,
        headers_s=0.25,
        ttft_s=0.8,
        gap_s=0.012,
    )


@stream_metrics.case("figures of a stream whose deltas carry several tokens")
def _metrics_coalesced(fn) -> None:
    _metrics_case(fn, "Describe the water cycle in detail.", every=3, headers_s=0.4, ttft_s=1.3, gap_s=0.05)


@stream_metrics.case("an empty text delta before the first text is not the first token")
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


# ---------------------------------------------------------------------------------------------
# 2.3 bounded_relay(source, send, maxsize) -> None
# ---------------------------------------------------------------------------------------------
bounded_relay = Exercise(
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


@bounded_relay.case("a fast client gets all the text, in order; an empty upstream sends nothing")
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


@bounded_relay.case("a slow client: the upstream never runs more than maxsize deltas ahead")
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


@bounded_relay.case("a paced upstream and a slow client: reading overlaps sending")
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


@bounded_relay.case("the client disconnects (send raises): the upstream stops and no task is left running")
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


@bounded_relay.case("the upstream fails mid-stream: the error reaches the caller, nothing hangs")
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


# ---------------------------------------------------------------------------------------------
# 2.4 relay_text(client, request) -> async iterator of str (cancel upstream on disconnect)
# ---------------------------------------------------------------------------------------------
relay_text = Exercise(
    "2.4",
    "Cancel the upstream when the client disconnects",
    points=3,
    signature="relay_text(client, request) -> async iterator of text",
    hints=[
        "When the browser leaves, the server closes your generator (or cancels the task iterating it). "
        "Whatever you do then must close the upstream HTTP response at once, not read it to the end.",
        "async with client.messages.stream(**request) as stream: async for text in stream.text_stream: yield text. "
        "Leaving the `async with` (on aclose or cancellation too) closes the response, and the provider stops "
        "generating.",
    ],
    time_limit=40.0,
)

_LONG_PROMPT = "Lesson 02 check: write the long relay essay."
_LONG_REPLY = " ".join(
    f"Paragraph {i}: a relay forwards each delta as it arrives, and a client that leaves must stop the model."
    for i in range(1, 13)
)


def _latency_probe() -> Probe:
    """A probe whose simulator paces output at the model's real speed (on virtual time), with the
    long reply this check streams scripted, so a client that stops early shows in the bill."""
    p = probe(tier="unlimited", tag="check02")
    p.script(_LONG_PROMPT, _LONG_REPLY)
    return p


def _request() -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": _LONG_PROMPT}]}


def _full_tokens() -> int:
    from ..tokens import count_text

    return count_text(_LONG_REPLY)


async def _ledger_row(p: Probe, timeout: float = 30.0) -> Any:
    """The probe's finished request; the simulator records a stream when it ends (or is cut off).

    Polled while the event loop keeps running, as a server's would after a client leaves: a
    background task or an unclosed response would go on reading in the meantime.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        rows = p.requests()
        streams = rows[rows["stream"].astype(bool)] if len(rows) else rows
        if len(streams):
            # The row is selected by what it is (the streamed /v1/messages request), never by position.
            expect(
                len(rows) == 1,
                f"the relay made {len(rows)} requests to /v1/messages "
                f"({len(streams)} streamed, {len(rows) - len(streams)} not)",
                expected="1 streaming request",
                got=f"{len(rows)} requests",
                hint="Make exactly one request, client.messages.stream(**request), and relay it: a second request "
                "(a warm-up, a non-streamed copy for logging) is billed too.",
            )
            return streams.iloc[0]
        await asyncio.sleep(0.02)
    if len(p.requests()):
        raise CaseFailed(
            "the relay made no streaming request",
            expected="client.messages.stream(**request)",
            got=f"{len(p.requests())} non-streamed request(s)",
            hint="Stream the reply (client.messages.stream), so each delta can be forwarded as it arrives "
            "and the request can be cancelled when the client leaves.",
        )
    raise CaseFailed(
        f"the upstream request was still open {timeout:g} s after the client left",
        expected="the request closed right away",
        got=f"still streaming after {timeout:g} s",
        hint="Close the stream when the generator is closed: use `async with client.messages.stream(...)` "
        "(or call `await stream.close()` in a finally).",
    )


async def _expect_cancelled(p: Probe, received: int, how: str) -> None:
    row = await _ledger_row(p)
    full = _full_tokens()
    billed = int(row["output_tokens"])
    limit = max(60, full // 4)
    expect(
        billed <= limit,
        f"after the client {how} the model generated {billed} of {full} output tokens",
        expected=f"at most {limit} (the client read {received} deltas)",
        got=f"{billed} billed",
        hint="Don't read the rest of the reply after the client has gone (not even to log it): every token "
        "generated for nobody is billed. Leave the stream's `async with` so the request is cancelled.",
    )
    expect(
        bool(row["disconnected"]),
        "the ledger does not show the upstream request as disconnected",
        expected="disconnected=True",
        got=f"disconnected={bool(row['disconnected'])}",
        hint="Close the upstream response before it completes.",
    )


async def _open(fn: Any, client: Any, request: dict[str, Any] | None = None) -> Any:
    gen = fn(client, _request() if request is None else request)
    if inspect.iscoroutine(gen):
        # An `async def` without `yield` (e.g. the unedited stub): run it so NotImplementedError shows.
        await gen
        raise CaseFailed(
            "relay_text must be an async generator",
            expected="an async iterator",
            got="a coroutine",
            hint="`yield` each text delta inside the `async def`.",
        )
    expect(
        hasattr(gen, "__anext__"),
        "relay_text must be an async generator",
        expected="an async iterator",
        got=type(gen).__name__,
        hint="Define it with `async def` and `yield` each text delta.",
    )
    return gen


@relay_text.case("relays the whole reply when the client reads to the end")
def _complete(fn) -> None:
    p = _latency_probe()

    request = _request()

    async def go() -> str:
        parts = []
        async with p.async_client() as client:
            async for text in await _open(fn, client, request):
                if not isinstance(text, str):
                    raise CaseFailed(
                        f"relay_text yielded a {type(text).__name__}, not a str",
                        expected="each text delta as a str",
                        got=repr(text)[:120],
                        hint="Yield the text only (stream.text_stream yields exactly the text deltas), not "
                        "the events that carry it.",
                    )
                parts.append(text)
        return "".join(parts)

    text = run_awaitable(go())
    row = run_awaitable(_ledger_row(p))
    if request != _request():
        changed = sorted(k for k in set(request) | set(_request()) if request.get(k) != _request().get(k))
        raise CaseFailed(
            f"relay_text modified the request it was given (changed: {', '.join(changed)})",
            expected="the caller's request left as it was",
            got=f"changed {', '.join(changed)}",
            hint="The request belongs to the caller (it may be logged or retried): pass it as "
            "client.messages.stream(**request) and put anything extra in the call, not in the dict.",
        )
    if text.strip() != _LONG_REPLY:
        at = next(
            (i for i, (a, b) in enumerate(zip(text.strip(), _LONG_REPLY)) if a != b),
            min(len(text.strip()), len(_LONG_REPLY)),
        )
        raise CaseFailed(
            f"the relayed text is not the model's reply: {len(text.strip())} characters against "
            f"{len(_LONG_REPLY)}, first difference at character {at}",
            expected=_LONG_REPLY[max(0, at - 20) : at + 20],
            got=text.strip()[max(0, at - 20) : at + 20],
            hint="Yield every text delta once, in order (stream.text_stream yields exactly those).",
        )
    billed, cut = int(row["output_tokens"]), bool(row["disconnected"])
    expect(
        billed == _full_tokens() and not cut,
        "a client that read everything should see a complete, normal request",
        expected=f"{_full_tokens()} output tokens, not disconnected",
        got=f"{billed} output tokens, {'disconnected' if cut else 'not disconnected'}",
        hint="Make exactly one streaming request and read it to the end.",
    )


@relay_text.case("the client closes the stream early: the upstream stops (read from the ledger)")
def _aclose(fn) -> None:
    p = _latency_probe()

    async def go() -> None:
        async with p.async_client() as client:
            gen = await _open(fn, client)
            n = 0
            async for _ in gen:
                n += 1
                if n == 10:
                    break
            await gen.aclose()
            await _expect_cancelled(p, n, "closed the stream")

    run_awaitable(go())


@relay_text.case("the client's task is cancelled (a browser tab closed): the upstream stops")
def _cancelled(fn) -> None:
    p = _latency_probe()

    async def go() -> None:
        got = 0
        ten = asyncio.Event()

        client = p.async_client()

        async def client_task() -> None:
            nonlocal got
            async for _ in await _open(fn, client):
                got += 1
                if got == 10:
                    ten.set()

        task = asyncio.create_task(client_task())
        waiter = asyncio.create_task(ten.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        waiter.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        async with p:
            await _expect_cancelled(p, got, "disconnected")

    run_awaitable(go())


EXERCISES = [parse_sse, stream_metrics, bounded_relay, relay_text]
