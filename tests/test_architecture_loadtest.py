"""The end-to-end load test at a small size: SLO figures from what ran, on virtual time."""

from __future__ import annotations

import math

from course_utils.architecture.loadtest import LoadSpec, run_load


def test_flaky_load_with_a_primary_outage_loses_nothing_and_charges_once():
    spec = LoadSpec(tenants=3, conversations=2, turns=2, scenario="flaky", outage_at=10.0, outage_s=30.0)
    result = run_load(spec)
    slo = result.slo()
    assert result.sent == 3 * 2 * 2
    assert slo["lost_messages"] == 0 and slo["duplicate_charges"] == 0
    assert result.answered + result.refused == result.sent
    assert "claude-haiku-5-5" in slo["answered_by"]  # the outage sent traffic to the fallback
    assert 0 < slo["p50_ttft_s"] <= slo["p95_ttft_s"] < 60
    assert slo["cost_per_conversation_usd"] > 0
    assert not math.isnan(slo["worst_tenant_p95_over_median"])


def test_the_same_seed_gives_the_same_figures():
    spec = LoadSpec(tenants=2, conversations=1, turns=2, scenario="calm")
    first, second = run_load(spec).slo(), run_load(spec).slo()
    assert first == second


def test_one_idle_cycle_per_time_jump_gives_the_default_loops_figures(monkeypatch):
    """LOAD_NOOP_CYCLES = 1 saves CPU; the figures must be those of looptime's default (42)."""
    from course_utils.architecture import loadtest

    spec = LoadSpec(tenants=3, conversations=2, turns=2, scenario="flaky", outage_at=5.0, outage_s=20.0)
    fast = run_load(spec).slo()
    monkeypatch.setattr(loadtest, "LOAD_NOOP_CYCLES", 42)
    assert run_load(spec).slo() == fast


def test_progress_reports_each_answered_message_on_the_runs_clock():
    events = []
    spec = LoadSpec(tenants=2, conversations=1, turns=2, scenario="calm")
    result = run_load(spec, on_progress=events.append)
    assert [e.done for e in events] == [1, 2, 3, 4] and {e.total for e in events} == {4}
    run_clock = [e.elapsed_s for e in events]  # virtual seconds since the start of the run
    end_of_run = result.duration_s
    assert run_clock == sorted(run_clock) and run_clock[-1] <= end_of_run
    assert {e.latest for e in events} == {f"{t}-c0-{turn}" for t in ("acme", "globex") for turn in (0, 1)}


def test_worker_threads_that_run_late_do_not_move_the_figures(monkeypatch):
    """A saturated machine runs worker threads late: the figures must not see it (no thread in the run)."""
    import concurrent.futures.thread
    import time

    spec = LoadSpec(tenants=3, conversations=2, turns=2, scenario="flaky", outage_at=5.0, outage_s=20.0)
    idle = run_load(spec).slo()
    run = concurrent.futures.thread._WorkItem.run

    def late(self, *args):
        time.sleep(0.1)  # a real-time delay standing for the load; nothing asserts on time
        return run(self, *args)

    monkeypatch.setattr(concurrent.futures.thread._WorkItem, "run", late)
    assert run_load(spec).slo() == idle
