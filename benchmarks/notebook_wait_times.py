"""What a student waits for: every lesson's cells timed at the notebook's own defaults.

    .venv/bin/python benchmarks/notebook_wait_times.py                 # every solution notebook
    .venv/bin/python benchmarks/notebook_wait_times.py 02 03           # some lessons
    .venv/bin/python benchmarks/notebook_wait_times.py --json out.json # also write the figures

Runs each notebook top to bottom in a fresh kernel with its parameters cell as written
(``time_scale = 1.0``: realistic latency) and ``COURSE_FORCE_TIME_SCALE`` removed from the
environment, so nothing is shrunk for CI. Solution notebooks are timed: they are what a student's
notebook becomes once the exercises are done (the checks then run the student's code).

For each cell it records the wall time and when its first visible output arrived (text, a plot,
a table, a progress bar or a widget update). The budget (../shared/LESSON-GUIDE.md, issue 15):

- a cell that takes over 20 s must show something within its first second (live progress);
- a warm-up cell (its code says "warm-up": requests made so later measurements are warm) takes at most 5 s;
- a whole lesson takes at most 3 minutes.

It prints a table per lesson (the slowest cells, the whole lesson) and flags every breach; the exit
status is 1 when there is one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CELL_BUDGET_S = 20.0
PROGRESS_WITHIN_S = 1.0
WARMUP_BUDGET_S = 5.0
LESSON_BUDGET_S = 180.0
# iopub messages a student sees as something happening in the cell.
_VISIBLE = {"stream", "display_data", "update_display_data", "execute_result", "error", "comm_msg", "comm_open"}


@dataclass
class CellTime:
    """One code cell's wait: total seconds, seconds to its first visible output (None: no output)."""

    index: int
    first_line: str
    seconds: float
    first_output_s: float | None
    updates: int
    warmup: bool

    @property
    def flags(self) -> list[str]:
        """This cell's breaches of the budget (empty when it is within it)."""
        out = []
        if self.seconds > CELL_BUDGET_S and (self.first_output_s is None or self.first_output_s > PROGRESS_WITHIN_S):
            out.append(f"{self.seconds:.0f} s with nothing on screen in its first {PROGRESS_WITHIN_S:g} s")
        if self.warmup and self.seconds > WARMUP_BUDGET_S:
            out.append(f"warm-up takes {self.seconds:.1f} s > {WARMUP_BUDGET_S:g} s")
        return out


@dataclass
class LessonTime:
    """A notebook's cells and its whole run."""

    notebook: str
    seconds: float
    cells: list[CellTime]
    code_hash: str = ""
    """:func:`code_hash` of the notebook that was timed (a record is stale once the code changes)."""
    load_avg: tuple[float, float] | None = None
    """The machine's 1-minute load average when the run started and when it ended (None where unknown)."""

    @property
    def flags(self) -> list[str]:
        out = [f"cell {c.index}: {flag}" for c in self.cells for flag in c.flags]
        if self.seconds > LESSON_BUDGET_S:
            out.append(f"whole lesson {self.seconds:.0f} s > {LESSON_BUDGET_S:.0f} s")
        return out


class _TimingClient(NotebookClient):
    """nbclient, noting when each cell starts and when each of its visible messages arrives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started: dict[int, float] = {}
        self.seen: dict[int, list[float]] = {}
        self.finished: dict[int, float] = {}

    async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        self.started[cell_index] = time.perf_counter()
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            self.finished[cell_index] = time.perf_counter()

    def process_message(self, msg: dict, cell: Any, cell_index: int) -> Any:
        if msg.get("msg_type") in _VISIBLE and cell_index in self.started:
            self.seen.setdefault(cell_index, []).append(time.perf_counter() - self.started[cell_index])
        return super().process_message(msg, cell, cell_index)


def _warmup_cells(nb: nbformat.NotebookNode) -> set[int]:
    """Cells whose code says it is a warm-up (requests made only so later measurements are warm)."""
    return {
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and re.search(r"warm[- ]up", cell.source, re.IGNORECASE)
    }


def time_notebook(path: Path, timeout: int = 600) -> LessonTime:
    """Run ``path`` at its defaults in a fresh kernel and time every code cell."""
    nb = nbformat.read(str(path), as_version=4)
    env_before = os.environ.pop("COURSE_FORCE_TIME_SCALE", None)  # the kernel inherits os.environ
    client = _TimingClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    load_start = _load()
    started = time.perf_counter()
    try:
        client.execute()
    finally:
        if env_before is not None:
            os.environ["COURSE_FORCE_TIME_SCALE"] = env_before
    total = time.perf_counter() - started
    load_end = _load()
    warm = _warmup_cells(nb)
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or index not in client.started:
            continue
        seconds = client.finished[index] - client.started[index]
        seen = client.seen.get(index, [])
        cells.append(
            CellTime(
                index,
                (cell.source.strip().splitlines() or [""])[0][:60],
                round(seconds, 2),
                round(seen[0], 2) if seen else None,
                len(seen),
                index in warm,
            )
        )
    load = (load_start, load_end) if load_start is not None and load_end is not None else None
    return LessonTime(path.relative_to(ROOT).as_posix(), round(total, 1), cells, code_hash(nb), load)


def _load() -> float | None:
    """The 1-minute load average (a busy machine slows set-up cells; the figures say how busy it was)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not available on this platform
        return None


