"""The usage ledger: one row per request the simulator served.

Check cells grade behaviour from it (how many attempts, how far apart, whether anything was
billed twice), and notebooks plot it. It is the simulator's view, so it cannot be fooled by what
student code returns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

__all__ = ["LedgerRow", "Ledger", "LEDGER_COLUMNS"]


@dataclass
class LedgerRow:
    """What the simulator records about one request."""

    request_id: str
    endpoint: str
    method: str
    api_key: str | None
    model: str | None = None
    arrival: float = 0.0
    """Wall-clock time (epoch seconds) the request arrived."""
    finish: float | None = None
    status: int | None = None
    error_type: str | None = None
    stream: bool = False
    batch: bool = False
    max_tokens: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    fault: str | None = None
    custom_id: str | None = None
    batch_id: str | None = None
    disconnected: bool = False
    """The connection closed before the response was complete (the client left, or it dropped)."""
    delivered: bool = True
    """The client received the whole response. A billed row (``cost_usd > 0``) with ``delivered``
    False is work the provider charged for and the client never got (a lost response)."""
    skill: str | None = None
    tenant_tag: str | None = None
    """The request's ``metadata.user_id``: the opaque id a multi-tenant service sends per end user or
    tenant, so the provider side of the bill can be split per tenant (lesson 07)."""
    workspace: str | None = None
    """The workspace of the API key (``None`` for a key in no workspace)."""
    extra: dict[str, Any] = field(default_factory=dict)


LEDGER_COLUMNS = [f for f in LedgerRow.__dataclass_fields__ if f != "extra"]


class Ledger:
    """A thread-safe append-only list of :class:`LedgerRow` (the server's loop writes, notebooks read)."""

    def __init__(self) -> None:
        self._rows: list[LedgerRow] = []
        self._lock = threading.Lock()

    def add(self, row: LedgerRow) -> LedgerRow:
        with self._lock:
            self._rows.append(row)
        return row

    def rows(self) -> list[LedgerRow]:
        with self._lock:
            return list(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def records(self) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts (cost as a string to keep it exact)."""
        # Every column is a scalar: read the fields. ``asdict`` deep-copied ``extra`` only to drop it,
        # 85% of the time to build a 200-row frame, which checks build after every case.
        out = []
        for r in self.rows():
            d = {column: getattr(r, column) for column in LEDGER_COLUMNS}
            d["cost_usd"] = str(r.cost_usd)
            out.append(d)
        return out

    def dataframe(self) -> "Any":
        """One row per request as a pandas DataFrame (cost as float dollars for plotting)."""
        import pandas as pd

        recs = self.records()
        df = pd.DataFrame.from_records(recs, columns=LEDGER_COLUMNS)
        df["cost_usd"] = df["cost_usd"].astype(float)
        df["latency_s"] = df["finish"] - df["arrival"]
        return df

    def usage_summary(self, by: tuple[str, ...] = ("api_key", "model")) -> list[dict[str, Any]]:
        """Totals per ``by`` (default (api_key, model)) over model calls (messages and batch requests):
        requests, errors, tokens and exact cost, and what of it was charged for answers the client
        never received (``lost``, ``lost_cost_usd``). ``by=("tenant_tag",)`` is the per-tenant view
        a multi-tenant service reconciles with (``metadata.user_id``; ``None`` for untagged
        requests); ``("workspace",)`` the per-workspace one. Token counting, model listing and batch
        bookkeeping calls are free and left out."""
        unknown = [k for k in by if k not in LedgerRow.__dataclass_fields__ or k == "extra"]
        if not by or unknown:
            raise ValueError(f"usage_summary(by=...) takes ledger columns, not {unknown or 'nothing'}")
        totals: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in self.rows():
            if not (r.endpoint == "/v1/messages" or (r.batch and r.custom_id is not None)):
                continue
            group = tuple(getattr(r, k) for k in by)
            t = totals.setdefault(
                group,
                {
                    **dict(zip(by, group)),
                    "requests": 0,
                    "errors": 0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "cost_usd": Decimal(0),
                    "lost": 0,
                    "lost_cost_usd": Decimal(0),
                },
            )
            t["requests"] += 1
            t["errors"] += int((r.status or 0) >= 400)
            for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                t[k] += getattr(r, k)
            t["cost_usd"] += r.cost_usd
            if r.cost_usd > 0 and not r.delivered:
                t["lost"] += 1
                t["lost_cost_usd"] += r.cost_usd
        return [
            {**t, "cost_usd": str(t["cost_usd"]), "lost_cost_usd": str(t["lost_cost_usd"])} for t in totals.values()
        ]

    def extend(self, rows: Iterable[LedgerRow]) -> None:
        with self._lock:
            self._rows.extend(rows)
