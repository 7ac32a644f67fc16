"""Same submission, same grade: alone, or among others with ``--jobs 4`` on a saturated machine.

Issue 11 item 3 (grading half). A submission is graded alone on a quiet machine, then again in a
batch of four graded in parallel while CPU burners (one busy-looping process per core) saturate
every core. Its gradebook row and each exercise's status must be identical. Lesson 00 with its
demo cells skipped keeps this cheap; one exercise is answered wrongly so the row mixes full
marks and a failure.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import nbformat
import pytest

from course_utils.grading.__main__ import main

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "00_orientation.ipynb"
STUDENT = ROOT / "notebooks" / "00_orientation.ipynb"
WRONG_0_2 = "    return Decimal(0)  # wrong on purpose: every reply costs something\n"


def _submission(path: Path) -> None:
    """Lesson 00's solution with exercise 0.2 answered wrongly."""
    nb = nbformat.read(str(SOLUTION), as_version=4)
    cell = next(c for c in nb.cells if "BEGIN SOLUTION 0.2" in c.source)
    head, _, _ = cell.source.partition("    ### BEGIN SOLUTION")
    cell.source = head + WRONG_0_2
    nbformat.write(nb, str(path))


@pytest.fixture()
def burners() -> Iterator[list[int]]:
    """One process spinning ``while True: pass`` per core, ended by PID however the test ends."""
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(os.cpu_count() or 2):
            procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL))
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=30)


def _grade(folder: Path, jobs: int) -> tuple[list[str], dict[str, dict]]:
    """Grade ``folder``; returns alice's gradebook row and her exercises by id (status, points)."""
    assert main([str(folder), "--jobs", str(jobs), "--quiet"]) == 0
    out = folder / "graded"
    rows = list(csv.reader(open(out / "gradebook.csv", encoding="utf-8")))
    header, alice = rows[0], next(r for r in rows[1:] if r[0] == "alice")
    results = json.loads((out / "results.json").read_text())
    sub = next(s for s in results["submissions"] if s["name"] == "alice")
    exercises = {e["exercise"]: {"status": e["status"], "points": e["points"]} for e in sub["exercises"]}
    return [f"{h}={v}" for h, v in zip(header, alice)], exercises


def test_same_gradebook_row_alone_and_in_a_loaded_parallel_batch(tmp_path: Path, request) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    _submission(alone / "alice.ipynb")
    row_alone, ex_alone = _grade(alone, jobs=1)
    assert {k: v["status"] for k, v in ex_alone.items()} == {"0.1": "passed", "0.2": "failed"}, ex_alone

    crowd = tmp_path / "crowd"
    crowd.mkdir()
    shutil.copy(alone / "alice.ipynb", crowd / "alice.ipynb")
    shutil.copy(SOLUTION, crowd / "bob.ipynb")
    shutil.copy(STUDENT, crowd / "carol.ipynb")
    shutil.copy(alone / "alice.ipynb", crowd / "dave.ipynb")
    request.getfixturevalue("burners")  # saturate every core from here on
    row_crowd, ex_crowd = _grade(crowd, jobs=4)

    assert row_crowd == row_alone
    assert ex_crowd == ex_alone
