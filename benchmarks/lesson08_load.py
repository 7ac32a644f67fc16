"""Lesson 08's end-to-end load test at the issue's size, printed as the SLO table (virtual time).

    python benchmarks/lesson08_load.py                       # 20 tenants x 10 conversations x 5 turns, flaky, outage
    python benchmarks/lesson08_load.py --tenants 5 --conversations 4 --turns 3 --scenario calm

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
    args = parser.parse_args()
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
