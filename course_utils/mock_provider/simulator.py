"""The simulated Anthropic API: state, the request pipeline, and the HTTP handlers.

One :class:`Simulator` owns everything a real deployment would: the clock, the ledger, the
scripted replies, and the pipeline of stages each request passes through. ``create_app`` turns it
into a Starlette ASGI app.
"""

from __future__ import annotations

import asyncio
import json
import contextlib
import logging
import math
import secrets
import traceback
from decimal import Decimal
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..clock import SYSTEM_CLOCK, Clock
from ..models import catalog
from .batches import MAX_BATCH_BYTES
from .config import MAX_REQUEST_BYTES, SimulatorConfig
from .errors import APIError, InternalError, InvalidRequest, NotFound, Overloaded, RequestTooLarge
from .exchange import Exchange
from .generation import iter_stream_pieces
from .ledger import Ledger, LedgerRow
from .request import parse_json_body
from .sse import sse_event
from .batches import BatchOptions, BatchStore
from .cache import PromptCache
from .faults import FaultInjector, Scenario, get_scenario
from .ratelimit import RateLimiter, RateLimits
from .stages import Authenticate, EnforceRateLimits, Generate, InjectFaults, PromptCaching, Stage, Validate

__all__ = ["Simulator", "create_app", "DroppedConnection"]

log = logging.getLogger("course_utils.mock_provider")


