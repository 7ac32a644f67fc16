"""The lessons' Explore helpers: the same text as before, and output that reaches the browser."""

from __future__ import annotations

import asyncio

import pytest

from course_utils.concurrency.display import async_slider
from course_utils.context.display import budget_strip, format_budget_plan
from course_utils.streaming.consume import StreamResult
from course_utils.streaming.display import describe_pace, mean_gap_ms, policy_table, recorded_deltas


def test_budget_strip_marks_the_newest_turns():
    assert budget_strip(0, 100, ".", width=10) == ".........."
    assert budget_strip(100, 100, ".", width=10) == "KKKKKKKKKK"
    assert budget_strip(30, 100, "S", width=10) == "SSSSSSSKKK"


def test_format_budget_plan_has_one_line_per_strategy():
    plan = {name: {"kept": kept, "tokens": 900, "cost": 0} for name, kept in (("window", 6), ("hybrid", 1))}
    text = format_budget_plan(1_000, plan, 100)
    lines = text.splitlines()
    assert lines[0] == "budget 1,000 tokens, 100 turns in the history"
    assert "keeps   6 turns, drops  94" in lines[1] and "keeps   1 turns, summarizes  99" in lines[2]


def test_recorded_deltas_split_the_text_by_delta_size():
    run = StreamResult()
    run.text, run.delta_sizes, run.delta_times = "Hello world!", [5, 6, 1], [0.1, 0.2, 0.4]
    times, texts = recorded_deltas(run)
    assert texts == ["Hello", " world", "!"] and times == [0.1, 0.2, 0.4]
    assert mean_gap_ms(times) == pytest.approx(150.0)
    assert describe_pace(150.0, 300.0).endswith("client needs 300.00 ms per write")


def test_policy_table_has_a_row_per_policy():
    times = [0.001 * i for i in range(40)]
    table = policy_table(times, ["x"] * 40, client_ms_per_write=5.0, queue_size=4)
    assert list(table.index) == ["unbounded", "pause", "coalesce"]
    assert table.loc["unbounded", "max queue depth"] > table.loc["pause", "max queue depth"]


def test_async_slider_shows_the_row_through_widget_state():
    """The lesson 03 bug: a background task's print() inside ``with output:`` never reached the
    browser. The helper must change the Output widget's own ``outputs`` state instead."""
    pytest.importorskip("ipywidgets")

    async def scenario():
        async def run(level):
            await asyncio.sleep(0)
            return {"concurrency": level, "throughput (req/s)": 10.0 * level}

        box = async_slider(run, options=[1, 2, 4], value=2, description="concurrency")
        slider, shown = box.children
        slider.value = 4  # what moving the slider in the browser does
        for _ in range(20):
            await asyncio.sleep(0.01)
        return shown.outputs

    outputs = asyncio.run(scenario())
    assert len(outputs) == 1 and outputs[0]["output_type"] == "display_data"
    assert "40.0" in outputs[0]["data"]["text/plain"]
    assert "text/html" in outputs[0]["data"]
