"""Lesson 01 checks: the solutions pass, plausible wrong answers are rejected, stubs are not attempted."""

from __future__ import annotations

import copy

import pytest

import course_utils.checks as checks
from _checks import assert_rejected
import course_utils.context
import course_utils.context.strategies
from course_utils import tokens
from course_utils.checks.lesson01 import MAX_TOKENS, MODEL, SYSTEM
from course_utils.checks.sim import probe
from course_utils.context import (
    Prompt, SlidingWindow, account, compose_request, group_turns, request_tokens, sliding_window as reference_window,
    transcript,
)
from course_utils.tokens import count_request as imported_count_request


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise: not yet")


@pytest.mark.parametrize("exercise", ["1.1", "1.2", "1.3", "1.4"])
def test_stubs_are_not_attempted(exercise):
    result = checks.check(exercise, _stub)
    assert result.status == "not_attempted" and result.points == 0, result.feedback


def test_lesson01_exercises_are_listed():
    assert [(e.id, e.points) for e in checks.exercises(1)] == [("1.1", 2), ("1.2", 3), ("1.3", 3), ("1.4", 2)]


# ----- 1.1 ------------------------------------------------------------------------------------
def count_request_tokens(body):
    total = tokens.REQUEST_OVERHEAD
    if body.get("system"):
        total += tokens.SYSTEM_OVERHEAD + tokens.count_blocks(body["system"])
    if body.get("tools"):
        total += tokens.TOOLS_OVERHEAD + sum(tokens.count_tool(t) for t in body["tools"])
    for message in body["messages"]:
        total += tokens.MESSAGE_OVERHEAD + tokens.count_blocks(message["content"])
    return total


def text_only(body):
    return sum(tokens.count_blocks(m["content"]) for m in body["messages"]) + tokens.count_blocks(body.get("system") or "")


def no_message_overhead(body):
    return count_request_tokens(body) - tokens.MESSAGE_OVERHEAD * len(body["messages"])


def ignores_system(body):
    return count_request_tokens({**body, "system": None})


def ignores_tools(body):
    return count_request_tokens({**body, "tools": None})


def string_content_only(body):
    total = tokens.REQUEST_OVERHEAD
    if body.get("system"):
        total += tokens.SYSTEM_OVERHEAD + tokens.count_blocks(body["system"])
    if body.get("tools"):
        total += tokens.TOOLS_OVERHEAD + sum(tokens.count_tool(t) for t in body["tools"])
    for m in body["messages"]:
        total += tokens.MESSAGE_OVERHEAD + (tokens.count_text(m["content"]) if isinstance(m["content"], str) else 0)
    return total


def returns_float(body):
    return float(count_request_tokens(body))


def test_1_1_solution_passes():
    result = checks.check("1.1", count_request_tokens)
    assert result.status == "passed", result.feedback


def calls_count_request(body):
    return tokens.count_request(body)


def calls_account(body):
    return account(body).total


def calls_imported_count_request(body):
    # Bound in this module's globals by ``from course_utils.tokens import count_request``.
    return imported_count_request(body)


def calls_prompt_tokens(body):
    return Prompt(body.get("system"), body["messages"], body.get("tools")).tokens


def swallows_the_refusal(body):
    try:
        return request_tokens(body)
    except Exception:
        return count_request_tokens(body)


def binds_count_request_as_default(body, _count=tokens.count_request):
    return _count(body)


def _closes_over_account():
    tally = account

    def count_(body):
        return tally(body).total

    return count_


def _asks_the_api():
    # The notebook's client, reached through the answer's globals (a closure here).
    client = probe().client()

    def count_(body):
        params = {k: v for k, v in body.items() if k != "max_tokens"}
        return client.messages.count_tokens(**params).input_tokens

    return count_


def clears_messages(body):
    total = count_request_tokens(body)
    body["messages"].clear()
    return total


def drops_system_after(body):
    total = count_request_tokens(body)
    body["system"] = None
    return total


@pytest.mark.parametrize(
    "answer",
    [calls_count_request, lambda body: tokens.count_request(body), calls_account, request_tokens,
     calls_imported_count_request, calls_prompt_tokens, swallows_the_refusal, binds_count_request_as_default,
     _closes_over_account(), _asks_the_api()],
    ids=["tokens.count_request", "lambda", "account", "request_tokens", "imported", "Prompt.tokens", "swallowed",
         "default argument", "closure", "API count_tokens"],
)
def test_1_1_delegating_to_the_library_is_rejected(answer):
    assert_rejected("1.1", answer, "write it yourself")
    result = checks.check("1.1", answer)
    assert result.points == 0, result.feedback


