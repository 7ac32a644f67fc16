"""The course's notebook format, in one place: lesson file names, solution markers, ``course`` metadata.

Authoring writes this format (:mod:`course_utils.authoring`) and grading reads it
(:mod:`course_utils.grading`); both import it from here so that they can never disagree.

**File names.** An official lesson notebook is ``NN_slug.ipynb`` (:data:`LESSON_FILENAME`). A
renamed submission is still recognised by a leading lesson number (:data:`LESSON_PREFIX`,
e.g. ``3-alice.ipynb``).

**Solution markers.** In a solution notebook's code cells::

    def sliding_window(turns, budget):
        \"\"\"Keep the newest turns that fit in ``budget`` tokens.\"\"\"
        ### BEGIN SOLUTION 1.2 hint="Walk the turns newest first and stop at the budget."
        ...
        ### END SOLUTION

becomes, in the student's notebook::

    def sliding_window(turns, budget):
        \"\"\"Keep the newest turns that fit in ``budget`` tokens.\"\"\"
        raise NotImplementedError("Exercise 1.2: Walk the turns newest first and stop at the budget.")

Markdown cells drop everything between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``.

**Metadata.** The notebook's ``metadata.course`` is ``{"lesson": 1, "slug": "context", "variant":
"solution" | "student"}``; an exercise cell's ``metadata.course`` holds ``{"exercise": "1.2"}``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, MutableMapping
from .errors import CourseError

__all__ = [
    # file names
    "LESSON_FILENAME",
    "LESSON_PREFIX",
    "LessonName",
    "parse_lesson_filename",
    "lesson_filename",
    "lesson_notebooks",
    # solution markers
    "EXERCISE_ID",
    "CODE_BEGIN",
    "CODE_END",
    "MD_BEGIN",
    "MD_END",
    "STUB",
    "MarkerError",
    "SolutionBlock",
    "parse_begin",
    "strip_code",
    "strip_markdown",
    "has_solution_block",
    "exercise_id_in_source",
    # metadata
    "COURSE_KEY",
    "VARIANTS",
    "KERNELSPEC",
    "LANGUAGE_INFO",
    "NOTEBOOK_METADATA_KEYS",
    "CELL_METADATA_KEYS",
    "read_lesson",
    "write_lesson",
    "read_exercise",
    "write_exercise",
]

# ---------------------------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------------------------
LESSON_FILENAME = re.compile(r"^(?P<lesson>\d{2})_(?P<slug>[a-z0-9][a-z0-9_\-]*)\.ipynb$")
"""An official lesson notebook (in ``solutions/`` and ``notebooks/``): two digits, ``_``, a lower-case slug."""

LESSON_PREFIX = re.compile(r"^(?P<lesson>\d{1,3})[_\-]")
"""What a renamed submission usually keeps of its lesson: a leading number, then ``_`` or ``-``."""


@dataclass(frozen=True)
class LessonName:
    """The parts of an official lesson notebook's file name."""

    lesson: int
    slug: str

    @property
    def filename(self) -> str:
        return lesson_filename(self.lesson, self.slug)


def parse_lesson_filename(name: str) -> LessonName | None:
    """``"01_context.ipynb"`` -> ``LessonName(1, "context")``; ``None`` for any other name."""
    m = LESSON_FILENAME.match(name)
    return LessonName(int(m["lesson"]), m["slug"]) if m else None


def lesson_filename(lesson: int, slug: str) -> str:
    """The official file name of a lesson; the inverse of :func:`parse_lesson_filename`.

    Raises ``ValueError`` for a lesson outside 0-99 or a slug the format does not allow.
    """
    name = f"{lesson:02d}_{slug}.ipynb"
    parsed = parse_lesson_filename(name)
    if parsed is None or parsed != LessonName(lesson, slug):
        raise ValueError(f"not a valid lesson notebook name: lesson {lesson!r}, slug {slug!r}")
    return name


def lesson_notebooks(directory: Path) -> Iterator[tuple[LessonName, Path]]:
    """The official lesson notebooks directly in ``directory``, sorted by file name; other files are ignored."""
    for path in sorted(Path(directory).glob("*.ipynb")):
        name = parse_lesson_filename(path.name)
        if name is not None:
            yield name, path


