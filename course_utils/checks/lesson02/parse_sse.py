"""Checks for exercise 2.1 ``parse_sse(chunks)``: recorded API streams and handwritten edge cases, read
in one piece, a byte at a time and in random chunkings (\\r\\n endings, heartbeats), compared with the
library's parser; and each event yielded as soon as its blank line has arrived."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Iterable, Iterator

from ...streaming.sse import format_comment, format_event, iter_sse
from ..framework import CaseFailed, Exercise, expect

DATA = Path(__file__).resolve().parents[3] / "data"
RECORDED = ["lesson02_stream_text.sse", "lesson02_stream_tool_use.sse", "lesson02_stream_error.sse"]


# ---------------------------------------------------------------------------------------------
# 2.1 parse_sse(chunks) -> iterator of (event, data)
# ---------------------------------------------------------------------------------------------
parser = Exercise(
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


@parser.case("parses recorded API streams read in one piece")
def _whole(fn) -> None:
    for name, raw in _recorded().items():
        _compare(_parse(fn, [raw]), _expected(raw), name)


def _whole_ok(fn: Any, raw: bytes, expected: list) -> bool:
    try:
        return _parse(fn, [raw]) == expected
    except CaseFailed:
        return False


@parser.case("gives the same events when every read is one byte")
def _bytewise(fn) -> None:
    for name, raw in list(_recorded().items())[:2] + [("handwritten", _handwritten())]:
        expected = _expected(raw)
        got = _parse(fn, [raw[i : i + 1] for i in range(len(raw))])
        if got != expected:
            _compare(got, expected, f"{name}, one byte per read", whole_ok=_whole_ok(fn, raw, expected))


@parser.case("gives the same events for random chunkings, \\r\\n line endings and heartbeats")
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


@parser.case("bare \\r line endings, several leading spaces, an unterminated last event, empty input")
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


@parser.case("ignores comments and keeps multi-line data")
def _comments(fn) -> None:
    raw = _handwritten()
    _compare(_parse(fn, [raw]), _expected(raw), "comments, multi-line data, unicode")


class _ReadEverything(Exception):
    """Raised by the case's chunk source past the last event: the parser read the whole stream."""


@parser.case("yields each event as soon as its blank line has arrived")
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