def test_1_1_the_library_is_restored_after_the_check():
    checks.check("1.1", calls_count_request)
    checks.check("1.1", binds_count_request_as_default)
    assert binds_count_request_as_default.__defaults__ == (tokens.count_request,)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}]}
    assert tokens.count_request(body) == request_tokens(body) == count_request_tokens(body)
    assert course_utils.context.request_tokens is request_tokens and imported_count_request is tokens.count_request


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (text_only, "differs from count_tokens"),
        (no_message_overhead, "MESSAGE_OVERHEAD"),
        (ignores_system, "SYSTEM_OVERHEAD"),
        (ignores_tools, "TOOLS_OVERHEAD"),
        (string_content_only, "tool_use and tool_result"),
        (returns_float, "not an int"),
        (clears_messages, "modified the body"),
        (drops_system_after, "modified the body"),
    ],
)
def test_1_1_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("1.1", answer, phrase)


# ----- 1.2 ------------------------------------------------------------------------------------
def sliding_window(body, budget):
    kept, used = [], tokens.count_request({**body, "messages": []})
    for turn in reversed(group_turns(body["messages"])):
        cost = sum(tokens.MESSAGE_OVERHEAD + tokens.count_blocks(m["content"]) for m in turn)
        if used + cost > budget:
            break
        kept.insert(0, turn)
        used += cost
    return {**body, "messages": [m for turn in kept for m in turn]}


def by_message_count(body, budget):
    return {**body, "messages": body["messages"][-8:]}


def drops_system(body, budget):
    trimmed = sliding_window({**body, "system": None}, budget)
    trimmed.pop("system", None)
    return trimmed


def splits_tool_pairs(body, budget):
    # Message by message, newest first: may keep a tool_result without its tool_use.
    kept, used = [], tokens.count_request({**body, "messages": []})
    for m in reversed(body["messages"]):
        cost = tokens.MESSAGE_OVERHEAD + tokens.count_blocks(m["content"])
        if used + cost > budget:
            break
        kept.insert(0, m)
        used += cost
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return {**body, "messages": kept}


def exceeds_budget(body, budget):
    # Counts only the messages' text against the budget: the system prompt and overheads are forgotten.
    kept, used = [], 0
    for turn in reversed(group_turns(body["messages"])):
        cost = sum(tokens.count_blocks(m["content"]) for m in turn)
        if used + cost > budget:
            break
        kept.insert(0, turn)
        used += cost
    return {**body, "messages": [m for turn in kept for m in turn]}


def too_cautious(body, budget):
    return sliding_window(body, budget * 3 // 4)


def oldest_first(body, budget):
    kept, used = [], tokens.count_request({**body, "messages": []})
    for turn in group_turns(body["messages"]):
        cost = sum(tokens.MESSAGE_OVERHEAD + tokens.count_blocks(m["content"]) for m in turn)
        if used + cost > budget:
            break
        kept.append(turn)
        used += cost
    return {**body, "messages": [m for turn in kept for m in turn]}


def calls_reference(body, budget):
    return {**body, "messages": reference_window(body["messages"], budget, system=body.get("system"),
                                                 tools=body.get("tools"))}


def calls_strategy(body, budget):
    prompt = SlidingWindow(budget).build(body.get("system"), body["messages"], body.get("tools"))
    return {**body, "messages": prompt.messages}


def calls_module_attribute(body, budget):
    window = course_utils.context.strategies.sliding_window
    return {**body, "messages": window(body["messages"], budget, system=body.get("system"), tools=body.get("tools"))}


def clears_messages_2(body, budget):
    trimmed = sliding_window(body, budget)
    body["messages"].clear()
    return trimmed


def drops_system_after_2(body, budget):
    trimmed = sliding_window(body, budget)
    body["system"] = None
    return trimmed


def binds_reference_as_default(body, budget, _window=course_utils.context.strategies.sliding_window):
    return {**body, "messages": _window(body["messages"], budget, system=body.get("system"), tools=body.get("tools"))}


@pytest.mark.parametrize("answer", [calls_reference, calls_strategy, calls_module_attribute, binds_reference_as_default],
                         ids=["sliding_window", "SlidingWindow", "module attribute", "default argument"])
def test_1_2_delegating_to_the_library_is_rejected(answer):
    assert_rejected("1.2", answer, "write it yourself")
    assert checks.check("1.2", answer).points == 0


def test_1_2_solution_passes():
    result = checks.check("1.2", sliding_window)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (by_message_count, "over the budget"),
        (drops_system, "system prompt was changed or dropped"),
        (splits_tool_pairs, "not a valid conversation"),
        (exceeds_budget, "over the budget"),
        (too_cautious, "expected the newest"),
        (oldest_first, "expected the newest"),
        (clears_messages_2, "modified the body"),
        (drops_system_after_2, "modified the body"),
    ],
)
def test_1_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("1.2", answer, phrase)


