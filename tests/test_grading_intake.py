"""Submissions from where instructors get them: flat, per-student, nbgrader exchange, Canvas zip.

Fast: these tests only read the layouts (no notebook runs). The fixture notebooks are lesson 99's
(``tests/fixtures/submissions``); what each file holds does not matter here, only whose it is and
which one counts. ``test_grading_dask.py`` grades these layouts end to end.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from course_utils.grading.intake import (
    detect_layout,
    parse_canvas_name,
    parse_nbgrader_folder,
    read_intake,
    safe_id,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SOLUTIONS = [FIXTURES / "grading_lesson" / "solutions"]
SUBMISSIONS = FIXTURES / "submissions"


def _put(path: Path, fixture: str, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SUBMISSIONS / fixture, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _intake(source: Path, tmp_path: Path, **kw):
    unpack = tmp_path / "unpack"
    unpack.mkdir(exist_ok=True)
    return read_intake(source, SOLUTIONS, unpack, **kw)


def test_canvas_file_names() -> None:
    assert parse_canvas_name("smithbob_340934_208490284_99_fixture.ipynb") == {
        "name": "smithbob",
        "late": None,
        "user": "340934",
        "submission": "208490284",
        "file": "99_fixture.ipynb",
    }
    late = parse_canvas_name("wellslane_LATE_334244_394803489_my_work-1.ipynb")
    assert late and late["late"] == "LATE" and late["user"] == "334244" and late["file"] == "my_work-1.ipynb"
    assert parse_canvas_name("README.md") is None
    assert parse_canvas_name("alice_notes.ipynb") is None  # no numeric ids: not Canvas's pattern


def test_nbgrader_folder_names() -> None:
    student, assignment, when = parse_nbgrader_folder("alice+lesson99+2026-12-07 10:00:00.000001 UTC")
    assert (student, assignment) == ("alice", "lesson99")
    assert when == pytest.approx(1796637600.000001)
    # Newer nbgrader appends a random string.
    assert parse_nbgrader_folder("bob+lesson99+2026-12-07 11:00:00 UTC+Xy3_9a")[:2] == ("bob", "lesson99")
    assert parse_nbgrader_folder("alice") is None


def test_detects_each_layout(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    _put(flat / "alice.ipynb", "perfect.ipynb")
    assert detect_layout(flat) == "flat"
    per = tmp_path / "per"
    _put(per / "alice" / "work.ipynb", "perfect.ipynb")
    assert detect_layout(per) == "per-student"
    nbg = tmp_path / "inbound"
    _put(nbg / "alice+l99+2026-12-07 10:00:00 UTC" / "99_fixture.ipynb", "perfect.ipynb")
    assert detect_layout(nbg) == "nbgrader"
    archive = tmp_path / "subs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(SUBMISSIONS / "perfect.ipynb", "smithbob_1_2_99_fixture.ipynb")
    assert detect_layout(archive) == "lms-zip"


def test_flat_folder_keeps_the_file_stem_as_student_id(tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    _put(folder / "alice.ipynb", "perfect.ipynb")
    _put(folder / "bob.ipynb", "partial.ipynb")
    (folder / "notes.txt").write_text("not a submission")
    intake = _intake(folder, tmp_path)
    assert intake.layout == "flat"
    assert [(s.student, s.name) for s in intake.submissions] == [("alice", "alice"), ("bob", "bob")]
    assert [p.name for p in intake.ignored] == ["notes.txt"]
    assert all(len(s.content_hash) == 64 for s in intake.submissions)


def test_per_student_newest_counts_and_the_rest_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "per"
    now = time.time()
    _put(folder / "alice" / "99_fixture.ipynb", "partial.ipynb", now - 3600)
    _put(folder / "alice" / "99_fixture (1).ipynb", "perfect.ipynb", now)  # resubmitted later
    _put(folder / "alice" / "notes.pdf", "random_bytes.ipynb", now)  # an extra file, not a notebook
    _put(folder / "alice" / ".ipynb_checkpoints" / "99_fixture-checkpoint.ipynb", "untouched.ipynb")
    _put(folder / "carol" / "homework.ipynb", "truncated.ipynb")  # her only file is broken
    intake = _intake(folder, tmp_path)
    assert intake.layout == "per-student"
    by_student = {s.student: s for s in intake.submissions}
    assert sorted(by_student) == ["alice", "carol"]
    assert by_student["alice"].origin == "alice/99_fixture (1).ipynb"
    assert any("2 files for lesson 99" in n for n in by_student["alice"].notes)
    assert not by_student["carol"].readable and "invalid JSON" in by_student["carol"].problem
    skipped = {k.origin: k.reason for k in intake.skipped}
    assert skipped["alice/99_fixture.ipynb"].startswith("duplicate: 2 files for lesson 99")
    assert "not graded" in skipped["alice/notes.pdf"] and "not text" in skipped["alice/notes.pdf"]
    assert not any("checkpoint" in origin for origin in skipped)  # hidden folders are not hand-ins


def test_same_time_duplicates_are_reported_as_ambiguous(tmp_path: Path) -> None:
    folder = tmp_path / "per"
    _put(folder / "dave" / "a.ipynb", "perfect.ipynb", 1_800_000_000)
    _put(folder / "dave" / "b.ipynb", "partial.ipynb", 1_800_000_000)
    intake = _intake(folder, tmp_path)
    assert [s.origin for s in intake.submissions] == ["dave/b.ipynb"]
    (skip,) = intake.skipped
    assert skip.origin == "dave/a.ipynb" and skip.reason.startswith("ambiguous")


def test_nbgrader_latest_submission_wins(tmp_path: Path) -> None:
    inbound = tmp_path / "inbound"
    _put(inbound / "alice+lesson99+2026-12-07 09:00:00.000000 UTC" / "99_fixture.ipynb", "partial.ipynb")
    _put(inbound / "alice+lesson99+2026-12-07 10:30:00.000000 UTC+k3Jd" / "99_fixture.ipynb", "perfect.ipynb")
    _put(inbound / "bob+lesson99+2026-12-07 08:00:00.000000 UTC" / "99_fixture.ipynb", "syntax_error.ipynb")
    (inbound / "bob+lesson99+2026-12-07 08:00:00.000000 UTC" / "timestamp.txt").write_text("2026-12-07 08:00:00")
    (inbound / "stray").mkdir()
    intake = _intake(inbound, tmp_path)
    assert intake.layout == "nbgrader"
    subs = {s.student: s for s in intake.submissions}
    assert sorted(subs) == ["alice", "bob"]
    assert "10:30" in subs["alice"].origin
    assert subs["alice"].content_hash != subs["bob"].content_hash
    (old,) = intake.skipped
    assert old.student == "alice" and "09:00" in old.origin and old.reason.startswith("superseded")
    assert {p.name for p in intake.ignored} == {"stray", "timestamp.txt"}


def test_canvas_zip_ids_late_work_and_resubmissions(tmp_path: Path) -> None:
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, fixture, when in [
            ("smithbob_340934_208490284_99_fixture.ipynb", "partial.ipynb", (2026, 12, 1, 9, 0, 0)),
            ("smithbob_340934_208490285_99_fixture-1.ipynb", "perfect.ipynb", (2026, 12, 2, 9, 0, 0)),
            ("wellslane_LATE_334244_394803489_99_fixture.ipynb", "perfect.ipynb", (2026, 12, 3, 9, 0, 0)),
            ("oddly named.ipynb", "untouched.ipynb", (2026, 12, 1, 9, 0, 0)),
            ("../../escape_1_2_99_fixture.ipynb", "perfect.ipynb", (2026, 12, 1, 9, 0, 0)),
        ]:
            info = zipfile.ZipInfo(name, date_time=when)
            zf.writestr(info, (SUBMISSIONS / fixture).read_bytes())
    intake = _intake(archive, tmp_path)
    assert intake.layout == "lms-zip"
    subs = {s.student: s for s in intake.submissions}
    assert sorted(subs) == ["1", "334244", "340934", "oddly named"]
    assert subs["340934"].student_name == "smithbob" and "208490285" in subs["340934"].origin
    assert subs["334244"].student_name == "wellslane"
    assert "not in Canvas's pattern" in subs["oddly named"].origin
    assert subs["oddly named"].name == safe_id("oddly named") == "oddly_named"
    for s in intake.submissions:  # every member is unpacked inside the unpack folder
        assert (tmp_path / "unpack") in s.path.parents
    (dup,) = intake.skipped
    assert dup.student == "340934" and "208490284" in dup.origin and dup.reason.startswith("duplicate")


def test_a_student_with_two_lessons_gets_two_named_submissions(tmp_path: Path) -> None:
    folder = tmp_path / "per"
    _put(folder / "erin" / "99_fixture.ipynb", "perfect.ipynb")
    _put(folder / "erin" / "42_other.ipynb", "unknown_lesson.ipynb")
    intake = _intake(folder, tmp_path)
    assert sorted(s.name for s in intake.submissions) == ["erin-42", "erin-99"]
    assert {s.student for s in intake.submissions} == {"erin"}
    assert intake.skipped == []
