"""Grading throughput: N copies of lesson 03's solution notebook through the real grader.

Run: ``.venv/bin/python benchmarks/grade_throughput.py`` (defaults: 100 copies, ``--jobs 4``).
Target (issue 11 item 7): 100 copies in at most 5 minutes on a 2-core machine. Before the demo
cells were skipped, 10 copies took 181 s (18 s each).

It grades exactly as ``python -m course_utils.grading FOLDER --jobs N`` does (each submission
rebuilt from ``solutions/``, its own worker process, kernel and simulator) and prints the median
seconds per submission (as the grader timed each one), the total wall time and submissions per
minute. It fails (exit 1) unless every copy scored full marks: a fast grader that grades wrongly
is no figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from course_utils.grading import GradeOptions, grade_folder
from course_utils.grading.execute import ExecSettings
from course_utils.grading.grade import default_solutions

LESSON = "03_async_calls.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=100, help="submissions to grade (default: %(default)s)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=4,
        help="submissions graded in parallel (default: %(default)s; kernels spend part of "
        "their time waiting, so a little more than the core count pays)",
    )
    args = parser.parse_args(argv)
    solutions = default_solutions()
    source = solutions[0] / LESSON
    with tempfile.TemporaryDirectory(prefix="grade-bench-") as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        for i in range(args.copies):
            shutil.copy(source, folder / f"student{i:03d}.ipynb")
        options = GradeOptions(
            solutions=solutions,
            out_dir=Path(tmp) / "graded",
            jobs=args.jobs,
            settings=ExecSettings(cwd=solutions[0]),  # the CLI's defaults: seed 0, time_scale 0.02
        )
        print(
            f"grading {args.copies} copies of solutions/{LESSON} with --jobs {args.jobs} on {os.cpu_count()} cores ...",
            flush=True,
        )
        started = time.perf_counter()
        batch = grade_folder(folder, options)
        total = time.perf_counter() - started
    per = [g.seconds for g in batch.grades]
    wrong = [g.name for g in batch.grades if g.max_total is None or g.total != g.max_total]
    print(
        f"median per submission: {statistics.median(per):.1f} s (min {min(per):.1f}, max {max(per):.1f}; "
        "each in its own kernel, in parallel)"
    )
    print(f"total: {total:.1f} s for {len(per)} submissions ({total / 60:.2f} min)")
    print(f"throughput: {len(per) / total * 60:.1f} submissions/minute")
    if wrong:
        print(f"NOT full marks: {len(wrong)} submission(s), e.g. {wrong[:5]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
