"""Spend limits an organisation or a workspace set for itself (USD per calendar month).

Errors page (https://platform.claude.com/docs/en/api/errors): "The API also returns a 400 when usage
reaches an organization or workspace spend limit you set" — unlike a usage tier's monthly cap, a 429
(:class:`~.errors.SpendLimitReached`). Rate-limits page: "You can't set limits on the default
Workspace", and a customer-set limit "cannot exceed your current tier's cap" (not modelled: the
simulator has no tier caps). Message Batches "may slightly exceed a workspace spend limit": their
results are billed as they finish, whatever the limit.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from .errors import UserSpendLimitReached

__all__ = ["SpendLimits", "regain_access_date"]


def regain_access_date(now: float) -> str:
    """00:00 UTC on the first day of the month after ``now`` (when monthly spend starts again)."""
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return f"{year:04d}-{month:02d}-01 at 00:00 UTC"


def _month(now: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(now))


class SpendLimits:
    """Limits per scope (an organisation, or a named workspace) and what each scope spent per month."""

    def __init__(self) -> None:
        self._limits: dict[str, Decimal] = {}
        self._spent: dict[tuple[str, str], Decimal] = {}
        self._lock = threading.Lock()

    def set(self, scope: str, usd: Decimal | float | str | None) -> None:
        """Limit ``scope`` to ``usd`` a month (``None``: no limit of its own)."""
        with self._lock:
            if usd is None:
                self._limits.pop(scope, None)
                return
            amount = Decimal(str(usd))
            if amount < 0:
                raise ValueError("a spend limit is a non-negative amount of USD")
            self._limits[scope] = amount

    def check(self, now: float, org: str, workspace: str | None) -> None:
        """Refuse (400) a request of a key in ``org`` / named ``workspace`` whose limit is reached."""
        month = _month(now)
        with self._lock:
            for scope, is_workspace in ((workspace, True), (org, False)):
                if scope is None or scope not in self._limits:
                    continue
                if self._spent.get((scope, month), Decimal(0)) >= self._limits[scope]:
                    raise UserSpendLimitReached(regain_access_date(now), workspace=is_workspace)

    def add(self, now: float, org: str, workspace: str | None, cost: Decimal) -> None:
        """Count ``cost`` against the organisation's month and, if any, the named workspace's."""
        if cost <= 0:
            return
        month = _month(now)
        with self._lock:
            for scope in (org, workspace):
                if scope is not None:
                    self._spent[(scope, month)] = self._spent.get((scope, month), Decimal(0)) + cost

    def spent(self, scope: str, now: float) -> Decimal:
        with self._lock:
            return self._spent.get((scope, _month(now)), Decimal(0))

    def reset(self) -> None:
        """Forget what was spent (limits are kept)."""
        with self._lock:
            self._spent.clear()
