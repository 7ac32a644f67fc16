"""Command line: ``python -m course_utils.grading SUBMISSIONS [options]``."""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path

from tqdm import tqdm

from . import GradeOptions, write_outputs
from .execute import ExecSettings
from .folder import grade_folder
from .grade import SubmissionGrade, default_solutions
from .intake import LAYOUTS

DESCRIPTION = """\
Grade every submission in SUBMISSIONS: a folder (flat, one folder per student, or nbgrader's
exchange inbound folder) or an LMS bulk-download zip (Canvas's "Download Submissions"); the layout
is detected, or set with --layout. The student id in the gradebook comes from the layout; a
student's newest file per lesson is graded and every other file is listed in the report with the
reason (duplicates, older nbgrader submissions, unreadable extras).

Each submission is rebuilt from the official solution notebook (solutions/NN_slug.ipynb): only the
student's exercise cells are kept, every check cell, the parameters cell and all other cells come
from the official version, so editing or deleting checks gains nothing. The lesson is read from the
generator's notebook metadata, else the filename prefix NN_, else the lesson text (or --lesson).
Official cells tagged "demo" are skipped (they cannot change a grade). Each notebook runs in its
own kernel (a fresh process, forked from a pre-imported one; a fresh simulator) with
provider="simulator", seed=0 and time_scale=0.02. A broken submission (syntax error, endless loop,
crashed kernel, huge output, missing cells, not a notebook at all) scores zero for what failed,
with the reason, and the batch continues.

Submissions are graded on Dask distributed: by default a LocalCluster inside this command
(--workers processes, --jobs submissions at a time each); with --scheduler, a running cluster
(`dask scheduler` + `dask worker`, dask-jobqueue, dask-kubernetes) whose workers have the course
installed. A worker that dies mid-submission has its submission graded again on another worker.
Every grade is recorded in OUT/ledger.sqlite as it arrives: run the same command again after an
interruption and only what is missing is graded (keyed by each file's content hash).
"""

