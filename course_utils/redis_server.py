"""A real Redis server for lessons 07 and 08: the one at ``REDIS_URL``, or a private one we start.

Shared state across processes (rate limiters, budgets, the event bus) lives in Redis. The course
never imitates Redis: tests and notebooks talk to a real ``redis-server`` binary.

* :func:`redis_url` returns ``REDIS_URL`` when it is set (your own server; nothing is started).
* :class:`RedisServer` starts a private, throw-away server on a free loopback port (no
  persistence, no config file) and stops it on exit. ``make test`` installs Debian's
  ``redis-server`` when it is missing; :func:`find_redis_server` says where it is, or ``None``.
* :func:`connect` gives a ``redis.Redis`` client for a URL, checked with ``PING``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from .errors import CourseError

__all__ = ["RedisServer", "RedisUnavailable", "redis_url", "find_redis_server", "connect", "INSTALL_HINT"]

INSTALL_HINT = (
    "Redis is not installed. `make test` installs it when run as root; otherwise run "
    "`sudo apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), "
    "or set REDIS_URL=redis://host:port/0 to use a server you already have."
)


class RedisUnavailable(CourseError, RuntimeError):
    """No Redis server could be reached or started; the message says what to do."""


def redis_url() -> str | None:
    """``REDIS_URL`` from the environment, or ``None`` when it is unset or empty."""
    return os.environ.get("REDIS_URL") or None


def find_redis_server() -> str | None:
    """Path of a ``redis-server`` binary (``PATH``, then ``/usr/bin`` and ``/usr/sbin``), or ``None``."""
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connect(url: str, **kwargs: Any):
    """A ``redis.Redis`` client for ``url`` (responses decoded to str), after a successful ``PING``.

    Raises :class:`RedisUnavailable` when the server does not answer.
    """
    import redis

    client = redis.Redis.from_url(url, decode_responses=True, **kwargs)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise RedisUnavailable(f"no Redis server answers at {url}: {exc}") from exc
    return client


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1 and a free port, for one test session or notebook.

    Use as a context manager (or call :meth:`start` / :meth:`stop`). Nothing is persisted: the
    server runs in a temporary directory with RDB and AOF off, and is killed on exit.
    """

    def __init__(self, binary: str | None = None, *, startup_timeout_s: float = 10.0) -> None:
        self.binary = binary or find_redis_server()
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` of the running server."""
        if self.port is None:
            raise RuntimeError("the server is not running")
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start the server and wait until it answers ``PING``; raise :class:`RedisUnavailable` if it cannot."""
        if self.binary is None:
            raise RedisUnavailable(INSTALL_HINT)
        self._dir = tempfile.TemporaryDirectory(prefix="course-redis-")
        self.port = _free_port()
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self._dir.name,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(Path(self._dir.name) / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Startup is a wall-clock wait for an external process, not a measured duration.
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._process.poll() is not None:
                log = Path(self._dir.name, "redis.log")
                detail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                self.stop()
                raise RedisUnavailable(f"redis-server exited at startup: {detail.strip()}")
            try:
                connect(self.url, socket_connect_timeout=0.2).close()
                return self
            except RedisUnavailable:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RedisUnavailable(f"redis-server did not answer within {self.startup_timeout_s} s") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (idempotent) and remove its directory."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