def mask_key(api_key: str | None) -> str | None:
    """How a key appears in the ledger: simulator keys as they are (they name tenants), anything
    that looks like a real Anthropic key reduced to its last four characters, so a student who
    points a real key at the simulator never sees it printed back."""
    if api_key and api_key.startswith("sk-ant-"):
        return f"sk-ant-...{api_key[-4:]}"
    return api_key


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
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop serving requests (set when the app starts), for introspection."""
        self.ledger = Ledger()
        self.scripted: list[tuple[Any, str]] = []
        self.auth = Authenticate(self.config.require_version_header)
        # Stages between validation and generation (faults, prompt cache, rate limits) plug in here.
        self.cache = PromptCache(clock)
        self._initial_scenario = self.config.scenario
        self.faults = FaultInjector(self.config.scenario, self.config, clock=clock)
        self.limiter = RateLimiter(clock, self.config.rate_limit_tier)
        self._rate_limits = EnforceRateLimits(self.limiter)
        # Order as the API: a fault can strike any valid request; the cache split decides what
        # counts against input-token limits; admission comes last before generation.
        self.middle: list[Stage] = [InjectFaults(self.faults), PromptCaching(self.cache), self._rate_limits]
        self.batches = BatchStore(
            clock, self.config, self._process_batch_request,
            on_result=self._bill_batch_result,
        )
        self._validate = Validate(self.config)
        self._validate_count = Validate(self.config, for_count=True)
        self._generate = Generate(self.config, self.scripted)

    # ----- configuration used by notebooks -----------------------------------------------------
    def script(self, pattern: Any, reply: str) -> None:
        """Register a scripted reply: when the last user turn matches ``pattern``, answer ``reply``."""
        self.scripted.append((pattern, reply))

    def set_scenario(self, scenario: "str | Scenario | dict[str, Any]") -> Scenario:
        """Switch the fault scenario at runtime: a preset name, a :class:`Scenario`, or a dict."""
        resolved = Scenario.from_dict(scenario) if isinstance(scenario, dict) else get_scenario(scenario)
        self.faults.set_scenario(resolved)
        self.config.scenario = resolved.name
        return resolved

    def configure(self, *, seed: int | None = None, time_scale: float | None = None) -> None:
        """The one way to change settings at run time; every component reads ``self.config``.

        ``time_scale`` is taken as given (servers apply the CI cap before calling this): how fast
        simulated latency, batch processing and outage windows run (1 = realistic, 0 = instant).
        """
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed must be an integer, not {seed!r}")
            self.config.seed = seed
        if time_scale is not None:
            if not isinstance(time_scale, (int, float)) or isinstance(time_scale, bool) or not time_scale >= 0:
                raise ValueError(f"time_scale must be a number >= 0, not {time_scale!r}")
            self.faults.rescale(float(time_scale))  # writes self.config.time_scale, banking elapsed time

    def set_rate_limits(self, api_key: str, tier: "str | RateLimits") -> None:
        """Give one API key (a tenant) its own limits: a tier name or a :class:`RateLimits`."""
        self.limiter.set_tier(api_key, tier)

    def reset(self) -> None:
        """Back to a fresh server: empty ledger, no scripted replies, empty cache, full rate-limit
        buckets, the scenario it was started with. Batches are kept (they are the client's data)."""
        self.ledger.clear()
        self.scripted.clear()
        self.set_scenario(self._initial_scenario)
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
            request_id=rid, endpoint=endpoint, method=request.method, api_key=mask_key(api_key), arrival=self.clock.time()
        )
        return Exchange(request_id=rid, api_key=api_key, headers=headers, row=row, response_headers={"request-id": rid})

    async def _read_body(self, request: Request, ex: Exchange, limit: int = MAX_REQUEST_BYTES) -> None:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"Request exceeds the maximum allowed number of bytes ({limit}).")
        raw = bytearray()
        async for chunk in request.stream():
            raw.extend(chunk)
            if len(raw) > limit:
                raise RequestTooLarge(f"Request exceeds the maximum allowed number of bytes ({limit}).")
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
        headers = {**ex.response_headers, **self._rate_limits.headers(ex), **err.headers}
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
    def endpoint(self, name: str, handler: Callable[[Request, Exchange], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler: every request gets an exchange and a ledger row, every API error its
        envelope, and any bug a 500 ``api_error`` with a log line instead of a crash."""

        async def serve(request: Request) -> Response:
            ex = self._exchange(request, name)
            try:
                return await handler(request, ex)
            except APIError as err:
                return self._error_response(ex, err)
            except Exception as exc:
                return self._internal_error(ex, exc)

        return serve

    def _ok(self, ex: Exchange, body: Any) -> JSONResponse:
        self._finish(ex, 200)
        return JSONResponse(body, headers=ex.response_headers)

    async def messages(self, request: Request, ex: Exchange) -> Response:
        await self._read_body(request, ex)
        await self._run_stages(ex)
        self._record_usage(ex)
        if ex.fault is not None and ex.fault.delay_s:
            if not await self._hold(ex.fault.delay_s, request):
                ex.row.disconnected = True
                self._finish(ex, 499)
                return Response(status_code=499)
        assert ex.request is not None
        if ex.fault is not None and ex.fault.kind == "disconnect" and not ex.request.stream:
            return StreamingResponse(self._drop(ex), media_type="application/json", headers=ex.response_headers)
        if ex.request.stream:
            return StreamingResponse(
                self._stream(ex),
                media_type="text/event-stream",
                headers={**ex.response_headers, "cache-control": "no-cache"},
            )
        await self._deliver_delay(ex, request)
        return self._ok(ex, self._message_json(ex, final=True))

    async def _hold(self, seconds: float, request: Request) -> bool:
        """Wait ``seconds`` of real time (a slow or timed-out response); False if the client left."""
        deadline = self.clock.monotonic() + seconds
        while self.clock.monotonic() < deadline:
            if await request.is_disconnected():
                return False
            await self.clock.sleep(min(0.25, deadline - self.clock.monotonic()))
        return True

    async def _drop(self, ex: Exchange) -> AsyncIterator[bytes]:
        """Start a response, then drop the connection: what a network failure looks like to the client."""
        ex.row.disconnected = True
        ex.row.output_tokens = 0
        self._finish(ex, 200)
        yield b'{"id":"'
        raise DroppedConnection(ex.request_id)

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
        pieces = list(iter_stream_pieces(gen))
        # A mid-stream fault strikes after `after_tokens` deltas, or at the last one if the reply is shorter.
        fire_at = min(fault.after_tokens, len(pieces)) if fault is not None and fault.after_tokens is not None else None
        # Events due at the same moment go out in one write; a sleep (pacing) flushes them first,
        # so at realistic time scales every delta is its own chunk, as on the wire from the API.
        out: list[bytes] = []
        try:
            yield sse_event({"type": "message_start", "message": self._message_json(ex, final=False)})
            start = self.clock.monotonic()
            await self.clock.sleep(plan.ttft)
            open_index = -1
            for position in range(len(pieces) + 1):
                if fire_at is not None and position == fire_at:
                    if out:
                        yield b"".join(out)
                        out.clear()
                    if fault.kind == "disconnect":
                        raise DroppedConnection(ex.request_id)
                    status = fault.status or 529
                    ex.row.error_type = fault.error_type
                    yield sse_event({"type": "error", "error": {"type": fault.error_type, "message": fault.message}})
                    return
                if position == len(pieces):
                    break
                index, block, piece = pieces[position]
                if index != open_index:
                    if open_index >= 0:
                        out.append(sse_event({"type": "content_block_stop", "index": open_index}))
                    out.append(sse_event({"type": "content_block_start", "index": index, "content_block": _empty(block)}))
                    if open_index < 0:
                        out.append(_PING)
                    open_index = index
                out.append(_delta_event(index, block["type"], piece))
                emitted += 1
                # Pace against a schedule rather than sleeping per token: cheap at small time scales.
                ahead = start + plan.ttft + plan.per_token * emitted - self.clock.monotonic()
                if ahead > 0.002:
                    yield b"".join(out)
                    out.clear()
                    await self.clock.sleep(ahead)
            out.append(_PING if open_index < 0 else sse_event({"type": "content_block_stop", "index": open_index}))
            out.append(sse_event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": gen.stop_reason, "stop_sequence": gen.stop_sequence},
                    "usage": self._delta_usage_json(ex, gen.output_tokens),
                }
            ))
            out.append(_MESSAGE_STOP)
            yield b"".join(out)
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

    async def count_tokens(self, request: Request, ex: Exchange) -> Response:
        await self._read_body(request, ex)
        await self._run_stages(ex, count_only=True)
        ex.row.input_tokens = ex.input_tokens_total
        ex.response_headers.update(self._rate_limits.headers(ex))
        return self._ok(ex, {"input_tokens": ex.input_tokens_total})

    async def list_models(self, request: Request, ex: Exchange) -> Response:
        await self.auth.before(ex)
        params = request.query_params
        limit = _int_param(params.get("limit"), "limit", default=20, lo=1, hi=1000)
        # The API lists the most recently released models first.
        models = [_model_json(m) for m in sorted(catalog().values(), key=lambda m: m.created_at, reverse=True)]
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
        return self._ok(ex, {
            "data": page,
            "has_more": has_more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        })

    async def get_model(self, request: Request, ex: Exchange) -> Response:
        await self.auth.before(ex)
        model_id = request.path_params["model_id"]
        spec = catalog().get(model_id)
        if spec is None:
            raise NotFound(f"model: {model_id}")
        return self._ok(ex, _model_json(spec))

    async def not_found(self, request: Request) -> Response:
        ex = self._exchange(request, request.url.path)
        return self._error_response(ex, NotFound(f"Not found: {request.method} {request.url.path}"))

    # ----- Message Batches -----------------------------------------------------------------------
    async def _process_batch_request(self, params: dict[str, Any], custom_id: str, batch_id: str) -> dict[str, Any]:
        """Run one batch item through validation and the skills; invalid params become ``errored``."""
        rid = _new_id("req")
        ex = Exchange(request_id=rid, api_key=None, headers={}, body=params,
                      row=LedgerRow(request_id=rid, endpoint="/v1/messages/batches", method="BATCH", api_key=None))
        try:
            if not isinstance(params, dict):
                raise InvalidRequest("params: Input should be a valid object")
            if params.get("stream"):
                raise InvalidRequest("stream: streaming is not supported for requests in a Message Batch")
            await self._validate.before(ex)
            if self.faults.batch_error(batch_id, custom_id, ex.body_key):
                # A transient failure: the same request, resubmitted in a new batch, is a fresh draw.
                raise Overloaded("Overloaded")
            await self._generate.before(ex)
        except APIError as err:
            return {"type": "errored", "error": err.body(rid)}
        message = self._message_json(ex, final=True)
        message["usage"]["service_tier"] = "batch"
        return {"type": "succeeded", "message": message}

    def _bill_batch_result(
        self, api_key: str, custom_id: str, params: dict[str, Any], result: dict[str, Any], batch_id: str
    ) -> None:
        """One ledger row per finished batch request; only ``succeeded`` ones are billed (at the discount)."""
        now = self.clock.time()
        kind = result.get("type")
        row = LedgerRow(
            request_id=_new_id("req"), endpoint="/v1/messages/batches", method="BATCH", api_key=api_key,
            model=params.get("model") if isinstance(params, dict) else None, arrival=now, finish=now,
            batch=True, custom_id=custom_id, batch_id=batch_id,
        )
        if kind == "succeeded":
            usage = result["message"]["usage"]
            row.status = 200
            row.input_tokens = usage["input_tokens"]
            row.output_tokens = usage["output_tokens"]
            row.cache_creation_input_tokens = usage.get("cache_creation_input_tokens") or 0
            row.cache_read_input_tokens = usage.get("cache_read_input_tokens") or 0
            row.extra["cache_creation"] = usage.get("cache_creation")
            row.cost_usd = self._cost(row)
        elif kind == "errored":
            error_type = result["error"]["error"]["type"]
            row.status = 404 if error_type == "not_found_error" else 400 if error_type == "invalid_request_error" else 500
            row.error_type = error_type
        else:
            row.error_type = kind
        self.ledger.add(row)

    async def _batch_call(self, request: Request, ex: Exchange, action: Any, *, read_body: bool = False) -> Response:
        await self.auth.before(ex)
        if read_body:
            await self._read_body(request, ex, limit=MAX_BATCH_BYTES)
        result = action(ex)
        if isinstance(result, dict) and result.get("type") == "message_batch":
            result = self._with_results_url(request, result)
        elif isinstance(result, dict) and "data" in result:
            result = {**result, "data": [self._with_results_url(request, b) for b in result["data"]]}
        return self._ok(ex, result)

    @staticmethod
    def _with_results_url(request: Request, batch: dict[str, Any]) -> dict[str, Any]:
        # The results URL must point at this server, whatever address the client used to reach it.
        if batch.get("results_url"):
            base = str(request.base_url).rstrip("/")
            batch = {**batch, "results_url": f"{base}/v1/messages/batches/{batch['id']}/results"}
        return batch

    async def create_batch(self, request: Request, ex: Exchange) -> Response:
        def create(ex: Exchange) -> Any:
            requests = ex.body.get("requests")
            if requests is None:
                raise InvalidRequest("requests: Field required")
            sc = self.faults.scenario
            options = BatchOptions(expire_fraction=sc.batch_expire_fraction, slow_factor=sc.batch_slow_factor)
            size = int(request.headers.get("content-length") or 0) or None
            return self.batches.create(ex.api_key or "", requests, options=options, body_bytes=size)

        return await self._batch_call(request, ex, create, read_body=True)

    async def list_batches(self, request: Request, ex: Exchange) -> Response:
        params = request.query_params

        def list_(ex: Exchange) -> Any:
            limit = _int_param(params.get("limit"), "limit", default=20, lo=1, hi=1000)
            return self.batches.list(ex.api_key or "", limit=limit, before_id=params.get("before_id"),
                                     after_id=params.get("after_id"))

        return await self._batch_call(request, ex, list_)

    async def get_batch(self, request: Request, ex: Exchange) -> Response:
        bid = request.path_params["batch_id"]
        return await self._batch_call(request, ex, lambda ex: self.batches.retrieve(bid, api_key=ex.api_key))

    async def cancel_batch(self, request: Request, ex: Exchange) -> Response:
        bid = request.path_params["batch_id"]
        return await self._batch_call(request, ex, lambda ex: self.batches.cancel(bid, api_key=ex.api_key))

    async def delete_batch(self, request: Request, ex: Exchange) -> Response:
        bid = request.path_params["batch_id"]
        return await self._batch_call(request, ex, lambda ex: self.batches.delete(bid, api_key=ex.api_key))

    async def batch_results(self, request: Request, ex: Exchange) -> Response:
        await self.auth.before(ex)
        lines = list(self.batches.results(request.path_params["batch_id"], api_key=ex.api_key))
        self._finish(ex, 200)
        body = "".join(line + "\n" for line in lines)
        return Response(body, media_type="application/x-jsonl", headers=ex.response_headers)

    async def run_batches(self) -> None:
        """Process batches in the background for as long as the server runs."""
        await self.batches.run()

    # ----- introspection (outside /v1/) ----------------------------------------------------------
    async def mock_requests(self, request: Request) -> Response:
        return JSONResponse(self.ledger.records())

    async def mock_usage(self, request: Request) -> Response:
        return JSONResponse(self.ledger.usage_summary())

    async def mock_health(self, request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "seed": self.config.seed, "time_scale": self.config.time_scale,
             "scenario": self.config.scenario, "requests": len(self.ledger),
             "tasks": len(asyncio.all_tasks())}
        )

    async def mock_scenario(self, request: Request) -> Response:
        """GET: the current scenario. POST ``{"scenario": "flaky"}`` or a custom scenario object."""
        if request.method == "POST":
            ex = self._exchange(request, "/mock/scenario")
            try:
                await self._read_body(request, ex)
                spec = ex.body.get("scenario", ex.body)
                self.set_scenario(spec)
            except APIError as err:
                return self._error_response(ex, err)
            except (KeyError, ValueError, TypeError) as exc:
                return self._error_response(ex, InvalidRequest(f"scenario: {exc}"))
        status = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.faults.status().items()}
        return JSONResponse({"scenario": self.faults.scenario.to_dict(), "status": status})

    async def mock_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"status": "reset"})

    def revoke_key(self, api_key: str) -> None:
        """From now on ``api_key`` gets 401 ``authentication_error`` (a revoked or expired key)."""
        self.auth.revoke(api_key)


_PING = sse_event({"type": "ping"})
_MESSAGE_STOP = sse_event({"type": "message_stop"})


def _delta_event(index: int, block_type: str, piece: str) -> bytes:
    """A content_block_delta event, formatted directly (the hot path of every stream)."""
    if block_type == "text":
        body = f'{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{json.dumps(piece, ensure_ascii=False)}}}}}'
    else:
        body = (f'{{"type":"content_block_delta","index":{index},'
                f'"delta":{{"type":"input_json_delta","partial_json":{json.dumps(piece, ensure_ascii=False)}}}}}')
    return f"event: content_block_delta\ndata: {body}\n\n".encode()


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
    api = sim.endpoint
    batch = "/v1/messages/batches"
    routes = [
        Route("/v1/messages", api("/v1/messages", sim.messages), methods=["POST"]),
        Route("/v1/messages/count_tokens", api("/v1/messages/count_tokens", sim.count_tokens), methods=["POST"]),
        Route(batch, api(batch, sim.create_batch), methods=["POST"]),
        Route(batch, api(batch, sim.list_batches), methods=["GET"]),
        Route(batch + "/{batch_id:str}", api(batch + "/{id}", sim.get_batch), methods=["GET"]),
        Route(batch + "/{batch_id:str}", api(batch + "/{id}", sim.delete_batch), methods=["DELETE"]),
        Route(batch + "/{batch_id:str}/cancel", api(batch + "/{id}/cancel", sim.cancel_batch), methods=["POST"]),
        Route(batch + "/{batch_id:str}/results", api(batch + "/{id}/results", sim.batch_results), methods=["GET"]),
        Route("/v1/models", api("/v1/models", sim.list_models), methods=["GET"]),
        Route("/v1/models/{model_id:str}", api("/v1/models/{model_id}", sim.get_model), methods=["GET"]),
        Route("/mock/requests", sim.mock_requests, methods=["GET"]),
        Route("/mock/usage", sim.mock_usage, methods=["GET"]),
        Route("/mock/health", sim.mock_health, methods=["GET"]),
        Route("/mock/reset", sim.mock_reset, methods=["POST"]),
        Route("/mock/scenario", sim.mock_scenario, methods=["GET", "POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Batches are processed in the background; a restarted server resumes unfinished ones.
        sim.loop = asyncio.get_running_loop()
        task = asyncio.create_task(sim.run_batches())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = Starlette(routes=routes, lifespan=lifespan)

    async def fallback(request: Request, exc: Exception) -> Response:
        return await sim.not_found(request)

    async def crashed(request: Request, exc: Exception) -> Response:
        # Last line of defence: a bug is a 500 api_error envelope with a log line, never a bare crash.
        if isinstance(exc, DroppedConnection):
            raise exc  # an injected drop: let the server abort the connection
        ex = sim._exchange(request, request.url.path)
        return sim._internal_error(ex, exc)

    app.add_exception_handler(404, fallback)
    app.add_exception_handler(405, fallback)
    app.add_exception_handler(Exception, crashed)
    app.state.simulator = sim
    return app
