"""The simulated Anthropic API, and what notebooks and checks use to drive it.

* :class:`MockServer` / :func:`mock_server`: the simulator over real HTTP on 127.0.0.1 (notebooks);
  :class:`InProcessServer`: in the caller's process and event loop, on virtual time (checks, tests).
  Both have the same controls: ``client()``, ``async_client()``, ``ledger()``, ``set_scenario()``,
  ``configure()``, ``set_rate_limits()``, ``tenant()``, ``model_outage()``, ``script()``, ``reset()``.
* :class:`Tenant`: one API key with its own clients, rate limits and ledger rows (``server.tenant``).
* :class:`Scenario`, :class:`Outage`, :class:`Burst`, :data:`SCENARIOS`, :data:`FAULT_KINDS`: faults
  on demand (``x-mock-fault`` header values) and by scenario.
* :class:`RateLimits`, :data:`TIERS`: per-key rate limits.
* :func:`effective_time_scale`: the time scale simulators really run at (``COURSE_FORCE_TIME_SCALE``
  caps it in CI), so a notebook can size its demos to it.
* :data:`REPLY_SCENARIOS`, :func:`use_reply_scenario`: how replies are shaped (thinking blocks,
  refusals, ``pause_turn``), from ``COURSE_REPLY_SCENARIO`` or pinned for a block of code.
"""

from .config import effective_time_scale
from .errors import SimulatorError
from .faults import FAULT_KINDS, OUTAGE_KINDS, SCENARIOS, Burst, Capacity, Outage, Scenario
from .inprocess import InProcessServer
from .ratelimit import TIERS, RateLimits
from .server import MockServer, mock_server
from .skills.thinking import REPLY_SCENARIOS, use_reply_scenario
from .tenants import Tenant

__all__ = [
    "MockServer",
    "mock_server",
    "InProcessServer",
    "Tenant",
    "Scenario",
    "Outage",
    "Burst",
    "Capacity",
    "SCENARIOS",
    "FAULT_KINDS",
    "OUTAGE_KINDS",
    "RateLimits",
    "TIERS",
    "effective_time_scale",
    "REPLY_SCENARIOS",
    "use_reply_scenario",
    "SimulatorError",
]
