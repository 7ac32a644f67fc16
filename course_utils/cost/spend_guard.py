"""A spend guard: reserve a request's worst-case cost before sending it, settle to the real cost after.

Checking ``spent + estimate <= budget`` and adding the cost when the answer comes back races: 50
concurrent requests all pass the check before the first one has been charged, and the budget is
overshot by up to 50 requests' worth. A reservation closes the gap: the worst case (every input
token plus ``max_tokens`` of output at the model's price) is taken from the budget *before* the
first ``await``, in the same step as the check, so concurrent callers see each other's claims.
When the reply arrives the reservation is settled to the actual cost from ``usage``, which frees
the difference. An error *response* (4xx/5xx) carries no usage to settle to and releases its
reservation; a request whose answer was lost (timeout, dropped connection) may still have been
processed, so it stays charged at the worst case: the guard errs on the side of the budget.

The guard is safe across tasks of one event loop and across threads (one lock, held only for
arithmetic, never across an ``await``). For a budget shared by processes, lesson 07 keeps the same
reserve/settle protocol in Redis.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

import anthropic

from ..pricing import cost, price
from ..tokens import count_request
from .errors import CostError

__all__ = ["BudgetExceeded", "Reservation", "SpendGuard", "worst_case_cost"]


def worst_case_cost(body: Mapping[str, Any], *, batch: bool = False) -> Decimal:
    """The most ``body`` can cost: its input (offline count, uncached) plus ``max_tokens`` of output.

    Uncached input is the worst case for the input side: cache writes cost more per token, but a
    request without ``cache_control`` writes nothing; bodies that set ``cache_control`` are priced
    at the 1-hour write rate to stay an upper bound.
    """
    model, max_tokens = body.get("model"), body.get("max_tokens")
    if not model or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError("a body needs a model and a positive integer max_tokens to bound its cost")
    p = price(str(model))
    prompt = count_request(body)
    rate = p.cache_write_1h_per_mtok if "cache_control" in repr(body) else p.input_per_mtok
    factor = p.batch_discount if batch else Decimal(1)
    if p.long_prompt_threshold is not None and prompt > p.long_prompt_threshold:
        factor *= p.long_prompt_multiplier  # the long-prompt tier reprices the whole request
    return (rate * prompt + p.output_per_mtok * max_tokens) * factor / Decimal(1_000_000)


class BudgetExceeded(CostError, RuntimeError):
    """Raised by :meth:`SpendGuard.reserve` when the worst case does not fit in what is left.

    ``needed`` is the refused request's worst case and ``available`` what the budget had left, in
    dollars. Every budget guard's refusal is one (lesson 07's ``TenantBudgetExceeded`` too, which
    passes its own ``message``), so ``except BudgetExceeded`` catches a refusal from either guard.
    """

    def __init__(self, needed: Decimal, available: Decimal, message: str | None = None) -> None:
        self.needed, self.available = needed, available
        super().__init__(message or f"request may cost up to ${needed} but only ${available} of the budget is left")


@dataclass(frozen=True)
class Reservation:
    """A claim of ``amount`` dollars on a guard's budget (settle or release it exactly once)."""

    id: int
    amount: Decimal


class SpendGuard:
    """A dollar budget that concurrent requests reserve from and settle against.

    ``spent`` is what settled requests really cost, ``reserved`` what in-flight requests may still
    cost; ``spent + reserved <= budget`` at every moment.
    """

    def __init__(self, budget: Decimal | int | str) -> None:
        if isinstance(budget, float):
            raise TypeError("pass the budget as Decimal or str, not float (money is exact here)")
        self.budget = Decimal(budget)
        if self.budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        self.spent = Decimal(0)
        self._open: dict[int, Decimal] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.refused = 0

    @property
    def reserved(self) -> Decimal:
        """Dollars held by reservations not yet settled."""
        with self._lock:
            return sum(self._open.values(), Decimal(0))

    @property
    def available(self) -> Decimal:
        """Budget neither spent nor reserved."""
        with self._lock:
            return self.budget - self.spent - sum(self._open.values(), Decimal(0))

    def reserve(self, amount: Decimal) -> Reservation:
        """Claim ``amount`` now or raise :class:`BudgetExceeded` (check and claim are one step)."""
        if amount < 0:
            raise ValueError(f"cannot reserve a negative amount ({amount})")
        with self._lock:
            available = self.budget - self.spent - sum(self._open.values(), Decimal(0))
            if amount > available:
                self.refused += 1
                raise BudgetExceeded(amount, available)
            reservation = Reservation(next(self._ids), amount)
            self._open[reservation.id] = amount
            return reservation

    def settle(self, reservation: Reservation, actual: Decimal) -> None:
        """Replace the reservation by the ``actual`` cost (which may exceed it only if the estimate was wrong)."""
        with self._lock:
            if self._open.pop(reservation.id, None) is None:
                raise ValueError(f"reservation {reservation.id} is not open (settled or released already)")
            self.spent += actual

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back unspent (the request failed before it was billed)."""
        with self._lock:
            if self._open.pop(reservation.id, None) is None:
                raise ValueError(f"reservation {reservation.id} is not open (settled or released already)")

    async def create(self, client: Any, **body: Any) -> Any:
        """``client.messages.create(**body)`` inside a reservation of its worst case, settled to ``usage``."""
        reservation = self.reserve(worst_case_cost(body))
        try:
            message = await client.messages.create(**body)
        except anthropic.APIStatusError:
            self.release(reservation)
            raise
        except BaseException:
            # The answer is lost, not refused: it may have been billed, so keep the worst case.
            self.settle(reservation, reservation.amount)
            raise
        self.settle(reservation, cost(message.usage, message.model or body["model"]))
        return message
