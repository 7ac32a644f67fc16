"""Make ``data/lesson03_tickets.csv``: 2,000 synthetic support tickets for lesson 03 (seeded, offline).

Each ticket is built from templates for one of four labels (billing, bug, account, shipping) with
a few product names, amounts and dates mixed in, so tickets differ in wording and length. Some
tickets add a sentence from another topic, which makes them harder to classify. The ``label``
column is the label the ticket was written for; ``difficulty`` is the simulator's own measure of
how clearly the text signals it (``course_utils.mock_provider.skills.classify.true_label``).

Run from the repository root: ``python data/make_lesson03_tickets.py`` (same seed, same file).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from course_utils.mock_provider.skills.classify import true_label

SEED = 3
COUNT = 2_000
LABELS = ("billing", "bug", "account", "shipping")
OUT = Path(__file__).resolve().parent / "lesson03_tickets.csv"

PRODUCTS = ["Pro plan", "Team plan", "desk lamp", "mobile app", "dashboard", "export tool", "headphones", "API"]
TEMPLATES = {
    "billing": [
        "I was charged twice for the {product} this month; please refund the extra ${amount}.",
        "My invoice for {month} shows ${amount} but my plan costs less. Can you fix the billing?",
        "The payment with my credit card failed although the card is valid.",
        "Please send a receipt for the {product} subscription, I need it for expenses.",
        "Why did the price of my subscription go up by ${amount} without notice?",
        "I cancelled in {month} and was still billed. I want my money back.",
    ],
    "bug": [
        "The {product} crashes every time I open the settings page.",
        "Export fails with error 500 after the last update; the {product} is broken.",
        "Clicking save does nothing and the page freezes. Looks like a bug.",
        "The {product} shows a stack trace instead of the report since {month}.",
        "Search is not working: it times out with an exception after a few seconds.",
        "Charts in the {product} render blank; this glitch started yesterday.",
    ],
    "account": [
        "I cannot log in: the password reset email never arrives.",
        "My account is locked after too many sign in attempts. Please unlock it.",
        "How do I change the email address on my profile?",
        "Please delete my account and all data linked to my username.",
        "Two-factor authentication (2fa) keeps rejecting my code, so I have no access.",
        "I want to add a colleague to my account with their own login.",
    ],
    "shipping": [
        "My package with the {product} has not arrived; tracking has not moved since {month}.",
        "The courier says the parcel was delivered but nothing is at my address.",
        "Can you ship my order to a different address? It has not been dispatched yet.",
        "The delivery of my {product} is two weeks late.",
        "Tracking shows the shipment lost in transit. What now?",
        "I ordered the {product} on {month} 3 and it still has not shipped.",
    ],
}
OPENERS = ["", "Hello, ", "Hi team, ", "Good morning. ", "Urgent: ", "Quick question. "]
CLOSERS = ["", " Thanks.", " Thank you for your help.", " Regards, a long-time customer.", " Please advise."]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]


def make_ticket(rng: random.Random, label: str) -> str:
    """One ticket written for ``label``; one in five borrows a sentence from another topic."""
    fill = {
        "product": rng.choice(PRODUCTS),
        "amount": rng.choice([9, 12, 19, 29, 49, 99, 120]),
        "month": rng.choice(MONTHS),
    }
    body = rng.choice(TEMPLATES[label]).format(**fill)
    if rng.random() < 0.2:
        other = rng.choice([x for x in LABELS if x != label])
        extra = rng.choice(TEMPLATES[other]).format(**fill)
        body += " Also, " + extra[0].lower() + extra[1:]
    return rng.choice(OPENERS) + body + rng.choice(CLOSERS)


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for n in range(COUNT):
        label = LABELS[n % len(LABELS)] if n < len(LABELS) else rng.choice(LABELS)
        text = make_ticket(rng, label)
        _, difficulty = true_label(text, list(LABELS))
        rows.append({"ticket_id": f"T{n + 1:04d}", "text": text, "label": label, "difficulty": difficulty})
    with open(OUT, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["ticket_id", "text", "label", "difficulty"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} tickets to {OUT.name}")


if __name__ == "__main__":
    main()
