"""Issue 13 item 3: thinking blocks per model (plain and streamed), and a reply scenario in which
refusals and pause_turn occur for a share of requests.

Docs: Haiku 5.5 what's new (https://platform.claude.com/docs/en/models/haiku-5-5/whats-new-haiku-5-5):
"Responses may start with a thinking block | Changed | Select content blocks by type, not position",
"Thinking text is omitted by default"; adaptive thinking guide: "At the default effort level (high),
Claude almost always thinks. At lower effort levels, Claude may skip thinking for simpler problems."
"""

from __future__ import annotations

import collections

import pytest

import course_utils
from course_utils.mock_provider.generation import text_deltas
from course_utils.mock_provider.inprocess import InProcessServer
from course_utils.mock_provider.skills import thinking as thinking_mod
from course_utils.mock_provider.skills.thinking import REPLY_SCENARIO_ENV

HAIKU, SONNET55, SONNET46 = "claude-haiku-5-5", "claude-sonnet-5-5", "claude-sonnet-4-6"
ASK = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]
# Long enough not to count as a "simpler problem" that medium effort skips thinking for.
LONG_ASK = [
    {
        "role": "user",
        "content": "Explain, for a curious twelve-year-old who likes experiments, why the sky "
        "is blue during the day but red and orange at sunset, what Rayleigh scattering has to do with it, "
        "why clouds are white, and one safe experiment with a glass of water and a torch that shows it.",
    }
]


@pytest.fixture()
def client():
    with InProcessServer(seed=0, time_scale=0, rate_limit_tier="unlimited") as server:
        yield server.client()


def _types(msg) -> list[str]:
    return [b.type for b in msg.content]


def test_plain_default_thinks_as_the_models_do_by_default_and_never_ends_early(client, monkeypatch):
    # Thinking on by default on the 5.x models (Opus 5 migration guide, the 5.5 model pages), subject
    # to effort: Sonnet 5.5 (high) thinks, Haiku 5.5 (medium) skips a simple request; older models don't.
    monkeypatch.delenv(REPLY_SCENARIO_ENV, raising=False)
    assert thinking_mod.THINKING_BY_DEFAULT is True
    assert _types(client.messages.create(model=HAIKU, max_tokens=200, messages=ASK)) == ["text"]
    assert _types(client.messages.create(model=HAIKU, max_tokens=400, messages=LONG_ASK))[0] == "thinking"
    assert _types(client.messages.create(model=SONNET46, max_tokens=200, messages=ASK)) == ["text"]
    first, again = (client.messages.create(model=SONNET55, max_tokens=200, messages=ASK) for _ in range(2))
    assert _types(first) == _types(again) == ["thinking", "text"]
    # Deterministic: the same request gets the same text and the same usage (the thinking's tokens included).
    assert course_utils.text_of(first) == course_utils.text_of(again)
    assert first.usage.output_tokens == again.usage.output_tokens
    assert (
        first.usage.output_tokens
        == len(text_deltas(course_utils.text_of(first))) + thinking_mod.OMITTED_THINKING_TOKENS
    )
    assert first.stop_reason == "end_turn"


