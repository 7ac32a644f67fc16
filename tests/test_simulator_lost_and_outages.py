"""Lost responses and per-model outages (issue 16's simulator support), at HTTP level and through the
SDK on virtual time.

A lost response is work the provider did and billed that the client never got: the connection drops
after completion (``lost_response``), or the answer is held ``late_s`` past a client's read timeout
(``late_response``). The ledger marks both ``delivered`` False with their full cost, so a notebook
can count provider charges per logical operation. A per-model outage fails one model's requests for
a window of simulated time while the others work; windows follow the simulator's one clock.
"""

from __future__ import annotations

import asyncio

import anthropic
import httpx2
import pytest

from _wait import wait_until

from course_utils.clock import run_virtual
from course_utils.mock_provider.faults import SCENARIOS, Outage, Scenario
from course_utils.mock_provider.ratelimit import RateLimits
from course_utils.mock_provider.server import mock_server

HAIKU = "claude-haiku-5-5"
SONNET = "claude-sonnet-5-5"
ASK = [{"role": "user", "content": "Write a short report on tea exports."}]
LOST = {"x-mock-fault": "lost_response"}
LATE = {"x-mock-fault": "late_response"}


def _now() -> float:
    return asyncio.get_running_loop().time()


def _billed_undelivered(df):
    return df[(df["cost_usd"] > 0) & ~df["delivered"]]


