"""The simulated Anthropic API: state, the request pipeline, and the HTTP handlers.

One :class:`Simulator` owns everything a real deployment would: the clock, the ledger, the
scripted replies, and the pipeline of stages each request passes through. ``create_app`` turns it
into a Starlette ASGI app.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import traceback
from decimal import Decimal
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..clock import SYSTEM_CLOCK, Clock
from ..models import catalog
from .config import MAX_REQUEST_BYTES, SimulatorConfig
from .errors import APIError, InternalError, InvalidRequest, NotFound, RequestTooLarge
from .exchange import Exchange
from .generation import iter_stream_pieces
from .ledger import Ledger, LedgerRow
from .request import parse_json_body
from .sse import sse_event
from .cache import PromptCache
from .stages import Authenticate, Generate, PromptCaching, Stage, Validate

__all__ = ["Simulator", "create_app", "DroppedConnection"]

log = logging.getLogger("course_utils.mock_provider")


class DroppedConnection(Exception):
    """Raised inside a streaming body to make the server drop the connection mid-stream."""


_ID_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _new_id(prefix: str) -> str:
    """An id in the API's style (``msg_01`` + 22 base58 characters); unique, not reproducible."""
    return f"{prefix}_01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


class Simulator:
    """A simulated provider instance."""

    def __init__(self, config: SimulatorConfig | None = None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config or SimulatorConfig()
        self.clock = clock
        self.ledger = Ledger()
        self.scripted: list[tuple[Any, str]] = []
        self.auth = Authenticate(self.config.require_version_header)
        # Stages between validation and generation (faults, prompt cache, rate limits) plug in here.
        self.cache = PromptCache(clock)
        self.middle: list[Stage] = [PromptCaching(self.cache)]
        self._validate = Validate(self.config)
        self._validate_count = Validate(self.config, for_count=True)
        self._generate = Generate(self.config, self.scripted)

    # ----- configuration used by notebooks -----------------------------------------------------
    def script(self, pattern: Any, reply: str) -> None:
        """Register a scripted reply: when the last user turn matches ``pattern``, answer ``reply``."""
        self.scripted.append((pattern, reply))

    def reset(self) -> None:
        """Forget the ledger and scripted replies (and stage state, where stages support it)."""
        self.ledger.clear()
        self.scripted.clear()
        for stage in self.middle:
            reset = getattr(stage, "reset", None)
            if reset:
                reset()

    # ----- pipeline ------------------------------------------------------------------------------
    def _exchange(self, request: Request, endpoint: str) -> Exchange:
        headers = {k.lower(): v for k, v in request.headers.items()}
        api_key = headers.get("x-api-key")
        if not api_key and headers.get("authorization", "").lower().startswith("bearer "):
            api_key = headers["authorization"][7:].strip() or None
        rid = _new_id("req")
        row = LedgerRow(
            request_id=rid, endpoint=endpoint, method=request.method, api_key=api_key, arrival=self.clock.time()
        )
        return Exchange(request_id=rid, api_key=api_key, headers=headers, row=row, response_headers={"request-id": rid})

    async def _read_body(self, request: Request, ex: Exchange) -> None:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            raise RequestTooLarge(f"Request exceeds the maximum allowed number of bytes ({MAX_REQUEST_BYTES}).")
        raw = bytearray()
        async for chunk in request.stream():
            raw.extend(chunk)
            if len(raw) > MAX_REQUEST_BYTES:
                raise RequestTooLarge(f"Request exceeds the maximum allowed number of bytes ({MAX_REQUEST_BYTES}).")
        ex.body = parse_json_body(bytes(raw))

    def _finish(self, ex: Exchange, status: int, error: APIError | None = None) -> None:
        row = ex.row
        if row.finish is not None:
            return
        row.finish = self.clock.time()
        row.status = status
        if error is not None:
            row.error_type = error.type
        for stage in (self.auth, self._validate, *self.middle, self._generate):
            try:
                stage.after(ex, status)
            except Exception:  # noqa: BLE001 - settlement must never break the response
                log.exception("stage %s failed to settle request %s", type(stage).__name__, ex.request_id)
        if status == 200 and ex.model is not None and row.endpoint == "/v1/messages":
            row.cost_usd = self._cost(row)
        self.ledger.add(row)

    def _cost(self, row: LedgerRow) -> Decimal:
        from ..pricing import cost

        return cost(
            {
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "cache_creation_input_tokens": row.cache_creation_input_tokens,
                "cache_read_input_tokens": row.cache_read_input_tokens,
                "cache_creation": row.extra.get("cache_creation"),
            },
            row.model,
            batch=row.batch,
        )

    def _error_response(self, ex: Exchange, err: APIError) -> JSONResponse:
        self._finish(ex, err.status, err)
        headers = {**ex.response_headers, **err.headers}
        if err.status >= 500 or err.status == 429:
            headers.setdefault("x-should-retry", "true")
        return JSONResponse(err.body(ex.request_id), status_code=err.status, headers=headers)

    def _internal_error(self, ex: Exchange, exc: BaseException) -> JSONResponse:
        log.error("internal error on %s %s: %s", ex.row.endpoint, ex.request_id, "".join(
            traceback.format_exception(exc)))
        return self._error_response(ex, InternalError("Internal server error"))

    async def _run_stages(self, ex: Exchange, *, count_only: bool = False) -> None:
        await self.auth.before(ex)
        if count_only:
            await self._validate_count.before(ex)
            return
        await self._validate.before(ex)
        for stage in self.middle:
            await stage.before(ex)
        await self._generate.before(ex)

    # ----- handlers ------------------------------------------------------------------------------
    async def messages(self, request: Request) -> Response:
        ex = self._exchange(request, "/v1/messages")
        try:
            await self._read_body(request, ex)
            await self._run_stages(ex)
            self._record_usage(ex)
            if ex.request is not None and ex.request.stream:
                return StreamingResponse(
                    self._stream(ex),
                    media_type="text/event-stream",
                    headers={**ex.response_headers, "cache-control": "no-cache"},
                )
            await self._deliver_delay(ex, request)
            body = self._message_json(ex, final=True)
            self._finish(ex, 200)
            return JSONResponse(body, headers=ex.response_headers)
        except APIError as err:
            return self._error_response(ex, err)
        except Exception as exc:  # noqa: BLE001 - a bug is a 500 api_error with a log line, never a crash
            return self._internal_error(ex, exc)

    def _record_usage(self, ex: Exchange) -> None:
        row, usage, gen = ex.row, ex.usage, ex.generated
        row.input_tokens = usage["input_tokens"]
        row.cache_creation_input_tokens = usage["cache_creation_input_tokens"]
        row.cache_read_input_tokens = usage["cache_read_input_tokens"]
        row.extra["cache_creation"] = usage.get("cache_creation")
        row.output_tokens = gen.output_tokens if gen else 0

    async def _deliver_delay(self, ex: Exchange, request: Request) -> None:
        """Wait as long as generating the whole reply takes (non-streaming requests)."""
        assert ex.latency is not None and ex.generated is not None
        await self.clock.sleep(ex.latency.total(ex.generated.output_tokens))

    def _usage_json(self, ex: Exchange, output_tokens: int) -> dict[str, Any]:
        u = ex.usage
        return {
            "input_tokens": u["input_tokens"],
            "cache_creation_input_tokens": u["cache_creation_input_tokens"],
            "cache_read_input_tokens": u["cache_read_input_tokens"],
            "cache_creation": dict(u["cache_creation"]),
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _delta_usage_json(self, ex: Exchange, output_tokens: int) -> dict[str, Any]:
        """``message_delta`` usage: cumulative counts, without the TTL breakdown (as the API sends it)."""
        u = ex.usage
        return {
            "input_tokens": u["input_tokens"],
            "cache_creation_input_tokens": u["cache_creation_input_tokens"],
            "cache_read_input_tokens": u["cache_read_input_tokens"],
            "output_tokens": output_tokens,
        }

    def _message_json(self, ex: Exchange, *, final: bool) -> dict[str, Any]:
        gen = ex.generated
        assert gen is not None and ex.model is not None
        return {
            "id": ex.row.extra.setdefault("message_id", _new_id("msg")),
            "type": "message",
            "role": "assistant",
            "model": ex.model.id,
            "content": gen.content if final else [],
            "stop_reason": gen.stop_reason if final else None,
            "stop_sequence": gen.stop_sequence if final else None,
            "usage": self._usage_json(ex, gen.output_tokens if final else 1),
        }

    async def _stream(self, ex: Exchange) -> AsyncIterator[bytes]:
        gen, plan = ex.generated, ex.latency
        assert gen is not None and plan is not None
        fault = ex.fault
        emitted = 0
        status = 200
        try:
            yield sse_event({"type": "message_start", "message": self._message_json(ex, final=False)})
            start = self.clock.monotonic()
            await self.clock.sleep(plan.ttft)
            open_index = -1
            for index, block, piece in iter_stream_pieces(gen):
                if index != open_index:
                    if open_index >= 0:
                        yield sse_event({"type": "content_block_stop", "index": open_index})
                    yield sse_event({"type": "content_block_start", "index": index, "content_block": _empty(block)})
                    if open_index < 0:
                        yield sse_event({"type": "ping"})
                    open_index = index
                if fault is not None and getattr(fault, "after_tokens", None) is not None and emitted >= fault.after_tokens:
                    if fault.kind == "disconnect":
                        raise DroppedConnection(ex.request_id)
                    if fault.kind == "stream_error":
                        status = fault.status
                        yield sse_event({"type": "error", "error": {"type": fault.error_type, "message": fault.message}})
                        return
                delta = (
                    {"type": "text_delta", "text": piece}
                    if block["type"] == "text"
                    else {"type": "input_json_delta", "partial_json": piece}
                )
                yield sse_event({"type": "content_block_delta", "index": index, "delta": delta})
                emitted += 1
                # Pace against a schedule rather than sleeping per token: cheap at small time scales.
                ahead = start + plan.ttft + plan.per_token * emitted - self.clock.monotonic()
                if ahead > 0.002:
                    await self.clock.sleep(ahead)
            if open_index < 0:
                yield sse_event({"type": "ping"})
            else:
                yield sse_event({"type": "content_block_stop", "index": open_index})
            yield sse_event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": gen.stop_reason, "stop_sequence": gen.stop_sequence},
                    "usage": self._delta_usage_json(ex, gen.output_tokens),
                }
            )
            yield sse_event({"type": "message_stop"})
            emitted = gen.output_tokens
        except (asyncio.CancelledError, GeneratorExit):
            ex.row.disconnected = True
            raise
        except DroppedConnection:
            ex.row.disconnected = True
            raise
        finally:
            # Bill what was actually generated: a client that hangs up early stops the meter.
            ex.row.output_tokens = min(emitted, gen.output_tokens) if emitted else (1 if status == 200 else 0)
            if ex.row.disconnected or status != 200:
                ex.row.output_tokens = max(ex.row.output_tokens, 1)
            self._finish(ex, status)

    async def count_tokens(self, request: Request) -> Response:
        ex = self._exchange(request, "/v1/messages/count_tokens")
        try:
            await self._read_body(request, ex)
            await self._run_stages(ex, count_only=True)
            ex.row.input_tokens = ex.input_tokens_total
            self._finish(ex, 200)
            return JSONResponse({"input_tokens": ex.input_tokens_total}, headers=ex.response_headers)
        except APIError as err:
            return self._error_response(ex, err)
        except Exception as exc:  # noqa: BLE001
            return self._internal_error(ex, exc)

    async def list_models(self, request: Request) -> Response:
        ex = self._exchange(request, "/v1/models")
        try:
            await self.auth.before(ex)
            params = request.query_params
            limit = _int_param(params.get("limit"), "limit", default=20, lo=1, hi=1000)
            models = [_model_json(m) for m in catalog().values()]
            ids = [m["id"] for m in models]
            if params.get("after_id"):
                start = _index_of(ids, params["after_id"], "after_id") + 1
                page = models[start : start + limit]
            elif params.get("before_id"):
                end = _index_of(ids, params["before_id"], "before_id")
                page = models[max(0, end - limit) : end]
            else:
                page = models[:limit]
            has_more = bool(page) and (
                ids.index(page[-1]["id"]) < len(ids) - 1 if not params.get("before_id") else ids.index(page[0]["id"]) > 0
            )
            body = {
                "data": page,
                "has_more": has_more,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            }
            self._finish(ex, 200)
            return JSONResponse(body, headers=ex.response_headers)
        except APIError as err:
            return self._error_response(ex, err)
        except Exception as exc:  # noqa: BLE001
            return self._internal_error(ex, exc)

    async def get_model(self, request: Request) -> Response:
        ex = self._exchange(request, "/v1/models/{model_id}")
        try:
            await self.auth.before(ex)
            model_id = request.path_params["model_id"]
            spec = catalog().get(model_id)
            if spec is None:
                raise NotFound(f"model: {model_id}")
            self._finish(ex, 200)
            return JSONResponse(_model_json(spec), headers=ex.response_headers)
        except APIError as err:
            return self._error_response(ex, err)
        except Exception as exc:  # noqa: BLE001
            return self._internal_error(ex, exc)

    async def not_found(self, request: Request) -> Response:
        ex = self._exchange(request, request.url.path)
        return self._error_response(ex, NotFound(f"Not found: {request.method} {request.url.path}"))

    # ----- introspection (outside /v1/) ----------------------------------------------------------
    async def mock_requests(self, request: Request) -> Response:
        return JSONResponse(self.ledger.records())

    async def mock_usage(self, request: Request) -> Response:
        return JSONResponse(self.ledger.usage_summary())

    async def mock_health(self, request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "seed": self.config.seed, "time_scale": self.config.time_scale,
             "scenario": self.config.scenario, "requests": len(self.ledger)}
        )

    async def mock_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"status": "reset"})


