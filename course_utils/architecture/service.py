"""The support desk's HTTP API (Starlette, served by uvicorn on 127.0.0.1): accept fast, answer by events.

Every request authenticates with ``Authorization: Bearer <tenant API key>``: the tenant comes from the
key, through lesson 07's :class:`~course_utils.tenancy.TenantRegistry`, never from a header or field
the caller chooses (a missing or unknown key gets 401). All store and bus access is scoped by it.

* ``POST /conversations/{id}/messages`` with an ``Idempotency-Key`` header and a JSON
  body ``{"text": ...}``: stores the message, publishes ``message.received`` and answers
  **202 Accepted** with the event id at once; the model runs in the workers, never in the request.
  The endpoint is idempotent (lesson 05's :class:`~course_utils.resilience.Idempotent`): a retry with
  the same key gets the same 202 and the same event id, and no second message, answer or charge;
  the same key with another body gets 422, one still being stored 409.
* ``GET /conversations/{id}/stream``: the conversation's answers as Server-Sent Events in lesson
  02's wire format (``event: delta``/``restart``/``end``/``error``, heartbeat comments, the
  ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` headers). Each event's ``id`` is its bus
  id, so a reconnecting client sends ``Last-Event-ID`` and misses nothing. ``?until=<message_id>``
  closes the stream after that message's answer.
* ``GET /conversations/{id}``: the tenant's conversation from the store. ``GET /stats``: the SLO figures.

The workers run inside the server's event loop (started and stopped with it); with the Redis bus,
more worker processes can join the same consumer groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, AsyncIterator, Mapping

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..clock import SYSTEM_CLOCK, Clock
from ..resilience import Idempotent, IdempotencyError, IdempotencyStore
from ..serving import ThreadedServer
from ..streaming import format_comment, format_event
from ..streaming.relay import SSE_HEADERS
from ..tenancy import TenantRegistry, Unauthenticated
from .store import StoreError
from .trace import Span
from .workers import TENANT_NAME, Pipeline, deltas_topic, message_id_for

__all__ = ["SupportDesk", "create_app", "SupportDeskServer", "MAX_TEXT_CHARS"]

MAX_TEXT_CHARS = 8_000
"""Longest message accepted (characters); longer ones get 413 before anything is stored."""


class SupportDesk:
    """What the service runs: a :class:`~.workers.Pipeline` and the idempotency records of its API."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        registry: TenantRegistry,
        idempotency: IdempotencyStore | None = None,
        consumers: Mapping[str, int] | None = None,
        heartbeat_s: float = 15.0,
        run_workers: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.pipeline = pipeline
        self.registry = registry
        """Who the callers are: each request's API key names its tenant (lesson 07)."""
        self.clock = clock
        # `is None`, not `or`: an empty IdempotencyStore has len() 0 and is falsy.
        store = idempotency if idempotency is not None else IdempotencyStore(clock=clock)
        self.idempotent = Idempotent(store, wait_s=5.0, clock=clock)
        self.consumers = dict(consumers or {})
        self.heartbeat_s = heartbeat_s
        self.run_workers = run_workers
        """False serves the API only: workers run elsewhere (other processes on the Redis bus)."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)


UNAUTHENTICATED = "an Authorization: Bearer <API key> header with a valid tenant API key is required"


def _tenant(request: Request, registry: TenantRegistry) -> str | None:
    """The authenticated tenant of ``request``, or ``None`` (the caller answers 401)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        tenant = registry.authenticate(key.strip()).tenant_id
    except Unauthenticated:
        return None
    return tenant if TENANT_NAME.fullmatch(tenant) else None


def _conversation(request: Request) -> str | None:
    cid = request.path_params["conversation_id"]
    return cid if TENANT_NAME.fullmatch(cid) else None


