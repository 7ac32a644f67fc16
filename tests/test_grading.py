"""The grader: tamper-proof restoring, robustness to broken submissions, and its outputs.

Fast tests exercise discovery, lesson identification, restoring and the output writers on the
fixture lesson 99 (``tests/fixtures/grading_lesson``). Tests marked ``notebooks`` grade the fixture
submissions (``tests/fixtures/submissions``, rebuilt by ``grading_lesson/build.py``) end to end,
and the course's own solutions / student notebooks when they exist.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import discover
from course_utils.grading.__main__ import main
from course_utils.grading.grade import SubmissionGrade, extend_checks_path
from course_utils.grading.gradebook import write_gradebook
from course_utils.grading.lessons import identify_lesson, load_structure
from course_utils.grading.report import feedback_markdown
from course_utils.grading.restore import CHECK_IMPORT, DEMO_TAG, EXPORT_TAG, SETUP_TAG, restore, stub_source

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
LESSON_DIR = FIXTURES / "grading_lesson"
FIXTURE_SOLUTIONS = LESSON_DIR / "solutions"
FIXTURE_CHECKS = LESSON_DIR / "checks"
SUBMISSIONS = FIXTURES / "submissions"
SOLUTION = FIXTURE_SOLUTIONS / "99_fixture.ipynb"
IDS = ["99.1", "99.2", "99.3"]


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


@pytest.fixture(scope="module")
def structure():
    return load_structure(99, SOLUTION)


def restored_from(structure, name: str, tmp_path: Path):
    return restore(
        structure,
        read(SUBMISSIONS / name),
        results_path=tmp_path / "r.json",
        exercises_path=tmp_path / "e.json",
        pid_path=tmp_path / "pid",
    )


def exercise_sources(restored) -> dict[str, str]:
    return {ex: restored.nb.cells[i].source for i, (kind, ex) in enumerate(restored.roles) if kind == "exercise"}


# --- discovery and lesson identification ------------------------------------------------------


def test_discover_reports_every_handed_in_file(tmp_path: Path) -> None:
    subs, ignored = discover(SUBMISSIONS, exclude=tmp_path)
    by_name = {s.name: s for s in subs}
    assert [p.name for p in ignored] == ["README.md"]
    assert "results" in by_name  # a .json sitting with the notebooks is shown, not silently skipped
    problems = {n: by_name[n].problem or "" for n in ("random_bytes", "truncated", "zero_bytes", "results")}
    assert "not text" in problems["random_bytes"]
    assert "invalid JSON" in problems["truncated"]
    assert "empty" in problems["zero_bytes"]
    assert "cells" in problems["results"]
    assert by_name["perfect"].nb is not None and by_name["perfect"].problem is None
    assert by_name["99_empty"].nb is not None and by_name["99_empty"].nb.cells == []


def test_identify_lesson_metadata_prefix_text_and_forced() -> None:
    sols = [FIXTURE_SOLUTIONS]
    student = read(SUBMISSIONS / "perfect.ipynb")
    assert identify_lesson(student, "alice.ipynb", sols) == (99, "notebook metadata")
    assert identify_lesson(None, "99_bob.ipynb", sols)[0] == 99
    bare = read(SUBMISSIONS / "perfect.ipynb")
    bare.metadata.pop("course")
    lesson, how = identify_lesson(bare, "carol.ipynb", sols)
    assert lesson == 99 and "lesson text" in how
    assert identify_lesson(nbformat.v4.new_notebook(), "dave.ipynb", sols)[0] is None
    assert identify_lesson(None, "dave.ipynb", sols, forced=3) == (3, "--lesson")


def test_structure_of_the_fixture_lesson(structure) -> None:
    assert structure.exercise_ids == IDS
    kinds = [c.kind for c in structure.cells]
    assert kinds.count("exercise") == 3 and kinds.count("check") == 3 and kinds.count("parameters") == 1


# --- restoring: only exercise cells come from the student --------------------------------------


def test_restore_keeps_official_cells_and_student_answers(structure, tmp_path: Path) -> None:
    restored = restored_from(structure, "tampered_checks.ipynb", tmp_path)
    official = read(SOLUTION)
    assert restored.nb.cells[0].metadata["tags"] == [SETUP_TAG]
    assert restored.nb.cells[-1].metadata["tags"] == [EXPORT_TAG]
    assert "export_results" in restored.nb.cells[-1].source
    body = restored.nb.cells[1:-1]
    assert len(body) == len(official.cells)
    for (kind, _), cell, off in zip(restored.roles[1:-1], body, official.cells):
        if kind == "check":
            assert cell.source == f"{CHECK_IMPORT}\n{off.source}"  # the fake verdict is gone
        elif kind != "exercise":
            assert cell.source == off.source
    assert "return 0" in exercise_sources(restored)["99.1"]
    assert any("differ from the official notebook" in n for n in restored.notes)


def test_restore_brings_back_deleted_checks(structure, tmp_path: Path) -> None:
    restored = restored_from(structure, "deleted_checks.ipynb", tmp_path)
    checks = [c.source for c, (kind, _) in zip(restored.nb.cells, restored.roles) if kind == "check"]
    assert [c.splitlines()[-1] for c in checks] == [
        'check("99.1", add)',
        'check("99.2", prompt_tokens)',
        'check("99.3", count_words)',
    ]
    assert not any("print('passed')" in c.source for c in restored.nb.cells)


def test_missing_exercise_cell_becomes_the_generated_stub(structure, tmp_path: Path) -> None:
    restored = restored_from(structure, "missing_cell.ipynb", tmp_path)
    assert restored.missing == ["99.2"]
    untouched = read(SUBMISSIONS / "untouched.ipynb")
    stub = next(c.source for c in untouched.cells if c.metadata.get("course", {}).get("exercise") == "99.2")
    assert exercise_sources(restored)["99.2"] == stub
    assert stub_source(read(SOLUTION).cells[7].source, "99.2") == stub


def test_matching_without_metadata_or_cell_ids(structure, tmp_path: Path) -> None:
    # Position between untouched official cells.
    restored = restored_from(structure, "99_no_metadata.ipynb", tmp_path)
    assert not restored.missing
    assert "return a + b" in exercise_sources(restored)["99.1"]
    assert "len(text.split())" in exercise_sources(restored)["99.3"]
    # The stub text names the exercise even when the cells were shuffled and re-created.
    nb = read(SUBMISSIONS / "untouched.ipynb")
    for cell in nb.cells:
        cell.metadata.pop("course", None)
        cell["id"] = "x" + cell["id"]
    nb.cells.reverse()
    restored = restore(
        structure, nb, results_path=tmp_path / "r", exercises_path=tmp_path / "e", pid_path=tmp_path / "p"
    )
    assert not restored.missing
    assert all(f"Exercise {ex}" in src for ex, src in exercise_sources(restored).items())


# --- outputs ----------------------------------------------------------------------------------


def _grade(name: str, lesson: int | None, points: dict[str, float], max_points: dict[str, float]) -> SubmissionGrade:
    exercises = [
        {
            "exercise": k,
            "title": "",
            "status": "passed" if v == max_points[k] else "failed",
            "points": v,
            "max_points": max_points[k],
            "cases": [],
            "feedback": f"verdict {k}",
            "reason": "",
        }
        for k, v in points.items()
    ]
    return SubmissionGrade(
        name=name,
        file=f"{name}.ipynb",
        status="graded",
        lesson=lesson,
        exercises=exercises,
        total=sum(points.values()),
        max_total=sum(max_points.values()),
    )


def test_gradebook_columns_max_row_and_blanks(tmp_path: Path) -> None:
    mx = {"1.1": 1.0, "1.2": 2.0}
    grades = [
        _grade("bob", 1, {"1.1": 1.0, "1.2": 0.5}, mx),
        _grade("amy", 1, {"1.1": 0.0, "1.2": 2.0}, mx),
        SubmissionGrade(name="junk", file="junk.ipynb", status="not a notebook"),
    ]
    header = write_gradebook(grades, tmp_path / "g.csv")
    rows = list(csv.reader(open(tmp_path / "g.csv", encoding="utf-8")))
    assert header == rows[0] == ["student", "lesson", "1.1", "1.2", "total"]
    assert rows[1] == ["bob", "01", "1", "0.5", "1.5"]
    assert rows[3] == ["junk", "", "", "", "0"]
    maxima = list(csv.reader(open(tmp_path / "max_points.csv", encoding="utf-8")))
    assert maxima == [["student", "lesson", "1.1", "1.2", "total"], ["max", "", "1", "2", "3"]]


def test_gradebook_refuses_two_rows_for_one_student_and_lesson(tmp_path: Path) -> None:
    mx = {"1.1": 1.0}
    twice = [_grade("bob", 1, {"1.1": 1.0}, mx), _grade("bob", 1, {"1.1": 0.0}, mx)]
    with pytest.raises(ValueError, match="bob"):
        write_gradebook(twice, tmp_path / "g.csv")
    # One student in two lessons is two rows.
    two_lessons = [_grade("bob", 1, {"1.1": 1.0}, mx), _grade("bob", 2, {"2.1": 1.0}, {"2.1": 1.0})]
    write_gradebook(two_lessons, tmp_path / "g.csv")
    rows = list(csv.reader(open(tmp_path / "g.csv", encoding="utf-8")))
    assert [r[:2] for r in rows[1:]] == [["bob", "01"], ["bob", "02"]]


def test_gradebook_prefixes_clashing_ids_across_lessons(tmp_path: Path) -> None:
    grades = [_grade("a", 1, {"1": 1.0}, {"1": 1.0}), _grade("b", 2, {"1": 0.0}, {"1": 1.0})]
    assert write_gradebook(grades, tmp_path / "g.csv") == ["student", "lesson", "01:1", "02:1", "total"]


def test_feedback_quotes_the_check_and_the_reason() -> None:
    g = _grade("bob", 1, {"1.1": 0.0}, {"1.1": 1.0})
    g.exercises[0]["reason"] = "Your exercise cell raised SyntaxError: invalid syntax (line 1)."
    g.problems.append("The exercise 1.1 cell crashed the kernel")
    text = feedback_markdown(g)
    assert "verdict 1.1" in text and "SyntaxError" in text and "crashed the kernel" in text and "0 / 1" in text


def test_cli_help_and_usage_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--out",
        "--timeout-per-cell",
        "--jobs",
        "--solutions",
        "--scheduler",
        "--workers",
        "--layout",
        "--regrade",
        "gradebook.csv",
        "canvas_import.csv",
        "moodle_import.csv",
        "ledger.sqlite",
    ):
        assert option in out
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "nowhere")])
    assert exc.value.code == 2
    not_a_zip = tmp_path / "grades.txt"
    not_a_zip.write_text("a file, but neither a folder nor a zip")
    for argv in (
        [str(not_a_zip)],
        [str(tmp_path), "--workers", "0"],
        [str(tmp_path), "--lms-column", "three=Lesson 3"],
        [str(tmp_path), "--layout", "moodle"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--solutions", str(tmp_path / "nowhere")])
    assert exc.value.code == 2


# --- end to end: the fixture submissions -------------------------------------------------------

# name -> (status per exercise, total, words the grader's reason must contain per exercise)
EXPECTED = {
    "perfect": (["passed", "passed", "passed"], 4, {}),
    "solution": (["passed", "passed", "passed"], 4, {}),
    "untouched": (["not_attempted"] * 3, 0, {}),
    "generated_student": (["not_attempted"] * 3, 0, {}),
    "partial": (["passed", "failed", "not_attempted"], 1, {}),
    "syntax_error": (["error", "passed", "passed"], 3, {"99.1": "SyntaxError"}),
    "infinite_loop": (["timeout", "passed", "passed"], 3, {"99.1": "time limit"}),
    "slow_function": (["passed", "passed", "timeout"], 3, {}),
    "kernel_crash": (["passed", "error", "passed"], 2, {"99.2": "crashed the kernel"}),
    "huge_output": (["passed", "passed", "passed"], 4, {}),
    "missing_cell": (["passed", "not_attempted", "passed"], 2, {"99.2": "No answer cell"}),
    "tampered_checks": (["failed", "not_attempted", "not_attempted"], 0, {}),
    "deleted_checks": (["passed", "passed", "passed"], 4, {}),
    "shadowed_check": (["not_attempted", "passed", "passed"], 3, {"99.1": "flagged"}),
    "patched_checks": (["not_attempted", "passed", "passed"], 3, {"99.1": "flagged"}),
    "99_no_metadata": (["passed", "passed", "passed"], 4, {}),
    "99_empty": (["not_attempted"] * 3, 0, {"99.1": "No answer cell"}),
}
NOT_NOTEBOOKS = {"random_bytes": "not text", "truncated": "invalid JSON", "zero_bytes": "empty", "results": "cells"}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Path, int, dict]:
    """Grade a copy of the fixture submissions (+ the solution and a freshly generated student
    notebook) once through the CLI; returns (output folder, exit code, results.json)."""
    from course_utils.authoring import LessonFile, student_notebook

    folder = tmp_path_factory.mktemp("submissions")
    for path in SUBMISSIONS.iterdir():
        shutil.copy(path, folder / path.name)
    shutil.copy(SOLUTION, folder / "solution.ipynb")
    generated = student_notebook(read(SOLUTION), LessonFile(99, "fixture", SOLUTION, SOLUTION))
    nbformat.write(generated, str(folder / "generated_student.ipynb"))
    out = folder / "graded"
    from course_utils import checks

    saved = list(checks.__path__)  # main() adds --checks-dir to this process's checks package too
    code = main(
        [
            str(folder),
            "--solutions",
            str(FIXTURE_SOLUTIONS),
            "--checks-dir",
            str(FIXTURE_CHECKS),
            "--timeout-per-cell",
            "6",
            "--timeout-per-notebook",
            "150",
            "--jobs",
            str(os.cpu_count() or 2),
            "--quiet",
        ]
    )
    checks.__path__[:] = saved
    return out, code, json.loads((out / "results.json").read_text())


def _by_name(results: dict) -> dict[str, dict]:
    return {s["name"]: s for s in results["submissions"]}


@pytest.mark.notebooks
def test_batch_exit_code_and_files(graded) -> None:
    out, code, results = graded
    assert code == 0
    for name in ("gradebook.csv", "report.md", "report.html", "results.json"):
        assert (out / name).stat().st_size > 0
    names = set(EXPECTED) | set(NOT_NOTEBOOKS) | {"unknown_lesson"}
    assert {p.stem for p in (out / "feedback").glob("*.md")} == names
    assert results["ignored"] == ["README.md"]


@pytest.mark.notebooks
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_submission_scores(graded, name: str) -> None:
    _, _, results = graded
    sub = _by_name(results)[name]
    statuses, total, reasons = EXPECTED[name]
    got = {e["exercise"]: e for e in sub["exercises"]}
    assert [got[i]["status"] for i in IDS] == statuses, json.dumps(sub, indent=1)[:3000]
    assert sub["total"] == total and sub["max_total"] == 4
    for ex, words in reasons.items():
        assert words in got[ex]["reason"], got[ex]
    for e in sub["exercises"]:
        if e["status"] != "passed":
            assert e["points"] == 0 or e["status"] == "failed"
            assert e["feedback"] or e["reason"]  # every zero comes with an explanation


@pytest.mark.notebooks
@pytest.mark.parametrize("name", ["untouched", "generated_student", "solution", "perfect"])
def test_clean_notebooks_execute_without_errors(graded, name: str) -> None:
    out, _, results = graded
    assert _by_name(results)[name]["problems"] == []
    executed = read(out / "executed" / f"{name}.ipynb")
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []


@pytest.mark.notebooks
def test_broken_files_score_zero_with_reason(graded) -> None:
    out, _, results = graded
    subs = _by_name(results)
    for name, words in NOT_NOTEBOOKS.items():
        assert subs[name]["status"] == "not a notebook" and subs[name]["total"] == 0
        assert words in subs[name]["problems"][0]
        assert words in (out / "feedback" / f"{name}.md").read_text()
    assert subs["unknown_lesson"]["status"] == "unknown lesson"
    assert "42" in subs["unknown_lesson"]["problems"][0]


@pytest.mark.notebooks
def test_gradebook_of_the_batch(graded) -> None:
    out, _, _ = graded
    rows = list(csv.reader(open(out / "gradebook.csv", encoding="utf-8")))
    assert rows[0] == ["student", "lesson", *IDS, "total"]
    assert list(csv.reader(open(out / "max_points.csv", encoding="utf-8")))[1] == ["max", "", "1", "2", "1", "4"]
    table = {r[0]: r[1:] for r in rows[1:]}
    assert table["syntax_error"] == ["99", "0", "2", "1", "3"]
    assert table["random_bytes"] == ["", "", "", "", "0"]


@pytest.mark.notebooks
def test_huge_output_is_truncated_and_tampering_noted(graded) -> None:
    out, _, results = graded
    assert (out / "executed" / "huge_output.ipynb").stat().st_size < 1_000_000
    assert "truncated" in (out / "executed" / "huge_output.ipynb").read_text()
    tampered = _by_name(results)["tampered_checks"]
    assert any("not graded" in n for n in tampered["notes"])
    feedback = (out / "feedback" / "tampered_checks.md").read_text()
    assert "expected: 5" in feedback  # the official check's own message, not the fake verdict


# --- the course's own notebooks ------------------------------------------------------------------

COURSE_SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_the_course_has_solutions_to_grade() -> None:
    """Without it, the parametrized test below would be an empty set, which pytest skips: never a failure."""
    assert len(COURSE_SOLUTIONS) >= 9, [p.name for p in COURSE_SOLUTIONS]


@pytest.fixture(scope="module")
def course_graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every course solution and its student version, graded in one batch through the command line.

    One grader run for all of them, as an instructor grades a class: the fixed cost of a run (a Dask
    cluster, a kernel zygote) is paid once, not once per lesson. Returns results.json's submissions
    by name (``NN_slug-solution``, ``NN_slug-student``)."""
    folder = tmp_path_factory.mktemp("course")
    for solution in COURSE_SOLUTIONS:
        shutil.copy(solution, folder / f"{solution.stem}-solution.ipynb")
        student = ROOT / "notebooks" / solution.name
        if student.exists():
            shutil.copy(student, folder / f"{solution.stem}-student.ipynb")
    assert main([str(folder), "--quiet", "--timeout-per-notebook", "600"]) == 0
    return _by_name(json.loads((folder / "graded" / "results.json").read_text()))