# ----- the lost response, through the SDK on virtual time ----------------------------------------
def test_a_lost_response_is_billed_and_the_sdk_sees_a_connection_error(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def go() -> float:
        c = srv.async_client(max_retries=0)
        t0 = _now()
        with pytest.raises(anthropic.APIConnectionError) as err:
            await c.messages.create(model=HAIKU, max_tokens=100, messages=ASK, extra_headers=LOST)
        assert not isinstance(err.value, anthropic.APITimeoutError)
        return _now() - t0

    waited = run_virtual(go())
    row = srv.ledger().iloc[-1]
    assert (row["status"], row["fault"], bool(row["delivered"]), bool(row["disconnected"])) == (
        200,
        "lost_response",
        False,
        True,
    )
    assert row["output_tokens"] > 1 and row["cost_usd"] > 0, "the provider did the whole work and billed it"
    assert waited >= row["latency_s"], "the connection drops only once the provider has finished"


def test_the_same_reply_delivered_costs_what_the_lost_one_cost(make_server):
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    c = srv.client(max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        c.messages.create(model=HAIKU, max_tokens=100, messages=ASK, extra_headers=LOST)
    reply = c.messages.create(model=HAIKU, max_tokens=100, messages=ASK)
    lost, ok = srv.ledger().iloc[0], srv.ledger().iloc[1]
    assert lost["output_tokens"] == ok["output_tokens"] == reply.usage.output_tokens
    assert lost["cost_usd"] == ok["cost_usd"] > 0
    assert [bool(x) for x in srv.ledger()["delivered"]] == [False, True]


def test_sdk_retries_of_lost_responses_are_each_billed(make_server):
    # The SDK retries connection errors (2 retries by default): one logical call, three provider charges.
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def go() -> None:
        c = srv.async_client()  # SDK defaults
        with pytest.raises(anthropic.APIConnectionError):
            await c.messages.create(model=HAIKU, max_tokens=100, messages=ASK, extra_headers=LOST)

    run_virtual(go())
    df = srv.ledger()
    assert len(df) == 3 and len(_billed_undelivered(df)) == 3
    assert df["cost_usd"].nunique() == 1 and df["cost_usd"].sum() == pytest.approx(3 * df["cost_usd"].iloc[0])


def test_a_late_response_trips_the_client_read_timeout_after_billing(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    srv.set_scenario({"preset": "calm", "late_s": 30})

    async def go() -> tuple[float, float, str]:
        short = srv.async_client(max_retries=0, timeout=5.0)
        t0 = _now()
        with pytest.raises(anthropic.APITimeoutError):
            await short.messages.create(model=HAIKU, max_tokens=100, messages=ASK, extra_headers=LATE)
        gave_up = _now() - t0
        patient = srv.async_client(max_retries=0, timeout=60.0)
        t1 = _now()
        reply = await patient.messages.create(model=HAIKU, max_tokens=100, messages=ASK, extra_headers=LATE)
        return gave_up, _now() - t1, "".join(b.text for b in reply.content if b.type == "text")

    gave_up, waited, text = run_virtual(go())
    first, second = srv.ledger().iloc[0], srv.ledger().iloc[1]
    assert 5.0 <= gave_up < 5.5, "the client's own timeout fires (plus connection set-up and transit)"
    assert (first["status"], first["fault"], bool(first["delivered"])) == (200, "late_response", False)
    assert first["cost_usd"] > 0 and first["output_tokens"] > 1
    assert 30.0 <= waited - second["latency_s"] < 31.0, "the answer comes late_s after the provider finished"
    assert bool(second["delivered"]) and text
    assert second["cost_usd"] == first["cost_usd"]


def test_a_late_streamed_response_arrives_whole_to_a_patient_client(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    srv.set_scenario({"preset": "calm", "late_s": 3})

    async def go() -> str:
        c = srv.async_client(max_retries=0, timeout=60.0)
        async with c.messages.stream(model=HAIKU, max_tokens=100, messages=ASK, extra_headers=LATE) as s:
            return "".join([t async for t in s.text_stream])

    text = run_virtual(go())
    plain = srv.client().messages.create(model=HAIKU, max_tokens=100, messages=ASK)
    assert text == "".join(b.text for b in plain.content if b.type == "text")
    assert bool(srv.ledger().iloc[0]["delivered"]) and srv.ledger().iloc[0]["fault"] == "late_response"


def test_a_lost_stream_drops_the_connection(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def go() -> None:
        c = srv.async_client(max_retries=0)
        with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
            async with c.messages.stream(model=HAIKU, max_tokens=100, messages=ASK, extra_headers=LOST) as s:
                async for _ in s.text_stream:
                    pass

    run_virtual(go())
    assert len(_billed_undelivered(srv.ledger())) == 1


def test_the_slow_lossy_scenario_loses_billed_responses_reproducibly(make_server):
    def run(seed: int) -> list[tuple[str | None, bool]]:
        srv = make_server(seed=seed, time_scale=0, scenario="slow-lossy", rate_limit_tier="unlimited")
        c = srv.client(max_retries=0, timeout=10.0)
        for i in range(200):
            try:
                c.messages.create(model=HAIKU, max_tokens=20, messages=[{"role": "user", "content": f"report {i}"}])
            except (anthropic.APIConnectionError, anthropic.APIStatusError):
                pass
        df = srv.ledger()
        return list(zip(df["fault"].where(df["fault"].notna(), None), df["delivered"].astype(bool)))

    first = run(0)
    kinds = [k for k, _ in first]
    assert 3 <= kinds.count("lost_response") <= 20 and 8 <= kinds.count("late_response") <= 35
    assert all(not delivered for k, delivered in first if k in ("lost_response", "late_response"))
    assert run(0) == first and run(1) != first


def test_a_client_timeout_mid_generation_still_costs_the_whole_reply(make_server):
    # The provider does not stop when a non-streaming client gives up: the reply is finished and billed.
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    essay = [{"role": "user", "content": "Write a long essay about the history of rivers and trade."}]

    async def go() -> float:
        c = srv.async_client(max_retries=0, timeout=1.0)
        t0 = _now()
        with pytest.raises(anthropic.APITimeoutError):
            await c.messages.create(model=HAIKU, max_tokens=1500, messages=essay)
        return _now() - t0

    gave_up = run_virtual(go())
    full = srv.client().messages.create(model=HAIKU, max_tokens=1500, messages=essay)
    cut, whole = srv.ledger().iloc[0], srv.ledger().iloc[1]
    assert gave_up < 1.5 < cut["latency_s"], "the client left long before the provider finished"
    assert (cut["status"], bool(cut["delivered"]), bool(cut["disconnected"])) == (200, False, True)
    assert cut["output_tokens"] == whole["output_tokens"] == full.usage.output_tokens
    assert cut["cost_usd"] == whole["cost_usd"] > 0
    assert cut["latency_s"] == pytest.approx(whole["latency_s"]), "finished when the whole reply was done"


def test_a_timeout_fault_that_the_client_gives_up_on_is_recorded_unbilled(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def go() -> None:
        with pytest.raises(anthropic.APITimeoutError):
            await srv.async_client(max_retries=0, timeout=2.0).messages.create(
                model=HAIKU, max_tokens=20, messages=ASK, extra_headers={"x-mock-fault": "timeout"}
            )

    run_virtual(go())
    row = srv.ledger().iloc[0]
    assert (row["status"], row["fault"], row["cost_usd"], bool(row["delivered"])) == (499, "timeout", 0, False)


# ----- the lost response at HTTP level -------------------------------------------------------------
def test_lost_and_late_responses_over_http():
    with mock_server(seed=0, time_scale=0, rate_limit_tier="unlimited") as srv:
        headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
        body = {"model": HAIKU, "max_tokens": 50, "messages": ASK}
        with httpx2.Client(base_url=srv.base_url, timeout=5.0) as http:
            with pytest.raises(httpx2.RemoteProtocolError):
                http.post("/v1/messages", json=body, headers={**headers, **LOST})
            assert http.post("/mock/scenario", json={"preset": "calm", "late_s": 2}).status_code == 200
        with pytest.raises(anthropic.APITimeoutError):
            srv.client(max_retries=0, timeout=0.5).messages.create(
                model=HAIKU, max_tokens=50, messages=ASK, extra_headers=LATE
            )
        rows = httpx2.get(srv.base_url + "/mock/requests").json()
        usage = httpx2.get(srv.base_url + "/mock/usage").json()
    lost, late = rows[0], rows[1]
    assert [(u["requests"], u["lost"]) for u in usage] == [(1, 1), (1, 1)]  # two keys: "k" and the SDK's
    assert sum(float(u["lost_cost_usd"]) for u in usage) == pytest.approx(
        float(lost["cost_usd"]) + float(late["cost_usd"])
    )
    assert (lost["status"], lost["delivered"], lost["fault"]) == (200, False, "lost_response")
    assert (late["status"], late["delivered"], late["fault"]) == (200, False, "late_response")
    assert float(lost["cost_usd"]) > 0 and float(late["cost_usd"]) > 0


def test_a_client_timeout_mid_generation_over_http_is_billed_undelivered():
    essay = [{"role": "user", "content": "Write a long essay about the history of rivers and trade."}]
    with mock_server(seed=0, time_scale=0.5, rate_limit_tier="unlimited") as srv:
        with pytest.raises(anthropic.APITimeoutError):
            srv.client(max_retries=0, timeout=0.3).messages.create(model=HAIKU, max_tokens=1500, messages=essay)
        # The provider finishes on its own time (a few seconds at this scale), in the server's thread.
        wait_until(lambda: len(srv.ledger()), timeout=60, what="the provider to record the answer the client left")
        row = srv.ledger().iloc[0]
    assert (row["status"], bool(row["delivered"]), bool(row["disconnected"])) == (200, False, True)
    assert row["cost_usd"] > 0 and row["latency_s"] > 0.3


# ----- per-model outages ---------------------------------------------------------------------------
async def _status(client, model: str) -> int | str:
    try:
        await client.messages.create(model=model, max_tokens=5, messages=ASK)
        return 200
    except anthropic.APIStatusError as e:
        return e.status_code
    except anthropic.APIConnectionError as e:
        return type(e).__name__


def test_a_model_outage_ends_at_the_stated_virtual_time_while_other_models_work(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def go() -> list[tuple[float, int | str, int | str]]:
        c = srv.async_client(max_retries=0)
        await asyncio.sleep(7)  # the window starts when it is declared, whatever time it is
        window = srv.model_outage(SONNET, 30.0)
        assert window.duration_s == 30.0 and window.models == (SONNET,)
        t0, seen = _now(), []
        for at in (0.0, 10.0, 29.5, 30.5, 40.0):
            await asyncio.sleep(max(0.0, t0 + at - _now()))
            seen.append((at, await _status(c, SONNET), await _status(c, HAIKU)))
        return seen

    seen = run_virtual(go())
    assert [(at, s) for at, s, _ in seen] == [(0.0, 529), (10.0, 529), (29.5, 529), (30.5, 200), (40.0, 200)]
    assert all(h == 200 for *_, h in seen), "the other models keep working"
    sonnet = srv.ledger().query("model == @SONNET")
    assert list(sonnet["error_type"][:3]) == ["overloaded_error"] * 3


def test_the_model_outage_preset_and_a_custom_outage_kind(make_server):
    srv = make_server(seed=0, time_scale=1.0, scenario="model-outage", rate_limit_tier="unlimited")
    start, end = SCENARIOS["model-outage"].outages[0].start_s, SCENARIOS["model-outage"].outages[0].end_s

    async def go() -> list[int | str]:
        c = srv.async_client(max_retries=0)
        t0 = _now()
        out = [await _status(c, SONNET)]
        await asyncio.sleep(t0 + start + 1 - _now())
        out += [await _status(c, SONNET), await _status(c, HAIKU), await _status(c, "claude-opus-5-5")]
        await asyncio.sleep(t0 + end + 1 - _now())
        out.append(await _status(c, SONNET))
        srv.model_outage([HAIKU], 5.0, kind="api_error")
        out.append(await _status(c, HAIKU))
        srv.model_outage(SONNET, 5.0, kind="disconnect")
        out.append(await _status(c, SONNET))
        return out

    assert run_virtual(go()) == [200, 529, 200, 200, 200, 500, "APIConnectionError"]


def test_the_sdk_retrying_through_a_short_outage_succeeds_after_it(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")

    async def go() -> float:
        srv.model_outage(SONNET, 1.0)
        t0 = _now()
        reply = await srv.async_client(max_retries=5).messages.create(model=SONNET, max_tokens=5, messages=ASK)
        assert reply.content
        return _now() - t0

    assert run_virtual(go()) >= 1.0
    statuses = list(srv.ledger()["status"])
    assert statuses[-1] == 200 and set(statuses[:-1]) == {529}


def test_outage_windows_scale_with_the_simulated_clock(make_server):
    # At time_scale 0.1, 30 simulated seconds pass in 3 virtual ones.
    srv = make_server(seed=0, time_scale=0.1, rate_limit_tier="unlimited")

    async def go() -> list[int | str]:
        c = srv.async_client(max_retries=0)
        srv.model_outage(SONNET, 30.0)
        t0 = _now()
        first = await _status(c, SONNET)
        await asyncio.sleep(t0 + 3.1 - _now())
        return [first, await _status(c, SONNET)]

    assert run_virtual(go()) == [529, 200]


def test_reset_ends_added_outages(make_server):
    srv = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited")
    c = srv.client(max_retries=0)
    srv.model_outage(SONNET, 600.0)
    with pytest.raises(anthropic.InternalServerError):
        c.messages.create(model=SONNET, max_tokens=5, messages=ASK)
    srv.reset()
    assert c.messages.create(model=SONNET, max_tokens=5, messages=ASK).content


def test_per_model_outage_over_http():
    scenario = {
        "name": "sonnet-down",
        "outages": [{"start_s": 0, "duration_s": 600, "models": [SONNET], "kind": "api_error"}],
    }
    with mock_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited") as srv:
        with httpx2.Client(base_url=srv.base_url) as http:
            got = http.post("/mock/scenario", json=scenario).json()
            assert got["status"]["outage_active"] is True
            assert got["status"]["open_outages"] == [
                {"start_s": 0.0, "duration_s": 600.0, "models": [SONNET], "kind": "api_error"}
            ]
            bad = http.post("/mock/scenario", json={"outages": [{"start_s": 0, "duration_s": 5, "kind": "nope"}]})
            assert bad.status_code == 400 and "nope" in bad.json()["error"]["message"]
        c = srv.client(max_retries=0)
        with pytest.raises(anthropic.InternalServerError):
            c.messages.create(model=SONNET, max_tokens=5, messages=ASK)
        assert c.messages.create(model=HAIKU, max_tokens=5, messages=ASK).content


def test_outage_declarations():
    o = Outage.parse({"start_s": 1, "duration_s": 2, "models": [SONNET], "kind": "timeout_error"})
    assert (o.start_s, o.end_s, o.models, o.kind) == (1.0, 3.0, (SONNET,), "timeout_error")
    assert o.strikes(1.0, SONNET) and o.strikes(2.99, SONNET)
    assert not o.strikes(3.0, SONNET) and not o.strikes(2.0, HAIKU) and not o.strikes(0.5, SONNET)
    assert Outage.parse((0, 5)) == Outage(0.0, 5.0) and Outage(0, 5).strikes(1, HAIKU)  # every model
    assert Outage(0, 1, models=SONNET).models == (SONNET,)
    sc = Scenario(outages=((0, 1), {"start_s": 2, "duration_s": 3, "models": [HAIKU]}))
    assert Scenario.from_dict(sc.to_dict()) == sc
    for bad in (
        {"start_s": 0, "duration_s": 0},
        {"start_s": -1, "duration_s": 1},
        {"start_s": 0, "duration_s": 1, "kind": "rate_limit"},
        {"start_s": 0, "duration_s": 1, "who": 1},
    ):
        with pytest.raises(ValueError):
            Scenario.from_dict({"outages": [bad]})


# ----- tenants -------------------------------------------------------------------------------------
def test_a_tenant_has_its_own_key_clients_ledger_and_limits(make_server):
    srv = make_server(seed=0, time_scale=0)
    acme = srv.tenant("acme", tier=RateLimits(2, 10**9, 10**9, burst_s=60.0))
    globex = srv.tenant("globex", tier="unlimited")
    assert acme.api_key != globex.api_key and srv.tenant("acme").api_key == acme.api_key

    a, g = acme.client(max_retries=0), globex.client(max_retries=0)
    for _ in range(2):
        a.messages.create(model=HAIKU, max_tokens=5, messages=ASK)
    with pytest.raises(anthropic.RateLimitError):
        a.messages.create(model=HAIKU, max_tokens=5, messages=ASK)
    for _ in range(5):
        g.messages.create(model=HAIKU, max_tokens=5, messages=ASK)
    srv.client().messages.create(model=HAIKU, max_tokens=5, messages=ASK)

    assert list(acme.ledger()["status"]) == [200, 200, 429]
    assert list(globex.ledger()["status"]) == [200] * 5
    assert set(acme.ledger()["api_key"]) == {acme.api_key} and list(acme.ledger().index) == [0, 1, 2]
    assert len(srv.ledger()) == 9


def test_a_tenant_async_client_and_a_tenant_without_a_tier(make_server):
    srv = make_server(seed=0, time_scale=0)
    t = srv.tenant("initech")

    async def go() -> None:
        await t.async_client(max_retries=0).messages.create(model=HAIKU, max_tokens=5, messages=ASK)

    run_virtual(go())
    assert len(t.ledger()) == 1 and t.ledger()["api_key"][0] == t.api_key
    for bad in ("", "has space", "x" * 65, "-lead", None):
        with pytest.raises(ValueError):
            srv.tenant(bad)  # type: ignore[arg-type]


def test_a_tenant_on_a_served_simulator():
    with mock_server(seed=0, time_scale=0) as srv:
        t = srv.tenant("acme", tier="tier-1")
        t.client(max_retries=0).messages.create(model=HAIKU, max_tokens=5, messages=ASK)
        srv.client().messages.create(model=HAIKU, max_tokens=5, messages=ASK)
        assert list(t.ledger()["api_key"]) == [t.api_key]
        raw = t.client().messages.with_raw_response.create(model=HAIKU, max_tokens=5, messages=ASK)
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "50"  # tier-1's RPM
