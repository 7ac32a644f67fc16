"""Lesson 01 checks: the solutions pass, plausible wrong answers are rejected, stubs are not attempted."""

from __future__ import annotations

import copy
import functools
import json

import pytest

import course_utils.checks as checks
from _checks import assert_rejected
import course_utils.context
import course_utils.context.strategies
from course_utils import tokens
from course_utils.checks.lesson01 import MAX_TOKENS, MODEL, SYSTEM
from course_utils.checks.sim import probe
from course_utils.context import (
    Prompt,
    SlidingWindow,
    account,
    compose_request,
    group_turns,
    request_tokens,
    sliding_window as reference_window,
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
    return sum(tokens.count_blocks(m["content"]) for m in body["messages"]) + tokens.count_blocks(
        body.get("system") or ""
    )


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


def system_overhead_always(body):
    total = count_request_tokens(body)
    if "system" in body and not body["system"]:
        total += tokens.SYSTEM_OVERHEAD  # "there is a system key"
    if "tools" in body and not body["tools"]:
        total += tokens.TOOLS_OVERHEAD
    return total


def tools_overhead_per_tool(body):
    tools = body.get("tools") or []
    return count_request_tokens(body) + tokens.TOOLS_OVERHEAD * max(0, len(tools) - 1)


def first_tool_only(body):
    tools = body.get("tools") or []
    return count_request_tokens({**body, "tools": tools[:1]})


def tool_names_only(body):
    tools = body.get("tools") or []
    return count_request_tokens({**body, "tools": None}) + (
        tokens.TOOLS_OVERHEAD + sum(tokens.count_text(t["name"]) for t in tools) if tools else 0
    )


def overhead_per_user_message(body):
    assistants = sum(m["role"] == "assistant" for m in body["messages"])
    return count_request_tokens(body) - tokens.MESSAGE_OVERHEAD * assistants


def no_request_overhead(body):
    return count_request_tokens(body) - tokens.REQUEST_OVERHEAD


def pops_system(body):
    system = body.pop("system", None)  # "counted separately"
    return count_request_tokens(body) + (tokens.SYSTEM_OVERHEAD + tokens.count_blocks(system) if system else 0)


def counts_words(body):
    text = " ".join(str(m["content"]) for m in body["messages"]) + str(body.get("system") or "")
    return len(text.split()) + tokens.REQUEST_OVERHEAD


def tool_results_as_text_only(body):
    # Counts tool_result content but forgets tool_use blocks (their name and input).
    total = count_request_tokens({**body, "messages": []})
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, list):
            content = [b for b in content if b.get("type") != "tool_use"]
        total += tokens.MESSAGE_OVERHEAD + tokens.count_blocks(content)
    return total


def system_blocks_first_only(body):
    system = body.get("system")
    if isinstance(system, list):
        system = system[:1]
    return count_request_tokens({**body, "system": system})


def system_string_only(body):
    system = body.get("system")
    return count_request_tokens({**body, "system": system if isinstance(system, str) else None})


def tools_as_json_text(body):
    tools = body.get("tools") or []
    return count_request_tokens({**body, "tools": None}) + (
        tokens.TOOLS_OVERHEAD + sum(tokens.count_text(json.dumps(t)) for t in tools) if tools else 0
    )


def one_message_overhead(body):
    return count_request_tokens(body) - tokens.MESSAGE_OVERHEAD * max(0, len(body["messages"]) - 1)


def returns_str(body):
    return str(count_request_tokens(body))


def counts_roles(body):
    return count_request_tokens(body) + sum(tokens.count_text(m["role"]) for m in body["messages"])


class _Counter:
    """A callable object that delegates to the library (forbid sees through it)."""

    def __call__(self, body):
        return account(body).total


