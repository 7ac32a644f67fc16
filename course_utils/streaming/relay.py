"""A streaming relay: the model's stream, re-served as Server-Sent Events to browser clients.

``POST /stream`` with a JSON body ``{"prompt": ...}`` answers ``text/event-stream``. POST, not
``GET /stream?prompt=``: a query string lands in access logs, proxy logs and browser history, and a
prompt is user data. (The price: the browser's ``EventSource`` only does GET, so the page reads the
stream with ``fetch`` and parses it itself.) The events:

* ``event: thinking`` once, when the model starts a ``thinking`` block before any text (the 5.x
  models think by default): the page shows "thinking…" instead of an unexplained silence;
* ``event: delta`` (``data: {"text": ...}``, ``id:`` = characters sent so far) per piece of text;
* ``: heartbeat`` comment lines whenever nothing was sent for ``heartbeat_s`` (proxies and load
  balancers close connections that look idle, typically after 30 to 60 s);
* ``event: end`` with the stop reason and the output tokens: without it a browser's
  ``EventSource`` treats the closed connection as a failure and *reconnects*, asking (and paying
  for) the same question again;
* ``event: refusal`` instead of ``end`` when the model stops with ``stop_reason: "refusal"`` (a
  streaming classifier intervened): ``retract: true`` tells the page to withdraw the text it showed,
  and the relay keeps that text out of the conversation history, because the documentation says
  to reset the context (remove or update the refused turn) before continuing;
* ``event: error`` when the upstream fails mid-stream, saying how much text was already sent, so
  the client can mark the answer as partial instead of silently showing half a reply as whole.

Metering: the final ``usage`` arrives in the last ``message_delta``. A stream the relay cancels
never receives it, so the record then meters output tokens by *estimate* (tokens of the text and
thinking received so far, :attr:`RelayRecord.usage_source` ``"estimated"``); input tokens come
from ``message_start``, which every stream receives first.

Headers: ``Cache-Control: no-cache`` (no cache may store or coalesce the stream) and
``X-Accel-Buffering: no`` (nginx and friends would otherwise buffer the whole response, which is
the "streaming that arrives all at once" bug).

Between the upstream reader and the client sits a bounded :class:`~.backpressure.DeltaQueue`, and
a client that disconnects makes the relay close its upstream request. What the provider then bills
is not documented; the simulator stops generating at the disconnect, and its ledger shows what it
generated. ``cancel_on_disconnect=False`` gives the naive relay, which reads the reply to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..clock import SYSTEM_CLOCK, Clock
from ..serving import HOST, ThreadedServer
from ..tokens import count_text
from .backpressure import DeltaQueue
from .sse import format_comment, format_event

__all__ = ["RelayConfig", "RelayRecord", "create_relay_app", "RelayServer", "SSE_HEADERS", "HOST", "REFUSAL_MESSAGE"]

STATIC = Path(__file__).with_name("static")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""Sent with every event stream (the media type comes from the response itself)."""

log = logging.getLogger("course_utils.streaming.relay")


@dataclass
class RelayConfig:
    """How the relay asks the model and serves the stream."""

    model: str = "claude-haiku-5-5"
    max_tokens: int = 400
    heartbeat_s: float = 15.0
    queue_size: int = 32
    policy: str = "pause"
    cancel_on_disconnect: bool = True
    """False = the naive relay: after the client leaves, keep reading the upstream to the end."""
    forward_fault_header: bool = True
    """Pass ``x-mock-fault`` / ``x-mock-shape`` (headers, or ``fault`` / ``shape`` in the JSON body) to the
    upstream: simulator teaching knobs."""
    clock: Clock = SYSTEM_CLOCK


