"""Make ``data/lesson06_ledger.csv.gz``: the incident week of lesson 06 (seeded, offline).

One row per Messages API request over seven days (2027-01-11 to 2027-01-17, UTC), with the
usage the API would have reported. Four features:

* ``chat`` (Sonnet 5.5): a support chat. Its system prompt is prompt-cached (5-minute entries).
  From Wednesday (day 3) a release appends the whole conversation history and every retrieved
  document to each request, so prompts grow day by day.
* ``faq`` (Haiku 4.5): answers to help-centre questions; most requests repeat one of 40 popular
  questions word for word (same ``request_hash``), and nothing caches them. From Wednesday a
  mobile-app release asks again on every screen render, so the volume grows fivefold.
* ``summaries`` (Sonnet 5.5): nightly ticket summaries that nobody reads before morning, sent as
  ordinary (non-batch) requests.
* ``triage`` (Opus 5.5, 2,500 a day): a yes/no "does this ticket need a human?" classification launched on
  Friday (day 5) on the most capable model.

Run from the repository root: ``python data/make_lesson06_ledger.py`` (same seed, same bytes).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 6
DAYS = 7
START = datetime(2027, 1, 11, tzinfo=timezone.utc)
OUT = Path(__file__).resolve().parent / "lesson06_ledger.csv.gz"
COLUMNS = [
    "ts",
    "feature",
    "model",
    "batch",
    "input_tokens",
    "cache_creation_5m",
    "cache_creation_1h",
    "cache_read_input_tokens",
    "output_tokens",
    "request_hash",
]
CHAT_SYSTEM = 2_300  # tokens of the cached system prompt
FAQ_POPULAR = 40


def lognormal(rng: random.Random, median: float, sigma: float) -> int:
    return max(1, int(round(median * math.exp(rng.gauss(0.0, sigma)))))


def stamp(rng: random.Random, day: int) -> str:
    # Traffic peaks in office hours: a normal around 14:00 UTC, clipped to the day.
    seconds = min(86_399, max(0, int(rng.gauss(14 * 3600, 4 * 3600))))
    return (START + timedelta(days=day, seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def chat_rows(rng: random.Random, day: int) -> list[dict]:
    rows = []
    for n in range(400):
        # Before the release: the last few turns and the top-3 documents. After it: everything,
        # and conversations get longer as the week goes on.
        prompt = lognormal(rng, 1_400, 0.35) if day < 2 else lognormal(rng, 4_000 + 3_500 * (day - 2), 0.45)
        write = rng.random() < 0.08
        rows.append(
            {
                "ts": stamp(rng, day),
                "feature": "chat",
                "model": "claude-sonnet-5-5",
                "batch": "false",
                "input_tokens": prompt,
                "cache_creation_5m": CHAT_SYSTEM if write else 0,
                "cache_creation_1h": 0,
                "cache_read_input_tokens": 0 if write else CHAT_SYSTEM,
                "output_tokens": lognormal(rng, 220, 0.4),
                "request_hash": digest("chat", day, n),
            }
        )
    return rows


def faq_rows(rng: random.Random, day: int) -> list[dict]:
    rows = []
    for n in range(600 if day < 2 else 3_000):
        # Zipf-like popularity: a few questions are asked again and again.
        popular = rng.random() < 0.8
        q = min(FAQ_POPULAR - 1, int(rng.paretovariate(1.2)) - 1) if popular else f"rare-{day}-{n}"
        size = 1_150 + (rng.randint(0, 150) if not popular else q * 3)
        rows.append(
            {
                "ts": stamp(rng, day),
                "feature": "faq",
                "model": "claude-haiku-4-5",
                "batch": "false",
                "input_tokens": size,
                "cache_creation_5m": 0,
                "cache_creation_1h": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 150 + (q * 7 % 90 if popular else rng.randint(0, 120)),
                "request_hash": digest("faq", q),
            }
        )
    return rows


def summary_rows(rng: random.Random, day: int) -> list[dict]:
    return [
        {
            "ts": (START + timedelta(days=day, hours=2, seconds=n * 7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "feature": "summaries",
            "model": "claude-sonnet-5-5",
            "batch": "false",
            "input_tokens": lognormal(rng, 2_600, 0.3),
            "cache_creation_5m": 0,
            "cache_creation_1h": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": lognormal(rng, 300, 0.3),
            "request_hash": digest("summary", day, n),
        }
        for n in range(150)
    ]


def triage_rows(rng: random.Random, day: int) -> list[dict]:
    if day < 4:
        return []
    return [
        {
            "ts": stamp(rng, day),
            "feature": "triage",
            "model": "claude-opus-5-5",
            "batch": "false",
            "input_tokens": lognormal(rng, 700, 0.25),
            "cache_creation_5m": 0,
            "cache_creation_1h": 0,
            "cache_read_input_tokens": 0,
            # Adaptive thinking on by default: a yes/no answer still generates a few hundred tokens.
            "output_tokens": lognormal(rng, 260, 0.35),
            "request_hash": digest("triage", day, n),
        }
        for n in range(2_500)
    ]


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for day in range(DAYS):
        for make in (chat_rows, faq_rows, summary_rows, triage_rows):
            rows.extend(make(rng, day))
    rows.sort(key=lambda r: (r["ts"], r["feature"], r["request_hash"]))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
        fh.write(text.getvalue().encode("utf-8"))
    print(f"wrote {len(rows)} requests to {OUT.name} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