def counts_with_dict_of_parts(body):
    # A correct alternative: each part named, then summed; isinstance for the system forms.
    system = body.get("system") or []
    parts = {
        "request": tokens.REQUEST_OVERHEAD,
        "system": (
            tokens.SYSTEM_OVERHEAD + sum(tokens.count_blocks([b]) if isinstance(b, dict) else 0 for b in system)
            if isinstance(system, list) and system
            else tokens.SYSTEM_OVERHEAD + tokens.count_blocks(system)
            if system
            else 0
        ),
        "tools": tokens.TOOLS_OVERHEAD + sum(map(tokens.count_tool, body["tools"])) if body.get("tools") else 0,
        "messages": sum(tokens.MESSAGE_OVERHEAD + tokens.count_blocks(m["content"]) for m in body["messages"]),
    }
    return sum(parts.values())


@pytest.mark.parametrize("answer", [count_request_tokens, counts_with_dict_of_parts])
def test_1_1_solution_passes(answer):
    result = checks.check("1.1", answer)
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
    [
        calls_count_request,
        lambda body: tokens.count_request(body),
        calls_account,
        request_tokens,
        calls_imported_count_request,
        calls_prompt_tokens,
        swallows_the_refusal,
        binds_count_request_as_default,
        _closes_over_account(),
        _asks_the_api(),
        functools.partial(tokens.count_request),
        _Counter(),
    ],
    ids=[
        "tokens.count_request",
        "lambda",
        "account",
        "request_tokens",
        "imported",
        "Prompt.tokens",
        "swallowed",
        "default argument",
        "closure",
        "API count_tokens",
        "partial",
        "callable object",
    ],
)
def test_1_1_delegating_to_the_library_is_rejected(answer):
    assert_rejected("1.1", answer, "write it yourself")
    result = checks.check("1.1", answer)
    assert result.points == 0, result.feedback


def test_1_1_count_tokens_through_the_notebooks_client_is_rejected(client):
    # The notebook's own client (a real simulator over HTTP, like course_utils.client()), in the
    # answer's globals: the API's count_tokens is the library by another route.
    notebook_client = client

    def asks_the_notebooks_client(body):
        params = {k: v for k, v in body.items() if k != "max_tokens"}
        return notebook_client.messages.count_tokens(**params).input_tokens

    assert_rejected("1.1", asks_the_notebooks_client, "write it yourself")
    assert checks.check("1.1", asks_the_notebooks_client, quiet=True).points == 0


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
        (system_overhead_always, "system='' and tools=[]"),
        (tools_overhead_per_tool, "TOOLS_OVERHEAD is paid once"),
        (first_tool_only, "3 tools"),
        (tool_names_only, "count_tool"),
        (overhead_per_user_message, "MESSAGE_OVERHEAD"),
        (no_request_overhead, "REQUEST_OVERHEAD"),
        (pops_system, "modified the body"),
        (counts_words, "differs from count_tokens"),
        (tool_results_as_text_only, "tool_use and tool_result"),
        (system_blocks_first_only, "count every block"),
        (system_string_only, "count every block"),
        (tools_as_json_text, "count_tool"),
        (one_message_overhead, "MESSAGE_OVERHEAD"),
        (returns_str, "not an int"),
        (counts_roles, "differs from count_tokens"),
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
    return {
        **body,
        "messages": reference_window(body["messages"], budget, system=body.get("system"), tools=body.get("tools")),
    }


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


def stops_at_or_over(body, budget):
    kept, used = [], tokens.count_request({**body, "messages": []})
    for turn in reversed(group_turns(body["messages"])):
        cost = sum(tokens.MESSAGE_OVERHEAD + tokens.count_blocks(m["content"]) for m in turn)
        if used + cost >= budget:  # "must stay under the budget"
            break
        kept.insert(0, turn)
        used += cost
    return {**body, "messages": [m for turn in kept for m in turn]}


def always_drops_one(body, budget):
    trimmed = sliding_window(body, budget)
    turns = group_turns(trimmed["messages"])
    return {**trimmed, "messages": [m for t in turns[1:] for m in t]} if len(turns) > 1 else trimmed


def trims_in_place(body, budget):
    body["messages"] = sliding_window(body, budget)["messages"]
    return body


def newest_first_order(body, budget):
    turns = group_turns(sliding_window(body, budget)["messages"])
    return {**body, "messages": [m for t in reversed(turns) for m in t]}


