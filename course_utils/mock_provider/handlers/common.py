"""What every endpoint shares: reading the body, the error envelope, and the endpoint wrapper."""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import MAX_REQUEST_BYTES
from ..errors import APIError, InternalError, InvalidRequest, RequestTooLarge
from ..exchange import Exchange, open_exchange
from ..request import parse_json_body

if TYPE_CHECKING:
    from ..simulator import Simulator

__all__ = ["Handler", "endpoint", "exchange_for", "read_body", "ok", "error_response", "internal_error", "int_param"]

log = logging.getLogger("course_utils.mock_provider")

Handler = Callable[["Simulator", Request, Exchange], Awaitable[Response]]
"""An endpoint's handler: ``handler(sim, request, ex)``."""


def exchange_for(sim: "Simulator", request: Request, endpoint_name: str) -> Exchange:
    """Open the exchange (request id, key, ledger row) of an HTTP request to ``endpoint_name``."""
    return open_exchange(request.headers, request.method, endpoint_name, sim.clock.time())


def endpoint(sim: "Simulator", name: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: every request gets an exchange and a ledger row, every API error its
    envelope, and any bug a 500 ``api_error`` with a log line instead of a crash."""

    async def serve(request: Request) -> Response:
        ex = exchange_for(sim, request, name)
        try:
            return await handler(sim, request, ex)
        except APIError as err:
            return error_response(sim, ex, err)
        except Exception as exc:
            return internal_error(sim, ex, exc)

    return serve


async def read_body(request: Request, ex: Exchange, limit: int = MAX_REQUEST_BYTES) -> None:
    """Read the JSON body into ``ex.body``: 413 past ``limit`` bytes, 400 if it is not a JSON object."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"Request exceeds the maximum allowed number of bytes ({limit}).")
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise RequestTooLarge(f"Request exceeds the maximum allowed number of bytes ({limit}).")
    ex.body = parse_json_body(bytes(raw))


def ok(sim: "Simulator", ex: Exchange, body: Any) -> JSONResponse:
    """Settle the request as a 200 and answer ``body``."""
    sim.settle(ex, 200)
    return JSONResponse(body, headers=ex.response_headers)


def error_response(sim: "Simulator", ex: Exchange, err: APIError) -> JSONResponse:
    """Settle the request with the error's status and answer the API's error envelope."""
    sim.settle(ex, err.status, err)
    headers = {**ex.response_headers, **sim.rate_limits.headers(ex), **err.headers}
    if err.status >= 500 or err.status == 429:
        headers.setdefault("x-should-retry", "true")
    return JSONResponse(err.body(ex.request_id), status_code=err.status, headers=headers)


def internal_error(sim: "Simulator", ex: Exchange, exc: BaseException) -> JSONResponse:
    """A bug in the simulator: logged with its traceback, answered as a 500 ``api_error``."""
    log.error("internal error on %s %s: %s", ex.row.endpoint, ex.request_id, "".join(traceback.format_exception(exc)))
    return error_response(sim, ex, InternalError("Internal server error"))


def int_param(value: str | None, name: str, *, default: int, lo: int, hi: int) -> int:
    """A bounded integer query parameter (``limit``), or the API's 400 naming it."""
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise InvalidRequest(f"{name}: Input should be a valid integer") from None
    if not lo <= n <= hi:
        raise InvalidRequest(f"{name}: Input should be between {lo} and {hi}")
    return n
