"""A student's working copy of the lessons: ``my-work/``, git-ignored, filled from ``notebooks/``.

JupyterLab saves what a student runs and types. Were it to serve the tracked ``notebooks/``, every
Run All would show up in ``git status`` and the next ``git pull`` of a course fix would conflict
with the student's answers. So ``make lab`` serves a working copy instead:

- ``init`` (run by ``make lab``) copies each official notebook that the workspace lacks and never
  touches one that is there;
- ``update`` (``make update``, after a ``git pull``) also brings in official notebooks that changed.
  A notebook whose cells the student has not edited (running it only changes outputs) is replaced by
  the new version; an edited one is left exactly as it is, and the command says that a newer
  official version exists and how to take it.

What counts as "edited" is recorded in ``<workspace>/.course-manifest.json``: for each notebook, the
hash of the official file it was copied from and the hash of its cells' sources at that moment.
Outputs, execution counts and metadata are not part of the second hash.

Copies are written to a scratch file and linked into place with ``os.link``, which fails rather than
replaces when the name exists, and the manifest is read and written under an exclusive lock, so two
``make lab`` started together fill one workspace once and both start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock
from .notebook_format import lesson_notebooks

__all__ = ["MANIFEST", "SyncReport", "sources_digest", "sync", "main"]

MANIFEST = ".course-manifest.json"


@dataclass
class SyncReport:
    """What one :func:`sync` did, by notebook file name."""

    copied: list[str] = field(default_factory=list)  # new to the workspace (or deleted by the student)
    updated: list[str] = field(default_factory=list)  # unedited, replaced by a newer official version
    kept_edited: list[str] = field(default_factory=list)  # edited by the student; a newer version exists
    unknown: list[str] = field(default_factory=list)  # in the workspace but never copied by us: left alone
    outdated: list[str] = field(default_factory=list)  # ``init`` only: a newer official version awaits `make update`

    def lines(self, workspace: Path, official: Path) -> list[str]:
        """Human-readable lines for the terminal (empty when nothing happened)."""
        out = [f"{workspace}/{name}: new lesson copied from {official}/" for name in self.copied]
        out += [
            f"{workspace}/{name}: updated to the newest official version (your cells were unedited)"
            for name in self.updated
        ]
        for name in self.kept_edited:
            out.append(
                f"{workspace}/{name}: a newer official version is in {official}/{name}; yours has your edits "
                f"and was left alone (to take the new one, rename yours and run `make update`)"
            )
        out += [f"{workspace}/{name}: not a copy made by the course; left alone" for name in self.unknown]
        if self.outdated:
            out.append(f"newer official versions of {', '.join(self.outdated)}: run `make update` to bring them in")
        return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sources_digest(path: Path) -> str | None:
    """Hash of a notebook's cell types and sources (what a student edits); None if it is not readable JSON."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = [(c.get("cell_type"), "".join(c.get("source", ""))) for c in nb.get("cells", [])]
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return _sha256(json.dumps(cells).encode())


def _place(data: bytes, target: Path, *, replace: bool) -> bool:
    """Write ``data`` at ``target`` atomically; unless ``replace``, never over an existing file.

    Returns False when ``replace`` is off and ``target`` already exists.
    """
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", suffix=".ipynb", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        if replace:
            os.replace(tmp, target)
            return True
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sync(official: Path, workspace: Path, *, update: bool = False) -> SyncReport:
    """Fill ``workspace`` from the official lesson notebooks in ``official``.

    Without ``update`` only missing notebooks are copied. With it, an official notebook that changed
    since it was copied also replaces the workspace's copy, unless the student edited its cells. A
    workspace file is never overwritten otherwise, and never deleted.
    """
    workspace.mkdir(parents=True, exist_ok=True)
    report = SyncReport()
    with FileLock(workspace / ".course-manifest.lock"):
        manifest_path = workspace / MANIFEST
        try:
            manifest: dict[str, dict[str, str]] = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {}
        for _, source in lesson_notebooks(official):
            name, data = source.name, source.read_bytes()
            entry = {"official_sha256": _sha256(data), "sources_sha256": sources_digest(source) or ""}
            target = workspace / name
            if not target.exists():
                if _place(data, target, replace=False):
                    report.copied.append(name)
                    manifest[name] = entry
                continue
            known = manifest.get(name)
            if known is None:
                report.unknown.append(name)
                continue
            if known.get("official_sha256") == entry["official_sha256"]:
                continue
            if not update:
                report.outdated.append(name)
                continue
            if sources_digest(target) == known.get("sources_sha256"):
                _place(data, target, replace=True)
                report.updated.append(name)
                manifest[name] = entry
            else:
                report.kept_edited.append(name)
        if report.copied or report.updated:
            fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=workspace)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(manifest, out, indent=1, sort_keys=True)
            os.replace(tmp, manifest_path)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.workspace", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=["init", "update"], help="init: copy missing lessons; update: also newer ones"
    )
    parser.add_argument("workspace", type=Path, help="the student's working folder (make: my-work)")
    parser.add_argument("--official", type=Path, default=Path("notebooks"), help="the official notebooks")
    args = parser.parse_args(argv)
    report = sync(args.official, args.workspace, update=args.command == "update")
    for line in report.lines(args.workspace, args.official):
        print(line)
    if args.command == "update" and not report.lines(args.workspace, args.official):
        print(f"{args.workspace}/: every lesson is up to date with {args.official}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
