"""The support desk's HTTP API (Starlette, served by uvicorn on 127.0.0.1): accept fast, answer by events.

Every request authenticates with ``Authorization: Bearer <tenant API key>``: the tenant comes from the
key, through lesson 07's :class:`~course_utils.tenancy.TenantRegistry`, never from a header or field
the caller chooses (a missing, unknown or revoked key gets 401). All store, bus and stats access is
scoped by it.

* ``POST /conversations/{id}/messages`` with an ``Idempotency-Key`` header and a JSON
  body ``{"text": ...}`` (``Content-Type: application/json``): stores the message, publishes
  ``message.received`` and answers **202 Accepted** with the event id at once; the model runs in the
  workers, never in the request. The event id is the message's position in its conversation's stream
  (:meth:`~.workers.Pipeline.accept`), so it tells nothing of other tenants' traffic.
  The endpoint is idempotent (lesson 05's :class:`~course_utils.resilience.Idempotent`): a retry with
  the same key gets the same 202 and the same event id, and no second message, answer or charge;
  the same key with another body gets 422, one still being stored 409.
* ``GET /conversations/{id}/stream``: the conversation's answers as Server-Sent Events in lesson
  02's wire format (``event: delta``/``restart``/``end``/``error``, heartbeat comments, the
  ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` headers). Each event's ``id`` is its
  position in the conversation's topic, so a reconnecting client sends ``Last-Event-ID`` and misses
  nothing. ``?until=<message_id>`` closes the stream after that message's answer.
* ``GET /conversations/{id}``: the tenant's conversation from the store.
* ``GET /stats``: the caller's own SLO figures (its traces only); with the operator key
  (``SupportDesk(operator_key=...)``), the whole service's.
* ``POST /keys/rotate``: a new API key for the caller's tenant; the key the request used is revoked
  at once. ``POST /admin/tenants/{tenant}/rotate`` (operator key): revoke every key of the tenant and
  issue one new one (a leaked key, without a restart).

Limits (each answered in the error shape, before anything is stored): a body over
:data:`MAX_BODY_BYTES` gets 413, as does a ``text`` over :data:`MAX_TEXT_CHARS`; a body that is not
``application/json`` (UTF-8) gets 415; more than ``max_streams_per_tenant`` open streams of one tenant
get 429 with ``Retry-After``; a stream with no event for ``stream_idle_s`` is closed (the client
resumes with ``Last-Event-ID``), and an open stream ends once its key is revoked. Malformed JSON, a
nesting too deep to parse and text that is not valid Unicode (lone surrogates) get 400.

The workers run inside the server's event loop (started and stopped with it); with the Redis bus,
more worker processes can join the same consumer groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import math
from collections import Counter
from typing import Any, AsyncIterator, Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..clock import SYSTEM_CLOCK, Clock
from ..resilience import Idempotent, IdempotencyError, IdempotencyStore
from ..serving import ThreadedServer
from ..streaming import format_comment, format_event
from ..streaming.relay import SSE_HEADERS
from ..tenancy import TenantRegistry, Unauthenticated
from .bus import BusError
from .store import StoreError
from .trace import Span, TraceLog
from .workers import TENANT_NAME, Pipeline, deltas_topic, message_id_for

__all__ = [
    "SupportDesk",
    "create_app",
    "SupportDeskServer",
    "MAX_TEXT_CHARS",
    "MAX_BODY_BYTES",
    "MAX_STREAMS_PER_TENANT",
    "STREAM_IDLE_S",
]

MAX_TEXT_CHARS = 8_000
"""Longest message accepted (characters); longer ones get 413 before anything is stored."""

MAX_BODY_BYTES = 128 * 1024
"""Largest request body read (bytes); a larger one gets 413 unread. Room for MAX_TEXT_CHARS characters
even when each is written as a JSON escaped surrogate pair (12 bytes)."""

MAX_STREAMS_PER_TENANT = 32
"""Default cap on one tenant's open SSE streams; one more gets 429 (a tenant cannot hold every connection)."""

STREAM_IDLE_S = 300.0
"""Default seconds a stream stays open with no event (heartbeats do not count); then it closes."""

