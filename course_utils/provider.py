"""Which provider the course talks to, and the client factory.

``client()`` / ``async_client()`` return the official SDK's ``Anthropic`` / ``AsyncAnthropic``.
The default provider is the local simulator (one shared server per process, started on first
use). ``COURSE_PROVIDER=anthropic`` (or ``provider="anthropic"``) with ``ANTHROPIC_API_KEY`` set
returns a client for the real API instead; nothing else in student code changes.

The real-API client is configured exactly as the SDK configures itself: ``base_url`` and the
other SDK options are passed through untouched, so ``ANTHROPIC_BASE_URL`` (a proxy, a gateway,
or CI's stand-in simulator) applies whenever no ``base_url`` argument is given, as with
``anthropic.Anthropic()``. The simulator provider ignores it: it always talks to the local server.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

import anthropic

from .mock_provider.server import MockServer
from .errors import CourseError

__all__ = [
    "client",
    "async_client",
    "shared_server",
    "configure",
    "current_provider",
    "ProviderConfigError",
    "SIMULATOR",
    "ANTHROPIC",
]

SIMULATOR = "simulator"
ANTHROPIC = "anthropic"
_ALIASES = {"simulator": SIMULATOR, "mock": SIMULATOR, "sim": SIMULATOR, "anthropic": ANTHROPIC, "real": ANTHROPIC}
DEFAULT_SIM_KEY = "sim-key-student"
"""The simulator accepts any key; this one just labels the student's requests in the ledger."""

_lock = threading.Lock()
_shared: MockServer | None = None
_settings: dict[str, Any] = {}


class ProviderConfigError(CourseError, RuntimeError):
    """The requested provider cannot be used as configured (e.g. no API key for the real API)."""


def configure(*, provider: str | None = None, seed: int | None = None, time_scale: float | None = None) -> None:
    """Set the defaults used by :func:`client` (notebooks call this from their parameters cell).

    Changing ``seed`` or ``time_scale`` after the shared simulator started applies them to it.
    """
    if provider is not None:
        _settings["provider"] = _normalise(provider)
    if seed is not None:
        _settings["seed"] = int(seed)
    if time_scale is not None:
        _settings["time_scale"] = float(time_scale)
    if _shared is not None:
        _shared.configure(
            seed=None if seed is None else int(seed), time_scale=None if time_scale is None else float(time_scale)
        )


def _normalise(provider: str) -> str:
    try:
        return _ALIASES[provider.strip().lower()]
    except KeyError:
        raise ProviderConfigError(
            f"Unknown provider {provider!r}: use 'simulator' (the default, offline) or 'anthropic' (the real API)."
        ) from None


def current_provider(provider: str | None = None) -> str:
    """The provider in effect: the argument, else ``configure()``, else ``COURSE_PROVIDER``, else simulator."""
    chosen = provider or _settings.get("provider") or os.environ.get("COURSE_PROVIDER") or SIMULATOR
    return _normalise(chosen)


def shared_server() -> MockServer:
    """The process-wide simulator the client factory uses, started on first call."""
    global _shared
    with _lock:
        if _shared is None:
            server = MockServer(
                seed=int(_settings.get("seed", os.environ.get("COURSE_SEED", 0))),
                time_scale=float(_settings.get("time_scale", os.environ.get("COURSE_TIME_SCALE", 1.0))),
                scenario=os.environ.get("COURSE_SCENARIO", "calm"),
            )
            server.start()
            atexit.register(server.stop)
            _shared = server
        return _shared


def _real_api_key() -> str:
    key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if not key:
        raise ProviderConfigError(
            "provider 'anthropic' needs an API key: set the environment variable ANTHROPIC_API_KEY "
            "(for example in the shell that starts JupyterLab), or use provider='simulator'."
        )
    return key


def client(provider: str | None = None, *, api_key: str | None = None, **kwargs: Any) -> anthropic.Anthropic:
    """An ``anthropic.Anthropic`` client for the chosen provider.

    Extra keyword arguments go to the SDK (``max_retries``, ``timeout``, ``base_url``, ...). With the
    simulator, ``api_key`` only names the caller (lesson 07 gives each tenant its own). With the
    real API, ``base_url`` defaults as in the SDK: ``ANTHROPIC_BASE_URL``, else api.anthropic.com.
    """
    if current_provider(provider) == ANTHROPIC:
        # No base_url here unless the caller gave one: the SDK then reads ANTHROPIC_BASE_URL itself.
        return anthropic.Anthropic(api_key=api_key or _real_api_key(), **kwargs)
    return anthropic.Anthropic(base_url=shared_server().base_url, api_key=api_key or DEFAULT_SIM_KEY, **kwargs)


def async_client(provider: str | None = None, *, api_key: str | None = None, **kwargs: Any) -> anthropic.AsyncAnthropic:
    """An ``anthropic.AsyncAnthropic`` client for the chosen provider (see :func:`client`)."""
    if current_provider(provider) == ANTHROPIC:
        return anthropic.AsyncAnthropic(api_key=api_key or _real_api_key(), **kwargs)
    return anthropic.AsyncAnthropic(base_url=shared_server().base_url, api_key=api_key or DEFAULT_SIM_KEY, **kwargs)
