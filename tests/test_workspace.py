"""The student's workspace (``my-work/``): filled from ``notebooks/``, never overwritten, updated with care."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import nbformat
import pytest

from course_utils.workspace import MANIFEST, sync

REPO = Path(__file__).resolve().parents[1]


def _lesson(folder: Path, name: str, code: str, markdown: str = "Intro") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), nbformat.v4.new_code_cell(code)]
    path = folder / name
    nbformat.write(nb, str(path))
    return path


def _edit_code(path: Path, code: str) -> None:
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[1].source = code
    nbformat.write(nb, str(path))


def _run(path: Path) -> None:
    """What JupyterLab's autosave does after Run All: outputs and counts, cells unchanged."""
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[1].execution_count = 1
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="42\n")]
    nb.metadata["widgets"] = {"state": {}}
    nbformat.write(nb, str(path))


@pytest.fixture()
def course(tmp_path: Path) -> tuple[Path, Path]:
    official, work = tmp_path / "notebooks", tmp_path / "my-work"
    official.mkdir()
    _lesson(official, "01_context.ipynb", "x = 1")
    _lesson(official, "02_streaming.ipynb", "y = 2")
    (official / "scratch.ipynb").write_text("{}")  # not a lesson: never copied
    return official, work


def test_init_copies_every_lesson_and_nothing_else(course):
    official, work = course
    report = sync(official, work)
    assert report.copied == ["01_context.ipynb", "02_streaming.ipynb"]
    assert sorted(p.name for p in work.glob("*.ipynb")) == ["01_context.ipynb", "02_streaming.ipynb"]
    for name in report.copied:
        assert (work / name).read_bytes() == (official / name).read_bytes()
    assert set(json.loads((work / MANIFEST).read_text())) == set(report.copied)


def test_init_never_overwrites_the_students_notebook(course):
    official, work = course
    sync(official, work)
    _edit_code(work / "01_context.ipynb", "x = 'my answer'")
    _edit_code(official / "01_context.ipynb", "x = 'course fix'")
    report = sync(official, work)
    assert report.copied == [] and report.updated == []
    assert report.outdated == ["01_context.ipynb"]  # said, not done
    assert "my answer" in (work / "01_context.ipynb").read_text()


def test_init_copies_a_lesson_the_student_deleted_and_a_new_lesson(course):
    official, work = course
    sync(official, work)
    (work / "02_streaming.ipynb").unlink()
    _lesson(official, "03_async_calls.ipynb", "z = 3")
    assert sync(official, work).copied == ["02_streaming.ipynb", "03_async_calls.ipynb"]


def test_update_replaces_unedited_keeps_edited_and_says_so(course):
    official, work = course
    sync(official, work)
    _run(work / "01_context.ipynb")  # only ran it: outputs changed, cells did not
    _edit_code(work / "02_streaming.ipynb", "y = 'my answer'")
    mine = (work / "02_streaming.ipynb").read_bytes()
    _edit_code(official / "01_context.ipynb", "x = 'course fix'")
    _edit_code(official / "02_streaming.ipynb", "y = 'course fix'")

    report = sync(official, work, update=True)
    assert report.updated == ["01_context.ipynb"]
    assert report.kept_edited == ["02_streaming.ipynb"]
    assert (work / "01_context.ipynb").read_bytes() == (official / "01_context.ipynb").read_bytes()
    assert (work / "02_streaming.ipynb").read_bytes() == mine
    lines = "\n".join(report.lines(work, official))
    assert "02_streaming.ipynb: a newer official version" in lines and "left alone" in lines

    # The edited one is reported on every update until the student takes the new version.
    assert sync(official, work, update=True).kept_edited == ["02_streaming.ipynb"]
    (work / "02_streaming.ipynb").rename(work / "02_streaming-mine.ipynb")
    assert sync(official, work, update=True).copied == ["02_streaming.ipynb"]
    assert (work / "02_streaming-mine.ipynb").read_bytes() == mine


def test_a_markdown_edit_counts_as_an_edit(course):
    official, work = course
    sync(official, work)
    nb = nbformat.read(str(work / "01_context.ipynb"), as_version=4)
    nb.cells[0].source = "My notes on this lesson"
    nbformat.write(nb, str(work / "01_context.ipynb"))
    _edit_code(official / "01_context.ipynb", "x = 'course fix'")
    assert sync(official, work, update=True).kept_edited == ["01_context.ipynb"]
    assert "My notes" in (work / "01_context.ipynb").read_text()


def test_a_broken_or_foreign_notebook_is_left_alone(course):
    official, work = course
    work.mkdir()
    (work / "01_context.ipynb").write_text("not json, the student's own file")
    report = sync(official, work, update=True)
    assert report.unknown == ["01_context.ipynb"] and report.copied == ["02_streaming.ipynb"]
    assert (work / "01_context.ipynb").read_text() == "not json, the student's own file"

    sync(official, work)
    (work / "02_streaming.ipynb").write_text("{ broken by hand")
    _edit_code(official / "02_streaming.ipynb", "y = 'course fix'")
    assert sync(official, work, update=True).kept_edited == ["02_streaming.ipynb"]
    assert (work / "02_streaming.ipynb").read_text() == "{ broken by hand"


def test_concurrent_inits_fill_the_workspace_once(course):
    official, work = course
    reports, barrier = [], threading.Barrier(8)

    def init() -> None:
        barrier.wait()
        reports.append(sync(official, work))

    threads = [threading.Thread(target=init) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    copied = sorted(name for report in reports for name in report.copied)
    assert copied == ["01_context.ipynb", "02_streaming.ipynb"]
    assert sorted(p.name for p in work.iterdir() if not p.name.startswith(".")) == copied
    assert not [p for p in work.iterdir() if p.name.startswith(".incoming-")]


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def test_workspace_survives_git_pull_and_make_update(tmp_path: Path):
    """A course repository, a student's clone with answers in my-work/, a course fix pulled: no conflict."""
    upstream = tmp_path / "course"
    (upstream / "notebooks").mkdir(parents=True)
    _lesson(upstream / "notebooks", "01_context.ipynb", "x = 1")
    _lesson(upstream / "notebooks", "02_streaming.ipynb", "y = 2")
    (upstream / ".gitignore").write_text((REPO / ".gitignore").read_text())
    _git(upstream, "init", "-q", "-b", "main")
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "-q", "-m", "course")

    student = tmp_path / "student"
    _git(tmp_path, "clone", "-q", str(upstream), str(student))
    work = student / "my-work"
    sync(student / "notebooks", work)
    _run(work / "01_context.ipynb")
    _edit_code(work / "02_streaming.ipynb", "y = 'my answer'")
    assert _git(student, "status", "--porcelain") == ""  # the workspace is not tracked

    _edit_code(upstream / "notebooks" / "01_context.ipynb", "x = 'course fix'")
    _edit_code(upstream / "notebooks" / "02_streaming.ipynb", "y = 'course fix'")
    _lesson(upstream / "notebooks", "03_async_calls.ipynb", "z = 3")
    _git(upstream, "add", "-A")
    _git(upstream, "commit", "-q", "-m", "fix")

    _git(student, "pull", "-q", "--ff-only")
    report = sync(student / "notebooks", work, update=True)
    assert report.copied == ["03_async_calls.ipynb"]
    assert report.updated == ["01_context.ipynb"]
    assert report.kept_edited == ["02_streaming.ipynb"]
    assert "my answer" in (work / "02_streaming.ipynb").read_text()
    assert "course fix" in (work / "01_context.ipynb").read_text()
    assert _git(student, "status", "--porcelain") == ""
