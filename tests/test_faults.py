"""Fault injection: presets, forced faults, reproducible decisions, outages on simulated time."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from course_utils.clock import VirtualClock
from course_utils.mock_provider.errors import (
    BillingError,
    GatewayTimeout,
    InternalError,
    Overloaded,
    PermissionDenied,
    RateLimited,
    SpendLimitReached,
)
from course_utils.mock_provider.config import SimulatorConfig
from course_utils.mock_provider.faults import (
    FAULT_KINDS,
    SCENARIOS,
    TIMEOUT_DELAY_S,
    Burst,
    Fault,
    FaultInjector,
    InvalidFault,
    Outage,
    Scenario,
    get_scenario,
    validate_forced,
)


def _injector(scenario="calm", *, seed=0, clock=None, time_scale=1.0):
    """A fault injector reading its own settings (a simulator passes its shared SimulatorConfig)."""
    kw = {} if clock is None else {"clock": clock}
    return FaultInjector(scenario, SimulatorConfig(seed=seed, time_scale=time_scale), **kw)


def _timeline(inj: FaultInjector, keys: list[str]) -> list[tuple[str, int | None] | None]:
    out = []
    for key in keys:
        f = inj.decide(key)
        out.append(None if f is None else (f.kind, f.after_tokens))
    return out


# ----- presets -------------------------------------------------------------------------------------
def test_presets_have_exact_names():
    assert list(SCENARIOS) == ["calm", "flaky", "overloaded", "outage", "rate-limited", "slow-lossy", "model-outage"]
    for name, sc in SCENARIOS.items():
        assert sc.name == name and sc.description
        assert get_scenario(name) is sc


def test_unknown_scenario_lists_the_presets():
    with pytest.raises(ValueError) as err:
        get_scenario("chaos")
    for name in SCENARIOS:
        assert name in str(err.value)


def test_calm_never_faults(clock):
    inj = _injector("calm", seed=1, clock=clock)
    assert all(inj.decide(f"k{i}") is None for i in range(500))


# ----- forced faults -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind,status,error_type,error_cls",
    [
        ("overloaded", 529, "overloaded_error", Overloaded),
        ("api_error", 500, "api_error", InternalError),
        ("rate_limit", 429, "rate_limit_error", RateLimited),
        ("stream_error", 529, "overloaded_error", Overloaded),
        ("timeout", None, None, None),
        ("disconnect", None, None, None),
        ("timeout_error", 504, "timeout_error", GatewayTimeout),
        ("billing_error", 402, "billing_error", BillingError),
        ("permission_error", 403, "permission_error", PermissionDenied),
        ("spend_limit", 429, "rate_limit_error", SpendLimitReached),
    ],
)
def test_forced_header_maps_to_the_right_fault(clock, kind, status, error_type, error_cls):
    inj = _injector("calm", clock=clock)
    f = inj.decide("body", forced=kind)
    assert isinstance(f, Fault)
    assert (f.kind, f.status, f.error_type, f.cause) == (kind, status, error_type, "forced")
    err = f.error()
    if error_cls is None:
        assert err is None
    else:
        assert isinstance(err, error_cls) and err.status == status and err.type == error_type


def test_forced_fault_details(clock):
    inj = _injector("calm", clock=clock)
    rl = inj.decide("b", forced="rate_limit")
    assert rl.retry_after == 1 and rl.headers == {"retry-after": "1"}
    assert rl.error().headers["retry-after"] == "1"
    timeout = inj.decide("b", forced="timeout")
    assert timeout.delay_s == TIMEOUT_DELAY_S and timeout.delay_s > 600  # past the SDK's default timeout
    for kind in ("disconnect", "stream_error"):
        f = inj.decide("b", forced=kind)
        assert f.after_tokens is not None and 3 <= f.after_tokens <= 30
        plain = f.for_non_streaming()
        assert plain.after_tokens is None and plain.kind == kind
    assert inj.decide("b", forced="stream_error").for_non_streaming().error().status == 529


@pytest.mark.parametrize("value", ["", "Overloaded", "500", "rate-limit", "timeout,disconnect"])
def test_invalid_forced_value(clock, value):
    inj = _injector("calm", clock=clock)
    with pytest.raises(InvalidFault) as err:
        inj.decide("b", forced=value)
    assert isinstance(err.value, ValueError)
    for kind in FAULT_KINDS:
        assert kind in str(err.value)


def test_validate_forced():
    assert validate_forced(None) is None
    assert validate_forced(" disconnect ") == "disconnect"
    assert set(FAULT_KINDS) == {
        "overloaded",
        "api_error",
        "rate_limit",
        "timeout",
        "disconnect",
        "stream_error",
        "timeout_error",
        "billing_error",
        "permission_error",
        "spend_limit",
        "user_spend_limit",
        "workspace_spend_limit",
        "conflict_error",
        "lost_response",
        "late_response",
    }
    assert "slow" not in FAULT_KINDS  # scenarios only


def test_spend_limit_fault_has_the_documented_shape(clock):
    """https://platform.claude.com/docs/api/rate-limits: rate_limit_error, details.error_code, no retry-after."""
    err = _injector("calm", clock=clock).decide("b", forced="spend_limit").error()
    body = err.body("req_1")
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}
    assert body["error"]["message"].startswith("You have reached your API usage limits")
    assert "retry-after" not in err.headers and err.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("kind", ["spend_limit", "user_spend_limit", "workspace_spend_limit"])
