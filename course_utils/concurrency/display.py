"""Lesson 03's Explore control: a slider whose every move runs an async workload and shows its row.

Why this is not ``interact``: the workload is a coroutine, and the kernel's event loop is already
running the notebook, so each move schedules it as a background task. Output printed from such a
task inside ``with output:`` is lost in JupyterLab (the front end routes captured output by the
message that was executing, and a background task has none), which left the slider doing nothing
in the browser. :class:`ipywidgets.Output`'s ``append_display_data``/``append_stdout`` and
``outputs = ()`` change the widget's state instead, which the browser always shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

__all__ = ["async_slider"]


def async_slider(
    run: Callable[[Any], Awaitable[Mapping[str, Any]]],
    options: Sequence[Any],
    value: Any,
    description: str,
) -> Any:
    """Display a slider over ``options``; each move awaits ``run(option)`` and shows its result row.

    Returns the widget box (``None`` when ipywidgets is missing: then it prints that the table
    below the control shows the same figures). Contract for ``run``: a coroutine function returning
    one table row (a mapping); an exception it raises is shown in the output, never swallowed.
    Only the latest move's row is shown: a slow earlier run that finishes last does not overwrite it.
    """
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        print("ipywidgets is not installed; the table below shows the same figures.")
        return None
    import pandas as pd

    slider = widgets.SelectionSlider(
        options=list(options), value=value, description=description, continuous_update=False
    )  # one run per release, not per pixel
    shown = widgets.Output()
    moves = {"latest": 0}
    tasks: set[asyncio.Task] = set()  # strong references: the loop keeps only weak ones

    async def update(option: Any, move: int) -> None:
        shown.outputs = ()
        shown.append_stdout(f"running with {description} = {option} ...\n")
        try:
            row = await run(option)
        except Exception as exc:  # noqa: BLE001 - shown to the student, who is experimenting
            if move == moves["latest"]:
                shown.outputs = ()
                shown.append_stderr(f"{description} = {option}: {type(exc).__name__}: {exc}\n")
            return
        if move == moves["latest"]:
            shown.outputs = ()
            shown.append_display_data(pd.DataFrame([dict(row)]).set_index(next(iter(row))))

    def on_change(change: Mapping[str, Any]) -> None:
        moves["latest"] += 1
        task = asyncio.ensure_future(update(change["new"], moves["latest"]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    slider.observe(on_change, names="value")
    box = widgets.VBox([slider, shown])
    display(box)
    return box
