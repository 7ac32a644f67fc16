"""The incident's synchronous design against the event-driven pipeline, under the same load (virtual time)."""

from __future__ import annotations

from course_utils.architecture.loadtest import LoadSpec, run_load
from course_utils.architecture.synchronous import run_synchronous_load

# Slow calls (10% held 40 s before the response starts), flaky faults, and a deploy at 40 s.
SPEC = LoadSpec(
    tenants=4,
    conversations=3,
    turns=3,
    think_s=5.0,
    ramp_s=20.0,
    scenario={"preset": "flaky", "slow_p": 0.1, "slow_s": 40.0},
    restart_at=40.0,
    model_consumers=3,
)


def test_the_synchronous_design_bills_retries_twice_and_forgets_conversations_on_a_deploy():
    sync = run_synchronous_load(SPEC, web_workers=3, client_timeout_s=30.0)
    row = sync.slo()
    assert sync.sent == 4 * 3 * 3
    assert sync.retries > 0
    assert row["duplicate_charges"] > 0  # a timed-out request's handler ran on and billed, then its retry did
    assert row["histories_lost"] > 0  # conversations that went on after the deploy, without their history
    assert row["p95_ttft_s"] > 30.0  # no streaming: the first token comes with the last, after the queue
    assert run_synchronous_load(SPEC, web_workers=3, client_timeout_s=30.0).slo() == row  # deterministic


def test_the_event_driven_pipeline_under_the_same_load_loses_nothing_and_charges_once():
    result = run_load(SPEC)
    row = result.slo()
    assert result.restarts == 1
    assert row["lost_messages"] == 0 and row["duplicate_charges"] == 0
    assert result.answered + result.refused == result.sent == 4 * 3 * 3
    # A held response is abandoned after response_timeout_s (10 s) and retried: no answer waits 40 s.
    assert row["p95_ttft_s"] < 30.0


def test_consumers_take_one_event_at_a_time_so_a_queue_behind_slow_calls_is_not_redelivered():
    """With prefetching, events queued behind slow streams outlived the idle timeout without a lease and
    a second consumer took them: two model calls for one message (12 of 200 before the fix)."""
    spec = LoadSpec(
        tenants=6,
        conversations=3,
        turns=3,
        think_s=2.0,
        ramp_s=5.0,
        scenario={"preset": "calm", "slow_p": 0.3, "slow_s": 40.0},
        model_consumers=2,
    )
    result = run_load(spec)
    assert result.slo()["duplicate_charges"] == 0
    assert result.billed_calls == result.billed_messages
