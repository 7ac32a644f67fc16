"""The tenant registry: who the tenants are, their plans, and authentication.

The tenant of a request is decided here and only here: :meth:`TenantRegistry.authenticate` turns
an API key the product issued into a :class:`TenantContext`. Every tenant-scoped API of this
package (stores, caches, limiters, budgets, meters) takes that context, never a tenant id read
from a request body or header the user controls, so a user cannot name someone else's tenant.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Iterator

from .plans import Plan, get_plan
from .errors import TenancyError

__all__ = ["TenantContext", "TenantRegistry", "Unauthenticated", "ModelNotAllowed", "check_tenant_id"]

_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_MINT = object()  # only this module can make a TenantContext


class Unauthenticated(TenancyError, PermissionError):
    """The API key is missing or not one the registry issued (answer 401; say nothing more)."""


class ModelNotAllowed(TenancyError, PermissionError):
    """The tenant's plan does not include the model it asked for (answer 403)."""


def check_tenant_id(tenant_id: str) -> str:
    """``tenant_id`` if it is 1-64 lowercase letters, digits, ``_`` or ``-``; else ``ValueError``.

    Tenant ids become parts of Redis keys and cache keys, so they may not contain separators.
    """
    if not isinstance(tenant_id, str) or not _TENANT_ID.fullmatch(tenant_id):
        raise ValueError(
            f"a tenant id is 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit; "
            f"got {tenant_id!r}"
        )
    return tenant_id


@dataclass(frozen=True, init=False)
class TenantContext:
    """An authenticated tenant: its id and plan. Made only by :meth:`TenantRegistry.authenticate`
    (or :meth:`TenantRegistry.context` for trusted server-side jobs), never from request data."""

    tenant_id: str
    plan: Plan

    def __init__(self, tenant_id: str, plan: Plan, *, _mint: object = None) -> None:
        if _mint is not _MINT:
            raise TypeError("a TenantContext comes from TenantRegistry.authenticate(api_key), not from request data")
        object.__setattr__(self, "tenant_id", tenant_id)
        object.__setattr__(self, "plan", plan)

    def check_model(self, model: str) -> None:
        """Raise :class:`ModelNotAllowed` unless the tenant's plan includes ``model``."""
        if not self.plan.allows(model):
            raise ModelNotAllowed(
                f"the {self.plan.name} plan of tenant {self.tenant_id!r} does not include {model!r}; "
                f"it includes {', '.join(sorted(self.plan.models))}"
            )

    def __repr__(self) -> str:
        return f"TenantContext({self.tenant_id!r}, plan={self.plan.name!r})"


