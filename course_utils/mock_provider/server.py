"""Running the simulator: in a background thread (notebooks, tests) or in the foreground (CLI)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from ..clock import SYSTEM_CLOCK, Clock
from .config import SimulatorConfig, effective_time_scale
from .simulator import DroppedConnection, Simulator, create_app

__all__ = ["MockServer", "mock_server", "HOST"]

HOST = "127.0.0.1"
"""The simulator only ever listens on loopback."""


class _QuietDrops(logging.Filter):
    """Injected mid-stream disconnects are intended; don't log them as application errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, DroppedConnection):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class MockServer:
    """A simulator served by uvicorn on 127.0.0.1 in a daemon thread.

    Safe to start from a Jupyter kernel (it runs its own event loop in its own thread) and from
    pytest. Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        scenario: str = "calm",
        state_dir: str | Path | None = None,
        rate_limit_tier: str = "default",
        port: int = 0,
        clock: Clock = SYSTEM_CLOCK,
        log_level: str = "warning",
    ) -> None:
        config = SimulatorConfig(
            seed=seed, time_scale=effective_time_scale(time_scale), scenario=scenario, state_dir=Path(state_dir) if state_dir else None,
            rate_limit_tier=rate_limit_tier,
        )
        self.simulator = Simulator(config, clock=clock)
        self._port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # ----- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "MockServer":
        """Bind a port on 127.0.0.1 and serve until :meth:`stop`."""
        if self._thread is not None:
            return self
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
        # says TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self._port))
        sock.listen(2048)
        self._socket = sock
        config = uvicorn.Config(
            create_app(self.simulator),
            log_level=self._log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="mock-anthropic", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulated API failed to start")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        # Closing the socket under a server that is still shutting down breaks its shutdown; a
        # daemon thread that overran the timeout keeps its socket and dies with the process.
        if self._socket is not None and (self._thread is None or not self._thread.is_alive()):
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> "MockServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ----- what notebooks use --------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("server not started")
        return self._socket.getsockname()[1]

    @property
    def base_url(self) -> str:
        """Pass to ``anthropic.Anthropic(base_url=...)``."""
        return f"http://{HOST}:{self.port}"

    @property
    def config(self) -> SimulatorConfig:
        return self.simulator.config

    def ledger(self) -> Any:
        """Every request served so far, as a pandas DataFrame (one row per request)."""
        return self.simulator.ledger.dataframe()

    def script(self, pattern: Any, reply: str) -> None:
        """Make the simulated model answer ``reply`` when the last user turn matches ``pattern``."""
        self.simulator.script(pattern, reply)

    def reset(self) -> None:
        """Clear the ledger, scripted replies, prompt cache and rate-limit buckets."""
        self.simulator.reset()

    def set_scenario(self, scenario: Any) -> Any:
        """Switch the fault scenario: a preset (calm, flaky, overloaded, outage, rate-limited), a dict or a Scenario."""
        return self.simulator.set_scenario(scenario)

    def set_rate_limits(self, api_key: str, tier: Any) -> None:
        """Give ``api_key`` its own limits: a tier name (see ``ratelimit.TIERS``) or a ``RateLimits``."""
        self.simulator.set_rate_limits(api_key, tier)

    def set_time_scale(self, time_scale: float) -> None:
        """Change the latency scale (1 = realistic, 0 = instant) of a running server."""
        self.simulator.set_time_scale(effective_time_scale(time_scale))

    def client(self, api_key: str = "sim-key-default", **kwargs: Any) -> Any:
        """An ``anthropic.Anthropic`` client pointed at this server."""
        import anthropic

        return anthropic.Anthropic(base_url=self.base_url, api_key=api_key, **kwargs)

    def async_client(self, api_key: str = "sim-key-default", **kwargs: Any) -> Any:
        """An ``anthropic.AsyncAnthropic`` client pointed at this server."""
        import anthropic

        return anthropic.AsyncAnthropic(base_url=self.base_url, api_key=api_key, **kwargs)

    def __repr__(self) -> str:
        where = self.base_url if self._socket is not None else "stopped"
        return f"MockServer({where}, seed={self.config.seed}, time_scale={self.config.time_scale})"


def mock_server(**kwargs: Any) -> MockServer:
    """``with mock_server(seed=0, time_scale=0.05) as server:`` — a started simulator on a free port."""
    return MockServer(**kwargs)
