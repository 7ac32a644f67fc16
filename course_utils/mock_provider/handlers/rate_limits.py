"""The read-only Rate Limits API: ``GET /v1/organizations/rate_limits`` and
``GET /v1/organizations/workspaces/{workspace_id}/rate_limits``.

As documented (https://platform.claude.com/docs/en/manage-claude/rate-limits-api and the API
reference, e.g. https://platform.claude.com/docs/en/api/admin/rate_limits/list; shapes: SDK types
``OrganizationRateLimit`` and ``WorkspaceRateLimit``): one entry per rate-limit group ("either a
model family or an API-surface category such as the Message Batches API"), each with its limiter
values; ``group_type`` / ``model`` / ``limit`` / ``page`` filters; a workspace lists only its
overrides unless ``include_inherited=true``, each value marked by ``source``. The SDK reads them with
``client.organization.rate_limits.list()`` and ``client.organization.workspaces.rate_limits.list(id)``.

Simplifications: any key may read its organisation's limits (the API wants an Admin API key), and
the simulator's tiers carry one set of Messages limits that every model group shares.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidRequest, NotFound
from ..exchange import Exchange
from ..ratelimit import RateLimits
from ..ratelimit.groups import group_id, model_groups
from ..ratelimit.workspaces import ORG_SCOPE
from .common import int_param, ok

if TYPE_CHECKING:
    from ..simulator import Simulator

__all__ = ["list_org_rate_limits", "list_workspace_rate_limits", "GROUP_TYPES"]

GROUP_TYPES = ("batch", "files", "model_group", "skills", "token_count", "web_search")

# Limiter type names of the Messages limits (SDK WorkspaceRateLimitType). The organisation's input
# limit has the cache-aware type: "on current models the organization's input-token limit usually
# has this type" (cache reads do not count), which is what the simulator enforces.
_MESSAGES = (
    ("requests_per_minute", "requests_per_minute"),
    ("input_tokens_per_minute_cache_aware", "input_tokens_per_minute"),
    ("output_tokens_per_minute", "output_tokens_per_minute"),
)


def _entry_id(org: str, gid: str) -> str:
    # "stable within the organization and differs between organizations" (SDK OrganizationRateLimit.id)
    return "rl_" + hashlib.sha256(f"{org}:{gid}".encode()).hexdigest()[:24]


def _groups(limits: RateLimits) -> list[tuple[dict[str, Any], list[tuple[str, int]], list[str] | None]]:
    """(group object, [(limiter type, value)], models) of every group an organisation with ``limits`` has."""
    out = []
    for g in model_groups():
        values = [(name, int(getattr(limits, field))) for name, field in _MESSAGES]
        out.append(({"type": "model_group", "id": g.id, "display_name": g.display_name}, values, list(g.models)))
    if limits.batch_rpm is not None:
        out.append(
            ({"type": "batch", "id": group_id("batch", "batch")}, [("requests_per_minute", limits.batch_rpm)], None)
        )
    if limits.count_tokens_rpm is not None:
        gid = group_id("token_count", "token_count")
        out.append(({"type": "token_count", "id": gid}, [("requests_per_minute", limits.count_tokens_rpm)], None))
    return out


def _page(request: Request, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """``limit`` omitted: every entry on one page; else ``limit`` entries and an opaque ``next_page``."""
    params = request.query_params
    start = 0
    if params.get("page"):
        token = params["page"]
        if not token.startswith("page_") or not token[5:].isdigit():
            raise InvalidRequest("page: invalid page cursor")
        start = int(token[5:])
    if params.get("limit") is None:
        return {"data": entries[start:], "next_page": None}
    limit = int_param(params.get("limit"), "limit", default=1000, lo=1, hi=1000)
    page = entries[start : start + limit]
    more = start + limit < len(entries)
    return {"data": page, "next_page": f"page_{start + limit}" if more else None}


def _group_type(request: Request) -> str | None:
    wanted = request.query_params.get("group_type")
    if wanted is not None and wanted not in GROUP_TYPES:
        allowed = ", ".join(f"'{t}'" for t in GROUP_TYPES)
        raise InvalidRequest(f"group_type: Input should be {allowed}")
    return wanted


async def list_org_rate_limits(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    """``GET /v1/organizations/rate_limits``: the rate limits of the caller's organisation."""
    await sim.auth.before(ex)
    limiter = sim.rate_limits.limiter
    key = ex.api_key or ""
    org, limits = limiter.organization_of(key), limiter.org_limits(key)
    wanted = _group_type(request)
    model = request.query_params.get("model")
    entries = []
    for group, values, models in _groups(limits):
        if wanted is not None and group["type"] != wanted:
            continue
        if model is not None and (models is None or model not in models):
            continue
        entries.append(
            {
                "type": "rate_limit",
                "id": _entry_id(org, group["id"]),
                "group": group,
                "group_type": group["type"],  # deprecated alias of group.type, still returned
                "limits": [{"type": t, "value": v} for t, v in values],
                "models": models,
            }
        )
    if model is not None and not entries:
        raise NotFound(f"model: {model} not found or has no rate limits for this organization")
    return ok(sim, ex, _page(request, entries))


async def list_workspace_rate_limits(sim: "Simulator", request: Request, ex: Exchange) -> Response:
    """``GET /v1/organizations/workspaces/{workspace_id}/rate_limits``: a workspace's overrides
    (and, with ``include_inherited=true``, the organisation's values it inherits)."""
    await sim.auth.before(ex)
    limiter = sim.rate_limits.limiter
    key = ex.api_key or ""
    workspace = request.path_params["workspace_id"]
    name = workspace.removeprefix("wrkspc_")
    org = limiter.organization_of(key)
    if name not in limiter.workspaces.names() or org != ORG_SCOPE:
        raise NotFound(f"workspace: {workspace} not found")
    inherited = request.query_params.get("include_inherited", "false").lower()
    if inherited not in ("true", "false"):
        raise InvalidRequest("include_inherited: Input should be a valid boolean")
    org_limits = limiter.org_limits()
    own = limiter.workspaces.limits_of(name)
    wanted = _group_type(request)
    entries = []
    for group, values, models in _groups(org_limits):
        if wanted is not None and group["type"] != wanted:
            continue
        listed = []
        for limiter_type, org_value in values:
            override = _override(own, group["type"], limiter_type)
            if override is not None:
                listed.append(
                    {"type": limiter_type, "value": override, "org_limit": org_value, "source": {"type": "workspace"}}
                )
            elif inherited == "true":
                listed.append(
                    {
                        "type": limiter_type,
                        "value": org_value,
                        "org_limit": org_value,
                        "source": {"type": "organization"},
                    }
                )
        if listed:
            entries.append(
                {
                    "type": "workspace_rate_limit",
                    "workspace_id": workspace,
                    "rate_limit_id": _entry_id(org, group["id"]),
                    "group": group,
                    "limits": listed,
                    "models": models,
                }
            )
    return ok(sim, ex, _page(request, entries))


def _override(own: RateLimits | None, group_type: str, limiter_type: str) -> int | None:
    """The workspace's stored value for one limiter type ("a value above the organization's own limit
    is stored, but the organization limit still applies"), or None when it has none."""
    if own is None or group_type != "model_group":
        return None  # workspace limits cover the Messages limits only
    # Listed as stored; admission enforces the lower of it and the organisation's (effective_limits).
    return int(getattr(own, dict(_MESSAGES)[limiter_type]))
