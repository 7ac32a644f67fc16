"""Issue 13 item 5 (and 8): the simulator refuses what the API does not define, as the API does.

Every refusal is a 400 ``invalid_request_error`` in the API's envelope with a ``request-id``, naming the
offending field (``<path>: Extra inputs are not permitted``). See docs/api-notes.md §8 rows 5, 5b, 5c, 8.
"""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from _http import TLS

HAIKU = "claude-haiku-5-5"
USER = [{"role": "user", "content": "Say hello."}]
HEADERS = {"x-api-key": "strict", "anthropic-version": "2023-06-01"}


@pytest.fixture()
def http(sim):
    with httpx2.Client(base_url=sim.base_url, headers=HEADERS, timeout=10, verify=TLS) as c:
        yield c


def _refused(r: httpx2.Response, field: str) -> str:
    assert r.status_code == 400, r.text
    env = r.json()
    assert env["type"] == "error" and env["error"]["type"] == "invalid_request_error"
    assert env["request_id"] == r.headers["request-id"]
    assert env["error"]["message"].startswith(field), env["error"]["message"]
    return env["error"]["message"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"max_tokn": 5}, "max_tokn"),  # a student's typo
        ({"messages": [{"role": "user", "content": "hi", "name": "ada"}]}, "messages.0.name"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "txt": "x"}]}]},
            "messages.0.content.0.txt",
        ),
        ({"tools": [{"name": "t", "input_schema": {"type": "object"}, "parameters": {}}]}, "tools.0.parameters"),
        ({"tool_choice": {"type": "auto", "force": True}}, "tool_choice.force"),
        ({"thinking": {"type": "adaptive", "budget": 5}}, "thinking.budget"),
        ({"metadata": {"user": "u"}}, "metadata.user"),
        (
            {"system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "scope": "x"}}]},
            "system.0.cache_control.scope",
        ),
        ({"output_config": {"effort": "medium", "verbosity": "low"}}, "output_config.verbosity"),
    ],
)
def test_unknown_fields_are_named(http, body, field):
    full = {"model": HAIKU, "max_tokens": 20, "messages": USER, **body}
    if field == "max_tokn":
        full.pop("max_tokens")
    msg = _refused(http.post("/v1/messages", json=full), field)
    assert msg.endswith("Extra inputs are not permitted")


def test_count_tokens_rejects_max_tokens(http, client):
    _refused(
        http.post("/v1/messages/count_tokens", json={"model": HAIKU, "max_tokens": 5, "messages": USER}),
        "max_tokens: Extra inputs are not permitted",
    )
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.count_tokens(model=HAIKU, messages=USER, extra_body={"max_tokens": 5})
    assert client.messages.count_tokens(model=HAIKU, messages=USER).input_tokens > 0


def test_invalid_anthropic_beta_and_service_tier(http, client):
    _refused(
        http.post(
            "/v1/messages",
            json={"model": HAIKU, "max_tokens": 5, "messages": USER},
            headers={"anthropic-beta": "not-a-beta-2099-01-01"},
        ),
        "anthropic-beta",
    )
    ok = http.post(
        "/v1/messages",
        json={"model": HAIKU, "max_tokens": 5, "messages": USER},
        headers={"anthropic-beta": "prompt-caching-2024-07-31, context-1m-2025-08-07"},
    )
    assert ok.status_code == 200, ok.text
    _refused(
        http.post("/v1/messages", json={"model": HAIKU, "max_tokens": 5, "messages": USER, "service_tier": "premium"}),
        "service_tier",
    )
    with pytest.raises(anthropic.BadRequestError, match="service_tier"):
        client.messages.create(model=HAIKU, max_tokens=5, messages=USER, extra_body={"service_tier": "premium"})
    assert client.messages.create(model=HAIKU, max_tokens=5, messages=USER, service_tier="standard_only").content


@pytest.mark.parametrize("btype", [["text"], {"t": 1}, 3, None])
def test_block_type_that_is_not_a_string_is_a_400_not_a_500(http, btype):
    """The 1.2% of 500s of issue 13 item 12 (``TypeError: unhashable type`` in ``_block``)."""
    r = http.post(
        "/v1/messages",
        json={
            "model": HAIKU,
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": btype, "text": "x"}]}],
        },
    )
    _refused(r, "messages.0.content.0.type")


def test_output_config_format_accepted(client, http):
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    msg = client.messages.create(
        model=HAIKU, max_tokens=100, messages=USER, output_config={"format": {"type": "json_schema", "schema": schema}}
    )
    assert msg.content
    _refused(
        http.post(
            "/v1/messages",
            json={"model": HAIKU, "max_tokens": 5, "messages": USER, "output_config": {"format": {"type": "json"}}},
        ),
        "output_config.format.type",
    )
    _refused(
        http.post(
            "/v1/messages",
            json={"model": HAIKU, "max_tokens": 5, "messages": USER, "output_config": {"effort": "extreme"}},
        ),
        "output_config.effort",
    )


@pytest.mark.parametrize(
    "schema",
    [{"type": "nonsense-type"}, {"type": "object", "required": "name"}, {"properties": {"a": {"minimum": "zero"}}}],
)
def test_an_invalid_json_schema_in_output_config_is_a_400(make_server, schema):
    server = make_server(seed=0)
    try:
        with pytest.raises(anthropic.BadRequestError, match="invalid JSON schema"):
            server.client(max_retries=0).messages.create(
                model="claude-haiku-4-5",
                max_tokens=50,
                messages=[{"role": "user", "content": "hi"}],
                output_config={"format": {"type": "json_schema", "schema": schema}},
            )
    finally:
        server.close()
