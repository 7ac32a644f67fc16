"""Every student notebook, as a student meets it: JupyterLab in headless Chromium.

Run by ``make test-browser`` (not by ``make test``: this file's name does not match ``test_*.py``,
so pytest only collects it when named explicitly). One ``make lab`` per worker fills a scratch
student workspace from ``notebooks/`` and serves it, as it does for a student; its kernels run at ``COURSE_FORCE_TIME_SCALE=0.02`` and under the
``hostile`` reply scenario (``COURSE_REPLY_SCENARIO``): every reply starts with a ``thinking`` block
and a quarter end in ``refusal`` or ``pause_turn``, as the current models may answer (issue 13).
Code that reads ``content[0].text`` fails here; code that reads blocks by type does not.

Each lesson runs once, in the version students open (their workspace copy of ``notebooks/``). Its demo and Explore cells
are the solution's, byte for byte (``test_repository_notebooks_are_up_to_date``), and no demo cell
calls an exercise function (a stub would raise here), so this covers all the code a student runs;
the solutions' exercise code is graded by ``make test`` (nbval, grading and check tests), where
check cells pin plain replies anyway.

For each notebook the test opens it, runs Run > Run All Cells, waits for the kernel to be idle,
saves it from the UI and fails on:

- a code cell that did not run (Run All stopped early);
- any ``error`` output or traceback text, in *every* notebook. Student notebooks are no exception:
  their exercise stubs ``raise NotImplementedError`` only when called, and the only caller is the
  check cell, whose ``check()`` turns that into a verdict. So "no error output" means the same in
  both kinds, and what differs is the verdict: every check cell must print one, "not attempted"
  (grey) in a student notebook and "passed" in a solution;
- a widget rendered as text (``VBox(children=...``);
- a slider or dropdown whose Output does not change within ``WIDGET_TIMEOUT_S`` after it is moved
  (for ``interact_manual``, after its button is pressed);
- JupyterLab's "Jupyter news" pop-up on screen: the venv's settings overrides turn it off
  (``course_utils/jupyter_env.py``), and the test's own user settings leave it alone.

Screenshots (first plot, each widget after interaction, the first check verdict) are written to
``tests/browser/artifacts/`` (or ``$BROWSER_ARTIFACTS``) and their paths printed.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers next to this file

from _lab import LabServer, prepare_root, start_lab
from _notebook_ui import controls, interact, open_notebook, run_all, save, widget_text_outputs

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", REPO / "tests" / "browser" / "artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Flags that let Debian's Chromium run headless as root on a machine with no outside network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIME_SCALE = "0.02"  # the CI time scale (course_utils.mock_provider.config.CI_TIME_SCALE)
RUN_ALL_TIMEOUT_S = 240.0
WIDGET_TIMEOUT_S = 45.0
REPLY_SCENARIO = "hostile"  # course_utils.mock_provider.skills.thinking.REPLY_SCENARIOS
NOTEBOOKS = [path.name for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w+Error: ", re.MULTILINE)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> LabServer:
    root = prepare_root(REPO, tmp_path_factory.mktemp("course"))
    server = start_lab(
        REPO,
        root,
        tmp_path_factory.mktemp("lab"),
        {"COURSE_FORCE_TIME_SCALE": TIME_SCALE, "COURSE_REPLY_SCENARIO": REPLY_SCENARIO},
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Browser:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test-browser` installs Debian's chromium")
    with sync_playwright() as playwright:
        # launch() gives Chromium a fresh, empty temporary --user-data-dir of its own.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


def _text(output: dict) -> str:
    parts = [output.get("text", "")] if "text" in output else []
    parts += [value for mime, value in output.get("data", {}).items() if mime == "text/plain"]
    parts += output.get("traceback", [])
    return "\n".join(parts)


def _shot(locator, name: str, problems: list[str]) -> Path | None:
    """Screenshot ``locator`` into the artifacts folder; a failure is a problem, not a crash."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    try:
        locator.scroll_into_view_if_needed(timeout=10_000)
        locator.screenshot(path=str(path), timeout=10_000)
    except PlaywrightError as exc:
        problems.append(f"no screenshot {name}: {str(exc).splitlines()[0]}")
        return None
    print(f"  screenshot: {path}")
    return path


@pytest.mark.parametrize("relpath", NOTEBOOKS)
def test_notebook_in_jupyterlab(lab: LabServer, page: Page, relpath: str) -> None:
    stem = relpath.removesuffix(".ipynb")
    open_notebook(page, lab.page_url(relpath, workspace=stem))
    seconds = run_all(page, RUN_ALL_TIMEOUT_S)
    nb = save(page, lab.root / relpath)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(lab.root / relpath, ARTIFACTS / f"{stem}.ipynb")  # as the browser saved it, to inspect
    print(f"\n[browser] {relpath}: Run All took {seconds:.1f} s at time_scale {TIME_SCALE}, {REPLY_SCENARIO} replies")
    problems: list[str] = []

    code = [(index, cell) for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    not_run = [index for index, cell in code if cell.execution_count is None]
    if not_run:
        problems.append(f"Run All stopped early: cells {not_run} never ran")
    for index, cell in code:
        for output in cell.outputs:
            if output.output_type == "error":
                problems.append(f"cell {index}: {output.ename}: {output.evalue}"[:300])
            elif _TRACEBACK.search(_text(output)):
                problems.append(f"cell {index}: traceback in output: {_text(output)[:300]!r}")

    verdicts = []
    for index, cell in code:
        if not cell.source.lstrip().startswith("check("):
            continue
        verdict = "\n".join(_text(o) for o in cell.outputs).strip()
        verdicts.append(verdict.splitlines()[0] if verdict else "")
        wanted = "not attempted"  # a student's copy: every exercise is still a stub
        if "Exercise" not in verdict or wanted not in verdict.splitlines()[0]:
            problems.append(
                f"cell {index} ({cell.source.strip()}): expected a '{wanted}' verdict, got {verdict[:200]!r}"
            )
    print(
        f"  {len(code) - len(not_run)} of {len(code)} code cells ran; {len(verdicts)} check verdicts, "
        f"e.g. {verdicts[:1]}"
    )

    problems += [f"widget rendered as text: {text!r}" for text in widget_text_outputs(page)]
    if page.get_by_text("Jupyter news").count():
        problems.append("JupyterLab's 'Jupyter news' pop-up is showing (the venv's overrides.json should turn it off)")

    cells = page.locator(".jp-Notebook .jp-Cell")
    plots = page.locator(".jp-OutputArea-output[data-mime-type='image/png']")
    if plots.count():
        _shot(plots.first, f"{stem}-first-plot", problems)
    first_check = next((index for index, cell in code if cell.source.lstrip().startswith("check(")), None)
    if first_check is not None:
        _shot(cells.nth(first_check).locator(".jp-OutputArea"), f"{stem}-check", problems)

    for number, control in enumerate(controls(page)):
        try:
            before, after, waited = interact(page, control, WIDGET_TIMEOUT_S)
        except AssertionError as exc:
            problems.append(str(exc))
            _shot(control.container, f"{stem}-widget-{number}-FAILED", problems)
            continue
        if _TRACEBACK.search(after):
            problems.append(f"{control.label}: the widget's output shows an error: {after[:300]!r}")
        first_line = after.strip().splitlines()[0][:100] if after.strip() else ""
        print(f"  moved {control.kind} {control.label!r}: output changed in {waited:.1f} s ({first_line!r})")
        _shot(control.container, f"{stem}-widget-{number}", problems)

    assert not problems, f"{relpath}:\n  " + "\n  ".join(problems)
