"""A tenant of the simulator: one API key, its own SDK clients and its own view of the ledger.

Rate limits belong to the organisation, not the key: a tenant's key shares the simulated
organisation's limits unless the tenant is made an organisation of its own (``tier=...``) or its
workspace has lower limits (``workspace=...``); see :meth:`SimulatorControls.tenant`.

Lesson 07 (multi-tenant systems) and any check that needs callers told apart use
``server.tenant("acme", tier="tier-1")`` instead of hand-made keys and ledger queries.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from .exchange import mask_key

__all__ = ["Tenant", "tenant_key"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def tenant_key(name: str) -> str:
    """The API key that names tenant ``name`` on the simulator (``sim-tenant-<name>``)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"a tenant name is 1-64 letters, digits, '_', '.' or '-' (starting with a letter or digit), not {name!r}"
        )
    return f"sim-tenant-{name}"


class _Server(Protocol):
    """What a tenant needs of the server that made it (:class:`~.controls.SimulatorControls`)."""

    def client(self, **kwargs: Any) -> Any: ...

    def async_client(self, **kwargs: Any) -> Any: ...

    def ledger(self) -> Any: ...


class Tenant:
    """One tenant of a running simulator (made by ``server.tenant(name, tier)``).

    ``client()`` / ``async_client()`` are the official SDK clients, authenticated with the
    tenant's own key, so every request they make is the tenant's: admitted against its rate
    limits and recorded on the ledger under its key. ``ledger()`` shows those rows only.
    """

    def __init__(self, server: _Server, name: str) -> None:
        self.name = name
        self.api_key = tenant_key(name)
        self._server = server

    def client(self, **kwargs: Any) -> Any:
        """An ``anthropic.Anthropic`` client sending the tenant's key (SDK options pass through)."""
        return self._server.client(api_key=self.api_key, **kwargs)

    def async_client(self, **kwargs: Any) -> Any:
        """An ``anthropic.AsyncAnthropic`` client sending the tenant's key (SDK options pass through)."""
        return self._server.async_client(api_key=self.api_key, **kwargs)

    def ledger(self) -> Any:
        """The ledger rows of this tenant's requests only (a pandas DataFrame, index from 0)."""
        df = self._server.ledger()
        return df[df["api_key"] == mask_key(self.api_key)].reset_index(drop=True)

    def __repr__(self) -> str:
        return f"Tenant({self.name!r}, api_key={self.api_key!r})"