# ----- 1.3 ------------------------------------------------------------------------------------
PROMPT = "Summarize the conversation below for the agent who continues it. Keep all facts the user stated."


def _over(summary, messages, threshold):
    return tokens.count_request(compose_request(SYSTEM, summary, messages, model=MODEL, max_tokens=MAX_TOKENS)) > threshold


def _summarize(client, previous, folded):
    request = f"{PROMPT}\n\nPrevious summary:\n{previous or '(none)'}\n\nNew turns:\n{transcript(folded)}"
    reply = client.messages.create(model=MODEL, max_tokens=400, messages=[{"role": "user", "content": request}])
    return reply.content[0].text


def compact(client, summary, messages, threshold):
    if not _over(summary, messages, threshold):
        return summary, messages
    turns = group_turns(messages)
    folded = [m for turn in turns[:-1] for m in turn]
    return _summarize(client, summary, folded), turns[-1]


def never_compacts(client, summary, messages, threshold):
    return summary, messages


def drops_without_summary(client, summary, messages, threshold):
    if not _over(summary, messages, threshold):
        return summary, messages
    return summary, group_turns(messages)[-1]


def summarizes_every_turn(client, summary, messages, threshold):
    turns = group_turns(messages)
    if len(turns) < 2:
        return summary, messages
    return _summarize(client, summary, [m for t in turns[:-1] for m in t]), turns[-1]


def forgets_old_summary(client, summary, messages, threshold):
    if not _over(summary, messages, threshold):
        return summary, messages
    turns = group_turns(messages)
    return _summarize(client, "", [m for t in turns[:-1] for m in t]), turns[-1]


def folds_everything(client, summary, messages, threshold):
    # Folds the current question too: the request then starts with nothing (or an assistant turn).
    if not _over(summary, messages, threshold):
        return summary, messages
    return _summarize(client, summary, messages), []


def no_summarize_instruction(client, summary, messages, threshold):
    if not _over(summary, messages, threshold):
        return summary, messages
    turns = group_turns(messages)
    folded = [m for t in turns[:-1] for m in t]
    reply = client.messages.create(model=MODEL, max_tokens=400, messages=[
        {"role": "user", "content": f"Here is what we discussed earlier:\n{summary}\n{transcript(folded)}"}])
    return reply.content[0].text, turns[-1]


def test_1_3_solution_passes():
    result = checks.check("1.3", compact)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (never_compacts, "prompt is too long"),
        (drops_without_summary, "fact questions were answered wrongly"),
        (summarizes_every_turn, "yet compact made"),
        (forgets_old_summary, "fact questions were answered wrongly"),
        (folds_everything, "the conversation crashed"),
        (no_summarize_instruction, "no summarization request"),
    ],
)
def test_1_3_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("1.3", answer, phrase)


def test_1_3_summarizing_every_turn_is_caught_by_the_ledger():
    result = checks.check("1.3", summarizes_every_turn)
    ledger_case = [c for c in result.cases if "ledger" in c.name][0]
    assert not ledger_case.passed and "summarization requests in" in ledger_case.message


# ----- 1.4 ------------------------------------------------------------------------------------
def place_breakpoints(body):
    body = copy.deepcopy(body)
    body["system"][0] = {**body["system"][0], "cache_control": {"type": "ephemeral"}}
    return body


def on_changing_part(body):
    body = copy.deepcopy(body)
    body["system"][-1] = {**body["system"][-1], "cache_control": {"type": "ephemeral"}}
    return body


def no_breakpoint(body):
    return copy.deepcopy(body)


def automatic_caching(body):
    return {**copy.deepcopy(body), "cache_control": {"type": "ephemeral"}}


def merges_system(body):
    body = copy.deepcopy(body)
    text = "\n\n".join(b["text"] for b in body["system"])
    body["system"] = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
    return body


def test_1_4_solution_passes():
    result = checks.check("1.4", place_breakpoints)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (on_changing_part, "cache reads per turn"),
        (no_breakpoint, "cache reads per turn"),
        (automatic_caching, "cache reads per turn"),
        (merges_system, "changed beyond cache_control"),
    ],
)
def test_1_4_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("1.4", answer, phrase)


def test_1_4_breakpoint_on_the_changing_part_costs_more():
    result = checks.check("1.4", on_changing_part)
    cost_case = [c for c in result.cases if "costs less" in c.name][0]
    assert not cost_case.passed
