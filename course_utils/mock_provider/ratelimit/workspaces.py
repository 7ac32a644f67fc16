"""Workspaces: API keys grouped under their own rate limits, inside one organization's limits.

As the Admin API documents it (https://platform.claude.com/docs/en/api/organization/workspaces/rate_limits/update):
a workspace may carry its own per-minute limits (overrides), and "a value above the organization's
own limit is stored, but the organization limit still applies, so the lower of the two is
enforced". Every key of every workspace also draws on the organization's limits, so one
workspace's traffic can exhaust the organization for all of them unless its own, lower limit
stops it first; that is what workspace limits are for.

In the simulator, keys that were never put in a workspace belong to the organization's default
workspace and share its limits (limits :attr:`Workspaces.org_limits`, the limiter's default tier when
unset); only a key given a tier of its own stands for another organization. Simplification: only the
Messages limits (RPM, ITPM, OTPM) can be lowered per workspace; the token-counting and Message
Batches limits are the organization's.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .tiers import RateLimits

__all__ = ["Workspaces", "effective_limits", "WORKSPACES_SOURCE", "ORG_SCOPE"]

ORG_SCOPE = "\x00org"
"""The limiter's bucket scope for the organization the workspaces belong to (no API key looks like it)."""

WORKSPACES_SOURCE = "https://platform.claude.com/docs/en/api/organization/workspaces/rate_limits/update"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def effective_limits(workspace: RateLimits, org: RateLimits) -> RateLimits:
    """The workspace's limits, each capped at the organization's ("the lower of the two is enforced")."""
    return replace(
        workspace,
        requests_per_minute=min(workspace.requests_per_minute, org.requests_per_minute),
        input_tokens_per_minute=min(workspace.input_tokens_per_minute, org.input_tokens_per_minute),
        output_tokens_per_minute=min(workspace.output_tokens_per_minute, org.output_tokens_per_minute),
    )


class Workspaces:
    """Which workspace each key belongs to, each workspace's own limits, and the organization's.

    Not locked on its own: the :class:`~.limiter.RateLimiter` that owns it holds its lock.
    """

    def __init__(self) -> None:
        self.org_limits: RateLimits | None = None
        self._limits: dict[str, RateLimits | None] = {}
        self._of_key: dict[str, str] = {}

    def define(self, name: str, limits: RateLimits | None) -> None:
        """Create or change workspace ``name``; ``limits=None``: no overrides (the organization's apply)."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"a workspace name is 1-64 letters, digits, '_', '.' or '-', not {name!r}")
        self._limits[name] = limits

    def assign(self, api_key: str, name: str) -> None:
        """Put ``api_key`` in workspace ``name`` (which must exist)."""
        if name not in self._limits:
            raise KeyError(f"no workspace {name!r}; create it first with workspace({name!r}, ...)")
        self._of_key[api_key] = name

    def workspace_of(self, api_key: str) -> str | None:
        return self._of_key.get(api_key)

    def limits_of(self, name: str) -> RateLimits | None:
        return self._limits.get(name)

    def names(self) -> list[str]:
        return sorted(self._limits)

    def keys_in(self, name: str) -> list[str]:
        return sorted(k for k, w in self._of_key.items() if w == name)
