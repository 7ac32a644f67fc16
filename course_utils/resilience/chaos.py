"""A replayed incident for a report service: flaky, then the primary model down, then slow and lossy.

:func:`run_incident` plays the mobile app against ``handle(key, body)``, the service's report
endpoint: ``ops_per_phase`` reports per phase, one every ``spacing_s`` seconds, each with its own
``Idempotency-Key``. The app waits ``app_timeout_s`` for an answer, then retries with the same key
(up to ``app_attempts`` attempts, ``app_pause_s`` apart), exactly as the incident's app did. A
request the app gave up on is **not** cancelled on the server: the service's handler keeps running,
and if it finishes it produces (and bills) a report, as a real server does after its client hung up.

The phases change the simulator's scenario at their start:

1. ``flaky``: 6% of requests get 529 and 4% get 500 (the simulator's ``flaky`` preset);
2. ``outage``: the primary model answers 529 to everything; the other models work;
3. ``slow``: 10% of answers are held 30 s after the provider has billed them, 5% are lost after
   billing (the connection drops), 2% get 529.

The :class:`IncidentReport` measures, from the app's side and the simulator's ledger: the success
ratio, the customer charges per report (distinct reports the service produced for one key; more
than one is a duplicate charge), the latency the app saw (first attempt to answer), and the load
amplification at the provider (requests per report). Run it on virtual time (a check, or
:func:`course_utils.clock.run_virtual`) with an in-process simulator: 3 minutes of incident cost a
second or two, and the outcome is the same on every machine.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..mock_provider.faults import Outage, Scenario

__all__ = ["PRIMARY", "FALLBACK", "PHASES", "report_body", "run_incident", "IncidentReport", "OpRecord"]

PRIMARY = "claude-sonnet-5-5"
FALLBACK = "claude-haiku-5-5"


def report_body(n: int) -> dict[str, Any]:
    """The body the service sends for report ``n`` (on the primary model)."""
    return {
        "model": PRIMARY,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": f"Write a 20-word weekly status summary for account #{n}."}],
    }


def _phases(phase_s: float) -> list[tuple[str, Scenario]]:
    return [
        ("flaky", Scenario(name="incident-flaky", p_overloaded=0.06, p_api_error=0.04)),
        ("outage", Scenario(name="incident-outage", outages=(Outage(0.0, phase_s, models=(PRIMARY,)),))),
        (
            "slow",
            Scenario(name="incident-slow", p_overloaded=0.02, p_lost_response=0.05, p_late_response=0.10, late_s=30.0),
        ),
    ]


PHASES = ("flaky", "outage", "slow")


@dataclass
class OpRecord:
    """One report as the app saw it."""

    key: str
    phase: str
    started_s: float
    answered: bool = False
    latency_s: float = math.nan
    app_attempts: int = 0
    answer_ids: set = field(default_factory=set)
    """Ids of the reports the service produced for this key (every handler run that returned)."""
    errors: list[str] = field(default_factory=list)


@dataclass
class IncidentReport:
    ops: list[OpRecord]
    provider_requests: int
    provider_billed: int
    ledger: Any = None

    @property
    def n(self) -> int:
        return len(self.ops)

    def summary(self) -> dict[str, float | int]:
        latencies = sorted(op.latency_s for op in self.ops if op.answered)
        p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)] if latencies else math.inf
        p50 = latencies[len(latencies) // 2] if latencies else math.inf
        return {
            "reports": self.n,
            "success_ratio": sum(op.answered for op in self.ops) / self.n if self.n else 0.0,
            # Distinct reports produced per key: what customers were charged (0 for a report never produced).
            "customer_charges": sum(len(op.answer_ids) for op in self.ops),
            "duplicate_charges": sum(max(0, len(op.answer_ids) - 1) for op in self.ops),
            "p50_latency_s": p50,
            "p99_latency_s": p99,
            "provider_requests": self.provider_requests,
            "provider_billed": self.provider_billed,
            "load_amplification": self.provider_requests / self.n if self.n else 0.0,
            "app_retries": sum(max(0, op.app_attempts - 1) for op in self.ops),
        }

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "key": op.key,
                    "phase": op.phase,
                    "started_s": op.started_s,
                    "answered": op.answered,
                    "latency_s": op.latency_s,
                    "app_attempts": op.app_attempts,
                    "customer_charges": len(op.answer_ids),
                    "errors": ", ".join(op.errors),
                }
                for op in self.ops
            ]
        )


Handler = Callable[[str, dict], Awaitable[Any]]


async def run_incident(
    server: Any,
    handle: Handler,
    *,
    api_key: str | None = None,
    ops_per_phase: int = 40,
    spacing_s: float = 0.5,
    app_timeout_s: float = 6.0,
    app_attempts: int = 4,
    app_pause_s: float = 1.0,
    drain_s: float = 120.0,
    on_progress: Callable[[Any], Any] | None = None,
) -> IncidentReport:
    """Replay the incident against ``handle`` on ``server`` (an in-process simulator); see the module docstring.

    ``api_key`` selects the ledger rows that count (the handler's client's key); ``None`` counts all.
    """
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ops: list[OpRecord] = []
    server_tasks: list[asyncio.Task[Any]] = []
    phase_s = ops_per_phase * spacing_s
    done = 0

    async def app(op: OpRecord, body: dict) -> None:
        nonlocal done
        for attempt in range(app_attempts):
            op.app_attempts += 1
            task = asyncio.ensure_future(handle(op.key, body))
            server_tasks.append(task)
            task.add_done_callback(lambda t, op=op: _record_answer(t, op))
            finished, _ = await asyncio.wait({task}, timeout=app_timeout_s)
            if finished and not task.cancelled() and task.exception() is None:
                op.answered = True
                op.latency_s = loop.time() - t0 - op.started_s
                break
            op.errors.append("app timeout" if not finished else type(task.exception()).__name__)
            if attempt + 1 < app_attempts:
                await asyncio.sleep(app_pause_s)
        done += 1
        if on_progress is not None:
            from ..progress import ProgressEvent

            on_progress(ProgressEvent(done, len(PHASES) * ops_per_phase, loop.time() - t0, op))

    apps: list[asyncio.Task[None]] = []
    n = 0
    for phase, scenario in _phases(phase_s):
        server.set_scenario(scenario)
        for _ in range(ops_per_phase):
            op = OpRecord(f"report-{n}", phase, loop.time() - t0)
            ops.append(op)
            apps.append(asyncio.ensure_future(app(op, report_body(n))))
            n += 1
            await asyncio.sleep(spacing_s)
    await asyncio.gather(*apps)
    pending = [t for t in server_tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=drain_s)
    for t in server_tasks:
        if not t.done():
            t.cancel()
    await asyncio.gather(*server_tasks, return_exceptions=True)
    server.set_scenario("calm")
    rows = server.ledger()
    if len(rows):
        rows = rows[rows["endpoint"] == "/v1/messages"]
        if api_key is not None:
            rows = rows[rows["api_key"] == api_key]
    billed = int((rows["cost_usd"].astype(float) > 0).sum()) if len(rows) else 0
    return IncidentReport(ops, int(len(rows)), billed, rows)


def _record_answer(task: asyncio.Task[Any], op: OpRecord) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    value = task.result()
    op.answer_ids.add(getattr(value, "id", None) or id(value))
