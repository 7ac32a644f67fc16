"""``POST /v1/messages``: run the pipeline, then deliver the reply whole or as a stream.

Faults that act after the pipeline ride on ``ex.fault``: a held response (``timeout``, ``slow``),
a dropped connection (``disconnect``), a mid-stream error (see :mod:`..stream`), or a lost
response (``lost_response``, ``late_response``): the provider finishes and bills the request,
and then the answer is dropped, or held until the client has given up.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..billing import record_usage
from ..context_edits import apply_context_management
from ..context_response import bill_compaction, decorate_message, pause_reply, rewrite_stream
from ..exchange import Exchange
from ..render import message_json
from ..stream import DroppedConnection, stream_reply
from .common import ok, read_body

if TYPE_CHECKING:
    from ..simulator import Simulator

__all__ = ["messages"]


async def messages(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    await read_body(request, ex)
    # Context management edits the prompt before the model (and the cache, and the limits) see it;
    # authenticate first, so a missing key is still a 401 whatever the body holds.
    await sim.auth.before(ex)
    managed = apply_context_management(ex.body, ex.headers)
    if managed is not None:
        ex.body = managed.body
    await sim.run_stages(ex)
    if managed is not None:
        pause_reply(ex, managed)
    record_usage(ex)
    if managed is not None:
        bill_compaction(ex, managed)
    fault = ex.fault
    assert ex.request is not None
    if fault is not None and fault.spec.billed:
        return await _lost(sim, request, ex)
    if fault is not None and fault.delay_s:
        try:
            still_there = await _hold(sim, fault.delay_s, request)
        except asyncio.CancelledError:  # an in-process client that gives up cancels the handler
            _left(sim, ex)
            raise
        if not still_there:
            _left(sim, ex)
            return Response(status_code=499)
    if fault is not None and fault.spec.drops and not ex.request.stream:
        ex.row.output_tokens = 0
        return _drop(sim, ex)
    if ex.request.stream:
        settle = sim.settle if managed is None else _settle_compacted(sim, managed)
        events = stream_reply(ex, clock=sim.clock, settle=settle)
        return StreamingResponse(
            events if managed is None else rewrite_stream(ex, managed, events),
            media_type="text/event-stream",
            headers={**ex.response_headers, "cache-control": "no-cache"},
        )
    # A non-streaming reply arrives once the whole of it is generated. A client that gives up
    # meanwhile does not stop the provider: the reply is finished and billed, and never delivered.
    done_at = sim.clock.time() + _generation_s(ex)
    try:
        await _generate(sim, ex)
    except asyncio.CancelledError:  # in process, the client's timeout cancels the handler
        ex.row.disconnected, ex.row.delivered = True, False
        sim.settle(ex, 200, at=done_at)
        raise
    if await request.is_disconnected():  # over HTTP the handler runs on after the client left
        ex.row.disconnected, ex.row.delivered = True, False
    message = message_json(ex, final=True)
    return ok(sim, ex, message if managed is None else decorate_message(ex, managed, message))


def _settle_compacted(sim: "Simulator", managed: Any) -> Callable[[Exchange, int], None]:
    """Settle a streamed reply whose request compacted: the stream meters the reply's output
    tokens, and the summary's are billed on top."""

    def settle(ex: Exchange, status: int) -> None:
        bill_compaction(ex, managed, output_only=True)
        sim.settle(ex, status)

    return settle


def _generation_s(ex: Exchange) -> float:
    assert ex.latency is not None and ex.generated is not None
    return ex.latency.total(ex.generated.output_tokens)


async def _generate(sim: "Simulator", ex: Exchange) -> None:
    """The time the provider takes to produce the whole reply."""
    await sim.clock.sleep(_generation_s(ex))


def _left(sim: "Simulator", ex: Exchange) -> None:
    """The client left while the response was held before generation finished: nothing billed (499)."""
    ex.row.disconnected, ex.row.delivered = True, False
    sim.settle(ex, 499)


async def _lost(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    """The provider does all the work and bills it (status 200 on the ledger, with its cost); then
    the connection drops (``lost_response``), or the answer waits ``delay_s`` more and reaches only
    a client that is still there (``late_response``)."""
    assert ex.request is not None and ex.fault is not None
    await _generate(sim, ex)
    ex.row.delivered = False
    sim.settle(ex, 200)
    if ex.fault.spec.drops:
        return _drop(sim, ex)
    try:
        still_there = await _hold(sim, ex.fault.delay_s or 0.0, request)
    except asyncio.CancelledError:  # an in-process client that gave up cancels the response
        ex.row.disconnected = True
        raise
    if not still_there:
        ex.row.disconnected = True
        return Response(status_code=499)
    ex.row.delivered = True
    if not ex.request.stream:
        return ok(sim, ex, message_json(ex, final=True))
    # The finished reply goes out at once: the stream has nothing left to wait for.
    body = b"".join([chunk async for chunk in stream_reply(ex, clock=sim.clock, settle=sim.settle, paced=False)])
    return Response(body, media_type="text/event-stream", headers={**ex.response_headers, "cache-control": "no-cache"})


async def _hold(sim: "Simulator", seconds: float, request: Request) -> bool:
    """Wait ``seconds`` (a slow or late response); False if the client left."""
    deadline = sim.clock.monotonic() + seconds
    # Stop within a millisecond of the deadline: on a virtual loop (microsecond ticks) a sleep of
    # less than a tick does not move the clock, and the loop would spin for ever.
    while (left := deadline - sim.clock.monotonic()) > 1e-3:
        if await request.is_disconnected():
            return False
        await sim.clock.sleep(min(0.25, left))
    return True


def _drop(sim: "Simulator", ex: Exchange) -> Response:
    """Start a response, then drop the connection: what a network failure looks like to the client
    (over HTTP the status line has gone out, so the drop can only be a cut body)."""
    ex.row.disconnected = True
    ex.row.delivered = False
    sim.settle(ex, 200)  # a no-op if the request is already settled (a lost response)
    assert ex.request is not None
    media = "text/event-stream" if ex.request.stream else "application/json"
    return StreamingResponse(_cut(ex), media_type=media, headers=ex.response_headers)


async def _cut(ex: Exchange) -> AsyncIterator[bytes]:
    yield b"event: message_start\n" if ex.request is not None and ex.request.stream else b'{"id":"'
    raise DroppedConnection(ex.request_id)
