"""The simulator's own routes, outside ``/v1/``: ``/mock/requests``, ``/mock/usage``,
``/mock/health``, ``/mock/reset`` and ``/mock/scenario`` (these are not API endpoints and are
not on the ledger), and the 404 of any unknown path."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import APIError, InvalidRequest, NotFound
from .common import error_response, exchange_for, read_body

if TYPE_CHECKING:
    from ..simulator import Simulator

__all__ = ["mock_requests", "mock_usage", "mock_health", "mock_scenario", "mock_reset", "not_found"]


async def mock_requests(sim: "Simulator", request: Request) -> Response:
    return JSONResponse(sim.ledger.records())


async def mock_usage(sim: "Simulator", request: Request) -> Response:
    """Usage totals; ``?by=tenant_tag`` (or any ledger columns, comma-separated) groups them otherwise."""
    by = tuple(c for c in request.query_params.get("by", "api_key,model").split(",") if c)
    try:
        return JSONResponse(sim.ledger.usage_summary(by))
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)


async def mock_health(sim: "Simulator", request: Request) -> Response:
    return JSONResponse(
        {
            "status": "ok",
            "seed": sim.config.seed,
            "time_scale": sim.config.time_scale,
            "scenario": sim.config.scenario,
            "requests": len(sim.ledger),
            "tasks": len(asyncio.all_tasks()),
        }
    )


async def mock_scenario(sim: "Simulator", request: Request) -> Response:
    """GET: the current scenario. POST ``{"scenario": "flaky"}`` or a custom scenario object."""
    if request.method == "POST":
        ex = exchange_for(sim, request, "/mock/scenario")
        try:
            await read_body(request, ex)
            spec = ex.body.get("scenario", ex.body)
            sim.set_scenario(spec)
        except APIError as err:
            return error_response(sim, ex, err)
        except (KeyError, ValueError, TypeError) as exc:
            return error_response(sim, ex, InvalidRequest(f"scenario: {exc}"))
    status = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in sim.faults.status().items()}
    return JSONResponse({"scenario": sim.faults.scenario.to_dict(), "status": status})


async def mock_reset(sim: "Simulator", request: Request) -> Response:
    sim.reset()
    return JSONResponse({"status": "reset"})


async def not_found(sim: "Simulator", request: Request) -> Response:
    ex = exchange_for(sim, request, request.url.path)
    return error_response(sim, ex, NotFound(f"Not found: {request.method} {request.url.path}"))
