"""``GET /v1/models`` (paginated, newest first) and ``GET /v1/models/{model_id}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ...models import catalog
from ..errors import InvalidRequest, NotFound
from ..exchange import Exchange
from .common import int_param, ok

if TYPE_CHECKING:
    from ..simulator import Simulator

__all__ = ["list_models", "get_model", "model_json"]


def model_json(spec: Any) -> dict[str, Any]:
    """A catalog entry as the API's ``model`` object."""
    return {
        "type": "model",
        "id": spec.id,
        "display_name": spec.display_name,
        "created_at": spec.created_at,
        "lifecycle": "active",
        "max_input_tokens": spec.context_window,
        "max_tokens": spec.max_output,
    }


async def list_models(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    await sim.auth.before(ex)
    params = request.query_params
    limit = int_param(params.get("limit"), "limit", default=20, lo=1, hi=1000)
    # The API lists the most recently released models first.
    models = [model_json(m) for m in sorted(catalog().values(), key=lambda m: m.created_at, reverse=True)]
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
    return ok(sim, ex, {
        "data": page,
        "has_more": has_more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    })


async def get_model(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    await sim.auth.before(ex)
    model_id = request.path_params["model_id"]
    spec = catalog().get(model_id)
    if spec is None:
        raise NotFound(f"model: {model_id}")
    return ok(sim, ex, model_json(spec))


def _index_of(ids: list[str], value: str, name: str) -> int:
    try:
        return ids.index(value)
    except ValueError:
        raise InvalidRequest(f"{name}: unknown id {value!r}") from None
