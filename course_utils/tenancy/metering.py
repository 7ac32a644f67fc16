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
reported as unattributed, and the reconciliation does not balance. That per-request ledger is the
simulator's: the real provider's reports are not per request and not split by ``metadata.user_id``.

What a service can reconcile against on the real API is the Usage and Cost Admin API, which groups
usage by API key, workspace, model and service tier (batch or standard). So the meter writes a
**pending row at reservation**, before the request is sent (:meth:`Meter.pending`: tenant, key,
model, worst-case estimate) and settles it with the response's ``usage``. An answer lost on the way
back leaves its pending row. :func:`reconcile_report` compares, per (key, model, batch) group, the
provider's total with what was metered: a gap is charged to that group's pending rows (exactly, when
there is one; in proportion to their estimates, flagged, when there are several); a gap with no
pending row to explain it, or a meter above the provider, is reported as unexplained.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
import uuid
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Mapping

from .. import pricing
from .registry import TenantContext

__all__ = [
    "UsageRecord",
    "PendingRow",
    "Meter",
    "GroupCheck",
    "ReportReconciliation",
    "reconcile_report",
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
    api_key: str | None = None
    """The provider API key the request went out with (the Usage API groups by it)."""


@dataclass(frozen=True)
class PendingRow:
    """A request metered at reservation, before it was sent: settled by its response, or left
    pending if the answer never arrived (then :func:`reconcile_report` charges it the provider's gap)."""

    pending_id: str
    tenant_id: str
    api_key: str
    model: str
    batch: bool
    estimate_usd: Decimal


class Meter:
    """Usage per tenant, recorded from each response (thread-safe).

    Recording the same request twice is a no-op (a retried *recording* must not bill twice).
    """

    def __init__(self) -> None:
        self._records: dict[str, UsageRecord] = {}
        self._pending: dict[str, PendingRow] = {}
        self._lock = threading.Lock()

    def pending(
        self, tenant: TenantContext, *, api_key: str, model: str, estimate: Decimal, batch: bool = False
    ) -> str:
        """Write a pending row before the request is sent (at reservation); returns its id for
        :meth:`record` (``pending_id=``) or :meth:`cancel`."""
        if not isinstance(tenant, TenantContext):
            raise TypeError("meter usage under the TenantContext of the authenticated tenant")
        if not isinstance(estimate, Decimal) or estimate < 0:
            raise ValueError(f"an estimate is a Decimal >= 0, not {estimate!r}")
        row = PendingRow(uuid.uuid4().hex, tenant.tenant_id, api_key, model, batch, estimate)
        with self._lock:
            self._pending[row.pending_id] = row
        return row.pending_id

    def cancel(self, pending_id: str) -> None:
        """Drop a pending row whose request was refused with an error response (nothing was billed)."""
        with self._lock:
            self._pending.pop(pending_id, None)

    def pending_rows(self) -> list[PendingRow]:
        """Rows written at reservation and never settled: answers that were lost, or are still in flight."""
        with self._lock:
            return list(self._pending.values())

    def record(
        self,
        tenant: TenantContext,
        message: Any,
        *,
        request_id: str | None = None,
        batch_id: str | None = None,
        custom_id: str | None = None,
        pending_id: str | None = None,
        api_key: str | None = None,
    ) -> UsageRecord:
        """Meter one response (an SDK ``Message`` or its dict) for ``tenant``.

        ``request_id`` defaults to the SDK's ``message._request_id`` (the ``request-id`` header);
        a batch result is named by ``batch_id`` and ``custom_id`` and priced at the batch discount.
        ``pending_id`` settles the row :meth:`pending` wrote (its key is the record's ``api_key``).
        """
        if not isinstance(tenant, TenantContext):
            raise TypeError("meter usage under the TenantContext of the authenticated tenant")
        if pending_id is not None:
            with self._lock:
                held = self._pending.get(pending_id)
            if held is None:
                raise KeyError(f"no pending row {pending_id!r} (settled already, or never written)")
            if held.tenant_id != tenant.tenant_id:
                raise ValueError(f"pending row of tenant {held.tenant_id!r} settled as {tenant.tenant_id!r}")
            api_key = api_key or held.api_key
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
            cost_usd=pricing.cost(usage, model, batch=batch),
            api_key=api_key,
        )
        with self._lock:
            if pending_id is not None:
                self._pending.pop(pending_id, None)
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
    """Attribute every billed ledger row to a tenant, exactly (against the simulator's per-request ledger).

    The real provider reports neither per request nor per ``metadata.user_id``: reconcile with
    :func:`reconcile_report` (totals per key, model and batch) there.

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


@dataclass(frozen=True)
class GroupCheck:
    """One (key, model, batch) group of the provider's report against the meter."""

    api_key: str | None
    model: str | None
    batch: bool
    provider_usd: Decimal
    metered_usd: Decimal
    pending: int
    gap_usd: Decimal
    outcome: str
    """``exact`` (no gap), ``lost answer`` (a gap charged to the one pending row), ``lost answers, split
    by estimate`` (several), ``unexplained`` (a gap no pending row explains, or a meter above the provider)."""


