"""Issue 13 item 4: every catalog model enforces exactly the request rules ``data/model_rules.csv`` states.

The table is the one source (with a documentation URL per row); this test sends, for every model and
rule, a request that breaks only that rule and checks for the 400 (refused) or a 200 (allowed).
"""

from __future__ import annotations

import csv
import time

import anthropic
import httpx2
import pytest

from _http import TLS
from course_utils.models import DATA_DIR, RULES, catalog

TOOLS = [{"name": "lookup", "description": "Look up an order", "input_schema": {"type": "object", "properties": {}}}]
ASK = [{"role": "user", "content": "Where is order 4417?"}]

# One request per rule that breaks that rule and nothing else.
BREAKS = {
    "sampling_params": {"temperature": 0.2},
    "assistant_prefill": {"messages": ASK + [{"role": "assistant", "content": "The order"}]},
    # A valid budget (>= 1,024 and below max_tokens): only the model's rule can refuse it.
    "thinking_budget": {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2000},
    "forced_tool_choice": {"tools": TOOLS, "tool_choice": {"type": "any"}},
    "thinking_disabled": {"thinking": {"type": "disabled"}},
    # Breaks thinking_disabled too where that is refused; those models refuse this rule as well (the table says so).
    "thinking_disabled_high_effort": {"thinking": {"type": "disabled"}, "output_config": {"effort": "max"}},
}

ROWS = list(csv.DictReader(open(DATA_DIR / "model_rules.csv", newline="", encoding="utf-8")))


def test_table_covers_every_model_and_rule_with_a_source():
    stated = {(r["model"], r["rule"]) for r in ROWS}
    assert stated == {(m, rule) for m in catalog() for rule in RULES}
    assert len(ROWS) == len(stated)  # one row per model and rule
    for r in ROWS:
        assert r["source_url"].startswith("https://platform.claude.com/") or r["model"] == "sim-teaching-4k"
    assert set(BREAKS) == set(RULES)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['model']}-{r['rule']}")
def test_rule_is_enforced_as_stated(sim, row):
    body = {"model": row["model"], "max_tokens": 50, "messages": ASK, **BREAKS[row["rule"]]}
    h = {"x-api-key": "rules", "anthropic-version": "2023-06-01"}
    with httpx2.Client(base_url=sim.base_url, headers=h, timeout=10, verify=TLS) as c:
        r = c.post("/v1/messages", json=body)
    if catalog()[row["model"]].lifecycle(time.time()) == "retired":
        assert r.status_code == 404, r.text  # past its end of life: no request to it is served
    elif row["allowed"] == "true":
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 400, r.text
        env = r.json()
        assert env["error"]["type"] == "invalid_request_error" and env["request_id"] == r.headers["request-id"]


def test_documented_wording_through_the_sdk(client):
    with pytest.raises(anthropic.BadRequestError, match="`temperature` is deprecated for this model"):
        client.messages.create(model="claude-haiku-5-5", max_tokens=20, messages=ASK, extra_body={"temperature": 0})
    with pytest.raises(anthropic.BadRequestError, match='"thinking.type.enabled" is not supported'):
        client.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=4096,
            messages=ASK,
            thinking={"type": "enabled", "budget_tokens": 2048},
        )
    # Sending the documented default is not a change: temperature 1.0 is accepted everywhere.
    assert client.messages.create(
        model="claude-opus-5-5", max_tokens=20, messages=ASK, extra_body={"temperature": 1.0}
    ).content


def test_opus_5_disables_thinking_only_at_effort_high_or_below(client):
    """The Opus 5 overview: 'thinking can be disabled only at effort high or below'."""
    for effort in ("low", "medium", "high"):
        reply = client.messages.create(
            model="claude-opus-5",
            max_tokens=50,
            messages=ASK,
            thinking={"type": "disabled"},
            extra_body={"output_config": {"effort": effort}},
        )
        assert [b.type for b in reply.content] == ["text"]
    for effort in ("xhigh", "max"):
        with pytest.raises(anthropic.BadRequestError, match='only supported with output_config.effort "high" or lower'):
            client.messages.create(
                model="claude-opus-5",
                max_tokens=50,
                messages=ASK,
                thinking={"type": "disabled"},
                extra_body={"output_config": {"effort": effort}},
            )
