"""Malformed input never gets a 5xx (issue 13 item 12): every answer is 2xx or a 4xx in the API's envelope.

A property-based fuzzer over the request schema of every body-taking endpoint (messages, count_tokens,
batches create). It starts from valid bodies and breaks them at random paths: wrong types, block ``type``
tags that are lists or objects, unknown fields, deep nesting, huge and empty values; and it sends raw
bytes too: truncated JSON, invalid UTF-8, binary noise.

The simulator runs in-process (``httpx2.ASGITransport``, no sockets, no server thread) on a virtual
clock with latency off, so ≥ 10,000 requests fit in seconds. Seeded (``derandomize``), bounded
(``max_examples``), and without the example database, so every run sends the same requests.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

import httpx2
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from course_utils.clock import shutdown_loop, virtual_loop
from course_utils.mock_provider.config import SimulatorConfig
from course_utils.mock_provider.app import create_app
from course_utils.mock_provider.simulator import Simulator

HEADERS = {"x-api-key": "fuzz", "anthropic-version": "2023-06-01", "content-type": "application/json"}
ENDPOINTS = ("/v1/messages", "/v1/messages/count_tokens", "/v1/messages/batches")
MIN_REQUESTS = 10_000
# Generate and shrink only: the explicit/reuse/target/explain phases add cost and nothing for a seeded sweep.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate, Phase.shrink],
)

SENT: dict[str, int] = {"requests": 0, "5xx": 0}


class InProcess:
    """One simulator app behind an in-process ASGI transport, driven from sync tests on one event loop."""

    def __init__(self) -> None:
        # On a virtual loop, the simulator's clock (SYSTEM_CLOCK, the loop's) is virtual: no request waits.
        self.loop = virtual_loop()
        self.sim = Simulator(SimulatorConfig(seed=0, time_scale=0.0, rate_limit_tier="unlimited"))
        self.client = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=create_app(self.sim)),
            base_url="http://simulator",
            headers=HEADERS,
            timeout=30,
        )

    def post(self, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx2.Response:
        SENT["requests"] += 1
        return self.loop.run_until_complete(self.client.post(path, content=content, headers=headers))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        shutdown_loop(self.loop)


@pytest.fixture(scope="module")
def app() -> Iterator[InProcess]:
    a = InProcess()
    yield a
    a.close()


def _assert_well_formed(r: httpx2.Response) -> None:
    if r.status_code >= 500:
        SENT["5xx"] += 1
    assert r.status_code < 500, r.text[:500]
    if r.status_code >= 400:
        env = r.json()
        assert env["type"] == "error" and isinstance(env["error"]["type"], str) and env["error"]["message"]
        assert env["request_id"] == r.headers["request-id"]


# ----- valid starting points ------------------------------------------------------------------------
TOOL = {
    "name": "lookup_order",
    "description": "Look up an order",
    "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}},
}
BASES: list[dict[str, Any]] = [
    {"model": "claude-haiku-5-5", "max_tokens": 30, "messages": [{"role": "user", "content": "Say hello."}]},
    {
        "model": "sim-teaching-4k",
        "max_tokens": 20,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Classify: the parcel is late."}]}],
    },
    {
        "model": "claude-sonnet-4-6",
        "max_tokens": 40,
        "tools": [TOOL],
        "tool_choice": {"type": "auto"},
        "messages": [
            {"role": "user", "content": "Where is order 4417?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup_order", "input": {"order_id": "4417"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "shipped"}]}
                ],
            },
        ],
    },
    {
        "model": "claude-haiku-4-5",
        "max_tokens": 25,
        "stream": True,
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "metadata": {"user_id": "u1"},
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": {"type": "object"}}},
        "messages": [{"role": "user", "content": "List three colours."}],
    },
]

leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False), st.text(max_size=20)
)
json_value = st.recursive(
    leaf,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)),
    max_leaves=5,
)


def _deep(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


# Values that break a field: wrong types, tags that are lists/objects, empty, huge, deep, odd text.
bad_value = st.one_of(
    json_value,
    st.sampled_from([[], {}, "", 0, -1, True, None, ["text"], {"type": "text"}, [[[]]], 1e308, -1e308]),
    st.integers(0, 70).map(_deep),
    st.integers(1_000, 8_000).map(lambda n: "x " * n),
    st.integers(50, 120).map(lambda n: [{"type": "text", "text": "x"} for _ in range(n)]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into ``value`` (dict keys and list indexes), the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


def _set(root: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return root


@st.composite
def mutated(draw: Any, base: dict[str, Any]) -> Any:
    """``base`` broken at 1-3 random paths: a value replaced, an unknown field added, or a key removed."""
    body: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "add_field", "drop", "type_tag"]))
        target = body
        for key in path:
            target = target[key]
        # Drawn values are copied: sampled constants are shared objects, and later mutations edit in place.
        if action == "replace":
            body = _set(body, path, copy.deepcopy(draw(bad_value)))
        elif action == "add_field" and isinstance(target, dict):
            target[draw(st.text(min_size=1, max_size=12))] = copy.deepcopy(draw(json_value))
        elif action == "drop" and isinstance(target, dict) and target:
            target.pop(draw(st.sampled_from(sorted(target, key=str))))
        elif action == "type_tag" and isinstance(target, dict):
            target["type"] = copy.deepcopy(draw(st.sampled_from([["text"], {"text": 1}, [], {}, 1, None, "bogus"])))
    return body


def _batch(params: Any, draw_custom_id: Any = "req-1") -> dict[str, Any]:
    return {"requests": [{"custom_id": draw_custom_id, "params": params}]}


def _encode(body: Any) -> bytes:
    # ensure_ascii=False with surrogatepass lets lone surrogates reach the server as invalid UTF-8.
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


# ----- properties -------------------------------------------------------------------------------------
@settings(FUZZ, max_examples=520)
@given(data=st.data())
def test_schema_mutations_never_5xx(app, data):
    """Each example: one broken body sent to messages, count_tokens and (wrapped) batches create, then the
    same bytes truncated, and with invalid UTF-8 spliced in, to each endpoint again (9 requests)."""
    base = data.draw(st.sampled_from(BASES))
    body = data.draw(mutated(base))
    content = _encode(body)
    _assert_well_formed(app.post("/v1/messages", content))
    _assert_well_formed(app.post("/v1/messages/count_tokens", content))
    at = int(len(content) * data.draw(st.floats(0, 1, exclude_max=True)))
    for path in ENDPOINTS:
        _assert_well_formed(app.post(path, content[:at]))  # truncated JSON
        _assert_well_formed(app.post(path, content[:at] + b"\xc3\x28" + content[at:]))  # invalid UTF-8 inside
    # The batch wrapper: the broken body as params, or a valid body under a broken custom_id.
    custom_id = data.draw(st.one_of(st.just("req-1"), bad_value))
    _assert_well_formed(
        app.post("/v1/messages/batches", _encode(_batch(body if custom_id == "req-1" else base, custom_id)))
    )


@settings(FUZZ, max_examples=700)
@given(
    base=st.sampled_from(BASES + [_batch(BASES[0]), _batch(BASES[2])]),
    cut=st.floats(0, 1, exclude_max=True),
    junk=st.binary(max_size=8),
)
def test_truncated_and_invalid_utf8_bodies(app, base, cut, junk):
    """Valid bodies cut short, and with invalid UTF-8 spliced in at the same place, to every endpoint."""
    raw = json.dumps(base, ensure_ascii=False).encode()
    at = int(len(raw) * cut)
    for path in ENDPOINTS:
        _assert_well_formed(app.post(path, raw[:at]))
        _assert_well_formed(app.post(path, raw[:at] + b"\xff\xfe\xc3" + junk + raw[at:]))


@settings(FUZZ, max_examples=350)
@given(raw=st.binary(max_size=300))
def test_binary_noise(app, raw):
    for path in ENDPOINTS:
        _assert_well_formed(app.post(path, raw))


@settings(FUZZ, max_examples=300)
@given(
    headers=st.fixed_dictionaries(
        {},
        optional={
            "anthropic-beta": st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=40),
            "anthropic-version": st.sampled_from(["2023-06-01", "", "1999"]),
            "x-mock-fault": st.sampled_from(
                ["overloaded", "billing_error", "permission_error", "timeout_error", "spend_limit", "bogus", ""]
            ),
        },
    )
)
def test_header_garbage(app, headers):
    r = app.post("/v1/messages", _encode(BASES[0]), headers=headers)
    # A forced fault answers 5xx on purpose (504, 529) when the request is otherwise valid: the API's
    # envelopes, not crashes. Anything else must be well formed.
    forced = {"overloaded": (529, "overloaded_error"), "timeout_error": (504, "timeout_error")}
    if r.status_code >= 500 and headers.get("x-mock-fault") in forced:
        assert (r.status_code, r.json()["error"]["type"]) == forced[headers["x-mock-fault"]]
        assert r.json()["request_id"] == r.headers["request-id"]
        return
    _assert_well_formed(r)


DEEP = ('{"model": "claude-haiku-5-5", "metadata": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}").encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'"text"',
        b"\xff\xfe",
        b'{"model": NaN}',
        b'{"model": Infinity}',
        b"[" * 50_000,
        DEEP,
        b'{"model": "claude-haiku-5-5", "max_tokens": 5, "messages": [{"role": "user", "content": "\\ud800"}]}',
    ],
)
def test_malformed_json_gets_invalid_request(app, raw):
    for path in ENDPOINTS:
        r = app.post(path, raw)
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", (path, r.text[:300])


# Schemas for structured outputs: JSON-schema-shaped values, recursive ($ref "#"), contradictory or
# malformed; the reply is built from them, so they must never crash generation.
_schema_key = st.sampled_from(
    [
        "type",
        "properties",
        "required",
        "items",
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
        "enum",
        "const",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "$defs",
        "additionalProperties",
        "multipleOf",
        "prefixItems",
        "uniqueItems",
        "exclusiveMinimum",
    ]
)
_schema_leaf = st.one_of(
    st.sampled_from(
        [
            "object",
            "array",
            "string",
            "integer",
            "number",
            "boolean",
            "null",
            "#",
            "#/$defs/a",
            "#/properties/a",
            "date",
            "email",
            "(",
            "^[A-Z]{3}$",
            ["a"],
            ["string", "null"],
        ]
    ),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.booleans(),
    st.none(),
)
schema_like = st.recursive(
    _schema_leaf,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3),
        st.dictionaries(_schema_key, kids, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b"]), kids, max_size=2),
    ),
    max_leaves=10,
)


@settings(FUZZ, max_examples=400)
@given(
    schema=st.one_of(schema_like, st.just({"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]}))
)
def test_structured_output_schemas_never_5xx(app, schema):
    body = {
        "model": "claude-haiku-5-5",
        "max_tokens": 60,
        "messages": [{"role": "user", "content": "Rate this: good."}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }
    _assert_well_formed(app.post("/v1/messages", _encode(body)))


def test_at_least_ten_thousand_requests_and_no_5xx():
    """Runs last in this module: the properties above sent enough requests, and none crashed."""
    print(f"fuzz: {SENT['requests']} requests, {SENT['5xx']} answered 5xx")
    assert SENT["requests"] >= MIN_REQUESTS, SENT
    assert SENT["5xx"] == 0, SENT
