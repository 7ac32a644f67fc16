"""Lesson 01 reference implementation: token accounting, context strategies and the runner."""

from __future__ import annotations

import copy
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_utils import pricing, tokens
from course_utils.clock import VirtualClock
from course_utils.context import (
    SUMMARY_HEADER,
    CacheLayout,
    ContextBudgetExceeded,
    FullHistory,
    Hybrid,
    SlidingWindow,
    Summarizing,
    account,
    compare_with_api,
    group_turns,
    is_correct,
    load_conversation,
    request_tokens,
    run_conversation,
    sliding_window,
    validity_problems,
)

MODEL = "sim-teaching-4k"
SYSTEM = "You are a careful support assistant. Answer briefly."

# ----- random valid conversations ---------------------------------------------------------------
_words = st.lists(
    st.sampled_from("alpha beta gamma delta router order 4417 Lisbon reset light app plan".split()),
    min_size=1,
    max_size=40,
).map(" ".join)


@st.composite
def conversations(draw) -> list[dict]:
    """A valid history ending with the user's newest turn (text or a tool_result)."""
    messages: list[dict] = []
    n_turns = draw(st.integers(1, 12))
    tool_id = 0
    for t in range(n_turns):
        messages.append({"role": "user", "content": draw(_words)})
        last = t == n_turns - 1
        for _ in range(draw(st.integers(0, 2))):
            ids = []
            blocks = [{"type": "text", "text": draw(_words)}] if draw(st.booleans()) else []
            for _ in range(draw(st.integers(1, 2))):
                tool_id += 1
                ids.append(f"toolu_{tool_id:04d}")
                blocks.append({"type": "tool_use", "id": ids[-1], "name": "lookup", "input": {"q": draw(_words)}})
            messages.append({"role": "assistant", "content": blocks})
            messages.append(
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": i, "content": draw(_words)} for i in ids],
                }
            )
        if not last:
            messages.append({"role": "assistant", "content": draw(_words)})
    return messages


def _is_suffix(part: list, whole: list) -> bool:
    return not part or whole[-len(part) :] == part


# ----- accounting -------------------------------------------------------------------------------
BODIES = [
    {"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}]},
    {
        "model": MODEL,
        "system": SYSTEM,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is my order number?"},
        ],
    },
    {
        "model": MODEL,
        "system": [{"type": "text", "text": SYSTEM}, {"type": "text", "text": "Second block."}],
        "tools": [
            {
                "name": "lookup",
                "description": "Look an order up.",
                "input_schema": {"type": "object", "properties": {"order": {"type": "string"}}},
            }
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Find order 4417"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"order": "4417"}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "shipped on Monday"}],
            },
        ],
    },
]


@pytest.mark.parametrize("body", BODIES)
def test_request_tokens_equals_count_tokens_in_simulation(body, client):
    check = compare_with_api(client, body)
    assert check.ours == check.api == tokens.count_request(body)
    assert check.difference == 0 and check.relative_error == 0.0


def test_breakdown_adds_up_part_by_part():
    parts = account(BODIES[2])
    assert parts.request_overhead == tokens.REQUEST_OVERHEAD
    assert parts.tools > tokens.TOOLS_OVERHEAD
    assert len(parts.messages) == 3 and all(m > tokens.MESSAGE_OVERHEAD for m in parts.messages)
    assert parts.total == request_tokens(BODIES[2])


# ----- turns and validity -----------------------------------------------------------------------
def test_tool_round_trip_stays_in_one_turn():
    turns = group_turns(BODIES[2]["messages"])
    assert len(turns) == 1 and len(turns[0]) == 3


