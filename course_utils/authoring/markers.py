"""Solution markers: turn a solution cell's source into the student's version.

Code cells::

    def sliding_window(turns, budget):
        \"\"\"Keep the newest turns that fit in ``budget`` tokens.\"\"\"
        ### BEGIN SOLUTION 1.2 hint="Walk the turns newest first and stop at the budget."
        ...
        ### END SOLUTION

become::

    def sliding_window(turns, budget):
        \"\"\"Keep the newest turns that fit in ``budget`` tokens.\"\"\"
        raise NotImplementedError("Exercise 1.2: Walk the turns newest first and stop at the budget.")

Markdown cells drop everything between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

__all__ = [
    "MarkerError",
    "SolutionBlock",
    "parse_begin",
    "strip_code",
    "strip_markdown",
    "has_markers",
    "CODE_BEGIN",
    "CODE_END",
    "MD_BEGIN",
    "MD_END",
]

CODE_BEGIN = re.compile(r"^(?P<indent>[ \t]*)###[ \t]*BEGIN SOLUTION\b(?P<args>.*)$")
CODE_END = re.compile(r"^[ \t]*###[ \t]*END SOLUTION\b[ \t]*$")
MD_BEGIN = re.compile(r"^[ \t]*<!--[ \t]*BEGIN SOLUTION[ \t]*-->[ \t]*$")
MD_END = re.compile(r"^[ \t]*<!--[ \t]*END SOLUTION[ \t]*-->[ \t]*$")
EXERCISE_ID = re.compile(r"^\d+\.\d+[a-z]?$")


class MarkerError(ValueError):
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
    """Parse the text after ``BEGIN SOLUTION``: an exercise id, then optional ``hint="..."``."""
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
            raise MarkerError(f"{where}: unknown solution marker argument {token!r} (only hint=\"...\" is allowed)")
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
                raise MarkerError(f"{where}, line {lineno}: BEGIN SOLUTION inside the block opened on line {open_block[1]}")
            block = parse_begin(begin.group("args"), f"{where}, line {lineno}")
            indent = begin.group("indent")
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
                raise MarkerError(f"{where}, line {lineno}: <!-- BEGIN SOLUTION --> inside the passage opened on line {opened_at}")
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


def has_markers(source: str) -> bool:
    """Does ``source`` contain any solution marker (code or markdown)?"""
    return any(p.match(line) for line in source.split("\n") for p in (CODE_BEGIN, CODE_END, MD_BEGIN, MD_END))