def code_hash(nb: nbformat.NotebookNode) -> str:
    """A digest of the notebook's code cells (sources and order): what decides how long it runs."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode() + b"\0")
    return digest.hexdigest()[:16]


def load_record(path: Path) -> list[LessonTime]:
    """Read a ``--json`` record back (warm-up cells re-derived from today's notebooks)."""
    lessons = []
    for item in json.loads(path.read_text(encoding="utf-8"))["lessons"]:
        nb = nbformat.read(str(ROOT / item["notebook"]), as_version=4)
        warm = _warmup_cells(nb)
        cells = [CellTime(**{**c, "warmup": c["index"] in warm}) for c in item["cells"]]
        load = tuple(item["load_avg"]) if item.get("load_avg") else None
        lessons.append(LessonTime(item["notebook"], item["seconds"], cells, item.get("code_hash", ""), load))
    return lessons


def report(lesson: LessonTime, top: int = 5) -> str:
    """The lesson's slowest cells and its total, with the budget's breaches."""
    load = f"; load average {lesson.load_avg[0]:.1f} -> {lesson.load_avg[1]:.1f}" if lesson.load_avg else ""
    lines = [
        f"\n{lesson.notebook}: whole lesson {lesson.seconds:.1f} s (budget {LESSON_BUDGET_S:.0f} s){load}",
        f"  {'cell':>4}  {'seconds':>7}  {'1st output':>10}  {'updates':>7}  code",
    ]
    for cell in sorted(lesson.cells, key=lambda c: -c.seconds)[:top]:
        first = f"{cell.first_output_s:.2f} s" if cell.first_output_s is not None else "none"
        mark = "  <-- " + "; ".join(cell.flags) if cell.flags else ""
        lines.append(
            f"  {cell.index:>4}  {cell.seconds:>7.1f}  {first:>10}  {cell.updates:>7}  "
            f"{cell.first_line}{' (warm-up)' if cell.warmup else ''}{mark}"
        )
    flags = lesson.flags
    lines.append(f"  budget: {'OK' if not flags else 'BREACHED: ' + '; '.join(flags)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers (default: all)")
    parser.add_argument("--folder", default="solutions", choices=("solutions", "notebooks"))
    parser.add_argument("--json", type=Path, help="also write every cell's figures here")
    args = parser.parse_args(argv)
    paths = sorted((ROOT / args.folder).glob("[0-9][0-9]_*.ipynb"))
    if args.lessons:
        paths = [p for p in paths if p.name[:2] in {f"{int(n):02d}" for n in args.lessons}]
    results = []
    for path in paths:
        lesson = time_notebook(path)
        print(report(lesson), flush=True)
        results.append(lesson)
    print(f"\n{'notebook':<40} {'whole lesson':>12} {'slowest cell':>13}  {'load avg':>11}  breaches")
    for lesson in results:
        slowest = max(lesson.cells, key=lambda c: c.seconds)
        load = f"{lesson.load_avg[0]:.1f}->{lesson.load_avg[1]:.1f}" if lesson.load_avg else "-"
        print(
            f"{lesson.notebook:<40} {lesson.seconds:>10.1f} s {slowest.seconds:>9.1f} s ({slowest.index:>2})  "
            f"{load:>11}  {len(lesson.flags)}"
        )
    if args.json:
        record = {"time_scale": "notebook defaults (1.0)", "lessons": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return 1 if any(r.flags for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
