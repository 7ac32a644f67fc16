"""Metering and billing: usage per tenant from the responses, invoice lines, and reconciliation
with the provider's ledger to the exact (Decimal) dollar.

Every response carries its ``usage``: uncached input, cache writes (5-minute and 1-hour), cache
reads and output, each priced differently, and Message Batches requests at the batch discount
(``course_utils.pricing``). :class:`Meter` records one :class:`UsageRecord` per billed response
under the tenant that made it. At month end, :func:`reconcile` matches the provider's ledger
(one row per billed request: ``request-id`` for Messages calls, ``(batch id, custom id)`` for
batch requests) against the records: every dollar of the ledger must land on exactly one tenant.
A billed row the service never metered (its response was lost on the way back) is attributed by
the request's tenant tag (``metadata.user_id``), when the ledger has one; what is left is
reported as unattributed, and the reconciliation does not balance.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Mapping

from ..pricing import cost as usage_cost
from .registry import TenantContext

__all__ = [
    "UsageRecord",
    "Meter",
    "InvoiceLine",
    "Reconciliation",
    "reconcile",
    "invoice_lines",
    "invoice_csv",
    "usage_key",
    "tenant_tag",
]

CENT = Decimal("0.01")


def tenant_tag(tenant_id: str) -> str:
    """The opaque tag sent as ``metadata.user_id`` for a tenant's requests (a hash, not the name:
    the API asks for "a uuid, hash value, or other opaque identifier", no identifying information)."""
    return "tnt_" + hashlib.sha256(f"tenant-tag:{tenant_id}".encode()).hexdigest()[:24]


def usage_key(request_id: str | None = None, *, batch_id: str | None = None, custom_id: str | None = None) -> str:
    """How a billed request is named on both sides: its ``request-id``, or ``batch_id/custom_id``."""
    if batch_id is not None and custom_id is not None:
        return f"{batch_id}/{custom_id}"
    if not request_id:
        raise ValueError("a usage record needs the request-id, or the batch id and custom id")
    return request_id


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


@dataclass(frozen=True)
class UsageRecord:
    """One billed response of one tenant: its token classes and exact cost."""

    tenant_id: str
    key: str
    model: str
    batch: bool
    input_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    output_tokens: int
    cost_usd: Decimal


class Meter:
    """Usage per tenant, recorded from each response (thread-safe).

    Recording the same request twice is a no-op (a retried *recording* must not bill twice).
    """

    def __init__(self) -> None:
        self._records: dict[str, UsageRecord] = {}
        self._lock = threading.Lock()

    def record(
        self,
        tenant: TenantContext,
        message: Any,
        *,
        request_id: str | None = None,
        batch_id: str | None = None,
        custom_id: str | None = None,
    ) -> UsageRecord:
        """Meter one response (an SDK ``Message`` or its dict) for ``tenant``.

        ``request_id`` defaults to the SDK's ``message._request_id`` (the ``request-id`` header);
        a batch result is named by ``batch_id`` and ``custom_id`` and priced at the batch discount.
        """
        if not isinstance(tenant, TenantContext):
            raise TypeError("meter usage under the TenantContext of the authenticated tenant")
        batch = batch_id is not None
        key = usage_key(request_id or _get(message, "_request_id"), batch_id=batch_id, custom_id=custom_id)
        usage = _get(message, "usage")
        model = _get(message, "model")
        if usage is None or not isinstance(model, str):
            raise ValueError(f"a response to meter needs its usage and model (request {key})")
        record = UsageRecord(
            tenant_id=tenant.tenant_id,
            key=key,
            model=model,
            batch=batch,
            input_tokens=int(_get(usage, "input_tokens", 0) or 0),
            cache_write_tokens=int(_get(usage, "cache_creation_input_tokens", 0) or 0),
            cache_read_tokens=int(_get(usage, "cache_read_input_tokens", 0) or 0),
            output_tokens=int(_get(usage, "output_tokens", 0) or 0),
            cost_usd=usage_cost(usage, model, batch=batch),
        )
        with self._lock:
            return self._records.setdefault(key, record)

    def records(self) -> list[UsageRecord]:
        with self._lock:
            return list(self._records.values())

    def by_key(self) -> dict[str, UsageRecord]:
        with self._lock:
            return dict(self._records)

    def totals(self) -> dict[str, Decimal]:
        """Exact cost per tenant."""
        out: dict[str, Decimal] = {}
        for r in self.records():
            out[r.tenant_id] = out.get(r.tenant_id, Decimal(0)) + r.cost_usd
        return out

    def frame(self) -> Any:
        """One row per tenant: requests, token classes, batch requests and exact cost (a DataFrame)."""
        import pandas as pd

        lines = invoice_lines(self.records())
        return pd.DataFrame([asdict(line) for line in lines]).set_index("tenant_id") if lines else pd.DataFrame()


@dataclass(frozen=True)
class InvoiceLine:
    """A tenant's month: what it used and what it cost (exact, and rounded to the cent)."""

    tenant_id: str
    requests: int
    batch_requests: int
    input_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    output_tokens: int
    cost_usd: Decimal

    @property
    def amount_cents(self) -> Decimal:
        return self.cost_usd.quantize(CENT, rounding=ROUND_HALF_UP)


