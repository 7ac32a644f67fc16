"""A simulator for checks: grade behaviour through the request ledger, not through return values.

Every :func:`probe` is a fresh in-process simulator (:class:`InProcessServer`) that SDK clients
call without sockets. Async cases run on a virtual-time loop (see :mod:`.runner`), so the
simulator's latency, rate limits and ``retry-after`` share the answer's clock: a check's verdict
is a function of the answer and the seed only, never of how busy the machine is. Checks never use
the student's own simulator (its ledger is theirs to explore) nor the real API.
"""

from __future__ import annotations

import inspect
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..mock_provider.inprocess import InProcessServer

__all__ = ["probe", "Probe"]


@dataclass
class Probe:
    """Clients with a private API key on a private simulator, and the ledger rows of their requests.

    An async context manager that owns its clients and its simulator: ``async with probe(...) as p:``
    closes every client it made (:meth:`client`, :meth:`async_client`), then the simulator, on the way
    out, however the case ends. The ledger stays readable (:meth:`requests`, :meth:`cost`).
    """

    server: InProcessServer
    api_key: str
    _clients: list[Any] = field(default_factory=list, repr=False)

    def client(self, **kwargs: Any) -> Any:
        """A sync SDK client; no SDK retries, so the ledger shows every request the code made."""
        kwargs.setdefault("max_retries", 0)
        return self._own(self.server.client(api_key=self.api_key, **kwargs))

    def async_client(self, **kwargs: Any) -> Any:
        """An async SDK client (see :meth:`client`)."""
        kwargs.setdefault("max_retries", 0)
        return self._own(self.server.async_client(api_key=self.api_key, **kwargs))

    def _own(self, client: Any) -> Any:
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        """Close every client this probe made, newest first, then its simulator (its ledger stays readable)."""
        while self._clients:
            closed = self._clients.pop().close()
            if inspect.isawaitable(closed):
                await closed
        self.server.close()

    async def __aenter__(self) -> "Probe":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def cost(self) -> Decimal:
        """Exact dollars the provider billed this probe's key: the sum of its ledger rows' ``cost_usd``.

        The ledger's own figure, not a re-pricing of the usage columns: it already holds what pricing
        alone cannot see (a billed answer that was lost, the batch discount, the cache write's TTL).
        ``tests/test_checks_sim.py`` checks that the two agree on plain, cached, failed and lost requests.
        """
        rows = self.server.simulator.ledger.rows()
        return sum((r.cost_usd for r in rows if r.api_key == self.api_key), Decimal(0))

    def script(self, pattern: Any, reply: str) -> None:
        """Make the simulated model answer ``reply`` when the last user turn matches ``pattern``."""
        self.server.script(pattern, reply)

    def rows(self, endpoint: str | None = "/v1/messages") -> list[Any]:
        """This probe's ledger rows as the simulator keeps them (``LedgerRow``), optionally for one
        endpoint only: what :meth:`requests` tabulates, without building a DataFrame (for polling)."""
        rows = self.server.simulator.ledger.rows()
        return [r for r in rows if r.api_key == self.api_key and (endpoint is None or r.endpoint == endpoint)]

    def requests(self, endpoint: str | None = "/v1/messages") -> Any:
        """This probe's ledger rows (a pandas DataFrame), optionally for one endpoint only."""
        df = self.server.ledger()
        if len(df) == 0:
            return df
        df = df[df["api_key"] == self.api_key]
        if endpoint is not None:
            df = df[df["endpoint"] == endpoint]
        return df.reset_index(drop=True)


def probe(*, time_scale: float = 1.0, tier: Any = None, tag: str = "check") -> Probe:
    """A probe on a new simulator (seed 0) with realistic latency, free on virtual time.

    ``tier`` gives the probe's key its own rate limits (e.g. ``"unlimited"``); ``time_scale`` 0
    removes latency where a case wants none.
    """
    server = InProcessServer(seed=0, time_scale=time_scale)
    p = Probe(server, f"sim-key-{tag}-{uuid.uuid4().hex[:12]}")
    if tier is not None:
        server.set_rate_limits(p.api_key, tier)
    return p
