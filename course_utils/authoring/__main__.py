"""``python -m course_utils.authoring {release,check,execute}``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .generate import NOTEBOOKS_DIR, ROOT, SOLUTIONS_DIR, release, stale
from ..notebook_format import MarkerError
from ..mock_provider.config import CI_TIME_SCALE, FORCE_TIME_SCALE_ENV


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.authoring", description=__doc__)
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS_DIR, help="solution notebooks (the source)")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS_DIR, help="where student notebooks go")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="write notebooks/ from solutions/ and normalise solutions")
    sub.add_parser("check", help="exit 1 if notebooks/ or solution metadata is out of date")
    run = sub.add_parser("execute", help="Restart & Run All solution notebooks in place, then release")
    run.add_argument("names", nargs="*", help="notebook names or lesson numbers (default: all)")
    run.add_argument("--timeout", type=int, default=120, help="per-cell timeout in seconds")
    args = parser.parse_args(argv)

    try:
        if args.command == "release":
            changed = release(args.solutions, args.notebooks)
            for path in changed:
                print(f"wrote {_rel(path)}")
            print(f"release: {len(changed)} file(s) changed")
            return 0
        if args.command == "check":
            problems = stale(args.solutions, args.notebooks)
            if problems:
                print("Notebooks out of date (run `make release`):", file=sys.stderr)
                for problem in problems:
                    print(f"  - {problem}", file=sys.stderr)
                return 1
            print("check: notebooks/ is up to date with solutions/")
            return 0
        from .execute import execute_solutions  # heavy imports only when needed

        # Stored solution outputs come from a run at the CI time scale (the kernel inherits this),
        # so nbval can reproduce them in seconds; students still run at their own time_scale.
        os.environ.setdefault(FORCE_TIME_SCALE_ENV, str(CI_TIME_SCALE))

        for path, seconds in execute_solutions(args.solutions, args.names, timeout=args.timeout):
            print(f"executed {_rel(path)} in {seconds:.1f} s")
        release(args.solutions, args.notebooks)
        return 0
    except MarkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