def create_app(desk: SupportDesk) -> Starlette:
    """The service as a Starlette app (see the module docstring)."""
    pipeline = desk.pipeline

    async def post_message(request: Request) -> Response:
        arrived = desk.clock.time()
        tenant, cid = _tenant(request, desk.registry), _conversation(request)
        if tenant is None:
            return _error(401, UNAUTHENTICATED)
        if cid is None:
            return _error(400, "a conversation id is 1-64 letters, digits, '_', '.' or '-'")
        key = request.headers.get("idempotency-key", "").strip()
        if not key or len(key) > 255:
            return _error(400, "an Idempotency-Key header is required (1-255 characters), the same on every retry")
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            return _error(400, 'the body must be JSON: {"text": "..."}')
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"].strip():
            return _error(400, "the body must be a JSON object with a non-empty string `text`")
        if len(body["text"]) > MAX_TEXT_CHARS:
            return _error(413, f"`text` is longer than {MAX_TEXT_CHARS} characters")
        message_id = message_id_for(tenant, key)

        async def accept(_: Any) -> dict[str, Any]:
            api = Span("api", arrived, desk.clock.time(), {"idempotency_key": key}).to_dict()
            event_id = await pipeline.submit(tenant, cid, body["text"], message_id=message_id, trace=[api])
            return {"event_id": event_id, "message_id": message_id, "conversation_id": cid}

        try:
            accepted = await desk.idempotent.acall(
                f"{tenant}:{key}", {"conversation_id": cid, "text": body["text"]}, accept
            )
        except IdempotencyError as exc:
            return _error(exc.status, str(exc))
        except StoreError as exc:
            return _error(409, str(exc))
        location = f"/conversations/{cid}/stream?until={message_id}"
        return JSONResponse(accepted, status_code=202, headers={"Location": location})

    async def stream(request: Request) -> Response:
        tenant, cid = _tenant(request, desk.registry), _conversation(request)
        if tenant is None:
            return _error(401, UNAUTHENTICATED)
        if cid is None:
            return _error(400, "a conversation id is 1-64 letters, digits, '_', '.' or '-'")
        after = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        until = request.query_params.get("until")
        topic = deltas_topic(tenant, cid)
        try:
            await pipeline.bus.tail(topic, after, count=1)  # validates `after` before the 200
        except ValueError as exc:
            return _error(400, str(exc))

        async def events() -> AsyncIterator[bytes]:
            cursor = after
            yield format_comment("connected")
            while True:
                batch = await pipeline.bus.tail(topic, cursor, count=200, block_s=desk.heartbeat_s)
                if not batch:
                    yield format_comment("heartbeat")
                    continue
                for event in batch:
                    cursor = event.id
                    kind = str(event.data.get("type", "delta"))
                    payload = {k: v for k, v in event.data.items() if k != "type"}
                    yield format_event(payload, event=kind, id=event.id)
                    if until and event.data.get("message_id") == until and kind in ("end", "error"):
                        return

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def get_conversation(request: Request) -> Response:
        tenant, cid = _tenant(request, desk.registry), _conversation(request)
        if tenant is None:
            return _error(401, UNAUTHENTICATED)
        if cid is None:
            return _error(400, "a conversation id is 1-64 letters, digits, '_', '.' or '-'")
        messages = pipeline.store.messages(tenant, cid)
        if not messages:
            return _error(404, f"tenant {tenant!r} has no conversation {cid!r}")
        return JSONResponse(
            {
                "conversation_id": cid,
                "messages": [
                    {"message_id": m.message_id, "role": m.role, "content": m.content, "reply_to": m.reply_to}
                    for m in messages
                ],
            }
        )

    async def stats(request: Request) -> Response:
        slo = {k: (None if v != v else v) for k, v in pipeline.traces.slo().items()}  # NaN is not JSON
        return JSONResponse(
            {
                "slo": slo,
                "model_calls": pipeline.model_calls,
                "replayed_answers": pipeline.replayed_answers,
                "answered_by": pipeline.answered_by,
                "breakers": {str(k): v for k, v in pipeline.breakers.states().items()},
                "bus": pipeline.bus.name,
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        runner = asyncio.create_task(pipeline.run(stop, consumers=desk.consumers)) if desk.run_workers else None
        try:
            yield
        finally:
            stop.set()
            if runner is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(runner, 5.0)
            await pipeline.aclose()  # the clients' connections belong to this loop: close them in it
            await pipeline.bus.close()

    return Starlette(
        routes=[
            Route("/conversations/{conversation_id}/messages", post_message, methods=["POST"]),
            Route("/conversations/{conversation_id}/stream", stream, methods=["GET"]),
            Route("/conversations/{conversation_id}", get_conversation, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


class SupportDeskServer(ThreadedServer):
    """The service on 127.0.0.1 in a daemon thread: ``with SupportDeskServer(desk) as srv: srv.base_url``."""

    def __init__(self, desk: SupportDesk, *, port: int = 0) -> None:
        super().__init__(create_app(desk), name="support-desk", port=port, backlog=256, graceful_timeout=1)
        self.desk = desk

    def __enter__(self) -> "SupportDeskServer":
        self.start()
        return self
