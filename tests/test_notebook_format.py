"""The notebook format shared by authoring and grading: file names, solution markers, metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_notebook

from course_utils.notebook_format import (
    LESSON_PREFIX,
    LessonName,
    MarkerError,
    SolutionBlock,
    exercise_id_in_source,
    has_solution_block,
    lesson_filename,
    lesson_notebooks,
    parse_lesson_filename,
    read_exercise,
    read_lesson,
    strip_code,
    strip_markdown,
    write_exercise,
    write_lesson,
)

slugs = st.from_regex(r"[a-z0-9][a-z0-9_\-]{0,20}", fullmatch=True)
exercise_ids = st.from_regex(r"[0-9]{1,2}\.[0-9]{1,2}[a-z]?", fullmatch=True)
# Hints as authors write them: printable text, no line breaks (a marker is one line).
hints = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=40).filter(
    lambda h: h.strip() == h
)


# ----- file names -------------------------------------------------------------------------------
@given(st.integers(0, 99), slugs)
def test_lesson_filename_round_trips(lesson, slug):
    assert parse_lesson_filename(lesson_filename(lesson, slug)) == LessonName(lesson, slug)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("00_orientation.ipynb", LessonName(0, "orientation")),
        ("01_context_management.ipynb", LessonName(1, "context_management")),
        ("99_a-b.ipynb", LessonName(99, "a-b")),
    ],
)
def test_official_names(name, expected):
    assert parse_lesson_filename(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "1_context.ipynb",
        "001_context.ipynb",
        "01-context.ipynb",
        "01_Context.ipynb",
        "01_.ipynb",
        "01_context.ipynb.bak",
        "01_context.py",
        "context.ipynb",
        "01_ctx space.ipynb",
        "01__ctx.ipynb",
    ],
)
def test_other_names_are_not_lessons(name):
    assert parse_lesson_filename(name) is None


@pytest.mark.parametrize("lesson, slug", [(100, "x"), (-1, "x"), (1, "Bad"), (1, ""), (1, "_x")])
def test_lesson_filename_refuses_what_it_could_not_parse_back(lesson, slug):
    with pytest.raises(ValueError):
        lesson_filename(lesson, slug)


@pytest.mark.parametrize(
    "name, lesson",
    [
        ("03_alice.ipynb", "03"),
        ("3-alice.ipynb", "3"),
        ("123_x", "123"),
        ("alice.ipynb", None),
        ("1234_x.ipynb", None),
        ("03alice.ipynb", None),
    ],
)
def test_submission_prefix_survives_renaming(name, lesson):
    m = LESSON_PREFIX.match(name)
    assert (m["lesson"] if m else None) == lesson


def test_lesson_notebooks_lists_official_names_in_order(tmp_path: Path):
    for name in ("02_b.ipynb", "00_a.ipynb", "notes.ipynb", "1_c.ipynb", "03_d.txt"):
        (tmp_path / name).write_text("{}")
    assert [(n.lesson, p.name) for n, p in lesson_notebooks(tmp_path)] == [(0, "00_a.ipynb"), (2, "02_b.ipynb")]


# ----- solution markers --------------------------------------------------------------------------
@given(exercise_ids, st.one_of(st.none(), hints), st.sampled_from(["    ", "\t", "        "]))
def test_stub_names_its_exercise_and_is_read_back(exercise, hint, indent):
    arg = "" if hint is None else " hint=" + _shell_quote(hint)
    source = f"def f():\n{indent}### BEGIN SOLUTION {exercise}{arg}\n{indent}return 42\n{indent}### END SOLUTION\n"
    stub, blocks = strip_code(source, "w")
    assert blocks == [SolutionBlock(exercise, hint)]
    assert exercise_id_in_source(source) == exercise  # from the marker
    assert exercise_id_in_source(stub) == exercise  # from the stub the student gets
    namespace: dict = {}
    exec(compile(stub, "<stub>", "exec"), namespace)
    with pytest.raises(NotImplementedError) as info:
        namespace["f"]()
    assert str(info.value) == (f"Exercise {exercise}: {hint}" if hint else f"Exercise {exercise}")
    assert not has_solution_block(stub) and "SOLUTION" not in stub


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


@given(st.lists(st.text(st.characters(blacklist_characters="#<"), max_size=30), max_size=6))
def test_cells_without_markers_are_unchanged(lines):
    source = "\n".join(lines)
    assert strip_code(source, "w") == (source, [])
    assert strip_markdown(source, "w") == source
    assert exercise_id_in_source(source) is None


@pytest.mark.parametrize(
    "source, exercise",
    [
        ('    raise NotImplementedError("Exercise 1.2: Walk the turns.")', "1.2"),
        ("    raise NotImplementedError('Exercise 3.4b')", "3.4b"),
        ('    raise NotImplementedError("""Exercise 12.10 - later""")', "12.10"),
        ("    raise NotImplementedError('Exercise one')", None),
        ("    raise NotImplementedError", None),
        ("    ### BEGIN SOLUTION\n    ### END SOLUTION", None),  # malformed marker: names nothing, never raises
        ("    ### BEGIN SOLUTION tip=1\n    ### BEGIN SOLUTION 2.1\n", "2.1"),  # first well-formed marker
        ("    ## BEGIN SOLUTION 2.1", None),  # not the marker syntax
    ],
)
def test_exercise_id_in_source(source, exercise):
    assert exercise_id_in_source(source) == exercise


def test_marker_with_trailing_spaces_and_tabs():
    source = "def f():\n\t###\tBEGIN SOLUTION 1.1  \n\treturn 1\n\t### END SOLUTION \t\n"
    assert strip_code(source, "w") == (
        'def f():\n\traise NotImplementedError("Exercise 1.1")\n',
        [SolutionBlock("1.1")],
    )


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("def f():\n    ### BEGIN SOLUTION 1.1 hint='unclosed\n    ### END SOLUTION", "cannot parse"),
        ("def f():\n    ### BEGIN SOLUTION Exercise 1.1\n    ### END SOLUTION", "needs an exercise id"),
        ("def f():\n    ### BEGIN SOLUTION 1.1 hint\n    ### END SOLUTION", "unknown solution marker argument"),
    ],
)
def test_malformed_begin_lines_raise(source, fragment):
    with pytest.raises(MarkerError, match=fragment):
        strip_code(source, "w")


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("<!-- END SOLUTION -->", "without a matching BEGIN"),
        ("<!-- BEGIN SOLUTION -->\n<!-- BEGIN SOLUTION -->\n<!-- END SOLUTION -->", "inside the passage"),
    ],
)
def test_markdown_markers_must_balance(source, fragment):
    with pytest.raises(MarkerError, match=fragment):
        strip_markdown(source, "w")


@given(
    st.lists(st.text(st.characters(blacklist_characters="<\n"), max_size=20), min_size=1, max_size=4),
    st.text(st.characters(blacklist_characters="<\n"), max_size=20),
)
def test_markdown_passages_are_removed_and_text_kept(kept, secret):
    source = "\n".join([kept[0], "<!-- BEGIN SOLUTION -->", secret, "<!--END SOLUTION-->", *kept[1:]])
    out = strip_markdown(source, "w")
    assert "BEGIN SOLUTION" not in out and "\n\n\n" not in out
    assert [line for line in out.split("\n") if line.strip()] == [line for line in kept if line.strip()]


# ----- metadata ---------------------------------------------------------------------------------
@settings(deadline=None)  # builds notebooks; a loaded machine can take over 200 ms, which is no bug
@given(st.integers(0, 99), slugs, st.sampled_from(["solution", "student"]))
def test_lesson_metadata_round_trips(lesson, slug, variant):
    nb = new_notebook()
    write_lesson(nb, lesson, slug, variant)
    assert read_lesson(nb) == lesson
    assert nb.metadata["course"] == {"lesson": lesson, "slug": slug, "variant": variant}


def test_write_lesson_refuses_an_unknown_variant():
    with pytest.raises(ValueError):
        write_lesson(new_notebook(), 1, "x", "draft")


@pytest.mark.parametrize(
    "course, lesson",
    [
        ({"lesson": 3}, 3),
        ({"lesson": "3"}, 3),
        ({"lesson": 3.0}, 3),
        ({"lesson": True}, None),
        ({"lesson": "three"}, None),
        ({"lesson": None}, None),
        ({}, None),
        ("not a dict", None),
    ],
)
def test_read_lesson_tolerates_edited_metadata(course, lesson):
    nb = new_notebook()
    nb.metadata["course"] = course
    assert read_lesson(nb) == lesson
    assert read_lesson({"cells": []}) is None


@given(exercise_ids)
def test_exercise_metadata_round_trips_and_keeps_other_course_keys(exercise):
    cell = new_code_cell("x = 1")
    cell.metadata["course"] = {"note": "keep me", "exercise": "0.0"}
    write_exercise(cell, exercise)
    assert read_exercise(cell) == exercise
    assert cell.metadata["course"] == {"note": "keep me", "exercise": exercise}
    write_exercise(cell, None)
    assert read_exercise(cell) is None and cell.metadata["course"] == {"note": "keep me"}


def test_unmarked_cells_carry_no_course_block():
    cell = new_code_cell("x = 1")
    write_exercise(cell, "1.1")
    write_exercise(cell, None)
    assert "course" not in cell.metadata


@pytest.mark.parametrize(
    "course, exercise",
    [
        ({"exercise": " 1.2 "}, "1.2"),
        ({"exercise": 1.2}, "1.2"),
        ({"exercise": ""}, None),
        ({"exercise": False}, None),
        ({"exercise": ["1.2"]}, None),
        ({"exercise_id": "1.2"}, None),
    ],
)
def test_read_exercise_tolerates_edited_metadata(course, exercise):
    cell = new_code_cell("")
    cell.metadata["course"] = course
    assert read_exercise(cell) == exercise