@pytest.mark.notebooks
@pytest.mark.parametrize(
    "solution",
    [pytest.param(p, id=p.name) for p in COURSE_SOLUTIONS],
)
def test_course_solution_full_marks_and_student_version_zero(course_graded: dict[str, dict], solution: Path) -> None:
    sol = course_graded[f"{solution.stem}-solution"]
    assert sol["exercises"], "the lesson lists no exercises"
    assert sol["total"] == sol["max_total"], json.dumps(sol, indent=1)[:3000]
    assert (ROOT / "notebooks" / solution.name).exists(), "no student version of this lesson"
    stu = course_graded[f"{solution.stem}-student"]
    assert stu["total"] == 0 and stu["problems"] == [], json.dumps(stu, indent=1)[:3000]
    assert {e["status"] for e in stu["exercises"]} == {"not_attempted"}


def test_extend_checks_path_makes_fixture_lesson_importable() -> None:
    from course_utils import checks

    saved = list(checks.__path__)
    try:
        extend_checks_path([FIXTURE_CHECKS])
        assert [e.id for e in checks.exercises(99)] == IDS
    finally:
        checks.__path__[:] = saved


# --- demo cells: skipped by the grader, never needed by what it runs ------------------------------


def test_restore_skips_demo_cells_but_never_graded_ones(tmp_path: Path) -> None:
    nb = read(SOLUTION)
    demo = nbformat.v4.new_code_cell('raise SystemExit("a demo cell ran")')
    demo.metadata["tags"] = [DEMO_TAG]
    nb.cells.insert(3, demo)
    for cell in nb.cells:  # mis-tagged exercise, check and parameters cells must still run
        if (
            "BEGIN SOLUTION 99.1" in cell.source
            or cell.source.startswith('check("99.1"')
            or "parameters" in cell.metadata.get("tags", [])
        ):
            cell.metadata["tags"] = [*cell.metadata.get("tags", []), DEMO_TAG]
    path = tmp_path / "99_fixture.ipynb"
    nbformat.write(nb, str(path))
    structure = load_structure(99, path)
    restored = restored_from(structure, "perfect.ipynb", tmp_path)
    sources = [c.source for c in restored.nb.cells]
    assert not any("a demo cell ran" in s for s in sources)
    assert len(restored.roles) == len(restored.nb.cells) == len(nb.cells) - 1 + 2  # minus the demo, plus plumbing
    assert [k for k, _ in restored.roles].count("exercise") == 3 and [k for k, _ in restored.roles].count("check") == 3
    assert "parameters" in [k for k, _ in restored.roles]
    kept = restore(
        structure,
        read(SUBMISSIONS / "perfect.ipynb"),
        results_path=tmp_path / "r",
        exercises_path=tmp_path / "e",
        pid_path=tmp_path / "p",
        skip_demo=False,
    )
    assert any("a demo cell ran" in c.source for c in kept.nb.cells)


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell binds anywhere, global names it reads); top-level await allowed, as in IPython."""
    import ast

    tree = compile(source, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    bound: set[str] = set()
    read_: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read_ if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound, read_


@pytest.mark.parametrize("solution", [pytest.param(p, id=p.name) for p in COURSE_SOLUTIONS])
def test_what_the_grader_runs_needs_no_demo_cell(solution: Path) -> None:
    """A name read by a cell the grader runs is never bound only by a demo cell (it would be undefined)."""
    cells = [c for c in read(solution).cells if c.cell_type == "code"]
    demo = [c for c in cells if DEMO_TAG in (c.metadata.get("tags") or [])]
    assert demo, "no demo cells tagged: the grader runs the whole lesson"
    bound_by_demo = set().union(*(_names(c.source)[0] for c in demo))
    run = [c for c in cells if c not in demo]
    bound_by_run = set().union(*(_names(c.source)[0] for c in run))
    for cell in run:
        missing = (_names(cell.source)[1] & bound_by_demo) - bound_by_run
        assert not missing, (
            f"{sorted(missing)} come only from demo cells, yet this cell needs them:\n{cell.source[:300]}"
        )


# --- warm kernels: forked from one zygote, still isolated ------------------------------------------

POLLUTE = """import os
import course_utils
course_utils.polluted_by = "aa"  # module state: in a shared interpreter the next kernel would see it
os.environ["COURSE_POLLUTED_BY"] = "aa"
print("kernel parent", os.getppid())


