"""Lesson 02 reference implementation: SSE parser, stream timing, backpressure, relay, wire."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import VirtualClock, mock_server
from course_utils.clock import SYSTEM_CLOCK, run_virtual
from course_utils.streaming import (
    DeltaQueue,
    RelayConfig,
    RelayServer,
    stall_run,
    SSEEvent,
    SSEParser,
    aconsume_stream,
    consume_stream,
    format_comment,
    format_event,
    iter_sse,
    relay_deltas,
    timing_from_events,
)
from course_utils.streaming import decode_chunked, raw_request, run_simulation
from course_utils.streaming.consume import atiming_from_events
from course_utils.streaming.loopback import sse_bytes

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = sorted(DATA.glob("lesson02_stream_*.sse"))


def _events(raw: bytes, cuts: list[int] | None = None) -> list[SSEEvent]:
    if cuts is None:
        return list(iter_sse([raw]))
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)])]
    return list(iter_sse(pieces))


# ----- SSE parser ------------------------------------------------------------------------------
def test_recorded_streams_parse_to_the_api_event_order():
    for path in RECORDED:
        events = _events(path.read_bytes())
        assert events[0].event == "message_start"
        assert all(e.event == e.json()["type"] for e in events), path.name
    error = _events((DATA / "lesson02_stream_error.sse").read_bytes())
    assert error[-1].event == "error" and error[-1].json()["error"]["type"] == "overloaded_error"


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(RECORDED),
    st.lists(st.integers(min_value=0, max_value=20_000), max_size=60),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_any_chunking_gives_the_same_events(path, cuts, newline):
    raw = path.read_bytes().replace(b"\n", newline)
    assert _events(raw, cuts) == _events(raw)


def test_the_recorder_reproduces_the_committed_streams(tmp_path):
    """data/make_lesson02_streams.py, run again, writes the committed files byte for byte."""
    spec = importlib.util.spec_from_file_location("make_lesson02_streams", DATA / "make_lesson02_streams.py")
    recorder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recorder)
    written = recorder.record(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in RECORDED)
    for path in written:
        assert path.read_bytes() == (DATA / path.name).read_bytes(), f"{path.name} differs from the recording"


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=30)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["delta", "end", "message_start", ""]),
            st.lists(_text, min_size=1, max_size=3),
            st.booleans(),
        ),
        max_size=8,
    ),
    st.lists(st.integers(min_value=0, max_value=5_000), max_size=40),
    st.sampled_from(["\n", "\r\n"]),
)
def test_written_events_come_back_whatever_the_chunking(spec, cuts, newline):
    raw = b""
    for name, lines, heartbeat in spec:
        if heartbeat:
            raw += format_comment("heartbeat")
        raw += format_event("\n".join(lines), event=name or None)
    raw = raw.replace(b"\n", newline.encode())
    expected = [(name or "message", "\n".join(lines)) for name, lines, _ in spec]
    assert [tuple(e) for e in _events(raw, cuts)] == expected
    assert [tuple(e) for e in _events(raw)] == expected


def test_parser_edge_cases():
    p = SSEParser()
    assert p.feed(b"\xef\xbb\xbfdata: a\r") == []  # BOM, then a CR whose LF comes later
    assert p.feed(b"\n") == []  # the LF of the same CRLF: not a blank line
    assert p.feed(b"\r\n") == [SSEEvent("message", "a")]
    assert p.feed(b": comment\n\nevent: x\n\n") == []  # comment-only block, event without data
    assert p.feed(b"id: 7\ndata\ndata:  two spaces\n\n") == [SSEEvent("message", "\n two spaces", id="7")]
    assert p.feed("caf\u00e9".encode()[:4]) == []  # half of a 2-byte character
    assert p.feed("caf\u00e9".encode()[4:] + b"\n\n") == []  # a line "café" with no field: ignored
    assert p.feed(b"data: tail") == [] and p.close() == []  # unterminated event is discarded


def test_format_event_splits_multiline_data():
    raw = format_event("one\ntwo", event="delta", id="3")
    assert raw == b"event: delta\nid: 3\ndata: one\ndata: two\n\n"
    assert list(iter_sse([raw])) == [SSEEvent("delta", "one\ntwo", id="3")]
    assert format_event({"a": 1}) == b'data: {"a":1}\n\n'


# ----- timing ----------------------------------------------------------------------------------
def _delta(text):
    return SimpleNamespace(type="content_block_delta", delta=SimpleNamespace(type="text_delta", text=text))


def _scripted(clock, schedule):
    for at, event in schedule:
        clock.advance_sync(at - clock.monotonic())
        yield event


def test_timing_on_a_virtual_clock():
    clock = VirtualClock()
    start = SimpleNamespace(type="message_start", message=SimpleNamespace(usage=SimpleNamespace(output_tokens=1)))
    end = SimpleNamespace(
        type="message_delta", delta=SimpleNamespace(stop_reason="end_turn"), usage=SimpleNamespace(output_tokens=30)
    )
    schedule = [
        (0.2, start),
        (0.5, _delta("")),
        (0.9, _delta("Hello")),
        (1.0, _delta(" world")),
        (1.9, end),
        (1.9, SimpleNamespace(type="message_stop")),
    ]
    seen = []
    result = timing_from_events(_scripted(clock, schedule), clock, on_text=seen.append)
    assert result.ttft_s == pytest.approx(0.9)  # not message_start, not the empty delta
    assert result.total_s == pytest.approx(1.9)
    assert result.output_tokens == 30 and result.stop_reason == "end_turn"
    assert result.tokens_per_s == pytest.approx(30 / 1.0)
    assert result.text == "Hello world" and seen == ["Hello", " world"]
    assert result.delta_times == pytest.approx([0.9, 1.0])
    frame = result.frame()  # one row per text delta (the result-table convention)
    assert list(frame.columns) == ["delta", "at_s", "chars"]
    assert frame["at_s"].tolist() == pytest.approx([0.9, 1.0]) and frame["chars"].tolist() == [5, 6]


def test_timing_splits_first_event_thinking_and_first_text():
    clock = VirtualClock()
    start = SimpleNamespace(type="message_start", message=SimpleNamespace(usage=SimpleNamespace(output_tokens=1)))
    think = SimpleNamespace(type="content_block_start", index=0, content_block=SimpleNamespace(type="thinking"))
    thinking = SimpleNamespace(type="content_block_delta", delta=SimpleNamespace(type="thinking_delta", thinking="hm"))
    text_block = SimpleNamespace(type="content_block_start", index=1, content_block=SimpleNamespace(type="text"))
    end = SimpleNamespace(
        type="message_delta", delta=SimpleNamespace(stop_reason="end_turn"), usage=SimpleNamespace(output_tokens=9)
    )
    schedule = [(0.1, start), (0.3, think), (0.8, thinking), (1.5, text_block), (1.6, _delta("Hi")), (2.0, end)]
    result = timing_from_events(_scripted(clock, schedule), clock)
    assert result.first_event_s == pytest.approx(0.1)
    assert result.first_thinking_s == pytest.approx(0.3)
    assert result.ttft_s == pytest.approx(1.6)  # thinking is not text: the user still waits
    assert result.text == "Hi" and result.summary()["first_thinking_s"] == pytest.approx(0.3)
    other = VirtualClock()
    plain = timing_from_events(_scripted(other, [(0.2, start), (0.4, _delta("x"))]), other)
    assert plain.first_thinking_s is None and plain.first_event_s == pytest.approx(0.2)


def test_consume_stream_against_the_simulator(sim, client):
    result = consume_stream(
        client,
        model="claude-haiku-5-5",
        max_tokens=80,
        messages=[{"role": "user", "content": "Explain streaming in a paragraph."}],
    )
    assert result.text == result.message.content[0].text
    assert result.output_tokens == result.message.usage.output_tokens == int(sim.ledger()["output_tokens"].iloc[-1])
    assert result.ttft_s is not None and result.ttft_s <= result.total_s


def test_aconsume_stream_against_the_simulator(sim, aclient):
    seen = []

    async def go():
        async with aclient:
            return await aconsume_stream(
                aclient,
                on_text=seen.append,
                model="claude-haiku-5-5",
                max_tokens=80,
                messages=[{"role": "user", "content": "Explain streaming in a paragraph."}],
            )

    result = _run(go())
    assert result.text == result.message.content[0].text == "".join(seen)
    assert result.output_tokens == result.message.usage.output_tokens == int(sim.ledger()["output_tokens"].iloc[-1])
    assert result.stop_reason == result.message.stop_reason
    assert result.ttft_s is not None and result.ttft_s <= result.total_s
    assert len(result.delta_times) == len(seen) and sum(result.delta_sizes) == len(result.text)


def test_atiming_on_a_virtual_loop():
    clock = SYSTEM_CLOCK  # run_virtual's loop: its time is virtual
    start = SimpleNamespace(type="message_start", message=SimpleNamespace(usage=SimpleNamespace(output_tokens=1)))
    end = SimpleNamespace(
        type="message_delta", delta=SimpleNamespace(stop_reason="max_tokens"), usage=SimpleNamespace(output_tokens=12)
    )
    schedule = [(0.3, start), (0.7, _delta("Hi")), (1.2, _delta(" there")), (1.5, end)]

    async def events():
        for at, event in schedule:
            await clock.sleep(at - clock.monotonic())
            yield event

    result = run_virtual(atiming_from_events(events(), clock))
    assert result.ttft_s == pytest.approx(0.7) and result.total_s == pytest.approx(1.5)
    assert result.text == "Hi there" and result.stop_reason == "max_tokens"
    assert result.tokens_per_s == pytest.approx(12 / 0.8)


# ----- backpressure ----------------------------------------------------------------------------
def _run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.mark.parametrize("policy", ["pause", "coalesce", "unbounded"])
def test_policies_lose_no_text(policy):
    deltas = [f"d{i} " for i in range(200)]
    times = [0.001 * i for i in range(200)]
    stats = run_simulation(times, deltas, consumer_delay_s=0.01, maxsize=8, policy=policy)
    assert stats.sent_chars == sum(map(len, deltas))
    if policy == "unbounded":
        assert stats.max_depth > 100  # the whole reply piles up behind the slow client
    else:
        assert stats.max_depth <= 8
    if policy == "coalesce":
        assert stats.coalesced > 0 and stats.gets < len(deltas) and stats.paused_s == 0
    if policy == "pause":
        assert stats.coalesced == 0 and stats.gets == len(deltas) and stats.paused_s > 0
    trace = stats.frame()  # one row per sample (the result-table convention)
    assert list(trace.columns) == ["t_s", "depth", "buffered_bytes"] and len(trace) == len(stats.trace)
    assert trace["depth"].max() == stats.max_depth and trace["t_s"].is_monotonic_increasing


def test_the_package_exports_what_notebooks_use_and_nothing_dead():
    import course_utils.context as context
    import course_utils.streaming as streaming

    for package in (context, streaming):
        for name in package.__all__:
            assert getattr(package, name) is not None, name
    for name in (
        "run_simulation",
        "complete_timed",
        "policy_table",
        "recorded_deltas",
        "describe_pace",
        "mean_gap_ms",
        "raw_request",
        "decode_chunked",
    ):
        assert name in streaming.__all__, name
    for name in ("budget_plan", "format_budget_plan"):
        assert name in context.__all__, name
    import course_utils.context.runner as runner
    import course_utils.streaming.consume as consume
    import course_utils.streaming.sse as sse

    assert not hasattr(streaming, "aiter_sse") and not hasattr(sse, "aiter_sse")
    assert not hasattr(consume, "acomplete_timed") and not hasattr(runner, "is_overflow")


def test_relay_deltas_keeps_order_and_reraises_upstream_errors():
    async def source():
        for i in range(10):
            yield str(i)
        raise RuntimeError("upstream broke")

    sent = []

    async def send(text):
        sent.append(text)

    async def go():
        with pytest.raises(RuntimeError, match="upstream broke"):
            await relay_deltas(source(), send, maxsize=2, clock=VirtualClock())

    _run(go())
    assert "".join(sent) == "0123456789"  # everything received before the failure was delivered


def test_failed_send_cancels_the_reader():
    pulled = 0

    async def source():
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield "x"

    async def send(text):
        raise ConnectionResetError("client left")

    async def go():
        with pytest.raises(ConnectionResetError):
            await relay_deltas(source(), send, maxsize=4)

    _run(go())
    assert pulled <= 6


def test_queue_rejects_bad_policy():
    with pytest.raises(ValueError):
        DeltaQueue(4, "drop")


# ----- relay over a real socket ------------------------------------------------------------------
PROMPT = "Write a long essay about rivers and their history."


@pytest.fixture(scope="module")
def paced():
    """A simulator with output pacing, so a stream lasts long enough to cut it."""
    with mock_server(seed=0, time_scale=0.2, rate_limit_tier="unlimited") as server:
        yield server


def _relay(paced, key, **overrides):
    cfg = RelayConfig(heartbeat_s=0.02, max_tokens=400, **overrides)
    return RelayServer(lambda: paced.async_client(api_key=key, max_retries=0), cfg)


def _read_all(relay, prompt=PROMPT, **kw):
    with httpx.Client(base_url=relay.url, timeout=20) as http:
        with http.stream("POST", "/stream", json={"prompt": prompt}, **kw) as response:
            raw = b"".join(response.iter_raw())
            return response, raw


def _rows(server, key):
    df = server.ledger()
    return df[df["api_key"] == key].reset_index(drop=True)


def test_relay_headers_heartbeats_deltas_and_end(paced):
    with _relay(paced, "relay-ok") as relay:
        response, raw = _read_all(relay)
        records = relay.records
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert b": heartbeat\n\n" in raw  # sent while waiting for the first token
    events = list(iter_sse([raw]))
    deltas = [e for e in events if e.event == "delta"]
    assert events[-1].event == "end" and deltas
    text = "".join(json.loads(e.data)["text"] for e in deltas)
    end = events[-1].json()
    row = _rows(paced, "relay-ok").iloc[-1]
    assert end["output_tokens"] == row["output_tokens"] and end["sent_chars"] == len(text)
    assert int(deltas[-1].id) == len(text)
    assert records[-1].status == "completed" and records[-1].sent_text == text


@pytest.mark.parametrize(
    "fault, error_type", [("stream_error", "overloaded_error"), ("disconnect", "upstream_disconnected")]
)
def test_relay_reports_a_mid_stream_failure_with_the_partial_text(paced, fault, error_type):
    with _relay(paced, f"relay-{fault}") as relay:
        response, raw = _read_all(relay, headers={"x-mock-fault": fault})
        record = relay.records[-1]
    events = list(iter_sse([raw]))
    assert response.status_code == 200 and events[-1].event == "error"
    assert not any(e.event == "end" for e in events)
    error = events[-1].json()
    sent = "".join(json.loads(e.data)["text"] for e in events if e.event == "delta")
    assert error["type"] == error_type and error["partial"] is True
    assert error["sent_chars"] == len(sent) > 0
    assert record.status == "upstream_error" and record.sent_text == sent


@pytest.mark.parametrize("cancel", [True, False])
def test_client_disconnect_and_the_upstream_bill(paced, cancel):
    key = f"relay-cancel-{cancel}"
    with _relay(paced, key, cancel_on_disconnect=cancel) as relay:
        with httpx.Client(base_url=relay.url, timeout=20) as http:
            with http.stream("POST", "/stream", json={"prompt": PROMPT}) as response:
                seen = 0
                for chunk in response.iter_raw():
                    seen += chunk.count(b"event: delta")
                    if seen >= 5:
                        break
        deadline = time.monotonic() + 10
        while len(_rows(paced, key)) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        record = relay.records[-1]
    row = _rows(paced, key).iloc[-1]
    assert record.status == "client_disconnected"
    assert record.input_tokens == row["input_tokens"]  # from message_start, which every stream gets
    if cancel:
        # Generation stopped before the end (400 when nobody cancels, below): how far it got is how fast
        # the cancel travelled on this machine's wall clock, so only "before the end" is asserted.
        assert bool(row["disconnected"]) and row["output_tokens"] < 400
        # The final usage never came: the relay meters by estimate, from what it received.
        assert record.output_tokens is None and record.usage_source == "estimated"
        assert record.metered_output_tokens == record.estimated_output_tokens > 0
        assert record.metered_output_tokens <= row["output_tokens"]
    else:
        assert not bool(row["disconnected"]) and row["output_tokens"] == 400  # billed for nobody
        deadline = time.monotonic() + 10
        while not record.upstream_closed and time.monotonic() < deadline:
            time.sleep(0.02)
        assert record.usage_source == "reported" and record.metered_output_tokens == 400


def test_relay_serves_the_page_and_stops_cleanly(paced):
    relay = _relay(paced, "relay-page").start()
    page = httpx.get(relay.url + "/", timeout=5)
    assert page.status_code == 200 and 'method: "POST"' in page.text and "new EventSource(" not in page.text
    # The prompt travels in a POST body, never in a URL that logs keep.
    assert httpx.get(relay.url + "/stream", params={"prompt": PROMPT}, timeout=5).status_code == 405
    for bad in (None, {}, {"prompt": "  "}, {"prompt": 3}, ["x"]):
        response = httpx.post(relay.url + "/stream", json=bad, timeout=5)
        assert response.status_code == 400 and "prompt" in response.json()["error"]
    assert httpx.post(relay.url + "/stream", content=b"{not json", timeout=5).status_code == 400
    relay.stop()
    assert not relay.running


def test_relay_shows_a_thinking_state_before_the_first_text(paced):
    with _relay(paced, "relay-think") as relay:
        response, raw = _read_all(relay, headers={"x-mock-shape": "thinking"})
        record = relay.records[-1]
    events = list(iter_sse([raw]))
    kinds = [e.event for e in events]
    assert kinds.count("thinking") == 1 and kinds.index("thinking") < kinds.index("delta")
    assert events[-1].event == "end"
    assert record.first_event_s <= record.first_thinking_s <= record.first_text_s
    # The SSE framing stays text-only: the marker never leaks into a delta.
    assert all("\x00" not in json.loads(e.data)["text"] for e in events if e.event == "delta")


def test_relay_retracts_a_refused_answer_and_keeps_it_out_of_the_history(paced):
    with _relay(paced, "relay-refusal") as relay:
        response, raw = _read_all(relay, headers={"x-mock-shape": "refusal"})
        record = relay.records[-1]
    events = list(iter_sse([raw]))
    shown = "".join(json.loads(e.data)["text"] for e in events if e.event == "delta")
    assert shown  # some text was streamed before the refusal
    assert events[-1].event == "refusal" and not any(e.event == "end" for e in events)
    refusal = events[-1].json()
    assert refusal["retract"] is True and refusal["sent_chars"] == len(shown)
    assert refusal["message"]  # the docs: provide user-facing messaging (stop_details may be null)
    assert record.status == "refused" and record.retracted and record.history_text is None
    row = _rows(paced, "relay-refusal").iloc[-1]
    assert record.usage_source == "reported" and record.output_tokens == row["output_tokens"] > 0


def test_a_completed_answer_is_kept_for_the_history(paced):
    with _relay(paced, "relay-history") as relay:
        _read_all(relay)
        record = relay.records[-1]
    assert record.status == "completed" and record.history_text == record.sent_text != ""
    assert record.http_version == "1.1" and record.asgi_spec_version is not None


# ----- backpressure on real sockets ----------------------------------------------------------------
def test_a_short_reply_never_backs_up_into_the_relay_on_real_sockets():
    short = [f" word{i}" for i in range(200)]  # ~10 KiB of SSE: fits in the server's and kernel's buffers
    run = stall_run(short, policy="unbounded", maxsize=16, stall_s=0.3)
    assert run.received_bytes == run.wire_bytes  # nothing lost
    assert run.queue_peak_depth < 50
    assert run.below_app_peak_bytes > 0.8 * run.wire_bytes  # the buffers below the app took it
    assert run.send_waits == 0  # send() always returned at once: nothing reached the high-water mark


@pytest.mark.parametrize("policy", ["unbounded", "pause", "coalesce"])
def test_a_long_reply_to_a_stalled_reader_on_real_sockets(policy):
    texts = [f" word{i % 97}" for i in range(4000)]  # ~210 KiB of SSE, more than the buffers hold
    run = stall_run(texts, policy=policy, maxsize=16, stall_s=1.0)
    assert run.received_bytes == run.wire_bytes  # every byte arrived, in the end
    assert run.send_waits > 0  # uvicorn's write flow control held send() (counted, not timed)
    if policy == "unbounded":
        assert run.queue_peak_depth > 500  # the relay's own memory grew with the reply
    else:
        assert run.queue_peak_depth <= 16
    unmerged = sum(len(f"{len(b):x}\r\n") + len(b) + 2 for b in sse_bytes(texts)) + 5  # one chunk per delta
    if policy == "coalesce":
        assert run.wire_bytes < unmerged  # fewer, bigger events: less framing on the wire
    else:
        assert run.wire_bytes == unmerged


# ----- wire -------------------------------------------------------------------------------------
def test_chunked_encoding_on_the_wire(sim):
    raw = raw_request(
        "127.0.0.1",
        sim.port,
        "/v1/messages",
        method="POST",
        body={
            "model": "claude-haiku-5-5",
            "max_tokens": 30,
            "stream": True,
            "messages": [{"role": "user", "content": "hello"}],
        },
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert raw.status_line == "HTTP/1.1 200 OK"
    assert raw.headers["transfer-encoding"] == "chunked" and "content-length" not in raw.headers
    chunks = decode_chunked(raw.body)
    assert raw.body.endswith(b"0\r\n\r\n") and chunks
    assert [e.event for e in iter_sse(chunks)][-1] == "message_stop"


def test_decode_chunked_rejects_bad_framing():
    assert decode_chunked(b"3\r\nabc\r\n0\r\n\r\n") == [b"abc"]
    with pytest.raises(ValueError):
        decode_chunked(b"3\r\nabcd\r\n0\r\n\r\n")
