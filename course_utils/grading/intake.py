"""Submissions from where instructors get them: which file is whose, and which one counts.

Four layouts, detected by :func:`detect_layout` (or forced with ``--layout``):

``flat``
    Notebooks directly in one folder (the grader's original layout); the student id is the
    file's stem (``alice.ipynb`` is alice's).
``per-student``
    One folder per student, named by the student id, holding that student's files.
``nbgrader``
    nbgrader's exchange inbound folder: one folder per submission named
    ``{student}+{assignment}+{timestamp}`` (newer nbgrader appends ``+{random}``), as written by
    nbgrader's ``ExchangeSubmit.init_dest``. A student who submitted an assignment several times
    has several folders; the latest timestamp wins and the older ones are reported as superseded.
``lms-zip``
    A learning-management system's bulk download. Canvas's "Download Submissions" zip names each
    file ``{lastfirst}_{user id}_{submission id}_{original file name}``, with ``LATE`` inserted
    after the name for late work (``smithbob_LATE_340934_208490284_BobsWork.zip``), and a ``-1``,
    ``-2`` … suffix on the original name for resubmitted files. Sources: the Canvas-unzipper
    README (github.com/mikewesthad/canvas-unzipper) and the UBC HCI data-analysis notes
    (github.com/HCI-Data-Analysis/HCI-data-analysis, scripts/convert_zip_file), which document
    the same pattern with and without ``LATE``. The student id is the Canvas user id, the key
    Canvas's gradebook import matches on (:mod:`.lms`).

Within a layout, a student may hand in more than one file for the same lesson (two notebooks in
their folder, a resubmission in the zip). Exactly one is graded, the newest (the nbgrader
timestamp, else the zip entry's or file's modification time), and every other one is reported in
:attr:`Intake.skipped` with the reason: nothing is dropped silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .discover import MAX_SUBMISSION_BYTES, Submission, is_submission, load_notebook, stem
from .lessons import identify_lesson

__all__ = [
    "LAYOUTS",
    "Found",
    "Skipped",
    "Intake",
    "detect_layout",
    "find_files",
    "read_intake",
    "parse_canvas_name",
    "parse_nbgrader_folder",
    "safe_id",
]

LAYOUTS = ("auto", "flat", "per-student", "nbgrader", "lms-zip")

# nbgrader: {student}+{assignment}+{timestamp}[+{random}] (student and assignment ids cannot hold "+").
NBGRADER_FOLDER = re.compile(r"^(?P<student>[^+]+)\+(?P<assignment>[^+]+)\+(?P<timestamp>[^+]+)(?:\+[^+]*)?$")
# Canvas: {lastfirst}_[LATE_]{user id}_{submission id}_{original name}
CANVAS_NAME = re.compile(r"^(?P<name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<user>\d+)_(?P<submission>\d+)_(?P<file>.+)$")


@dataclass
class Found:
    """One file a layout attributes to a student."""

    path: Path
    student: str
    origin: str  # where it came from, as the instructor would recognise it
    timestamp: float | None = None  # when it was handed in, where the layout says
    student_name: str = ""  # a display name, where the layout has one (Canvas)
    group: str = ""  # one hand-in (an nbgrader submission folder); newer groups supersede older


@dataclass
class Skipped:
    """A file that was found and deliberately not graded, with the reason."""

    student: str
    origin: str
    reason: str
    lesson: int | None = None


@dataclass
class Intake:
    """What a layout yielded: the submissions to grade, the files not graded and why, the rest."""

    layout: str
    submissions: list[Submission]
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)  # not submissions at all (README, folders)


def safe_id(text: str) -> str:
    """``text`` usable as a file name on every OS (student ids name the feedback files)."""
    cleaned = re.sub(r"[^A-Za-z0-9._@-]+", "_", text.strip()).strip("._")
    return cleaned or "unnamed"


def parse_canvas_name(name: str) -> dict[str, str] | None:
    """The parts of a Canvas bulk-download file name, or ``None`` if it does not follow the pattern."""
    m = CANVAS_NAME.match(Path(name).name)
    return m.groupdict() if m else None


def _parse_time(text: str) -> float | None:
    """nbgrader's timestamps (``2026-12-07 12:34:56.789012 UTC``, its default format) as epoch seconds."""
    text = text.strip()
    cleaned = re.sub(r"\s+[A-Za-z]{2,5}$", "", text)  # the zone name; nbgrader's default zone is UTC
    for candidate in (cleaned, cleaned.replace(" ", "T")):
        try:
            stamp = dt.datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.timezone.utc)
        return stamp.timestamp()
    return None