def add(a, b):
    return a + b
"""
DETECT = """import os
import course_utils
print("kernel parent", os.getppid())


def add(a, b):
    # Wrong (so 99.1 fails) only if another submission's state leaked into this kernel.
    leaked = getattr(course_utils, "polluted_by", None) or os.environ.get("COURSE_POLLUTED_BY")
    return a + b + (1000 if leaked else 0)
"""


@pytest.mark.notebooks
def test_warm_kernels_are_forked_yet_isolated(tmp_path: Path) -> None:
    """Two submissions graded one after the other in kernels forked from the same zygote: what the
    first does to modules and the environment does not exist in the second."""
    folder = tmp_path / "subs"
    folder.mkdir()
    for name, answer in (("aa_pollute", POLLUTE), ("bb_detect", DETECT)):
        nb = read(SOLUTION)
        cell = next(c for c in nb.cells if "BEGIN SOLUTION 99.1" in c.source)
        cell.source = answer
        nbformat.write(nb, str(folder / f"{name}.ipynb"))
    from course_utils import checks

    saved = list(checks.__path__)
    try:
        assert (
            main(
                [
                    str(folder),
                    "--solutions",
                    str(FIXTURE_SOLUTIONS),
                    "--checks-dir",
                    str(FIXTURE_CHECKS),
                    "--jobs",
                    "1",
                    "--quiet",
                ]
            )
            == 0
        )
    finally:
        checks.__path__[:] = saved
    out = folder / "graded"
    subs = _by_name(json.loads((out / "results.json").read_text()))
    assert subs["bb_detect"]["total"] == 4, json.dumps(subs["bb_detect"], indent=1)[:2000]
    assert subs["aa_pollute"]["total"] == 4
    parents = set()
    for name in ("aa_pollute", "bb_detect"):
        text = "".join(
            o.get("text", "")
            for c in read(out / "executed" / f"{name}.ipynb").cells
            if c.cell_type == "code"
            for o in c.outputs
        )
        parents.update(re.findall(r"kernel parent (\d+)", text))
    assert len(parents) == 1, f"the kernels were not forked from one zygote: parents {parents}"


def test_the_grader_waits_for_a_cells_late_outputs() -> None:
    """nbclient waits 4 s for a cell's outputs after its reply and papermill makes that an error: on a
    busy machine (CI run 24) two correct notebooks were graded "could not execute". The grader's client
    waits as long as a cell's outputs can take to arrive."""
    import nbformat
    from papermill.engines import NotebookExecutionManager

    from course_utils.grading.engine import IOPUB_TIMEOUT_S, GraderClient

    client = GraderClient(NotebookExecutionManager(nbformat.v4.new_notebook()))
    assert client.raise_on_iopub_timeout  # papermill's choice: a lost output is an error, not a warning
    assert client.iopub_timeout == IOPUB_TIMEOUT_S >= 60


