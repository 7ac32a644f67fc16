"""``POST /v1/messages``: run the pipeline, then deliver the reply whole or as a stream.

Faults that act after the pipeline ride on ``ex.fault``: a held response (``timeout``, ``slow``),
a dropped connection (``disconnect``), or a mid-stream error (see :mod:`..stream`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..billing import record_usage
from ..exchange import Exchange
from ..render import message_json
from ..stream import DroppedConnection, stream_reply
from .common import ok, read_body

if TYPE_CHECKING:
    from ..simulator import Simulator

__all__ = ["messages"]


async def messages(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    await read_body(request, ex)
    await sim.run_stages(ex)
    record_usage(ex)
    if ex.fault is not None and ex.fault.delay_s:
        if not await _hold(sim, ex.fault.delay_s, request):
            ex.row.disconnected = True
            sim.settle(ex, 499)
            return Response(status_code=499)
    assert ex.request is not None
    if ex.fault is not None and ex.fault.kind == "disconnect" and not ex.request.stream:
        return StreamingResponse(_drop(sim, ex), media_type="application/json", headers=ex.response_headers)
    if ex.request.stream:
        return StreamingResponse(
            stream_reply(ex, clock=sim.clock, settle=sim.settle),
            media_type="text/event-stream",
            headers={**ex.response_headers, "cache-control": "no-cache"},
        )
    # A non-streaming reply arrives once the whole of it is generated.
    assert ex.latency is not None and ex.generated is not None
    await sim.clock.sleep(ex.latency.total(ex.generated.output_tokens))
    return ok(sim, ex, message_json(ex, final=True))


async def _hold(sim: "Simulator", seconds: float, request: Request) -> bool:
    """Wait ``seconds`` (a slow or timed-out response); False if the client left."""
    deadline = sim.clock.monotonic() + seconds
    while sim.clock.monotonic() < deadline:
        if await request.is_disconnected():
            return False
        await sim.clock.sleep(min(0.25, deadline - sim.clock.monotonic()))
    return True


async def _drop(sim: "Simulator", ex: Exchange) -> AsyncIterator[bytes]:
    """Start a response, then drop the connection: what a network failure looks like to the client."""
    ex.row.disconnected = True
    ex.row.output_tokens = 0
    sim.settle(ex, 200)
    yield b'{"id":"'
    raise DroppedConnection(ex.request_id)
