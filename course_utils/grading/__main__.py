"""Command line: ``python -m course_utils.grading SUBMISSIONS [options]``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import GradeOptions, write_outputs
from .execute import ExecSettings
from .grade import SubmissionGrade, default_solutions, grade_folder

DESCRIPTION = """\
Grade every notebook in SUBMISSIONS (not recursive).

Each submission is rebuilt from the official solution notebook (solutions/NN_slug.ipynb): only the
student's exercise cells are kept, every check cell, the parameters cell and all other cells come
from the official version, so editing or deleting checks gains nothing. The lesson is read from the
generator's notebook metadata, else the filename prefix NN_, else the lesson text (or --lesson).
Official cells tagged "demo" are skipped (they cannot change a grade). Each notebook runs in its
own kernel (a fresh process, forked from a pre-imported one; a fresh simulator) with
provider="simulator", seed=0 and time_scale=0.02, in parallel. A broken submission (syntax error, endless loop, crashed kernel, huge
output, missing cells, not a notebook at all) scores zero for what failed, with the reason, and
the batch continues.
"""

EPILOG = """\
outputs (in --out, default SUBMISSIONS/graded/):
  gradebook.csv        submission, one column per exercise, total (one row per submission)
  max_points.csv       the same columns with the maximum points
  report.md / .html    summary table and one section per submission
  feedback/NAME.md     per student: the checks' messages and the reason for anything scored zero
  results.json         everything above as data
  executed/NAME.ipynb  the executed notebooks, to see exactly what ran

exit status: 0 when grading ran (whatever the students scored), 2 for usage errors.

example:
  python -m course_utils.grading submissions/lesson03 --jobs 4
  make grade SUBMISSIONS=submissions/lesson03
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m course_utils.grading",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("submissions", type=Path, metavar="SUBMISSIONS", help="folder holding the submitted .ipynb files")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: SUBMISSIONS/graded)")
    p.add_argument(
        "--solutions",
        type=Path,
        action="append",
        metavar="DIR",
        help="folder of official notebooks NN_slug.ipynb (repeatable; default: the project's solutions/)",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="submissions graded in parallel (default: %(default)s, the CPU count)",
    )
    p.add_argument(
        "--timeout-per-cell",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds a cell may run before it is interrupted (default: %(default)s)",
    )
    p.add_argument(
        "--timeout-per-notebook",
        type=float,
        default=900.0,
        metavar="S",
        help="wall-clock limit for one submission, re-runs included (default: %(default)s)",
    )
    p.add_argument("--lesson", type=int, metavar="N", help="treat every submission as lesson N")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default: %(default)s)")
    p.add_argument("--time-scale", type=float, default=0.02, help="simulator time scale (default: %(default)s)")
    p.add_argument(
        "--max-output",
        type=int,
        default=100_000,
        metavar="CHARS",
        help="output kept per cell; more is dropped with a notice (default: %(default)s)",
    )
    p.add_argument(
        "--pythonpath",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra import root for the kernels (repeatable), e.g. extra checks modules",
    )
    p.add_argument(
        "--checks-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra folder of lessonNN.py check modules, importable as course_utils.checks.lessonNN "
        "(repeatable; for draft or fixture lessons)",
    )
    p.add_argument(
        "--cold-kernels",
        action="store_true",
        help="start every kernel from scratch instead of forking it from a pre-imported one (slower)",
    )
    p.add_argument("--keep-work", action="store_true", help="keep the per-submission work folders in --out")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"SUBMISSIONS must be a folder: {args.submissions}")
    solutions = args.solutions or default_solutions()
    missing = [str(s) for s in solutions if not s.is_dir()]
    if missing:
        parser.error(f"solutions folder not found: {', '.join(missing)}")
    for flag, value in (
        ("--jobs", args.jobs),
        ("--timeout-per-cell", args.timeout_per_cell),
        ("--timeout-per-notebook", args.timeout_per_notebook),
        ("--max-output", args.max_output),
    ):
        if value <= 0:
            parser.error(f"{flag} must be positive")
    out = (args.out or args.submissions / "graded").resolve()
    settings = ExecSettings(
        cell_timeout=args.timeout_per_cell,
        notebook_timeout=args.timeout_per_notebook,
        parameters={"provider": "simulator", "seed": args.seed, "time_scale": args.time_scale},
        pythonpath=[p.resolve() for p in args.pythonpath],
        checks_dirs=[p.resolve() for p in args.checks_dir],
        cwd=solutions[0].resolve(),  # lessons open data with paths relative to their own folder
        max_output_bytes=args.max_output,
    )
    if args.pythonpath:
        # The parent lists exercises too when a submission never reaches a kernel.
        sys.path[:0] = [str(p.resolve()) for p in args.pythonpath]
    options = GradeOptions(
        solutions=[s.resolve() for s in solutions],
        out_dir=out,
        jobs=args.jobs,
        settings=settings,
        lesson=args.lesson,
        keep_work=args.keep_work,
        warm_kernels=not args.cold_kernels,
    )

    def progress(g: SubmissionGrade, done: int, total: int) -> None:
        if not args.quiet:
            extra = f" — {g.problems[0].splitlines()[0][:100]}" if g.problems else ""
            print(
                f"[{done}/{total}] {g.name}: {g.total:g}/{'?' if g.max_total is None else format(g.max_total, 'g')} "
                f"({g.status}, {g.seconds:.1f} s){extra}",
                file=sys.stderr,
                flush=True,
            )

    batch = grade_folder(args.submissions, options, progress)
    files = write_outputs(batch)
    print(f"Graded {len(batch.grades)} submission(s) in {batch.seconds:.1f} s; results in {out}")
    for kind in ("gradebook", "report_md", "report_html", "feedback"):
        print(f"  {kind:12} {files[kind]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
