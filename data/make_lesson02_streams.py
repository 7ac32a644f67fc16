"""Record the raw SSE streams lesson 02 parses: ``python data/make_lesson02_streams.py [OUT_DIR]``.

Each file is the body of one ``POST /v1/messages`` with ``"stream": true`` served by the course
simulator (seed 0, no latency), read from a plain socket and de-chunked, byte for byte as the
server wrote it. Message ids are random per run, so they are replaced by fixed ones of the same
shape; everything else (text, token counts, event order) is determined by the seed and the request.

The tool-use recording forces the tool (``tool_choice: {"type": "tool"}``), so it uses Haiku: like
the real API, the simulator refuses forced tool use with 400 on models that do not allow it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from course_utils import mock_server
from course_utils.streaming.wire import decode_chunked, raw_request

HERE = Path(__file__).resolve().parent
HEADERS = {"x-api-key": "sim-key-recorder", "anthropic-version": "2023-06-01"}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
STREAMS = {
    "lesson02_stream_text.sse": (
        {
            "model": "claude-haiku-5-5",
            "max_tokens": 120,
            "messages": [{"role": "user", "content": "Explain in a paragraph why streaming makes a chat feel faster."}],
        },
        None,
    ),
    "lesson02_stream_tool_use.sse": (
        {
            "model": "claude-haiku-5-5",
            "max_tokens": 200,
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "messages": [{"role": "user", "content": "What's the weather in Lisbon?"}],
        },
        None,
    ),
    "lesson02_stream_error.sse": (
        {
            "model": "claude-haiku-5-5",
            "max_tokens": 200,
            "messages": [{"role": "user", "content": "Describe the water cycle in detail."}],
        },
        "stream_error",
    ),
}
_IDS = re.compile(rb"\b(msg|req)_01[1-9A-HJ-NP-Za-km-z]{22}\b")


def _fixed_ids(body: bytes) -> bytes:
    return _IDS.sub(lambda m: m.group(1) + b"_01" + b"Lesson02RecordedStream"[:22], body)


def record(out_dir: Path = HERE) -> list[Path]:
    """Record every stream of ``STREAMS`` into ``out_dir``; returns the files written."""
    written = []
    with mock_server(seed=0, time_scale=0.0, rate_limit_tier="unlimited") as server:
        for name, (request, extra) in STREAMS.items():
            headers = dict(HEADERS)
            if extra == "stream_error":
                headers["x-mock-fault"] = "stream_error"
            raw = raw_request(
                "127.0.0.1",
                server.port,
                "/v1/messages",
                method="POST",
                body={**request, "stream": True},
                headers=headers,
            )
            assert raw.status_line.startswith("HTTP/1.1 200"), raw.status_line
            body = _fixed_ids(b"".join(decode_chunked(raw.body)))
            path = Path(out_dir) / name
            path.write_bytes(body)
            written.append(path)
    return written


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for path in record(out_dir):
        print(f"wrote {path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
