"""A simulator for checks: grade behaviour through the request ledger, not through return values.

Checks never use the student's shared simulator (its ledger is theirs to explore) nor the real
API (checks must be free and deterministic). Each :class:`Probe` gets its own API key, so the
ledger rows it reads are exactly the requests the student's code made with the probe's client.
"""

from __future__ import annotations

import atexit
import threading
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["check_server", "probe", "Probe", "paced_server", "paced_probe"]

_lock = threading.Lock()
_server: Any = None
_paced: dict[float, Any] = {}


def check_server() -> Any:
    """The process-wide simulator the checks use (seed 0, no simulated latency), started on first use."""
    global _server
    with _lock:
        if _server is None:
            from ..mock_provider.server import mock_server

            _server = mock_server(seed=0, time_scale=0.0).start()
            atexit.register(_server.stop)
        return _server


@dataclass
class Probe:
    """Clients with a private API key, and the ledger rows of their requests."""

    server: Any
    api_key: str

    def client(self, **kwargs: Any) -> Any:
        """A sync SDK client; no SDK retries, so the ledger shows every request the code made."""
        kwargs.setdefault("max_retries", 0)
        return self.server.client(api_key=self.api_key, **kwargs)

    def async_client(self, **kwargs: Any) -> Any:
        """An async SDK client (see :meth:`client`)."""
        kwargs.setdefault("max_retries", 0)
        return self.server.async_client(api_key=self.api_key, **kwargs)

    def script(self, pattern: Any, reply: str) -> None:
        """Make the simulated model answer ``reply`` when the last user turn matches ``pattern``."""
        self.server.script(pattern, reply)

    def requests(self, endpoint: str | None = "/v1/messages") -> Any:
        """This probe's ledger rows (a pandas DataFrame), optionally for one endpoint only."""
        df = self.server.ledger()
        if len(df) == 0:
            return df
        df = df[df["api_key"] == self.api_key]
        if endpoint is not None:
            df = df[df["endpoint"] == endpoint]
        return df.reset_index(drop=True)


def probe() -> Probe:
    """A fresh probe on a reset check server (scripted replies from earlier checks are forgotten)."""
    server = check_server()
    server.reset()
    return Probe(server, f"sim-key-check-{uuid.uuid4().hex[:12]}")


def paced_server(time_scale: float) -> Any:
    """A process-wide simulator whose latency runs at exactly ``time_scale``, with no rate limits.

    For checks that must see requests overlap or a client leave mid-stream: they need pacing
    even in CI, where ``COURSE_FORCE_TIME_SCALE`` caps every other simulator's latency, so the
    scale is set on the simulator directly.
    """
    with _lock:
        server = _paced.get(time_scale)
        if server is None:
            from ..mock_provider.server import mock_server

            server = mock_server(seed=0, time_scale=time_scale, rate_limit_tier="unlimited").start()
            server.simulator.set_time_scale(time_scale)
            atexit.register(server.stop)
            _paced[time_scale] = server
        return server


def paced_probe(time_scale: float, tag: str = "check") -> Probe:
    """A probe with its own API key on :func:`paced_server`."""
    return Probe(paced_server(time_scale), f"sim-key-{tag}-{uuid.uuid4().hex[:12]}")