@dataclass
class ReportReconciliation:
    """The provider's totals per (key, model, batch) against the meter, and each tenant's charge."""

    groups: list[GroupCheck]
    per_tenant: dict[str, Decimal]
    provider_total: Decimal
    charged_pending: dict[str, Decimal] = field(default_factory=dict)
    """pending id -> the share of its group's gap it was charged."""

    @property
    def attributed_total(self) -> Decimal:
        return sum(self.per_tenant.values(), Decimal(0))

    @property
    def unexplained(self) -> list[GroupCheck]:
        return [g for g in self.groups if g.outcome == "unexplained"]

    @property
    def estimated(self) -> list[GroupCheck]:
        """Groups whose gap was split among several pending rows by estimate (not exact per tenant)."""
        return [g for g in self.groups if g.outcome.endswith("split by estimate")]

    @property
    def balanced(self) -> bool:
        return not self.unexplained and self.attributed_total == self.provider_total

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([asdict(g) for g in self.groups])


def _group_of(api_key: Any, model: Any, batch: Any) -> tuple[Any, Any, bool]:
    return (api_key, model, bool(batch))


def reconcile_report(
    records: Iterable[UsageRecord],
    pending: Iterable[PendingRow],
    provider_totals: Iterable[Mapping[str, Any]],
) -> ReportReconciliation:
    """Reconcile the meter with the provider's totals per (API key, model, batch).

    ``provider_totals``: one mapping per group with ``api_key``, ``model``, ``batch`` and ``cost_usd``
    (a Decimal or its string, never a float): what the Usage and Cost API reports per key, model and
    service tier (the simulator's ``ledger.usage_summary(by=("api_key", "model", "batch"))``). Per
    group, the gap ``provider - metered`` is charged to the group's pending rows: all of it to one
    row; split in proportion to their estimates among several (the last row takes the remainder, so
    the sum is exact). A positive gap with no pending row, or a negative one, is ``unexplained``.
    Pending rows of a group with no gap were never billed (an error the meter did not cancel): charged 0.
    """
    metered: dict[tuple[Any, Any, bool], Decimal] = {}
    per_tenant: dict[str, Decimal] = {}
    for r in records:
        g = _group_of(r.api_key, r.model, r.batch)
        metered[g] = metered.get(g, Decimal(0)) + r.cost_usd
        per_tenant[r.tenant_id] = per_tenant.get(r.tenant_id, Decimal(0)) + r.cost_usd
    waiting: dict[tuple[Any, Any, bool], list[PendingRow]] = {}
    for p in pending:
        waiting.setdefault(_group_of(p.api_key, p.model, p.batch), []).append(p)
    provider: dict[tuple[Any, Any, bool], Decimal] = {}
    for row in provider_totals:
        raw = row.get("cost_usd")
        if isinstance(raw, float):
            raise TypeError("provider totals must be exact (Decimal or str), not float")
        g = _group_of(row.get("api_key"), row.get("model"), row.get("batch"))
        provider[g] = provider.get(g, Decimal(0)) + Decimal(str(raw or 0))
    result = ReportReconciliation(groups=[], per_tenant=per_tenant, provider_total=sum(provider.values(), Decimal(0)))
    for g in sorted(set(provider) | set(metered) | set(waiting), key=lambda k: tuple(str(x) for x in k)):
        billed, ours, rows = provider.get(g, Decimal(0)), metered.get(g, Decimal(0)), waiting.get(g, [])
        gap = billed - ours
        if gap == 0:
            gap = Decimal(0)  # not 0E-7: a zero reads as 0
            outcome = "exact"
            for p in rows:
                result.charged_pending[p.pending_id] = Decimal(0)
        elif gap < 0 or not rows:
            outcome = "unexplained"
        else:
            outcome = "lost answer" if len(rows) == 1 else "lost answers, split by estimate"
            weights = sum((p.estimate_usd for p in rows), Decimal(0))
            left = gap
            for i, p in enumerate(rows):
                share = left if i == len(rows) - 1 else (gap * p.estimate_usd / weights if weights else gap / len(rows))
                left -= share
                result.charged_pending[p.pending_id] = share
                per_tenant[p.tenant_id] = per_tenant.get(p.tenant_id, Decimal(0)) + share
        result.groups.append(GroupCheck(g[0], g[1], g[2], billed, ours, len(rows), gap, outcome))
    return result