# ---------------------------------------------------------------------------------------------
# Solution markers
# ---------------------------------------------------------------------------------------------
_EXERCISE_ID = r"\d+\.\d+[a-z]?"
EXERCISE_ID = re.compile(rf"^{_EXERCISE_ID}$")
"""An exercise id: lesson, dot, number, optional letter (``1.2``, ``3.4b``)."""

CODE_BEGIN = re.compile(r"^(?P<indent>[ \t]*)###[ \t]*BEGIN SOLUTION\b(?P<args>.*)$")
CODE_END = re.compile(r"^[ \t]*###[ \t]*END SOLUTION\b[ \t]*$")
MD_BEGIN = re.compile(r"^[ \t]*<!--[ \t]*BEGIN SOLUTION[ \t]*-->[ \t]*$")
MD_END = re.compile(r"^[ \t]*<!--[ \t]*END SOLUTION[ \t]*-->[ \t]*$")
STUB = re.compile(rf"NotImplementedError\(\s*[rRuUfF]?[\"']{{1,3}}\s*Exercise\s+(?P<exercise>{_EXERCISE_ID})\b")
"""The stub :meth:`SolutionBlock.stub` writes, as found again in a student's cell (any quotes, edited hint)."""


class MarkerError(CourseError, ValueError):
    """A solution marker is malformed or unbalanced; the message names the notebook and cell."""


@dataclass(frozen=True)
class SolutionBlock:
    """What a ``### BEGIN SOLUTION`` line says: the exercise id and the hint for the stub."""

    exercise: str
    hint: str | None = None

    def stub(self, indent: str) -> str:
        """The line that replaces the solution block in the student's notebook."""
        message = f"Exercise {self.exercise}: {self.hint}" if self.hint else f"Exercise {self.exercise}"
        # json.dumps yields a valid Python string literal (double quotes, escapes) for any hint.
        return f"{indent}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})"


def parse_begin(args: str, where: str) -> SolutionBlock:
    """Parse the text after ``BEGIN SOLUTION``: an exercise id, then optional ``hint="..."``.

    Raises :class:`MarkerError` (naming ``where``) for anything else.
    """
    try:
        tokens = shlex.split(args)
    except ValueError as exc:
        raise MarkerError(f"{where}: cannot parse solution marker arguments {args.strip()!r} ({exc})") from None
    if not tokens or not EXERCISE_ID.match(tokens[0]):
        raise MarkerError(
            f"{where}: '### BEGIN SOLUTION' needs an exercise id such as 1.2, "
            f'e.g. ### BEGIN SOLUTION 1.2 hint="..."; got {args.strip()!r}'
        )
    hint = None
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if key != "hint" or not sep:
            raise MarkerError(f'{where}: unknown solution marker argument {token!r} (only hint="..." is allowed)')
        hint = value.strip() or None
    return SolutionBlock(tokens[0], hint)


def strip_code(source: str, where: str) -> tuple[str, list[SolutionBlock]]:
    """Replace every marked block of a code cell by its stub; return the new source and the blocks.

    Raises :class:`MarkerError` for nested, unclosed or stray markers, and for a block at the top
    level of a cell (its stub would raise during Run All instead of inside a function).
    """
    out: list[str] = []
    blocks: list[SolutionBlock] = []
    open_block: tuple[SolutionBlock, int] | None = None
    for lineno, line in enumerate(source.split("\n"), start=1):
        begin = CODE_BEGIN.match(line)
        if begin:
            if open_block is not None:
                raise MarkerError(
                    f"{where}, line {lineno}: BEGIN SOLUTION inside the block opened on line {open_block[1]}"
                )
            block = parse_begin(begin["args"], f"{where}, line {lineno}")
            indent = begin["indent"]
            if not indent:
                raise MarkerError(
                    f"{where}, line {lineno}: solution block for {block.exercise} is at the top level of the cell; "
                    "put it inside a function so the student's stub only raises when the function is called"
                )
            out.append(block.stub(indent))
            blocks.append(block)
            open_block = (block, lineno)
        elif CODE_END.match(line):
            if open_block is None:
                raise MarkerError(f"{where}, line {lineno}: END SOLUTION without a matching BEGIN SOLUTION")
            open_block = None
        elif open_block is None:
            out.append(line)
    if open_block is not None:
        raise MarkerError(f"{where}, line {open_block[1]}: BEGIN SOLUTION {open_block[0].exercise} is never closed")
    return "\n".join(out), blocks


