"""Lint rules that ruff cannot state: every ``noqa`` says why the rule does not apply there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)$")
REASON = re.compile(r"^:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*\s+(-|—|\()\s*\S")


def _python_files() -> list[Path]:
    skip = {"fixtures", "artifacts", ".venv", "__pycache__"}
    return [
        p
        for folder in ("course_utils", "tests", "benchmarks", "data")
        for p in (ROOT / folder).rglob("*.py")
        if not skip & set(p.parts)
    ]


def test_every_noqa_names_its_rule_and_a_reason():
    bare = []
    for path in _python_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = NOQA.search(line)
            if m and not REASON.match(m.group("rest")):
                bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "a noqa needs its rule and a reason, e.g. `# noqa: E402 - after sys.path is set`:\n" + "\n".join(
        bare
    )


def test_the_check_recognises_a_reason():
    assert REASON.match(": E402 - imported after sys.path is set")
    assert not REASON.match(": E402")
    assert not REASON.match("")
