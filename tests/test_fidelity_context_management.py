"""Server-side context management through the official SDK over HTTP (docs/api-notes.md §14.1):
compaction (``compact_20260112``), tool-result clearing (``clear_tool_uses_20250919``) and thinking
clearing (``clear_thinking_20251015``), streamed and not, their usage and billing, and their 400s."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

import course_utils
from course_utils.mock_provider.context_edits import PLACEHOLDER, SIM_MIN_COMPACT_TRIGGER

TEACH = "sim-teaching-4k"
COMPACT_BETA = ["compact-2026-01-12"]
EDIT_BETA = ["context-management-2025-06-27"]
FACTS = ["My order number is 4417.", "My dog is called Biscuit.", "My flight leaves on March 3."]


@pytest.fixture(scope="module")
def server():
    with course_utils.mock_server(seed=0, time_scale=0, rate_limit_tier="unlimited") as srv:
        yield srv


@pytest.fixture()
def client(server) -> anthropic.Anthropic:
    server.reset()
    return server.client()


def _compact(value: int = 2500, **extra: Any) -> dict[str, Any]:
    return {"edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": value}, **extra}]}


def _chat_until_compaction(client, *, stream: bool = False, **extra: Any):
    """Chat on the teaching model until a reply opens with a compaction block; (messages, reply)."""
    msgs: list[dict[str, Any]] = []
    for i in range(60):
        text = FACTS[i] if i < len(FACTS) else f"Tell me about topic {i} and the weather in city {i}, in some detail."
        msgs.append({"role": "user", "content": text})
        kwargs = dict(
            betas=COMPACT_BETA, model=TEACH, max_tokens=200, messages=msgs, context_management=_compact(**extra)
        )
        if stream:
            with client.beta.messages.stream(**kwargs) as s:
                events = list(s)
                reply = s.get_final_message()
        else:
            events, reply = [], client.beta.messages.create(**kwargs)
        if reply.content and reply.content[0].type == "compaction":
            return msgs, reply, events
        msgs.append({"role": "assistant", "content": reply.content})
    raise AssertionError("compaction never triggered")


def test_compaction_block_opens_the_reply_and_usage_lists_both_iterations(client, server) -> None:
    msgs, reply, _ = _chat_until_compaction(client)
    block = reply.content[0]
    assert block.content.startswith("Summary:") and "4417" in block.content
    assert [b.type for b in reply.content[1:]] == ["text"]
    kinds = [it.type for it in reply.usage.iterations]
    assert kinds == ["compaction", "message"]
    comp, msg = reply.usage.iterations
    # The summarizing step read the whole conversation; the reply read the compacted context.
    assert comp.input_tokens >= 2500 > msg.input_tokens == reply.usage.input_tokens
    assert msg.output_tokens == reply.usage.output_tokens
    assert reply.context_management.applied_edits == []
    row = server.ledger().iloc[-1]
    assert row["input_tokens"] == comp.input_tokens + msg.input_tokens  # both steps billed
    assert row["output_tokens"] == comp.output_tokens + msg.output_tokens


def test_later_requests_drop_everything_before_the_compaction_block(client) -> None:
    msgs, reply, _ = _chat_until_compaction(client)
    msgs.append({"role": "assistant", "content": reply.content})
    msgs.append({"role": "user", "content": "What is my order number?"})
    follow = client.beta.messages.create(
        betas=COMPACT_BETA, model=TEACH, max_tokens=200, messages=msgs, context_management=_compact()
    )
    assert follow.content[0].type == "text" and "4417" in course_utils.text_of(follow)
    assert follow.usage.input_tokens < 2500 and follow.usage.iterations is None
    # The same history without compaction would not even fit the teaching model's window.
    plain = client.messages.count_tokens(
        model=TEACH,
        messages=[m if isinstance(m["content"], str) else {**m, "content": _plain(m["content"])} for m in msgs],
    )
    assert plain.input_tokens > follow.usage.input_tokens


def _plain(blocks) -> list[dict[str, Any]]:
    out = [{"type": "text", "text": b.content} if b.type == "compaction" else b.model_dump() for b in blocks]
    return [{k: v for k, v in b.items() if k in ("type", "text")} for b in out]


def test_below_the_trigger_nothing_is_compacted(client) -> None:
    reply = client.beta.messages.create(
        betas=COMPACT_BETA,
        model=TEACH,
        max_tokens=50,
        messages=[{"role": "user", "content": "Hello there."}],
        context_management=_compact(),
    )
    assert all(b.type != "compaction" for b in reply.content)
    assert reply.usage.iterations is None and reply.context_management.applied_edits == []


def test_streamed_compaction_sends_the_block_first_then_the_reply(client) -> None:
    _, reply, events = _chat_until_compaction(client, stream=True)
    starts = [e for e in events if e.type == "content_block_start"]
    assert starts[0].index == 0 and starts[0].content_block.type == "compaction"
    deltas = [e for e in events if e.type == "content_block_delta" and e.index == 0]
    assert [d.delta.type for d in deltas] == ["compaction_delta"]
    assert deltas[0].delta.content == reply.content[0].content
    assert starts[1].index == 1 and starts[1].content_block.type == "text"
    assert [it.type for it in reply.usage.iterations] == ["compaction", "message"]
    assert reply.context_management.applied_edits == []


def test_streamed_compaction_bills_the_summary(client, server) -> None:
    _, reply, _ = _chat_until_compaction(client, stream=True)
    row = server.ledger().iloc[-1]
    comp, msg = reply.usage.iterations
    assert row["output_tokens"] == comp.output_tokens + msg.output_tokens


def test_pause_after_compaction_returns_the_block_alone(client) -> None:
    _, reply, _ = _chat_until_compaction(client, pause_after_compaction=True)
    assert reply.stop_reason == "compaction"
    assert [b.type for b in reply.content] == ["compaction"]


@pytest.mark.parametrize(
    "cm, message",
    [
        ({"edits": [{"type": "compact_2025"}]}, "does not match any of the expected tags"),
        ({"edits": [{"type": "compact_20260112", "trigger": {"type": "tool_uses", "value": 60000}}]}, "trigger.type"),
        ({"edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 10}}]}, ">= "),
        ({"edits": [{"type": "compact_20260112", "pause_after_compaction": "yes"}]}, "pause_after_compaction"),
        ({"edits": [{"type": "compact_20260112", "surprise": 1}]}, "Extra inputs are not permitted"),
        ({"edit": []}, "context_management.edit"),
    ],
)
def test_invalid_configurations_are_400s(client, cm, message) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.messages.create(
            betas=COMPACT_BETA,
            model="claude-sonnet-5-5",
            max_tokens=20,
            messages=[{"role": "user", "content": "Hi"}],
            context_management=cm,
        )
    assert err.value.body["error"]["type"] == "invalid_request_error"
    text = err.value.body["error"]["message"]
    assert (message in text) or (message == ">= " and "greater than or equal to 50000" in text)


def test_a_real_model_refuses_a_trigger_under_50000_and_the_teaching_model_a_trigger_under_its_floor(client) -> None:
    kwargs = dict(betas=COMPACT_BETA, max_tokens=20, messages=[{"role": "user", "content": "Hi"}])
    client.beta.messages.create(model="claude-sonnet-5-5", context_management=_compact(50_000), **kwargs)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.messages.create(model="claude-sonnet-5-5", context_management=_compact(49_999), **kwargs)
    client.beta.messages.create(model=TEACH, context_management=_compact(SIM_MIN_COMPACT_TRIGGER), **kwargs)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.messages.create(model=TEACH, context_management=_compact(SIM_MIN_COMPACT_TRIGGER - 1), **kwargs)


def test_missing_beta_and_unsupported_model_are_400s(client) -> None:
    with pytest.raises(anthropic.BadRequestError, match="compact-2026-01-12"):
        client.beta.messages.create(
            betas=EDIT_BETA,
            model="claude-sonnet-5-5",
            max_tokens=20,
            messages=[{"role": "user", "content": "Hi"}],
            context_management=_compact(60_000),
        )
    with pytest.raises(anthropic.BadRequestError, match="not supported on model claude-haiku-4-5"):
        client.beta.messages.create(
            betas=COMPACT_BETA,
            model="claude-haiku-4-5",
            max_tokens=20,
            messages=[{"role": "user", "content": "Hi"}],
            context_management=_compact(60_000),
        )


# ----- context editing --------------------------------------------------------------------------------
TOOLS = [
    {
        "name": "lookup",
        "description": "Look up a record.",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
    {
        "name": "pinned",
        "description": "A record never cleared.",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
]


def _tool_history(n: int, name: str = "lookup") -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    for i in range(n):
        msgs.append({"role": "user", "content": f"Look up record {i}."})
        msgs.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"tu_{i}", "name": name, "input": {"q": str(i)}}],
            }
        )
        result = " ".join(f"Record {i} line {j}: value {i * j}." for j in range(40))
        msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"tu_{i}", "content": result}]})
    return msgs


def _clear(**edit: Any) -> dict[str, Any]:
    return {"edits": [{"type": "clear_tool_uses_20250919", **edit}]}


def test_clear_tool_uses_keeps_the_last_ones_and_reports_what_it_cleared(client) -> None:
    msgs = _tool_history(6)
    kwargs = dict(model="claude-sonnet-5-5", max_tokens=50, tools=TOOLS, messages=msgs)
    plain = client.beta.messages.create(betas=EDIT_BETA, **kwargs)
    edited = client.beta.messages.create(
        betas=EDIT_BETA,
        context_management=_clear(
            trigger={"type": "input_tokens", "value": 1000}, keep={"type": "tool_uses", "value": 2}
        ),
        **kwargs,
    )
    (applied,) = edited.context_management.applied_edits
    assert applied.type == "clear_tool_uses_20250919" and applied.cleared_tool_uses == 4
    assert applied.cleared_input_tokens == plain.usage.input_tokens - edited.usage.input_tokens > 0


def test_clear_tool_uses_defaults_do_not_trigger_on_a_short_history(client) -> None:
    reply = client.beta.messages.create(
        betas=EDIT_BETA,
        model="claude-sonnet-5-5",
        max_tokens=50,
        tools=TOOLS,
        messages=_tool_history(6),
        context_management=_clear(),  # trigger 100,000 input tokens by default
    )
    assert reply.context_management.applied_edits == []


def test_clear_at_least_and_exclude_tools(client) -> None:
    kwargs = dict(betas=EDIT_BETA, model="claude-sonnet-5-5", max_tokens=50, tools=TOOLS)
    too_much = client.beta.messages.create(
        messages=_tool_history(6),
        context_management=_clear(
            trigger={"type": "tool_uses", "value": 3}, clear_at_least={"type": "input_tokens", "value": 10**6}
        ),
        **kwargs,
    )
    assert too_much.context_management.applied_edits == []
    pinned = client.beta.messages.create(
        messages=_tool_history(6, name="pinned"),
        context_management=_clear(trigger={"type": "tool_uses", "value": 3}, exclude_tools=["pinned"]),
        **kwargs,
    )
    assert pinned.context_management.applied_edits == []


def test_clearing_changes_the_prefix_so_the_cache_is_written_again(client) -> None:
    msgs = _tool_history(6)
    msgs[0] = {
        "role": "user",
        "content": [{"type": "text", "text": "Look up record 0.", "cache_control": {"type": "ephemeral"}}],
    }
    msgs[-1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    kwargs = dict(betas=EDIT_BETA, model="claude-sonnet-5-5", max_tokens=50, tools=TOOLS, messages=msgs)
    first = client.beta.messages.create(**kwargs)
    again = client.beta.messages.create(**kwargs)
    assert again.usage.cache_read_input_tokens > 0
    edited = client.beta.messages.create(
        context_management=_clear(trigger={"type": "tool_uses", "value": 3}, keep={"type": "tool_uses", "value": 1}),
        **kwargs,
    )
    assert first.usage.cache_creation_input_tokens > 0
    assert edited.usage.cache_read_input_tokens < again.usage.cache_read_input_tokens
    assert edited.usage.cache_creation_input_tokens > 0


def test_placeholder_is_what_the_model_sees(client, server) -> None:
    msgs = _tool_history(4)
    client.beta.messages.create(
        betas=EDIT_BETA,
        model="claude-sonnet-5-5",
        max_tokens=50,
        tools=TOOLS,
        messages=msgs,
        context_management=_clear(trigger={"type": "tool_uses", "value": 1}, keep={"type": "tool_uses", "value": 0}),
    )
    plain = client.messages.count_tokens(
        model="claude-sonnet-5-5",
        tools=TOOLS,
        messages=[
            {**m, "content": [{**m["content"][0], "content": PLACEHOLDER}]}
            if isinstance(m["content"], list) and m["content"][0]["type"] == "tool_result"
            else m
            for m in msgs
        ],
    )
    assert server.ledger().iloc[-2]["input_tokens"] == plain.input_tokens


def _thinking_history(n: int) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    for i in range(n):
        msgs.append({"role": "user", "content": f"Question {i}: what is {i} plus {i}?"})
        thought = " ".join(f"Step {j}: add {i} and {i} carefully." for j in range(30))
        msgs.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": thought, "signature": f"sig{i}"},
                    {"type": "text", "text": f"It is {2 * i}."},
                ],
            }
        )
    msgs.append({"role": "user", "content": "Thanks, and 5 plus 5?"})
    return msgs


@pytest.mark.parametrize("keep, cleared", [(None, 3), ({"type": "thinking_turns", "value": 2}, 2), ("all", 0)])
def test_clear_thinking_keeps_the_last_turns(client, keep, cleared) -> None:
    edit: dict[str, Any] = {"type": "clear_thinking_20251015"}
    if keep is not None:
        edit["keep"] = keep
    reply = client.beta.messages.create(
        betas=EDIT_BETA,
        model="claude-sonnet-5-5",
        max_tokens=2000,
        messages=_thinking_history(4),
        context_management={"edits": [edit]},
    )
    applied = reply.context_management.applied_edits
    if cleared == 0:
        assert applied == []
    else:
        assert applied[0].type == "clear_thinking_20251015" and applied[0].cleared_thinking_turns == cleared
        assert applied[0].cleared_input_tokens > 0


def test_context_editing_needs_its_beta(client) -> None:
    with pytest.raises(anthropic.BadRequestError, match="context-management-2025-06-27"):
        client.beta.messages.create(
            betas=COMPACT_BETA,
            model="claude-sonnet-5-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "Hi"}],
            context_management={"edits": [{"type": "clear_thinking_20251015"}]},
        )


@pytest.mark.parametrize(
    "messages, field",
    [
        ([{"role": "user", "content": 7}], "messages.0.content"),
        (["not a message"], "messages.0"),
        ([{"role": "user", "content": [{"type": "text"}]}], "messages.0.content.0.text"),
    ],
)
def test_a_malformed_body_with_context_management_is_the_parsers_400(client, messages, field) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.messages.create(
            betas=COMPACT_BETA + EDIT_BETA,
            model=TEACH,
            max_tokens=20,
            messages=messages,
            context_management={"edits": [{"type": "clear_thinking_20251015"}, _compact(1024)["edits"][0]]},
        )
    assert err.value.body["error"]["message"].startswith(field)
