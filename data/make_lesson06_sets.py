"""Make lesson 06's evaluation sets (seeded, offline): fact recall, cache pairs, labelled tickets.

* ``lesson06_recall.jsonl``: 60 long chat contexts for prompt compression. Each holds a
  conversation (greetings, sign-offs, repeated retrieved documents) and policy notes with one fact
  per sentence ("The refund window for annual plans is 45 days."), some of them near misses of the
  asked fact (same attribute, another plan). Fields: ``context``, ``question``, ``answer`` (the
  value the reply must contain), ``position`` (where in the context the fact sits: head, middle
  or tail, so truncating either end loses some).
* ``lesson06_cache_pairs.csv``: question pairs for the semantic cache: ``paraphrase`` (same
  question, other words: should hit) and ``near_miss`` (same words, another order number,
  amount, plan or email: must not hit). Columns ``stored``, ``asked``, ``kind``.
* ``lesson06_labelled.csv``: lesson 03's tickets whose written-for label is also the label the
  simulator's classifier holds true (``true_label`` on the prompt the router sends). The others
  (about 11%) mix two topics so evenly that the author's label and the simulator disagree; no
  model could be graded fairly on them. Columns as lesson 03 plus ``split`` (``dev`` rows are the
  notebook's; ``hidden`` rows are only used by check 6.4).

Run from the repository root: ``python data/make_lesson06_sets.py`` (same seed, same bytes).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from course_utils.concurrency import LABELS, load_tickets
from course_utils.cost.routing import label_request
from course_utils.mock_provider.skills.classify import find_labels, item_text, true_label

SEED = 6
HERE = Path(__file__).resolve().parent
HIDDEN = 400

SUBJECTS = [
    "annual plans",
    "the Starter plan",
    "the Team plan",
    "the Pro plan",
    "enterprise accounts",
    "student accounts",
]
ATTRIBUTES = {
    "refund window": ["{n} days", [14, 21, 30, 45, 60, 90]],
    "support response time": ["{n} hours", [2, 4, 8, 12, 24, 48]],
    "storage limit": ["{n} GB", [5, 10, 50, 100, 250, 500]],
    "seat limit": ["{n} seats", [3, 5, 10, 25, 50, 100]],
    "cancellation fee": ["${n}", [0, 5, 15, 25, 49, 99]],
    "data retention period": ["{n} months", [1, 3, 6, 12, 18, 36]],
}
CHATTER = [
    "Hi there!",
    "Hello, thanks for reaching out.",
    "Thanks so much!",
    "I hope this helps.",
    "Let me know if you have any other questions.",
    "Is there anything else I can help you with?",
    "Kind regards, the support team.",
    "Sent from my iPhone.",
    "I tried logging in again this morning.",
    "The dashboard looked fine yesterday.",
    "We are planning to onboard a few more colleagues next quarter.",
    "Our finance team asked me to double-check a few things.",
    "I read the pricing page but it was not clear to me.",
    "Could you check the notes for me?",
]
DOC_HEADER = "Retrieved document: Help centre article on plans and policies."


def fact(attr: str, subject: str, value: str) -> str:
    return f"The {attr} for {subject} is {value}."


def recall_items(rng: random.Random, count: int = 60) -> list[dict]:
    items = []
    positions = ["head", "middle", "tail"]
    for n in range(count):
        attr = rng.choice(list(ATTRIBUTES))
        unit, values = ATTRIBUTES[attr]
        subject = rng.choice(SUBJECTS)
        value = unit.format(n=rng.choice(values))
        target = fact(attr, subject, value)
        others = []
        for other_subject in rng.sample([s for s in SUBJECTS if s != subject], 3):
            # Near misses: the same attribute for another plan, with another value.
            others.append(
                fact(attr, other_subject, unit.format(n=rng.choice([v for v in values if unit.format(n=v) != value])))
            )
        for other_attr in rng.sample([a for a in ATTRIBUTES if a != attr], 3):
            u, vs = ATTRIBUTES[other_attr]
            others.append(fact(other_attr, rng.choice(SUBJECTS), u.format(n=rng.choice(vs))))
        filler = [rng.choice(CHATTER) for _ in range(rng.randint(30, 45))]
        # Retrieved documents are appended again on every turn: the same block three times.
        doc = [DOC_HEADER, *rng.sample(others, len(others))]
        body = filler[:10] + doc + filler[10:25] + doc + filler[25:] + doc
        position = positions[n % 3]
        if position == "head":
            body.insert(1, target)
        elif position == "middle":
            body.insert(len(body) // 2, target)
        else:
            body.append(target)
        question = f"What is the {attr} for {subject}?"
        items.append({"context": " ".join(body), "question": question, "answer": value, "position": position})
    return items


def cache_pairs(rng: random.Random) -> list[dict]:
    rows = []
    templates = [
        ("Can I get a refund for order {a}?", "I want my money back for order {a}, is that possible?", "order"),
        ("Where is my package for order {a}?", "Order {a} has not arrived yet, can you track it?", "order"),
        (
            "Why was I charged ${a} this month?",
            "There is a ${a} charge on my card this month, what is it for?",
            "amount",
        ),
        ("How do I cancel order {a}?", "Please help me cancel my order {a}.", "order"),
        ("Can you change the email on my account to {e}?", "Please update my account email address to {e}.", "email"),
        ("What is included in the {p} plan?", "Which features does the {p} plan come with?", "plan"),
        ("Is invoice INV-{a} paid?", "Has invoice INV-{a} been settled yet?", "invoice"),
        ("How long does shipping take for order {a}?", "When will order {a} be delivered?", "order"),
    ]
    plans = ["Team", "Pro", "Starter", "Enterprise"]
    for stored, paraphrase, kind in templates:
        for _ in range(6):
            a, b = rng.randint(100, 99_999), 0
            b = a + rng.choice([1, -1, 10, 100])
            e1, e2 = f"ana{rng.randint(1, 99)}@example.com", f"ben{rng.randint(1, 99)}@example.com"
            p1, p2 = rng.sample(plans, 2)
            fill = {"a": a, "e": e1, "p": p1}
            near = {"a": b, "e": e2, "p": p2}
            rows.append({"stored": stored.format(**fill), "asked": paraphrase.format(**fill), "kind": "paraphrase"})
            rows.append({"stored": stored.format(**fill), "asked": stored.format(**near), "kind": "near_miss"})
    return rows


def labelled() -> list[dict]:
    rows = []
    for t in load_tickets().itertuples():
        prompt = label_request(t.text, LABELS, model="-")["messages"][0]["content"]
        labels, spans = find_labels(prompt)
        truth, difficulty = true_label(item_text(prompt, spans), labels)
        if truth == t.label:
            rows.append({"ticket_id": t.ticket_id, "text": t.text, "label": t.label, "difficulty": difficulty})
    for i, row in enumerate(rows):
        row["split"] = "hidden" if i >= len(rows) - HIDDEN else "dev"
    return rows


def main() -> None:
    rng = random.Random(SEED)
    recall = recall_items(rng)
    with open(HERE / "lesson06_recall.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for item in recall:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    pairs = cache_pairs(rng)
    with open(HERE / "lesson06_cache_pairs.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["stored", "asked", "kind"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(pairs)
    tickets = labelled()
    with open(HERE / "lesson06_labelled.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=["ticket_id", "text", "label", "difficulty", "split"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(tickets)
    print(f"wrote {len(recall)} recall items, {len(pairs)} cache pairs, {len(tickets)} labelled tickets")


if __name__ == "__main__":
    main()
