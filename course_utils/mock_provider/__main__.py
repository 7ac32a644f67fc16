"""``python -m course_utils.mock_provider``: run the simulated Anthropic API in the foreground."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import SimulatorConfig
from .server import HOST


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.mock_provider",
        description="Serve a simulated Anthropic Messages API on 127.0.0.1 (offline, deterministic).",
    )
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    parser.add_argument("--seed", type=int, default=0, help="seed for responses, latency and faults (default 0)")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply simulated latency and batch processing time (1 = realistic, 0 = instant)",
    )
    parser.add_argument("--scenario", default="calm", help="fault scenario preset (default: calm)")
    parser.add_argument(
        "--rate-limit-tier",
        default="default",
        help="the organisation's rate limits (default, start, build, scale, unlimited; tier-1..tier-4: the former tiers)",
    )
    parser.add_argument("--state-dir", type=Path, default=None, help="keep batch state in this folder (SQLite)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)
    if args.time_scale < 0:
        parser.error("--time-scale must be >= 0")
    from .faults import SCENARIOS
    from .ratelimit import TIERS

    if args.scenario not in SCENARIOS:
        parser.error(f"--scenario must be one of: {', '.join(SCENARIOS)}")
    if args.rate_limit_tier not in TIERS:
        parser.error(f"--rate-limit-tier must be one of: {', '.join(TIERS)}")

    import uvicorn

    from .app import create_app
    from .simulator import Simulator

    sim = Simulator(
        SimulatorConfig(
            seed=args.seed,
            time_scale=args.time_scale,
            scenario=args.scenario,
            state_dir=args.state_dir,
            rate_limit_tier=args.rate_limit_tier,
        )
    )
    print(f"Simulated Anthropic API on http://{HOST}:{args.port}  (seed={args.seed}, time_scale={args.time_scale})")
    print(f"  export ANTHROPIC_BASE_URL=http://{HOST}:{args.port}")
    uvicorn.run(create_app(sim), host=HOST, port=args.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
