"""Showing a batch's ``request_counts`` while polling: a widget in Jupyter, text elsewhere."""

from __future__ import annotations

from typing import Any

from .poll import counts_of, format_counts

__all__ = ["CountsProgress"]


class CountsProgress:
    """A poll callback (``on_progress(batch, elapsed_s)``) that shows the latest counts.

    In a notebook with ipywidgets: a progress bar of finished requests over the total and a line of
    counts, updated in place. Otherwise (or with ``widget=False``) it prints a line only when the
    counts or the status change, so a long poll does not flood the log. ``history`` keeps every
    observation for plotting.
    """

    def __init__(self, total: int, *, widget: bool = True, label: str = "batch") -> None:
        self.total = total
        self.label = label
        self.history: list[dict[str, Any]] = []
        self._last: tuple[Any, ...] | None = None
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

    def __call__(self, batch: Any, elapsed_s: float) -> None:
        counts = counts_of(batch)
        self.history.append({"batch_id": batch.id, "elapsed_s": elapsed_s, "status": batch.processing_status, **counts})
        self._latest[batch.id] = counts
        done = sum(v for c in self._latest.values() for k, v in c.items() if k != "processing")
        if self._bar is not None:
            self._bar.value = min(self._bar.max, int(done))
            self._text.value = format_counts(batch)
            return
        key = (batch.id, batch.processing_status, tuple(counts.values()))
        if key != self._last:
            self._last = key
            print(f"{self.label} {batch.id[-6:]} after {elapsed_s:.1f} s: {format_counts(batch)}")
