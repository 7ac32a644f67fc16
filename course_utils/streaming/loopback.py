"""Backpressure on real sockets: a relay under uvicorn, streaming to a reader that stops reading.

:mod:`.backpressure` models a slow client as a ``send`` that takes time. A real ASGI server does
not work that way: uvicorn's ``send`` returns as soon as the bytes are in the connection's
transport buffer, and only waits (write flow control) once that buffer passes its high-water mark
(64 KiB); below it, the kernel's socket buffers (the server's send buffer, the client's receive
buffer) take bytes the reader has not read yet. So a relay's own queue only grows once those
buffers are full: a short reply fits in them whole, a long one does not.

:func:`stall_run` measures it: a real uvicorn server on 127.0.0.1 relays a list of text deltas as
SSE (the upstream yields them as fast as the loop allows) through
:func:`~.backpressure.relay_deltas` with a policy, to a plain socket that reads the response
headers, then reads nothing for ``stall_s`` (a phone in a tunnel), then drains the rest. It
reports the relay queue's peak (Python memory, the part a policy controls) and the peak of bytes
that ``send`` had accepted but the reader had not read (held in uvicorn's transport buffer and the
kernel's socket buffers, which no policy in the app controls). Byte counts depend on the kernel's
buffer sizes, so they are measured, not set. On loopback Linux autotunes the server's send buffer
from a 64 KiB segment size to megabytes; ``sndbuf`` pins it (the listening socket's
``SO_SNDBUF``, which accepted sockets inherit) to the scale of a real network path's buffer.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import uvicorn

from ..serving import HOST
from .backpressure import relay_deltas
from .sse import format_event

__all__ = ["StallRun", "stall_run", "stall_runs", "sse_bytes"]


@dataclass
class StallRun:
    """One relayed stream to a stalled reader, as measured."""

    policy: str
    deltas: int
    wire_bytes: int
    """SSE bytes of the whole reply, with HTTP/1.1 chunk framing (what crosses the socket)."""
    queue_peak_bytes: int
    """Peak of the relay queue (``sys.getsizeof`` of queued text): the app's own memory."""
    queue_peak_depth: int
    below_app_peak_bytes: int
    """Peak of bytes ``send`` accepted that the reader had not read: transport + socket buffers."""
    send_waits: int
    """Writes whose ``send`` did not return at once (held by uvicorn's write flow control)."""
    send_waited_s: float
    """Total time those writes waited (wall clock: for display, not for assertions)."""
    received_bytes: int
    """Body bytes the reader got in the end (equal to ``wire_bytes`` when nothing was lost)."""

    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "deltas": self.deltas,
            "reply on the wire (KiB)": round(self.wire_bytes / 1024, 1),
            "relay queue peak (KiB)": round(self.queue_peak_bytes / 1024, 1),
            "relay queue peak (deltas)": self.queue_peak_depth,
            "in server+kernel buffers, peak (KiB)": round(self.below_app_peak_bytes / 1024, 1),
            "send() waited (writes)": self.send_waits,
            "send() waited (s)": round(self.send_waited_s, 3),
            "all bytes arrived": self.received_bytes == self.wire_bytes,
        }


def sse_bytes(texts: Sequence[str]) -> list[bytes]:
    """The relay's ``delta`` events for ``texts`` (as :mod:`.relay` formats them)."""
    out, sent = [], 0
    for text in texts:
        sent += len(text)
        out.append(format_event({"text": text}, event="delta", id=str(sent)))
    return out


def _chunk_size(body: bytes) -> int:
    """Bytes on the wire for one ``more_body`` write under HTTP/1.1 chunked encoding."""
    return len(f"{len(body):x}\r\n") + len(body) + 2


class _Conn:
    """One relayed stream's counters (the reader thread writes ``read``; CPython makes that safe)."""

    def __init__(self) -> None:
        self.accepted = 0  # wire bytes send() has returned for
        self.sent_chars = 0
        self.read = 0  # body bytes the reader has read
        self.below_peak = 0
        self.waited = 0.0
        self.send_waits = 0
        self.stats: Any = None
        self.done = threading.Event()


