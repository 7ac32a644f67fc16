"""The older progress display of lessons 01-02 (``(done, total)`` calls); new code passes a
:class:`course_utils.progress.ProgressBar` as ``on_progress`` instead. Kept until those lessons move.

``Progress(total, "classify")`` is a callable ``(done, total)`` (or ``(event)``: a
:class:`~course_utils.progress.ProgressEvent` counts as its ``done``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Progress"]


class Progress:
    """Show ``done / total``: a widget bar when widgets can render, else a line every ``every`` percent."""

    def __init__(self, total: int, description: str = "", *, every: int = 25, widget: bool | None = None) -> None:
        self.total = max(1, int(total))
        self.description = description
        self._every = every
        self._next_pct = every
        self._bar: Any = None
        if widget is None:
            widget = _in_notebook()
        if widget:
            try:
                import ipywidgets as widgets
                from IPython.display import display

                self._bar = widgets.IntProgress(value=0, min=0, max=self.total, description=description)
                display(self._bar)
            except Exception:  # noqa: BLE001 - no widgets: fall back to text
                self._bar = None

    def __call__(self, done: Any = None, total: Any = None) -> None:
        """Record progress: ``done`` items finished (an int), or one more if called with an outcome."""
        done = getattr(done, "done", done)  # a ProgressEvent from this package's on_progress
        value = int(done) if isinstance(done, int) else self.value + 1
        self.value = min(value, self.total)
        if self._bar is not None:
            self._bar.value = self.value
            return
        pct = 100 * self.value // self.total
        if pct >= self._next_pct or self.value == self.total:
            print(f"{self.description or 'progress'}: {self.value}/{self.total} ({pct}%)")
            while self._next_pct <= pct:
                self._next_pct += self._every

    value: int = 0


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
    except Exception:
        return False
