"""Running the simulator: in a background thread (notebooks, tests) or in the foreground (CLI)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from ..serving import HOST, ThreadedServer
from .config import SimulatorConfig, effective_time_scale
from .controls import SimulatorControls
from .app import create_app
from .simulator import DroppedConnection, Simulator

__all__ = ["MockServer", "mock_server", "HOST"]


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


class MockServer(SimulatorControls, ThreadedServer):
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
            seed=seed,
            time_scale=effective_time_scale(time_scale),
            scenario=scenario,
            state_dir=Path(state_dir) if state_dir else None,
            rate_limit_tier=rate_limit_tier,
        )
        self.simulator = Simulator(config, clock=clock)
        super().__init__(create_app(self.simulator), name="mock-anthropic", port=port, log_level=log_level)

    def start(self, timeout: float = 10.0) -> "MockServer":
        """Bind a port on 127.0.0.1 and serve until :meth:`stop`."""
        super().start(timeout)
        return self

    def __enter__(self) -> "MockServer":
        return self.start()

    def configure(self, *, seed: int | None = None, time_scale: float | None = None, cap: bool = True) -> None:
        """Change the seed and/or time scale (1 = realistic, 0 = instant) of the running server.

        The CI cap (``COURSE_FORCE_TIME_SCALE``) applies to ``time_scale`` as at start-up, unless
        ``cap=False`` says this scale must hold exactly (a check or test that needs its pacing).
        """
        if time_scale is not None and cap:
            time_scale = effective_time_scale(time_scale)
        self.simulator.configure(seed=seed, time_scale=time_scale)

    def client(self, api_key: str = "sim-key-default", **kwargs: Any) -> Any:
        """An ``anthropic.Anthropic`` client pointed at this server."""
        import anthropic

        return anthropic.Anthropic(base_url=self.base_url, api_key=api_key, **kwargs)

    def async_client(self, api_key: str = "sim-key-default", **kwargs: Any) -> Any:
        """An ``anthropic.AsyncAnthropic`` client pointed at this server."""
        import anthropic

        return anthropic.AsyncAnthropic(base_url=self.base_url, api_key=api_key, **kwargs)

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"MockServer({where}, seed={self.config.seed}, time_scale={self.config.time_scale})"


def mock_server(**kwargs: Any) -> MockServer:
    """``with mock_server(seed=0, time_scale=0.05) as server:`` — a started simulator on a free port."""
    return MockServer(**kwargs)
