"""The prompt cache engine on a virtual clock: prefixes, breakpoints, TTLs and the usage split."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_utils import tokens
from course_utils.clock import VirtualClock
from course_utils.mock_provider.cache import (
    LOOKBACK_BLOCKS,
    CacheUsage,
    PromptCache,
    cached_fraction,
    plan_prefixes,
)
from course_utils.mock_provider.errors import InvalidRequest

KEY, MODEL, MIN = "sk-test-a", "claude-sonnet-5-5", 1024
CC = {"type": "ephemeral"}
CC_1H = {"type": "ephemeral", "ttl": "1h"}


def text(n: int, seed: str = "alpha") -> str:
    """Roughly ``n`` tokens of text, different for each seed."""
    return " ".join(f"{seed}{i % 97}" for i in range(n))


def body(system_text: str | None = None, question: str = "What is caching?", *, marker=CC, tools=None, **extra):
    b: dict = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": question}], **extra}
    if system_text is not None:
        block = {"type": "text", "text": system_text}
        if marker is not None:
            block["cache_control"] = marker
        b["system"] = [block]
    if tools is not None:
        b["tools"] = tools
    return b


@pytest.fixture()
def cache(clock: VirtualClock) -> PromptCache:
    return PromptCache(clock)


def check_sum(u: CacheUsage, b: dict) -> None:
    """The usage splits the prompt: the parts add up to it, and none is negative.

    The sums alone cannot catch a wrong split: the simulator derives ``input_tokens`` (and the 5m part)
    as what is left, so a read or a 1h write counted too large keeps both sums and turns the remainder
    negative. The last assertion is the one that fails then (each field named)."""
    assert u.cache_read_input_tokens + u.cache_creation_input_tokens + u.input_tokens == tokens.count_request(b)
    assert u.ephemeral_5m_input_tokens + u.ephemeral_1h_input_tokens == u.cache_creation_input_tokens
    parts = {
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "ephemeral_5m_input_tokens": u.ephemeral_5m_input_tokens,
        "ephemeral_1h_input_tokens": u.ephemeral_1h_input_tokens,
        "input_tokens": u.input_tokens,
    }
    assert all(n >= 0 for n in parts.values()), parts


def test_write_then_read(cache: PromptCache) -> None:
    b = body(text(1500))
    first = cache.lookup_and_store(KEY, MODEL, b, MIN)
    assert first.cache_read_input_tokens == 0 and first.cache_creation_input_tokens > MIN
    assert first.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    second = cache.lookup_and_store(KEY, MODEL, copy.deepcopy(b), MIN)
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens == first.input_tokens > 0  # the uncached question after the breakpoint
    check_sum(first, b), check_sum(second, b)


def test_changing_a_byte_before_the_breakpoint_misses(cache: PromptCache) -> None:
    sys_text = text(1500)
    cache.lookup_and_store(KEY, MODEL, body(sys_text), MIN)
    changed = sys_text[:100] + "X" + sys_text[101:]
    u = cache.lookup_and_store(KEY, MODEL, body(changed), MIN)
    assert u.cache_read_input_tokens == 0 and u.cache_creation_input_tokens > 0


def test_changing_a_tool_invalidates_the_system_prefix(cache: PromptCache) -> None:
    tool = {"name": "lookup", "description": "Look things up.", "input_schema": {"type": "object"}}
    cache.lookup_and_store(KEY, MODEL, body(text(1500), tools=[tool]), MIN)
    assert cache.peek(KEY, MODEL, body(text(1500), tools=[tool]), MIN).cache_read_input_tokens > 0
    other = {**tool, "description": "Look things up quickly."}
    assert cache.peek(KEY, MODEL, body(text(1500), tools=[other]), MIN).cache_read_input_tokens == 0


def test_changing_after_the_breakpoint_still_reads(cache: PromptCache) -> None:
    cache.lookup_and_store(KEY, MODEL, body(text(1500), "first question"), MIN)
    u = cache.lookup_and_store(KEY, MODEL, body(text(1500), "a different question entirely"), MIN)
    assert u.cache_read_input_tokens > MIN and u.cache_creation_input_tokens == 0


def test_moving_only_the_marker_keeps_the_key(cache: PromptCache) -> None:
    b = body(text(1500), marker=None)
    b["system"].append({"type": "text", "text": "Be brief.", "cache_control": CC})
    first = cache.lookup_and_store(KEY, MODEL, b, MIN)
    # Same content, the marker now on the last message block instead: the system prefix is found
    # by the lookback, so those tokens are read, not rewritten.
    moved = copy.deepcopy(b)
    del moved["system"][1]["cache_control"]
    moved["messages"][0]["content"] = [{"type": "text", "text": "What is caching?", "cache_control": CC}]
    u = cache.lookup_and_store(KEY, MODEL, moved, MIN)
    assert u.cache_read_input_tokens == first.cache_creation_input_tokens
    check_sum(u, moved)


def test_breakpoint_on_a_changing_tail_never_reads(cache: PromptCache) -> None:
    for i in range(4):
        b = body(text(1500), marker=None)
        b["messages"][0]["content"] = [{"type": "text", "text": f"now is {i}", "cache_control": CC}]
        b["system"][0]["text"] = f"Timestamp {i}. " + b["system"][0]["text"]
        u = cache.lookup_and_store(KEY, MODEL, b, MIN)
        assert u.cache_read_input_tokens == 0 and u.cache_creation_input_tokens > 0


def test_ttl_5m_expires(cache: PromptCache, clock: VirtualClock) -> None:
    b = body(text(1500))
    cache.lookup_and_store(KEY, MODEL, b, MIN)
    clock.advance_sync(299)
    assert cache.peek(KEY, MODEL, b, MIN).cache_read_input_tokens > 0
    clock.advance_sync(2)
    assert cache.peek(KEY, MODEL, b, MIN).cache_read_input_tokens == 0
    assert cache.entries() == []


def test_ttl_1h_expires(cache: PromptCache, clock: VirtualClock) -> None:
    b = body(text(1500), marker=CC_1H)
    u = cache.lookup_and_store(KEY, MODEL, b, MIN)
    assert u.ephemeral_1h_input_tokens == u.cache_creation_input_tokens > 0
    clock.advance_sync(3000)
    assert cache.peek(KEY, MODEL, b, MIN).cache_read_input_tokens > 0
    clock.advance_sync(601)
    assert cache.peek(KEY, MODEL, b, MIN).cache_read_input_tokens == 0


def test_hit_refreshes_ttl(cache: PromptCache, clock: VirtualClock) -> None:
    b = body(text(1500))
    cache.lookup_and_store(KEY, MODEL, b, MIN)
    for _ in range(5):  # 20 minutes of traffic, each hit within 4 minutes of the previous one
        clock.advance_sync(240)
        assert cache.lookup_and_store(KEY, MODEL, b, MIN).cache_read_input_tokens > 0
    clock.advance_sync(299)
    assert cache.peek(KEY, MODEL, b, MIN).cache_read_input_tokens > 0


def test_peek_does_not_mutate(cache: PromptCache) -> None:
    b = body(text(1500))
    assert cache.peek(KEY, MODEL, b, MIN).cache_creation_input_tokens > 0
    assert cache.entries() == []
    assert cache.peek(KEY, MODEL, b, MIN).cache_read_input_tokens == 0


def test_below_minimum_nothing_cached(cache: PromptCache) -> None:
    b = body(text(300))
    for _ in range(2):
        u = cache.lookup_and_store(KEY, MODEL, b, MIN)
        assert u == CacheUsage(input_tokens=tokens.count_request(b))
    assert cache.entries() == []


def test_minimum_counts_the_whole_prefix(cache: PromptCache) -> None:
    # A short system block after long tools is still cacheable: the prefix includes the tools.
    tools = [{"name": f"t{i}", "description": text(150, f"d{i}"), "input_schema": {"type": "object"}} for i in range(6)]
    b = body("Short system prompt.", tools=tools)
    assert cache.lookup_and_store(KEY, MODEL, b, MIN).cache_creation_input_tokens > MIN


def test_isolation_per_api_key_and_model(cache: PromptCache) -> None:
    b = body(text(1500))
    cache.lookup_and_store(KEY, MODEL, b, MIN)
    assert cache.peek("sk-test-b", MODEL, b, MIN).cache_read_input_tokens == 0
    assert cache.peek(KEY, "claude-haiku-5-5", b, MIN).cache_read_input_tokens == 0
    assert cache.peek(KEY, MODEL, b, MIN).cache_read_input_tokens > 0
    assert len(cache.entries(api_key=KEY)) == 1 and cache.entries(api_key="sk-test-b") == []


def test_more_than_four_breakpoints_is_rejected(cache: PromptCache) -> None:
    b = body(text(200))
    b["system"] += [{"type": "text", "text": f"part {i}", "cache_control": CC} for i in range(4)]
    with pytest.raises(InvalidRequest) as err:
        cache.lookup_and_store(KEY, MODEL, b, MIN)
    assert err.value.message == "A maximum of 4 blocks with cache_control may be provided. Found 5."
    assert err.value.status == 400


def test_automatic_caching_takes_a_slot(cache: PromptCache) -> None:
    b = body(text(200))
    b["system"] += [{"type": "text", "text": f"part {i}", "cache_control": CC} for i in range(3)]
    b["cache_control"] = CC
    with pytest.raises(InvalidRequest, match="Found 5"):
        plan_prefixes(b)


def test_automatic_caching_marks_the_last_block_and_moves_forward(cache: PromptCache) -> None:
    convo = [{"role": "user", "content": text(1500)}]
    b = {"model": MODEL, "max_tokens": 50, "cache_control": CC, "messages": convo}
    first = cache.lookup_and_store(KEY, MODEL, b, MIN)
    assert first.input_tokens == 0 and first.cache_creation_input_tokens == tokens.count_request(b)
    grown = {**b, "messages": convo + [{"role": "assistant", "content": "Sure."}, {"role": "user", "content": "More?"}]}
    u = cache.lookup_and_store(KEY, MODEL, grown, MIN)
    assert u.cache_read_input_tokens == first.cache_creation_input_tokens
    assert u.cache_creation_input_tokens == tokens.count_request(grown) - u.cache_read_input_tokens
    assert u.input_tokens == 0


def test_automatic_caching_skips_thinking_blocks() -> None:
    b = {
        "model": MODEL,
        "cache_control": CC,
        "messages": [
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Hello"}, {"type": "thinking", "thinking": "hm"}],
            },
        ],
    }
    plan = plan_prefixes(b)
    assert [bp.boundary.path for bp in plan.breakpoints] == ["messages.1.content.0"]


def test_1h_after_5m_is_rejected() -> None:
    b = body(text(100), marker=CC)
    b["messages"][0]["content"] = [{"type": "text", "text": "q", "cache_control": CC_1H}]
    with pytest.raises(InvalidRequest, match="1h"):
        plan_prefixes(b)


def test_1h_and_5m_split(cache: PromptCache) -> None:
    tools = [
        {"name": "t", "description": text(1200, "tool"), "input_schema": {"type": "object"}, "cache_control": CC_1H}
    ]
    b = body(text(800), tools=tools, marker=CC)
    plan = plan_prefixes(b)
    b_pos, c_pos = plan.breakpoints[0].tokens, plan.breakpoints[1].tokens
    u = cache.lookup_and_store(KEY, MODEL, b, MIN)
    assert u.ephemeral_1h_input_tokens == b_pos
    assert u.ephemeral_5m_input_tokens == c_pos - b_pos
    check_sum(u, b)
    # The tools entry is read; only the (changed) system span is written, at 5m.
    b2 = body(text(800, "beta"), tools=tools, marker=CC)
    u2 = cache.lookup_and_store(KEY, MODEL, b2, MIN)
    assert u2.cache_read_input_tokens == b_pos
    assert u2.ephemeral_1h_input_tokens == 0 and u2.ephemeral_5m_input_tokens > 0
    check_sum(u2, b2)


def test_lookback_window_is_20_blocks(cache: PromptCache) -> None:
    head = [{"type": "text", "text": text(1500), "cache_control": CC}]

    def convo(extra_blocks: int) -> dict:
        blocks = [{"type": "text", "text": f"note {i}"} for i in range(extra_blocks)]
        blocks[-1]["cache_control"] = CC
        return {"model": MODEL, "messages": [{"role": "user", "content": head[:1] + blocks}]}

    cache.lookup_and_store(KEY, MODEL, {"model": MODEL, "messages": [{"role": "user", "content": head}]}, MIN)
    near = convo(LOOKBACK_BLOCKS)
    # Drop the explicit marker on the long head so only the lookback can find it.
    near["messages"][0]["content"][0] = {"type": "text", "text": head[0]["text"]}
    assert cache.peek(KEY, MODEL, near, MIN).cache_read_input_tokens > MIN
    far = convo(LOOKBACK_BLOCKS + 1)
    far["messages"][0]["content"][0] = {"type": "text", "text": head[0]["text"]}
    assert cache.peek(KEY, MODEL, far, MIN).cache_read_input_tokens == 0


def test_tool_choice_change_keeps_system_cache(cache: PromptCache) -> None:
    b = body(text(1500))
    b["messages"][0]["content"] = [{"type": "text", "text": "q", "cache_control": CC}]
    first = cache.lookup_and_store(KEY, MODEL, b, MIN)
    b2 = {**b, "tool_choice": {"type": "auto"}}
    u = cache.peek(KEY, MODEL, b2, MIN)
    assert 0 < u.cache_read_input_tokens < first.cache_creation_input_tokens


def test_no_breakpoint_means_plain_input(cache: PromptCache) -> None:
    b = body(text(2000), marker=None)
    assert cache.lookup_and_store(KEY, MODEL, b, MIN) == CacheUsage(input_tokens=tokens.count_request(b))


def test_usage_dict_shape(cache: PromptCache) -> None:
    u = cache.lookup_and_store(KEY, MODEL, body(text(1500), marker=CC_1H), MIN).as_usage()
    assert set(u) == {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation"}
    assert set(u["cache_creation"]) == {"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"}


def test_cached_fraction() -> None:
    cold = CacheUsage(cache_creation_input_tokens=10_000, ephemeral_5m_input_tokens=10_000, input_tokens=100)
    warm = CacheUsage(cache_read_input_tokens=10_000, input_tokens=100)
    assert cached_fraction(cold) == 0.0 and cached_fraction(warm) == pytest.approx(10_000 / 10_100)
    assert cached_fraction(CacheUsage()) == 0.0


# --------------------------------------------------------------------------- the sum invariant

_words = st.text(alphabet="abcdefgh xyz.,\n", min_size=1, max_size=60).filter(str.strip)
_marker = st.sampled_from([None, None, CC, CC_1H])


@st.composite
def _block(draw):
    kind = draw(st.sampled_from(["text", "text", "image", "tool_result", "thinking"]))
    if kind == "text":
        blk = {"type": "text", "text": draw(_words) * draw(st.integers(1, 40))}
    elif kind == "image":
        blk = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    elif kind == "tool_result":
        blk = {"type": "tool_result", "tool_use_id": "toolu_1", "content": draw(_words)}
    else:
        return {"type": "thinking", "thinking": draw(_words), "signature": "sig"}
    if (m := draw(_marker)) is not None:
        blk["cache_control"] = m
    return blk


@st.composite
def _body(draw):
    b: dict = {"model": MODEL}
    if draw(st.booleans()):
        b["tools"] = [
            {"name": f"t{i}", "description": draw(_words), "input_schema": {"type": "object"}}
            | ({"cache_control": m} if (m := draw(_marker)) else {})
            for i in range(draw(st.integers(0, 3)))
        ]
    if draw(st.booleans()):
        b["system"] = draw(st.one_of(_words, st.lists(_block().filter(lambda x: x["type"] == "text"), max_size=3)))
    msgs = []
    for i in range(draw(st.integers(1, 6))):
        role = "user" if i % 2 == 0 else "assistant"
        content = draw(st.one_of(_words, st.lists(_block(), min_size=0, max_size=5)))
        msgs.append({"role": role, "content": content})
    b["messages"] = msgs
    if draw(st.booleans()):
        b["cache_control"] = draw(st.sampled_from([CC, CC_1H]))
    return b


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=_body(),
    second=_body(),
    min_tokens=st.sampled_from([0, 10, 200, 1024]),
    gap=st.sampled_from([0, 200, 400, 4000]),
)
def test_sum_invariant(first: dict, second: dict, min_tokens: int, gap: int) -> None:
    clock = VirtualClock()
    cache = PromptCache(clock)
    for b in (first, second, first, second):
        try:
            plan = plan_prefixes(b)
        except InvalidRequest:
            continue
        assert plan.total_tokens == tokens.count_request(b)
        peeked = cache.peek(KEY, MODEL, b, min_tokens)
        u = cache.lookup_and_store(KEY, MODEL, b, min_tokens)
        assert peeked == u
        check_sum(u, b)
        if plan.breakpoints:
            assert (
                u.input_tokens == plan.total_tokens - plan.breakpoints[-1].tokens or u.cache_creation_input_tokens == 0
            )
        clock.advance_sync(gap)
