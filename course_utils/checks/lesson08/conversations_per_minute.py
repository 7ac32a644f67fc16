"""Checks for exercise 8.5 ``conversations_per_minute``: capacity planning, against the formula and a simulation."""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

from ...architecture.capacity import CapacityInputs, simulate_conversations_per_minute
from ...architecture.capacity import conversations_per_minute as _reference_capacity
from ..framework import CaseFailed, Exercise


# =============================================================================================
# 8.5 conversations_per_minute(p: CapacityInputs) -> float
# =============================================================================================
capacity = Exercise(
    "8.5",
    "Capacity planning: sustainable conversations per minute",
    points=3,
    signature="conversations_per_minute(p: CapacityInputs) -> float",
    reference={"architecture.conversations_per_minute": _reference_capacity},
    task="work out the capacity",
    hints=[
        "Four limits cap the turns (model calls) per minute: RPM, ITPM / input tokens per turn, OTPM / output "
        "tokens per turn, and the workers (Little's law: workers x 60 / latency_s). The smallest binds.",
        "min(p.rpm, p.itpm / p.input_tokens_per_turn, p.otpm / p.output_tokens_per_turn, "
        "p.workers * 60 / p.latency_s) / p.turns_per_conversation",
    ],
)

CAPACITY_TOLERANCE = 0.02
"""Relative: the simulation's 10 minutes measure the reference formula to well under 1%."""

PLANS = {
    "rpm": CapacityInputs(50, 200_000, 80_000, 2_000, 300, 5, 3.0, 8),
    "itpm": CapacityInputs(1_000, 100_000, 100_000, 4_000, 200, 4, 2.0, 20),
    "otpm": CapacityInputs(1_000, 1_000_000, 16_000, 1_000, 800, 3, 4.0, 50),
    "workers": CapacityInputs(4_000, 2_000_000, 400_000, 1_500, 250, 6, 5.0, 10),
}
"""One key and pool per limit that can bind (the key names it)."""

_LIMIT_NAMES = {"rpm": "RPM", "itpm": "ITPM", "otpm": "OTPM", "workers": "the worker pool (Little's law)"}


@functools.cache
def _simulated(p: CapacityInputs) -> float:
    return simulate_conversations_per_minute(p)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= CAPACITY_TOLERANCE * abs(b)


def _capacity_case(limit: str) -> Any:
    def case(fn: Any) -> None:
        p = PLANS[limit]
        got = fn(p)
        if isinstance(got, bool) or not isinstance(got, numbers.Real) or not math.isfinite(got):
            raise CaseFailed(
                "conversations_per_minute must return a finite number",
                expected="a float",
                got=got,
                hint="Return the number of conversations per minute, e.g. 6.25.",
            )
        got, reference, simulated = float(got), _reference_capacity(p), _simulated(p)
        if _close(got, reference) and _close(got, simulated):
            return
        cause = f"the binding limit here is {_LIMIT_NAMES[limit]}"
        limits = [p.rpm, p.itpm / p.input_tokens_per_turn, p.otpm / p.output_tokens_per_turn]
        per_second_workers = min(*limits, p.workers / p.latency_s) / p.turns_per_conversation
        if _close(got, reference / 60):
            cause = "60 times too few: a per-second figure, not per minute"
        elif _close(got, reference * p.turns_per_conversation):
            cause = f"that is turns per minute: a conversation is {p.turns_per_conversation:g} turns"
        elif _close(got, max(*limits, p.workers * 60 / p.latency_s) / p.turns_per_conversation):
            cause = "that is the loosest limit: the smallest one binds"
        elif _close(got, per_second_workers) and not _close(per_second_workers, reference):
            cause = "the worker pool gives workers / latency_s turns per second: times 60 per minute"
        raise CaseFailed(
            f"with {_LIMIT_NAMES[limit]} binding, the answer is {got:.4g} conversations per minute; "
            f"the simulation sustained {simulated:.4g} ({cause})",
            expected=f"{reference:.4g} (within {CAPACITY_TOLERANCE:.0%})",
            got=round(got, 4),
            hint="Every limit caps the turns per minute: rpm, itpm / input_tokens_per_turn, "
            "otpm / output_tokens_per_turn and workers * 60 / latency_s. The smallest binds; divide by "
            "turns_per_conversation.",
        )

    return case


for _limit in PLANS:
    capacity.case(f"when {_LIMIT_NAMES[_limit]} binds: within {CAPACITY_TOLERANCE:.0%} of the simulation")(
        _capacity_case(_limit)
    )