def skips_big_turns(body, budget):
    # `continue` instead of `break`: keeps older turns past one that does not fit, leaving a gap.
    kept, used = [], tokens.count_request({**body, "messages": []})
    for turn in reversed(group_turns(body["messages"])):
        cost = sum(tokens.MESSAGE_OVERHEAD + tokens.count_blocks(m["content"]) for m in turn)
        if used + cost > budget:
            continue
        kept.insert(0, turn)
        used += cost
    return {**body, "messages": [m for turn in kept for m in turn]}


def drops_tools(body, budget):
    trimmed = sliding_window(body, budget)
    trimmed.pop("tools", None)
    return trimmed


def forgets_request_overhead(body, budget):
    return {**body, "messages": sliding_window(body, budget + tokens.REQUEST_OVERHEAD)["messages"]}


def crashes_on_empty(body, budget):
    if not body["messages"]:
        return None  # "nothing to trim"
    return sliding_window(body, budget)


def last_five_turns(body, budget):
    turns = group_turns(body["messages"])[-5:]
    return {**body, "messages": [m for t in turns for m in t]}


def returns_messages_list(body, budget):
    return sliding_window(body, budget)["messages"]


def budget_without_tools(body, budget):
    return {**body, "messages": sliding_window({**body, "tools": None}, budget)["messages"]}


def shares_the_messages_list(body, budget):
    kept = sliding_window(body, budget)["messages"]
    out = copy.copy(body)  # a shallow copy shares the messages list with the caller
    out["messages"].clear()
    out["messages"].extend(kept)
    return out


def pops_oldest_until_it_fits(body, budget):
    # A correct alternative: drop whole turns from the front while the request is over the budget.
    turns = group_turns(copy.deepcopy(body["messages"]))
    while turns and tokens.count_request({**body, "messages": [m for t in turns for m in t]}) > budget:
        turns.pop(0)
    return dict(body, messages=[m for t in turns for m in t])


@pytest.mark.parametrize(
    "answer",
    [calls_reference, calls_strategy, calls_module_attribute, binds_reference_as_default],
    ids=["sliding_window", "SlidingWindow", "module attribute", "default argument"],
)
def test_1_2_delegating_to_the_library_is_rejected(answer):
    assert_rejected("1.2", answer, "write it yourself")
    assert checks.check("1.2", answer).points == 0


@pytest.mark.parametrize("answer", [sliding_window, pops_oldest_until_it_fits])
def test_1_2_solution_passes(answer):
    result = checks.check("1.2", answer)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (by_message_count, "over the budget"),
        (drops_system, "system prompt was changed or dropped"),
        (splits_tool_pairs, "not a valid conversation"),
        (exceeds_budget, "over the budget"),
        (too_cautious, "expected the newest"),
        (oldest_first, "but not the newest ones"),
        (clears_messages_2, "modified the body"),
        (drops_system_after_2, "modified the body"),
        (stops_at_or_over, "not >="),
        (always_drops_one, "expected the newest"),
        (trims_in_place, "modified the body"),
        (newest_first_order, "not a valid conversation"),
        (skips_big_turns, "expected the newest"),
        (drops_tools, "tools were changed or dropped"),
        (forgets_request_overhead, "one more than the budget"),
        (crashes_on_empty, "not a request body"),
        (last_five_turns, "over the budget"),
        (returns_messages_list, "not a request body"),
        (budget_without_tools, "over the budget"),
        (shares_the_messages_list, "modified the body"),
    ],
)
def test_1_2_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("1.2", answer, phrase)


# ----- 1.3 ------------------------------------------------------------------------------------
PROMPT = "Summarize the conversation below for the agent who continues it. Keep all facts the user stated."


def _over(summary, messages, threshold):
    return (
        tokens.count_request(compose_request(SYSTEM, summary, messages, model=MODEL, max_tokens=MAX_TOKENS)) > threshold
    )


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
    reply = client.messages.create(
        model=MODEL,
        max_tokens=400,
        messages=[{"role": "user", "content": f"Here is what we discussed earlier:\n{summary}\n{transcript(folded)}"}],
    )
    return reply.content[0].text, turns[-1]


