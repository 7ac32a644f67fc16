"""``POST /v1/messages/count_tokens``: the input tokens a request would use (free; its own RPM limit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ..exchange import Exchange
from .common import ok, read_body

if TYPE_CHECKING:
    from ..simulator import Simulator

__all__ = ["count_tokens"]


async def count_tokens(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    await read_body(request, ex)
    await sim.run_stages(ex, count_only=True)
    # Token counting has its own requests-per-minute limit, separate from the Messages API's.
    own = sim.rate_limits.limiter.admit_endpoint(ex.api_key or "", "count_tokens")
    ex.row.input_tokens = ex.input_tokens_total
    ex.response_headers.update(sim.rate_limits.headers(ex))
    ex.response_headers.update(own)
    return ok(sim, ex, {"input_tokens": ex.input_tokens_total})
