"""What two or more lesson 07 checks share: the model, exact dollars for messages, a request body."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


MODEL = "claude-haiku-5-5"


def money(x: Decimal) -> str:
    """Exact dollars, every digit shown (a difference of 1e-18 must be visible)."""
    return ("-" if x < 0 else "") + "$" + format(abs(x), "f")


def request_body(prompt: str, tag: str | None = None) -> dict[str, Any]:
    """A Messages body asking ``prompt`` (7.3, 7.5), tagged with ``metadata.user_id`` when ``tag`` is given."""
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": prompt}]}
    if tag is not None:
        body["metadata"] = {"user_id": tag}
    return body