def test_a_spend_cap_dates_its_regain_from_the_injectors_clock(kind):
    """The regain date follows the injected clock (virtual time on a virtual loop), not the machine's."""
    # 2031-03-22T12:00:00Z: access returns on the first of the next month, whatever today is.
    inj = _injector("calm", clock=VirtualClock(start=1_931_947_200.0))
    err = inj.decide("b", forced=kind).error()
    assert "2031-04-01 at 00:00 UTC" in err.body("req_1")["error"]["message"]


def test_a_fault_kind_is_one_declaration():
    """Every kind's behaviour comes from FAULT_SPECS: forceable kinds, drawn kinds and Scenario fields agree."""
    from dataclasses import fields as dc_fields

    from course_utils.mock_provider.faults import FAULT_SPECS

    assert FAULT_KINDS == tuple(k for k, spec in FAULT_SPECS.items() if spec.forceable)
    scenario_fields = {f.name for f in dc_fields(Scenario)}
    for spec in FAULT_SPECS.values():
        assert spec.probability is None or spec.probability in scenario_fields
        assert spec.hold_from is None or spec.hold_from in scenario_fields


# ----- determinism ---------------------------------------------------------------------------------
def test_same_seed_same_requests_same_faults(clock):
    keys = [f"body-{i % 37}" for i in range(400)]  # repeats, as retries of the same body are
    a = _timeline(_injector("flaky", seed=7, clock=clock), keys)
    b = _timeline(_injector("flaky", seed=7, clock=VirtualClock(start=5.0)), keys)
    c = _timeline(_injector("flaky", seed=8, clock=clock), keys)
    assert a == b
    assert a != c
    assert any(a)


def test_a_retry_of_the_same_body_draws_afresh(clock):
    inj = _injector("overloaded", seed=0, clock=clock)
    for i in range(200):
        if inj.decide(f"body-{i}") is not None:
            retries = [inj.decide(f"body-{i}") for _ in range(20)]
            assert None in retries  # a retry can succeed
            return
    pytest.fail("no fault in 200 requests at 40%")


def test_set_scenario_restarts_counts(clock):
    keys = [f"k{i % 5}" for i in range(100)]
    inj = _injector("flaky", seed=3, clock=clock)
    first = _timeline(inj, keys)
    inj.set_scenario("flaky")
    assert _timeline(inj, keys) == first


# ----- probabilities -------------------------------------------------------------------------------
def test_probabilities_are_roughly_honoured(clock):
    inj = _injector("flaky", seed=11, clock=clock)
    kinds = Counter(f.kind if f else None for f in (inj.decide(f"req-{i}") for i in range(2000)))
    assert 0.04 * 2000 < kinds["overloaded"] < 0.08 * 2000
    assert 0.025 * 2000 < kinds["api_error"] < 0.055 * 2000
    assert 0.015 * 2000 < kinds["stream_error"] < 0.045 * 2000
    assert 0.10 * 2000 < 2000 - kinds[None] < 0.16 * 2000

    inj = _injector("overloaded", seed=11, clock=clock)
    n = sum(inj.decide(f"req-{i}") is not None for i in range(2000))
    assert 0.36 * 2000 < n < 0.44 * 2000


def test_slow_responses(clock):
    inj = _injector(Scenario(slow_p=0.5, slow_s=45), seed=0, clock=clock)
    slow = [f for f in (inj.decide(f"r{i}") for i in range(400)) if f is not None]
    assert 150 < len(slow) < 250
    assert all(f.kind == "slow" and f.delay_s == 45 and f.error() is None for f in slow)


