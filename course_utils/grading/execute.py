"""Run a restored notebook in an isolated worker process, with limits, and read back what happened.

Each submission runs in its own worker process (:mod:`.worker`; its own session / process
group) with its own kernel, so a fresh simulator per submission, and nothing a
student does — an endless loop, ``os._exit``, a kernel that ignores interrupts — can reach the
batch. A cell that kills or hangs the kernel is neutralised and the notebook re-run, so one such
cell costs only its own exercise.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from .restore import Restored
from .engine import is_papermill_cell
from .worker import SCRIPT as WORKER_SCRIPT

__all__ = ["ExecSettings", "CellRun", "Execution", "execute_restored", "kill_all", "child_env"]

_live: dict[int, subprocess.Popen] = {}  # worker pid -> process, for kill_all() on Ctrl-C


@dataclass
class ExecSettings:
    """Limits and environment for executing submissions."""

    cell_timeout: float = 60.0
    notebook_timeout: float = 900.0
    parameters: dict[str, Any] = field(default_factory=lambda: {"provider": "simulator", "seed": 0, "time_scale": 0.02})
    kernel: str = "python3"
    pythonpath: list[Path] = field(default_factory=list)  # extra import roots for the kernel
    checks_dirs: list[Path] = field(default_factory=list)  # extra folders of lessonNN.py check modules
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    max_output_bytes: int = 100_000
    max_attempts: int = 4


@dataclass
class CellRun:
    """What happened to one cell of the restored notebook."""

    status: str = "not run"  # "completed" | "failed" | "not run" | "running"
    error: tuple[str, str] | None = None  # (ename, evalue)
    timed_out: bool = False
    neutralised: str | None = None  # what this cell did ("crashed the kernel") that made the grader skip it


@dataclass
class Execution:
    """The outcome of executing one restored notebook."""

    outcome: str  # "completed" | "dead_kernel" | "wall_timeout" | "grader_error" | "no_kernel"
    results: dict[str, dict]
    listing: list[dict] | None
    listing_error: str | None
    cells: list[CellRun]
    problems: list[str]
    executed_path: Path | None
    seconds: float
    attempts: int


def child_env(settings: ExecSettings) -> dict[str, str]:
    """The environment of a worker and its kernel: no ANTHROPIC_* variables, the grading parameters."""
    env = dict(os.environ)
    # Grading never talks to the real API, whatever the grader's shell has configured.
    for key in [k for k in env if k.startswith("ANTHROPIC_")]:
        env.pop(key)
    params = settings.parameters
    env.update(
        COURSE_PROVIDER=str(params.get("provider", "simulator")),
        COURSE_SEED=str(params.get("seed", 0)),
        COURSE_TIME_SCALE=str(params.get("time_scale", 0.02)),
        COURSE_GRADING="1",
        MPLBACKEND="Agg",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    # The kernel spec says "python": jupyter_client maps it to this interpreter, but keep PATH consistent too.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    extra = [str(Path(p).resolve()) for p in settings.pythonpath]
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(extra + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(settings.env)
    return env


def _kill(proc: subprocess.Popen, pid_file: Path) -> None:
    """Kill the worker's process group and the kernel (which jupyter_client starts in its own session)."""
    try:
        kernel_pid = int(pid_file.read_text().strip())
        os.kill(kernel_pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def kill_all() -> None:
    """Kill every worker still running (used when the grader itself is interrupted)."""
    for proc in list(_live.values()):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass


def _read_executed(path: Path) -> Any:
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception:
        return None  # missing, or cut off mid-write by a kill


def _cell_runs(executed: Any, n: int) -> list[CellRun]:
    runs = [CellRun() for _ in range(n)]
    if executed is None:
        return runs
    cells = [c for c in executed.cells if not is_papermill_cell(c)]
    for run, cell in zip(runs, cells):
        status = (cell.metadata.get("papermill") or {}).get("status")
        run.status = {"completed": "completed", "failed": "failed", "running": "running"}.get(status, "not run")
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                # IPython names cells like "1607831707.py"; students know them as "line N" of their cell.
                evalue = re.sub(r"\(\d+\.py, (line \d+)\)", r"(\1)", str(out.get("evalue", "")))
                run.error = (str(out.get("ename", "")), evalue[:500])
                run.status = "failed"
                if run.error[0] == "CellTimeoutError":
                    run.timed_out = True
    return runs


def _running_index(executed: Any) -> int | None:
    if executed is None:
        return None
    cells = [c for c in executed.cells if not is_papermill_cell(c)]
    for i, cell in enumerate(cells):
        if (cell.metadata.get("papermill") or {}).get("status") == "running":
            return i
    return None


def _describe(kind: str, exercise: str | None) -> str:
    if kind == "exercise":
        return f"the exercise {exercise} cell"
    if kind == "check":
        return f"the check cell of exercise {exercise}"
    return f"a lesson cell ({kind})"


def execute_restored(restored: Restored, workdir: Path, settings: ExecSettings, *, paths: dict[str, Path]) -> Execution:
    """Execute ``restored`` in a worker process, re-running around cells that kill or hang the kernel.

    ``paths`` holds ``results``, ``exercises`` and ``pid`` (the files the setup cell writes) and
    ``executed`` (where the executed notebook goes).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    nb = restored.nb
    neutralised: dict[int, str] = {}
    problems: list[str] = []
    started = time.monotonic()
    env = child_env(settings)
    attempts = 0
    outcome = "grader_error"
    while True:
        attempts += 1
        for key in ("results", "exercises", "pid", "executed"):
            paths[key].unlink(missing_ok=True)
        input_path = workdir / "input.ipynb"
        nbformat.write(nb, str(input_path))
        job = {
            "input": str(input_path),
            "output": str(paths["executed"]),
            "run": str(workdir / "run.json"),
            "parameters": settings.parameters,
            "kernel": settings.kernel,
            "cwd": str(settings.cwd) if settings.cwd else None,
            "cell_timeout": settings.cell_timeout,
            "max_output_bytes": settings.max_output_bytes,
            "pid_file": str(paths["pid"]),
        }
        (workdir / "run.json").unlink(missing_ok=True)
        (workdir / "job.json").write_text(json.dumps(job))
        remaining = settings.notebook_timeout - (time.monotonic() - started)
        with open(workdir / "worker.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), str(workdir / "job.json")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
            _live[proc.pid] = proc
            try:
                proc.wait(timeout=max(remaining, 1.0))
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                if timed_out:
                    _kill(proc, paths["pid"])
                _live.pop(proc.pid, None)
        executed = _read_executed(paths["executed"])
        try:
            run = json.loads((workdir / "run.json").read_text())
        except (OSError, ValueError):
            run = {"outcome": "wall_timeout" if timed_out else "grader_error", "message": "", "cell_index": None}
        if timed_out:
            run["outcome"], run["cell_index"] = "wall_timeout", _running_index(executed)
        outcome = run["outcome"]
        culprit = run.get("cell_index")
        if outcome == "completed":
            break
        if outcome == "no_kernel":
            if attempts < settings.max_attempts and settings.notebook_timeout - (time.monotonic() - started) > 5:
                continue  # a kernel that failed to start says nothing about the submission: start another
            tail = (workdir / "worker.log").read_text(errors="replace")[-1500:]
            problems.append(
                f"The grader could not start a kernel ({attempts} tries): {run.get('message') or tail}".strip()
            )
            break
        if outcome == "grader_error":
            tail = (workdir / "worker.log").read_text(errors="replace")[-1500:]
            problems.append(f"The grader could not execute the notebook: {run.get('message') or tail}".strip())
            break
        what = (
            "crashed the kernel"
            if outcome == "dead_kernel"
            else (
                f"was still running when the notebook's {settings.notebook_timeout:g} s limit passed (it ignored interrupts)"
            )
        )
        if culprit is None or not (0 <= culprit < len(nb.cells)) or culprit in neutralised:
            problems.append(
                f"The notebook {what.replace('was still running', 'hung')} at an unknown cell; later cells did not run."
            )
            break
        kind, exercise = restored.roles[culprit]
        reason = f"{_describe(kind, exercise)} {what}"
        neutralised[culprit] = what
        problems.append(f"{reason[0].upper()}{reason[1:]}; it was skipped and the notebook re-run.")
        remaining = settings.notebook_timeout - (time.monotonic() - started)
        if attempts >= settings.max_attempts or remaining < 5:
            problems.append("No time or attempts left for another re-run; cells after it did not run.")
            break
        nb = _neutralise(nb, culprit, what, kind)
    results: dict[str, dict] = {}
    try:
        results = json.loads(paths["results"].read_text())
    except (OSError, ValueError):
        pass
    listing, listing_error = None, None
    try:
        raw = json.loads(paths["exercises"].read_text())
        if isinstance(raw, list):
            listing = raw
        else:
            listing_error = str(raw.get("error"))
    except (OSError, ValueError, AttributeError):
        listing_error = "the setup cell did not run"
    cells = _cell_runs(executed, len(nb.cells))
    for index, why in neutralised.items():
        cells[index].neutralised = why
    for index in run.get("timed_out") or []:
        if 0 <= index < len(cells):
            cells[index].timed_out = True
    return Execution(
        outcome=outcome,
        results=results if isinstance(results, dict) else {},
        listing=listing,
        listing_error=listing_error,
        cells=cells,
        problems=problems,
        executed_path=paths["executed"] if paths["executed"].exists() else None,
        seconds=round(time.monotonic() - started, 2),
        attempts=attempts,
    )


def _neutralise(nb: Any, index: int, what: str, kind: str) -> Any:
    """A copy of ``nb`` whose cell ``index`` no longer runs the code that killed/hung the kernel."""
    import copy

    nb = copy.deepcopy(nb)
    cell = nb.cells[index]
    if kind == "exercise":
        # Raising keeps the exercise's names undefined, so its check reports an error, not a pass.
        cell.source = f"raise RuntimeError({'[grader] this cell was skipped: it ' + what!r})"
    else:
        cell.source = f"# [grader] skipped: this cell {what}"
    return nb
