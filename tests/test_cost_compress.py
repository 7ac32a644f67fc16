"""course_utils.cost.compress: within budget, relevant facts kept, duplicates and boilerplate gone."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.cost import compress, compress_report, dedupe, rank_sentences, split_sentences
from course_utils.tokens import count_text

FACT = "The refund window for annual plans is 45 days."
CONTEXT = " ".join(
    [
        "Hello there!",
        "The refund window for the Pro plan is 30 days.",
        "Our team met on Tuesday.",
        FACT,
        "The seat limit for annual plans is 10 seats.",
        "The refund window for the Pro plan is 30 days.",
        "Thanks so much!",
        "Kind regards, the support team.",
    ]
)
QUESTION = "What is the refund window for annual plans?"


def test_split_keeps_sentences_and_lines():
    assert split_sentences("One. Two!\nThree? four") == ["One.", "Two!", "Three? four"]


def test_dedupe_drops_repeats_and_whole_sentence_boilerplate_only():
    kept = dedupe(split_sentences(CONTEXT))
    assert kept.count("The refund window for the Pro plan is 30 days.") == 1
    assert "Hello there!" not in kept and "Thanks so much!" not in kept
    # A fact glued to a greeting is not boilerplate.
    assert dedupe(["Hello, the fee is $5 per seat.", "Hi!"]) == ["Hello, the fee is $5 per seat."]


def test_ranking_puts_the_answer_first():
    sentences = dedupe(split_sentences(CONTEXT))
    scores = rank_sentences(sentences, QUESTION)
    assert sentences[int(scores.argmax())] == FACT
    assert rank_sentences([], QUESTION).size == 0
    assert rank_sentences(["the and of"], QUESTION).tolist() == [0.0]


def test_compress_keeps_the_fact_in_a_tight_budget_and_the_original_order():
    budget = count_text(FACT) + 2
    out = compress(CONTEXT, QUESTION, budget)
    assert out == FACT
    wider = compress(CONTEXT, QUESTION, 40).split("\n")
    assert FACT in wider
    positions = [CONTEXT.index(s) for s in wider]
    assert positions == sorted(positions)


def test_report_accounts_for_what_was_dropped():
    report = compress_report(CONTEXT, QUESTION, 12)
    assert report.tokens == count_text(report.text) <= 12
    assert report.original_tokens == count_text(CONTEXT)
    assert report.dropped_duplicates == 4  # one repeat, three boilerplate sentences
    assert report.kept + report.dropped_for_budget == 4


def test_edge_budgets_and_bad_input():
    assert compress("", QUESTION, 100) == ""
    assert compress(CONTEXT, QUESTION, 0) == ""
    with pytest.raises(ValueError, match="budget"):
        compress(CONTEXT, QUESTION, -1)
    with pytest.raises(ValueError, match="budget"):
        compress(CONTEXT, QUESTION, 10.5)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    sentences=st.lists(
        st.sampled_from(split_sentences(CONTEXT) + ["Other words here.", "Numbers 1 2 3."]), max_size=30
    ),
    budget=st.integers(min_value=0, max_value=80),
)
def test_never_over_budget_and_never_invents_text(sentences, budget):
    context = " ".join(sentences)
    out = compress(context, QUESTION, budget)
    assert count_text(out) <= budget
    for line in out.split("\n") if out else []:
        assert line in context


def test_shipped_recall_set_fits_and_keeps_every_answer_at_40_tokens():
    with open("data/lesson06_recall.jsonl", encoding="utf-8") as fh:
        items = [json.loads(line) for line in fh]
    assert len(items) == 60 and {i["position"] for i in items} == {"head", "middle", "tail"}
    for item in items:
        out = compress(item["context"], item["question"], 40)
        assert count_text(out) <= 40
        assert item["answer"] in out, item["question"]
