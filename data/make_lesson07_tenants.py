"""Make ``data/lesson07_tenants.csv``: the 40 customers of lesson 07's SaaS (seeded, offline).

Each row is one tenant: its id, its plan (free, pro or enterprise), and its traffic in a month,
scaled down for the notebook: how many interactive requests it sends, what share of them reuse
its long, cached system prompt (its product documentation), and how many requests it sends
through the Message Batches API (a nightly job). One tenant, ``bulk-importer``, is the incident's
noisy neighbour: a free-plan customer running a large import.

Run from the repository root: ``python data/make_lesson07_tenants.py`` (same seed, same file).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SEED = 7
OUT = Path(__file__).resolve().parent / "lesson07_tenants.csv"

WORDS = [
    "acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne", "wonka", "tyrell",
    "cyberdyne", "soylent", "oscorp", "gringotts", "monarch", "aperture", "blackmesa", "massive", "dunder",
    "pied", "nakatomi", "weyland", "virtucon", "duff", "krusty", "bluth", "sterling", "prestige", "zorg",
    "gekko", "bubba", "ollivander", "planet", "rekall", "spacely", "cogswell", "tannen", "ghostbusters", "yoyodyne",
]  # fmt: skip


def main() -> None:
    rng = random.Random(SEED)
    names = rng.sample(WORDS, 39)
    rows = []
    for i, name in enumerate(names):
        plan = "enterprise" if i < 4 else "pro" if i < 16 else "free"
        scale = {"enterprise": 40, "pro": 15, "free": 4}[plan]
        rows.append(
            {
                "tenant_id": name,
                "plan": plan,
                "requests": max(1, int(rng.gauss(scale, scale / 4))),
                "cached_share": round(rng.choice([0.0, 0.0, 0.5, 0.8]) if plan != "free" else 0.0, 2),
                "batch_requests": rng.choice([0, 0, 10, 20]) if plan == "enterprise" else 0,
            }
        )
    rows.append(
        {"tenant_id": "bulk-importer", "plan": "free", "requests": 120, "cached_share": 0.0, "batch_requests": 0}
    )
    with OUT.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} tenants to {OUT}")


if __name__ == "__main__":
    main()
