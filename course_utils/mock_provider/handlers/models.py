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

__all__ = ["list_models", "get_model", "model_json", "capabilities_json"]


_LIFECYCLES = ("active", "deprecated", "retired")


def model_json(spec: Any, now: float | None = None) -> dict[str, Any]:
    """A catalog entry as the API's ``model`` object (SDK ``ModelInfo``), lifecycle as of ``now``."""
    lifecycle = spec.lifecycle(now) if now is not None else ("deprecated" if spec.deprecated_at else "active")
    return {
        "type": "model",
        "id": spec.id,
        "display_name": spec.display_name,
        "created_at": spec.created_at,
        "lifecycle": lifecycle,
        # "Populated for deprecated and retired models; null while the model is active" (SDK ModelInfo).
        "deprecated_at": spec.deprecated_at if lifecycle != "active" else None,
        "retires_at": spec.retires_at if lifecycle != "active" else None,
        "line": spec.line,
        "max_input_tokens": spec.context_window,
        "max_tokens": spec.max_output,
        "capabilities": capabilities_json(spec),
    }


def _yes(flag: bool) -> dict[str, bool]:
    return {"supported": bool(flag)}


def capabilities_json(spec: Any) -> dict[str, Any]:
    """The ``capabilities`` object of the models API (SDK ``ModelCapabilities``): every key present.

    Thinking types follow ``data/models.csv`` (``thinking_modes``) and the request rules of
    ``data/model_rules.csv`` (``enabled`` = a thinking budget is accepted, ``disabled`` = thinking
    can be turned off), so what the models API says is what the Messages endpoint enforces.
    """
    real = spec.line is not None  # the teaching model is text-only and minimal
    thinks = spec.thinking_supported
    efforts = real and ("adaptive" in spec.thinking_modes)
    return {
        "batch": _yes(True),
        "citations": _yes(real),
        "code_execution": _yes(real),
        "context_management": {
            "supported": real,
            "clear_thinking_20251015": _yes(real and thinks),
            "clear_tool_uses_20250919": _yes(real),
            "compact_20260112": _yes(efforts),
        },
        "effort": {
            "supported": efforts,
            "low": _yes(efforts),
            "medium": _yes(efforts),
            "high": _yes(efforts),
            "max": _yes(efforts),
            "xhigh": _yes(efforts),
        },
        "image_input": _yes(real),
        "pdf_input": _yes(real),
        "server_tools": {"supported": real, "code_execution": _yes(real), "web_search": _yes(real)},
        "structured_outputs": _yes(True),
        "thinking": {
            "supported": thinks,
            "types": {
                "adaptive": _yes(thinks and "adaptive" in spec.thinking_modes),
                "between_tools": _yes(thinks and "between_tools" in spec.thinking_modes),
                "disabled": _yes("thinking_disabled" not in spec.refused),
                "enabled": _yes(thinks and "thinking_budget" not in spec.refused),
            },
        },
    }


async def list_models(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    await sim.auth.before(ex)
    params = request.query_params
    limit = int_param(params.get("limit"), "limit", default=20, lo=1, hi=1000)
    # The API lists the most recently released models first.
    now = sim.clock.time()
    # "When omitted, the list contains the active and deprecated models; retired models appear only
    # when retired is requested explicitly" (SDK ModelListParams.lifecycle; sent as lifecycle[]=...).
    wanted = params.getlist("lifecycle[]") + params.getlist("lifecycle")
    for value in wanted:
        if value not in _LIFECYCLES:
            raise InvalidRequest(f"lifecycle: Input should be 'active', 'deprecated' or 'retired', not {value!r}")
    if len(set(wanted)) > 3:
        raise InvalidRequest("lifecycle: List should have at most 3 items")
    keep = set(wanted) or {"active", "deprecated"}
    models = [model_json(m, now) for m in sorted(catalog().values(), key=lambda m: m.created_at, reverse=True)]
    models = [m for m in models if m["lifecycle"] in keep]
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
    return ok(
        sim,
        ex,
        {
            "data": page,
            "has_more": has_more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        },
    )


async def get_model(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    await sim.auth.before(ex)
    model_id = request.path_params["model_id"]
    spec = catalog().get(model_id)
    if spec is None:
        raise NotFound(f"model: {model_id}")
    # A retired model stays in the catalogue ("the historical record of its retirement"); only
    # inference requests naming it fail (404 from the Messages endpoint).
    return ok(sim, ex, model_json(spec, sim.clock.time()))


def _index_of(ids: list[str], value: str, name: str) -> int:
    try:
        return ids.index(value)
    except ValueError:
        raise InvalidRequest(f"{name}: unknown id {value!r}") from None