def strip_markdown(source: str, where: str) -> str:
    """Remove solution-only passages from a markdown cell (the marker lines included)."""
    out: list[str] = []
    opened_at: int | None = None
    found = False
    for lineno, line in enumerate(source.split("\n"), start=1):
        if MD_BEGIN.match(line):
            found = True
            if opened_at is not None:
                raise MarkerError(
                    f"{where}, line {lineno}: <!-- BEGIN SOLUTION --> inside the passage opened on line {opened_at}"
                )
            opened_at = lineno
        elif MD_END.match(line):
            if opened_at is None:
                raise MarkerError(f"{where}, line {lineno}: <!-- END SOLUTION --> without a matching BEGIN")
            opened_at = None
        elif opened_at is None:
            out.append(line)
    if opened_at is not None:
        raise MarkerError(f"{where}, line {opened_at}: <!-- BEGIN SOLUTION --> is never closed")
    if not found:
        return source
    # Removing a passage can leave a run of blank lines; collapse it so the cell reads naturally.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


def has_solution_block(source: str) -> bool:
    """Does ``source`` open a code solution block (``### BEGIN SOLUTION``), well-formed or not?"""
    return any(CODE_BEGIN.match(line) for line in source.split("\n"))


def exercise_id_in_source(source: str) -> str | None:
    """The exercise id a cell names: its first well-formed ``BEGIN SOLUTION`` marker, else its stub.

    Never raises: grading reads student cells with it, and a malformed marker there just names nothing.
    """
    for line in source.split("\n"):
        begin = CODE_BEGIN.match(line)
        if begin:
            try:
                return parse_begin(begin["args"], "").exercise
            except MarkerError:
                continue
    stub = STUB.search(source)
    return stub["exercise"] if stub else None


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------
COURSE_KEY = "course"
"""The key of the course's own block, in notebook metadata and in cell metadata alike."""
VARIANTS = ("solution", "student")

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
LANGUAGE_INFO = {
    "name": "python",
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}
NOTEBOOK_METADATA_KEYS = ("kernelspec", "language_info", COURSE_KEY)
"""Notebook metadata a released notebook keeps; everything else is a front end's or tool's."""
CELL_METADATA_KEYS = ("tags", COURSE_KEY, "editable", "deletable", "slideshow", "jupyter", "collapsed")
"""Cell metadata a released notebook keeps: what changes how a cell behaves or reads."""


def _course(node: Mapping[str, Any]) -> Mapping[str, Any]:
    block = (node.get("metadata") or {}).get(COURSE_KEY)
    return block if isinstance(block, Mapping) else {}


def read_lesson(nb: Mapping[str, Any]) -> int | None:
    """The lesson number in a notebook's ``metadata.course``, or ``None`` if absent or not a number.

    Tolerant of what an edited submission may hold (``"3"``, ``3.0``); a bool is not a number here.
    """
    value = _course(nb).get("lesson")
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def write_lesson(nb: MutableMapping[str, Any], lesson: int, slug: str, variant: str) -> None:
    """Stamp ``metadata.course`` of a notebook in place (replacing what was there)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    nb["metadata"][COURSE_KEY] = {"lesson": int(lesson), "slug": slug, "variant": variant}


def read_exercise(cell: Mapping[str, Any]) -> str | None:
    """The exercise id in a cell's ``metadata.course``, or ``None`` if absent or blank."""
    value = _course(cell).get("exercise")
    if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    return None


def write_exercise(cell: MutableMapping[str, Any], exercise: str | None) -> None:
    """Set (or, with ``None``, remove) a cell's exercise id, keeping the rest of its ``course`` block.

    A ``course`` block left empty is removed, so unmarked cells carry no course metadata at all.
    """
    metadata = cell.setdefault("metadata", {})
    course = dict(_course(cell))
    course.pop("exercise", None)
    if exercise is not None:
        course["exercise"] = exercise
    if course:
        metadata[COURSE_KEY] = course
    else:
        metadata.pop(COURSE_KEY, None)
