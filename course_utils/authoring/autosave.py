"""Undo what a JupyterLab autosave did to tracked solution notebooks: ``make normalize``.

A solution notebook's stored outputs are a contract: ``python -m course_utils.authoring execute``
writes them from a run at the CI time scale, and nbval compares a fresh run against them. Opening
``solutions/`` in JupyterLab and running cells replaces them with outputs of a run at the student's
time scale (and adds front-end metadata), so ``make check-release`` and nbval fail.

For each solution that differs from git's ``HEAD``:

- every code cell's source is as committed: only outputs and metadata changed, so the committed
  outputs and execution counts are put back (instant; markdown edits are kept);
- code was edited (or the notebook is new): its outputs must be recomputed, so the lesson is
  re-executed with ``python -m course_utils.authoring execute NN``.

``make normalize`` then runs ``python -m course_utils.authoring release``, which normalises the
metadata and regenerates ``notebooks/`` (where autosaved outputs are simply overwritten).
"""

from __future__ import annotations

import subprocess
import sys
from enum import Enum
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .generate import ROOT, SOLUTIONS_DIR, lesson_files, render

__all__ = ["Plan", "committed", "plan", "restore_outputs", "normalize", "main"]


class Plan(str, Enum):
    """What a solution notebook needs."""

    CLEAN = "clean"  # byte-identical to HEAD
    RESTORE = "restore"  # same code as HEAD: put HEAD's outputs back
    EXECUTE = "execute"  # code changed, or nothing committed to compare with: run it again


def committed(path: Path, root: Path = ROOT) -> str | None:
    """The text of ``path`` at git's ``HEAD``, or ``None`` (not a repository, file not committed)."""
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    run = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=root, capture_output=True, text=True)
    return run.stdout if run.returncode == 0 else None


def _code_sources(nb: NotebookNode) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def plan(current: NotebookNode, head: NotebookNode | None) -> Plan:
    """Whether ``current`` can get ``head``'s outputs back (same code) or must be re-executed."""
    if head is None or _code_sources(current) != _code_sources(head):
        return Plan.EXECUTE
    return Plan.RESTORE


def restore_outputs(current: NotebookNode, head: NotebookNode) -> NotebookNode:
    """Copy outputs and execution counts from ``head`` into ``current``'s code cells, in place.

    Contract: both notebooks have the same code sources in the same order (see :func:`plan`).
    """
    code_now = [cell for cell in current.cells if cell.cell_type == "code"]
    code_then = [cell for cell in head.cells if cell.cell_type == "code"]
    assert len(code_now) == len(code_then), "restore_outputs needs the same code cells"
    for now, then in zip(code_now, code_then):
        now.outputs = then.get("outputs", [])
        now.execution_count = then.get("execution_count")
    return current


def normalize(solutions_dir: Path = SOLUTIONS_DIR, root: Path = ROOT) -> list[tuple[Path, Plan]]:
    """Restore or re-execute every solution that differs from ``HEAD``; return what was done to which.

    Restored files are written here; lessons to execute are run by ``course_utils.authoring
    execute`` in one subprocess (its kernels inherit the CI time scale, as for stored outputs).
    """
    done: list[tuple[Path, Plan]] = []
    to_execute: list[str] = []
    for lesson in lesson_files(solutions_dir):
        path = lesson.solution
        text = path.read_text(encoding="utf-8")
        head_text = committed(path, root)
        if head_text == text:
            continue
        current = nbformat.reads(text, as_version=4)
        head = nbformat.reads(head_text, as_version=4) if head_text is not None else None
        action = plan(current, head)
        if action is Plan.RESTORE:
            path.write_text(render(restore_outputs(current, head)), encoding="utf-8")
        else:
            to_execute.append(f"{lesson.lesson:02d}")
        done.append((path, action))
    if to_execute:
        subprocess.run([sys.executable, "-m", "course_utils.authoring", "execute", *to_execute], cwd=root, check=True)
    return done


def main() -> int:
    """Print one line per solution notebook that was fixed."""
    done = normalize()
    for path, action in done:
        what = "committed outputs restored" if action is Plan.RESTORE else "code changed: re-executed"
        print(f"{path.relative_to(ROOT)}: {what}")
    if not done:
        print("solutions/ matches the last commit; nothing to restore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
