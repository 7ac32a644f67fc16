"""Issue 13 item 3: replies that are not one text block (thinking first, refusal, pause_turn), on request
through the ``x-mock-shape`` header, and ``course_utils.text_of`` that reads them by block type.
"""

from __future__ import annotations

import anthropic
import pytest

import course_utils
from course_utils import text_of

HAIKU = "claude-haiku-5-5"
ASK = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]


def _create(client, shape: str | None, **kw):
    headers = {"x-mock-shape": shape} if shape else {}
    return client.messages.create(model=HAIKU, max_tokens=200, messages=ASK, extra_headers=headers, **kw)


def test_thinking_block_first_and_text_of_reads_by_type(client):
    plain = _create(client, None)
    thought = _create(client, "thinking")
    assert thought.content[0].type == "thinking" and thought.content[0].thinking == ""
    assert thought.content[0].signature
    assert not hasattr(thought.content[0], "text")  # code reading content[0].text breaks here, as on the API
    assert text_of(thought) == text_of(plain) == plain.content[0].text
    assert thought.usage.output_tokens > plain.usage.output_tokens  # thinking is billed as output
    assert course_utils.text_of is text_of


def test_refusal_stops_early(client):
    plain = _create(client, None)
    refused = _create(client, "refusal")
    assert refused.stop_reason == "refusal"
    assert len(text_of(refused)) < len(text_of(plain)) and text_of(plain).startswith(text_of(refused))


def test_refusal_streams(client):
    with client.messages.stream(
        model=HAIKU, max_tokens=200, messages=ASK, extra_headers={"x-mock-shape": "refusal"}
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "refusal" and text_of(final) == text_of(_create(client, "refusal"))


def test_refusal_carries_stop_details_in_the_message_and_the_message_delta(client):
    """The streaming-refusals page: ``stop_details`` (type refusal; category and explanation may be null)
    arrives on ``message_delta`` and on the final Message; other replies have none."""
    assert _create(client, None).stop_details is None
    seen = []
    for i in range(8):  # different bodies draw both forms: named with an explanation, and all-null
        ask = [{"role": "user", "content": f"Explain in two sentences why the sky is blue ({i})."}]
        kwargs = dict(model=HAIKU, max_tokens=200, messages=ask, extra_headers={"x-mock-shape": "refusal"})
        whole = client.messages.create(**kwargs)
        deltas = []
        with client.messages.stream(**kwargs) as stream:
            for event in stream:
                if event.type == "message_delta":
                    deltas.append(event.delta.stop_details)
            final = stream.get_final_message()
        assert whole.stop_details.type == "refusal" and deltas == [whole.stop_details] == [final.stop_details]
        assert (whole.stop_details.category is None) == (whole.stop_details.explanation is None)
        seen.append(whole.stop_details.explanation is None)
    assert set(seen) == {True, False}


def test_pause_turn(client):
    paused = _create(client, "pause_turn")
    assert paused.stop_reason == "pause_turn" and text_of(paused) == text_of(_create(client, None))


@pytest.mark.parametrize("value", ["none", "thinkin", "refusal,thinking"])
def test_unknown_shape_is_a_400(client, value):
    with pytest.raises(anthropic.BadRequestError, match="x-mock-shape"):
        _create(client, value)


def test_forced_thinking_streams_as_a_thinking_block_first(client):
    with client.messages.stream(
        model=HAIKU, max_tokens=200, messages=ASK, extra_headers={"x-mock-shape": "thinking"}
    ) as stream:
        events = [event.type for event in stream]
        message = stream.get_final_message()
    assert [b.type for b in message.content][:2] == ["thinking", "text"]
    assert "content_block_delta" in events and text_of(message)


def test_text_of_accepts_dicts_and_block_lists():
    msg = {
        "content": [
            {"type": "thinking", "thinking": "", "signature": "s"},
            {"type": "text", "text": "a"},
            {"type": "tool_use", "id": "t", "name": "n", "input": {}},
            {"type": "text", "text": "b"},
        ]
    }
    assert text_of(msg) == "ab" and text_of(msg["content"], sep="\n") == "a\nb"
    assert text_of({"content": []}) == "" and course_utils.blocks_of(msg, "tool_use")[0]["name"] == "n"
