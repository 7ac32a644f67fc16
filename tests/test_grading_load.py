"""Same submission, same grade: alone, or among others with ``--jobs 4`` on a saturated machine.

Issue 11 item 3 (grading half). A submission is graded alone on a quiet machine, then again in a
batch of four graded in parallel while CPU burners (one busy-looping process per core) saturate
every core. Its gradebook row and each exercise's status must be identical. Lesson 00 with its
demo cells skipped keeps this cheap; one exercise is answered wrongly so the row mixes full
marks and a failure. The burners start when the batch's first grading subprocess does, so every
kernel and check runs on the saturated machine, and they run until the batch is graded; the
cluster's start before that is not what this test is about, and burning through it only took CPU
from the rest of the test suite.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import nbformat
import psutil
import pytest

from course_utils.grading.__main__ import main
from course_utils.grading.worker import SCRIPT as WORKER_SCRIPT

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
def burners() -> Iterator[tuple[Callable[[], None], list[subprocess.Popen]]]:
    """``start()``: one process spinning ``while True: pass`` per core from then on, and the
    processes; ended by PID however the test ends."""
    procs: list[subprocess.Popen] = []

    def start() -> None:
        for _ in range(os.cpu_count() or 2):
            procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL))

    try:
        yield start, procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=30)


def _when_grading_starts(action: Callable[[], None], done: threading.Event) -> threading.Thread:
    """A thread that runs ``action`` as soon as a grading subprocess (worker.py, which starts the
    submission's kernel) runs anywhere below this process, unless ``done`` is set first."""

    def watch() -> None:
        me = psutil.Process()
        while not done.is_set():
            for child in me.children(recursive=True):
                try:
                    if str(WORKER_SCRIPT) in child.cmdline():
                        action()
                        return
                except psutil.Error:  # gone meanwhile
                    continue
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


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
    start, procs = request.getfixturevalue("burners")
    done = threading.Event()
    watcher = _when_grading_starts(start, done)  # saturate every core from the first kernel on
    row_crowd, ex_crowd = _grade(crowd, jobs=4)
    done.set()
    watcher.join(10)
    assert len(procs) == (os.cpu_count() or 2), "the burners did not start while the batch was graded"
    assert all(p.poll() is None for p in procs), "a burner stopped before the batch was graded"

    assert row_crowd == row_alone
    assert ex_crowd == ex_alone
