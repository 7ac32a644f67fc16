"""Showing a batch's ``request_counts`` while polling: a widget in Jupyter, text elsewhere."""

from __future__ import annotations

from typing import Any

from ..progress import ProgressEvent
from .poll import counts_of, format_counts

__all__ = ["CountsProgress"]


class CountsProgress:
    """A :data:`~course_utils.progress.ProgressCallback` for pollers that shows the latest counts.

    It reads each event's ``latest`` (the ``MessageBatch`` just polled) and ``elapsed_s``. In a
    notebook with ipywidgets: a progress bar of finished requests over ``total`` requests and a
    line of counts, updated in place. Otherwise (or with ``widget=False``) it prints a line only
    when a batch's counts or status change, so a long poll does not flood the log. ``history``
    keeps every observation (one dict per poll) for plotting.
    """

    def __init__(self, total: int, *, widget: bool = True, label: str = "batch") -> None:
        self.total = total
        self.label = label
        self.history: list[dict[str, Any]] = []
        self._last: dict[str, tuple[Any, ...]] = {}
        self._latest: dict[str, dict[str, int]] = {}  # per batch: a job polls several at once
        self._bar = self._text = None
        if widget:
            try:
                import ipywidgets as widgets
                from IPython.display import display

                self._bar = widgets.IntProgress(value=0, min=0, max=max(1, total), description=label)
                self._text = widgets.Label(value="submitted")
                display(widgets.HBox([self._bar, self._text]))
            except ImportError:
                self._bar = self._text = None

    @property
    def finished(self) -> int:
        """Requests no longer processing, over every batch seen so far."""
        return sum(v for c in self._latest.values() for k, v in c.items() if k != "processing")

    def __call__(self, event: ProgressEvent) -> None:
        batch, elapsed_s = event.latest, event.elapsed_s
        counts = counts_of(batch)
        self.history.append({"batch_id": batch.id, "elapsed_s": elapsed_s, "status": batch.processing_status, **counts})
        self._latest[batch.id] = counts
        if self._bar is not None:
            self._bar.value = min(self._bar.max, self.finished)
            self._text.value = f"{event.done}/{event.total} batches ended; {format_counts(batch)}"
            return
        key = (batch.processing_status, tuple(counts.values()))
        if self._last.get(batch.id) != key:
            self._last[batch.id] = key
            print(f"{self.label} {batch.id[-6:]} after {elapsed_s:.1f} s: {format_counts(batch)}")
