"""Grading throughput: N copies of lesson 03's solution notebook through the real grader on Dask.

Run: ``.venv/bin/python benchmarks/grade_throughput.py`` (defaults: 100 copies, one LocalCluster
worker grading 4 at a time, as ``make grade`` on 2 cores would roughly do).

``--scaling``: the issue-32 measurement — the same N copies graded with 1 worker and then with 2
workers (each worker one Dask worker process grading one submission at a time, ``--jobs 1``), in
one run of this script, then the ratio. ``benchmarks/grade_cluster.py`` does the same on a
cluster started from the command line, with a worker killed mid-run.

It grades exactly as ``python -m course_utils.grading FOLDER`` does (each submission rebuilt from
``solutions/``, its own worker process, kernel and simulator) and prints the median seconds per
submission (as the grader timed each one), the total wall time and submissions per minute. It
fails (exit 1) unless every copy scored full marks: a fast grader that grades wrongly is no figure.
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


def load() -> str:
    """The 1-minute load average and the core count, to say how busy the machine was."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def grade_copies(copies: int, workers: int, jobs: int, scheduler: str | None = None) -> tuple[float, list]:
    """Grade ``copies`` copies of the lesson; returns (wall seconds, grades). Raises if any is wrong."""
    solutions = default_solutions()
    with tempfile.TemporaryDirectory(prefix="grade-bench-") as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        for i in range(copies):
            shutil.copy(solutions[0] / LESSON, folder / f"student{i:04d}.ipynb")
        options = GradeOptions(
            solutions=solutions,
            out_dir=Path(tmp) / "graded",
            jobs=jobs,
            workers=workers,
            scheduler=scheduler,
            settings=ExecSettings(cwd=solutions[0]),  # the CLI's defaults: seed 0, time_scale 0.02
        )
        started = time.perf_counter()
        batch = grade_folder(folder, options)
        total = time.perf_counter() - started
    wrong = [g.name for g in batch.grades if g.max_total is None or g.total != g.max_total]
    if wrong or len(batch.grades) != copies:
        raise SystemExit(f"NOT full marks: {len(wrong)} of {len(batch.grades)} submission(s), e.g. {wrong[:5]}")
    return total, batch.grades


def report(label: str, total: float, grades: list) -> None:
    per = [g.seconds for g in grades]
    print(
        f"{label}: {total:.1f} s for {len(per)} submissions ({len(per) / total * 60:.1f}/min); "
        f"median {statistics.median(per):.1f} s each (min {min(per):.1f}, max {max(per):.1f}); {load()}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=100, help="submissions to grade (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="LocalCluster worker processes (default: %(default)s)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=4,
        help="submissions each worker grades at once (default: %(default)s; kernels spend part of "
        "their time waiting, so a little more than the core count pays)",
    )
    parser.add_argument("--scaling", action="store_true", help="1 worker, then 2 workers (--jobs 1 each); the ratio")
    args = parser.parse_args(argv)
    print(f"grading {args.copies} copies of solutions/{LESSON}; {load()} at the start", flush=True)
    if not args.scaling:
        total, grades = grade_copies(args.copies, args.workers, args.jobs)
        report(f"{args.workers} worker(s) x {args.jobs}", total, grades)
        return 0
    t1, g1 = grade_copies(args.copies, workers=1, jobs=1)
    report("1 worker ", t1, g1)
    t2, g2 = grade_copies(args.copies, workers=2, jobs=1)
    report("2 workers", t2, g2)
    per = statistics.median(g.seconds for g in g1)
    print(f"speed-up 1 -> 2 workers: {t1 / t2:.2f}x (wall {t1:.1f} s -> {t2:.1f} s)")
    print(
        f"on paper, from the 1-worker run ({t1 / len(g1):.2f} s of wall time per submission per worker): "
        + ", ".join(f"{k} workers: {9000 * t1 / len(g1) / k / 3600:.1f} h" for k in (1, 2, 8, 32, 128))
        + " for 9,000 notebooks (linear: distributed documents about 1 ms of overhead per task)"
    )
    print(f"(median per-submission time with 1 worker: {per:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
