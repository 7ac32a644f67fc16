"""Human-readable output: the instructor's report (Markdown and HTML) and one feedback file per student."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
from pathlib import Path

from .grade import Batch, SubmissionGrade

__all__ = ["write_feedback", "write_report_md", "write_report_html", "write_results_json", "feedback_markdown"]

_ICON = {"passed": "✅", "failed": "❌", "not_attempted": "⬜", "error": "💥", "timeout": "⏱"}
_LABEL = {
    "passed": "passed",
    "failed": "failed",
    "not_attempted": "not attempted",
    "error": "error",
    "timeout": "timed out",
}


def _pts(x: float | None) -> str:
    return "?" if x is None else f"{float(x):g}"


def _score(g: SubmissionGrade) -> str:
    return f"{_pts(g.total)} / {_pts(g.max_total)}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def feedback_markdown(g: SubmissionGrade) -> str:
    """The student's feedback: what each check said, plus why anything scored zero."""
    lines = [f"# Feedback: {g.name}", ""]
    lesson = f"lesson {g.lesson:02d}" if g.lesson is not None else "lesson unknown"
    lines += [f"**Score: {_score(g)}** ({lesson}; file `{g.file}`)", ""]
    if g.problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in g.problems] + [""]
    for e in g.exercises:
        title = f" — {e['title']}" if e.get("title") else ""
        lines += [
            f"## Exercise {e['exercise']}{title}",
            "",
            f"{_ICON.get(e['status'], '')} **{_LABEL.get(e['status'], e['status'])}**, "
            f"{_pts(e.get('points'))} / {_pts(e.get('max_points'))} points",
            "",
        ]
        if e.get("feedback"):
            lines += [str(e["feedback"]).rstrip(), ""]
        failed = [c for c in e.get("cases") or [] if not c.get("passed")]
        if failed and not e.get("feedback"):
            lines += [f"- {c.get('name', '')}: {c.get('message', '')}" for c in failed] + [""]
        if e.get("reason"):
            lines += [f"*Grader:* {e['reason']}", ""]
    if g.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in g.notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


def write_feedback(batch: Batch) -> Path:
    """``feedback/<student id>.md`` for every submission (``<student id>-NN.md`` for a student with
    several lessons in the batch); returns the folder."""
    folder = batch.out_dir / "feedback"
    folder.mkdir(parents=True, exist_ok=True)
    for g in batch.grades:
        (folder / f"{g.name}.md").write_text(feedback_markdown(g), encoding="utf-8")
    return folder


def write_results_json(batch: Batch) -> Path:
    """``results.json``: every grade with every field, for scripts."""
    path = batch.out_dir / "results.json"
    data = {
        "folder": str(batch.folder),
        "graded_at": dt.datetime.now().isoformat(timespec="seconds"),
        "seconds": batch.seconds,
        "layout": batch.layout,
        "reused_from_ledger": batch.reused,
        "submissions": [g.to_dict() for g in batch.grades],
        "not_graded": [dataclasses.asdict(k) for k in batch.skipped],
        "ignored": [p.name for p in batch.ignored],
    }
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return path


def _summary_rows(batch: Batch) -> tuple[list[str], list[list[str]]]:
    ids: list[str] = []
    for g in batch.grades:
        for e in g.exercises:
            if e["exercise"] not in ids:
                ids.append(e["exercise"])
    head = ["Submission", "Lesson", "Status", "Score"] + ids + ["Time (s)"]
    rows = []
    for g in batch.grades:
        mine = {e["exercise"]: e for e in g.exercises}
        rows.append(
            [g.name, f"{g.lesson:02d}" if g.lesson is not None else "?", g.status, _score(g)]
            + [f"{_ICON.get(mine[i]['status'], '')} {_pts(mine[i]['points'])}" if i in mine else "" for i in ids]
            + [f"{g.seconds:.1f}"]
        )
    return head, rows