@dataclass
class RelayRecord:
    """The relay's own account of one stream: what it sent, and how it ended."""

    id: str
    prompt: str
    status: str = "streaming"
    """``streaming``, ``completed``, ``refused``, ``upstream_error`` or ``client_disconnected``."""
    sent_chars: int = 0
    sent_text: str = ""
    received_chars: int = 0
    received_text: str = ""
    thinking_text: str = ""
    input_tokens: int | None = None
    """From ``message_start`` (every stream gets it first)."""
    output_tokens: int | None = None
    """The reply's output tokens as the API reported them (final ``message_delta``); None if it never came."""
    stop_reason: str | None = None
    stop_details: dict[str, Any] | None = None
    first_event_s: float | None = None
    """Seconds from the request to the first upstream event (``message_start``)."""
    first_thinking_s: float | None = None
    """Seconds to the start of a ``thinking`` block (None if the reply did not think)."""
    first_text_s: float | None = None
    """Seconds to the first text delta: the time to first token a user feels."""
    retracted: bool = False
    """True when the text shown was withdrawn (a refusal) and kept out of the history."""
    http_version: str | None = None
    """The HTTP version of the client's connection, as the server reports it (``scope["http_version"]``)."""
    asgi_spec_version: str | None = None
    """The ASGI HTTP spec version the server reports (``scope["asgi"]["spec_version"]``): from 2.4 a
    ``send`` after the client left raises ``OSError``; before, only ``http.disconnect`` says so."""
    error_type: str | None = None
    error_message: str | None = None
    heartbeats: int = 0
    upstream_closed: bool = False
    queue: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "usage_source": self.usage_source, "metered_output_tokens": self.metered_output_tokens}

    @property
    def usage_source(self) -> str:
        """``"reported"`` when the final usage arrived, else ``"estimated"`` (a cancelled or failed stream)."""
        return "reported" if self.output_tokens is not None else "estimated"

    @property
    def estimated_output_tokens(self) -> int:
        """Output tokens estimated from what the relay received: its text and thinking, counted offline.

        A lower bound: tokens in flight when the stream was cut, and thinking the API did not show
        (omitted thinking text), are billed but never seen.
        """
        return count_text(self.received_text) + count_text(self.thinking_text)

    @property
    def metered_output_tokens(self) -> int:
        """What the relay meters: the reported count when there is one, else the estimate."""
        return self.output_tokens if self.output_tokens is not None else self.estimated_output_tokens

    @property
    def history_text(self) -> str | None:
        """The assistant text to keep in the conversation: None after a refusal (reset the turn)."""
        return None if self.retracted else self.sent_text


_HEARTBEAT = object()
_THINKING = "\x00thinking"
"""Queued (as a str, so the queue's byte accounting holds) when the model starts thinking."""
REFUSAL_MESSAGE = "The model declined to continue this answer, so the text shown so far was withdrawn."
"""Shown when a refusal carries no explanation (``stop_details`` may be missing or null)."""