def parse_nbgrader_folder(name: str) -> tuple[str, str, float | None] | None:
    """``(student, assignment, timestamp)`` of an nbgrader inbound folder name, else ``None``."""
    m = NBGRADER_FOLDER.match(name)
    if not m:
        return None
    return m["student"], m["assignment"], _parse_time(m["timestamp"])


def detect_layout(source: Path, exclude: Path | None = None) -> str:
    """The layout of ``source``: a zip is ``lms-zip``; folders named ``a+b+c`` make ``nbgrader``; a
    folder holding only sub-folders is ``per-student``; anything else is ``flat``."""
    if source.is_file():
        return "lms-zip"
    children = [p for p in source.iterdir() if not p.name.startswith(".") and not _same(p, exclude)]
    dirs = [p for p in children if p.is_dir()]
    if any(parse_nbgrader_folder(d.name) for d in dirs):
        return "nbgrader"
    if dirs and not any(p.is_file() and is_submission(p) for p in children):
        return "per-student"
    return "flat"


def _same(path: Path, other: Path | None) -> bool:
    return other is not None and path.resolve() == other.resolve()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _files_under(folder: Path) -> Iterable[Path]:
    """Files below ``folder``, hidden files and folders (``.ipynb_checkpoints``) excluded, sorted."""
    for path in sorted(folder.rglob("*"), key=lambda p: str(p).lower()):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        yield path


def find_files(
    source: Path, layout: str, unpack_dir: Path, exclude: Path | None = None
) -> tuple[list[Found], list[Path]]:
    """Every file ``layout`` attributes to a student, and the paths it ignored.

    ``unpack_dir`` receives a zip's members (each under its own folder, keeping the original
    file name so a ``NN_`` prefix still names the lesson).
    """
    found: list[Found] = []
    ignored: list[Path] = []
    if layout == "lms-zip":
        return _from_zip(source, unpack_dir), ignored
    children = sorted(
        (p for p in source.iterdir() if not p.name.startswith(".") and not _same(p, exclude)),
        key=lambda p: p.name.lower(),
    )
    for child in children:
        if layout == "flat":
            if child.is_file() and is_submission(child):
                found.append(Found(child, stem(child), child.name, _mtime(child)))
            else:
                ignored.append(child)
        elif layout == "per-student":
            if not child.is_dir():
                ignored.append(child)
                continue
            for path in _files_under(child):
                rel = path.relative_to(source)
                if is_submission(path):
                    found.append(Found(path, child.name, str(rel), _mtime(path)))
                else:
                    ignored.append(path)
        elif layout == "nbgrader":
            parsed = parse_nbgrader_folder(child.name) if child.is_dir() else None
            if parsed is None:
                ignored.append(child)
                continue
            student, assignment, when = parsed
            if when is None:  # an unparseable stamp: nbgrader also writes it to timestamp.txt
                stamp = child / "timestamp.txt"
                when = _parse_time(stamp.read_text(errors="replace")) if stamp.is_file() else None
            for path in _files_under(child):
                if path.name == "timestamp.txt" or not is_submission(path):
                    ignored.append(path)
                    continue
                rel = path.relative_to(source)
                found.append(
                    Found(path, student, str(rel), when if when is not None else _mtime(path), group=child.name)
                )
        else:
            raise ValueError(f"unknown layout {layout!r}; one of {', '.join(LAYOUTS)}")
    return found, ignored


def _from_zip(archive: Path, unpack_dir: Path) -> list[Found]:
    found: list[Found] = []
    with zipfile.ZipFile(archive) as zf:
        for n, info in enumerate(zf.infolist()):
            name = info.filename
            base = Path(name).name
            if info.is_dir() or not base or base.startswith(".") or "__MACOSX" in name:
                continue
            parts = parse_canvas_name(base)
            if parts:
                student, original, display = parts["user"], parts["file"], parts["name"]
            else:
                student, original, display = stem(Path(base)), base, ""
            # Each member gets its own folder: the original name is kept, and never escapes unpack_dir.
            target = unpack_dir / f"{n:05d}" / safe_id(original)
            target.parent.mkdir(parents=True, exist_ok=True)
            if info.file_size > MAX_SUBMISSION_BYTES:
                target.write_bytes(b"")  # too big to unpack: graded as such, with the reason below
                origin = f"{name} (not unpacked: {info.file_size / 1e6:.0f} MB)"
            else:
                with zf.open(info) as src:
                    target.write_bytes(src.read(MAX_SUBMISSION_BYTES + 1))
                origin = name if parts else f"{name} (file name not in Canvas's pattern; student id from the name)"
            when = dt.datetime(*info.date_time).timestamp()
            found.append(Found(target, student, origin, when, display))
    return found


