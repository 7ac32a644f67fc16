"""Lesson 03's Explore control: a slider whose every move runs an async workload and shows its row.

Why this is not ``interact``: the workload is a coroutine. Each move runs it with ``asyncio.run``
in the background thread of :func:`course_utils.live_controls.live_controls` (a loop of its own,
not the kernel's, whose background tasks can stall in JupyterLab), and the row is shown through the
Output widget's state, which the browser always shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..live_controls import live_controls

__all__ = ["async_slider"]


def async_slider(
    run: Callable[[Any], Awaitable[Mapping[str, Any]]],
    options: Sequence[Any],
    value: Any,
    description: str,
) -> Any:
    """Display a slider over ``options``; each move runs ``run(option)`` and shows its result row.

    Returns the widget box (``None`` when ipywidgets is missing: then it prints that the table
    below the control shows the same figures). Contract for ``run``: a coroutine function returning
    one table row (a mapping), which must not need the kernel's event loop (it runs on a loop of its
    own); an exception it raises is shown in the output, never swallowed. Only the latest move's row
    is shown: a run the slider has moved on from is not.
    """
    try:
        import ipywidgets as widgets
    except ImportError:
        return live_controls({}, lambda *_: None)  # prints the text fallback's note
    import pandas as pd

    slider = widgets.SelectionSlider(
        options=list(options), value=value, description=description, continuous_update=False
    )  # one run per release, not per pixel

    def show(values: dict[str, Any], _output: Any, _superseded: Callable[[], bool]) -> Any:
        row = dict(asyncio.run(run(values[description])))
        return pd.DataFrame([row]).set_index(next(iter(row)))

    return live_controls({description: slider}, show)
