"""The one progress-callback protocol of the course library.

Every long-running operation in the lesson packages (a worker pool, a batch poller, a retry
run, a tenant's load test) takes ``on_progress: ProgressCallback | None`` and calls it with a
:class:`ProgressEvent` after each unit of work. A notebook passes a :class:`ProgressBar` (a widget
bar in JupyterLab, sparse text lines elsewhere) or any callable of one argument.

Contract of a callback: it is called on the caller's thread or event loop, it must return quickly,
and what it returns is ignored. An exception it raises propagates to the operation's caller (a
broken display should be seen, not swallowed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["ProgressEvent", "ProgressCallback", "ProgressBar"]


@dataclass(frozen=True)
class ProgressEvent:
    """One observation of an operation's progress.

    ``done`` units have finished out of ``total`` (``None`` when the total is not known in advance),
    ``elapsed_s`` seconds after the operation started, on the operation's clock (virtual under a
    virtual clock). ``latest`` is what just changed: an ``Outcome``, a ``MessageBatch``, ... (see the
    operation's docstring); ``None`` when nothing in particular did.
    """

    done: int
    total: int | None
    elapsed_s: float
    latest: Any = None

    @property
    def fraction(self) -> float | None:
        """``done / total`` in ``[0, 1]``, or ``None`` when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


ProgressCallback = Callable[[ProgressEvent], Any]
"""``on_progress(event)``; see the module docstring for the contract."""


class ProgressBar:
    """A :data:`ProgressCallback` that shows ``done / total``: a widget bar in JupyterLab, else text.

    Without widgets it prints a line each time another ``every`` percent is done, and at the end,
    so a long run does not flood a log. ``label`` names the operation. ``widget=None`` picks the
    widget only inside a Jupyter kernel. ``last`` keeps the latest event for inspection.
    """

    def __init__(
        self, total: int | None = None, label: str = "", *, every: int = 25, widget: bool | None = None
    ) -> None:
        self.total = total
        self.label = label
        self.last: ProgressEvent | None = None
        self._every = every
        self._next_pct = every
        self._finished = False
        self._bar: Any = None
        if widget is None:
            widget = _in_notebook()
        if widget:
            try:
                import ipywidgets as widgets
                from IPython.display import display

                self._bar = widgets.IntProgress(value=0, min=0, max=max(1, total or 1), description=label)
                display(self._bar)
            except ImportError:  # no ipywidgets: fall back to text lines
                self._bar = None

    def __call__(self, event: ProgressEvent) -> None:
        self.last = event
        total = event.total if event.total is not None else self.total
        if self._bar is not None:
            if total:
                self._bar.max = max(1, total)
            self._bar.value = min(event.done, self._bar.max)
            return
        if not total:
            return
        pct = 100 * min(event.done, total) // total
        finished = event.done >= total
        if (pct >= self._next_pct or finished) and not self._finished:
            print(
                f"{self.label or 'progress'}: {min(event.done, total)}/{total} ({pct}%) after {event.elapsed_s:.1f} s"
            )
            while self._next_pct <= pct:
                self._next_pct += self._every
            self._finished = finished  # the final line is printed once


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
    except ImportError:
        return False
