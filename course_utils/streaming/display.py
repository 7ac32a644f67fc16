"""Lesson 02's Explore: how each backpressure policy copes with a client of a given speed.

The figures come from replaying a real recorded stream (its deltas and their arrival times)
through :func:`course_utils.streaming.backpressure.run_simulation` on virtual time, so moving the
slider answers at once and the same move gives the same table on any machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .backpressure import POLICIES, run_simulation
from .consume import StreamResult

__all__ = ["recorded_deltas", "mean_gap_ms", "policy_table", "describe_pace"]


def recorded_deltas(run: StreamResult) -> tuple[list[float], list[str]]:
    """``(arrival times, texts)`` of a recorded stream's text deltas, in order."""
    texts, start = [], 0
    for size in run.delta_sizes:
        texts.append(run.text[start : start + size])
        start += size
    return list(run.delta_times), texts


def mean_gap_ms(delta_times: Sequence[float]) -> float:
    """Milliseconds between two deltas on average (the model's pace)."""
    return 1000 * (delta_times[-1] - delta_times[0]) / max(1, len(delta_times) - 1)


def policy_table(
    delta_times: Sequence[float], delta_texts: Sequence[str], client_ms_per_write: float, queue_size: int
) -> pd.DataFrame:
    """One row per policy: queue depth, coalesced deltas, writes and upstream pause for this client."""
    rows = []
    for policy in POLICIES:
        s = run_simulation(
            delta_times, delta_texts, consumer_delay_s=client_ms_per_write / 1000, maxsize=queue_size, policy=policy
        )
        rows.append(
            {
                "policy": policy,
                "max queue depth": s.max_depth,
                "coalesced deltas": s.coalesced,
                "writes to client": s.gets,
                "upstream paused (s)": round(s.paused_s, 3),
            }
        )
    return pd.DataFrame(rows).set_index("policy")


def describe_pace(gap_ms: float, client_ms_per_write: float) -> str:
    """The one-line header of the Explore output."""
    return f"model sends a delta every {gap_ms:.2f} ms on average; client needs {client_ms_per_write:.2f} ms per write"
