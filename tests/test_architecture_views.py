"""Lesson 08's views: the diagram generated from the wiring, the waterfall and the load-test dashboard."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import re

import matplotlib
import matplotlib.pyplot as plt
import pytest

from course_utils.architecture import DeskStore, InMemoryBus, Pipeline, PipelineConfig, RedisStreamsBus, VectorIndex
from course_utils.architecture.dashboard import Dashboard, load_dashboard, load_series, waterfall
from course_utils.architecture.diagram import Wiring, figure, mermaid, wiring_of
from course_utils.architecture.loadtest import LoadSpec, run_load
from course_utils.architecture.trace import Span, Trace, TraceLog

matplotlib.use("Agg")  # no display in tests; switching after pyplot loads is allowed for Agg


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture()
def pipeline():
    store, index = DeskStore(), VectorIndex()
    return Pipeline(InMemoryBus(), store, index, lambda tenant: None)


def _mermaid_topics(text: str) -> set[str]:
    return set(re.findall(r'\[\["([^"]+)"\]\]', text))


def _mermaid_groups(text: str) -> set[str]:
    return set(re.findall(r'^\s+g_\w+\["([^<"]+)<br/>', text, flags=re.M))


# ----- diagram -----------------------------------------------------------------------------------------


def test_mermaid_draws_exactly_the_wired_topics_groups_and_edges(pipeline):
    text = mermaid(pipeline)
    stages = pipeline.stages()
    assert text.startswith("flowchart LR\n")
    assert _mermaid_topics(text) == {topic for topic, _, _ in stages}
    assert _mermaid_groups(text) == {group for _, group, _ in stages}
    assert 'subgraph bus["event bus: in-process"]' in text
    # Each group consumes its topic and publishes the next stage's topic; the last publishes nothing.
    edges = re.findall(r"(\w+) -->\|publishes\| (\w+)", text)
    assert edges == [
        ("g_context", "t_context_ready"),
        ("g_model", "t_answer_streamed"),
        ("g_metering", "t_usage_recorded"),
    ]
    consumed = re.findall(r"(\w+) -->\|consumer group\| (\w+)", text)
    assert len(consumed) == len(stages)


def test_components_come_from_what_each_handler_uses(pipeline):
    w = wiring_of(pipeline)
    by_group = {s.group: s for s in w.stages}
    assert by_group["context"].uses == ("index", "store")  # retrieval, then the history
    assert "caller" in by_group["model"].uses and "store" in by_group["model"].uses
    assert by_group["observer"].uses == ()
    assert "DeskStore" in w.components["store"] and "VectorIndex" in w.components["index"]
    assert "controls" not in w.components  # this pipeline has no tenant controls
    text = mermaid(pipeline)
    assert "g_context -.-> c_index" in text and "g_observer -.->" not in text


def test_rewiring_the_pipeline_changes_the_diagram(pipeline):
    before = mermaid(pipeline)

    class Rewired(Pipeline):
        def stages(self):  # no observer; the model stage consumes under another group name
            (t1, g1, h1), (t2, _, h2), third, _ = super().stages()
            return [(t1, g1, h1), (t2, "answering", h2), third]

    rewired = Rewired(pipeline.bus, pipeline.store, pipeline.index, lambda tenant: None)
    after = mermaid(rewired)
    assert after != before
    assert _mermaid_groups(after) == {"context", "answering", "metering"}
    assert _mermaid_topics(after) == {"message.received", "context.ready", "answer.streamed"}
    assert "usage.recorded" not in after and "observer" not in after
    assert wiring_of(rewired).stages[-1].publishes is None


def test_the_bus_backend_is_read_from_the_bus(pipeline, redis_url):
    bus = RedisStreamsBus(redis_url, prefix="test:diagram")
    try:
        text = mermaid(Pipeline(bus, pipeline.store, pipeline.index, lambda tenant: None))
    finally:
        asyncio.run(bus.close())
    assert 'subgraph bus["event bus: redis-streams"]' in text


def test_a_pipeline_without_stages_is_refused(pipeline):
    class Empty(Pipeline):
        def stages(self):
            return []

    with pytest.raises(ValueError, match="no stages"):
        wiring_of(Empty(pipeline.bus, pipeline.store, pipeline.index, lambda tenant: None))


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_figure_labels_every_node_once_inside_the_canvas_without_overlaps(pipeline):
    fig = figure(pipeline)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [t for t in ax.texts if t.get_text()]
    labels = [t.get_text() for t in texts]
    w = wiring_of(pipeline)
    for topic in w.topics:
        assert labels.count(topic) == 1
    for s in w.stages:
        assert labels.count(f"{s.group}\n{s.handler}") == 1
    for label in w.components.values():
        assert labels.count(label) == 1
    assert "in-process" in ax.get_title()
    boxes = [t.get_window_extent(renderer) for t in texts]
    canvas = fig.bbox
    for box in boxes:
        assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1, "a label runs off the figure"
    clashes = [
        (labels[i], labels[j]) for i, j in itertools.combinations(range(len(boxes)), 2) if _overlaps(boxes[i], boxes[j])
    ]
    assert clashes == []


def test_figure_accepts_a_wiring_and_grows_with_the_stages(pipeline):
    w = wiring_of(pipeline)
    assert isinstance(w, Wiring)
    short = Wiring(w.bus, (dataclasses.replace(w.stages[0], publishes=None, uses=()),), {})
    assert figure(short).get_figwidth() < figure(w).get_figwidth()


# ----- hand-made traces ----------------------------------------------------------------------------------


def _trace(rid: str, conv: str, start: float, ttft: float, *, cost: float, error: str | None = None, hit: bool = False):
    model = {"first_token_at": start + ttft, "cost_usd": cost, "cache_hit": hit}
    if error:
        model["error"] = error
    spans = [
        Span("api", start, start),
        Span("context", start + 0.1, start + 0.3),
        Span("model", start + 0.5, start + ttft + 1.0, model),
        Span("metering", start + ttft + 1.2, start + ttft + 1.25),
    ]
    return Trace(rid, "acme", conv, spans)


@pytest.fixture()
def hand_log() -> TraceLog:
    return TraceLog(
        [
            _trace("r1", "c1", 0.0, 1.0, cost=0.01),
            _trace("r2", "c2", 1.0, 2.0, cost=0.03, hit=True),
            _trace("r3", "c1", 10.0, 3.0, cost=0.02, error="APIStatusError"),
            _trace("r4", "c3", 20.0, 4.0, cost=0.04),
        ]
    )


def test_series_bins_by_arrival_with_the_slo_definitions(hand_log):
    series = load_series(hand_log, bins=2)
    assert list(series["requests"]) == [2, 2]  # arrivals 0 and 1 | 10 and 20 (bin width 10 s)
    assert list(series["bin_start_s"]) == [0.0, 10.0]
    first, second = series.iloc[0], series.iloc[1]
    assert (first["p50_ttft_s"], first["p95_ttft_s"]) == pytest.approx((1.0, 2.0))  # nearest rank
    assert (second["p50_ttft_s"], second["p95_ttft_s"]) == pytest.approx((3.0, 4.0))
    assert (first["error_rate"], second["error_rate"]) == (0.0, 0.5)
    assert (first["cache_hit_rate"], second["cache_hit_rate"]) == (0.5, 0.0)
    assert first["cost_per_conversation_usd"] == pytest.approx(0.04 / 2)
    assert second["cost_per_conversation_usd"] == pytest.approx(0.06 / 2)


def test_one_bin_is_the_whole_run(hand_log):
    row = load_series(hand_log, bins=1).iloc[0]
    for name, value in hand_log.slo().items():
        assert row[name] == pytest.approx(value), name


def test_empty_bins_have_no_requests_and_no_figures(hand_log):
    series = load_series(hand_log, bins=4)  # arrivals 0, 1 | - | 10 | 20 -> bin 1 (5-10 s) is empty
    assert list(series["requests"]) == [2, 0, 1, 1]
    assert math.isnan(series["p95_ttft_s"][1])


def test_bad_input_gets_a_clear_error(hand_log):
    with pytest.raises(ValueError, match="at least 1"):
        load_series(hand_log, bins=0)
    with pytest.raises(ValueError, match="empty"):
        load_series(TraceLog())
    with pytest.raises(TypeError, match="TraceLog or a LoadResult"):
        load_series([1, 2, 3])
    with pytest.raises(ValueError, match="no spans"):
        waterfall(Trace("r0", "acme", "c0", []))


def test_waterfall_draws_a_bar_per_span_on_the_trace_clock(hand_log):
    trace = hand_log.traces[1]  # arrives at 1.0 s, first token 2 s later, ends at 4.25 s
    fig = waterfall(trace)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == len(trace.spans)
    model = bars[2]
    assert model.get_x() == pytest.approx(500.0) and model.get_width() == pytest.approx(2500.0)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["api", "context", "model", "metering"]
    assert "(ms)" in ax.get_xlabel()
    (ttft_line,) = ax.get_lines()
    assert ttft_line.get_xdata()[0] == pytest.approx(2000.0)
    assert "r2" in ax.get_title() and "3,250 ms end to end, 500 ms queued" in ax.get_title()


def test_takeaway_is_computed_from_the_data(hand_log):
    board = load_dashboard(hand_log, bins=2)
    assert isinstance(board, Dashboard)
    assert board.takeaway == (
        "p95 time to first token 4.00 s over 4 requests. Worst bin: arrivals at 10-20 s, p95 4.00 s. "
        "Errors 25.0%, cache hits 25%, $0.02500 per request."
    )
    one_bin = load_dashboard(TraceLog(hand_log.traces[:2]), bins=1)
    assert "Worst bin" not in one_bin.takeaway  # a single bin has no worst bin to name


def test_dashboard_panels_have_titles_units_and_the_series(hand_log):
    board = load_dashboard(hand_log, bins=2)
    axes = board.figure.axes
    assert [ax.get_title() for ax in axes] == [
        "time to first token",
        "errors and degraded answers",
        "cost per request",
        "cache hit rate",
    ]
    assert [ax.get_ylabel() for ax in axes] == ["seconds", "% of requests", "USD", "% of requests"]
    assert all("(s " in ax.get_xlabel() for ax in axes[2:])
    p95_line = axes[0].get_lines()[2]  # p50, p50 whole run, p95
    assert list(p95_line.get_ydata()) == pytest.approx([2.0, 4.0])
    errors = axes[1].get_lines()[0]
    assert list(errors.get_ydata()) == pytest.approx([0.0, 50.0])  # percent
    assert board.figure._suptitle.get_text().startswith("Load test: 4 requests")


def test_each_whole_run_line_lies_within_its_bins(hand_log):
    """The issue's cost panel drew a whole-run line above every point (cost per conversation over bins
    that split conversations). Per request, the whole run is a weighted mean of the bins: never outside."""
    board = load_dashboard(hand_log, bins=2)
    for ax in board.figure.axes:
        lines = ax.get_lines()
        for series, whole in zip(lines[0::2], lines[1::2]):
            points = [y for y in series.get_ydata() if not math.isnan(y)]
            assert min(points) - 1e-9 <= whole.get_ydata()[0] <= max(points) + 1e-9, ax.get_title()


# ----- a real, small load test on virtual time -------------------------------------------------------------


@pytest.fixture(scope="module")
def small_run():
    return run_load(LoadSpec(tenants=2, conversations=2, turns=2, outage_at=20.0, outage_s=20.0))


def test_dashboard_of_a_real_run_matches_the_run_slo(small_run):
    board = load_dashboard(small_run, bins=4)
    slo = small_run.traces.slo()
    assert board.overall == slo
    assert board.series["requests"].sum() == slo["requests"] == small_run.sent
    whole = load_series(small_run, bins=1).iloc[0]
    for name in ("p50_ttft_s", "p95_ttft_s", "error_rate", "cost_per_conversation_usd", "cache_hit_rate"):
        assert whole[name] == pytest.approx(slo[name]), name
    # With 8 requests the nearest-rank p95 is the slowest request: the bin holding it shows it.
    assert board.series["p95_ttft_s"].max() == pytest.approx(slo["p95_ttft_s"])
    assert f"p95 time to first token {slo['p95_ttft_s']:.2f} s over {small_run.sent} requests" in board.takeaway


def test_the_outage_is_shaded_and_the_fallback_panel_moves_with_it():
    result = run_load(LoadSpec(tenants=3, conversations=2, turns=3, outage_at=10.0, outage_s=60.0, ramp_s=20.0))
    board = load_dashboard(result, bins=6)
    begin, end = board.outage
    assert begin == pytest.approx(result.started_at + 10.0 - min(t.start for t in result.traces.traces))
    assert end - begin == pytest.approx(60.0)
    during = board.series[board.series.bin_end_s > begin + 5]  # bins well inside the outage
    before = board.series[board.series.bin_end_s <= begin]
    assert (during.fallback_rate.dropna() > 0.5).all() and (before.fallback_rate.dropna() == 0).all()
    assert all("primary model down" in [t.get_text() for t in ax.get_legend().get_texts()] for ax in board.figure.axes)
    assert "arrived during the outage" in board.takeaway and "answered by the fallback model" in board.takeaway


def test_the_cache_panel_moves_when_users_repeat_common_questions():
    spec = LoadSpec(tenants=2, conversations=4, turns=2, cache=True, question_skew=1.5)
    slo = run_load(spec).traces.slo()
    assert 0 < slo["cache_hit_rate"] < 1
    assert run_load(LoadSpec(tenants=2, conversations=4, turns=2)).traces.slo()["cache_hit_rate"] == 0


def test_waterfall_of_a_real_request(small_run):
    trace = small_run.traces.traces[0]
    ax = waterfall(trace).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [s.stage for s in trace.spans]
    assert {"api", "model", "metering"} <= {s.stage for s in trace.spans}
    ends = [bar.get_x() + bar.get_width() for bar in ax.patches]
    assert max(ends) == pytest.approx(1000 * trace.total_s, rel=0.01)


def test_a_router_in_the_config_appears_in_the_diagram(pipeline):
    from course_utils.cost import CascadeRouter

    assert "router" not in wiring_of(pipeline).components
    config = PipelineConfig(router=CascadeRouter("claude-haiku-5-5", "claude-sonnet-5-5", ("account", "billing")))
    routed = Pipeline(pipeline.bus, pipeline.store, pipeline.index, lambda tenant: None, config=config)
    w = wiring_of(routed)
    assert "CascadeRouter" in w.components["router"]
    assert "router" in {s.group: s for s in w.stages}["model"].uses
    assert "g_model -.-> c_router" in mermaid(routed)
