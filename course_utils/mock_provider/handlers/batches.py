"""The Message Batches HTTP adapter: ``/v1/messages/batches`` routes onto the batch store, and each
batch item through the simulator's own validation and generation.

The store (:mod:`..batches`) and the simulator's core (which processes and bills each item) know
nothing of HTTP; here requests are authenticated, bodies read (up to the batch size limit), and
``results_url`` pointed at this server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from starlette.requests import Request
from starlette.responses import Response

from ..batches import MAX_BATCH_BYTES, BatchOptions
from ..errors import InvalidRequest
from ..exchange import Exchange
from .common import int_param, ok, read_body

if TYPE_CHECKING:
    from ..simulator import Simulator

__all__ = [
    "create_batch",
    "list_batches",
    "get_batch",
    "cancel_batch",
    "delete_batch",
    "batch_results",
]


async def _batch_call(
    sim: "Simulator", request: Request, ex: Exchange, action: Callable[[Exchange], Any], *, read: bool = False
) -> Response:
    await sim.auth.before(ex)
    # The Message Batches API has its own requests-per-minute limit (every batch endpoint counts).
    ex.response_headers.update(sim.rate_limits.limiter.admit_endpoint(ex.api_key or "", "batches"))
    if read:
        await read_body(request, ex, limit=MAX_BATCH_BYTES)
    result = action(ex)
    if isinstance(result, dict) and result.get("type") == "message_batch":
        result = _with_results_url(request, result)
    elif isinstance(result, dict) and "data" in result:
        result = {**result, "data": [_with_results_url(request, b) for b in result["data"]]}
    return ok(sim, ex, result)


def _with_results_url(request: Request, batch: dict[str, Any]) -> dict[str, Any]:
    # The results URL must point at this server, whatever address the client used to reach it.
    if batch.get("results_url"):
        base = str(request.base_url).rstrip("/")
        batch = {**batch, "results_url": f"{base}/v1/messages/batches/{batch['id']}/results"}
    return batch


async def create_batch(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    def create(ex: Exchange) -> Any:
        requests = ex.body.get("requests")
        if requests is None:
            raise InvalidRequest("requests: Field required")
        if isinstance(requests, list):
            # ... and a limit on the batch requests waiting in the processing queue.
            queued = sim.batches_queued_in_org(ex.api_key or "")
            sim.rate_limits.limiter.check_batch_queue(ex.api_key or "", queued, len(requests))
        sc = sim.faults.scenario
        options = BatchOptions(expire_fraction=sc.batch_expire_fraction, slow_factor=sc.batch_slow_factor)
        size = int(request.headers.get("content-length") or 0) or None
        return sim.batches.create(ex.api_key or "", requests, options=options, body_bytes=size)

    return await _batch_call(sim, request, ex, create, read=True)


async def list_batches(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    params = request.query_params

    def list_(ex: Exchange) -> Any:
        limit = int_param(params.get("limit"), "limit", default=20, lo=1, hi=1000)
        return sim.batches.list(
            ex.api_key or "", limit=limit, before_id=params.get("before_id"), after_id=params.get("after_id")
        )

    return await _batch_call(sim, request, ex, list_)


async def get_batch(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    bid = request.path_params["batch_id"]
    return await _batch_call(sim, request, ex, lambda ex: sim.batches.retrieve(bid, api_key=ex.api_key))


async def cancel_batch(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    bid = request.path_params["batch_id"]
    return await _batch_call(sim, request, ex, lambda ex: sim.batches.cancel(bid, api_key=ex.api_key))


async def delete_batch(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    bid = request.path_params["batch_id"]
    return await _batch_call(sim, request, ex, lambda ex: sim.batches.delete(bid, api_key=ex.api_key))


async def batch_results(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    await sim.auth.before(ex)
    ex.response_headers.update(sim.rate_limits.limiter.admit_endpoint(ex.api_key or "", "batches"))
    lines = list(sim.batches.results(request.path_params["batch_id"], api_key=ex.api_key))
    sim.settle(ex, 200)
    body = "".join(line + "\n" for line in lines)
    return Response(body, media_type="application/x-jsonl", headers=ex.response_headers)
