"""What a student does in JupyterLab, through its UI only: open, Run All, save, move widgets.

Every action goes through menus, the keyboard or the mouse on the rendered page (Playwright's sync
API); results are read from the DOM or from the notebook file the UI saved.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

__all__ = [
    "open_notebook",
    "run_all",
    "save",
    "widget_text_outputs",
    "Control",
    "controls",
    "interact",
]

# A widget's text/plain fallback, shown when the front end could not render the widget.
_WIDGET_AS_TEXT = re.compile(
    r"^\s*(VBox|HBox|Box|interactive|IntSlider|FloatSlider|SelectionSlider|Dropdown|Output|IntProgress|FloatProgress"
    r"|Button|HTML|Label)\(",
)
_STARTED = (
    "() => [...document.querySelectorAll('.jp-InputArea-prompt')].some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"
)
_IDLE_AND_DONE = """() => {
    const indicator = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator')
        || document.querySelector('.jp-Notebook-ExecutionIndicator');
    if (!indicator || indicator.getAttribute('data-status') !== 'idle') return false;
    return ![...document.querySelectorAll('.jp-InputArea-prompt')].some(p => p.textContent.includes('*'));
}"""


def _menu(page: Page, menu: str, command: str) -> None:
    page.get_by_role("menuitem", name=menu, exact=True).click()
    page.locator(f".lm-Menu-item[data-command='{command}']").click()


def open_notebook(page: Page, url: str, timeout_s: float = 120) -> None:
    """Open a notebook page and wait until its kernel is started and idle."""
    page.goto(url)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout_s * 1000)
    page.wait_for_function(_IDLE_AND_DONE, timeout=timeout_s * 1000)
    # The kernel name in the toolbar appears once a session exists: without it Run All does nothing.
    page.wait_for_selector(".jp-KernelName:not(:has-text('No Kernel'))", timeout=timeout_s * 1000)


def run_all(page: Page, timeout_s: float) -> float:
    """Run > Run All Cells, then wait until the kernel is idle and no cell is queued; return seconds."""
    started = time.monotonic()
    # Every queued cell gets its [*] at once; wait for that so "idle" is not the state before the
    # run. On a loaded machine a click can land before the menu is ready: then choose it again.
    for attempt in range(3):
        _menu(page, "Run", "runmenu:run-all")
        try:
            page.wait_for_function(_STARTED, timeout=10_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")  # close a menu left open
            if attempt == 2:
                raise
    deadline = started + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        page.wait_for_function(_IDLE_AND_DONE, timeout=max(1.0, remaining) * 1000, polling=250)
        time.sleep(1.0)  # idle between two queued cells is not the end of the run: it must stay idle
        if page.evaluate(_IDLE_AND_DONE):
            return time.monotonic() - started


def save(page: Page, path: Path, timeout_s: float = 30) -> nbformat.NotebookNode:
    """File > Save Notebook, wait until the tab is no longer dirty, and read the saved file."""
    _menu(page, "File", "docmanager:save")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')", timeout=timeout_s * 1000
    )
    return nbformat.read(str(path), as_version=4)


def widget_text_outputs(page: Page) -> list[str]:
    """Outputs showing a widget's text fallback (``VBox(children=...``): the widget did not render."""
    texts = page.locator(".jp-OutputArea-output[data-mime-type='text/plain']").all_inner_texts()
    return [text[:120] for text in texts if _WIDGET_AS_TEXT.match(text)]


@dataclass
class Control:
    """A slider or dropdown on the page, with the widget box that holds it and its output."""

    kind: str  # "slider" or "dropdown"
    element: Locator
    container: Locator
    output: Locator
    label: str


def controls(page: Page) -> list[Control]:
    """Every slider and dropdown whose widget box has an Output area, in page order."""
    found: list[Control] = []
    for kind, selector in (("slider", ".widget-slider"), ("dropdown", ".widget-dropdown")):
        for element in page.locator(selector).all():
            # interact() puts controls and output in one .widget-interact box; a hand-made
            # VBox([control, output]) is a .widget-vbox.
            container = element.locator(
                "xpath=ancestor::div[contains(@class,'widget-interact') or contains(@class,'widget-vbox')][1]"
            )
            if container.count() == 0 or container.locator(".widget-output").count() == 0:
                continue
            label = (element.locator(".widget-label").first.inner_text() or kind).strip()
            found.append(Control(kind, element, container, container.locator(".widget-output").first, label))
    return found


def _readout(control: Control) -> str:
    if control.kind == "dropdown":
        return control.element.locator("select").input_value()
    return control.element.locator(".widget-readout").inner_text()


def _move(page: Page, control: Control) -> None:
    """Change the control's value as a user would: arrow keys on a slider, another option in a list."""
    if control.kind == "dropdown":
        select = control.element.locator("select")
        current = select.input_value()
        values = select.locator("option").evaluate_all("opts => opts.map(o => o.value)")
        index = values.index(current) if current in values else 0
        select.select_option(value=values[(index + 1) % len(values)])
        return
    before = _readout(control)
    handle = control.element.locator(".noUi-handle").first
    handle.focus()
    # Two steps up; at the maximum that changes nothing, so then go down instead.
    for key in ("ArrowRight", "ArrowRight"):
        page.keyboard.press(key)
    if _readout(control) == before:
        for _ in range(3):
            page.keyboard.press("ArrowLeft")


def interact(page: Page, control: Control, timeout_s: float) -> tuple[str, str, float]:
    """Move ``control`` (and press the box's button, for ``interact_manual``); wait for its output.

    Returns ``(output before, output after, seconds)``; the output is the box's Output widget text.
    Raises ``AssertionError`` if the output has not changed to something non-empty in ``timeout_s``.
    """
    control.container.scroll_into_view_if_needed()
    before = control.output.inner_text()
    value_before = _readout(control)
    _move(page, control)
    assert _readout(control) != value_before, f"{control.label}: could not change the value ({value_before})"
    button = control.container.locator("button")
    if button.count():
        button.first.click()
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        after = control.output.inner_text()
        # A line ending in "..." is a placeholder shown while a background run works (03's slider).
        if after.strip() and after != before and not after.rstrip().endswith("..."):
            time.sleep(0.5)  # let a multi-line print finish before the caller reads or screenshots it
            return before, control.output.inner_text(), time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(
        f"moving {control.kind} {control.label!r} from {value_before} to {_readout(control)} did not change "
        f"its output within {timeout_s:g} s (output: {before.strip()[:200]!r})"
    )
