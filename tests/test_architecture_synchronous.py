"""The incident's synchronous design against the event-driven pipeline, under the same load (virtual time)."""

from __future__ import annotations

from course_utils.architecture.loadtest import LoadSpec, run_load
from course_utils.architecture.synchronous import run_synchronous_load

# Slow calls (10% held 40 s before the response starts), flaky faults, and a deploy at 15 s.
SPEC = LoadSpec(
    tenants=4,
    conversations=3,
    turns=3,
    think_s=5.0,
    ramp_s=20.0,
    scenario={"preset": "flaky", "slow_p": 0.1, "slow_s": 40.0},
    restart_at=15.0,
    model_consumers=3,
)


def test_the_synchronous_baseline_streams_times_out_and_keeps_keys_yet_loses_what_memory_held():
    """The baseline has the pipeline's streaming, response-start timeout and idempotency key: what it
    still loses is what process memory held across the deploy (histories, keys) and its backlog."""
    sync = run_synchronous_load(SPEC, web_workers=3, client_timeout_s=30.0)
    row = sync.slo()
    assert sync.sent == 4 * 3 * 3
    assert row["histories_lost"] > 0  # conversations that went on after the deploy, without their history
    assert row["peak_queued"] > 0  # requests waited for a handler slot, holding their connections
    # Streaming and the 10 s response-start timeout: no first token waits for a 40 s hold.
    assert row["p95_ttft_s"] < 30.0
    assert run_synchronous_load(SPEC, web_workers=3, client_timeout_s=30.0).slo() == row  # deterministic


def test_a_retry_with_the_same_key_joins_the_running_handler_until_a_deploy_forgets_the_key():
    """Without a deploy the baseline's idempotency key holds: no duplicate charge. The deploy's new process
    has no memory of the keys, so only then can a retry be billed again."""
    calm = LoadSpec(**{**SPEC.__dict__, "restart_at": None})
    assert run_synchronous_load(calm, web_workers=3, client_timeout_s=5.0).slo()["duplicate_charges"] == 0
    assert run_synchronous_load(calm, web_workers=3, client_timeout_s=5.0).retries > 0  # the key was exercised


def test_the_event_driven_pipeline_under_the_same_load_loses_nothing_and_charges_once():
    result = run_load(SPEC)
    row = result.slo()
    assert result.restarts == 1
    assert row["lost_messages"] == 0 and row["duplicate_charges"] == 0
    assert row["histories_lost"] == 0  # measured from each turn's context span, not assumed
    assert result.answered + result.refused == result.sent == 4 * 3 * 3
    # A held response is abandoned after response_timeout_s (10 s) and retried: no answer waits 40 s.
    assert row["p95_ttft_s"] < 30.0


def test_histories_lost_is_measured_a_store_that_forgets_is_caught(monkeypatch):
    """The event-driven figure is a measurement: a store whose history reads come back empty is counted."""
    from course_utils.architecture.store import DeskStore

    real = DeskStore.history

    def forgetful(self, tenant, conversation_id, *, upto=None):
        got = real(self, tenant, conversation_id, upto=upto)
        return got[-1:] if upto is not None else []

    monkeypatch.setattr(DeskStore, "history", forgetful)
    assert run_load(SPEC).slo()["histories_lost"] > 0


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