def write_report_md(batch: Batch) -> Path:
    """``report.md``: a summary table, then one section per submission."""
    head, rows = _summary_rows(batch)
    n = len(batch.grades)
    lines = [
        "# Grading report",
        "",
        f"Folder `{batch.folder}` ({batch.layout} layout) — {n} submission(s), graded in {batch.seconds:.1f} s"
        + (f" ({batch.reused} taken from the ledger of an earlier run). " if batch.reused else ". ")
        + "Legend: ✅ passed, ❌ failed, ⬜ not attempted, 💥 error, ⏱ timed out.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    if batch.skipped:
        lines += ["", "## Found but not graded", "", "| Student | File | Why |", "|---|---|---|"]
        lines += [f"| {_cell(k.student)} | {_cell(k.origin)} | {_cell(k.reason)} |" for k in batch.skipped]
    if batch.ignored:
        lines += ["", "Ignored (not submissions): " + ", ".join(f"`{p.name}`" for p in batch.ignored)]
    for g in batch.grades:
        lines += ["", f"## {g.name} — {_score(g)}", ""]
        lines += [
            f"Student `{g.student}`, file `{g.origin or g.file}`, status **{g.status}**, lesson {g.lesson if g.lesson is not None else '?'} ({g.lesson_how or 'n/a'})."
        ]
        if g.executed:
            lines += [f"Executed notebook: `{Path(g.executed).name}` in `executed/`."]
        if g.exercises:
            lines += ["", "| Exercise | Status | Points | Feedback / reason |", "|---|---|---|---|"]
            for e in g.exercises:
                msg = " ".join(x for x in [str(e.get("feedback") or ""), str(e.get("reason") or "")] if x)
                lines += [
                    f"| {_cell(e['exercise'])} | {_ICON.get(e['status'], '')} {_LABEL.get(e['status'], e['status'])} "
                    f"| {_pts(e.get('points'))} / {_pts(e.get('max_points'))} | {_cell(msg[:400])} |"
                ]
        for p in g.problems:
            lines += [f"- **Problem:** {_cell(p[:800])}"]
        for note in g.notes:
            lines += [f"- Note: {_cell(note)}"]
    path = batch.out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_report_html(batch: Batch) -> Path:
    """``report.html``: the same summary as a standalone page (no external assets)."""
    head, rows = _summary_rows(batch)
    e = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Grading report</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
        "th{background:#f3f3f3}.passed{background:#e8f7e8}.failed,.error,.timeout{background:#fdecea}</style>",
        f"<h1>Grading report</h1><p>Folder <code>{e(str(batch.folder))}</code> — {len(batch.grades)} submission(s), "
        f"graded in {batch.seconds:.1f} s.</p>",
        "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>",
    ]
    for r in rows:
        parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
    parts.append("</table>")
    if batch.skipped:
        parts.append("<h2>Found but not graded</h2><table><tr><th>Student</th><th>File</th><th>Why</th></tr>")
        parts += [
            f"<tr><td>{e(k.student)}</td><td>{e(k.origin)}</td><td>{e(k.reason)}</td></tr>" for k in batch.skipped
        ]
        parts.append("</table>")
    if batch.ignored:
        parts.append("<p>Ignored: " + ", ".join(f"<code>{e(p.name)}</code>" for p in batch.ignored) + "</p>")
    for g in batch.grades:
        parts.append(f"<h2 id='{e(g.name)}'>{e(g.name)} — {e(_score(g))}</h2>")
        parts.append(f"<p>File <code>{e(g.file)}</code>, status <b>{e(g.status)}</b>.</p>")
        if g.exercises:
            parts.append("<table><tr><th>Exercise</th><th>Status</th><th>Points</th><th>Feedback / reason</th></tr>")
            for x in g.exercises:
                msg = "\n".join(s for s in [str(x.get("feedback") or ""), str(x.get("reason") or "")] if s)
                parts.append(
                    f"<tr class='{e(x['status'])}'><td>{e(x['exercise'])}</td><td>{e(_LABEL.get(x['status'], x['status']))}</td>"
                    f"<td>{_pts(x.get('points'))} / {_pts(x.get('max_points'))}</td><td><pre style='white-space:pre-wrap;margin:0'>{e(msg)}</pre></td></tr>"
                )
            parts.append("</table>")
        if g.problems or g.notes:
            parts.append(
                "<ul>"
                + "".join(f"<li><b>Problem:</b> {e(p)}</li>" for p in g.problems)
                + "".join(f"<li>{e(n)}</li>" for n in g.notes)
                + "</ul>"
            )
    path = batch.out_dir / "report.html"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
