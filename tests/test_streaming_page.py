"""Lesson 02's relay page in a real browser (Debian's Chromium, driven by Playwright).

The page POSTs the prompt and reads the SSE stream with ``fetch``; these tests press its buttons and
read what a user sees (the status line, the answer's marking) and what the relay and the simulator
recorded. Skipped when Chromium or Playwright is missing (CI installs both).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from _wait import wait_until

from course_utils import mock_server
from course_utils.streaming import RelayConfig, RelayServer

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags Debian's Chromium needs headless, as root, on a machine with no outside network (as in
# tests/browser/browser_notebooks.py).
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DONE = "() => /done in|withdrawn|failed mid-answer|connection/.test(document.getElementById('status').textContent)"


@pytest.fixture()
def browser_page():
    """A page in Debian's Chromium, which `make test` installs (browser-deps): missing is a failure, not a skip."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (make browser-deps)")
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_the_page_posts_the_prompt_and_shows_each_ending(browser_page):
    page = browser_page
    requests = []
    page.on("request", lambda r: requests.append((r.method, r.url, r.post_data)))
    with mock_server(seed=0, time_scale=0.05, rate_limit_tier="unlimited") as sim:
        cfg = RelayConfig(heartbeat_s=0.05, max_tokens=300)
        with RelayServer(lambda: sim.async_client(api_key="page"), cfg) as relay:
            page.goto(relay.url + "/")
            seen = {}
            for choice in ("", "stream_error", "shape:refusal", "shape:thinking"):
                page.select_option("#fault", choice)
                page.click("button[type=submit]")
                page.wait_for_function(DONE, timeout=20_000)
                seen[choice] = (
                    page.text_content("#status"),
                    page.get_attribute("#answer", "class") or "",
                    page.text_content("#answer"),
                    relay.records[-1],
                )
    streams = [r for r in requests if r[1].endswith("/stream")]
    assert len(streams) == 4 and all(method == "POST" for method, _, _ in streams)
    assert all("prompt" not in url and '"prompt"' in (body or "") for _, url, body in streams)

    status, marking, text, record = seen[""]
    assert status.startswith("done in") and "stop_reason end_turn" in status
    assert marking == "" and text == record.sent_text != ""
    status, marking, text, record = seen["stream_error"]
    assert "failed mid-answer (overloaded_error)" in status and "partial" in marking
    assert text == record.sent_text and f"the {len(text)} characters above are partial" in status
    status, marking, text, record = seen["shape:refusal"]
    assert status.startswith("withdrawn:") and "retracted" in marking and record.status == "refused"
    status, marking, _, record = seen["shape:thinking"]
    assert status.startswith("done in") and record.first_thinking_s is not None


def test_stop_closes_the_stream_and_the_relay_meters_it_by_estimate(browser_page):
    page = browser_page
    with mock_server(seed=0, time_scale=0.5, rate_limit_tier="unlimited") as sim:
        cfg = RelayConfig(heartbeat_s=0.5, max_tokens=1000)
        with RelayServer(lambda: sim.async_client(api_key="page-stop"), cfg) as relay:
            page.goto(relay.url + "/")
            page.fill("#prompt", "Write a long essay about the history of rivers, in detail.")
            page.click("button[type=submit]")
            page.wait_for_function("() => document.getElementById('answer').textContent.length > 20", timeout=20_000)
            page.click("#stop")
            wait_until(
                lambda: len(sim.ledger()) and relay.records[-1].upstream_closed,
                timeout=60,
                what="the relay to close its upstream stream and the provider to record the request",
            )
            record, row = relay.records[-1], sim.ledger().iloc[-1]
    assert page.text_content("#status").startswith("stopped by you")
    assert record.status == "client_disconnected" and bool(row["disconnected"])
    assert row["output_tokens"] < 1000  # the model stopped long before max_tokens
    assert record.usage_source == "estimated" and 0 < record.metered_output_tokens <= row["output_tokens"]
