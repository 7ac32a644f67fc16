"""Lesson 08's end-to-end load test at the issue's size, printed as the SLO table (virtual time).

    python benchmarks/lesson08_load.py                       # 20 tenants x 10 conversations x 5 turns, flaky, outage
    python benchmarks/lesson08_load.py --tenants 5 --conversations 4 --turns 3 --scenario calm
    python benchmarks/lesson08_load.py --compare             # the notebook's section 1: synchronous vs event-driven

The figures are the same on every machine (seeded simulator, virtual clock); the wall time printed
last is this machine's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_utils.architecture.loadtest import LoadSpec, run_load  # noqa: E402 - after sys.path is set
from course_utils.architecture.synchronous import run_synchronous_load  # noqa: E402 - after sys.path is set


def compare(seed: int) -> None:
    """Section 1 of the notebook at its defaults: the same load through both designs."""
    spec = LoadSpec(
        tenants=10,
        conversations=5,
        turns=4,
        think_s=5.0,
        ramp_s=30.0,
        scenario={"preset": "flaky", "slow_p": 0.1, "slow_s": 40.0},
        restart_at=40.0,
        model_consumers=8,
        seed=seed,
    )
    for name, run in (
        ("synchronous", lambda: run_synchronous_load(spec, web_workers=8, client_timeout_s=30.0).slo()),
        ("event-driven", lambda: run_load(spec).slo()),
    ):
        wall = time.perf_counter()
        row = run()
        keys = (
            "messages",
            "p50_ttft_s",
            "p95_ttft_s",
            "lost_messages",
            "duplicate_charges",
            "histories_lost",
            "peak_queued",
        )
        print(name, {k: round(row[k], 2) if isinstance(row.get(k), float) else row.get(k, 0) for k in keys})
        print(f"  wall_s (this machine) {time.perf_counter() - wall:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--scenario", default="flaky")
    parser.add_argument("--outage-at", type=float, default=60.0, help="seconds; negative: no outage")
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--model-workers", type=int, default=8, help="consumers of the model stage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="synchronous vs event-driven (section 1)")
    args = parser.parse_args()
    if args.compare:
        compare(args.seed)
        return
    spec = LoadSpec(
        tenants=args.tenants,
        conversations=args.conversations,
        turns=args.turns,
        scenario=args.scenario,
        outage_at=None if args.outage_at < 0 else args.outage_at,
        outage_s=args.outage_s,
        model_consumers=args.model_workers,
        seed=args.seed,
    )
    wall = time.perf_counter()
    result = run_load(spec)
    for name, value in result.slo().items():
        print(f"{name:32s} {value:.4f}" if isinstance(value, float) else f"{name:32s} {value}")
    print(f"{'simulated_s':32s} {result.duration_s:.1f}")
    print(f"{'wall_s (this machine)':32s} {time.perf_counter() - wall:.1f}")


if __name__ == "__main__":
    main()
