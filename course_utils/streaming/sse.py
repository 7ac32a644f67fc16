"""Server-Sent Events: an incremental parser correct on any chunking, and the writer side.

The network hands a client bytes in arbitrary pieces: an event can be split across reads (even
inside a ``\\r\\n`` pair or a multi-byte UTF-8 character), and one read can hold several events.
The parser therefore buffers bytes, splits complete lines, and dispatches an event only at the
blank line that ends it, following the WHATWG "event stream interpretation" rules:

* lines end with ``\\r\\n``, ``\\n`` or ``\\r``;
* ``field: value`` (one optional space after the colon is removed), ``field`` alone means an
  empty value; ``data`` lines accumulate and are joined with ``\\n``;
* lines starting with ``:`` are comments (heartbeats) and are ignored;
* an event with no ``data`` is not dispatched; the event name defaults to ``message``;
* at end of stream an unterminated event is discarded (it may be truncated).
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

__all__ = ["SSEEvent", "SSEParser", "iter_sse", "format_event", "format_comment"]


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its name, its data (lines joined by ``\\n``) and the last event id."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """The data parsed as JSON (the Anthropic API sends one JSON object per event)."""
        return json.loads(self.data)

    def __iter__(self) -> Iterator[str]:
        # Lets ``event, data = ev`` and ``tuple(ev)`` work, so events compare with (name, data) pairs.
        return iter((self.event, self.data))


class SSEParser:
    """Feed bytes as they arrive; get back the events they complete.

    >>> p = SSEParser()
    >>> p.feed(b"event: ping\\nda")
    []
    >>> p.feed(b"ta: {}\\n\\n")
    [SSEEvent(event='ping', data='{}', id=None, retry=None)]
    """

    def __init__(self) -> None:
        # Incremental decoding: a UTF-8 character split across two reads must not become U+FFFD.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._first = True
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None
        self._retry: int | None = None
        self._pending_cr = False

    def feed(self, chunk: bytes | str) -> list[SSEEvent]:
        """Consume one chunk and return the events it completed (possibly none, possibly several)."""
        text = chunk if isinstance(chunk, str) else self._decoder.decode(chunk)
        if self._first and text:
            self._first = False
            if text.startswith("\ufeff"):  # a BOM is allowed once at the start of the stream
                text = text[1:]
        if not text:
            return []
        if self._pending_cr and text.startswith("\n"):
            # The previous chunk ended in "\r" and already ended that line; this "\n" belongs to it.
            text = text[1:]
        self._pending_cr = False
        self._buffer += text
        events: list[SSEEvent] = []
        start = 0
        buf = self._buffer
        n = len(buf)
        while True:
            cr = buf.find("\r", start)
            lf = buf.find("\n", start)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                line, start = buf[start:lf], lf + 1
            elif cr == n - 1:
                # A lone "\r" at the end of what we have ends the line, but a "\n" may follow in
                # the next chunk; remember to swallow it.
                line, start = buf[start:cr], cr + 1
                self._pending_cr = True
            else:
                line = buf[start:cr]
                start = cr + 2 if buf[cr + 1] == "\n" else cr + 1
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = buf[start:]
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: flush the decoder; an event without its closing blank line is discarded."""
        tail = self._decoder.decode(b"", final=True)
        events = self.feed(tail) if tail else []
        self._buffer = ""
        self._event, self._data = "", []
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keeps proxies and browsers from timing the connection out
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry":
            if value.isdigit():
                self._retry = int(value)
        # Unknown fields are ignored, as the spec says.
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, name = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEEvent(event=name or "message", data="\n".join(data), id=self._last_id, retry=self._retry)


def iter_sse(chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    """Yield events from an iterable of byte chunks as soon as each is complete."""
    parser = SSEParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()


def format_event(data: Any, event: str | None = None, id: str | None = None) -> bytes:
    """Frame one event; ``data`` that is not a ``str`` is sent as compact JSON.

    Newlines inside the data become several ``data:`` lines, which the parser joins back.
    """
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    lines = []
    if event:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    lines.extend(f"data: {part}" for part in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def format_comment(text: str = "") -> bytes:
    """A comment line (``: text``): a heartbeat that every SSE client ignores."""
    return f": {text}\n\n".encode() if text else b":\n\n"