def test_validity_problems_name_each_rule():
    assert validity_problems(BODIES[2]["messages"]) == []
    assert "first message is not a user turn" in validity_problems([{"role": "assistant", "content": "hi"}])[0]
    assert any(
        "same role" in p
        for p in validity_problems([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    )
    split = BODIES[2]["messages"][2:]
    assert validity_problems(split)  # a tool_result without its tool_use


# ----- sliding window ---------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(history=conversations(), budget=st.integers(20, 1_500), with_tools=st.booleans())
def test_sliding_window_invariants(history, budget, with_tools):
    tools = BODIES[2]["tools"] if with_tools else None
    before = copy.deepcopy(history)
    try:
        prompt = SlidingWindow(budget).build(SYSTEM, history, tools)
    except ContextBudgetExceeded as exc:
        newest = group_turns(history)[-1]
        assert request_tokens({"system": SYSTEM, "tools": tools, "messages": newest}) > budget
        assert exc.needed > budget
        return
    assert history == before, "the caller's history must not change"
    assert prompt.system == SYSTEM and prompt.tools == tools
    assert validity_problems(prompt.messages) == []
    assert prompt.tokens <= budget
    assert _is_suffix(prompt.messages, history)
    # Maximal: the next older whole turn would not have fit.
    turns = group_turns(history)
    kept = len(group_turns(prompt.messages))
    if kept < len(turns):
        bigger = [m for t in turns[-kept - 1 :] for m in t]
        assert request_tokens({"system": SYSTEM, "tools": tools, "messages": bigger}) > budget


def test_sliding_window_keeps_turns_by_tokens_not_by_count():
    history = [
        {"role": "user", "content": "x " * 400},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "short"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "newest"},
    ]
    kept = sliding_window(history, 60, system=SYSTEM)
    assert kept == history[2:]


# ----- summarization ----------------------------------------------------------------------------
class FakeSummarizer:
    """A client whose summaries keep every line containing 'my' (stands in for the model)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.messages = SimpleNamespace(create=self._create)

    def _create(self, **body):
        text = body["messages"][-1]["content"]
        self.requests.append(text)
        kept = [line for line in text.splitlines() if "my " in line.lower() and not line.startswith("Keep")]
        summary = "Summary:\n" + "\n".join(sorted(set(kept)))
        return SimpleNamespace(
            content=[SimpleNamespace(type="text", text=summary)],
            usage={"input_tokens": tokens.count_text(text), "output_tokens": tokens.count_text(summary)},
        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=conversations(), threshold=st.integers(80, 600), keep_recent=st.integers(0, 300))
def test_summarizing_invariants(history, threshold, keep_recent):
    # Build turn by turn: the prompt of every prefix ending with a user turn must be valid.
    client = FakeSummarizer()
    strategy = Summarizing(client, model=MODEL, threshold=threshold, keep_recent=keep_recent, clock=VirtualClock())
    starts = [i for i, m in enumerate(history) if m["role"] == "user" and isinstance(m["content"], str)]
    for start in starts[1:] + [len(history)]:
        prefix = history[:start] if start < len(history) else history
        if prefix[-1]["role"] != "user":
            continue
        prompt = strategy.build(SYSTEM, prefix)
        assert prompt.system[0]["text"] == SYSTEM, "the system prompt comes first, unchanged"
        assert validity_problems(prompt.messages) == []
        assert _is_suffix(prompt.messages, prefix)
        assert len(prompt.messages) + strategy.folded == len(prefix)
    assert len(strategy.side_calls) == len(client.requests)


def test_summarizing_is_incremental_and_keeps_facts():
    client = FakeSummarizer()
    strategy = Summarizing(client, model=MODEL, threshold=150, clock=VirtualClock())
    history: list[dict] = []
    lines = ["My name is Ada."] + [
        f"Question {i} about the router lights and the app settings page?" for i in range(30)
    ]
    for n, line in enumerate(lines):
        history.append({"role": "user", "content": line})
        prompt = strategy.build(SYSTEM, history)
        history.append({"role": "assistant", "content": f"Answer {n}: restart it and wait two minutes."})
    assert 1 < len(client.requests) < len(lines) // 2, "compaction happens now and then, not every turn"
    second = client.requests[1]
    assert "Previous summary:" in second and "My name is Ada." in second
    assert "Question 0 " not in second, "turns already folded are not sent to the summarizer again"
    assert "My name is Ada." in prompt.system[-1]["text"] and prompt.system[-1]["text"].startswith(SUMMARY_HEADER)


def test_hybrid_keeps_a_recent_window_verbatim():
    client = FakeSummarizer()
    plain = Summarizing(client, model=MODEL, threshold=300, clock=VirtualClock())
    hybrid = Hybrid(FakeSummarizer(), model=MODEL, threshold=300, clock=VirtualClock())
    history: list[dict] = []
    fewest = {"plain": 99, "hybrid": 99}
    for i in range(40):
        history.append({"role": "user", "content": f"Tell me about setting number {i} of the router."})
        for name, strategy in (("plain", plain), ("hybrid", hybrid)):
            prompt = strategy.build(SYSTEM, history)
            if strategy.summary:
                fewest[name] = min(fewest[name], len(prompt.messages))
        history.append({"role": "assistant", "content": "It controls the lights. " * 3})
    assert hybrid.keep_recent == 75
    assert fewest["plain"] == 1, "plain summarization keeps only the current turn right after compacting"
    assert fewest["hybrid"] >= 3, "the hybrid always keeps recent turns verbatim"
    assert len(hybrid.side_calls) > len(plain.side_calls), "...so it compacts more often, each time folding less"


# ----- cache layout -----------------------------------------------------------------------------
def _breakpoints(body) -> list:
    found = []
    for block in body.get("system") or []:
        if isinstance(block, dict) and "cache_control" in block:
            found.append(("system", block["text"][:20]))
    for i, m in enumerate(body["messages"]):
        if isinstance(m["content"], list):
            found += [("message", i) for b in m["content"] if "cache_control" in b]
    return found


@settings(max_examples=100, deadline=None)
@given(history=conversations())
def test_cache_layout_marks_the_stable_prefix_without_touching_history(history):
    before = copy.deepcopy(history)
    prompt = CacheLayout(FullHistory()).build(SYSTEM, history)
    body = prompt.body(MODEL, 100)
    marks = _breakpoints(body)
    assert history == before
    assert marks[0][0] == "system" and len(marks) <= 4
    assert marks[-1] == ("message", len(history) - 1)
    assert prompt.tokens == request_tokens({"system": SYSTEM, "messages": history}), "cache_control adds no tokens"
    assert validity_problems(prompt.messages) == []


def _all_breakpoints(body) -> int:
    """Every cache_control marker in a body: system blocks, tools and message blocks."""
    found = sum("cache_control" in b for b in body.get("system") or [] if isinstance(b, dict))
    found += sum("cache_control" in t for t in body.get("tools") or [])
    for m in body["messages"]:
        if isinstance(m["content"], list):
            found += sum("cache_control" in b for b in m["content"])
    return found


def _user_prefixes(history: list) -> list[list]:
    """Every prefix of ``history`` that ends with a user turn: what a strategy is asked to build from."""
    starts = [i for i, m in enumerate(history) if m["role"] == "user" and isinstance(m["content"], str)]
    return [history[:end] for end in starts[1:] + [len(history)] if history[end - 1]["role"] == "user"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=conversations(),
    kind=st.sampled_from(["window", "hybrid"]),
    size=st.integers(80, 900),
    with_tools=st.booleans(),
)
def test_cache_layout_around_window_and_hybrid(history, kind, size, with_tools):
    tools = BODIES[2]["tools"] if with_tools else None
    inner = (
        SlidingWindow(size)
        if kind == "window"
        else Hybrid(FakeSummarizer(), model=MODEL, threshold=size, clock=VirtualClock())
    )
    layout = CacheLayout(inner)
    before = copy.deepcopy(history)
    for prefix in _user_prefixes(history):
        try:
            prompt = layout.build(SYSTEM, prefix, tools)
        except ContextBudgetExceeded:
            assert kind == "window"  # not even the newest turn fits this budget
            continue
        body = prompt.body(MODEL, 100)
        assert validity_problems(prompt.messages) == []
        assert 1 <= _all_breakpoints(body) <= 4, "the API allows at most 4 cache_control blocks"
        sent = prefix[len(prefix) - len(prompt.messages) :]
        # Only markers are added (the newest message's string content becomes one marked text block).
        assert _strip(prompt.messages[:-1]) == sent[:-1]
        assert request_tokens({"messages": prompt.messages}) == request_tokens({"messages": sent})
    assert history == before, "the history passed in is left unchanged: no markers pile up turn after turn"


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=conversations(),
    threshold=st.integers(80, 600),
    keep_recent=st.integers(0, 600),
    window=st.integers(60, 700),
    hybrid=st.booleans(),
)
def test_summarizing_requests_fit_their_window(history, threshold, keep_recent, window, hybrid):
    kind = Hybrid if hybrid else Summarizing
    strategy = kind(
        FakeSummarizer(), model=MODEL, threshold=threshold, keep_recent=keep_recent, window=window, clock=VirtualClock()
    )
    for prefix in _user_prefixes(history):
        try:
            prompt = strategy.build(SYSTEM, prefix)
        except ContextBudgetExceeded as exc:
            newest = group_turns(prefix)[-1]
            beside = strategy.compose(SYSTEM, newest)
            assert beside.tokens > window and exc.budget == window
            continue
        assert prompt.tokens <= window
        assert validity_problems(prompt.messages) == [] and _is_suffix(prompt.messages, prefix)


def _long_turns(n: int, words: int) -> list[dict]:
    history: list[dict] = []
    for i in range(n):
        history += [
            {"role": "user", "content": f"Setting {i}: " + "router light " * words},
            {"role": "assistant", "content": "Restart it and wait two minutes."},
        ]
    return history


def test_summarizing_falls_back_to_a_window_when_the_newest_turn_is_large():
    # keep_recent keeps every turn verbatim, so compaction folds nothing, and the big newest turn pushes the
    # request past the window: the oldest turns are left out of this request (not folded, so a later
    # compaction still summarizes them).
    strategy = Hybrid(
        FakeSummarizer(), model=MODEL, threshold=1_200, keep_recent=3_000, window=1_300, clock=VirtualClock()
    )
    history = _long_turns(6, 40) + [{"role": "user", "content": "Newest: " + "router light " * 500}]
    assert request_tokens({"system": SYSTEM, "messages": history}) > 1_300
    prompt = strategy.build(SYSTEM, history)
    assert prompt.tokens <= 1_300
    assert 1 < len(group_turns(prompt.messages)) < len(group_turns(history))
    assert _is_suffix(prompt.messages, history) and validity_problems(prompt.messages) == []
    assert strategy.folded == 0, "left out of this request, not folded into the summary"


def test_summarizing_raises_when_the_newest_turn_alone_overflows_the_model():
    strategy = Summarizing(FakeSummarizer(), model=MODEL, threshold=2_500, clock=VirtualClock())
    assert strategy.window == 4_096, "the default window is the model's context window from the catalog"
    history = _long_turns(3, 20) + [{"role": "user", "content": "Paste: " + "router light " * 3_000}]
    with pytest.raises(ContextBudgetExceeded, match="the budget is 4096"):
        strategy.build(SYSTEM, history)


# ----- the runner, against the simulator --------------------------------------------------------
@pytest.fixture(scope="module")
def conversation():
    return load_conversation(90)


def _run(server, key, strategy_for, conversation):
    client = server.client(api_key=key, max_retries=0)
    return run_conversation(client, strategy_for(client), conversation, model=MODEL, clock=VirtualClock())


def test_data_set_plants_facts_early_and_asks_later(conversation):
    full = load_conversation()
    assert len(full.turns) >= 200
    facts = [t for t in full.turns if t.kind == "fact"]
    assert facts and max(t.turn for t in facts) <= 12
    assert {q.fact for q in full.questions} == {f.fact for f in facts}
    assert tokens.count_text(full.system) >= 512, "the system prompt must be cacheable on sim-teaching-4k"


def test_full_history_overflows_the_teaching_model(server, conversation):
    server.reset()
    result = _run(server, "ctx-full", lambda c: FullHistory(), conversation)
    assert result.overflowed_at is not None and result.overflowed_at < len(conversation.turns)
    assert "prompt is too long" in result.records[-1].error
    tokens_sent = [r.prompt_tokens for r in result.records[:-1]]
    assert tokens_sent == sorted(tokens_sent), "the whole history is re-sent: tokens grow every turn"


def test_window_forgets_summaries_remember_and_cache_is_cheaper(server, conversation):
    server.reset()
    window = _run(server, "ctx-window", lambda c: SlidingWindow(2_000), conversation)
    summary = _run(
        server,
        "ctx-summary",
        lambda c: Summarizing(c, model=MODEL, threshold=2_500, clock=VirtualClock()),
        conversation,
    )
    hybrid = _run(
        server, "ctx-hybrid", lambda c: Hybrid(c, model=MODEL, threshold=2_500, clock=VirtualClock()), conversation
    )
    cached = _run(
        server,
        "ctx-cached",
        lambda c: CacheLayout(Hybrid(c, model=MODEL, threshold=2_500, clock=VirtualClock())),
        conversation,
    )
    for run in (window, summary, hybrid, cached):
        assert run.error is None and run.completed == len(conversation.turns)
    assert window.recall_accuracy == 0.0
    assert summary.recall_accuracy == hybrid.recall_accuracy == cached.recall_accuracy == 1.0
    side = sum(r.side_calls for r in summary.records)
    assert 1 <= side < len(conversation.turns) / 5
    reads = [r.cache_read_tokens for r in cached.records]
    assert reads[0] == 0 and all(n > 0 for n in reads[1:])
    assert cached.total_cost < hybrid.total_cost
    # Every dollar the runner recorded is in the simulator's ledger, and the other way round.
    ledger = server.ledger()
    for key, run in (("ctx-summary", summary), ("ctx-cached", cached)):
        rows = ledger[ledger["api_key"] == key]
        assert sum((Decimal(str(x)) for x in rows["cost_usd"]), Decimal(0)) == run.total_cost
        assert len(rows) == len(run.records) + sum(r.side_calls for r in run.records)


def test_runner_records_correctness_and_measures_latency_on_the_injected_clock(server):
    server.reset()
    clock = VirtualClock()
    convo = load_conversation(21)
    client = server.client(api_key="ctx-clock", max_retries=0)
    result = run_conversation(client, FullHistory(), convo, model=MODEL, clock=clock)
    assert [r.correct for r in result.records if r.kind == "question"] == [True]
    assert all(r.latency_s == 0.0 for r in result.records)  # the virtual clock never moved
    assert result.records[0].cost == pricing.cost(
        {"input_tokens": result.records[0].input_tokens, "output_tokens": result.records[0].output_tokens}, MODEL
    )
    frame = result.frame()  # the tables convention: one row per turn, units as suffixes
    assert len(frame) == len(result.records) and frame["strategy"].eq(result.strategy).all()
    assert {
        "turn",
        "prompt_tokens",
        "output_tokens",
        "latency_s",
        "cost_usd",
        "side_cost_usd",
        "cumulative_cost_usd",
    } <= set(frame.columns) and "cost" not in frame.columns
    assert abs(frame["cumulative_cost_usd"].iloc[-1] - float(result.total_cost)) < 1e-9


def test_is_correct_judges_the_value_not_a_phrase():
    assert is_correct("Your order number is 4417.", "4417")
    assert is_correct("You are ada, from Lisbon.", "Ada")  # case does not matter
    assert not is_correct("I don't have that information. You haven't told me your order number.", "4417")
    assert not is_correct("I'm not able to see that in our conversation.", "Lisbon")  # any wording of a decline
    assert not is_correct("Your name is Bob.", "Ada")
    assert not is_correct("We ship to Canada.", "Ada")  # inside another word
    assert not is_correct("Order 44170 is on its way.", "4417")