def invoice_lines(records: Iterable[UsageRecord]) -> list[InvoiceLine]:
    """One :class:`InvoiceLine` per tenant (sorted by tenant id), summed exactly."""
    acc: dict[str, dict[str, Any]] = {}
    for r in records:
        a = acc.setdefault(
            r.tenant_id,
            dict(
                requests=0,
                batch_requests=0,
                input_tokens=0,
                cache_write_tokens=0,
                cache_read_tokens=0,
                output_tokens=0,
                cost_usd=Decimal(0),
            ),
        )
        a["requests"] += 1
        a["batch_requests"] += int(r.batch)
        for k in ("input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens"):
            a[k] += getattr(r, k)
        a["cost_usd"] += r.cost_usd
    return [InvoiceLine(tenant_id=t, **a) for t, a in sorted(acc.items())]


def invoice_csv(lines: Iterable[InvoiceLine]) -> str:
    """Invoice lines as CSV: the exact cost and the amount billed (rounded to the cent)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [f for f in InvoiceLine.__dataclass_fields__]
    writer.writerow([*names, "amount_usd"])
    for line in lines:
        writer.writerow([getattr(line, n) for n in names] + [line.amount_cents])
    return out.getvalue()


@dataclass
class Reconciliation:
    """Provider ledger vs tenants: exact totals, and everything that does not match.

    ``balanced`` when every billed ledger row is attributed to a tenant and each metered cost
    equals the ledger's cost for that request, so ``sum(per_tenant) == ledger_total`` exactly.
    """

    per_tenant: dict[str, Decimal]
    ledger_total: Decimal
    attributed_by_tag: list[str] = field(default_factory=list)
    """Ledger keys billed but never metered, attributed by their tenant tag (lost responses)."""
    unattributed: list[str] = field(default_factory=list)
    """Ledger keys billed that no tenant can be charged for."""
    cost_mismatches: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)
    """(key, metered cost, ledger cost) where the two disagree."""
    not_in_ledger: list[str] = field(default_factory=list)
    """Metered keys the provider did not bill (would charge a tenant for nothing)."""

    @property
    def attributed_total(self) -> Decimal:
        return sum(self.per_tenant.values(), Decimal(0))

    @property
    def balanced(self) -> bool:
        return (
            not self.unattributed
            and not self.cost_mismatches
            and not self.not_in_ledger
            and self.attributed_total == self.ledger_total
        )


def _ledger_key(row: Mapping[str, Any]) -> str | None:
    if row.get("batch") and row.get("custom_id") is not None:
        return usage_key(batch_id=row.get("batch_id"), custom_id=row.get("custom_id"))
    if row.get("endpoint") == "/v1/messages":
        return row.get("request_id")
    return None


def reconcile(
    records: Iterable[UsageRecord],
    ledger_rows: Iterable[Mapping[str, Any]],
    *,
    tenant_of_tag: Mapping[str, str] | None = None,
) -> Reconciliation:
    """Attribute every billed ledger row to a tenant, exactly.

    ``ledger_rows``: the provider's rows as dicts with ``request_id``, ``endpoint``, ``batch``,
    ``batch_id``, ``custom_id``, ``cost_usd`` (a Decimal or its string: never a float) and
    ``tenant_tag`` (e.g. the simulator's ``ledger.records()``). A row is charged to the tenant
    that metered it; else to ``tenant_of_tag[row["tenant_tag"]]`` (the tag is an opaque id the
    service sent as ``metadata.user_id``); else it is unattributed.
    """
    metered = {r.key: r for r in records}
    tags = dict(tenant_of_tag or {})
    per_tenant: dict[str, Decimal] = {}
    result = Reconciliation(per_tenant=per_tenant, ledger_total=Decimal(0))
    seen: set[str] = set()
    for row in ledger_rows:
        raw_cost = row.get("cost_usd")
        if isinstance(raw_cost, float):
            raise TypeError("ledger costs must be exact (Decimal or str), not float")
        cost = Decimal(str(raw_cost or 0))
        key = _ledger_key(row)
        if cost == 0 or key is None:
            continue
        result.ledger_total += cost
        seen.add(key)
        record = metered.get(key)
        if record is not None:
            tenant = record.tenant_id
            if record.cost_usd != cost:
                result.cost_mismatches.append((key, record.cost_usd, cost))
        elif row.get("tenant_tag") in tags:
            tenant = tags[row["tenant_tag"]]
            result.attributed_by_tag.append(key)
        else:
            result.unattributed.append(key)
            continue
        # The tenant pays what the provider billed (the ledger is the source of truth).
        per_tenant[tenant] = per_tenant.get(tenant, Decimal(0)) + cost
    result.not_in_ledger = sorted(k for k, r in metered.items() if k not in seen and r.cost_usd > 0)
    return result