def test_a_forced_tool_choice_does_not_think_by_default(client, monkeypatch):
    # "Tool use with thinking only supports tool_choice auto or none ... any or tool ... force tool use,
    # which is incompatible with extended thinking" (extended-thinking guide): a request that forces a
    # tool and says nothing about thinking gets the tool_use first, even under the hostile scenario.
    weather = {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    asks = [
        [{"role": "user", "content": f"What's the weather in {city}?"}] for city in ("Lisbon", "Oslo", "Lima", "Pune")
    ]
    monkeypatch.delenv(REPLY_SCENARIO_ENV, raising=False)
    answered = 0
    for scenario in ("plain", "hostile"):
        monkeypatch.setenv(REPLY_SCENARIO_ENV, scenario)
        for choice in ({"type": "tool", "name": "get_weather"}, {"type": "any"}):
            for ask in asks:
                forced = client.messages.create(
                    model=HAIKU, max_tokens=200, tools=[weather], tool_choice=choice, messages=ask
                )
                if forced.stop_reason in ("refusal", "pause_turn"):  # hostile's rare endings
                    continue
                answered += 1
                assert _types(forced) == ["tool_use"], (scenario, choice, ask)
    assert answered >= 12  # all 8 plain ones, and most hostile ones
    monkeypatch.setenv(REPLY_SCENARIO_ENV, "plain")
    auto = client.messages.create(model=HAIKU, max_tokens=200, tools=[weather], messages=asks[0])
    assert _types(auto)[0] == "thinking"  # with tools, not a "simpler problem": medium effort thinks


def test_realistic_scenario_5_5_models_start_with_omitted_thinking_older_ones_do_not(client, monkeypatch):
    monkeypatch.setenv(REPLY_SCENARIO_ENV, "realistic")
    for model in ("claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5"):
        msg = client.messages.create(model=model, max_tokens=400, messages=LONG_ASK)
        if msg.stop_reason in ("refusal", "pause_turn"):
            continue
        assert _types(msg)[0] == "thinking" and msg.content[0].thinking == "" and msg.content[0].signature
        assert course_utils.text_of(msg)  # the text is still there, after the thinking block
    msg = client.messages.create(model=SONNET46, max_tokens=400, messages=LONG_ASK)
    assert "thinking" not in _types(msg)


def test_medium_effort_skips_thinking_for_a_simple_request_high_effort_does_not(client, monkeypatch):
    # Haiku 5.5 and Opus 5.5 default to medium effort, Sonnet 5.5 to high (model pages): "At lower
    # effort levels, Claude may skip thinking for simpler problems."
    monkeypatch.setenv(REPLY_SCENARIO_ENV, "realistic")
    assert _types(client.messages.create(model=HAIKU, max_tokens=200, messages=ASK))[0] == "text"
    assert _types(client.messages.create(model="claude-opus-5-5", max_tokens=200, messages=ASK))[0] == "text"
    assert _types(client.messages.create(model=SONNET55, max_tokens=200, messages=ASK))[0] == "thinking"
    high = client.messages.create(model=HAIKU, max_tokens=200, messages=ASK, output_config={"effort": "high"})
    assert _types(high)[0] == "thinking"
    low = client.messages.create(model=SONNET55, max_tokens=400, messages=LONG_ASK, output_config={"effort": "low"})
    assert _types(low)[0] == "text"
    # The hostile scenario thinks whatever the effort, to test code against thinking blocks everywhere.
    monkeypatch.setenv(REPLY_SCENARIO_ENV, "hostile")
    msg = client.messages.create(model=HAIKU, max_tokens=200, messages=[{"role": "user", "content": "Hi there"}])
    assert _types(msg)[0] == "thinking"


def test_the_thinking_constant_decides_the_plain_default(client, monkeypatch):
    monkeypatch.delenv(REPLY_SCENARIO_ENV, raising=False)
    monkeypatch.setattr(thinking_mod, "THINKING_BY_DEFAULT", False)
    assert _types(client.messages.create(model=SONNET55, max_tokens=200, messages=ASK)) == ["text"]
    monkeypatch.setattr(thinking_mod, "THINKING_BY_DEFAULT", True)
    assert _types(client.messages.create(model=SONNET55, max_tokens=200, messages=ASK))[0] == "thinking"
    assert _types(client.messages.create(model=SONNET46, max_tokens=200, messages=ASK)) == ["text"]


def test_thinking_on_request_per_model(client):
    on = client.messages.create(model=SONNET55, max_tokens=300, messages=ASK, thinking={"type": "adaptive"})
    assert _types(on) == ["thinking", "text"] and on.content[0].thinking == ""
    # Omitted thinking is still billed: the text's tokens plus the hidden thinking's.
    text_tokens = len(text_deltas(course_utils.text_of(on)))
    assert on.usage.output_tokens == text_tokens + thinking_mod.OMITTED_THINKING_TOKENS
    summarized = client.messages.create(
        model=SONNET55, max_tokens=300, messages=ASK, thinking={"type": "adaptive", "display": "summarized"}
    )
    assert summarized.content[0].thinking.startswith("The user asks")
    low = client.messages.create(
        model=SONNET55, max_tokens=300, messages=ASK, thinking={"type": "adaptive"}, output_config={"effort": "low"}
    )
    assert _types(low) == ["text"]
    # An older model thinks only when asked, and shows summarized thinking by default.
    old = client.messages.create(
        model=SONNET46, max_tokens=3000, messages=ASK, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    assert _types(old) == ["thinking", "text"] and old.content[0].thinking
    assert _types(
        client.messages.create(model=SONNET46, max_tokens=300, messages=ASK, thinking={"type": "disabled"})
    ) == ["text"]
    # between_tools turns up-front thinking off (its thinking blocks come between tool calls).
    assert _types(
        client.messages.create(
            model="claude-sonnet-5-5", max_tokens=300, messages=ASK, thinking={"type": "between_tools"}
        )
    ) == ["text"]


def test_thinking_tokens_count_towards_max_tokens(client):
    full = client.messages.create(model=SONNET55, max_tokens=300, messages=ASK, thinking={"type": "adaptive"})
    text_tokens = full.usage.output_tokens - thinking_mod.OMITTED_THINKING_TOKENS
    cut = client.messages.create(
        model=SONNET55, max_tokens=thinking_mod.OMITTED_THINKING_TOKENS + 3, messages=ASK, thinking={"type": "adaptive"}
    )
    assert cut.stop_reason == "max_tokens" and _types(cut) == ["thinking", "text"]
    assert cut.usage.output_tokens == thinking_mod.OMITTED_THINKING_TOKENS + 3 < full.usage.output_tokens
    assert text_tokens > 3
    only = client.messages.create(model=SONNET55, max_tokens=4, messages=ASK, thinking={"type": "adaptive"})
    assert only.stop_reason == "max_tokens" and _types(only) == ["thinking"] and only.usage.output_tokens == 4


@pytest.mark.parametrize("display", ["omitted", "summarized"])
def test_thinking_streams_with_thinking_and_signature_deltas(client, display):
    kw = dict(model=SONNET55, max_tokens=300, messages=ASK, thinking={"type": "adaptive", "display": display})
    plain = client.messages.create(**kw)
    deltas = collections.Counter()
    with client.messages.stream(**kw) as stream:
        for event in stream:
            if event.type == "content_block_start" and event.index == 0:
                assert event.content_block.type == "thinking"
            if event.type == "content_block_delta":
                deltas[event.delta.type] += 1
        final = stream.get_final_message()
    assert deltas["signature_delta"] == 1 and deltas["text_delta"] > 0
    assert (deltas["thinking_delta"] > 0) == (display == "summarized")
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in plain.content]
    assert final.usage.output_tokens == plain.usage.output_tokens


def test_the_x_mock_shape_thinking_header_adds_one_block(client):
    msg = client.messages.create(
        model=HAIKU,
        max_tokens=300,
        messages=ASK,
        thinking={"type": "adaptive"},
        extra_headers={"x-mock-shape": "thinking"},
    )
    assert _types(msg) == ["thinking", "text"]


@pytest.mark.parametrize("scenario,lo_refusal,hi_refusal", [("realistic", 0.01, 0.12), ("hostile", 0.15, 0.35)])
def test_reply_scenarios_make_refusals_and_pauses_occur_for_a_share_of_requests(
    make_server, monkeypatch, scenario, lo_refusal, hi_refusal
):
    monkeypatch.setenv(REPLY_SCENARIO_ENV, scenario)
    client = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited").client()
    stops = collections.Counter()
    for i in range(200):
        msg = client.messages.create(
            model=HAIKU, max_tokens=100, messages=[{"role": "user", "content": f"Tell me fact number {i} about tea."}]
        )
        stops[msg.stop_reason] += 1
        if msg.stop_reason == "refusal" and scenario == "hostile":
            assert msg.content[0].type == "thinking"  # the thinking block stays; the text is cut short
    assert lo_refusal * 200 <= stops["refusal"] <= hi_refusal * 200
    assert stops["pause_turn"] > 0 and stops["end_turn"] > 100
    # Reproducible: the same prompt gets the same shape again.
    again = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited").client()
    first = [
        again.messages.create(
            model=HAIKU, max_tokens=100, messages=[{"role": "user", "content": f"Tell me fact number {i} about tea."}]
        ).stop_reason
        for i in range(20)
    ]
    assert first == [
        client.messages.create(
            model=HAIKU, max_tokens=100, messages=[{"role": "user", "content": f"Tell me fact number {i} about tea."}]
        ).stop_reason
        for i in range(20)
    ]


def test_an_unknown_scenario_in_the_environment_warns_and_stays_plain(client, monkeypatch):
    monkeypatch.setenv(REPLY_SCENARIO_ENV, "realstic")
    with pytest.warns(RuntimeWarning, match="realstic"):
        msg = client.messages.create(model=HAIKU, max_tokens=100, messages=ASK)
    assert msg.stop_reason == "end_turn" and _types(msg) == ["text"]


def test_a_block_can_pin_the_reply_scenario_whatever_the_environment(make_server, monkeypatch):
    from course_utils.clock import run_virtual
    from course_utils.mock_provider.skills.thinking import use_reply_scenario

    monkeypatch.setenv(REPLY_SCENARIO_ENV, "hostile")
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    prompts = [[{"role": "user", "content": f"Tell me fact number {i} about tea."}] for i in range(40)]

    async def stops() -> list[str]:
        c = srv.async_client(max_retries=0)
        return [(await c.messages.create(model=HAIKU, max_tokens=100, messages=m)).stop_reason for m in prompts]

    hostile = run_virtual(stops())
    with use_reply_scenario("plain"):
        plain = run_virtual(stops())
    assert set(plain) == {"end_turn"} and set(hostile) > {"end_turn"}
    with pytest.raises(thinking_mod.ShapeError):
        with use_reply_scenario("nonsense"):
            pass
