"""RAG evaluation: the simulated answer uses the retrieved context, and groundedness measures it."""

from __future__ import annotations

import pytest

from course_utils.architecture.evaluation import evaluate_answers, groundedness
from course_utils.architecture.help_centre import load_help_centre, questions
from course_utils.architecture.vectors import VectorIndex


@pytest.fixture(scope="module")
def index() -> VectorIndex:
    idx = VectorIndex()
    load_help_centre(idx, ["acme", "globex"])
    return idx


def test_groundedness_scores_supported_statements_and_ignores_attributions():
    context = ["To reset your Acme Ledger password, click 'Forgot password' on the sign-in page."]
    assert (
        groundedness("According to [acme/password_reset]: click 'Forgot password' on the sign-in page.", context) == 1
    )
    assert groundedness("Here is how I would think about forgot. Keep the interfaces narrow.", context) == 0
    half = "Click 'Forgot password' on the sign-in page. Then call our support line on weekends."
    assert groundedness(half, context) == 0.5
    assert groundedness("", context) == 0 and groundedness("[acme/x]", context) == 0


def test_the_answer_to_a_forgotten_password_uses_the_retrieved_article(index):
    rows = evaluate_answers(index, [{"tenant": "acme", "question": "I forgot my password. How do I reset it?",
                                     "doc_id": "acme/password_reset"}])  # fmt: skip
    row = rows.iloc[0]
    assert row.retrieved_gold and "[acme/password_reset]" in row.answer
    assert row.grounded == 1 and row.grounded_in_gold == 1


def test_most_labelled_answers_are_grounded_and_the_metric_can_fail(index):
    items = [q for q in questions() if q["tenant"] in ("acme", "globex")][::6]
    rows = evaluate_answers(index, items)
    assert rows.retrieved_gold.mean() >= 0.9
    assert 0.6 <= rows.grounded.mean() < 1.0  # most answers carry the articles' facts; the metric still finds gaps
    assert (rows.grounded == 0).any()


def test_the_simulator_answers_from_bracketed_passages_whatever_sends_them(make_server):
    """The grounded skill is lesson-agnostic: any request whose system prompt holds ``[id] text`` passages."""
    from course_utils.content import text_of

    client = make_server(seed=0, time_scale=1.0, rate_limit_tier="unlimited").tenant("t").client()
    system = "Answer from these notes:\n[n1] The boiler restarts with the red switch.\n[n2] Bins go out on Tuesday."

    def ask(question: str, sys: str = system) -> str:
        reply = client.messages.create(
            model="claude-sonnet-5-5", max_tokens=200, system=sys, messages=[{"role": "user", "content": question}]
        )
        return text_of(reply)

    assert "[n2]" in ask("When do the bins go out?") and "Tuesday" in ask("When do the bins go out?")
    assert "[n1]" in ask("How do I restart the boiler?")
    assert "[n" not in ask("When do the bins go out?", sys="Be brief.")  # no passages: another skill answers
