"""Issue 13 item 8: ``output_config.format`` with a JSON schema returns JSON that validates against it;
issue 26 §5: a schema outside the supported subset is a 400.

Structured outputs (https://platform.claude.com/docs/en/build-with-claude/structured-outputs):
"Structured outputs guarantee schema-compliant responses through constrained decoding"; not supported:
numerical constraints (``minimum``, ``maximum``, ``multipleOf``), string constraints (``minLength``,
``maxLength``), array constraints beyond ``minItems`` 0 or 1, ``additionalProperties`` other than
``false``, recursive schemas, external ``$ref``: "you'll receive a 400 error with details".
"""

from __future__ import annotations

import json

import anthropic
import random

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_utils.mock_provider.errors import InvalidRequest
from course_utils.mock_provider.request import parse_messages_request
from course_utils.mock_provider.request.schema_subset import unsupported_feature
from course_utils.mock_provider.skills import SkillContext, TextOut, respond
from course_utils.mock_provider.skills.schema import instance_for, is_valid
from course_utils.models import get_model

HAIKU = "claude-haiku-5-5"
REVIEW = (
    "I love this blender, it is amazing. It cost 89 dollars and arrived on 2026-03-14. Contact me at ada@example.com."
)


def _reply(schema: dict, prompt: str = REVIEW, system: str | None = None):
    body = {
        "model": HAIKU,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": prompt}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }
    if system:
        body["system"] = system
    ctx = SkillContext(request=parse_messages_request(body), model=get_model(HAIKU), rng=random.Random(0))
    r = respond(ctx)
    return r, json.loads("".join(b.text for b in r.blocks if isinstance(b, TextOut)))


def _check(value, schema):
    validator = jsonschema.validators.validator_for(schema)
    validator(schema, format_checker=validator.FORMAT_CHECKER).validate(value)


SCHEMAS = {
    "flat": {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "summary": {"type": "string"},
            "price": {"type": "number"},
        },
        "required": ["sentiment", "summary", "price"],
        "additionalProperties": False,
    },
    "nested": {
        "type": "object",
        "properties": {
            "customer": {
                "type": "object",
                "properties": {"email": {"type": "string", "format": "email"}, "name": {"type": ["string", "null"]}},
                "required": ["email", "name"],
                "additionalProperties": False,
            },
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
                    "required": ["sku", "qty"],
                    "additionalProperties": False,
                },
                "minItems": 1,
            },
            "shipped_on": {"type": "string", "format": "date"},
        },
        "required": ["customer", "items", "shipped_on"],
        "additionalProperties": False,
    },
    "refs": {
        "$defs": {"label": {"type": "string", "enum": ["billing", "bug", "feature"]}},
        "type": "object",
        "properties": {
            "label": {"$ref": "#/$defs/label"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["label", "confidence", "tags"],
        "additionalProperties": False,
    },
    "anyof": {
        "type": "object",
        "properties": {
            "answer": {"anyOf": [{"type": "integer", "minimum": 10, "maximum": 20}, {"type": "null"}]},
            "ok": {"type": "boolean"},
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["answer", "ok", "rating"],
        "additionalProperties": False,
    },
    "array_root": {"type": "array", "items": {"type": "string", "minLength": 2}, "minItems": 2, "maxItems": 4},
    "const_and_lengths": {
        "type": "object",
        "properties": {
            "kind": {"const": "review"},
            "title": {"type": "string", "maxLength": 10},
            "code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
        },
        "required": ["kind", "title", "code"],
        "additionalProperties": False,
    },
}


_UNSUPPORTED_KEYS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "uniqueItems",
)


def _supported(node):
    """The schema as the SDKs' ``messages.parse()`` sends it: unsupported constraints stripped."""
    if isinstance(node, list):
        return [_supported(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _supported(v) for k, v in node.items() if k not in _UNSUPPORTED_KEYS}
    if out.get("minItems") not in (None, 0, 1):
        del out["minItems"]
    return out


RAW_SCHEMAS = {name: s for name, s in SCHEMAS.items() if unsupported_feature(s) is not None}
SCHEMAS = {name: _supported(s) for name, s in SCHEMAS.items()}


@pytest.mark.parametrize("name", sorted(RAW_SCHEMAS))
def test_a_schema_with_unsupported_constraints_is_a_400_naming_them(name):
    with pytest.raises(InvalidRequest, match=r"^output_config\.format\.schema: .*not supported"):
        _reply(RAW_SCHEMAS[name])


@pytest.mark.parametrize(
    "schema, message",
    [
        ({"type": "integer", "minimum": 1}, "For 'integer' type, property 'minimum' is not supported"),
        (
            {"type": "number", "minimum": 0, "maximum": 1},
            "For 'number' type, properties maximum, minimum are not supported",
        ),
        ({"type": "string", "maxLength": 10}, "For 'string' type, property 'maxLength' is not supported"),
        (
            {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "'minItems' values other than 0 or 1 are not supported",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
            "'additionalProperties' values other than false are not supported",
        ),
        ({"type": "object", "properties": {"next": {"$ref": "#"}}, "additionalProperties": False}, "Recursive schemas"),
        ({"$ref": "https://example.com/schema.json"}, "External $ref is not supported"),
    ],
)
def test_unsupported_features_through_the_sdk(make_server, schema, message):
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    with pytest.raises(anthropic.BadRequestError) as err:
        srv.client(max_retries=0).messages.create(
            model=HAIKU,
            max_tokens=100,
            messages=[{"role": "user", "content": "hi"}],
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
    assert err.value.status_code == 400 and message in err.value.message


def test_supported_features_are_accepted():
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1},
            "kind": {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]},
            "ref": {"$ref": "#/$defs/leaf"},
        },
        "required": ["tags", "kind", "ref"],
        "additionalProperties": False,
        "$defs": {"leaf": {"type": "object", "properties": {"x": {"type": "integer"}}, "additionalProperties": False}},
    }
    assert unsupported_feature(schema) is None
    _, value = _reply(schema)
    _check(value, schema)


