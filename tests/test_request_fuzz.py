"""No request body makes the simulator answer 500 or hang: every answer is 2xx or an API error envelope."""

from __future__ import annotations

import json

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HEADERS = {"x-api-key": "fuzz", "anthropic-version": "2023-06-01", "content-type": "application/json"}

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**7), st.floats(allow_nan=False),
                      st.text(max_size=30))
json_value = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                           st.dictionaries(st.text(max_size=12), kids, max_size=4)),
                          max_leaves=12)
role = st.sampled_from(["user", "assistant", "system", "", 3, None])
block = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "image", "tool_use", "tool_result", "bogus", 1]),
                           "text": json_value}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": json_value, "name": json_value, "input": json_value}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": json_value, "content": json_value}),
    json_value,
)
message = st.fixed_dictionaries({"role": role, "content": st.one_of(st.text(max_size=40), st.lists(block, max_size=3),
                                                                    json_value)})
body = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.sampled_from(["claude-haiku-5-5", "sim-teaching-4k", "nope"]), json_value),
        "max_tokens": st.one_of(st.integers(-3, 300), json_value),
        "messages": st.one_of(st.lists(message, max_size=4), json_value),
        "system": st.one_of(st.text(max_size=40), st.lists(block, max_size=2), json_value),
        "tools": st.one_of(st.lists(json_value, max_size=2), json_value),
        "tool_choice": json_value,
        "stop_sequences": st.one_of(st.lists(st.text(max_size=5), max_size=3), json_value),
        "stream": st.one_of(st.booleans(), json_value),
        "temperature": json_value,
        "cache_control": json_value,
        "metadata": json_value,
    },
)


@pytest.fixture(scope="module")
def http(server):
    with httpx2.Client(base_url=server.base_url, headers=HEADERS, timeout=10) as c:
        yield c


def _assert_well_formed(r: httpx2.Response) -> None:
    assert r.status_code != 500, r.text
    if r.status_code >= 400:
        env = r.json()
        assert env["type"] == "error" and env["error"]["type"] and env["error"]["message"]
        assert env["request_id"] == r.headers["request-id"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=body)
def test_structured_garbage_never_500(http, body):
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        _assert_well_formed(http.post(path, content=json.dumps(body)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_raw_bytes_never_500(http, raw):
    _assert_well_formed(http.post("/v1/messages", content=raw))


schema = st.recursive(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "number", "integer", "boolean", "null", "weird"])},
                          optional={"enum": st.lists(json_leaf, max_size=3), "description": st.text(max_size=10)}),
    lambda kids: st.one_of(
        st.fixed_dictionaries({"type": st.just("object"), "properties": st.dictionaries(st.text(max_size=6), kids,
                                                                                         max_size=3)},
                              optional={"required": st.lists(st.text(max_size=6), max_size=3)}),
        st.fixed_dictionaries({"type": st.just("array"), "items": kids}),
        st.fixed_dictionaries({"type": st.lists(st.sampled_from(["string", "null", "object"]), max_size=2)}),
    ),
    max_leaves=6,
)
tool = st.fixed_dictionaries({"name": st.sampled_from(["get_weather", "lookup_order", "x"]), "input_schema": schema},
                             optional={"description": st.text(max_size=30)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tools=st.lists(tool, min_size=1, max_size=2, unique_by=lambda t: t["name"]),
       choice=st.sampled_from([None, {"type": "auto"}, {"type": "any"}, {"type": "tool", "name": "get_weather"},
                               {"type": "tool", "name": ["get_weather"]}]),
       question=st.text(max_size=40))
def test_arbitrary_tool_schemas_never_500(http, tools, choice, question):
    body = {"model": "claude-haiku-5-5", "max_tokens": 200, "tools": tools,
            "messages": [{"role": "user", "content": question or "What is the weather in Lisbon?"}]}
    if choice is not None:
        body["tool_choice"] = choice
    _assert_well_formed(http.post("/v1/messages", content=json.dumps(body)))


DEEP = ('{"model": "claude-haiku-5-5", "metadata": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}").encode()


@pytest.mark.parametrize("raw", [
    b"", b"{", b"[]", b"null", b'"text"', b"\xff\xfe", b'{"model": NaN}', b'{"model": Infinity}',
    b"[" * 50_000, DEEP, b'{"model": "claude-haiku-5-5", "max_tokens": 5, "messages": [{"role": "user", "content": "\\ud800"}]}',
])
def test_malformed_json_gets_invalid_request(http, raw):
    r = http.post("/v1/messages", content=raw)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