def _empty(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "text":
        return {"type": "text", "text": ""}
    return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}


def _model_json(spec: Any) -> dict[str, Any]:
    return {
        "type": "model",
        "id": spec.id,
        "display_name": spec.display_name,
        "created_at": spec.created_at,
        "lifecycle": "active",
        "max_input_tokens": spec.context_window,
        "max_tokens": spec.max_output,
    }


def _int_param(value: str | None, name: str, *, default: int, lo: int, hi: int) -> int:
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise InvalidRequest(f"{name}: Input should be a valid integer") from None
    if not lo <= n <= hi:
        raise InvalidRequest(f"{name}: Input should be between {lo} and {hi}")
    return n


def _index_of(ids: list[str], value: str, name: str) -> int:
    try:
        return ids.index(value)
    except ValueError:
        raise InvalidRequest(f"{name}: unknown id {value!r}") from None


def create_app(sim: Simulator) -> Starlette:
    """The ASGI app serving ``sim`` with the API's paths."""
    routes = [
        Route("/v1/messages", sim.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", sim.count_tokens, methods=["POST"]),
        Route("/v1/models", sim.list_models, methods=["GET"]),
        Route("/v1/models/{model_id:str}", sim.get_model, methods=["GET"]),
        Route("/mock/requests", sim.mock_requests, methods=["GET"]),
        Route("/mock/usage", sim.mock_usage, methods=["GET"]),
        Route("/mock/health", sim.mock_health, methods=["GET"]),
        Route("/mock/reset", sim.mock_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)

    async def fallback(request: Request, exc: Exception) -> Response:
        return await sim.not_found(request)

    app.add_exception_handler(404, fallback)
    app.add_exception_handler(405, fallback)
    app.state.simulator = sim
    return app