def test_the_zygote_preloads_what_the_lessons_import() -> None:
    """``preload_for``: the kernel and the grader's setup always; pandas and matplotlib (with ipykernel's
    inline backend) only when a source imports them; everything when a source cannot be parsed."""
    from course_utils.grading.warm import BASE_PRELOAD, PRELOAD, preload_for

    plain = preload_for(["def add(a, b):\n    return a + b\n", "%matplotlib inline\n!ls\nimport os\n"])
    assert plain == [m for m in PRELOAD if m in BASE_PRELOAD]
    plots = preload_for(["import matplotlib.pyplot as plt\nfrom pandas import DataFrame\n"])
    assert {"pandas", "matplotlib", "matplotlib.pyplot", "matplotlib_inline.backend_inline"} <= set(plots)
    assert "numpy" not in plots and "anthropic" not in plots
    assert "course_utils.streaming" in preload_for(["from course_utils.streaming import SSEParser\n"])
    assert "anthropic" in preload_for(["import anthropic.types\n"])
    assert preload_for(["def broken(:\n"]) == list(PRELOAD)
    # Names the package imports on first use: the SDK behind course_utils.client, the simulator's server.
    for uses in ("import course_utils\nclient = course_utils.client()\n", "from course_utils import configure\n"):
        assert "course_utils.provider" in preload_for([uses]), uses
    assert "course_utils.mock_provider.server" in preload_for(["import course_utils\ncourse_utils.mock_server()\n"])
    assert "course_utils.provider" not in preload_for(["import course_utils\ncourse_utils.text_of(reply)\n"])


