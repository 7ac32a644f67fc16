"""Module 07: Production AI Patterns — the course library.

Start here::

    import course_utils
    client = course_utils.client()          # the simulated API by default; COURSE_PROVIDER=anthropic for real
    with course_utils.mock_server(seed=0, time_scale=0.05) as server:
        ...                                  # a private simulator, e.g. for an experiment
"""

from __future__ import annotations

from .clock import SYSTEM_CLOCK, Clock, SystemClock, VirtualClock
from .content import blocks_of, text_of
from .errors import CourseError
from .mock_provider.server import MockServer, mock_server
from .provider import ProviderConfigError, async_client, client, configure, current_provider, shared_server

__all__ = [
    "client",
    "async_client",
    "configure",
    "current_provider",
    "shared_server",
    "mock_server",
    "MockServer",
    "CourseError",
    "ProviderConfigError",
    "Clock",
    "SystemClock",
    "VirtualClock",
    "SYSTEM_CLOCK",
    "text_of",
    "blocks_of",
]
