"""Serving an ASGI app with uvicorn on 127.0.0.1 in a background thread.

The simulator and lesson 02's relay both need this: safe to start from a Jupyter kernel (the
server runs its own event loop in its own thread) and from pytest, on a free port, and shut down
cleanly.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

__all__ = ["HOST", "ThreadedServer"]

HOST = "127.0.0.1"
"""Course servers only ever listen on loopback."""


class ThreadedServer:
    """An ASGI app served by uvicorn in a daemon thread; a context manager."""

    def __init__(
        self,
        app: Any,
        *,
        name: str = "asgi-server",
        port: int = 0,
        backlog: int = 2048,
        log_level: str = "warning",
        graceful_timeout: int = 2,
    ) -> None:
        self.app = app
        self._name = name
        self._port = port
        self._backlog = backlog
        self._log_level = log_level
        self._graceful_timeout = graceful_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self, timeout: float = 10.0) -> "ThreadedServer":
        """Bind the port on 127.0.0.1 and serve until :meth:`stop`; returns self."""
        if self._thread is not None:
            return self
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
        # says TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self._port))
        sock.listen(self._backlog)
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level=self._log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=self._graceful_timeout,
            backlog=self._backlog,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=self._name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self._name} failed to start")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down (open responses get the graceful timeout to finish) and join the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        # Closing the socket under a server that is still shutting down breaks its shutdown; a
        # daemon thread that overran the timeout keeps its socket and dies with the process.
        if self._socket is not None and (self._thread is None or not self._thread.is_alive()):
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> "ThreadedServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._socket is None:
            raise RuntimeError(f"{self._name} not started")
        return self._socket.getsockname()[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"