def test_a_warm_kernel_prints_what_a_cold_one_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    """pandas sizes its tables, and matplotlib picks its backend, when imported: imported in the bare
    zygote they printed tables cut to a terminal's width (the grader's feedback notebooks showed
    ``...`` columns) and figures without their text. A kernel forked from the zygote must print as a
    cold kernel does."""
    import nbformat
    from nbclient import NotebookClient

    from course_utils.grading.warm import WarmKernels

    probe = (
        "import matplotlib, pandas as pd\n"
        "print(matplotlib.get_backend(), pd.get_option('display.max_columns'))\n"
        "pd.DataFrame([range(30)], columns=[f'column_{i}' for i in range(30)])"
    )

    def outputs(kernel_name: str) -> list[dict]:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(probe)])
        NotebookClient(nb, kernel_name=kernel_name, timeout=120).execute()
        return [{k: v for k, v in o.items() if k != "execution_count"} for o in nb.cells[0].outputs]

    monkeypatch.delenv("MPLBACKEND", raising=False)  # a kernel's own choice, as in nbval and the browser
    cold = outputs("python3")
    with WarmKernels(dict(os.environ)) as warm:
        monkeypatch.setenv("JUPYTER_PATH", warm.jupyter_path)
        warm_outputs = outputs(warm.kernel_name)
    assert "matplotlib_inline" in cold[0]["text"] and " 20" in cold[0]["text"], cold[0]  # the kernel's own choices
    assert warm_outputs == cold