# ----- outages -------------------------------------------------------------------------------------
def test_outage_opens_and_closes_on_simulated_time(clock):
    inj = _injector("outage", seed=0, clock=clock, time_scale=0.1)  # 10 simulated s per real s
    assert inj.decide("a") is None
    clock.advance_sync(0.15)  # 1.5 simulated seconds
    assert not inj.outage_active() and inj.decide("a") is None
    clock.advance_sync(0.1)  # 2.5 s: inside the 2-12 s window
    f = inj.decide("a")
    assert f is not None and (f.kind, f.status, f.cause) == ("overloaded", 529, "outage")
    assert inj.outage_active()
    assert inj.status()["outage_active"] is True
    clock.advance_sync(0.9)  # 11.5 s: still down, for every request
    assert all(inj.decide(f"k{i}") is not None for i in range(50))
    clock.advance_sync(0.1)  # 12.5 s: recovered
    assert not inj.outage_active() and inj.decide("a") is None
    assert inj.simulated_elapsed() == pytest.approx(12.5)


def test_outage_at_realistic_time_scale_and_reset_origin(clock):
    inj = _injector("outage", clock=clock, time_scale=1.0)
    clock.advance_sync(5)
    assert inj.outage_active()
    inj.set_scenario("outage")  # the outage clock starts again
    assert not inj.outage_active()
    clock.advance_sync(2)
    assert inj.outage_active()


def test_changing_time_scale_keeps_elapsed_simulated_time(clock):
    inj = _injector("outage", clock=clock, time_scale=1.0)
    clock.advance_sync(1)
    inj.rescale(0.1)
    clock.advance_sync(0.05)  # +0.5 simulated
    assert inj.simulated_elapsed() == pytest.approx(1.5)


def test_time_scale_zero_means_outages_are_already_over(clock):
    inj = _injector("outage", clock=clock, time_scale=0.0)
    assert not inj.outage_active()
    clock.advance_sync(3)
    assert inj.decide("a") is None


# ----- 429 bursts ----------------------------------------------------------------------------------
def test_rate_limited_bursts_by_window(clock):
    inj = _injector("rate-limited", seed=0, clock=clock)
    kinds = [(f.kind if f else None) for f in (inj.decide(f"r{i}") for i in range(60))]
    # Windows of 10; every 3rd window (requests 20-29 and 50-59) is refused.
    assert kinds[:20] == [None] * 20
    assert kinds[20:30] == ["rate_limit"] * 10
    assert kinds[30:50] == [None] * 20
    assert kinds[50:60] == ["rate_limit"] * 10


def test_burst_retry_after_is_correct(clock):
    inj = _injector(Scenario(burst=Burst(every=1, length=100, retry_after_s=3)), clock=clock)
    f = inj.decide("r")
    assert (f.kind, f.status, f.cause, f.retry_after) == ("rate_limit", 429, "burst", 3)
    clock.advance_sync(1.5)
    f = inj.decide("r")
    assert f.retry_after == 2  # 1.5 s left, rounded up
    assert f.error().headers == {"retry-after": "2"}
    clock.advance_sync(1.0)
    assert inj.decide("r") is not None  # still early
    clock.advance_sync(0.5)  # exactly when the first retry-after said
    assert inj.decide("r") is None
    assert inj.decide("r") is None  # and the burst stays lifted for the rest of its window


# ----- custom scenarios ----------------------------------------------------------------------------
def test_custom_scenario_from_dict(clock):
    data = {
        "name": "mine",
        "p_overloaded": 0.2,
        "p_api_error": 0.1,
        "outages": [[1, 2], {"start_s": 10, "duration_s": 5}],
        "burst": {"every": 2, "length": 5, "retry_after_s": 2},
        "after_tokens": [1, 2],
    }
    sc = Scenario.from_dict(json.loads(json.dumps(data)))
    assert sc.name == "mine" and sc.outages == (Outage(1.0, 2.0), Outage(10.0, 5.0))
    assert sc.burst == Burst(2, 5, 2) and sc.after_tokens == (1, 2)
    assert Scenario.from_dict(json.loads(json.dumps(sc.to_dict()))) == sc
    inj = _injector(sc, seed=0, clock=clock, time_scale=1.0)
    assert inj.scenario is sc


def test_from_dict_preset_override_and_errors():
    sc = Scenario.from_dict({"preset": "flaky", "p_overloaded": 0.3})
    assert sc.p_overloaded == 0.3 and sc.p_api_error == SCENARIOS["flaky"].p_api_error
    assert Scenario.from_dict({"preset": "outage"}) == SCENARIOS["outage"]
    with pytest.raises(ValueError, match="p_overloded"):
        Scenario.from_dict({"p_overloded": 0.1})
    with pytest.raises(ValueError, match="probabilit"):
        Scenario.from_dict({"p_overloaded": 0.7, "p_api_error": 0.5})
    with pytest.raises(ValueError):
        Scenario.from_dict({"p_overloaded": -0.1})
    with pytest.raises(ValueError):
        Scenario.from_dict({"outages": [[1, 0]]})
    with pytest.raises(ValueError, match="calm"):
        Scenario.from_dict({"preset": "nope"})
    with pytest.raises(ValueError):
        Scenario.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]