def _error_type(exc: BaseException) -> tuple[str, str]:
    """The API error type of an upstream failure (an ``event: error`` or a dropped connection)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        if isinstance(err, dict) and err.get("type"):
            return str(err["type"]), str(err.get("message", ""))
    name = type(exc).__name__
    if "Protocol" in name or "Connect" in name or "Read" in name:
        return "upstream_disconnected", "the connection to the model was lost mid-stream"
    return "api_error", f"{name}: {exc}"


async def _items_or_heartbeats(queue: DeltaQueue, interval: float, clock: Clock) -> AsyncIterator[Any]:
    """Yield queued deltas, or ``_HEARTBEAT`` whenever ``interval`` passes without one; stop at the end."""
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(queue.get())
            tick = asyncio.ensure_future(clock.sleep(interval))
            try:
                done, _ = await asyncio.wait({pending, tick}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                tick.cancel()
            if pending in done:
                item, pending = pending.result(), None
                if item is None:
                    return
                yield item
            else:
                yield _HEARTBEAT
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


async def _drain(queue: DeltaQueue) -> None:
    while await queue.get() is not None:
        pass


def create_relay_app(upstream: Callable[[], Any], config: RelayConfig | None = None) -> Starlette:
    """The relay as a Starlette app. ``upstream()`` returns an ``AsyncAnthropic`` client; it is
    called once at startup, inside the server's event loop, and closed at shutdown."""
    cfg = config or RelayConfig()
    state: dict[str, Any] = {"client": None, "background": set()}
    records: list[RelayRecord] = []

    async def read_upstream(record: RelayRecord, queue: DeltaQueue, headers: dict[str, str], started: float) -> None:
        def now() -> float:
            return cfg.clock.monotonic() - started

        try:
            async with state["client"].messages.stream(
                model=cfg.model,
                max_tokens=cfg.max_tokens,
                messages=[{"role": "user", "content": record.prompt}],
                extra_headers=headers or None,
            ) as stream:
                async for event in stream:
                    if record.first_event_s is None:
                        record.first_event_s = now()
                    if event.type == "message_start":
                        record.input_tokens = event.message.usage.input_tokens
                    elif event.type == "content_block_start" and event.content_block.type == "thinking":
                        if record.first_thinking_s is None and record.first_text_s is None:
                            record.first_thinking_s = now()
                            await queue.put(_THINKING)
                    elif event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                        record.thinking_text += event.delta.thinking
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if record.first_text_s is None:
                            record.first_text_s = now()
                        record.received_chars += len(event.delta.text)
                        record.received_text += event.delta.text
                        await queue.put(event.delta.text)
                    elif event.type == "message_delta":
                        # Cumulative, per the streaming docs: the last one is the reply's total.
                        record.output_tokens = event.usage.output_tokens
                        record.stop_reason = event.delta.stop_reason
                        details = getattr(event.delta, "stop_details", None)
                        if details is not None:
                            record.stop_details = (
                                details.model_dump() if hasattr(details, "model_dump") else dict(details)
                            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any upstream failure becomes an error event
            record.error_type, record.error_message = _error_type(exc)
        finally:
            # Leaving the `async with` closed the HTTP response: the provider sees the disconnect.
            record.upstream_closed = True
            await queue.close()

    async def events(record: RelayRecord, headers: dict[str, str]) -> AsyncIterator[bytes]:
        queue = DeltaQueue(cfg.queue_size, cfg.policy, clock=cfg.clock)
        reader = asyncio.create_task(read_upstream(record, queue, headers, cfg.clock.monotonic()))
        finished = False
        try:
            yield format_comment("connected")
            async with contextlib.aclosing(_items_or_heartbeats(queue, cfg.heartbeat_s, cfg.clock)) as items:
                async for item in items:
                    if item is _HEARTBEAT:
                        record.heartbeats += 1
                        yield format_comment("heartbeat")
                        continue
                    if item.startswith(_THINKING):  # (coalesce may have appended text to the marker)
                        yield format_event({"state": "thinking"}, event="thinking")
                        item = item[len(_THINKING) :]
                        if not item:
                            continue
                    record.sent_text += item
                    record.sent_chars += len(item)
                    yield format_event({"text": item}, event="delta", id=str(record.sent_chars))
            await reader  # already finished: the queue is closed only when the reader ends
            if record.error_type is not None:
                record.status = "upstream_error"
                yield format_event(
                    {
                        "type": record.error_type,
                        "message": record.error_message,
                        "partial": True,
                        "sent_chars": record.sent_chars,
                    },
                    event="error",
                )
            elif record.stop_reason == "refusal":
                # The docs: reset the context (remove or update the refused turn) before continuing.
                record.status, record.retracted = "refused", True
                details = record.stop_details or {}
                yield format_event(
                    {
                        "retract": True,
                        "sent_chars": record.sent_chars,
                        "category": details.get("category"),
                        "message": details.get("explanation") or REFUSAL_MESSAGE,
                        "output_tokens": record.output_tokens,
                    },
                    event="refusal",
                )
            else:
                record.status = "completed"
                yield format_event(
                    {
                        "stop_reason": record.stop_reason,
                        "output_tokens": record.output_tokens,
                        "sent_chars": record.sent_chars,
                    },
                    event="end",
                )
            finished = True
        finally:
            record.queue = queue.stats.summary()
            if not finished:
                record.status = "client_disconnected"
                if not reader.done():
                    if cfg.cancel_on_disconnect:
                        # Don't await it: the server may keep cancelling this task while it unwinds.
                        reader.cancel()
                    else:
                        # The naive relay "finishes the reply so it can be logged": the model keeps
                        # generating, and billing, for nobody.
                        drain = asyncio.ensure_future(_drain(queue))
                        state["background"].add(drain)
                        drain.add_done_callback(state["background"].discard)

    async def stream(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            return JSONResponse({"error": 'the JSON body must be {"prompt": "<non-empty text>"}'}, status_code=400)
        prompt = prompt.strip()
        headers: dict[str, str] = {}
        if cfg.forward_fault_header:
            for name in ("x-mock-fault", "x-mock-shape"):
                value = request.headers.get(name) or (
                    body.get(name[len("x-mock-") :]) if isinstance(body, dict) else None
                )
                if value:
                    headers[name] = str(value)
        record = RelayRecord(
            id=uuid.uuid4().hex[:12],
            prompt=prompt,
            http_version=request.scope.get("http_version"),
            asgi_spec_version=(request.scope.get("asgi") or {}).get("spec_version"),
        )
        records.append(record)
        return StreamingResponse(events(record, headers), media_type="text/event-stream", headers=SSE_HEADERS)

    async def page(request: Request) -> Response:
        return HTMLResponse((STATIC / "chat.html").read_text(encoding="utf-8"))

    async def list_records(request: Request) -> Response:
        return JSONResponse([r.to_dict() for r in records])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["client"] = upstream()
        try:
            yield
        finally:
            for task in list(state["background"]):
                task.cancel()
            close = getattr(state["client"], "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/stream", stream, methods=["POST"]),
            Route("/records", list_records, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.records = records
    app.state.config = cfg
    return app


class RelayServer(ThreadedServer):
    """The relay served by uvicorn on 127.0.0.1 in a daemon thread (as the simulator is).

    ``with RelayServer(lambda: server.async_client()) as relay: relay.url`` — stops cleanly on exit.
    """

    def __init__(self, upstream: Callable[[], Any], config: RelayConfig | None = None, *, port: int = 0) -> None:
        super().__init__(
            create_relay_app(upstream, config), name="sse-relay", port=port, backlog=128, graceful_timeout=1
        )

    def start(self, timeout: float = 10.0) -> "RelayServer":
        """Bind a free port on 127.0.0.1 and serve until :meth:`stop`."""
        super().start(timeout)
        return self

    def __enter__(self) -> "RelayServer":
        return self.start()

    @property
    def url(self) -> str:
        """The relay's address (``http://127.0.0.1:<port>``)."""
        return self.base_url

    @property
    def records(self) -> list[RelayRecord]:
        """The relay's account of every stream it served."""
        return list(self.app.state.records)
