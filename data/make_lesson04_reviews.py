"""Make data/lesson04_reviews.csv.gz: synthetic product reviews for lesson 04 (Batch processing).

Seeded and offline: ``python data/make_lesson04_reviews.py`` writes the same bytes every time.
Columns: review_id (e.g. ``B07KX2PQ1M/R00017``: the slash is deliberate, it is not allowed in a
custom_id), product, rating (1-5), text. About 1.5% of the texts are empty or whitespace, as in
real scraped data: they make invalid batch requests (an empty user message).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "lesson04_reviews.csv.gz"

PRODUCTS = [
    "wireless earbuds",
    "robot vacuum",
    "espresso machine",
    "running shoes",
    "desk lamp",
    "phone case",
    "air fryer",
    "mechanical keyboard",
    "backpack",
    "smart watch",
    "electric kettle",
    "yoga mat",
]
GOOD = [
    "works perfectly",
    "exceeded my expectations",
    "great value for the price",
    "sturdy and well made",
    "setup took two minutes",
    "battery lasts all week",
    "my family loves it",
    "arrived a day early",
]
BAD = [
    "stopped working after a week",
    "cheap plastic that cracked",
    "battery died after two days",
    "customer support never answered",
    "arrived damaged",
    "much smaller than the photos",
    "loud and slow",
    "the app keeps crashing",
]
MEH = [
    "does the job",
    "nothing special",
    "fine for occasional use",
    "about what I expected",
    "instructions were confusing but it works",
    "okay but overpriced",
]
OPENERS = [
    "Bought this for my office.",
    "Second one I have owned.",
    "Gift for my brother.",
    "",
    "Used it daily for a month.",
    "Replaced an older model.",
]


def make_reviews(n: int, seed: int) -> list[dict[str, object]]:
    """``n`` reviews, deterministic for ``seed``."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        product = rng.choice(PRODUCTS)
        rating = rng.choices([1, 2, 3, 4, 5], weights=[12, 8, 15, 25, 40])[0]
        pool = GOOD if rating >= 4 else BAD if rating <= 2 else MEH
        phrases = rng.sample(pool, k=rng.randint(1, 3))
        text = " ".join(p for p in [rng.choice(OPENERS), f"The {product}:"] if p)
        text += " " + ", ".join(phrases) + "."
        if rng.random() < 0.015:
            text = rng.choice(["", " ", "\n"])  # scraped reviews with no body
        asin = "B0" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(8))
        rows.append({"review_id": f"{asin}/R{i:05d}", "product": product, "rating": rating, "text": text})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["review_id", "product", "rating", "text"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(make_reviews(args.n, args.seed))
    # mtime=0 and no file name in the header: the same bytes on every run.
    with open(args.out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buf.getvalue().encode("utf-8"))
    print(f"wrote {args.n} reviews to {args.out.name}")


if __name__ == "__main__":
    main()
