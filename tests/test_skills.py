"""The simulated model's skills: what triggers each one, and that its output has the promised shape."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from course_utils.mock_provider.request import parse_messages_request
from course_utils.mock_provider.skills import SKILLS, SkillContext, TextOut, ToolUseOut, respond, true_label
from course_utils.mock_provider.skills.classify import p_correct
from course_utils.mock_provider.skills.tool_input import build_input
from course_utils.models import get_model
from course_utils.tokens import count_text

HAIKU, SONNET, OPUS = "claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5"


def U(text: Any) -> dict:
    return {"role": "user", "content": text}


def A(text: Any) -> dict:
    return {"role": "assistant", "content": text}


def ctx_for(messages: list[dict], *, model: str = HAIKU, seed: Any = 0, scripted=None, **extra) -> SkillContext:
    body = {"model": model, "max_tokens": extra.pop("max_tokens", 400), "messages": messages, **extra}
    return SkillContext(
        request=parse_messages_request(body),
        model=get_model(model),
        rng=random.Random(seed),
        scripted=list(scripted or []),
    )


def ask(messages: list[dict], **kw):
    return respond(ctx_for(messages, **kw))


def text(reply) -> str:
    return "".join(b.text for b in reply.blocks if isinstance(b, TextOut))


# --- a tiny JSON-schema validator (the subset tools use) ----------------------------------------


def validate(value: Any, schema: dict, path: str = "$") -> None:
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in enum"
        return
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
        None: lambda v: True,
    }
    assert any(checks[k](value) for k in kinds), f"{path}: {value!r} is not {kind}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert schema.get("minimum", value) <= value <= schema.get("maximum", value), f"{path}: out of range"
    if isinstance(value, str):
        assert len(value) >= schema.get("minLength", 0), f"{path}: too short"
        assert len(value) <= schema.get("maxLength", len(value)), f"{path}: too long"
    if isinstance(value, dict):
        for req in schema.get("required", []):
            assert req in value, f"{path}: missing {req}"
        for k, v in value.items():
            if k in schema.get("properties", {}):
                validate(v, schema["properties"][k], f"{path}.{k}")
    if isinstance(value, list):
        assert len(value) >= schema.get("minItems", 0)
        for i, v in enumerate(value):
            validate(v, schema.get("items", {}), f"{path}[{i}]")


WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
}
ORDERS = {
    "name": "lookup_order",
    "description": "Look up an order's status by its order number",
    "input_schema": {
        "type": "object",
        "properties": {"order_number": {"type": "integer", "minimum": 1}},
        "required": ["order_number"],
    },
}
SCHEMAS = [
    (WEATHER["input_schema"], "What's the weather in Lisbon in fahrenheit?"),
    (ORDERS["input_schema"], "Where is order 4417?"),
    (
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 3},
                "limit": {"type": "integer", "minimum": 1, "maximum": 10},
                "include_archived": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "filters": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string", "enum": ["open", "closed", "pending"]},
                        "since": {"type": "string", "format": "date"},
                        "score": {"type": "number"},
                    },
                    "required": ["status", "since", "score"],
                },
                "mode": {"enum": ["fast", "thorough"]},
                "note": {"type": ["string", "null"]},
            },
            "required": ["query", "limit", "include_archived", "tags", "filters", "mode", "note"],
        },
        "Search closed tickets about refunds, limit 50, thorough please",
    ),
    (
        {
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email"},
                "amount": {"type": "number"},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                        "required": ["sku", "qty"],
                    },
                },
            },
            "required": ["email", "amount", "items"],
        },
        "Refund 12.5 dollars to ada@example.com",
    ),
    ({"type": "object", "properties": {}}, "Do the thing"),
]


# --- registry ----------------------------------------------------------------------------------


def test_skills_order_and_fallback():
    assert [s.name for s in SKILLS] == [
        "scripted",
        "tool_use",
        "structured",
        "summarize",
        "classify",
        "grounded",
        "recall",
        "prose",
    ]
    assert ask([U("Tell me about rate limits in one paragraph.")]).skill == "prose"


# --- scripted ----------------------------------------------------------------------------------


def test_scripted_first_match_wins_verbatim():
    scripted = [("HANDSHAKE", "The password is swordfish."), (re.compile(r"secret \w+"), "second")]
    r = ask([U("What is the secret handshake?")], scripted=scripted)
    assert r.skill == "scripted" and text(r) == "The password is swordfish."
    assert text(ask([U("a secret door")], scripted=scripted)) == "second"
    assert ask([U("nothing here")], scripted=scripted).skill != "scripted"


def test_scripted_matches_only_the_last_user_turn():
    r = ask([U("secret handshake"), A("ok"), U("What time is it?")], scripted=[("secret handshake", "x")])
    assert r.skill != "scripted"


# --- tool use ----------------------------------------------------------------------------------


def test_auto_calls_the_matching_tool_with_valid_input():
    r = ask([U("What's the weather in Lisbon?")], tools=[WEATHER, ORDERS])
    calls = [b for b in r.blocks if isinstance(b, ToolUseOut)]
    assert r.stop_reason == "tool_use" and calls[0].name == "get_weather"
    assert calls[0].input["city"] == "Lisbon"
    validate(calls[0].input, WEATHER["input_schema"])


def test_auto_unrelated_question_gets_prose_and_none_never_calls():
    assert ask([U("Tell me a story about dragons.")], tools=[WEATHER, ORDERS]).stop_reason == "end_turn"
    r = ask([U("What's the weather in Lisbon?")], tools=[WEATHER], tool_choice={"type": "none"})
    assert r.stop_reason == "end_turn"


def test_forced_tool_choices():
    r = ask([U("Hello there")], tools=[WEATHER, ORDERS], tool_choice={"type": "tool", "name": "lookup_order"})
    assert [type(b) for b in r.blocks] == [ToolUseOut] and r.blocks[0].name == "lookup_order"
    validate(r.blocks[0].input, ORDERS["input_schema"])
    r = ask([U("Where is order 4417?")], tools=[WEATHER, ORDERS], tool_choice={"type": "any"})
    assert r.blocks[0].name == "lookup_order" and r.blocks[0].input == {"order_number": 4417}


@pytest.mark.parametrize("schema,prompt", SCHEMAS)
def test_tool_inputs_validate(schema, prompt):
    value = build_input(schema, prompt)
    validate(value, schema)


def test_tool_inputs_use_the_text():
    value = build_input(SCHEMAS[2][0], SCHEMAS[2][1])
    assert value["filters"]["status"] == "closed" and value["mode"] == "thorough" and value["limit"] == 10
    assert build_input(SCHEMAS[3][0], SCHEMAS[3][1])["email"] == "ada@example.com"


def test_tool_result_gets_a_final_answer():
    msgs = [
        U("What's the weather in Lisbon?"),
        A([{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lisbon"}}]),
        U([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "22C and sunny"}]),
    ]
    r = ask(msgs, tools=[WEATHER])
    assert r.stop_reason == "end_turn" and "get_weather" in text(r) and "22C and sunny" in text(r)


# --- structured output -------------------------------------------------------------------------


def test_json_with_listed_keys():
    r = ask([U("Return a JSON object with keys sentiment and summary for: I love this product.")])
    data = json.loads(text(r))
    assert r.skill == "structured" and set(data) == {"sentiment", "summary"}
    assert data["sentiment"] in ("positive", "negative", "neutral")
    data = json.loads(text(ask([U("Respond in JSON. keys: name, email, age\nAda Lovelace, ada@example.com, 36")])))
    assert data == {"name": "Ada Lovelace", "email": "ada@example.com", "age": 36}


def test_json_follows_a_skeleton_and_defaults_to_answer():
    prompt = 'Output JSON shaped like {"title": "", "year": 0, "tags": ["x"], "meta": {"ok": true}} for: Dune, 1965.'
    data = json.loads(text(ask([U(prompt)])))
    assert isinstance(data["year"], int) and data["year"] == 1965 and isinstance(data["tags"], list)
    assert isinstance(data["meta"]["ok"], bool)
    assert "answer" in json.loads(text(ask([U("What is the capital of France? Answer as JSON.")])))


@pytest.mark.parametrize("prefill", ["{", '{"name": "', "[", '{"name": "Ada", "age":'])
def test_json_continues_a_prefill(prefill):
    msgs = [U("Extract the person as JSON with fields name and age: Ada is 36."), A(prefill)]
    out = text(ask(msgs))
    json.loads(prefill + out)


def test_json_not_triggered_by_a_question_about_json():
    assert ask([U("What is JSON and why is it popular?")]).skill != "structured"


# --- summarize ---------------------------------------------------------------------------------

FILLER = (
    "The weather has been lovely lately and I enjoy walking by the river in the afternoon. "
    "It is relaxing and I find it helps me think about all sorts of things at work. "
)


def _long_convo() -> list[dict]:
    msgs = [U("Hi there! My name is Ada."), A("Hello, nice to meet you!")]
    for i in range(6):
        msgs += [U(FILLER), A("That sounds wonderful, walking is a great way to relax and enjoy the sunshine.")]
        if i == 2:
            msgs += [U("My order number is 4417 and I live in Lisbon."), A("Thanks, noted.")]
    return msgs


def test_summary_keeps_planted_facts_and_is_short():
    msgs = _long_convo() + [U("Summarize our conversation so far.")]
    r = ask(msgs, max_tokens=120)
    summary = text(r)
    assert r.skill == "summarize"
    for fact in ("Ada", "4417", "Lisbon"):
        assert fact in summary
    source = sum(count_text(m["content"]) for m in msgs[:-1])
    assert count_text(summary) < 0.5 * source and count_text(summary) <= 120


def test_summary_of_pasted_text_and_tight_budget():
    doc = "Please summarise this: " + FILLER * 3 + "The contract ends on 2026-03-31 and costs 4,200 EUR. " + FILLER
    r = ask([U(doc)], max_tokens=60)
    assert "2026-03-31" in text(r) and count_text(text(r)) <= 60
    assert count_text(text(ask([U(doc)], max_tokens=10))) <= 10


def test_incremental_summary_keeps_old_and_new_facts():
    prompt = (
        "Here is the previous summary:\n- User: My name is Ada.\n- User: My order number is 4417.\n\n"
        "New turns:\nUser: I live in Lisbon. " + FILLER + "\nAssistant: Great, noted.\n\nUpdate the summary."
    )
    out = text(ask([U(prompt)]))
    assert all(f in out for f in ("Ada", "4417", "Lisbon"))


def test_summary_not_triggered_by_a_plain_question():
    assert ask([U("What is my name?")]).skill == "recall"


# --- classify ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt,expected",
    [
        (
            "Classify this ticket. Labels: billing, bug, account. Ticket: I was charged twice, please refund my invoice.",
            "billing",
        ),
        (
            "Classify the sentiment as one of: positive, negative, neutral\nReview: Terrible, awful, broken on arrival.",
            "negative",
        ),
        ("Pick the category [spam|ham] for: WINNER! Claim your free prize now, click here", "spam"),
        (
            "Categorize this message.\nCategories:\n- billing\n- shipping\n- account\n\nMessage: my package is lost, "
            "tracking shows no delivery",
            "shipping",
        ),
    ],
)
def test_classify_answers_one_listed_label(prompt, expected):
    r = ask([U(prompt)], model=OPUS)
    assert r.skill == "classify" and text(r) in re.split(r"[^a-z]+", prompt.lower())
    assert true_label(prompt.split(":")[-1], [expected, "account", "neutral"])[0] == expected


def test_classify_labels_from_the_system_prompt():
    r = ask(
        [U("I cannot log in, the password reset link fails.")],
        model=OPUS,
        system="Classify each support ticket into one of: billing, shipping, account. Answer with only the label.",
    )
    assert r.skill == "classify" and text(r) in ("billing", "shipping", "account")


def test_support_system_prompt_does_not_make_questions_classification():
    r = ask([U("What is my order number?")], system="You are a support assistant.")
    assert r.skill == "recall"


_TOPICS = {
    "billing": ["invoice", "charge", "refund", "payment", "card", "subscription", "receipt"],
    "bug": ["error", "crash", "broken", "exception", "freeze", "glitch", "timeout"],
    "account": ["login", "password", "username", "profile", "locked", "authentication"],
    "shipping": ["delivery", "package", "tracking", "courier", "parcel", "shipment"],
}
LABELS = list(_TOPICS)


def _item(rng: random.Random) -> str:
    """A ticket whose signal is strong, weak, mixed or absent, so the set has a spread of difficulty."""
    label = rng.choice(LABELS)
    other = rng.choice([x for x in LABELS if x != label])
    kind = rng.choice(["strong", "strong", "weak", "mixed", "mixed", "none"])
    words = {
        "strong": rng.sample(_TOPICS[label], 3),
        "weak": rng.sample(_TOPICS[label], 1),
        "mixed": rng.sample(_TOPICS[label], 2) + rng.sample(_TOPICS[other], 1),
        "none": [],
    }[kind]
    return (
        "Hello team, " + " and ".join(f"the {w}" for w in words) + " problem again, thanks."
        if words
        else "Hello team, something odd happened again today, thanks."
    )


def test_true_label_on_clear_items():
    assert true_label("My card was charged twice and I need a refund on the invoice", LABELS) == (
        "billing",
        true_label("My card was charged twice and I need a refund on the invoice", LABELS)[1],
    )
    label, difficulty = true_label("The app shows an error and crashes on start", LABELS)
    assert label == "bug" and difficulty < 0.3
    assert true_label("nothing relevant here", LABELS)[1] == 1.0


def test_classification_accuracy_depends_on_model_quality():
    rng = random.Random(42)
    items = [_item(rng) for _ in range(300)]
    truths = [true_label(t, LABELS)[0] for t in items]
    acc = {}
    for model in (HAIKU, SONNET, OPUS):
        right = 0
        for i, (item, truth) in enumerate(zip(items, truths)):
            prompt = f"Classify the ticket. Labels: {', '.join(LABELS)}. Answer with only the label.\nTicket: {item}"
            answer = text(ask([U(prompt)], model=model, seed=f"0:{model}:{i}"))
            assert answer in LABELS
            right += answer == truth
        acc[model] = right / len(items)
    assert acc[OPUS] > acc[SONNET] > acc[HAIKU]
    assert 0.70 <= acc[HAIKU] <= 0.86 and 0.83 <= acc[SONNET] <= 0.95 and 0.90 <= acc[OPUS] <= 0.995, acc


def test_p_correct_formula():
    assert p_correct(0.78, 0.5) == pytest.approx(0.78)
    assert p_correct(0.96, 0.05) > 0.98 and p_correct(0.78, 1.0) < p_correct(0.96, 1.0) - 0.25


# --- recall ------------------------------------------------------------------------------------

FACTS = [
    U(
        "Hi, my name is Ada and my order number is 4417. I live in Lisbon. My favourite colour is teal. "
        "My appointment is on March 3, 2025 at 10am."
    ),
    A("Nice to meet you, Ada."),
]


@pytest.mark.parametrize(
    "question,value",
    [
        ("What is my name?", "Ada"),
        ("What's my order number?", "4417"),
        ("Where do I live?", "Lisbon"),
        ("What did I say my favourite colour was?", "teal"),
        ("When is my appointment?", "March 3, 2025 at 10am"),
    ],
)
def test_recall_finds_facts(question, value):
    r = ask(FACTS + [U(question)])
    assert r.skill == "recall" and value in text(r)


def test_recall_admits_missing_facts():
    assert "I don't have that information." in text(ask([U("What is my name?")]))
    assert "I don't have that information." in text(ask(FACTS + [U("What is my phone number?")]))


def test_recall_from_an_earlier_summary_and_system_prompt():
    msgs = [
        U("Summary of the conversation so far:\n- Name: Ada\n- Order number: 4417"),
        A("Understood."),
        U("What is my order number?"),
    ]
    assert "4417" in text(ask(msgs))
    r = ask([U("How long is the refund window?")], system="You are a support bot. The refund window is 30 days.")
    assert r.skill == "recall" and "30 days" in text(r)
    assert ask([U("What is prompt caching?")], system="You are a helpful assistant.").skill == "prose"


def test_recall_later_statement_wins():
    msgs = [U("My name is Ada."), A("Hi Ada."), U("Actually, my name is Bea."), A("Sorry, Bea."), U("What is my name?")]
    assert "Bea" in text(ask(msgs))


# --- prose and determinism ---------------------------------------------------------------------


def test_prose_length_follows_the_prompt_and_model():
    short = count_text(text(ask([U("Explain caching briefly.")])))
    normal = count_text(text(ask([U("How should I think about caching in a web service?")])))
    essay = count_text(text(ask([U("Write a long essay about databases.")], max_tokens=2000)))
    assert short < normal < essay and 40 <= normal <= 200 and essay >= 600
    capped = count_text(text(ask([U("Write a long essay about databases.")], max_tokens=50)))
    assert capped <= 2 * 50 + 40
    verbose = count_text(text(ask([U("Explain caching in detail.")], model=OPUS)))
    terse = count_text(text(ask([U("Explain caching in detail.")], model=HAIKU)))
    assert verbose > terse


def test_prose_is_topical():
    assert "rate limits" in text(ask([U("Tell me about rate limits in one paragraph.")]))


def test_same_seed_same_reply_other_seed_differs():
    msgs = [U("Tell me about rate limits in one paragraph.")]
    assert text(ask(msgs, seed=1)) == text(ask(msgs, seed=1))
    assert text(ask(msgs, seed=1)) != text(ask(msgs, seed=2))


def test_respond_never_crashes_on_odd_requests():
    odd_tools = [
        {
            "name": "t",
            "input_schema": {
                "type": "object",
                "properties": {"a": 3, "b": {"type": "weird"}, "c": {"anyOf": [{"type": "integer"}]}},
                "required": ["a", "b", "c", "d"],
            },
        }
    ]
    for messages in (
        [U("x")],
        [U("?")],
        [U("Summarize")],
        [U("Labels: a, b")],
        [U("{"), A("[")],
        [U([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}])],
    ):
        assert respond(ctx_for(messages)).blocks
        assert respond(ctx_for(messages, tools=odd_tools, tool_choice={"type": "any"})).blocks


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Which city do I live in?", "You live in Lisbon."),
        ("Do you remember where I live?", "You live in Lisbon."),
        ("What's my dog's name?", "Your dog's name is Rex."),
        ("Remind me of my order number.", "Your order number is 48213."),
    ],
)
def test_recall_understands_more_ways_of_asking(question, expected):
    import random as _random

    from course_utils.mock_provider.request import parse_messages_request as _parse
    from course_utils.mock_provider.skills import SkillContext as _Ctx, respond as _respond
    from course_utils.models import get_model as _get_model

    msgs = [
        {"role": "user", "content": "Hi! I live in Lisbon and my dog is called Rex. My order number is 48213."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": question},
    ]
    req = _parse({"model": "claude-haiku-5-5", "max_tokens": 100, "messages": msgs})
    reply = _respond(_Ctx(request=req, model=_get_model("claude-haiku-5-5"), rng=_random.Random(0)))
    assert reply.skill == "recall" and reply.blocks[0].text == expected


# --- summarize: the instruction in the system prompt, the material in the user turn (issue 14-5) ---

TRANSCRIPT = (
    "User: Hi there! My name is Ada.\nAssistant: Hello, nice to meet you!\nUser: "
    + FILLER
    + "\nUser: My order number is 4417 and I live in Lisbon.\nAssistant: Thanks, noted.\nUser: "
    + FILLER * 2
)


@pytest.mark.parametrize(
    "system",
    [
        "Summarize the conversation below for the support agent who continues it. Keep all facts word for word.",
        "You are a summarization assistant. Keep every fact the user stated.",
        "Your task is to summarise the transcript the user sends.",
        "You condense support transcripts. Condense the transcript you are given, keeping facts.",
        "Please write a short summary of the following text.",
        [{"type": "text", "text": "Summarize the user's message, keeping names and numbers."}],
    ],
)
def test_summary_instruction_in_system_with_material_in_the_user_turn(system):
    r = ask([U(TRANSCRIPT)], system=system, max_tokens=120)
    assert r.skill == "summarize"
    out = text(r)
    assert all(f in out for f in ("Ada", "4417", "Lisbon")), out
    assert count_text(out) < 0.5 * count_text(TRANSCRIPT)


def test_summary_instruction_in_system_summarizes_a_conversation_in_messages():
    msgs = _long_convo() + [U("That is all for today, thanks.")]
    r = ask(msgs, system="Summarize this conversation. Keep every fact the user gave.", max_tokens=120)
    assert r.skill == "summarize"
    assert all(f in text(r) for f in ("Ada", "4417", "Lisbon"))


@pytest.mark.parametrize(
    "system",
    [
        "Summary of the earlier conversation (facts the user gave):\n- User: My name is Ada.",  # carries a summary
        "You are a helpful support agent. Answer briefly.",
        "You are a support agent. A summary of past tickets is below.\nSummary: order 4417 was refunded.",
        "Answer questions about the documents; the user may ask you to produce other outputs later.",
    ],
)
def test_a_system_prompt_that_does_not_instruct_summarizing_does_not_trigger_it(system):
    assert ask([U("What is my order number?")], system=system).skill != "summarize"
    assert ask([U(TRANSCRIPT)], system=system).skill != "summarize"


def test_a_long_assistant_prompt_mentioning_summaries_in_passing_does_not_trigger_it():
    from pathlib import Path

    system = (Path(__file__).resolve().parents[1] / "data" / "lesson01_system_prompt.md").read_text()
    assert "Summarise the case" in system  # lesson 01's prompt, with an escalation rule that mentions it
    assert ask([U("My router keeps dropping the connection, what should I do?")], system=system).skill != "summarize"
