"""Same grades everywhere, exactly once: the grader on one worker, on two, and on a real cluster.

Five tiny lesson-99 submissions (fixtures) are graded four ways, each through the command line
and each from another layout:

1. one folder per student, a LocalCluster of one worker (one submission at a time);
2. the same students in a Canvas "Download Submissions" zip, a LocalCluster of two workers (several
   worker processes, each with its own kernel zygote, grading at once; two, not four, to spare the
   two-core CI machine two more workers and zygotes);
3. the same students in nbgrader's exchange inbound folder (with an older, superseded attempt),
   on a real cluster started as an instructor would — ``dask scheduler`` and two ``dask worker``
   processes on loopback — with one worker killed (SIGKILL to its whole process group) while it
   grades a submission;
4. the same command again after deleting one grade from the ledger: only that one is graded.

Every run must give the same gradebook rows (student ids mapped to names for the zip), one row per
student and lesson, and the killed worker's processes (its grading subprocess, kernel zygote and
kernel) must all be gone. Ports are chosen by the scheduler itself (port 0, read back from its
scheduler file); every process this test starts is ended by PID in ``finally``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from course_utils.grading.__main__ import main

pytestmark = pytest.mark.notebooks

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SOLUTIONS = FIXTURES / "grading_lesson" / "solutions"
CHECKS = FIXTURES / "grading_lesson" / "checks"
SUBMISSIONS = FIXTURES / "submissions"
DASK = Path(sys.executable).with_name("dask")
# student -> (fixture, Canvas user id)
CLASS = {
    "alice": ("perfect.ipynb", "1001"),
    "bob": ("partial.ipynb", "1002"),
    "carol": ("syntax_error.ipynb", "1003"),
    "dave": ("missing_cell.ipynb", "1004"),
    "erin": ("random_bytes.ipynb", "1005"),
}
EXPECTED_TOTALS = {"alice": "4", "bob": "1", "carol": "3", "dave": "2", "erin": "0"}
RUN_LIMIT = 300  # seconds one grading run may take here before the test gives up


def _grade(source: Path, out: Path, *extra: str) -> dict:
    """Run the command line in a thread (so this test can act meanwhile); returns results.json."""
    from course_utils import checks

    saved = list(checks.__path__)  # main() extends the checks package with --checks-dir
    codes: list[int] = []
    argv = [
        str(source),
        "--out",
        str(out),
        "--solutions",
        str(SOLUTIONS),
        "--checks-dir",
        str(CHECKS),
        "--timeout-per-cell",
        "20",
        "--timeout-per-notebook",
        "120",
        "--quiet",
        *extra,
    ]
    thread = threading.Thread(target=lambda: codes.append(main(argv)), daemon=True)
    thread.start()
    thread.join(RUN_LIMIT)
    checks.__path__[:] = saved
    assert not thread.is_alive(), f"grading {source.name} took more than {RUN_LIMIT} s"
    assert codes == [0]
    return json.loads((out / "results.json").read_text())


def _rows(out: Path, names: dict[str, str] | None = None) -> list[list[str]]:
    rows = list(csv.reader(open(out / "gradebook.csv", encoding="utf-8")))
    names = names or {}
    body = sorted([names.get(r[0], r[0]), *r[1:]] for r in rows[1:])
    keys = [(r[0], r[1]) for r in body]
    assert len(keys) == len(set(keys)), f"a student and lesson appear twice: {body}"
    return [rows[0], *body]


def _per_student(root: Path) -> Path:
    for student, (fixture, _) in CLASS.items():
        (root / student).mkdir(parents=True)
        shutil.copy(SUBMISSIONS / fixture, root / student / "99_fixture.ipynb")
    return root


def _canvas_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for student, (fixture, uid) in CLASS.items():
            zf.write(SUBMISSIONS / fixture, f"{student}_{uid}_{int(uid) + 5000}_99_fixture.ipynb")
    return path


def _nbgrader(root: Path) -> Path:
    for student, (fixture, _) in CLASS.items():
        folder = root / f"{student}+lesson99+2026-12-07 10:00:00.000000 UTC"
        folder.mkdir(parents=True)
        shutil.copy(SUBMISSIONS / fixture, folder / "99_fixture.ipynb")
    older = root / "alice+lesson99+2026-12-06 09:00:00.000000 UTC"  # superseded by the later one
    older.mkdir()
    shutil.copy(SUBMISSIONS / "untouched.ipynb", older / "99_fixture.ipynb")
    return root


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes, each in its own session (killable as a group)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.scheduler_file = tmp / "scheduler.json"

    def _start(self, name: str, *args: str) -> None:
        log = open(self.tmp / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(
            [str(DASK), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def start(self, workers: int) -> str:
        self._start(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(self.scheduler_file),
        )
        deadline = time.monotonic() + 60
        address = None
        while address is None:
            assert time.monotonic() < deadline, (self.tmp / "scheduler.log").read_text()
            try:
                address = json.loads(self.scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):  # not written yet, or half written
                time.sleep(0.1)
        for i in range(workers):
            self._start(
                f"worker{i}",
                "worker",
                "--scheduler-file",
                str(self.scheduler_file),
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--name",
                f"worker{i}",
            )
        return address

    def stop(self) -> None:
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        for proc in self.procs.values():
            proc.wait(timeout=30)


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def _kill_a_busy_worker(address: str, cluster: Cluster, killed: dict) -> None:
    """Watch the scheduler; SIGKILL the process group of the first worker seen grading a submission
    (after a moment, so its kernel is running). Records what it killed in ``killed``."""
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
        deadline = time.monotonic() + RUN_LIMIT
        while time.monotonic() < deadline:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            if busy:
                worker, keys = sorted(busy.items())[0]
                time.sleep(1.0)
                if not client.processing().get(worker):
                    continue  # it finished meanwhile; wait for the next one
                pid = client.run(os.getpid, workers=[worker])[worker]
                group = os.getpgid(pid)  # the `dask worker` command's session
                tree = psutil.Process(group).children(recursive=True)
                killed.update(worker=worker, keys=list(keys), pids=[p.pid for p in tree], group=group)
                os.killpg(group, signal.SIGKILL)
                return
            time.sleep(0.05)


def test_same_gradebook_on_one_worker_two_workers_and_a_cluster_with_a_worker_killed(
    tmp_path: Path, cluster: Cluster
) -> None:
    started = time.monotonic()
    laps: list[tuple[str, float]] = [("", started)]

    def lap(what: str) -> None:  # how long each part took, for the summary line
        laps.append((what, time.monotonic()))

    # 1. One worker, one submission at a time, one folder per student.
    one = _grade(_per_student(tmp_path / "per-student"), tmp_path / "out-one", "--workers", "1", "--jobs", "1")
    assert one["layout"] == "per-student"
    reference = _rows(tmp_path / "out-one")
    assert reference[0] == ["student", "lesson", "99.1", "99.2", "99.3", "total"]
    assert {r[0]: r[-1] for r in reference[1:]} == EXPECTED_TOTALS

    lap("one worker")

    # 2. Two workers, from a Canvas zip (student ids are Canvas user ids).
    two = _grade(_canvas_zip(tmp_path / "canvas.zip"), tmp_path / "out-two", "--workers", "2", "--jobs", "1")
    assert two["layout"] == "lms-zip"
    ids = {uid: student for student, (_, uid) in CLASS.items()}
    assert _rows(tmp_path / "out-two", ids) == reference
    canvas = list(csv.reader(open(tmp_path / "out-two" / "canvas_import.csv", encoding="utf-8")))
    assert canvas[0][:2] == ["Student", "ID"]
    assert {r[1]: r[-1] for r in canvas[1:]} == {uid: EXPECTED_TOTALS[s] for uid, s in ids.items()}

    lap("two workers")

    # 3. A real cluster from the command line; one worker killed while grading.
    address = cluster.start(workers=2)
    killed: dict = {}
    killer = threading.Thread(target=_kill_a_busy_worker, args=(address, cluster, killed), daemon=True)
    killer.start()
    out = tmp_path / "out-cluster"
    inbound = _nbgrader(tmp_path / "inbound")
    on_cluster = _grade(inbound, out, "--scheduler", address)
    killer.join(30)
    assert killed, "no worker was seen grading, so none was killed"
    assert on_cluster["layout"] == "nbgrader"
    assert _rows(out) == reference
    assert [k["origin"].split("+")[0] for k in on_cluster["not_graded"]] == ["alice"]  # the older attempt
    statuses = {s["student"]: s["status"] for s in on_cluster["submissions"]}
    assert "grader error" not in statuses.values(), statuses  # the killed worker's submission was retried
    with sqlite3.connect(out / "ledger.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM grades").fetchone()[0] == len(CLASS)

    # Nothing of the killed worker lingers: its grading subprocess, kernel zygote and kernel end with it.
    deadline = time.monotonic() + 30
    alive = [p for p in killed["pids"] if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"processes of the killed worker still running: {alive}"

    lap("cluster")

    # 4. A rerun grades only what is missing from the ledger (keyed by content hash).
    bob = next(s for s in on_cluster["submissions"] if s["student"] == "bob")
    with sqlite3.connect(out / "ledger.sqlite") as db:
        db.execute("DELETE FROM grades WHERE content_hash = ?", (bob["content_hash"],))
    again = _grade(inbound, out, "--scheduler", address)
    assert again["reused_from_ledger"] == len(CLASS) - 1
    assert _rows(out) == reference
    with sqlite3.connect(out / "ledger.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM grades").fetchone()[0] == len(CLASS)
    lap("rerun")
    print(
        f"\nfour ways graded in {time.monotonic() - started:.0f} s "
        f"({', '.join(f'{w} {t - laps[i][1]:.0f}' for i, (w, t) in enumerate(laps[1:]))} s); "
        f"killed {killed['worker']} grading {killed['keys']}"
    )
