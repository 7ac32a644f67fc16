"""A real Dask cluster on loopback, started as an instructor would, with a worker killed mid-run.

Run: ``.venv/bin/python benchmarks/grade_cluster.py`` (defaults: 200 copies of lesson 03's
solution, 2 workers of one thread each, one killed once a third of the grades are in).

It starts ``dask scheduler`` (port chosen by the scheduler, read from its scheduler file) and two
``dask worker --nthreads 1`` processes, then runs ``python -m course_utils.grading FOLDER
--scheduler tcp://...`` as a separate process. When a third of the grades are in the ledger it
SIGKILLs the whole process group of a worker that is grading (``dask worker``, its nanny and
worker, its grading subprocess and kernel). Afterwards it checks that nothing was lost and nothing
counted twice: N gradebook rows, N distinct students, N ledger rows, every copy at full marks, no
"grader error". Then it runs the command again: everything comes from the ledger, nothing is graded.
Every process it started is killed by PID at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client

from course_utils.grading.grade import default_solutions

LESSON = "03_async_calls.ipynb"
DASK = Path(sys.executable).with_name("dask")


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=1 / 3, help="fraction of grades in before the kill")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="grade-cluster-"))
    procs: list[subprocess.Popen] = []
    client = None
    try:
        folder = tmp / "submissions"
        out = folder / "graded"  # the grader's default output folder
        folder.mkdir()
        source = json.loads((default_solutions()[0] / LESSON).read_text(encoding="utf-8"))
        for i in range(args.copies):
            # Each copy's bytes differ (as students' do): the ledger keys grades by content hash.
            source["metadata"]["benchmark_copy"] = i
            (folder / f"student{i:04d}.ipynb").write_text(json.dumps(source), encoding="utf-8")
        sched_file = tmp / "scheduler.json"
        procs.append(
            start(
                [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
                + ["--scheduler-file", str(sched_file)],
                tmp / "scheduler.log",
            )
        )
        while True:
            try:
                address = json.loads(sched_file.read_text())["address"]
                break
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        for i in range(args.workers):
            procs.append(
                start(
                    [str(DASK), "worker", "--scheduler-file", str(sched_file), "--host", "127.0.0.1"]
                    + ["--nthreads", "1", "--no-dashboard", "--name", f"worker{i}"],
                    tmp / f"worker{i}.log",
                )
            )
        client = Client(address, timeout="60s")
        client.wait_for_workers(args.workers, timeout=120)
        print(
            f"cluster {address}: {args.workers} `dask worker --nthreads 1`; grading {args.copies} copies of {LESSON}; "
            f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
            flush=True,
        )
        started = time.perf_counter()
        grader = start(
            [sys.executable, "-m", "course_utils.grading", str(folder), "--scheduler", address, "--quiet"],
            tmp / "grader.log",
        )
        procs.append(grader)
        ledger = out / "ledger.sqlite"
        killed = None
        while grader.poll() is None:
            time.sleep(0.5)
            if killed or not ledger.exists():
                continue
            try:
                with sqlite3.connect(ledger) as db:
                    done = db.execute("SELECT COUNT(*) FROM grades").fetchone()[0]
            except sqlite3.Error:
                continue
            busy = [w for w, keys in client.processing().items() if keys]
            if done >= args.copies * args.kill_at and busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.killpg(os.getpgid(pid), signal.SIGKILL)
                killed = (busy[0], done, time.perf_counter() - started)
                print(f"killed {busy[0]} (whole process group) at {done} grades, {killed[2]:.0f} s in", flush=True)
        total = time.perf_counter() - started
        print((tmp / "grader.log").read_text().strip().splitlines()[0])
        rows = list(csv.reader(open(out / "gradebook.csv", encoding="utf-8")))[1:]
        with sqlite3.connect(ledger) as db:
            ledger_rows = db.execute("SELECT COUNT(*) FROM grades").fetchone()[0]
        results = json.loads((out / "results.json").read_text())
        full = sum(1 for s in results["submissions"] if s["max_total"] and s["total"] == s["max_total"])
        errors = sum(1 for s in results["submissions"] if s["status"] == "grader error")
        students = len({r[0] for r in rows})
        print(
            f"{total:.1f} s for {args.copies} submissions ({args.copies / total * 60:.1f}/min) with a worker killed; "
            f"gradebook rows {len(rows)}, distinct students {students}, ledger rows {ledger_rows}, "
            f"full marks {full}, grader errors {errors}; load {os.getloadavg()[0]:.2f}"
        )
        again_started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "course_utils.grading", str(folder), "--scheduler", address, "--quiet"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        again = json.loads((out / "results.json").read_text())
        print(
            f"rerun: {again['reused_from_ledger']} of {len(again['submissions'])} from the ledger, "
            f"{time.perf_counter() - again_started:.1f} s"
        )
        ok = len(rows) == students == ledger_rows == full == args.copies and errors == 0 and killed is not None
        ok = ok and again["reused_from_ledger"] == args.copies
        print("OK: nothing lost, nothing twice" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        if client is not None:
            client.close()
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
