"""live_controls: one background run at a time, always for the controls' current values."""

from __future__ import annotations

import threading

import pytest

widgets = pytest.importorskip("ipywidgets")

from course_utils.live_controls import live_controls  # noqa: E402 - after the importorskip above


def _wait(condition, what: str) -> None:
    # Waits for a background thread's event, not a duration: the verdict never depends on speed.
    done = threading.Event()
    for _ in range(2000):
        if condition():
            return
        done.wait(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def _texts(output) -> list[str]:
    return [o.get("text", "") or str(o.get("data", {}).get("text/plain", "")) for o in output.outputs]


def test_moves_during_a_run_rerun_once_for_the_latest_values_and_the_stale_result_is_never_shown():
    slider = widgets.IntSlider(value=1)
    release, started, seen = threading.Event(), threading.Semaphore(0), []

    def show(values, output, superseded):
        seen.append(values["n"])
        started.release()
        if values["n"] == 1:
            release.wait()  # the first run is still going while the slider moves twice
        return f"result for {values['n']}"

    box = live_controls({"n": slider}, show)
    output = box.children[-1]
    started.acquire()
    slider.value = 2
    slider.value = 3
    release.set()
    _wait(lambda: any("result for 3" in t for t in _texts(output)), "the latest result")
    assert seen == [1, 3], "one rerun, for the values the slider holds when the first run ends"
    assert not any("result for 1" in t for t in _texts(output))


def test_an_exception_is_shown_not_swallowed():
    slider = widgets.IntSlider(value=0)

    def show(values, output, superseded):
        raise ValueError(f"bad value {values['x']}")

    box = live_controls({"x": slider}, show)
    output = box.children[-1]
    _wait(lambda: any("ValueError: bad value 0" in t for t in _texts(output)), "the error")


def test_show_may_draw_frames_and_stop_when_superseded():
    slider = widgets.IntSlider(value=0)
    frames, gate = [], threading.Event()

    def show(values, output, superseded):
        for frame in range(1000):
            if superseded():
                return None
            frames.append((values["x"], frame))
            if values["x"] == 0 and frame == 3:
                gate.set()
                _wait(superseded, "the move")
        return f"done {values['x']}"

    box = live_controls({"x": slider}, show)
    gate.wait(5)
    slider.value = 1
    _wait(lambda: any("done 1" in t for t in _texts(box.children[-1])), "the second run")
    assert max(f for x, f in frames if x == 0) == 3, "the superseded replay stopped at once"


def test_in_ipython_the_next_cell_starts_after_the_first_run(monkeypatch) -> None:
    """Run All must not race the controls' first run with the next cell (lesson 08's table after its
    controls moved under load); the hook that holds the next cell removes itself."""
    from IPython.core.events import EventManager, available_events

    class Shell:
        pass

    shell = Shell()
    shell.events = EventManager(shell, available_events)
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)
    release, order = threading.Event(), []

    def show(values, output, superseded):
        release.wait()
        order.append("first run ended")
        return "done"

    live_controls({"n": widgets.IntSlider(value=1)}, show)

    def next_cell() -> None:
        shell.events.trigger("pre_run_cell", None)
        order.append("next cell started")

    cell = threading.Thread(target=next_cell)
    cell.start()
    cell.join(0.3)  # a hook that did not hold the cell lets it start here
    release.set()
    cell.join(30)
    assert order == ["first run ended", "next cell started"]
    assert shell.events.callbacks["pre_run_cell"] == []