def keeps_last_two_messages(client, summary, messages, threshold):
    if not _over(summary, messages, threshold):
        return summary, messages
    return _summarize(client, summary, messages[:-2]), messages[-2:]


def trims_the_callers_list(client, summary, messages, threshold):
    if not _over(summary, messages, threshold):
        return summary, messages
    turns = group_turns(messages)
    new = _summarize(client, summary, [m for t in turns[:-1] for m in t])
    messages[:] = turns[-1]  # "the history is now the newest turn"
    return new, messages


def two_requests(client, summary, messages, threshold):
    # Summarizes the new turns, then merges with the old summary in a second request.
    if not _over(summary, messages, threshold):
        return summary, messages
    turns = group_turns(messages)
    fresh = _summarize(client, "", [m for t in turns[:-1] for m in t])
    merged = _summarize(client, summary, [{"role": "user", "content": fresh}])
    return merged, turns[-1]


def asks_count_tokens(client, summary, messages, threshold):
    # Measures with the API on every call: a request even under the threshold.
    body = compose_request(SYSTEM, summary, messages, model=MODEL, max_tokens=MAX_TOKENS)
    used = client.messages.count_tokens(**{k: v for k, v in body.items() if k != "max_tokens"}).input_tokens
    if used <= threshold:
        return summary, messages
    turns = group_turns(messages)
    return _summarize(client, summary, [m for t in turns[:-1] for m in t]), turns[-1]


def compacts_at_the_threshold(client, summary, messages, threshold):
    # ">=": a request of exactly the threshold is compacted too.
    if tokens.count_request(compose_request(SYSTEM, summary, messages, model=MODEL, max_tokens=MAX_TOKENS)) < threshold:
        return summary, messages
    turns = group_turns(messages)
    return _summarize(client, summary, [m for t in turns[:-1] for m in t]), turns[-1]


def summarizes_on_haiku(client, summary, messages, threshold):
    # "A cheaper model is good enough for summaries."
    if not _over(summary, messages, threshold):
        return summary, messages
    turns = group_turns(messages)
    folded = [m for t in turns[:-1] for m in t]
    request = f"{PROMPT}\n\nPrevious summary:\n{summary or '(none)'}\n\nNew turns:\n{transcript(folded)}"
    reply = client.messages.create(
        model="claude-haiku-4-5", max_tokens=400, messages=[{"role": "user", "content": request}]
    )
    return reply.content[0].text, turns[-1]


def instruction_in_system(client, summary, messages, threshold):
    # A correct alternative: the instruction as the system prompt, the material as the user turn.
    if (
        tokens.count_request(compose_request(SYSTEM, summary, messages, model=MODEL, max_tokens=MAX_TOKENS))
        <= threshold
    ):
        return summary, messages
    *old, newest = group_turns(messages)
    material = f"Previous summary:\n{summary or '(none)'}\n\nNew turns:\n{transcript([m for t in old for m in t])}"
    reply = client.messages.create(
        model=MODEL, max_tokens=400, system=PROMPT, messages=[{"role": "user", "content": material}]
    )
    return "".join(b.text for b in reply.content if b.type == "text"), list(newest)


@pytest.mark.parametrize("answer", [compact, instruction_in_system])
def test_1_3_solution_passes(answer):
    result = checks.check("1.3", answer)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (never_compacts, "prompt is too long"),
        (drops_without_summary, "fact questions were answered wrongly"),
        (summarizes_every_turn, "yet compact made"),
        (forgets_old_summary, "fact questions were answered wrongly"),
        (folds_everything, "the conversation crashed"),
        (no_summarize_instruction, "none of which the model took as a request to summarize"),
        (keeps_last_two_messages, "not the newest whole turns"),
        (trims_the_callers_list, "modified the messages list"),
        (two_requests, "compact made 2 request(s)"),
        (asks_count_tokens, "under the threshold of 2500 and compact made 1 request(s)"),
        (compacts_at_the_threshold, "MORE than the threshold"),
        (summarizes_on_haiku, "compact sent requests to claude-haiku-4-5"),
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