class _StallApp:
    """A minimal ASGI app: ``POST /<n>`` relays the configured deltas as SSE through ``relay_deltas``."""

    def __init__(self, texts: Sequence[str], policy: str, maxsize: int, streams: int) -> None:
        self.texts, self.policy, self.maxsize = list(texts), policy, maxsize
        self.conns = [_Conn() for _ in range(streams)]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        conn = self.conns[int(scope["path"].strip("/") or 0)]
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def upstream() -> Any:
            for i, text in enumerate(self.texts):
                yield text
                if i % 8 == 0:
                    await asyncio.sleep(0)  # a fast model still yields to the loop now and then

        async def write(text: str) -> None:
            conn.sent_chars += len(text)
            body = format_event({"text": text}, event="delta", id=str(conn.sent_chars))
            # A send that returns at once never yields to the loop; one held by flow control does,
            # and then this callback runs first: a count, not a timing.
            yielded = [False]
            marker = asyncio.get_running_loop().call_soon(yielded.__setitem__, 0, True)
            started = time.perf_counter()
            await send({"type": "http.response.body", "body": body, "more_body": True})
            marker.cancel()
            if yielded[0]:
                conn.send_waits += 1
                conn.waited += time.perf_counter() - started
            conn.accepted += _chunk_size(body)
            conn.below_peak = max(conn.below_peak, conn.accepted - conn.read)

        try:
            conn.stats = await relay_deltas(upstream(), write, maxsize=self.maxsize, policy=self.policy)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            conn.done.set()


def _read_response(port: int, index: int, conn: _Conn, stall_s: float, rcvbuf: int, timeout: float) -> int:
    """POST, read the headers, stall, then drain; returns the chunk-framed body bytes read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window
    sock.settimeout(timeout)
    try:
        sock.connect((HOST, port))
        payload = json.dumps({"prompt": "stall"}).encode()
        sock.sendall(
            f"POST /{index} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(1)
            if not data:
                raise ConnectionError("the server closed before sending headers")
            head += data
        time.sleep(stall_s)  # the phone enters a tunnel: nothing is read
        body, tail = 0, b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            body += len(data)
            conn.read = body
            tail = (tail + data)[-7:]
            if tail == b"\r\n0\r\n\r\n":  # the last chunk: the response is complete
                break
        return body
    finally:
        sock.close()


def _serve(app: _StallApp, sndbuf: int | None) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Start uvicorn on a fresh loopback socket in a thread; try again if a start fails (CI run 16 saw one).

    Starting a local server can fail for reasons outside the demo; the error names the last cause.
    """
    causes: list[str] = []
    for _ in range(START_ATTEMPTS):
        try:
            return _serve_once(app, sndbuf)
        except _StartFailed as exc:
            causes.append(str(exc))
    raise RuntimeError(f"the stall server failed to start {START_ATTEMPTS} times; last: {causes[-1]}")


START_ATTEMPTS = 3
START_TIMEOUT_S = 30.0


class _StartFailed(Exception):
    pass


def _serve_once(app: _StallApp, sndbuf: int | None) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)  # inherited by accepted sockets
    sock.bind((HOST, 0))
    sock.listen(1024)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported by the starting thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="stall-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            sock.close()
            cause = repr(errors[-1]) if errors else ("it exited" if not thread.is_alive() else "no answer in time")
            raise _StartFailed(cause)
        time.sleep(0.005)
    return server, thread, sock.getsockname()[1]


def stall_runs(
    texts: Sequence[str],
    *,
    streams: int = 1,
    policy: str = "pause",
    maxsize: int = 16,
    stall_s: float = 1.0,
    rcvbuf: int = 4096,
    sndbuf: int | None = 16384,
    timeout: float = 60.0,
) -> list[StallRun]:
    """Relay ``texts`` to ``streams`` concurrent readers that each stall ``stall_s``, under one real
    uvicorn server on loopback; one :class:`StallRun` per stream.

    ``rcvbuf`` is each reader's ``SO_RCVBUF`` and ``sndbuf`` the server's ``SO_SNDBUF`` (None: let
    loopback autotune it); Linux doubles both. Blocking: call it from a thread when an event loop is
    running (a notebook cell: ``await asyncio.to_thread(stall_runs, ...)``).
    """
    app = _StallApp(texts, policy, maxsize, streams)
    server, thread, port = _serve(app, sndbuf)
    received = [0] * streams
    errors: list[BaseException] = []

    def reader(i: int) -> None:
        try:
            received[i] = _read_response(port, i, app.conns[i], stall_s, rcvbuf, timeout)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(i,), name=f"stall-reader-{i}") for i in range(streams)]
    try:
        for t in readers:
            t.start()
        for t in readers:
            t.join(timeout + stall_s + 10)
    finally:
        server.should_exit = True
        thread.join(10)
    if errors:
        raise errors[0]
    return [
        StallRun(
            policy=policy,
            deltas=len(texts),
            wire_bytes=c.accepted + 5,
            queue_peak_bytes=c.stats.max_buffered_bytes if c.stats else 0,
            queue_peak_depth=c.stats.max_depth if c.stats else 0,
            below_app_peak_bytes=c.below_peak,
            send_waits=c.send_waits,
            send_waited_s=c.waited,
            received_bytes=r,
        )
        for c, r in zip(app.conns, received)
    ]


def stall_run(texts: Sequence[str], **kwargs: Any) -> StallRun:
    """:func:`stall_runs` with one stream."""
    return stall_runs(texts, streams=1, **kwargs)[0]
