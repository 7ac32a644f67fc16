"""Issue 13 item 10: when ``max_tokens`` cuts a tool call, the last block is the incomplete ``tool_use``.

Non-streaming and streaming agree (the stream's partial JSON is what the block's ``input`` was read
from), ``stop_reason`` is ``max_tokens``, and a call that fits is unchanged.
"""

from __future__ import annotations

import json

from course_utils.mock_provider.generation import partial_json_object

HAIKU = "claude-haiku-5-5"
TOOLS = [
    {
        "name": "lookup_order",
        "description": "Look up an order by its number",
        "input_schema": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "include_history": {"type": "boolean"}},
            "required": ["order_id"],
        },
    }
]
ASK = [{"role": "user", "content": "Where is order 4417? Include its full history please."}]


def _create(client, max_tokens, **kw):
    return client.messages.create(
        model=HAIKU, max_tokens=max_tokens, tools=TOOLS, tool_choice={"type": "any"}, messages=ASK, **kw
    )


def test_full_call_then_cut_call(client):
    full = _create(client, 400)
    assert full.stop_reason == "tool_use" and full.content[-1].type == "tool_use"
    complete_input = full.content[-1].input
    tokens = full.usage.output_tokens
    cut = _create(client, max(1, tokens - 3))
    assert cut.stop_reason == "max_tokens"
    last = cut.content[-1]
    assert last.type == "tool_use" and last.name == "lookup_order" and last.id == full.content[-1].id
    assert last.input != complete_input  # what fit, not the whole call
    assert all(complete_input.get(k) == v or isinstance(v, (str, dict, list)) for k, v in last.input.items())
    assert cut.usage.output_tokens == max(1, tokens - 3)


def test_streamed_cut_call_matches(client):
    tokens = _create(client, 400).usage.output_tokens
    plain = _create(client, tokens - 3)
    with client.messages.stream(
        model=HAIKU, max_tokens=tokens - 3, tools=TOOLS, tool_choice={"type": "any"}, messages=ASK
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.content[-1].type == "tool_use" and final.content[-1].input == plain.content[-1].input


def test_partial_json_reading():
    payload = json.dumps({"order_id": "4417", "include_history": True}, separators=(",", ":"))
    assert partial_json_object(payload) == {"order_id": "4417", "include_history": True}
    assert partial_json_object(payload[:17]) == {"order_id": "4417"}
    assert partial_json_object(payload[:15]) == {"order_id": "44"}
    assert partial_json_object("") == {} and partial_json_object('{"a":') == {}