RELAYED = ("delta", "restart", "end", "error")
"""Event types a stream relays (a conversation's topic also carries the API's ``accepted`` markers)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class SupportDesk:
    """What the service runs: a :class:`~.workers.Pipeline`, who its callers are, and the API's limits.

    ``operator_key``: a credential for the operator's view of ``/stats`` (every tenant) and key
    revocation; kept as a digest. None: no operator endpoints.
    """

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
        operator_key: str | None = None,
        max_streams_per_tenant: int = MAX_STREAMS_PER_TENANT,
        stream_idle_s: float = STREAM_IDLE_S,
    ) -> None:
        if max_streams_per_tenant < 1 or not stream_idle_s > 0 or not heartbeat_s > 0:
            raise ValueError("max_streams_per_tenant must be >= 1, stream_idle_s and heartbeat_s > 0")
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
        self._operator = _digest(operator_key) if operator_key else None
        self.max_streams_per_tenant = int(max_streams_per_tenant)
        self.stream_idle_s = float(stream_idle_s)
        self.open_streams: dict[str, int] = {}
        """Open SSE streams per tenant (the server's event loop is the only writer)."""

    def is_operator(self, key: str) -> bool:
        """True if ``key`` is the operator key (compared as digests, in constant time)."""
        return self._operator is not None and hmac.compare_digest(_digest(key), self._operator)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


UNAUTHENTICATED = "an Authorization: Bearer <API key> header with a valid tenant API key is required"
BAD_CONVERSATION = "a conversation id is 1-64 letters, digits, '_', '.' or '-'"


def _bearer(request: Request) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def _tenant_of(key: str, registry: TenantRegistry) -> str | None:
    """The tenant of API key ``key``, or ``None`` (the caller answers 401)."""
    try:
        tenant = registry.authenticate(key).tenant_id
    except Unauthenticated:
        return None
    return tenant if TENANT_NAME.fullmatch(tenant) else None


def _conversation(request: Request) -> str | None:
    cid = request.path_params["conversation_id"]
    return cid if TENANT_NAME.fullmatch(cid) else None


def _json_content_type(value: str) -> bool:
    """True for ``application/json``, optionally with ``charset=utf-8`` (JSON is UTF-8: RFC 8259)."""
    media, *params = (part.strip() for part in value.split(";"))
    if media.lower() != "application/json":
        return False
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is longer than ``limit`` bytes (the rest is never read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_message(raw: bytes) -> str | JSONResponse:
    """The message's text, or the 400/413 to answer."""
    try:
        body = json.loads(raw.decode("utf-8") or "null")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting too deep to parse
        return _error(400, 'the body must be JSON (UTF-8): {"text": "..."}')
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"].strip():
        return _error(400, "the body must be a JSON object with a non-empty string `text`")
    text = body["text"]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" is valid JSON but no Unicode text: nothing could store it
        return _error(400, "`text` must be valid Unicode (it contains a lone surrogate escape such as \\ud800)")
    if len(text) > MAX_TEXT_CHARS:
        return _error(413, f"`text` is longer than {MAX_TEXT_CHARS} characters")
    return text


class _CountedStream(StreamingResponse):
    """A stream that gives its tenant's slot back however it ends (done, idle, client gone, shutdown)."""

    def __init__(self, content: AsyncIterator[bytes], release: Any) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
            with contextlib.suppress(Exception):
                await self.body_iterator.aclose()  # type: ignore[union-attr]


def _json_ready(figures: Mapping[str, float]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in figures.items()}  # NaN: not JSON


def _tenant_stats(pipeline: Pipeline, tenant: str) -> dict[str, Any]:
    """The SLO figures of ``tenant``'s own requests: nothing another tenant did moves them."""
    traces = [t for t in pipeline.traces.traces if t.tenant == tenant]
    answered = Counter(
        str(s.attrs["link"]) for t in traces for s in t.spans if s.stage == "model" and s.attrs.get("link")
    )
    return {
        "scope": "tenant",
        "tenant": tenant,
        "slo": _json_ready(TraceLog(traces).slo()),
        "answered_by": dict(answered),
        "replayed_answers": pipeline.replayed_by_tenant.get(tenant, 0),
    }


def create_app(desk: SupportDesk) -> Starlette:
    """The service as a Starlette app (see the module docstring)."""
    pipeline = desk.pipeline

    async def post_message(request: Request) -> Response:
        arrived = desk.clock.time()
        tenant, cid = _tenant_of(_bearer(request), desk.registry), _conversation(request)
        if tenant is None:
            return _error(401, UNAUTHENTICATED)
        if cid is None:
            return _error(400, BAD_CONVERSATION)
        key = request.headers.get("idempotency-key", "").strip()
        if not key or len(key) > 255:
            return _error(400, "an Idempotency-Key header is required (1-255 characters), the same on every retry")
        if not _json_content_type(request.headers.get("content-type", "")):
            return _error(415, "the body must be sent as Content-Type: application/json (UTF-8)")
        raw = await _read_body(request, MAX_BODY_BYTES)
        if raw is None:
            return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        text = _parse_message(raw)
        if isinstance(text, Response):
            return text
        message_id = message_id_for(tenant, key)

        async def accept(_: Any) -> dict[str, Any]:
            api = Span("api", arrived, desk.clock.time(), {"idempotency_key": key}).to_dict()
            event_id = await pipeline.accept(tenant, cid, text, message_id=message_id, trace=[api])
            return {"event_id": event_id, "message_id": message_id, "conversation_id": cid}

        try:
            accepted = await desk.idempotent.acall(f"{tenant}:{key}", {"conversation_id": cid, "text": text}, accept)
        except IdempotencyError as exc:
            return _error(exc.status, str(exc))
        except StoreError as exc:
            return _error(409, str(exc))
        location = f"/conversations/{cid}/stream?until={message_id}"
        return JSONResponse(accepted, status_code=202, headers={"Location": location})

    async def stream(request: Request) -> Response:
        key = _bearer(request)
        tenant, cid = _tenant_of(key, desk.registry), _conversation(request)
        if tenant is None:
            return _error(401, UNAUTHENTICATED)
        if cid is None:
            return _error(400, BAD_CONVERSATION)
        after = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        until = request.query_params.get("until")
        topic = deltas_topic(tenant, cid)
        try:
            await pipeline.bus.tail(topic, after, count=1)  # validates `after` before the 200
        except BusError as exc:
            return _error(400, str(exc))
        if desk.open_streams.get(tenant, 0) >= desk.max_streams_per_tenant:
            return _error(
                429,
                f"tenant {tenant!r} already has {desk.max_streams_per_tenant} open streams; close one first",
                headers={"Retry-After": str(max(1, math.ceil(desk.heartbeat_s)))},
            )
        desk.open_streams[tenant] = desk.open_streams.get(tenant, 0) + 1

        def release() -> None:
            left = desk.open_streams.get(tenant, 1) - 1
            if left > 0:
                desk.open_streams[tenant] = left
            else:
                desk.open_streams.pop(tenant, None)

        async def events() -> AsyncIterator[bytes]:
            cursor = after
            last_event = desk.clock.monotonic()
            yield format_comment("connected")
            while True:
                if _tenant_of(key, desk.registry) != tenant:  # the key was revoked: stop serving it
                    yield format_comment("closed: the API key was revoked")
                    return
                idle_left = desk.stream_idle_s - (desk.clock.monotonic() - last_event)
                if idle_left <= 0:
                    yield format_comment(f"closed: no event for {desk.stream_idle_s:g} s; reconnect with Last-Event-ID")
                    return
                wait = min(desk.heartbeat_s, idle_left)
                batch = await pipeline.bus.tail(topic, cursor, count=200, block_s=wait)
                if not batch:
                    yield format_comment("heartbeat")
                    continue
                last_event = desk.clock.monotonic()
                for event in batch:
                    cursor = event.id
                    kind = str(event.data.get("type", "delta"))
                    if kind not in RELAYED:  # the API's own markers
                        continue
                    payload = {k: v for k, v in event.data.items() if k != "type"}
                    yield format_event(payload, event=kind, id=event.id)
                    if until and event.data.get("message_id") == until and kind in ("end", "error"):
                        return

        return _CountedStream(events(), release)

    async def get_conversation(request: Request) -> Response:
        tenant, cid = _tenant_of(_bearer(request), desk.registry), _conversation(request)
        if tenant is None:
            return _error(401, UNAUTHENTICATED)
        if cid is None:
            return _error(400, BAD_CONVERSATION)
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
        key = _bearer(request)
        if desk.is_operator(key):
            return JSONResponse(
                {
                    "scope": "all",
                    "slo": _json_ready(pipeline.traces.slo()),
                    "model_calls": pipeline.model_calls,
                    "replayed_answers": pipeline.replayed_answers,
                    "answered_by": pipeline.answered_by,
                    "breakers": {str(k): v for k, v in pipeline.breakers.states().items()},
                    "open_streams": dict(desk.open_streams),
                    "bus": pipeline.bus.name,
                }
            )
        tenant = _tenant_of(key, desk.registry)
        if tenant is None:
            return _error(401, UNAUTHENTICATED)
        return JSONResponse(_tenant_stats(pipeline, tenant))

    async def rotate_own_key(request: Request) -> Response:
        try:
            new_key = desk.registry.rotate_key(_bearer(request))
        except Unauthenticated:
            return _error(401, UNAUTHENTICATED)
        return JSONResponse({"api_key": new_key, "revoked": "the key this request used"})

    async def rotate_tenant_keys(request: Request) -> Response:
        if not desk.is_operator(_bearer(request)):
            return _error(401, "an Authorization: Bearer <operator key> header is required")
        tenant = request.path_params["tenant_id"]
        if tenant not in desk.registry:
            return _error(404, f"no tenant {tenant!r}")
        revoked = desk.registry.revoke_tenant_keys(tenant)
        return JSONResponse({"tenant": tenant, "revoked_keys": revoked, "api_key": desk.registry.issue_key(tenant)})

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

    async def http_error(request: Request, exc: Exception) -> Response:
        # The router's own 404 (no such path) and 405 (wrong method), in the service's error shape.
        status = exc.status_code if isinstance(exc, HTTPException) else 400
        detail = exc.detail if isinstance(exc, HTTPException) else "bad request"
        return _error(status, detail, headers=getattr(exc, "headers", None))

    return Starlette(
        exception_handlers={HTTPException: http_error},
        routes=[
            Route("/conversations/{conversation_id}/messages", post_message, methods=["POST"]),
            Route("/conversations/{conversation_id}/stream", stream, methods=["GET"]),
            Route("/conversations/{conversation_id}", get_conversation, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/keys/rotate", rotate_own_key, methods=["POST"]),
            Route("/admin/tenants/{tenant_id}/rotate", rotate_tenant_keys, methods=["POST"]),
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