def _latest_groups(found: list[Found]) -> tuple[list[Found], list[Skipped]]:
    """nbgrader: of each student's submissions of one assignment, only the latest folder counts."""
    newest: dict[tuple[str, str], tuple[float, str]] = {}
    for f in found:
        if not f.group:
            continue
        assignment = NBGRADER_FOLDER.match(f.group)["assignment"]  # type: ignore[index]
        key = (f.student, assignment)
        mark = (f.timestamp or 0.0, f.group)
        if key not in newest or mark > newest[key]:
            newest[key] = mark
    kept, skipped = [], []
    for f in found:
        if f.group:
            assignment = NBGRADER_FOLDER.match(f.group)["assignment"]  # type: ignore[index]
            winner = newest[(f.student, assignment)][1]
            if f.group != winner:
                skipped.append(
                    Skipped(
                        f.student, f.origin, f"superseded: {f.student} submitted {assignment} again later ({winner})"
                    )
                )
                continue
        kept.append(f)
    return kept, skipped


def read_intake(
    source: Path,
    solutions: list[Path],
    unpack_dir: Path,
    *,
    layout: str = "auto",
    forced_lesson: int | None = None,
    exclude: Path | None = None,
) -> Intake:
    """The submissions in ``source`` (a folder or a zip), one per student and lesson, with their
    ``content_hash``; every file not graded is in :attr:`Intake.skipped` with the reason."""
    if layout == "auto":
        layout = detect_layout(source, exclude)
    if layout == "lms-zip" and not zipfile.is_zipfile(source):
        raise ValueError(f"{source} is not a zip archive")
    found, ignored = find_files(source, layout, unpack_dir, exclude)
    found, skipped = _latest_groups(found)
    entries: list[tuple[Found, Submission, int | None]] = []
    for f in found:
        nb, problem = load_notebook(f.path)
        lesson, how = identify_lesson(nb, f.path.name, solutions, forced_lesson)
        sub = Submission(
            path=f.path,
            name=safe_id(f.student),
            nb=None,  # parsed again where it is graded; thousands of parsed notebooks would crowd memory
            problem=problem,
            student=f.student,
            student_name=f.student_name,
            origin=f.origin,
            timestamp=f.timestamp,
            content_hash=_sha256(f.path),
            readable=nb is not None,
        )
        entries.append((f, sub, lesson))
    chosen: list[tuple[Submission, int | None]] = []
    by_student: dict[str, list[tuple[Submission, int | None]]] = {}
    for _, sub, lesson in entries:
        by_student.setdefault(sub.student, []).append((sub, lesson))
    for student, subs in by_student.items():
        known = [(s, lesson) for s, lesson in subs if lesson is not None]
        if known:
            # Files whose lesson is unknown only matter for a student with nothing else to grade.
            lessons = ", ".join(sorted({f"{lesson:02d}" for _, lesson in known}))
            for s, lesson in subs:
                if lesson is None:
                    why = s.problem or "could not tell which lesson it is"
                    skipped.append(
                        Skipped(student, s.origin, f"not graded ({why}); {student}'s lesson {lessons} notebook was")
                    )
            subs = known
        groups: dict[int | None, list[Submission]] = {}
        for s, lesson in subs:
            groups.setdefault(lesson, []).append(s)
        for lesson, group in groups.items():
            group.sort(key=lambda s: (s.timestamp or 0.0, s.origin))
            winner = group[-1]
            if len(group) > 1:
                tie = group[-2].timestamp == winner.timestamp
                what = f"lesson {lesson:02d}" if lesson is not None else "an unknown lesson"
                rule = "same time, so the last by name" if tie else "the newest"
                for s in group[:-1]:
                    skipped.append(
                        Skipped(
                            student,
                            s.origin,
                            f"{'ambiguous' if tie else 'duplicate'}: {len(group)} files for {what}; "
                            f"graded {rule}, {winner.origin}",
                            lesson,
                        )
                    )
                winner.notes.append(
                    f"You handed in {len(group)} files for {what}; {rule} was graded ({winner.origin}); "
                    f"not graded: {', '.join(s.origin for s in group[:-1])}."
                )
            chosen.append((winner, lesson))
    counts: dict[str, int] = {}
    for s, _ in chosen:
        counts[s.student] = counts.get(s.student, 0) + 1
    taken: set[str] = set()
    for s, lesson in chosen:
        if counts[s.student] > 1:
            s.name = safe_id(f"{s.student}-{lesson:02d}" if lesson is not None else f"{s.student}-unknown")
        base, n = s.name, 2
        while s.name.lower() in taken:  # two ids that differ only in unsafe characters
            s.name, n = f"{base}-{n}", n + 1
        taken.add(s.name.lower())
    submissions = sorted((s for s, _ in chosen), key=lambda s: s.name.lower())
    skipped.sort(key=lambda k: (k.student.lower(), k.origin))
    return Intake(layout, submissions, skipped, ignored)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
