"""The Message Batches HTTP adapter: ``/v1/messages/batches`` routes onto the batch store, and each
batch item through the simulator's own validation and generation.

The store (:mod:`..batches`) knows nothing of HTTP; here requests are authenticated, bodies read
(up to the batch size limit), ``results_url`` pointed at this server, and results billed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from starlette.requests import Request
from starlette.responses import Response

from ..batches import MAX_BATCH_BYTES, BatchOptions
from ..billing import batch_result_row
from ..errors import APIError, InvalidRequest, Overloaded
from ..exchange import Exchange, new_id
from ..ledger import LedgerRow
from ..render import message_json
from .common import int_param, ok, read_body

if TYPE_CHECKING:
    from ..simulator import Simulator

__all__ = [
    "process_batch_item",
    "bill_batch_result",
    "create_batch",
    "list_batches",
    "get_batch",
    "cancel_batch",
    "delete_batch",
    "batch_results",
]


async def process_batch_item(sim: "Simulator", params: dict[str, Any], custom_id: str, batch_id: str) -> dict[str, Any]:
    """Run one batch item through validation, the prompt cache and the skills; invalid params become
    ``errored``.

    Prompt caching applies inside batches as in the Messages API: the item reads and writes the
    cache of the batch owner's key (the batch guide recommends the 1-hour TTL for context shared
    across a batch), and its usage reports the cache reads and writes, billed at the batch discount.
    """
    rid = new_id("req")
    ex = Exchange(
        request_id=rid,
        api_key=None,
        headers={},
        body=params,
        row=LedgerRow(request_id=rid, endpoint="/v1/messages/batches", method="BATCH", api_key=None),
    )
    try:
        if not isinstance(params, dict):
            raise InvalidRequest("params: Input should be a valid object")
        if params.get("stream"):
            raise InvalidRequest("stream: streaming is not supported for requests in a Message Batch")
        await sim.validate.before(ex)
        if sim.faults.batch_error(batch_id, custom_id, ex.body_key):
            # A transient failure: the same request, resubmitted in a new batch, is a fresh draw.
            raise Overloaded("Overloaded")
        owner = _owner(sim, batch_id)
        if owner is not None and ex.model is not None:
            ex.usage = sim.cache.lookup_and_store(owner, ex.model.id, ex.body, ex.model.min_cache_tokens).as_usage()
        await sim.generate.before(ex)
    except APIError as err:
        return {"type": "errored", "error": err.body(rid)}
    message = message_json(ex, final=True)
    message["usage"]["service_tier"] = "batch"
    return {"type": "succeeded", "message": message}


def _owner(sim: "Simulator", batch_id: str) -> str | None:
    """The API key that created ``batch_id`` (whose prompt cache its requests use)."""
    store = sim.batches
    with store._lock:
        rows = store._fetch_rows("SELECT api_key FROM batches WHERE id=?", (batch_id,))
    return rows[0]["api_key"] if rows else None


def _queued(sim: "Simulator", api_key: str) -> int:
    """Batch requests of ``api_key``'s organisation still waiting in the processing queue (the limit
    is the organisation's: every key of it counts)."""
    store = sim.batches
    limiter = sim.rate_limits.limiter
    with store._lock:
        rows = store._fetch_rows(
            "SELECT b.api_key AS api_key, COUNT(*) AS n FROM requests r JOIN batches b ON r.batch_id = b.id "
            "WHERE r.result_type IS NULL GROUP BY b.api_key",
            (),
        )
    org = limiter.organization_of(api_key)
    return sum(int(r["n"]) for r in rows if limiter.organization_of(r["api_key"]) == org)


def bill_batch_result(
    sim: "Simulator", api_key: str, custom_id: str, params: dict[str, Any], result: dict[str, Any], batch_id: str
) -> None:
    """One ledger row per finished batch request; only ``succeeded`` ones are billed (at the discount)."""
    row = batch_result_row(api_key, custom_id, params, result, batch_id, sim.clock.time())
    row.workspace = sim.rate_limits.limiter.workspaces.workspace_of(api_key or "")
    sim.ledger.add(row)
    # Counted against spend limits as billed; a batch "may slightly exceed a workspace spend limit".
    sim.spend.add(sim.clock.time(), *sim.spend_scopes(api_key or ""), row.cost_usd)


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
            sim.rate_limits.limiter.check_batch_queue(ex.api_key or "", _queued(sim, ex.api_key or ""), len(requests))
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