EPILOG = """\
outputs (in --out, default SUBMISSIONS/graded/, or NAME-graded/ beside a zip):
  gradebook.csv        student, lesson, one column per exercise, total (one row per student and lesson)
  max_points.csv       the same columns with the maximum points
  canvas_import.csv    for Canvas's gradebook import (Student, ID, SIS User ID, SIS Login ID, Section, lessons)
  moodle_import.csv    for Moodle's "Import grades from CSV" (ID number, one column per lesson)
  report.md / .html    summary table, files found but not graded (and why), one section per submission
  feedback/ID.md       per student id: the checks' messages and the reason for anything scored zero
  results.json         everything above as data
  executed/ID.ipynb    the executed notebooks, to see exactly what ran
  ledger.sqlite        every grade by content hash: what a rerun skips

exit status: 0 when grading ran (whatever the students scored), 2 for usage errors.

examples:
  python -m course_utils.grading submissions/lesson03
  python -m course_utils.grading submissions.zip --workers 2 --jobs 2
  python -m course_utils.grading /srv/nbgrader/exchange/course/inbound --scheduler tcp://head:8786
  make grade SUBMISSIONS=submissions/lesson03
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m course_utils.grading",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "submissions", type=Path, metavar="SUBMISSIONS", help="folder of submissions, or an LMS bulk-download .zip"
    )
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: SUBMISSIONS/graded)")
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="how SUBMISSIONS is laid out (default: %(default)s, detected)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on a running Dask cluster, e.g. tcp://head:8786 (default: a LocalCluster in this command)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="LocalCluster worker processes (default: %(default)s; ignored with --scheduler)",
    )
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
        help="submissions each LocalCluster worker grades at once (default: %(default)s, the CPU count; "
        "with --scheduler, `dask worker --nthreads` decides)",
    )
    p.add_argument("--regrade", action="store_true", help="grade everything again, ignoring the ledger")
    p.add_argument(
        "--lms-column",
        action="append",
        default=[],
        metavar="NN=NAME",
        help='name of lesson NN\'s column in the Canvas and Moodle files, e.g. 3="Lesson 3 (12345)" for an '
        "existing Canvas assignment (repeatable; default: Lesson NN: slug)",
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
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


def _lms_columns(parser: argparse.ArgumentParser, values: list[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for value in values:
        lesson, sep, name = value.partition("=")
        if not sep or not lesson.strip().isdigit() or not name.strip():
            parser.error(f"--lms-column wants NN=NAME, got {value!r}")
        out[int(lesson)] = name.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    source: Path = args.submissions
    if not (source.is_dir() or (source.is_file() and zipfile.is_zipfile(source))):
        parser.error(f"SUBMISSIONS must be a folder or a zip archive: {source}")
    solutions = args.solutions or default_solutions()
    missing = [str(s) for s in solutions if not s.is_dir()]
    if missing:
        parser.error(f"solutions folder not found: {', '.join(missing)}")
    for flag, value in (
        ("--jobs", args.jobs),
        ("--workers", args.workers),
        ("--timeout-per-cell", args.timeout_per_cell),
        ("--timeout-per-notebook", args.timeout_per_notebook),
        ("--max-output", args.max_output),
    ):
        if value <= 0:
            parser.error(f"{flag} must be positive")
    lms_columns = _lms_columns(parser, args.lms_column)
    default_out = source / "graded" if source.is_dir() else source.with_name(f"{source.stem}-graded")
    out = (args.out or default_out).resolve()
    settings = ExecSettings(
        cell_timeout=args.timeout_per_cell,
        notebook_timeout=args.timeout_per_notebook,
        parameters={"provider": "simulator", "seed": args.seed, "time_scale": args.time_scale},
        pythonpath=[p.resolve() for p in args.pythonpath],
        checks_dirs=[p.resolve() for p in args.checks_dir],
        # lessons open data with paths relative to their own folder; None: each worker's own solutions/
        cwd=args.solutions[0].resolve() if args.solutions else None,
        max_output_bytes=args.max_output,
    )
    if args.pythonpath:
        # The parent lists exercises too when a submission never reaches a kernel.
        sys.path[:0] = [str(p.resolve()) for p in args.pythonpath]
    options = GradeOptions(
        # Given folders travel as paths (they must exist on the workers); None: each worker's own.
        solutions=[s.resolve() for s in args.solutions] if args.solutions else [],
        out_dir=out,
        jobs=args.jobs,
        settings=settings,
        lesson=args.lesson,
        keep_work=args.keep_work,
        warm_kernels=not args.cold_kernels,
        scheduler=args.scheduler,
        workers=args.workers,
        layout=args.layout,
        regrade=args.regrade,
    )
    # A progress bar on a terminal; one line per submission in a log (CI, nohup), where a bar is noise.
    bar = None
    if not args.quiet and sys.stderr.isatty():
        bar = tqdm(total=0, unit="notebook", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)

    def announce(message: str) -> None:
        if bar is not None:
            bar.write(message, file=sys.stderr)
        elif not args.quiet:
            print(message, file=sys.stderr, flush=True)

    def progress(g: SubmissionGrade, done: int, total: int) -> None:
        if bar is None:
            if not args.quiet:
                extra = f" — {g.problems[0].splitlines()[0][:100]}" if g.problems else ""
                mx = "?" if g.max_total is None else format(g.max_total, "g")
                print(f"[{done}/{total}] {g.name}: {g.total:g}/{mx} ({g.status}){extra}", file=sys.stderr, flush=True)
            return
        bar.total = total
        bar.set_postfix_str(f"{g.name}: {g.total:g}/{'?' if g.max_total is None else format(g.max_total, 'g')}")
        bar.update(done - bar.n)
        if g.problems:
            bar.write(f"{g.name}: {g.status} — {g.problems[0].splitlines()[0][:100]}", file=sys.stderr)

    try:
        batch = grade_folder(source, options, progress, announce)
    finally:
        if bar is not None:
            bar.close()
    files = write_outputs(batch, [s.resolve() for s in solutions], lms_columns)
    reused = f" ({batch.reused} from the ledger)" if batch.reused else ""
    print(
        f"Graded {len(batch.grades)} submission(s){reused} in {batch.seconds:.1f} s ({batch.layout} layout); "
        f"results in {out}"
    )
    if batch.skipped:
        print(f"  {len(batch.skipped)} file(s) found but not graded, with the reason: see report.md")
    for kind in ("gradebook", "canvas", "moodle", "report_md", "report_html", "feedback"):
        print(f"  {kind:12} {files[kind]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
