"""httpx2 transports that serve requests from an ASGI app in the same process, with no sockets.

Checks and tests point an SDK client at the simulator this way (``http_client=...``): the
simulator then runs on the client's own event loop, so on a virtual-time loop its latency, rate
limits and ``retry-after`` share one clock with the code under test, and no thread or port can
make the outcome depend on how busy the machine is.

httpx2's own ``ASGITransport`` buffers the whole response before returning it, so a client could
never read a stream as it is produced nor stop it by leaving. :class:`StreamingASGITransport`
streams: the body reaches the client chunk by chunk, closing the response disconnects the client
(the app sees ``http.disconnect`` and its stream is cancelled, as behind a real server), and the
request's read timeout is enforced on the loop's clock (``httpx2.ReadTimeout``).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable, MutableMapping

import httpx2

from .clock import virtual_loop

__all__ = ["StreamingASGITransport", "SyncASGITransport"]

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

_END = object()
SOCKET_BUFFER_BYTES = 256 * 1024
"""Bytes the app may send ahead of the client, as a socket's buffers hold them: a client that stops
reading holds the app back once they are full, as TCP flow control would, and not before."""


def _scope(request: httpx2.Request, client: tuple[str, int]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
        "scheme": request.url.scheme,
        "path": request.url.path,
        "raw_path": request.url.raw_path.split(b"?")[0],
        "query_string": request.url.query,
        "server": (request.url.host, request.url.port),
        "client": client,
        "root_path": "",
    }


def _read_timeout(request: httpx2.Request) -> float | None:
    timeout = request.extensions.get("timeout") or {}
    return timeout.get("read")


class _Exchange:
    """One request served by the app in a task of its own; the response body flows through a queue."""

    def __init__(self, app: ASGIApp, request: httpx2.Request, body: bytes, client: tuple[str, int]) -> None:
        self.request = request
        self._body: bytes | None = body
        self.disconnected = asyncio.Event()
        self.started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[Any] = asyncio.Queue()
        self.buffered = 0
        self.room = asyncio.Event()
        self.room.set()
        self.complete = False
        self.task = asyncio.create_task(app(_scope(request, client), self._receive, self._send))

    async def _receive(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if self.disconnected.is_set():
            raise OSError("the client disconnected")
        if message["type"] == "http.response.start":
            self.started.set_result((message["status"], list(message.get("headers", []))))
        elif message["type"] == "http.response.body":
            if message.get("body") and self.request.method != "HEAD":
                while self.buffered >= SOCKET_BUFFER_BYTES:
                    self.room.clear()
                    await self.room.wait()
                    if self.disconnected.is_set():
                        raise OSError("the client disconnected")
                self.buffered += len(message["body"])
                self.chunks.put_nowait(message["body"])
            if not message.get("more_body", False):
                self.complete = True
                self.chunks.put_nowait(_END)

    async def response_start(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Status and headers, once the app sends them; the app's failure before that is a protocol error."""
        async with _deadline(self.request):
            await asyncio.wait({self.started, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if self.started.done():
            return self.started.result()
        exc = self.task.exception() if not self.task.cancelled() else None
        raise httpx2.RemoteProtocolError(
            "Server disconnected without sending a response.", request=self.request
        ) from exc

    async def body(self) -> AsyncIterator[bytes]:
        """The body's chunks as the app sends them; an app that stops mid-body is a protocol error."""
        while True:
            async with _deadline(self.request):
                getter = asyncio.ensure_future(self.chunks.get())
                try:
                    await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not getter.done():
                        getter.cancel()
            if getter.done() and not getter.cancelled():
                chunk = getter.result()
                if chunk is _END:
                    return
                self.buffered -= len(chunk)
                if self.buffered < SOCKET_BUFFER_BYTES:
                    self.room.set()
                yield chunk
            elif self.chunks.empty():  # the app ended without completing its body
                exc = self.task.exception() if not self.task.cancelled() else None
                raise httpx2.RemoteProtocolError(
                    "peer closed connection without sending complete message body", request=self.request
                ) from exc

    async def close(self) -> None:
        """The client is done: the app sees ``http.disconnect``. An app whose body was complete
        finishes its own work (ledger, billing); one still streaming is stopped, as a client that
        hangs up stops a real server's stream."""
        self.disconnected.set()
        self.room.set()
        if not self.complete and not self.task.done():
            self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class _deadline:
    """``asyncio.timeout`` for the request's read timeout, raising ``httpx2.ReadTimeout``."""

    def __init__(self, request: httpx2.Request) -> None:
        self._request = request
        self._timeout = asyncio.timeout(_read_timeout(request))

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            return await self._timeout.__aexit__(*exc)
        except TimeoutError:
            raise httpx2.ReadTimeout("timed out waiting for the server", request=self._request) from None


class _ResponseStream(httpx2.AsyncByteStream):
    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._exchange.body():
            yield chunk

    async def aclose(self) -> None:
        await self._exchange.close()


class StreamingASGITransport(httpx2.AsyncBaseTransport):
    """Serve each request from ``app`` on the running event loop, streaming the response.

    ``app`` must be an ASGI app whose lifespan (if any) the caller has started, or that needs none.
    """

    def __init__(self, app: ASGIApp, *, client: tuple[str, int] = ("127.0.0.1", 123)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
        exchange = _Exchange(self.app, request, body, self.client)
        try:
            status, headers = await exchange.response_start()
        except BaseException:
            await exchange.close()
            raise
        return httpx2.Response(
            status, headers=headers, stream=_ResponseStream(exchange), extensions={"http_version": b"HTTP/1.1"}
        )


class SyncASGITransport(httpx2.BaseTransport):
    """The same for a synchronous client: each request runs the app on a private virtual-time loop.

    The response is read whole before it is returned (a sync client cannot interleave with the
    app). Time on that loop moves only while a request is being served.
    """

    def __init__(self, app: ASGIApp, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._inner = StreamingASGITransport(app)
        self.loop = loop or virtual_loop()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        content = request.read()

        async def serve() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            proxy = httpx2.Request(
                request.method, request.url, headers=request.headers, content=content, extensions=request.extensions
            )
            response = await self._inner.handle_async_request(proxy)
            try:
                data = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
            finally:
                await response.aclose()
            return response.status_code, list(response.headers.raw), data

        status, headers, data = self.loop.run_until_complete(serve())
        return httpx2.Response(status, headers=headers, content=data, extensions={"http_version": b"HTTP/1.1"})
