"""The simulated API through the official SDK: shapes, streaming, errors, determinism."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx2
import pytest

from course_utils import mock_server, text_of, tokens

HAIKU = "claude-haiku-5-5"
USER = [{"role": "user", "content": "Tell me about rate limits in one paragraph."}]


def _comparable(msg: anthropic.types.Message) -> dict:
    d = msg.model_dump(exclude={"id"})
    return {k: d[k] for k in ("content", "stop_reason", "stop_sequence", "usage", "model", "role", "type")}


def test_create_returns_a_full_message(client, sim):
    msg = client.messages.create(model=HAIKU, max_tokens=200, messages=USER)
    assert msg.id.startswith("msg_") and msg.type == "message" and msg.role == "assistant"
    assert msg.model == HAIKU
    assert msg.stop_reason in {"end_turn", "max_tokens", "stop_sequence", "tool_use"}
    assert msg.content and msg.content[0].type == "text" and msg.content[0].text
    u = msg.usage
    assert u.input_tokens == tokens.count_request({"messages": USER}) > 0
    assert u.output_tokens == tokens.count_text(msg.content[0].text)
    assert u.cache_creation_input_tokens == 0 and u.cache_read_input_tokens == 0


def test_request_id_header_on_success_and_error(client):
    raw = client.messages.with_raw_response.create(model=HAIKU, max_tokens=20, messages=USER)
    assert raw.headers["request-id"].startswith("req_")
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model=HAIKU, max_tokens=0, messages=USER)
    assert err.value.response.headers["request-id"] == err.value.body["request_id"]


def test_async_create(aclient):
    async def go():
        return await asyncio.gather(
            *(aclient.messages.create(model=HAIKU, max_tokens=50, messages=USER) for _ in range(5))
        )

    msgs = asyncio.run(go())
    assert len({m.id for m in msgs}) == 5
    assert len({m.content[0].text for m in msgs}) == 1  # same body, same seed: same answer


def test_max_tokens_cuts_the_answer(client):
    msg = client.messages.create(
        model=HAIKU, max_tokens=5, messages=[{"role": "user", "content": "Write a long essay about databases."}]
    )
    assert msg.stop_reason == "max_tokens"
    assert msg.usage.output_tokens == 5


def test_stop_sequences_end_the_text(client):
    full = client.messages.create(model=HAIKU, max_tokens=300, messages=USER).content[0].text
    words = full.split()
    stop = words[len(words) // 2]
    msg = client.messages.create(model=HAIKU, max_tokens=300, messages=USER, stop_sequences=[stop])
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == stop
    assert stop not in msg.content[0].text
    assert full.startswith(msg.content[0].text)


def test_stream_matches_non_streaming(client):
    body = dict(model=HAIKU, max_tokens=120, messages=USER)
    plain = client.messages.create(**body)
    with client.messages.stream(**body) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text
    assert _comparable(final) == _comparable(plain)


def test_async_stream(aclient):
    async def go():
        async with aclient.messages.stream(model=HAIKU, max_tokens=60, messages=USER) as stream:
            pieces = [t async for t in stream.text_stream]
            return pieces, await stream.get_final_message()

    pieces, final = asyncio.run(go())
    assert len(pieces) > 3 and "".join(pieces) == final.content[0].text


def _raw_events(sim, body: dict) -> list[tuple[str, dict]]:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}
    with httpx2.Client() as http:
        r = http.post(f"{sim.base_url}/v1/messages", headers=headers, json={**body, "stream": True})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = []
        for frame in r.text.strip().split("\n\n"):
            lines = dict(line.split(": ", 1) for line in frame.splitlines())
            data = json.loads(lines["data"])
            assert lines["event"] == data["type"], "every event line matches data.type"
            events.append((lines["event"], data))
        return events


def test_raw_sse_event_order(sim):
    events = _raw_events(sim, dict(model=HAIKU, max_tokens=50, messages=USER))
    names = [e for e, _ in events]
    assert names[0] == "message_start" and names[1] == "content_block_start" and "ping" in names
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names[-3] == "content_block_stop"
    deltas = [d for e, d in events if e == "content_block_delta"]
    assert len(deltas) > 5 and all(d["delta"]["type"] == "text_delta" for d in deltas)
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] > 0 and start["stop_reason"] is None and start["content"] == []
    final = [d for e, d in events if e == "message_delta"][0]
    assert final["delta"]["stop_reason"] and final["usage"]["output_tokens"] == len(deltas)


def test_tool_use_streams_input_json_delta(sim):
    tools = [
        {
            "name": "get_weather",
            "description": "Get the current weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
    events = _raw_events(
        sim,
        dict(
            model=HAIKU,
            max_tokens=200,
            tools=tools,
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[{"role": "user", "content": "What is the weather in Lisbon?"}],
        ),
    )
    starts = [d for e, d in events if e == "content_block_start" and d["content_block"]["type"] == "tool_use"]
    assert starts and starts[0]["content_block"]["input"] == {}
    idx = starts[0]["index"]
    partial = "".join(d["delta"]["partial_json"] for e, d in events if e == "content_block_delta" and d["index"] == idx)
    assert isinstance(json.loads(partial)["city"], str)
    assert [d for e, d in events if e == "message_delta"][0]["delta"]["stop_reason"] == "tool_use"


def test_count_tokens_agrees_with_create(client):
    body = dict(model=HAIKU, system="You are a terse assistant.", messages=USER)
    counted = client.messages.count_tokens(**body).input_tokens
    created = client.messages.create(max_tokens=10, **body).usage.input_tokens
    assert counted == created == tokens.count_request(body)


def test_models_list_paginates_and_retrieves(client):
    ids = [m.id for m in client.models.list(limit=2)]  # the SDK follows has_more / last_id
    assert {"claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "sim-teaching-4k"} <= set(ids)
    assert len(ids) == len(set(ids))
    page = client.models.list(limit=2)
    assert len(page.data) == 2 and page.has_more and page.last_id == page.data[-1].id
    info = client.models.retrieve("sim-teaching-4k")
    assert info.max_input_tokens == 4096
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nonexistent")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_tokens=10, messages=[]), "at least one message"),
        (dict(max_tokens=0, messages=USER), "max_tokens"),
        # an explicit timeout skips the SDK's own "use streaming" guard for huge max_tokens
        (dict(max_tokens=200_000, messages=USER, timeout=30), "maximum allowed number of output tokens"),
        (dict(max_tokens=10, messages=[{"role": "system", "content": "x"}]), "messages.0.role"),
        (
            dict(max_tokens=10, messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}]),
            "tool_use_id",
        ),
        (dict(max_tokens=10, messages=USER, extra_body={"temperature": 3}), "temperature"),
    ],
)
def test_invalid_requests_get_precise_400s(client, kwargs, message):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model=HAIKU, **kwargs)
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert message in err.value.body["error"]["message"]


def test_unknown_model_is_404(client):
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(model="claude-imaginary", max_tokens=10, messages=USER)
    assert err.value.body["error"]["type"] == "not_found_error"


def test_missing_key_is_401(sim):
    # The SDK sends the key as "Authorization: Bearer ..."; omit it to send no credentials at all.
    c = anthropic.Anthropic(
        base_url=sim.base_url, api_key="k", max_retries=0, default_headers={"Authorization": anthropic.omit}
    )
    with pytest.raises(anthropic.AuthenticationError) as err:
        c.messages.create(model=HAIKU, max_tokens=10, messages=USER)
    assert err.value.body["error"]["type"] == "authentication_error"


def test_oversize_body_is_413(sim):
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}
    big = json.dumps({"model": HAIKU, "max_tokens": 5, "messages": [{"role": "user", "content": "x" * (33 * 2**20)}]})
    with httpx2.Client(timeout=60) as http:
        r = http.post(f"{sim.base_url}/v1/messages", headers=headers, content=big)
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


def test_prompt_too_long_on_the_teaching_model(client):
    history = []
    for i in range(200):
        history += [
            {"role": "user", "content": f"Turn {i}: here is some more detail about my order and my account."},
            {"role": "assistant", "content": "Thanks, noted."},
        ]
    history.append({"role": "user", "content": "What is my name?"})
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model="sim-teaching-4k", max_tokens=100, messages=history)
    assert err.value.body["error"]["message"].startswith("prompt is too long:")
    assert "> 4096 maximum" in err.value.body["error"]["message"]


def test_consecutive_same_role_turns_are_merged_not_rejected(client):
    msg = client.messages.create(
        model=HAIKU,
        max_tokens=30,
        messages=[{"role": "user", "content": "Hello."}, {"role": "user", "content": "Are you there?"}],
    )
    assert msg.content


def test_unknown_extra_fields_are_refused_known_ones_accepted(sim):
    """As the API: a field it does not define is a 400 naming it (a typo fails here as it fails for real)."""
    c = sim.client(max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="some_future_field: Extra inputs are not permitted"):
        c.messages.create(model=HAIKU, max_tokens=20, messages=USER, extra_body={"some_future_field": True})
    assert c.messages.create(
        model=HAIKU, max_tokens=20, messages=USER, metadata={"user_id": "u-1"}, service_tier="auto"
    ).content


def test_determinism_across_servers():
    body = dict(model="claude-sonnet-5-5", max_tokens=150, messages=USER)
    texts = []
    for seed in (7, 7, 8):
        with mock_server(seed=seed, time_scale=0) as srv:
            texts.append(text_of(srv.client(max_retries=0).messages.create(**body)))
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_recall_uses_the_context_window(client):
    convo = [
        {"role": "user", "content": "Hi, my name is Ada and my order number is 4417."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    assert "Ada" in client.messages.create(model=HAIKU, max_tokens=50, messages=convo).content[0].text
    forgot = client.messages.create(model=HAIKU, max_tokens=50, messages=convo[-1:]).content[0].text
    assert "don't have that information" in forgot


def test_json_answers_parse(client):
    msg = client.messages.create(
        model=HAIKU,
        max_tokens=200,
        messages=[
            {
                "role": "user",
                "content": "Return a JSON object with keys sentiment and summary for: I love this product.",
            }
        ],
    )
    data = json.loads(msg.content[0].text)
    assert {"sentiment", "summary"} <= set(data)


def test_scripted_reply(client, sim):
    sim.script("secret handshake", "The password is swordfish.")
    msg = client.messages.create(
        model=HAIKU, max_tokens=50, messages=[{"role": "user", "content": "What is the secret handshake?"}]
    )
    assert msg.content[0].text == "The password is swordfish."


def test_ledger_records_each_request(client, sim):
    client.messages.create(model=HAIKU, max_tokens=20, messages=USER)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=HAIKU, max_tokens=0, messages=USER)
    df = sim.ledger()
    assert list(df["status"]) == [200, 400]
    assert df.loc[0, "input_tokens"] > 0 and df.loc[0, "cost_usd"] > 0
    assert df.loc[1, "error_type"] == "invalid_request_error" and df.loc[1, "cost_usd"] == 0


def test_streaming_disconnect_stops_billing(sim):
    import time as _t

    c = sim.client(max_retries=0)
    body = dict(
        model=HAIKU, max_tokens=1000, messages=[{"role": "user", "content": "Write a long essay about caching."}]
    )
    full = c.messages.create(**body).usage.output_tokens
    sim.reset()
    sim.configure(time_scale=0.5)  # ~75 tokens/s: the client hangs up long before the reply is done
    try:
        with c.messages.stream(**body) as stream:
            for i, _ in enumerate(stream.text_stream):
                if i == 5:
                    break
        deadline = _t.monotonic() + 5
        while len(sim.ledger()) == 0 and _t.monotonic() < deadline:
            _t.sleep(0.05)
    finally:
        sim.configure(time_scale=0.0)
    streamed = sim.ledger().iloc[0]
    assert bool(streamed["stream"]) and bool(streamed["disconnected"])
    assert full > 100 and streamed["output_tokens"] < full / 2


def test_models_are_listed_newest_first(client):
    infos = list(client.models.list())
    created = [m.created_at for m in infos]
    assert created == sorted(created, reverse=True)


def test_real_looking_keys_are_masked_in_the_ledger(sim):
    key = "sk-ant-api03-" + "S" * 20 + "WXYZ"
    sim.client(api_key=key, max_retries=0).messages.create(model=HAIKU, max_tokens=5, messages=USER)
    assert list(sim.ledger()["api_key"]) == ["sk-ant-...WXYZ"]


def test_count_tokens_carries_rate_limit_headers(client):
    raw = client.messages.with_raw_response.count_tokens(model=HAIKU, messages=USER)
    assert "anthropic-ratelimit-requests-limit" in raw.headers


def test_fast_delta_encoding_matches_the_generic_encoder():
    from course_utils.mock_provider.stream import delta_event as _delta_event, sse_event

    for piece in ("plain", 'quo"te\\n', "héllo wörld ✓", "日本語", ""):
        assert _delta_event(0, "text", piece) == sse_event(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        )
        assert _delta_event(3, "tool_use", piece) == sse_event(
            {"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": piece}}
        )
    assert "✓".encode() in _delta_event(0, "text", "✓")  # raw UTF-8 on the wire, as the API sends it


def test_sonnet_5_5_refuses_forced_tool_use(client):
    tools = [
        {"name": "lookup", "description": "Look up an order", "input_schema": {"type": "object", "properties": {}}}
    ]
    ask = [{"role": "user", "content": "Where is order 4417?"}]
    for choice in ({"type": "any"}, {"type": "tool", "name": "lookup"}):
        with pytest.raises(anthropic.BadRequestError, match="forced tool use"):
            client.messages.create(
                model="claude-sonnet-5-5", max_tokens=50, tools=tools, tool_choice=choice, messages=ask
            )
    assert client.messages.create(
        model="claude-sonnet-5-5", max_tokens=50, tools=tools, messages=ask, tool_choice={"type": "auto"}
    ).content
    assert (
        client.messages.create(
            model=HAIKU, max_tokens=50, tools=tools, messages=ask, tool_choice={"type": "any"}
        ).stop_reason
        == "tool_use"
    )


def test_ledger_records_are_every_column_but_extra_with_the_cost_as_text():
    """``Ledger.records`` reads the row's fields (no deep copy): the same dicts ``asdict`` gave, ``extra`` left out."""
    from dataclasses import asdict
    from decimal import Decimal

    from course_utils.mock_provider.ledger import LEDGER_COLUMNS, Ledger, LedgerRow

    ledger = Ledger()
    row = LedgerRow("req_1", "/v1/messages", "POST", "k", status=429, cost_usd=Decimal("0.0123"), extra={"a": [1]})
    ledger.add(row)
    (record,) = ledger.records()
    expected = {k: v for k, v in asdict(row).items() if k != "extra"}
    assert record == {**expected, "cost_usd": "0.0123"}
    assert list(record) == LEDGER_COLUMNS
    frame = ledger.dataframe()
    assert frame.loc[0, "status"] == 429 and frame.loc[0, "cost_usd"] == 0.0123


def test_ids_have_the_apis_shape_and_never_repeat():
    """``msg_01``/``req_01`` and 22 base58 characters (no 0, O, I or l), as the API's ids; fresh each time."""
    import re

    from course_utils.mock_provider.ids import base58, new_id

    ids = [new_id("msg") for _ in range(2000)]
    assert all(re.fullmatch(r"msg_01[1-9A-HJ-NP-Za-km-z]{22}", i) for i in ids), ids[:3]
    assert len(set(ids)) == len(ids)
    assert (base58(0), base58(57), base58(58)) == ("1", "z", "21")