def _digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class TenantRegistry:
    """Tenants, their plans and the API keys the product issued to them (thread-safe).

    Keys are stored as SHA-256 digests only: a leaked registry does not leak usable keys. A leaked
    key is revoked (:meth:`revoke_key`), rotated (:meth:`rotate_key`), or all of a tenant's keys at
    once (:meth:`revoke_tenant_keys`, :meth:`remove`); each takes effect for the next request.
    """

    KEY_PREFIX = "tk_"

    def __init__(self) -> None:
        self._plans: dict[str, Plan] = {}
        self._keys: dict[str, str] = {}  # digest -> tenant id
        self._lock = threading.Lock()

    def register(self, tenant_id: str, plan: str | Plan = "free") -> str:
        """Add a tenant on ``plan`` and return a new API key for it (shown once, stored hashed).

        Raises ``ValueError`` for a malformed id, an unknown plan, or a tenant already registered.
        """
        check_tenant_id(tenant_id)
        resolved = get_plan(plan)
        with self._lock:
            if tenant_id in self._plans:
                raise ValueError(f"tenant {tenant_id!r} is already registered")
            self._plans[tenant_id] = resolved
            return self._issue_locked(tenant_id)

    def issue_key(self, tenant_id: str) -> str:
        """Another API key for an existing tenant (e.g. one per service of the customer)."""
        with self._lock:
            if tenant_id not in self._plans:
                raise KeyError(f"no tenant {tenant_id!r}")
            return self._issue_locked(tenant_id)

    def _issue_locked(self, tenant_id: str) -> str:
        key = self.KEY_PREFIX + secrets.token_urlsafe(24)
        self._keys[_digest(key)] = tenant_id
        return key

    def revoke_key(self, api_key: str) -> bool:
        """Make ``api_key`` invalid at once (a leaked key): the next :meth:`authenticate` of it raises
        :class:`Unauthenticated`. The tenant's other keys stay valid. False if the key was not valid."""
        if not isinstance(api_key, str):
            return False
        with self._lock:
            return self._keys.pop(_digest(api_key), None) is not None

    def rotate_key(self, api_key: str) -> str:
        """Replace ``api_key`` by a new key of the same tenant, in one step: the old key is invalid when
        this returns. Raises :class:`Unauthenticated` if ``api_key`` is not valid (nothing changes)."""
        digest = _digest(api_key) if isinstance(api_key, str) else ""
        with self._lock:
            tenant_id = self._keys.pop(digest, None)
            if tenant_id is None:
                raise Unauthenticated("invalid API key")
            return self._issue_locked(tenant_id)

    def revoke_tenant_keys(self, tenant_id: str) -> int:
        """Revoke every key of ``tenant_id`` (it stays registered; :meth:`issue_key` gives it a new one).
        Returns how many keys were revoked."""
        with self._lock:
            if tenant_id not in self._plans:
                raise KeyError(f"no tenant {tenant_id!r}")
            return self._revoke_all_locked(tenant_id)

    def remove(self, tenant_id: str) -> int:
        """Remove ``tenant_id`` and revoke all its keys at once; returns how many keys were revoked.
        Its id may be registered again afterwards (with new keys)."""
        with self._lock:
            if self._plans.pop(tenant_id, None) is None:
                raise KeyError(f"no tenant {tenant_id!r}")
            return self._revoke_all_locked(tenant_id)

    def _revoke_all_locked(self, tenant_id: str) -> int:
        digests = [d for d, t in self._keys.items() if t == tenant_id]
        for d in digests:
            del self._keys[d]
        return len(digests)

    def set_plan(self, tenant_id: str, plan: str | Plan) -> None:
        """Move a tenant to another plan (takes effect for contexts authenticated afterwards)."""
        resolved = get_plan(plan)
        with self._lock:
            if tenant_id not in self._plans:
                raise KeyError(f"no tenant {tenant_id!r}")
            self._plans[tenant_id] = resolved

    def authenticate(self, api_key: str | None) -> TenantContext:
        """The tenant an API key belongs to; :class:`Unauthenticated` for anything else."""
        if not isinstance(api_key, str) or not api_key.startswith(self.KEY_PREFIX):
            raise Unauthenticated("missing or malformed API key")
        digest = _digest(api_key)
        with self._lock:
            tenant_id = self._keys.get(digest)
            if tenant_id is None:
                raise Unauthenticated("invalid API key")
            return TenantContext(tenant_id, self._plans[tenant_id], _mint=_MINT)

    def context(self, tenant_id: str) -> TenantContext:
        """A context for ``tenant_id`` for trusted server-side work (billing, jobs, tests).

        Never call this with a tenant id that came from a request: that is what
        :meth:`authenticate` is for.
        """
        with self._lock:
            if tenant_id not in self._plans:
                raise KeyError(f"no tenant {tenant_id!r}")
            return TenantContext(tenant_id, self._plans[tenant_id], _mint=_MINT)

    def plan_of(self, tenant_id: str) -> Plan:
        """The plan of ``tenant_id`` (``KeyError`` if it is not registered)."""
        with self._lock:
            return self._plans[tenant_id]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(sorted(self._plans))

    def __len__(self) -> int:
        with self._lock:
            return len(self._plans)

    def __contains__(self, tenant_id: object) -> bool:
        with self._lock:
            return tenant_id in self._plans