def marks_in_place(body):
    body["system"][0]["cache_control"] = {"type": "ephemeral"}
    return body


def invalid_cache_type(body):
    body = copy.deepcopy(body)
    body["system"][0] = {**body["system"][0], "cache_control": {"type": "persistent"}}
    return body


def on_last_message(body):
    body = copy.deepcopy(body)
    last = body["messages"][-1]
    last["content"] = [{"type": "text", "text": last["content"], "cache_control": {"type": "ephemeral"}}]
    return body


def drops_the_state_block(body):
    body = copy.deepcopy(body)
    body["system"] = [{**body["system"][0], "cache_control": {"type": "ephemeral"}}]  # "it changes anyway"
    return body


def cache_control_as_string(body):
    body = copy.deepcopy(body)
    body["system"][0]["cache_control"] = "ephemeral"
    return body


def returns_system_only(body):
    return place_breakpoints(body)["system"]


def spread_copy(body):
    # A correct alternative: no deepcopy, new dicts built with spreads; the caller's body is untouched.
    first, *rest = body["system"]
    return {**body, "system": [{**first, "cache_control": {"type": "ephemeral"}}, *rest]}


@pytest.mark.parametrize("answer", [place_breakpoints, spread_copy])
def test_1_4_solution_passes(answer):
    result = checks.check("1.4", answer)
    assert result.status == "passed", result.feedback


@pytest.mark.parametrize(
    "answer, phrase",
    [
        (on_changing_part, "cache reads per turn"),
        (no_breakpoint, "cache reads per turn"),
        (automatic_caching, "cache reads per turn"),
        (merges_system, "changed beyond cache_control"),
        (marks_in_place, "modified the body"),
        (invalid_cache_type, "the API rejects your request"),
        (on_last_message, "changed beyond cache_control"),
        (drops_the_state_block, "changed beyond cache_control"),
        (cache_control_as_string, "the API rejects your request"),
        (returns_system_only, "not a request body"),
    ],
)
def test_1_4_wrong_answers_are_rejected(answer, phrase):
    assert_rejected("1.4", answer, phrase)


def test_1_4_breakpoint_on_the_changing_part_costs_more():
    result = checks.check("1.4", on_changing_part)
    cost_case = [c for c in result.cases if "costs less" in c.name][0]
    assert not cost_case.passed


# ----- properties: the contract holds for all inputs -------------------------------------------
from hypothesis import given, settings  # noqa: E402 - grouped with the property tests they serve
from hypothesis import strategies as st  # noqa: E402 - grouped with the property tests they serve

from course_utils.checks.lesson01 import TOOLS, sample_history  # noqa: E402 - grouped with the tests they serve


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=24),
    st.integers(min_value=0, max_value=4),
    st.integers(min_value=0, max_value=250),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=4_000),
)
def test_1_2_the_window_contract_holds_for_all_budgets(turns, tool_every, offset, n_tools, extra):
    """For any conversation and any budget the newest turn fits (as the contract promises): the
    solution and the correct alternative agree with the library's window, fit the budget, keep whole
    newest turns, and leave the body as it was."""
    body = {"model": MODEL, "system": SYSTEM, "messages": sample_history(turns, tool_every=tool_every, offset=offset)}
    if n_tools:
        body["tools"] = TOOLS[:n_tools]
    budget = tokens.count_request({**body, "messages": group_turns(body["messages"])[-1]}) + extra
    original = copy.deepcopy(body)
    want = reference_window(body["messages"], budget, system=SYSTEM, tools=body.get("tools"))
    for answer in (sliding_window, pops_oldest_until_it_fits):
        got = answer(body, budget)
        assert got["messages"] == want and body == original
        if got["messages"]:
            assert tokens.count_request(got) <= budget
            assert group_turns(got["messages"]) == group_turns(body["messages"])[-len(group_turns(got["messages"])) :]
