"""Find the submissions in a folder and load the ones that are notebooks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from ..notebook_format import LESSON_PREFIX

__all__ = ["Submission", "discover", "load_notebook", "is_submission", "stem", "MAX_SUBMISSION_BYTES"]

MAX_SUBMISSION_BYTES = 100 * 1024 * 1024
# Besides *.ipynb: files a student plausibly handed in by mistake (exported, zipped, renamed).
_SUBMISSION_SUFFIXES = {".ipynb", ".json", ".py", ".zip", ".html", ".pdf"}


@dataclass
class Submission:
    """One file handed in: its name in the gradebook, and the notebook or why it is not one."""

    path: Path
    name: str  # unique in the batch: names the feedback and executed files
    nb: NotebookNode | None
    problem: str | None = None
    student: str = ""  # the student id the layout gives (:mod:`.intake`); the name when empty
    student_name: str = ""
    origin: str = ""  # the file as the instructor knows it (its path in the folder or zip)
    timestamp: float | None = None
    content_hash: str = ""  # sha256 of the file's bytes: what a rerun is keyed by
    readable: bool = True  # a notebook (False: ``problem`` says why not)
    notes: list[str] = field(default_factory=list)  # about the hand-in (duplicates), for the feedback

    def __post_init__(self) -> None:
        self.student = self.student or self.name
        self.origin = self.origin or self.path.name


def is_submission(path: Path) -> bool:
    """Whether ``path`` looks handed in (a notebook, or a file a student plausibly sent instead)."""
    name = path.name.lower()
    return ".ipynb" in name or path.suffix.lower() in _SUBMISSION_SUFFIXES or bool(LESSON_PREFIX.match(name))


def stem(path: Path) -> str:
    """The submission's name from its file name (``alice.ipynb.txt`` is alice's)."""
    # "alice.ipynb.txt" and "alice.ipynb" are both alice's notebook.
    name = path.name
    cut = name.lower().find(".ipynb")
    return name[:cut] if cut > 0 else path.stem


def load_notebook(path: Path) -> tuple[NotebookNode | None, str | None]:
    """The notebook in ``path``, or ``None`` and a reason a student can act on."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return None, f"could not read the file: {exc}"
    if size == 0:
        return None, "not a notebook: the file is empty (0 bytes)"
    if size > MAX_SUBMISSION_BYTES:
        return (
            None,
            f"not graded: the file is {size / 1e6:.0f} MB (limit {MAX_SUBMISSION_BYTES / 1e6:.0f} MB); clear outputs and resubmit",
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "not a notebook: the file is not text (binary data); submit the .ipynb file itself"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f"not a notebook: invalid JSON ({exc})"
    if not isinstance(data, dict) or not isinstance(data.get("cells", data.get("worksheets")), list):
        return None, "not a notebook: JSON without a list of cells"
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several types for malformed notebooks
        return None, f"not a notebook: unreadable notebook format ({type(exc).__name__}: {str(exc)[:200]})"
    return nb, None


def discover(folder: Path, exclude: Path | None = None) -> tuple[list[Submission], list[Path]]:
    """Submissions directly in ``folder`` (not recursive) and the files ignored there.

    Every ``*.ipynb`` is a submission, and so is any file that looks handed in (``.ipynb`` anywhere
    in its name, a ``NN_`` lesson prefix, or .json/.py/.zip/.html/.pdf) so that it shows in the
    gradebook with a reason instead of vanishing. Hidden files and ``exclude`` are skipped.
    """
    subs: list[Submission] = []
    ignored: list[Path] = []
    taken: set[str] = set()
    excluded = exclude.resolve() if exclude else None
    for path in sorted(Path(folder).iterdir(), key=lambda p: p.name.lower()):
        if path.name.startswith(".") or (excluded and path.resolve() == excluded):
            continue
        if not path.is_file() or not is_submission(path):
            ignored.append(path)
            continue
        name = base = stem(path)
        n = 2
        while name.lower() in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name.lower())
        nb, problem = load_notebook(path)
        subs.append(Submission(path, name, nb, problem))
    return subs, ignored