@pytest.mark.parametrize("name", SCHEMAS)
def test_reply_validates_against_the_schema(name):
    r, value = _reply(SCHEMAS[name])
    assert r.skill == "structured"
    _check(value, SCHEMAS[name])


def test_values_come_from_the_content():
    _, value = _reply(SCHEMAS["flat"])
    assert value["sentiment"] in ("positive", "negative", "neutral") and value["price"] == 89
    _, value = _reply(SCHEMAS["nested"])
    assert value["customer"]["email"] == "ada@example.com" and value["shipped_on"] == "2026-03-14"


def test_the_schema_wins_over_a_prompt_that_asks_for_something_else():
    schema = {
        "type": "object",
        "properties": {"category": {"type": "string", "enum": ["billing", "bug"]}},
        "required": ["category"],
        "additionalProperties": False,
    }
    r, value = _reply(schema, prompt="Summarize this: I was charged twice for my invoice, please refund me.")
    assert r.skill == "structured" and value == {"category": "billing"}


# Random schemas from the subset structured outputs support: every generated instance validates.
_scalar = st.one_of(
    st.just({"type": "string"}),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.builds(
        lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
        st.integers(-50, 50),
        st.integers(0, 20),
    ),
    st.builds(lambda lo: {"type": "number", "exclusiveMinimum": lo}, st.floats(-10, 10, allow_nan=False)),
    st.lists(st.text("abcxyz", min_size=1, max_size=5), min_size=1, max_size=4, unique=True).map(
        lambda xs: {"type": "string", "enum": xs}
    ),
    st.sampled_from([{"type": "string", "format": f} for f in ("date", "date-time", "email", "uuid", "uri")]),
    st.builds(
        lambda lo, extra: {"type": "string", "minLength": lo, "maxLength": lo + extra},
        st.integers(0, 5),
        st.integers(0, 5),
    ),
)
_names = st.text("abcdefghij_", min_size=1, max_size=8)
_schemas = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.dictionaries(_names, inner, min_size=1, max_size=4).map(
            lambda props: {
                "type": "object",
                "properties": props,
                "required": sorted(props),
                "additionalProperties": False,
            }
        ),
        st.builds(lambda items, lo: {"type": "array", "items": items, "minItems": lo}, inner, st.integers(0, 3)),
        st.lists(inner, min_size=1, max_size=3).map(lambda opts: {"anyOf": opts}),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_schemas)
def test_any_supported_schema_gets_a_valid_instance(schema):
    value = instance_for(schema, lambda key, hint: None)
    assert is_valid(value, schema), (schema, value)
    if unsupported_feature(schema) is not None:  # a constraint outside the subset: the API's 400
        with pytest.raises(InvalidRequest, match="not supported"):
            _reply(schema)
        schema = _supported(schema)
    r, value = _reply(schema)
    _check(value, schema)


def test_through_the_sdk(make_server):
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    client = srv.client()
    schema = SCHEMAS["refs"]
    msg = client.messages.create(
        model=HAIKU,
        max_tokens=400,
        messages=[{"role": "user", "content": "The app crashes when I click save."}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    value = json.loads("".join(b.text for b in msg.content if b.type == "text"))
    _check(value, schema)
    assert value["label"] == "bug"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]},  # no finite instance
        {"$ref": "#"},
        {"type": "object", "properties": 5},
        {"type": "array", "items": "x", "minItems": 3},
        {"type": "string", "pattern": "(", "minLength": "a"},
        {"type": "integer", "minimum": 5, "maximum": 1},
        {"anyOf": []},
        {"enum": []},
        {"type": "object", "required": [1, 2]},
        {"allOf": [{"$ref": "#/$defs/x"}]},
        {"type": "number", "multipleOf": 0},
    ],
)
def test_strange_schemas_never_make_a_server_error(make_server, schema):
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    try:
        r = srv.client(max_retries=0).messages.with_raw_response.create(
            model=HAIKU,
            max_tokens=200,
            messages=[{"role": "user", "content": "hi"}],
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
    except anthropic.BadRequestError as exc:  # invalid, or outside the supported subset: the caller's error
        assert exc.status_code == 400 and ("invalid JSON schema" in exc.message or "not supported" in exc.message)
        return
    assert r.status_code == 200
    json.loads("".join(b.text for b in r.parse().content if b.type == "text"))
